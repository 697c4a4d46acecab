"""Benchmark of ``reconstruction_loss`` (the op ``inpaint_fast::masked_error`` behind it).

The loss: ``6 * L1(hole) + 1 * L1(known)`` with a binary (N, 1, H, W) mask (1 = known), each term a
masked mean, fp32 by default. Providers, all computing that same number:

- ``eager``: the seed notebook's ``reconstruction_loss(x, y, mask)`` (``tests/seed_notebook.py``,
  imported, not copied), called with the reference ``x = target`` first and ``y = pred`` second;
- ``compile``: ``torch.compile`` (default inductor, ``mode=None``, ``dynamic=False`` so each shape
  gets its own static graph) of that same seed function;
- ``reference``: ``inpaint_fast.reconstruction_loss(pred, target, mask=mask)`` under
  ``use_backend('reference')`` (our pure-PyTorch path);
- ``cpu`` (on CPU) / ``cuda``, ``triton`` (on GPU): the same call on our compiled backend.

Before timing, each provider's loss and gradient w.r.t. ``pred`` are checked against eager's
(loss rtol 1e-5 in fp32); a mismatch is printed loudly, noted in the CSV, and makes the exit status 1.

Minimal bytes counted for GB/s (E = bytes of pred = bytes of target, M = bytes of the mask):
forward reads pred, target and mask once (2E + M); backward is a standalone gradient pass that
reads them once and writes grad_pred once (3E + M); full (forward + backward) fused into one pass
(the design's kernel contract) also moves 3E + M. The roofline is a measured ``copy_`` moving
the same bytes, timed interleaved with the providers (see ``common.copy_case``).

Run from the repository root: ``python benchmarks/bench_masked_error.py`` (``--quick`` for a
smoke run, ``--help`` for the options).
"""
from __future__ import annotations

import math
import os
import sys
from typing import Callable, Dict, List, Tuple

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402  (also puts the repository root on sys.path)

import torch  # noqa: E402

import inpaint_fast  # noqa: E402
from inpaint_fast import _backend  # noqa: E402
from tests import seed_notebook  # noqa: E402

OP = "reconstruction_loss"
SHAPES = [(8, 3, 256, 256), (16, 3, 512, 512)]  # in cache-ish; far beyond the last-level cache
QUICK_SHAPES = [(2, 3, 64, 64)]
LAMBDA_HOLE, LAMBDA_VALID = 6.0, 1.0
COPY = "__copy__"  # the roofline's case among the providers'
RTOL = {torch.float64: 1e-7, torch.float32: 1e-5, torch.float16: 1e-2, torch.bfloat16: 2e-2}

LossFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


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


def make_inputs(shape: Tuple[int, ...], dtype: torch.dtype, device: torch.device):
    g = torch.Generator().manual_seed(1234)
    pred = torch.randn(shape, generator=g).to(dtype=dtype, device=device).requires_grad_(True)
    target = torch.randn(shape, generator=g).to(dtype=dtype, device=device)
    mask = box_mask(shape[0], shape[2], shape[3], dtype, device)
    return pred, target, mask


def seed_eager(fn) -> LossFn:
    """The seed's argument order: reference (target) first, prediction second."""
    def call(pred, target, mask):
        return fn(target, pred, mask, LAMBDA_HOLE, LAMBDA_VALID)
    return call


def ours(backend: str) -> LossFn:
    def call(pred, target, mask):
        with inpaint_fast.use_backend(backend):
            return inpaint_fast.reconstruction_loss(pred, target, mask=mask, lambda_hole=LAMBDA_HOLE,
                                                    lambda_valid=LAMBDA_VALID, loss="l1")
    return call


def our_backends(device: torch.device) -> List[str]:
    """Our compiled backends that can run on ``device`` and have a masked_error kernel."""
    avail = _backend.availability()
    names = ["cpu"] if device.type == "cpu" else ["cuda", "triton"]
    return [b for b in names if avail[b] is None and b in inpaint_fast._extension.kernels("masked_error")]


def bytes_moved(mode: str, pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> int:
    """Minimal bytes: forward reads pred, target, mask; backward/full also write grad_pred once."""
    read = common.nbytes(pred) + common.nbytes(target) + common.nbytes(mask)
    return read if mode == "forward" else read + common.nbytes(pred)


def loss_and_grad(fn: LossFn, pred, target, mask):
    loss = fn(pred, target, mask)
    (grad,) = torch.autograd.grad(loss, (pred,))
    return loss.detach(), grad


def check(name: str, fn: LossFn, ref: Tuple[torch.Tensor, torch.Tensor], inputs, dtype) -> str:
    """'' when fn's loss and gradient match eager's, else a description of the mismatch."""
    loss, grad = loss_and_grad(fn, *inputs)
    rtol = RTOL.get(dtype, 1e-5)
    problems = []
    if not torch.allclose(loss.double(), ref[0].double(), rtol=rtol, atol=0.0):
        problems.append(f"loss {loss.item():.9g} != eager {ref[0].item():.9g} (rtol {rtol:g})")
    gscale = ref[1].abs().max().item()
    if not torch.allclose(grad.double(), ref[1].double(), rtol=rtol, atol=rtol * gscale):
        err = (grad.double() - ref[1].double()).abs().max().item()
        problems.append(f"grad max abs err {err:.3g} (max |grad| {gscale:.3g})")
    return "; ".join(problems)


def loud(msg: str) -> None:
    bar = "!" * 100
    print(f"\n{bar}\n!!! {msg}\n{bar}\n", file=sys.stderr, flush=True)


def bench_shape(shape, args, meta, failures: List[str]) -> List[Dict]:
    device, dtype = args.device, args.torch_dtype
    pred, target, mask = make_inputs(shape, dtype, device)
    inputs = (pred, target, mask)

    providers: Dict[str, LossFn] = {"eager": seed_eager(seed_notebook.reconstruction_loss)}
    notes: Dict[str, str] = {}
    wanted = args.providers
    if wanted is None or "compile" in wanted:
        torch._dynamo.reset()  # a fresh static graph per shape

        def warm(compiled):
            fn = seed_eager(compiled)
            for _ in range(2):
                fn(*inputs)                      # forward (grad-recording)
                loss_and_grad(fn, *inputs)       # forward + backward
        compiled, err = common.compile_provider(seed_notebook.reconstruction_loss, warm, dynamic=False)
        if compiled is None:
            loud(f"torch.compile failed for {common.shape_str(shape)}: {err}")
            notes["compile"] = f"compile failed: {err}"
        else:
            providers["compile"] = seed_eager(compiled)
    providers["reference"] = ours("reference")
    for b in our_backends(device):
        providers[b] = ours(b)
    if wanted is not None:
        providers = {k: v for k, v in providers.items() if k in wanted or k == "eager"}

    ref = loss_and_grad(providers["eager"], *inputs)
    for name, fn in list(providers.items())[1:]:
        try:
            bad = check(name, fn, ref, inputs, dtype)
        except Exception as exc:  # noqa: BLE001
            bad = f"raised {type(exc).__name__}: {exc}"
            del providers[name]
        if bad:
            msg = f"MISMATCH vs eager: {name} at {common.shape_str(shape)} {args.dtype}: {bad}"
            loud(msg)
            failures.append(msg)
            notes[name] = msg

    rows = []
    for mode in args.modes:
        cases = {name: common.mode_case(fn, inputs, (pred,), mode) for name, fn in providers.items()}
        moved = bytes_moved(mode, pred, target, mask)
        cases[COPY], copied = common.copy_case(moved, device=device)  # the roofline, timed interleaved
        timings = common.time_cases(cases, device=device, warmup=args.warmup, repeats=args.repeats,
                                    min_sample_ms=0.5 if args.quick else 2.0)
        roof = common.gbps(copied, timings.pop(COPY).median_ms)
        del cases[COPY]
        for name in list(providers) + [n for n in notes if n not in providers]:
            row = {"op": OP, "shape": common.shape_str(shape), "dtype": args.dtype, "provider": name, "mode": mode,
                   "roofline_gbps": roof, "note": notes.get(name, ""), **meta}
            if name in providers:
                t = timings[name]
                peak = common.peak_memory_bytes(cases[name].fn, setup=cases[name].setup, device=device)
                row.update(median_ms=t.median_ms, p20_ms=t.p20_ms, p80_ms=t.p80_ms, gbps=common.gbps(moved, t.median_ms),
                           peak_mem_mb=peak / 2**20)
                row["pct_roofline"] = 100.0 * row["gbps"] / roof
            else:
                row.update(median_ms=math.nan, p20_ms=math.nan, p80_ms=math.nan, gbps=math.nan, pct_roofline=math.nan,
                           peak_mem_mb=math.nan)
            rows.append(row)
        print(f"  {common.shape_str(shape)} {mode}: done (copy roofline {roof:.1f} GB/s for {moved / 2**20:.1f} MiB)",
              flush=True)
    return rows


def main(argv=None) -> int:
    args = common.parse_args(__doc__.splitlines()[0], argv)
    threads = common.set_threads(args.threads)
    device = args.device
    shapes = args.shapes or (QUICK_SHAPES if args.quick else SHAPES)
    meta = common.run_metadata(device)
    print(f"{OP}: device {meta['device']!r}, torch {meta['torch_version']}, {threads} threads, {args.dtype}, "
          f"git {meta['git_rev']}, {args.repeats} repeats ({args.warmup} warmup), shapes "
          f"{', '.join(map(common.shape_str, shapes))}", flush=True)
    common.warn_if_busy(threads)
    failures: List[str] = []
    rows: List[Dict] = []
    for shape in shapes:
        rows += bench_shape(shape, args, meta, failures)
    common.fill_speedups(rows)
    print(f"\n1-min load average at the end: {common.load_average():.2f}")
    print(common.format_table(rows))
    csv_path, png_path = common.default_paths(args, OP, device)
    if not args.no_csv:
        print(f"\nCSV rows appended to {os.path.relpath(common.write_rows(csv_path, rows))}")
    if not args.no_plot:
        title = f"{OP} — {meta['device']}, {threads} threads, {args.dtype}, torch {meta['torch_version']}"
        out = common.plot_rows(rows, png_path, title)
        if out:
            print(f"plot written to {os.path.relpath(out)}")
    if failures:
        loud(f"{len(failures)} provider(s) disagree with eager:\n!!! " + "\n!!! ".join(failures))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
