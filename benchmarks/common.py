"""Shared benchmark helpers: the only copy (timing, memory, roofline, providers and their checks
against eager, CSV, plots, CLI, the opening and closing of a script's ``main``).

Every ``benchmarks/bench_<op>.py`` imports this module; what is op-specific (inputs, providers,
bytes or FLOPs counted) stays in the scripts and comes in as arguments. The helpers are
device-agnostic: a ``torch.device`` is passed in, CUDA work is synchronised around every timed
region, and peak memory is taken from the CUDA caching allocator on GPU and from the profiler's
allocation events on CPU (see :func:`peak_memory_bytes`).

Timing model (:func:`time_cases`)
    Providers of one (shape, mode) are timed *interleaved*: each round times every provider once,
    in a rotated order, so slow drifts of a shared machine (other jobs, frequency changes) hit all
    providers alike and the ratios between them stay meaningful. After ``warmup`` untimed calls per
    provider, ``repeats`` samples are taken; a sample of a case without per-call setup repeats the
    call ``number`` times (calibrated so one sample lasts at least ``min_sample_ms``) and records
    the mean. Reported: median and the 20th/80th percentiles of the samples, in milliseconds.
    The Python garbage collector is disabled while timing. On CPU a sample is wall-clock time
    (``time.perf_counter``); on CUDA it is the GPU time between two CUDA events recorded on the
    current stream around the call(s) (after a ``torch.cuda.synchronize``), so the host's launch
    work counts only where the GPU waits for it. On CUDA, :func:`do_bench_note` also times forward and
    full with ``triton.testing.do_bench`` (its own warm-up, L2 flush and repetitions) as a second
    opinion, written to the row's ``note``.

    Warm-up: the scripts default to 10 calls (``--warmup``; 1 with ``--quick``). On this VM the first
    calls that allocate multi-MiB buffers pay first-touch page faults on fresh memory (and host-side
    faults) until the allocator's pages are mapped, so a steady training-loop state needs more than
    a handful of warm-up calls. Only ratios within one run (speedups, % of roofline) are reported
    as results, so every provider gets the same warm-up.

Modes (:func:`mode_case`)
    ``forward``: the loss call, with the inputs that need a gradient requiring grad (a training
    forward: it records the autograd graph). ``backward``: the backward alone; each sample first
    runs a forward *untimed* (a fresh graph every time), then times ``torch.autograd.grad``.
    ``full``: forward + backward in one timed call.
"""
from __future__ import annotations

import argparse
import csv
import datetime as _dt
import gc
import math
import os
import platform
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import torch

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(BENCH_DIR)
RESULTS_DIR = os.path.join(BENCH_DIR, "results")
PLOTS_DIR = os.path.join(BENCH_DIR, "plots")
QUICK_SUBDIR = "quick"  # --quick runs write under results/quick/ and plots/quick/ (git-ignored)

if REPO_ROOT not in sys.path:  # so `from tests import seed_notebook` works from `python benchmarks/x.py`
    sys.path.insert(0, REPO_ROOT)

MODES = ("forward", "backward", "full")
COLUMNS = ("op", "shape", "dtype", "provider", "mode", "median_ms", "p20_ms", "p80_ms", "gbps", "roofline_gbps",
           "pct_roofline", "speedup_vs_eager", "speedup_vs_compile", "peak_mem_mb", "threads", "device",
           "torch_version", "git_rev", "date", "note")
DTYPES = {"float32": torch.float32, "float64": torch.float64, "float16": torch.float16,
          "bfloat16": torch.bfloat16}


# --------------------------------------------------------------------------------------------- timing

def synchronize(device: torch.device) -> None:
    """Wait for queued device work (a no-op on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass
class Timing:
    """Per-call times of one case, in milliseconds."""
    samples_ms: List[float]
    number: int = 1  # calls per sample

    def _pct(self, q: float) -> float:
        s = sorted(self.samples_ms)
        if not s:
            return float("nan")
        k = (len(s) - 1) * q
        lo, hi = math.floor(k), math.ceil(k)
        return s[lo] + (s[hi] - s[lo]) * (k - lo)

    @property
    def median_ms(self) -> float:
        return self._pct(0.5)

    @property
    def p20_ms(self) -> float:
        return self._pct(0.2)

    @property
    def p80_ms(self) -> float:
        return self._pct(0.8)


@dataclass
class Case:
    """A timed callable. With ``setup``, each sample calls ``fn(setup())`` and times only ``fn``."""
    fn: Callable[..., Any]
    setup: Optional[Callable[[], Any]] = None


class _Timer:
    """Elapsed milliseconds of a region: CUDA events on a CUDA device, ``time.perf_counter`` elsewhere."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        self.device = device
        if self.cuda:
            self.start_ev = torch.cuda.Event(enable_timing=True)
            self.end_ev = torch.cuda.Event(enable_timing=True)

    def start(self) -> None:
        synchronize(self.device)  # nothing queued before the region is counted
        if self.cuda:
            self.start_ev.record()
        else:
            self.t0 = time.perf_counter()

    def stop(self) -> float:
        if self.cuda:
            self.end_ev.record()
            self.end_ev.synchronize()
            return float(self.start_ev.elapsed_time(self.end_ev))
        return (time.perf_counter() - self.t0) * 1e3


def _run_once(case: Case, device: torch.device) -> float:
    """Milliseconds of one call of ``case.fn`` (its setup, if any, runs untimed before)."""
    timer = _Timer(device)
    if case.setup is not None:
        state = case.setup()
        timer.start()
        out = case.fn(state)
        ms = timer.stop()
        del out, state
        return ms
    timer.start()
    out = case.fn()
    ms = timer.stop()
    del out
    return ms


def _run_sample(case: Case, device: torch.device, number: int) -> float:
    """Milliseconds per call, averaged over ``number`` back-to-back calls (``number`` is 1 with a setup)."""
    if case.setup is not None or number == 1:
        return _run_once(case, device)
    timer = _Timer(device)
    timer.start()
    for _ in range(number):
        out = case.fn()
        del out
    return timer.stop() / number


def time_cases(cases: Mapping[str, Case], *, device: torch.device, warmup: int = 3, repeats: int = 20,
               min_sample_ms: float = 1.0, max_number: int = 1000) -> Dict[str, Timing]:
    """Times every case, interleaved round by round (see the module docstring); name -> Timing."""
    names = list(cases)
    numbers: Dict[str, int] = {}
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        for name in names:
            for _ in range(max(warmup, 1)):
                _run_once(cases[name], device)
            if cases[name].setup is not None:
                numbers[name] = 1
            else:
                t_ms = _run_once(cases[name], device)
                numbers[name] = int(min(max_number, max(1, math.ceil(min_sample_ms / max(t_ms, 1e-6)))))
        samples: Dict[str, List[float]] = {n: [] for n in names}
        for r in range(repeats):
            k = r % len(names)
            for name in names[k:] + names[:k]:  # rotate the order so no provider always goes first
                samples[name].append(_run_sample(cases[name], device, numbers[name]))
    finally:
        if was_enabled:
            gc.enable()
    return {n: Timing(samples[n], numbers[n]) for n in names}


def time_callable(fn: Callable[..., Any], *, setup: Optional[Callable[[], Any]] = None,
                  device: torch.device = torch.device("cpu"), warmup: int = 3, repeats: int = 20,
                  min_sample_ms: float = 1.0) -> Timing:
    """Median/p20/p80 of one callable (``fn()``, or ``fn(setup())`` timing only ``fn``)."""
    return time_cases({"fn": Case(fn, setup)}, device=device, warmup=warmup, repeats=repeats,
                      min_sample_ms=min_sample_ms)["fn"]


def mode_case(loss_fn: Callable[..., torch.Tensor], args: Sequence[Any], grad_inputs: Sequence[torch.Tensor],
              mode: str) -> Case:
    """The :class:`Case` timing ``mode`` of ``loss_fn(*args)``; gradients are taken w.r.t. ``grad_inputs``.

    'backward' runs the forward untimed in the setup (a fresh graph for every sample) and times
    ``torch.autograd.grad`` alone; 'full' times forward + backward. ``autograd.grad`` is used rather
    than ``.backward()`` so that no ``.grad`` accumulates between samples.
    """
    grad_inputs = tuple(grad_inputs)
    if mode == "forward":
        return Case(lambda: loss_fn(*args))
    if mode == "backward":
        return Case(lambda loss: torch.autograd.grad(loss, grad_inputs), setup=lambda: loss_fn(*args))
    if mode == "full":
        return Case(lambda: torch.autograd.grad(loss_fn(*args), grad_inputs))
    raise ValueError(f"mode must be one of {MODES}; got {mode!r}")


# --------------------------------------------------------------------------------------------- memory

def _cpu_allocation_events(prof) -> List[Tuple[int, int]]:
    """(time_ns, signed bytes) of every CPU allocation (+) and free (-) the profiler recorded."""
    events: List[Tuple[int, int]] = []
    stack = list(prof.profiler.kineto_results.experimental_event_tree())
    while stack:
        node = stack.pop()
        stack.extend(node.children)
        extra = node.extra_fields
        if type(extra).__name__ == "_ExtraFields_Allocation" and extra.device.type == "cpu":
            events.append((node.start_time_ns, int(extra.alloc_size)))
    events.sort()
    return events


def peak_memory_bytes(fn: Callable[..., Any], *, setup: Optional[Callable[[], Any]] = None,
                      device: torch.device = torch.device("cpu")) -> int:
    """Peak bytes of tensor memory allocated by one call of ``fn()`` (or ``fn(setup())``) above the start.

    What is measured is the high-water mark of *extra* live tensor bytes while the call runs,
    relative to what was live when it started; the call's outputs (e.g. the gradients it returns)
    are still alive at the end and therefore count. A ``setup`` (e.g. the forward before a timed
    backward) runs before the measured window, so its allocations are the baseline.

    CUDA: ``torch.cuda.max_memory_allocated() - torch.cuda.memory_allocated()`` around the call,
    after ``reset_peak_memory_stats`` (the caching allocator's exact count of bytes handed to tensors,
    not the memory it reserves from the driver).

    CPU: torch has no CPU allocator statistics, and ``tracemalloc``/RSS do not see (or do not
    isolate) the c10 allocator, so the call runs under ``torch.profiler.profile(profile_memory=True)``:
    c10's default CPU allocator then reports every allocation and free (size, time) to the
    profiler. The events are sorted by time and summed; the peak of the running sum is the answer.
    It counts every tensor storage allocated through torch's CPU allocator (ATen ops, C++
    extensions using ``at::empty``, inductor-compiled code), at its real size, and nothing else
    (Python objects, the OpenMP runtime's and compiled code's own stack buffers). The profiler's
    own overhead changes timings, never sizes; this measurement is taken apart from the timed runs.
    """
    state = setup() if setup is not None else None
    call = (lambda: fn(state)) if setup is not None else fn
    synchronize(device)
    gc.collect()
    if device.type == "cuda":
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        out = call()
        synchronize(device)
        peak = torch.cuda.max_memory_allocated(device) - base
        del out, state
        return int(peak)
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        out = call()
    del out, state
    running = peak = 0
    for _, size in _cpu_allocation_events(prof):
        running += size
        peak = max(peak, running)
    return int(peak)


# --------------------------------------------------------------------------------------------- roofline

def copy_case(nbytes: int, *, device: torch.device) -> Tuple[Case, int]:
    """A :class:`Case` timing ``dst.copy_(src)`` that moves ``nbytes`` in all, and the bytes it moves.

    ``src`` and ``dst`` hold ``nbytes / 2`` each (fp32), so the copy's traffic (read src + write dst)
    and its working set equal those of the loss it is compared with (same cache level). Put it among
    the cases of :func:`time_cases` so that it is timed interleaved with the providers, under the same
    machine noise; the roofline is then ``gbps(moved, timing.median_ms)``.
    """
    numel = max(1, int(nbytes) // 2 // 4)
    src = torch.randn(numel, device=device, dtype=torch.float32)
    dst = torch.empty_like(src)
    return Case(lambda: dst.copy_(src)), 2 * numel * 4


def copy_bandwidth_gbps(nbytes: int, *, device: torch.device, warmup: int = 3, repeats: int = 20,
                        min_sample_ms: float = 1.0) -> float:
    """Measured ``dst.copy_(src)`` bandwidth (GB/s = 1e9 B/s) for a copy moving ``nbytes`` (see :func:`copy_case`).

    Standalone version (its own timing run); bench scripts rather time :func:`copy_case` interleaved
    with the providers.
    """
    case, moved = copy_case(nbytes, device=device)
    t = time_callable(case.fn, device=device, warmup=warmup, repeats=repeats, min_sample_ms=min_sample_ms)
    return gbps(moved, t.median_ms)


def gbps(nbytes: int, ms: float) -> float:
    """Achieved GB/s of moving ``nbytes`` in ``ms`` milliseconds."""
    return nbytes / (ms * 1e-3) / 1e9 if ms > 0 else float("nan")


def nbytes(t: torch.Tensor) -> int:
    """Bytes of a tensor's elements (numel * element size; broadcast views count as their numel)."""
    return t.numel() * t.element_size()


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

RTOL = {torch.float64: 1e-7, torch.float32: 1e-5, torch.float16: 1e-2, torch.bfloat16: 2e-2}
ROOF = "__roofline__"  # the roofline's case among the providers' (see time_rows)


def loud(msg: str) -> None:
    """Prints ``msg`` in a ``!!!`` banner on stderr."""
    bar = "!" * 100
    print(f"\n{bar}\n!!! {msg}\n{bar}\n", file=sys.stderr, flush=True)


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
    ``inpaint_fast/triton/<module or op>.py`` exists (``_extension.kernels``) *and* the custom op
    ``inpaint_fast::<op>_triton`` is registered (``gram_triton`` lives in the style_distance module).
    """
    from inpaint_fast import _extension
    if backend != "triton":
        return backend in _extension.kernels(op)
    if "triton" not in _extension.kernels(module or op):
        return False
    import inpaint_fast.ops  # noqa: F401  (registers the *_triton ops of the modules that exist)
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
    from inpaint_fast import _backend
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


def do_bench_ms(fn: Callable[[], Any], bench: Optional[Callable[..., Any]] = None) -> Tuple[float, float, float]:
    """(median, p20, p80) ms of ``fn()`` by ``triton.testing.do_bench`` (25 ms warm-up, 100 ms of
    repetitions, L2 flushed before each call; ``bench`` replaces do_bench, e.g. in tests)."""
    if bench is None:
        from triton.testing import do_bench as bench
    res = bench(fn, warmup=25, rep=100, quantiles=[0.5, 0.2, 0.8])
    vals = [float(res)] * 3 if isinstance(res, (int, float)) else [float(v) for v in res]
    return vals[0], vals[1], vals[2]


def do_bench_note(fn: Callable[[], Any], bench: Optional[Callable[..., Any]] = None) -> str:
    """``do_bench_ms=<median>[<p20>,<p80>]`` for the row's note, or ``do_bench error: ...``."""
    try:
        med, lo, hi = do_bench_ms(fn, bench)
    except Exception as exc:  # noqa: BLE001 - a second opinion; its failure is noted, not fatal
        first = (f"{type(exc).__name__}: {exc}".strip().splitlines() or [type(exc).__name__])[0]
        return f"do_bench error: {first}"[:200]
    return f"do_bench_ms={med:.4g}[{lo:.4g},{hi:.4g}]"


def join_notes(*parts: str) -> str:
    return "; ".join(p for p in parts if p)


def make_providers(seed_fn: Callable[..., torch.Tensor], ours: Mapping[str, Callable[..., torch.Tensor]],
                   inputs: Sequence[Any], args: argparse.Namespace, where: str,
                   wrap: Callable[[Callable], Callable] = lambda fn: fn) -> Tuple[Dict[str, Callable], Dict[str, str]]:
    """``{eager, compile, *ours}`` called as ``fn(*inputs)``, cut to ``--providers`` (eager stays), and notes.

    eager is ``wrap(seed_fn)`` (``wrap`` adapts e.g. the seed's argument order); compile is
    ``wrap(torch.compile(seed_fn, dynamic=False))`` after a ``torch._dynamo.reset()``, warmed up by two
    forwards and two forward+backwards (w.r.t. ``inputs[0]``). A failed compile is printed loudly
    (``where`` says for what) and noted; the run goes on without it.
    """
    providers: Dict[str, Callable] = {"eager": wrap(seed_fn)}
    notes: Dict[str, str] = {}
    wanted = args.providers
    if wanted is None or "compile" in wanted:
        torch._dynamo.reset()  # a fresh static graph per shape

        def warm(compiled):
            fn = wrap(compiled)
            for _ in range(2):
                fn(*inputs)                                # forward (grad-recording)
                value_and_grad(fn, inputs, inputs[0])      # forward + backward
        compiled, err = compile_provider(seed_fn, warm, dynamic=False)
        if compiled is None:
            loud(f"torch.compile failed for {where}: {err}")
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
    w.r.t. ``inputs[0]``; or ``compare(name, fn, ref)`` -> '' or what differs): a mismatch is printed
    loudly and goes to ``failures`` and the provider's note as ``MISMATCH vs {baseline}: {tag}{name} at
    {where}: ...``; a provider that raises is also dropped. Returns the baseline's (value, gradient)."""
    ref = value_and_grad(providers[baseline], inputs, inputs[0])
    for name, fn in list(providers.items()):
        if name == baseline:
            continue
        try:
            bad = (compare(name, fn, ref) if compare is not None
                   else mismatch(fn, ref, inputs, inputs[0], args.torch_dtype, **kw))
        except Exception as exc:  # noqa: BLE001
            bad = f"raised {type(exc).__name__}: {exc}"
            del providers[name]
        if bad:
            msg = f"MISMATCH vs {baseline}: {tag}{name} at {where}: {bad}"
            loud(msg)
            failures.append(msg)
            notes[name] = msg
    return ref


def time_rows(providers: Mapping[str, Callable], notes: Mapping[str, str], inputs: Sequence[Any], mode: str,
              args: argparse.Namespace, roof_case: Case, base: Mapping[str, Any],
              metrics: Callable[[Dict[str, Any], float], Dict[str, Any]]) -> Tuple[List[Dict[str, Any]], Timing]:
    """Times ``mode`` of every provider (gradient w.r.t. ``inputs[0]``) interleaved with ``roof_case``.

    Returns one row per provider (``base`` + provider, mode, note, times, peak memory and
    ``metrics(row, roofline median ms)``; an empty row for a provider that has only a note) and
    the roofline's timing.
    """
    device = args.device
    cases = {name: mode_case(fn, inputs, (inputs[0],), mode) for name, fn in providers.items()}
    cases[ROOF] = roof_case
    timings = time_cases(cases, device=device, warmup=args.warmup, repeats=args.repeats,
                         min_sample_ms=0.5 if args.quick else 2.0)
    roof = timings.pop(ROOF)
    del cases[ROOF]
    rows = []
    for name in list(providers) + [n for n in notes if n not in providers]:
        row = {**base, "provider": name, "mode": mode, "note": notes.get(name, "")}
        if name in providers:
            t = timings[name]
            peak = peak_memory_bytes(cases[name].fn, setup=cases[name].setup, device=device)
            row.update(median_ms=t.median_ms, p20_ms=t.p20_ms, p80_ms=t.p80_ms, peak_mem_mb=peak / 2**20)
            row.update(metrics(row, roof.median_ms))
            if getattr(args, "do_bench", False) and cases[name].setup is None:  # forward, full
                row["note"] = join_notes(row["note"], do_bench_note(cases[name].fn))
        else:
            row.update(median_ms=math.nan, p20_ms=math.nan, p80_ms=math.nan, gbps=math.nan, pct_roofline=math.nan,
                       peak_mem_mb=math.nan)
        rows.append(row)
    return rows, roof


def bench_copy_roofline(op: str, shape: Sequence[int], inputs: Sequence[Any], seed_fn: Callable[..., torch.Tensor],
                        ours: Mapping[str, Callable[..., torch.Tensor]], bytes_moved: Callable[[str], int],
                        args: argparse.Namespace, meta: Mapping[str, Any], failures: List[str],
                        wrap: Callable[[Callable], Callable] = lambda fn: fn, detail: str = "",
                        skipped: Optional[Mapping[str, str]] = None) -> List[Dict[str, Any]]:
    """The rows of one shape of a bandwidth-bound loss: :func:`make_providers`, :func:`check_providers`,
    then :func:`time_rows` of every ``--modes`` mode against a ``copy_`` moving ``bytes_moved(mode)``
    (GB/s, % of the copy's). ``detail`` (e.g. a region) follows the shape in messages. ``skipped``:
    providers that cannot run (:func:`our_backends`' notes), each written as an empty row with its note."""
    where = shape_str(shape)
    label = f"{where} {detail}" if detail else where
    providers, notes = make_providers(seed_fn, ours, inputs, args, where, wrap)
    notes.update(skipped or {})
    check_providers(providers, notes, inputs, args, failures, f"{label} {args.dtype}")
    base = {"op": op, "shape": where, "dtype": args.dtype, **meta}
    rows: List[Dict[str, Any]] = []
    for mode in args.modes:
        moved = bytes_moved(mode)
        case, copied = copy_case(moved, device=args.device)

        def metrics(row, roof_ms, moved=moved, copied=copied):
            achieved = gbps(moved, row["median_ms"])
            return {"gbps": achieved, "pct_roofline": 100.0 * achieved / gbps(copied, roof_ms)}
        mode_rows, roof_t = time_rows(providers, notes, inputs, mode, args, case, base, metrics)
        roof = gbps(copied, roof_t.median_ms)
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


# --------------------------------------------------------------------------------------------- metadata

def sanitize(name: str) -> str:
    """A file-name-safe version of a device name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "unknown"


def device_name(device: torch.device) -> str:
    """The GPU name, or the CPU model (/proc/cpuinfo 'model name', else platform.processor())."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "cpu"


def git_rev() -> str:
    """Short HEAD revision, '+dirty' when tracked files have changes; 'no-commit' before the first commit.

    Changes under benchmarks/results/ and benchmarks/plots/ (what the benchmarks write) do not count.
    ``INPAINT_FAST_GIT_REV`` in the environment overrides it (a copy of the tree without ``.git``,
    e.g. on a lent GPU machine: pass the revision the copy was made from)."""
    if os.environ.get("INPAINT_FAST_GIT_REV"):
        return os.environ["INPAINT_FAST_GIT_REV"]
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True,
                              timeout=20).stdout.strip()
    try:
        rev = git("rev-parse", "--short", "HEAD")
        if not rev:
            return "no-commit"
        outputs = [f":(exclude){os.path.relpath(d, REPO_ROOT)}" for d in (RESULTS_DIR, PLOTS_DIR)]
        return rev + ("+dirty" if git("status", "--porcelain", "--untracked-files=no", "--", ".", *outputs) else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def load_average() -> float:
    """The 1-minute load average (NaN where /proc/loadavg or os.getloadavg is missing)."""
    try:
        return os.getloadavg()[0]
    except (OSError, AttributeError):
        return float("nan")


def warn_if_busy(threads: int) -> None:
    """Prints a warning when other work seems to be running (1-min load average above 1).

    On a small machine, OpenMP-parallel kernels (ours, inductor's, even ``copy_``) lose a scheduler
    time slice per parallel region when another process holds a core, so their times blow up
    while single-threaded eager ops barely move: run benchmarks on a quiet machine.
    """
    load = load_average()
    cores = os.cpu_count() or 1
    if load > 1.0:
        print(f"WARNING: 1-min load average is {load:.2f} on {cores} cores with {threads} benchmark threads: "
              "other work is running; timings of multithreaded kernels will be noisy", file=sys.stderr, flush=True)


def now_utc() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def shape_str(shape: Sequence[int]) -> str:
    return "x".join(str(int(s)) for s in shape)


def parse_shape(text: str) -> Tuple[int, ...]:
    return tuple(int(s) for s in text.lower().replace("×", "x").split("x"))


def set_threads(n: int) -> int:
    """``torch.set_num_threads(n)``; returns the count torch reports afterwards."""
    torch.set_num_threads(int(n))
    return torch.get_num_threads()


# --------------------------------------------------------------------------------------------- rows

def fill_speedups(rows: List[Dict[str, Any]]) -> None:
    """Sets speedup_vs_eager / speedup_vs_compile (baseline median / row median, same shape+mode+dtype)."""
    base: Dict[Tuple[str, str, str, str], float] = {}
    for r in rows:
        if r["provider"] in ("eager", "compile") and _finite(r["median_ms"]):
            base[(r["shape"], r["mode"], r["dtype"], r["provider"])] = r["median_ms"]
    for r in rows:
        for prov in ("eager", "compile"):
            b = base.get((r["shape"], r["mode"], r["dtype"], prov))
            ok = b is not None and _finite(r["median_ms"]) and r["median_ms"] > 0
            r[f"speedup_vs_{prov}"] = b / r["median_ms"] if ok else float("nan")


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


def _fmt(v: Any, digits: int = 4) -> str:
    if isinstance(v, float):
        return "" if not math.isfinite(v) else f"{v:.{digits}g}"
    return "" if v is None else str(v)


def write_rows(path: str, rows: Sequence[Mapping[str, Any]]) -> str:
    """Appends ``rows`` to the CSV at ``path`` (header written when the file is new); returns the path."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    new = not os.path.exists(path) or os.path.getsize(path) == 0
    if not new:
        with open(path, newline="") as f:
            header = next(csv.reader(f), [])
        if tuple(header) != COLUMNS:
            raise ValueError(f"{path} has columns {header}, expected {list(COLUMNS)}; move it away or pass --out")
    with open(path, "a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS, extrasaction="ignore")
        if new:
            w.writeheader()
        for r in rows:
            w.writerow({c: _fmt(r.get(c), 6) for c in COLUMNS})
    return path


TABLE_COLS = [("shape", "shape", 0), ("mode", "mode", 0), ("provider", "provider", 0), ("median_ms", "median ms", 4),
              ("p20_ms", "p20", 4), ("p80_ms", "p80", 4), ("gbps", "GB/s", 3), ("pct_roofline", "%copy", 3),
              ("speedup_vs_eager", "x eager", 3), ("speedup_vs_compile", "x compile", 3),
              ("peak_mem_mb", "peak MB", 4), ("note", "note", 0)]


def format_table(rows: Sequence[Mapping[str, Any]], cols: Sequence[Tuple[str, str, int]] = TABLE_COLS,
                 left: int = 3) -> str:
    """A readable fixed-width table of the rows: ``cols`` are (key, heading, significant digits or 0 for
    text); the first ``left`` columns and a note are left-aligned, the rest right-aligned."""
    table = [[h for _, h, _ in cols]]
    for r in rows:
        table.append([_fmt(r.get(k), d) if d else _fmt(r.get(k)) for k, _, d in cols])
    widths = [max(len(row[i]) for row in table) for i in range(len(cols))]
    lines = ["  ".join(c.ljust(w) if i < left or cols[i][0] == "note" else c.rjust(w)
                       for i, (c, w) in enumerate(zip(row, widths))).rstrip() for row in table]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------- plots

def plot_rows(rows: Sequence[Mapping[str, Any]], path: str, title: str = "") -> Optional[str]:
    """Bar chart of median time (p20-p80 as error bars) per provider, one panel per (shape, mode); PNG."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot written", file=sys.stderr)
        return None
    shapes = list(dict.fromkeys(r["shape"] for r in rows))
    modes = [m for m in MODES if any(r["mode"] == m for r in rows)]
    providers = list(dict.fromkeys(r["provider"] for r in rows))
    colors = {p: plt.cm.tab10(i % 10) for i, p in enumerate(providers)}
    fig, axes = plt.subplots(len(shapes), len(modes), figsize=(4.2 * len(modes), 3.2 * len(shapes)), squeeze=False)
    for i, shape in enumerate(shapes):
        for j, mode in enumerate(modes):
            ax = axes[i][j]
            sel = {r["provider"]: r for r in rows if r["shape"] == shape and r["mode"] == mode}
            names = [p for p in providers if p in sel]
            med = [sel[p]["median_ms"] if _finite(sel[p]["median_ms"]) else 0.0 for p in names]
            lo = [max(0.0, m - sel[p]["p20_ms"]) if _finite(sel[p]["p20_ms"]) else 0.0 for p, m in zip(names, med)]
            hi = [max(0.0, sel[p]["p80_ms"] - m) if _finite(sel[p]["p80_ms"]) else 0.0 for p, m in zip(names, med)]
            bars = ax.bar(names, med, yerr=[lo, hi], capsize=3, color=[colors[p] for p in names])
            for b, m, h in zip(bars, med, hi):
                label = f"{m:.3g}" if m > 0 else "n/a"
                ax.annotate(label, (b.get_x() + b.get_width() / 2, m + h), ha="center", va="bottom", fontsize=8,
                            xytext=(0, 3), textcoords="offset points")
            ax.set_title(f"{shape}  {mode}", fontsize=9)
            ax.set_ylabel("median ms" if j == 0 else "")
            ax.tick_params(axis="x", labelsize=8)
            ax.margins(y=0.15)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# --------------------------------------------------------------------------------------------- CLI

def parse_args(description: str, argv: Optional[Sequence[str]] = None,
               add_arguments: Optional[Callable[[argparse.ArgumentParser], None]] = None,
               shapes: Sequence[Sequence[Tuple[int, ...]]] = ((), ())) -> argparse.Namespace:
    """The options every bench script shares (plus ``add_arguments(parser)`` for its own).

    ``shapes``: the script's (default, ``--quick``[, GPU default]) shapes, which ``args.shapes`` gets
    without ``--shapes``; the GPU defaults (when given) replace the defaults on a CUDA device.
    The device defaults to the CPU (the committed CPU results come from plain runs); ``--device cuda``
    selects the GPU, and asking for a device that is not there is an error.
    """
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true",
                   help="tiny shapes and 3 repeats (a smoke test); writes under results/quick/ and plots/quick/")
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    p.add_argument("--out", default=None, help="CSV to append to (default benchmarks/results/<device>.csv)")
    p.add_argument("--dtype", default="float32", choices=sorted(DTYPES), help="input dtype (default float32)")
    p.add_argument("--device", default="cpu",
                   help="torch device to run on: cpu (default) or cuda[:N] (the GPU shapes and providers)")
    p.add_argument("--shapes", default=None, help="comma-separated NxCxHxW shapes, overriding the defaults")
    p.add_argument("--modes", default=",".join(MODES), help="comma-separated subset of " + ",".join(MODES))
    p.add_argument("--providers", default=None, help="comma-separated subset of the providers")
    p.add_argument("--repeats", type=int, default=None, help="timed samples per case (default 25; 3 with --quick)")
    p.add_argument("--warmup", type=int, default=None,
                   help="untimed calls per case (default 10, for first-touch page faults of fresh buffers; "
                        "1 with --quick)")
    p.add_argument("--plot", default=None, help="PNG path (default benchmarks/plots/<op>_<device>.png)")
    p.add_argument("--no-plot", action="store_true", help="do not write the PNG")
    p.add_argument("--no-csv", action="store_true", help="do not write the CSV")
    p.add_argument("--no-do-bench", action="store_true",
                   help="on CUDA, skip the triton.testing.do_bench second timing of forward and full (in the note)")
    if add_arguments is not None:
        add_arguments(p)
    args = p.parse_args(argv)
    args.device = torch.device(args.device)
    if args.device.type == "cuda" and not torch.cuda.is_available():
        p.error(f"--device {args.device} asked for, but torch.cuda.is_available() is False "
                f"(torch {torch.__version__}, CUDA {torch.version.cuda})")
    if args.device.type == "cuda" and args.device.index is not None:
        torch.cuda.set_device(args.device)
    args.do_bench = args.device.type == "cuda" and not args.no_do_bench
    args.torch_dtype = DTYPES[args.dtype]
    if args.repeats is None:
        args.repeats = 3 if args.quick else 25
    if args.warmup is None:
        args.warmup = 1 if args.quick else 10  # see the module docstring (first-touch page faults)
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    bad = [m for m in args.modes if m not in MODES]
    if bad:
        p.error(f"unknown mode(s) {bad}; choose from {list(MODES)}")
    args.providers = [s.strip() for s in args.providers.split(",")] if args.providers else None
    gpu_default = shapes[2] if len(shapes) > 2 and args.device.type == "cuda" else shapes[0]
    args.shapes = ([parse_shape(s) for s in args.shapes.split(",")] if args.shapes
                   else list(shapes[1] if args.quick else gpu_default) or None)
    return args


def default_paths(args: argparse.Namespace, op: str, device: torch.device) -> Tuple[str, str]:
    """(CSV path, PNG path) for this run: --out/--plot, else results/<device>.csv and
    plots/<op>_<device>.png (``plots/<op>_<device>_<dtype>.png`` for a dtype other than float32, so
    that the fp32 and bf16 runs of one GPU keep a figure each)."""
    dev = sanitize(device_name(device))
    sub = QUICK_SUBDIR if args.quick else ""
    csv_path = args.out or os.path.join(RESULTS_DIR, sub, f"{dev}.csv")
    suffix = "" if args.dtype == "float32" else f"_{args.dtype}"
    png_path = args.plot or os.path.join(PLOTS_DIR, sub, f"{op}_{dev}{suffix}.png")
    return csv_path, png_path


def run_metadata(device: torch.device) -> Dict[str, Any]:
    """The columns that describe the run rather than the case."""
    return {"threads": torch.get_num_threads(), "device": device_name(device), "torch_version": torch.__version__,
            "git_rev": git_rev(), "date": now_utc()}


# --------------------------------------------------------------------------------------------- main

def header(name: str, args: argparse.Namespace, extra: str = "") -> Dict[str, Any]:
    """main()'s opening: sets the threads, prints the run's header line (``extra`` before the shapes)
    and a busy warning; returns :func:`run_metadata`."""
    threads = set_threads(args.threads)
    meta = run_metadata(args.device)
    print(f"{name}: device {meta['device']!r}, torch {meta['torch_version']}, {threads} threads, {args.dtype}, "
          f"git {meta['git_rev']}, {args.repeats} repeats ({args.warmup} warmup), {extra}shapes "
          f"{', '.join(map(shape_str, args.shapes))}", flush=True)
    if args.device.type == "cuda":
        try:
            import triton
            tv = triton.__version__
        except Exception:  # noqa: BLE001
            tv = "not importable"
        print(f"  CUDA {torch.version.cuda}, triton {tv}, float32 matmul precision "
              f"{torch.get_float32_matmul_precision()!r}, do_bench {'on' if args.do_bench else 'off'}", flush=True)
    else:
        warn_if_busy(threads)
    return meta


def finish(rows: List[Dict[str, Any]], failures: Sequence[str], args: argparse.Namespace, meta: Mapping[str, Any],
           op: str, groups: Optional[Sequence[str]] = None,
           table: Optional[Callable[[Sequence[Mapping[str, Any]]], str]] = None,
           plot_path: Callable[[str, str], str] = lambda group, png: png) -> int:
    """main()'s closing: speedups, load average, table, CSV, plots, failure banner; the exit status.

    ``groups`` (default ``[op]``): the ``op`` values whose rows get their own speedups, table (headed
    by the group when it is not ``op``) and plot at ``plot_path(group, default PNG)``; ``table``:
    one table of all rows instead. ``op`` names the default PNG.
    """
    groups = list(groups or [op])
    parts = {g: [r for r in rows if r["op"] == g] for g in groups}
    for g in groups:  # fill_speedups matches rows by shape, mode and dtype only
        fill_speedups(parts[g])
    print(f"\n1-min load average at the end: {load_average():.2f}")
    if table:
        print(table(rows))
    else:
        for g in groups:
            if g != op:
                print(f"\n{g}")
            print(format_table(parts[g]))
    csv_path, png_path = default_paths(args, op, args.device)
    if not args.no_csv:
        print(f"\nCSV rows appended to {os.path.relpath(write_rows(csv_path, rows))}")
    for g in [] if args.no_plot else groups:
        where = meta["device"] if args.device.type == "cuda" else f"{meta['device']}, {meta['threads']} threads"
        title = f"{g} — {where}, {args.dtype}, torch {meta['torch_version']}"
        out = plot_rows(parts[g], plot_path(g, png_path), title)
        if out:
            print(f"plot written to {os.path.relpath(out)}")
    if failures:
        loud(f"{len(failures)} provider(s) disagree with eager:\n!!! " + "\n!!! ".join(failures))
        return 1
    return 0
