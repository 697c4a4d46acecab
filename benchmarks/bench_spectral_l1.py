"""Benchmark of the frequency loss (the op ``inpaint_fast::spectral_l1`` behind it).

The loss: ``mean |log1p|rfft2(pred, norm='ortho')| - log1p|rfft2(target, norm='ortho')||`` over the
(N, C, H, W//2+1) half spectrum, fp32 by default; gradients w.r.t. ``pred`` (the target is a plain
tensor, as in training). Providers, all computing that same number:

- ``eager``: the notebook's ``frequency_loss(x, y)`` (``tests/notebook.py``, imported, not
  copied), called with the reference ``x = target`` first and ``y = pred`` second;
- ``compile``: ``torch.compile`` (default inductor, ``mode=None``, ``dynamic=False``) of that same
  notebook function (inductor does not generate code for complex tensors: it falls back to eager kernels
  around the FFTs);
- ``cpu``: the public ``inpaint_fast.frequency_loss(pred, target)`` (the function a user calls: argument
  checks, backend choice, then the ops layer's ``frequency_l1``) under ``inpaint_fast.use_backend('cpu')``:
  torch.fft.rfft2 of both images, the fused C++ op (one pass over both spectra, loss and gradient),
  torch.fft's backward;
- ``cuda``, ``triton`` (with ``--device cuda``): the same public call under ``use_backend('cuda')`` (the
  C++ op's CUDA kernel) or ``use_backend('triton')`` (``spectral_l1_triton``); the FFTs are cuFFT's
  either way. A backend without a ``spectral_l1`` kernel is skipped, with a note row (under
  ``use_backend`` the public function would run the reference for it);
- ``<backend>[op]`` (e.g. ``cpu[op]``; only when named in ``--providers``, e.g.
  ``--providers 'eager,cpu,cpu[op]'``): the ops layer beneath,
  ``inpaint_fast.ops.spectral_l1.frequency_l1(pred, target, backend=...)``, without the public
  function's checks: set beside the public row, it shows what those cost.

(``reference``, ``inpaint_fast.reference.frequency``, is the notebook's formula again: not timed.)
Before timing, each provider's loss and gradient are checked against eager's (rtol 1e-5 in fp32); a
mismatch is printed loudly, noted in the CSV, and makes the exit status 1.

Minimal bytes counted for GB/s (E = bytes of pred = bytes of target): forward reads pred and target
(2E); backward writes grad_pred (E) and would at least read something of pred's size (2E); full
moves 3E. The FFTs make the real traffic several times that: % of the ``copy_`` roofline is low for
every provider and only comparable between them.

Hand-over rows: the fused op computes the spectrum's gradient in its forward; the backward scales it
(a hand-over) and runs torch.fft's backward of rfft2. Eager's backward computes the spectrum's gradient
too, so the two 'backward' rows time unlike work: those of our compiled backends carry the note
``hand-over: gradient computed in the forward (of the spectrum; torch.fft's rfft2 backward still runs)``,
no GB/s, % roofline or speedups, and are not plotted. Compare ``full`` rows.

``--breakdown`` also times the parts of one forward + backward (rfft2 of both images, the post-FFT
part eager vs the fused op ``inpaint_fast.ops.spectral_l1.spectral_l1`` called directly, torch.fft's
backward of rfft2, and the whole loss: the notebook's vs the public ``frequency_loss``), to show what
bounds the achievable speedup.

Run from the repository root: ``python benchmarks/bench_spectral_l1.py`` (``--quick`` for a smoke
run, ``--device cuda`` on a GPU: 16x3x512x512 by default, ``--help`` for the options).
"""
from __future__ import annotations

import os
import sys
from typing import Callable, Dict, List, Tuple

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import contenders  # noqa: E402  (through records, also puts the repository root on sys.path)
import harness  # noqa: E402
import measure  # noqa: E402
import records  # noqa: E402

import torch  # noqa: E402

import inpaint_fast  # noqa: E402
from tests import notebook  # noqa: E402

OP = "frequency_loss"
SHAPES = [(16, 3, 256, 256), (8, 3, 512, 512)]  # the target; larger planes, 2x the bytes
QUICK_SHAPES = [(2, 3, 64, 64)]
GPU_SHAPES = [(16, 3, 512, 512)]  # issue 4's GPU shape
HANDOVER_DETAIL = "(of the spectrum; torch.fft's rfft2 backward still runs)"

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def make_inputs(shape: Tuple[int, ...], dtype: torch.dtype, device: torch.device):
    """Image-like inputs in [0, 1]: a prediction and a target close to it."""
    g = torch.Generator().manual_seed(1234)
    target = torch.rand(shape, generator=g)
    pred = (target + 0.1 * torch.randn(shape, generator=g)).clamp(0, 1)
    return pred.to(dtype=dtype, device=device).requires_grad_(True), target.to(dtype=dtype, device=device)


def notebook_eager(fn) -> LossFn:
    """The notebook's argument order: reference (target) first, prediction second."""
    def call(pred, target):
        return fn(target, pred)
    return call


def ours(backend: str = "cpu") -> LossFn:
    """The public ``inpaint_fast.frequency_loss`` on ``backend`` (the provider named ``backend``)."""
    def call(pred, target):
        with inpaint_fast.use_backend(backend):
            return inpaint_fast.frequency_loss(pred, target)
    return call


def ours_op(backend: str = "cpu") -> LossFn:
    """The ops-level entry function beneath it (the provider ``<backend>[op]``, only on request)."""
    from inpaint_fast.ops.spectral_l1 import frequency_l1

    def call(pred, target):
        return frequency_l1(pred, target, backend=backend)
    return call


def our_providers(backends: List[str], wanted) -> Dict[str, LossFn]:
    """``{backend: public call}``, plus ``{backend[op]: ops-level call}`` for those named in ``--providers``."""
    providers = {b: ours(b) for b in backends}
    providers.update({f"{b}[op]": ours_op(b) for b in backends if wanted and f"{b}[op]" in wanted})
    return providers


def bytes_moved(mode: str, pred: torch.Tensor) -> int:
    e = measure.nbytes(pred)
    return {"forward": 2 * e, "backward": 2 * e, "full": 3 * e}[mode]


def breakdown(shape, args, backend: str = "cpu") -> None:
    """Times the parts of one forward + backward on ``backend``; prints a table (not written to the CSV)."""
    from inpaint_fast.ops.spectral_l1 import spectral_l1
    device, dtype = args.device, args.torch_dtype
    pred, target = make_inputs(shape, dtype, device)
    zp = torch.fft.rfft2(pred.detach(), norm="ortho")
    zt = torch.fft.rfft2(target, norm="ortho")
    scale = 1.0 / zp.numel()
    zp_leaf = zp.clone().requires_grad_(True)

    def eager_post(z):  # the notebook's formula after the FFT
        return (torch.log1p(z.abs()) - torch.log1p(zt.abs())).abs().mean()

    def fused_post(z):
        return spectral_l1(z, zt, scale, True, False, backend)[0]

    def fft_graph():
        return torch.fft.rfft2(pred, norm="ortho")

    gz = torch.randn_like(zp)
    cases = {
        "rfft2 of pred and target (forward)": measure.Case(
            lambda: (torch.fft.rfft2(pred, norm="ortho"), torch.fft.rfft2(target, norm="ortho"))),
        "rfft2 backward (torch.fft, pred only)": measure.Case(
            lambda z: torch.autograd.grad(z, (pred,), gz), setup=fft_graph),
        "post-FFT eager: forward + backward": measure.mode_case(eager_post, (zp_leaf,), (zp_leaf,), "full"),
        "post-FFT fused op: forward + backward": measure.mode_case(fused_post, (zp_leaf,), (zp_leaf,), "full"),
        "post-FFT fused op: forward, no grad": measure.Case(lambda: spectral_l1(zp, zt, scale, False, False, backend)),
        "whole loss eager: forward + backward": measure.mode_case(
            notebook_eager(notebook.frequency_loss), (pred, target), (pred,), "full"),
        "whole loss public: forward + backward": measure.mode_case(ours(backend), (pred, target), (pred,), "full"),
    }
    timings = measure.time_cases(cases, device=device, warmup=args.warmup, repeats=args.repeats,
                                 min_sample_ms=0.5 if args.quick else 2.0)
    print(f"\nbreakdown at {records.shape_str(shape)} {args.dtype} ({backend} backend, {torch.get_num_threads()} "
          "threads): median ms [p20, p80]")
    for name, t in timings.items():
        print(f"  {name:42s} {t.median_ms:9.3f}  [{t.p20_ms:.3f}, {t.p80_ms:.3f}]")


def bench_shape(shape, args, meta, failures: List[str]) -> List[Dict]:
    inputs = make_inputs(shape, args.torch_dtype, args.device)
    backends, skipped = contenders.our_backends("spectral_l1", args.device, contenders.op_level_backends(args.providers))
    ours_ = our_providers(backends, args.providers)
    return contenders.bench_copy_roofline(OP, shape, inputs, notebook.frequency_loss, ours_,
                                          lambda mode: bytes_moved(mode, inputs[0]), args, meta, failures,
                                          wrap=notebook_eager, skipped=skipped, handover=True,
                                          handover_detail=HANDOVER_DETAIL)


def add_arguments(p) -> None:
    p.add_argument("--breakdown", action="store_true",
                   help="also time the parts (FFTs, post-FFT eager vs fused, FFT backward) of each shape")


def main(argv=None) -> int:
    args = harness.parse_args(__doc__.splitlines()[0], argv, add_arguments, shapes=(SHAPES, QUICK_SHAPES, GPU_SHAPES),
                              processes=True)
    meta = harness.header(OP, args)
    failures: List[str] = []

    def measure_rows() -> List[Dict]:
        rows: List[Dict] = []
        for shape in args.shapes:
            rows += bench_shape(shape, args, meta, failures)
            backends, _ = contenders.our_backends("spectral_l1", args.device,
                                                  contenders.op_level_backends(args.providers))
            if args.breakdown and backends:
                breakdown(shape, args, backends[0])
        return rows
    rows = harness.collect(args, failures, measure_rows, meta)
    return harness.finish(rows, failures, args, meta, OP)


if __name__ == "__main__":
    sys.exit(main())
