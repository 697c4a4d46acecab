"""Benchmark of the frequency loss (the op ``inpaint_fast::spectral_l1`` behind it).

The loss: ``mean |log1p|rfft2(pred, norm='ortho')| - log1p|rfft2(target, norm='ortho')||`` over the
(N, C, H, W//2+1) half spectrum, fp32 by default; gradients w.r.t. ``pred`` (the target is a plain
tensor, as in training). Providers, all computing that same number:

- ``eager``: the seed notebook's ``frequency_loss(x, y)`` (``tests/seed_notebook.py``, imported, not
  copied), called with the reference ``x = target`` first and ``y = pred`` second;
- ``compile``: ``torch.compile`` (default inductor, ``mode=None``, ``dynamic=False``) of that same
  seed function (inductor does not generate code for complex tensors: it falls back to eager kernels
  around the FFTs);
- ``cpu``: ``inpaint_fast.ops.spectral_l1.frequency_l1(pred, target)``: torch.fft.rfft2 of both
  images, the fused op (one pass over both spectra, loss and gradient), torch.fft's backward.

(``reference``, ``inpaint_fast.reference.frequency``, is the seed's formula again: not timed.)
Before timing, each provider's loss and gradient are checked against eager's (rtol 1e-5 in fp32); a
mismatch is printed loudly, noted in the CSV, and makes the exit status 1.

Minimal bytes counted for GB/s (E = bytes of pred = bytes of target): forward reads pred and target
(2E); backward writes grad_pred (E) and would at least read something of pred's size (2E); full
moves 3E. The FFTs make the real traffic several times that: % of the ``copy_`` roofline is low for
every provider and only comparable between them.

``--breakdown`` also times the parts of one forward + backward (rfft2 of both images, the post-FFT
part eager vs fused, torch.fft's backward of rfft2), to show what bounds the achievable speedup.

Run from the repository root: ``python benchmarks/bench_spectral_l1.py`` (``--quick`` for a smoke
run, ``--help`` for the options).
"""
from __future__ import annotations

import math
import os
import sys
from typing import Callable, Dict, List, Tuple

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402  (also puts the repository root on sys.path)

import torch  # noqa: E402

from inpaint_fast import _extension  # noqa: E402
from tests import seed_notebook  # noqa: E402

OP = "frequency_loss"
SHAPES = [(16, 3, 256, 256), (8, 3, 512, 512)]  # the target; larger planes, 2x the bytes
QUICK_SHAPES = [(2, 3, 64, 64)]
COPY = "__copy__"  # the roofline's case among the providers'
RTOL = {torch.float64: 1e-7, torch.float32: 1e-5, torch.float16: 1e-2, torch.bfloat16: 2e-2}

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def make_inputs(shape: Tuple[int, ...], dtype: torch.dtype, device: torch.device):
    """Image-like inputs in [0, 1]: a prediction and a target close to it."""
    g = torch.Generator().manual_seed(1234)
    target = torch.rand(shape, generator=g)
    pred = (target + 0.1 * torch.randn(shape, generator=g)).clamp(0, 1)
    return pred.to(dtype=dtype, device=device).requires_grad_(True), target.to(dtype=dtype, device=device)


def seed_eager(fn) -> LossFn:
    """The seed's argument order: reference (target) first, prediction second."""
    def call(pred, target):
        return fn(target, pred)
    return call


def ours() -> LossFn:
    from inpaint_fast.ops.spectral_l1 import frequency_l1

    def call(pred, target):
        return frequency_l1(pred, target)
    return call


def bytes_moved(mode: str, pred: torch.Tensor) -> int:
    e = common.nbytes(pred)
    return {"forward": 2 * e, "backward": 2 * e, "full": 3 * e}[mode]


def loss_and_grad(fn: LossFn, pred, target):
    loss = fn(pred, target)
    (grad,) = torch.autograd.grad(loss, (pred,))
    return loss.detach(), grad


def check(fn: LossFn, ref: Tuple[torch.Tensor, torch.Tensor], inputs, dtype) -> str:
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


def breakdown(shape, args) -> None:
    """Times the parts of one forward + backward; prints a table (not written to the CSV)."""
    from inpaint_fast.ops.spectral_l1 import spectral_l1
    device, dtype = args.device, args.torch_dtype
    pred, target = make_inputs(shape, dtype, device)
    zp = torch.fft.rfft2(pred.detach(), norm="ortho")
    zt = torch.fft.rfft2(target, norm="ortho")
    scale = 1.0 / zp.numel()
    zp_leaf = zp.clone().requires_grad_(True)

    def eager_post(z):  # the seed's formula after the FFT
        return (torch.log1p(z.abs()) - torch.log1p(zt.abs())).abs().mean()

    def fused_post(z):
        return spectral_l1(z, zt, scale, True, False)[0]

    def fft_graph():
        return torch.fft.rfft2(pred, norm="ortho")

    gz = torch.randn_like(zp)
    cases = {
        "rfft2 of pred and target (forward)": common.Case(
            lambda: (torch.fft.rfft2(pred, norm="ortho"), torch.fft.rfft2(target, norm="ortho"))),
        "rfft2 backward (torch.fft, pred only)": common.Case(
            lambda z: torch.autograd.grad(z, (pred,), gz), setup=fft_graph),
        "post-FFT eager: forward + backward": common.mode_case(eager_post, (zp_leaf,), (zp_leaf,), "full"),
        "post-FFT fused op: forward + backward": common.mode_case(fused_post, (zp_leaf,), (zp_leaf,), "full"),
        "post-FFT fused op: forward, no grad": common.Case(lambda: spectral_l1(zp, zt, scale, False, False)),
        "whole loss eager: forward + backward": common.mode_case(
            seed_eager(seed_notebook.frequency_loss), (pred, target), (pred,), "full"),
        "whole loss ours: forward + backward": common.mode_case(ours(), (pred, target), (pred,), "full"),
    }
    timings = common.time_cases(cases, device=device, warmup=args.warmup, repeats=args.repeats,
                                min_sample_ms=0.5 if args.quick else 2.0)
    print(f"\nbreakdown at {common.shape_str(shape)} {args.dtype} ({torch.get_num_threads()} threads): median ms [p20, p80]")
    for name, t in timings.items():
        print(f"  {name:42s} {t.median_ms:9.3f}  [{t.p20_ms:.3f}, {t.p80_ms:.3f}]")


def bench_shape(shape, args, meta, failures: List[str]) -> List[Dict]:
    device, dtype = args.device, args.torch_dtype
    pred, target = make_inputs(shape, dtype, device)
    inputs = (pred, target)

    providers: Dict[str, LossFn] = {"eager": seed_eager(seed_notebook.frequency_loss)}
    notes: Dict[str, str] = {}
    wanted = args.providers
    if wanted is None or "compile" in wanted:
        torch._dynamo.reset()  # a fresh static graph per shape

        def warm(compiled):
            fn = seed_eager(compiled)
            for _ in range(2):
                fn(*inputs)                      # forward (grad-recording)
                loss_and_grad(fn, *inputs)       # forward + backward
        compiled, err = common.compile_provider(seed_notebook.frequency_loss, warm, dynamic=False)
        if compiled is None:
            loud(f"torch.compile failed for {common.shape_str(shape)}: {err}")
            notes["compile"] = f"compile failed: {err}"
        else:
            providers["compile"] = seed_eager(compiled)
    if device.type == "cpu" and "cpu" in _extension.kernels("spectral_l1"):
        providers["cpu"] = ours()
    if wanted is not None:
        providers = {k: v for k, v in providers.items() if k in wanted or k == "eager"}

    ref = loss_and_grad(providers["eager"], *inputs)
    for name, fn in list(providers.items())[1:]:
        try:
            bad = check(fn, ref, inputs, dtype)
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
        moved = bytes_moved(mode, pred)
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


def add_arguments(p) -> None:
    p.add_argument("--breakdown", action="store_true",
                   help="also time the parts (FFTs, post-FFT eager vs fused, FFT backward) of each shape")


def main(argv=None) -> int:
    args = common.parse_args(__doc__.splitlines()[0], argv, add_arguments)
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
        if args.breakdown and "cpu" in _extension.kernels("spectral_l1"):
            breakdown(shape, args)
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
