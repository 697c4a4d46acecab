"""The providers a benchmark compares (eager, torch.compile, ours): made, checked against eager, timed into rows.

:func:`bench_copy_roofline` is the whole of one shape of a bandwidth-bound loss: providers made
(:func:`make_providers`), checked (:func:`check_providers`) and timed per mode against a ``copy_``
(:func:`time_rows`). :func:`box_mask` is the mask input the scripts share.
"""
from __future__ import annotations

import argparse
import importlib
import math
import os
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import torch

import measure
import records

RTOL = {torch.float64: 1e-7, torch.float32: 1e-5, torch.float16: 1e-2, torch.bfloat16: 2e-2}
ROOF = "__roofline__"  # the roofline's case among the providers' (see time_rows)
# The providers that run plain PyTorch autograd (the baselines and our pure-PyTorch reference path): their
# backward computes the gradient. Every other provider of the per-op scripts is one of our compiled backends
# ('cpu', 'cuda', 'triton', '<backend>[op]').
AUTOGRAD_PROVIDERS = ("eager", "compile", "reference")


def handover_providers(names: Sequence[str]) -> List[str]:
    """The providers among ``names`` that are our compiled backends (not :data:`AUTOGRAD_PROVIDERS`): for
    an op whose fused forward computes the gradient, their backward is a hand-over (``records.HANDOVER_NOTE``)."""
    return [n for n in names if n not in AUTOGRAD_PROVIDERS]


# --------------------------------------------------------------------------------------------- compile

def compile_provider(fn: Callable[..., Any], warm: Callable[[Callable[..., Any]], Any],
                     **compile_kwargs) -> Tuple[Optional[Callable[..., Any]], Optional[str]]:
    """``torch.compile(fn)`` (default inductor, ``mode=None``), warmed up by ``warm(compiled)``.

    ``torch.compile`` is lazy, so ``warm`` must make every call the benchmark will make (e.g. a
    forward and a forward+backward) so that no compilation lands in a timed region. Returns
    ``(compiled, None)``, or ``(None, "ErrorType: message")`` when compiling or running it fails:
    the caller records the error and carries on without this provider.
    """
    try:
        compiled = torch.compile(fn, mode=None, **compile_kwargs)
        warm(compiled)
        return compiled, None
    except Exception as exc:  # noqa: BLE001 - any compiler failure is recorded, not fatal
        msg = f"{type(exc).__name__}: {exc}".strip().splitlines()
        return None, (msg[0] if msg else type(exc).__name__)[:300]


# --------------------------------------------------------------------------------------------- providers

def value_and_grad(fn: Callable[..., torch.Tensor], inputs: Sequence[Any],
                   grad_input: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """``fn(*inputs)`` (detached) and its gradient w.r.t. ``grad_input`` (of the sum, for a non-scalar value)."""
    out = fn(*inputs)
    (grad,) = torch.autograd.grad(out, (grad_input,), grad_outputs=torch.ones_like(out))
    return out.detach(), grad


def mismatch(fn: Callable[..., torch.Tensor], ref: Tuple[torch.Tensor, torch.Tensor], inputs: Sequence[Any],
             grad_input: torch.Tensor, dtype: torch.dtype, rtols: Mapping[torch.dtype, float] = RTOL,
             elementwise: bool = False) -> str:
    """'' when fn's value and gradient match ``ref`` (eager's :func:`value_and_grad`), else what differs.

    The value: a scalar loss within rtol, or (``elementwise``) every entry within rtol of the largest
    one; the gradient: every entry within rtol of the largest |grad|.
    """
    out, grad = value_and_grad(fn, inputs, grad_input)
    rtol = rtols.get(dtype, 1e-5)
    problems = []
    if elementwise:
        scale = ref[0].double().abs().max().item()
        if out.shape != ref[0].shape or not torch.allclose(out.double(), ref[0].double(), rtol=rtol,
                                                           atol=rtol * scale):
            problems.append(f"value max abs err {(out.double() - ref[0].double()).abs().max().item():.3g} "
                            f"(max |value| {scale:.3g}, rtol {rtol:g})")
    elif not torch.allclose(out.double(), ref[0].double(), rtol=rtol, atol=0.0):
        problems.append(f"loss {out.item():.9g} != eager {ref[0].item():.9g} (rtol {rtol:g})")
    gscale = ref[1].double().abs().max().item()
    if not torch.allclose(grad.double(), ref[1].double(), rtol=rtol, atol=rtol * gscale):
        err = (grad.double() - ref[1].double()).abs().max().item()
        problems.append(f"grad max abs err {err:.3g} (max |grad| {gscale:.3g})")
    return "; ".join(problems)


def has_kernel(backend: str, op: str, module: Optional[str] = None) -> bool:
    """Whether ``backend`` has a kernel for the op ``op`` (e.g. 'masked_error', 'gram').

    'cpu' / 'cuda': the C++ op has a kernel for that dispatch key. 'triton': the module
    ``inpaint_fast/ops/triton/<module or op>.py`` exists (``library.kernels``) *and* the custom op
    ``inpaint_fast::<op>_triton`` is registered (``gram_triton`` lives in the style_distance module).
    """
    from inpaint_fast.ops import library
    if backend != "triton":
        return backend in library.kernels(op)
    if "triton" not in library.kernels(module or op):
        return False
    importlib.import_module("inpaint_fast.ops")  # registers the *_triton ops of the modules that exist
    return hasattr(torch.ops.inpaint_fast, f"{op}_triton")


def our_backends(op: str, device: torch.device, wanted: Optional[Sequence[str]] = None,
                 module: Optional[str] = None) -> Tuple[List[str], Dict[str, str]]:
    """Our compiled backends to time for ``op`` on ``device``, and a ``skipped: ...`` note for each
    candidate that cannot run (no kernel for this op yet, backend not available here).

    Candidates: on CUDA 'cuda' (the CUDA C++ kernels) and 'triton'; on CPU 'cpu' (the C++ op) and,
    only when asked for with ``--providers`` and ``TRITON_INTERPRET=1`` is set, 'triton' on CPU
    tensors in Triton's interpreter (a logic check: the interpreter's times mean nothing).
    ``wanted`` (``--providers``) narrows the candidates. A missing 'cpu' kernel is silent (the
    pre-GPU behaviour: a build without the extension times eager / compile / reference only).
    """
    from inpaint_fast.ops import backend as _backend
    if device.type == "cuda":
        candidates = ["cuda", "triton"]
    else:
        interpreted = os.environ.get("TRITON_INTERPRET") == "1" and wanted is not None and "triton" in wanted
        candidates = ["cpu"] + (["triton"] if interpreted else [])
    if wanted is not None:
        candidates = [b for b in candidates if b in wanted]
    avail = _backend.availability()
    run: List[str] = []
    notes: Dict[str, str] = {}
    for b in candidates:
        why = avail.get(b) or (None if has_kernel(b, op, module) else f"backend {b!r} has no kernel for {op}")
        if why is None:
            run.append(b)
        elif b != "cpu":
            notes[b] = f"skipped: {why}"
            print(f"  {op}: provider {b!r} skipped: {why}", flush=True)
    return run, notes


def op_level_backends(wanted: Optional[Sequence[str]]) -> Optional[List[str]]:
    """``--providers`` with each ``<backend>[op]`` (an ops-level row, only on request) also naming its
    backend, so that :func:`our_backends` looks it up."""
    return wanted and list(wanted) + [w[:-len("[op]")] for w in wanted if w.endswith("[op]")]


def make_providers(notebook_fn: Callable[..., torch.Tensor], ours: Mapping[str, Callable[..., torch.Tensor]],
                   inputs: Sequence[Any], args: argparse.Namespace, where: str,
                   wrap: Callable[[Callable], Callable] = lambda fn: fn) -> Tuple[Dict[str, Callable], Dict[str, str]]:
    """``{eager, compile, *ours}`` called as ``fn(*inputs)``, cut to ``--providers`` (eager stays), and notes.

    eager is ``wrap(notebook_fn)`` (``wrap`` adapts e.g. the notebook's argument order); compile is
    ``wrap(torch.compile(notebook_fn, dynamic=False))`` after a ``torch._dynamo.reset()``, warmed up by two
    forwards and two forward+backwards (w.r.t. ``inputs[0]``). A failed compile is printed loudly
    (``where`` says for what) and noted; the run goes on without it.
    """
    providers: Dict[str, Callable] = {"eager": wrap(notebook_fn)}
    notes: Dict[str, str] = {}
    wanted = args.providers
    if wanted is None or "compile" in wanted:
        torch._dynamo.reset()  # a fresh static graph per shape

        def warm(compiled):
            fn = wrap(compiled)
            for _ in range(2):
                fn(*inputs)                                # forward (grad-recording)
                value_and_grad(fn, inputs, inputs[0])      # forward + backward
        compiled, err = compile_provider(notebook_fn, warm, dynamic=False)
        if compiled is None:
            records.loud(f"torch.compile failed for {where}: {err}")
            notes["compile"] = f"compile failed: {err}"
        else:
            providers["compile"] = wrap(compiled)
    providers.update(ours)
    if wanted is not None:
        providers = {k: v for k, v in providers.items() if k in wanted or k == "eager"}
    return providers, notes


def check_providers(providers: Dict[str, Callable], notes: Dict[str, str], inputs: Sequence[Any],
                    args: argparse.Namespace, failures: List[str], where: str, tag: str = "", *,
                    baseline: str = "eager", compare: Optional[Callable[..., str]] = None,
                    **kw) -> Tuple[torch.Tensor, torch.Tensor]:
    """Checks every provider against ``providers[baseline]`` (:func:`mismatch`, ``kw`` passed on, gradient
    w.r.t. ``inputs[0]``; or ``compare(name, fn, ref)`` -> '' or what differs), recording what differs
    as :func:`check_each` does. Returns the baseline's (value, gradient)."""
    ref = value_and_grad(providers[baseline], inputs, inputs[0])

    def differs(name: str, fn: Callable) -> str:
        return (compare(name, fn, ref) if compare is not None
                else mismatch(fn, ref, inputs, inputs[0], args.torch_dtype, **kw))
    check_each(providers, notes, failures, where, differs, tag, baseline=baseline)
    return ref


def check_each(providers: Dict[str, Callable], notes: Dict[str, str], failures: List[str], where: str,
               differs: Callable[[str, Callable], str], tag: str = "", *, baseline: str = "eager") -> None:
    """``differs(name, fn)`` ('' or what differs from the baseline) of every provider but ``baseline``: a
    mismatch is printed loudly and goes to ``failures`` and the provider's note as ``MISMATCH vs
    {baseline}: {tag}{name} at {where}: ...``; a provider that raises is also dropped."""
    for name, fn in list(providers.items()):
        if name == baseline:
            continue
        try:
            bad = differs(name, fn)
        except Exception as exc:  # noqa: BLE001
            bad = f"raised {type(exc).__name__}: {exc}"
            del providers[name]
        if bad:
            msg = f"MISMATCH vs {baseline}: {tag}{name} at {where}: {bad}"
            records.loud(msg)
            failures.append(msg)
            notes[name] = msg


def time_rows(providers: Mapping[str, Callable], notes: Mapping[str, str], inputs: Sequence[Any], mode: str,
              args: argparse.Namespace, roof_case: measure.Case, base: Mapping[str, Any],
              metrics: Callable[[Dict[str, Any], float], Dict[str, Any]], handover: Sequence[str] = (),
              handover_detail: str = "") -> Tuple[List[Dict[str, Any]], measure.Timing]:
    """Times ``mode`` of every provider (gradient w.r.t. ``inputs[0]``) interleaved with ``roof_case``.

    Returns one row per provider (``base`` + provider, mode, note, times, peak memory and
    ``metrics(row, roofline median ms)``; an empty row for a provider that has only a note) and
    the roofline's timing. ``handover``: the providers whose backward only hands over a gradient their
    forward computed (our fused backends, :func:`handover_providers`): their 'backward' rows keep their
    times but get no metrics and are marked by ``records.mark_handover`` (``handover_detail`` after the note).
    """
    device = args.device
    cases = {name: measure.mode_case(fn, inputs, (inputs[0],), mode) for name, fn in providers.items()}
    cases[ROOF] = roof_case
    timings = measure.time_cases(cases, device=device, warmup=args.warmup, repeats=args.repeats,
                         min_sample_ms=0.5 if args.quick else 2.0)
    roof = timings.pop(ROOF)
    del cases[ROOF]
    rows = []
    for name in list(providers) + [n for n in notes if n not in providers]:
        row = {**base, "provider": name, "mode": mode, "note": notes.get(name, "")}
        if name in providers:
            t = timings[name]
            peak = measure.peak_memory_bytes(cases[name].fn, setup=cases[name].setup, device=device)
            row.update(median_ms=t.median_ms, p20_ms=t.p20_ms, p80_ms=t.p80_ms, peak_mem_mb=peak / 2**20)
            if mode == "backward" and name in handover:
                records.mark_handover(row, handover_detail)
            else:
                row.update(metrics(row, roof.median_ms))
            if getattr(args, "do_bench", False) and cases[name].setup is None:  # forward, full
                row["note"] = records.join_notes(row["note"], measure.do_bench_note(cases[name].fn))
        else:
            row.update(median_ms=math.nan, p20_ms=math.nan, p80_ms=math.nan, gbps=math.nan, pct_roofline=math.nan,
                       peak_mem_mb=math.nan)
        rows.append(row)
    return rows, roof


def bench_copy_roofline(op: str, shape: Sequence[int], inputs: Sequence[Any], notebook_fn: Callable[..., torch.Tensor],
                        ours: Mapping[str, Callable[..., torch.Tensor]], bytes_moved: Callable[[str], int],
                        args: argparse.Namespace, meta: Mapping[str, Any], failures: List[str],
                        wrap: Callable[[Callable], Callable] = lambda fn: fn, detail: str = "",
                        skipped: Optional[Mapping[str, str]] = None, handover: bool = False,
                        handover_detail: str = "") -> List[Dict[str, Any]]:
    """The rows of one shape of a bandwidth-bound loss: :func:`make_providers`, :func:`check_providers`,
    then :func:`time_rows` of every ``--modes`` mode against a ``copy_`` moving ``bytes_moved(mode)``
    (GB/s, % of the copy's). ``detail`` (e.g. a region) follows the shape in messages. ``skipped``:
    providers that cannot run (:func:`our_backends`' notes), each written as an empty row with its note.
    ``handover``: the op's fused forward computes the gradient, so the 'backward' rows of our backends
    (:func:`handover_providers`) are hand-over rows (``handover_detail`` follows the note)."""
    where = records.shape_str(shape)
    label = f"{where} {detail}" if detail else where
    providers, notes = make_providers(notebook_fn, ours, inputs, args, where, wrap)
    notes.update(skipped or {})
    check_providers(providers, notes, inputs, args, failures, f"{label} {args.dtype}")
    base = {"op": op, "shape": where, "dtype": args.dtype, **meta}
    rows: List[Dict[str, Any]] = []
    for mode in args.modes:
        moved = bytes_moved(mode)
        case, copied = measure.copy_case(moved, device=args.device)

        def metrics(row, roof_ms, moved=moved, copied=copied):
            achieved = measure.gbps(moved, row["median_ms"])
            return {"gbps": achieved, "pct_roofline": 100.0 * achieved / measure.gbps(copied, roof_ms)}
        mode_rows, roof_t = time_rows(providers, notes, inputs, mode, args, case, base, metrics,
                                      handover_providers(providers) if handover else (), handover_detail)
        roof = measure.gbps(copied, roof_t.median_ms)
        for row in mode_rows:
            row["roofline_gbps"] = roof
        rows += mode_rows
        print(f"  {label} {mode}: done (copy roofline {roof:.1f} GB/s for {moved / 2**20:.1f} MiB)", flush=True)
    return rows


def box_mask(n: int, h: int, w: int, dtype: torch.dtype, device: torch.device, seed: int = 0) -> torch.Tensor:
    """(N, 1, H, W) binary mask, 1 = known: per image an (H/2 x W/2) hole at a random place (a quarter)."""
    g = torch.Generator().manual_seed(seed)
    hh, ww = h // 2, w // 2
    top = torch.randint(0, h - hh + 1, (n, 1, 1, 1), generator=g)
    left = torch.randint(0, w - ww + 1, (n, 1, 1, 1), generator=g)
    rows = torch.arange(h).view(1, 1, h, 1)
    cols = torch.arange(w).view(1, 1, 1, w)
    hole = (rows >= top) & (rows < top + hh) & (cols >= left) & (cols < left + ww)
    return (~hole).to(dtype=dtype, device=device)

