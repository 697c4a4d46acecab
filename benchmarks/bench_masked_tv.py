"""Benchmark of ``total_variation`` over a mask region (the op ``inpaint_fast::masked_tv`` behind it).

The loss: anisotropic TV of ``pred`` (p = 1 by default) over a region of a binary (N, 1, H, W) mask
(1 = known; per image a random H/2 x W/2 hole), each direction normalised by its pair-weight area
(the notebook's ``tv_loss``), fp32 by default. ``--regions`` picks the region(s):

- ``hole`` (default): pairs inside the hole, the notebook's ``tv_loss(pred, 1 - mask)``;
- ``hole_dilated``: pairs inside the hole grown by one pixel (the PConv paper's region P),
  ``tv_loss(pred, dilate(1 - mask))`` with ``inpaint_fast.reference.tv.dilate`` (3x3 max pool).

Providers, all computing that same number:

- ``eager``: the notebook's ``tv_loss`` (``tests/notebook.py``, imported, not copied) on
  the region weight computed in the timed call (``1 - mask``, or its dilation);
- ``compile``: ``torch.compile`` (default inductor, ``mode=None``, ``dynamic=False``) of that same
  function;
- ``cpu``: the public ``inpaint_fast.total_variation(pred, mask=mask, region=..., p=1)`` (the function a
  user calls: argument checks, backend choice, the fused op) under ``inpaint_fast.use_backend('cpu')``:
  the C++ op;
- ``cuda``, ``triton`` (with ``--device cuda``): the same public call under ``use_backend('cuda')`` (the
  C++ op, whose CUDA kernel the dispatcher picks) or ``use_backend('triton')`` (``masked_tv_triton``);
  a backend without a ``masked_tv`` kernel is skipped, with a note row;
- ``<backend>[op]`` (e.g. ``cpu[op]``; only when named in ``--providers``, e.g.
  ``--providers 'eager,cpu,cpu[op]'``): the ops layer beneath, the entry function
  ``inpaint_fast.ops.masked_tv.masked_tv(pred, mask, mask_is_hole=False, region=..., p=1,
  normalize='mask', eps=1e-8, backend=...)``, without the public function's checks: set beside the
  public row, it shows what those cost.

(``reference``, our pure-PyTorch path, is the notebook's formula itself here, so it is not timed apart.)

Before timing, each provider's loss and gradient w.r.t. ``pred`` are checked against eager's (rtol
1e-5 in fp32); a mismatch is printed loudly, noted in the CSV, and makes the exit status 1.

Minimal bytes counted for GB/s (E = bytes of pred, M = bytes of the mask): forward reads pred and
the mask once (E + M); backward (a standalone gradient pass) and full (forward + backward, the
fused op's single pass) read them once and write the gradient once (2E + M). The roofline is a
measured ``copy_`` moving the same bytes, timed interleaved with the providers.

Hand-over rows: the fused op computes the gradient in its forward; its backward only hands it over. The
'backward' rows of our compiled backends (``cpu``, ``cuda``, ``triton``, ``<backend>[op]``) carry the note
``hand-over: gradient computed in the forward``, no GB/s, % roofline or speedups, and are not plotted.

Eager baseline: for ``hole`` the notebook's own ``tv_loss(pred, 1 - mask)``; for ``hole_dilated`` the
notebook has no dilated region, so its ``tv_loss`` gets the weight ``inpaint_fast.reference.tv.dilate(1 - mask)``.

Run from the repository root: ``python benchmarks/bench_masked_tv.py`` (``--quick`` for a smoke
run, ``--regions hole,hole_dilated`` for both regions, ``--device cuda`` on a GPU: 16x3x1024x1024 by
default, ``--help`` for the options).
"""
from __future__ import annotations

import os
import sys
from typing import Callable, Dict, List, Tuple

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import contenders  # noqa: E402  (through records, also puts the repository root on sys.path)
import harness  # noqa: E402
import measure  # noqa: E402

import torch  # noqa: E402

import inpaint_fast  # noqa: E402
from inpaint_fast.reference import tv as ref_tv  # noqa: E402
from tests import notebook  # noqa: E402

OP = "masked_tv"
SHAPES = [(8, 3, 256, 256), (16, 3, 512, 512)]  # in cache-ish; far beyond the last-level cache
QUICK_SHAPES = [(2, 3, 64, 64)]
GPU_SHAPES = [(16, 3, 1024, 1024)]  # issue 4's GPU target
REGIONS = ("hole", "hole_dilated")

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def make_inputs(shape: Tuple[int, ...], dtype: torch.dtype, device: torch.device):
    g = torch.Generator().manual_seed(1234)
    pred = torch.randn(shape, generator=g).to(dtype=dtype, device=device).requires_grad_(True)
    mask = contenders.box_mask(shape[0], shape[2], shape[3], dtype, device)
    return pred, mask


def notebook_tv(region: str) -> LossFn:
    """The notebook's tv_loss over the region of the known mask, the weight computed inside the call."""
    if region == "hole":
        def tv_hole(pred, mask):
            return notebook.tv_loss(pred, 1 - mask)
        return tv_hole

    def tv_hole_dilated(pred, mask):
        return notebook.tv_loss(pred, ref_tv.dilate(1 - mask))
    return tv_hole_dilated


def ours(region: str, backend: str = "cpu", p: int = 1) -> LossFn:
    """The public ``inpaint_fast.total_variation`` on ``backend`` (the provider named ``backend``)."""
    def call(pred, mask):
        with inpaint_fast.use_backend(backend):
            return inpaint_fast.total_variation(pred, mask=mask, region=region, p=p)
    return call


def ours_op(region: str, backend: str = "cpu", p: int = 1) -> LossFn:
    """The ops-level entry function beneath it (the provider ``<backend>[op]``, only on request)."""
    from inpaint_fast.ops.masked_tv import masked_tv

    def call(pred, mask):
        return masked_tv(pred, mask, mask_is_hole=False, region=region, p=p, normalize="mask", eps=1e-8,
                         backend=backend)
    return call


def our_providers(region: str, backends: List[str], wanted) -> Dict[str, LossFn]:
    """``{backend: public call}``, plus ``{backend[op]: ops-level call}`` for those named in ``--providers``."""
    providers = {b: ours(region, b) for b in backends}
    providers.update({f"{b}[op]": ours_op(region, b) for b in backends if wanted and f"{b}[op]" in wanted})
    return providers


def bytes_moved(mode: str, pred: torch.Tensor, mask: torch.Tensor) -> int:
    """Minimal bytes: forward reads pred and mask; backward/full also write the gradient once."""
    read = measure.nbytes(pred) + measure.nbytes(mask)
    return read if mode == "forward" else read + measure.nbytes(pred)


def bench_shape(shape, region: str, args, meta, failures: List[str]) -> List[Dict]:
    inputs = make_inputs(shape, args.torch_dtype, args.device)
    backends, skipped = contenders.our_backends("masked_tv", args.device, contenders.op_level_backends(args.providers))
    ours_ = our_providers(region, backends, args.providers)
    return contenders.bench_copy_roofline(f"{OP}[{region}]", shape, inputs, notebook_tv(region), ours_,
                                          lambda mode: bytes_moved(mode, *inputs), args, meta, failures, detail=region,
                                          skipped=skipped, handover=True)


def region_png(group: str, png: str) -> str:
    """One figure per region: the default PNG for the hole, ``<png>_<region>.png`` for the others."""
    region = group[len(OP) + 1:-1]
    root, ext = os.path.splitext(png)
    return png if region == "hole" else f"{root}_{region}{ext or '.png'}"  # after the dtype suffix, if any


def add_arguments(p) -> None:
    p.add_argument("--regions", default="hole",
                   help="comma-separated subset of " + ",".join(REGIONS) + " (default hole)")


def main(argv=None) -> int:
    args = harness.parse_args(__doc__.splitlines()[0], argv, add_arguments, shapes=(SHAPES, QUICK_SHAPES, GPU_SHAPES),
                              processes=True)
    regions = [r.strip() for r in args.regions.split(",") if r.strip()]
    bad = [r for r in regions if r not in REGIONS]
    if bad:
        raise SystemExit(f"unknown region(s) {bad}; choose from {list(REGIONS)}")
    meta = harness.header(OP, args, extra=f"regions {', '.join(regions)}, ")
    failures: List[str] = []
    rows = harness.collect(args, failures, lambda: [row for region in regions for shape in args.shapes
                                                    for row in bench_shape(shape, region, args, meta, failures)], meta)
    return harness.finish(rows, failures, args, meta, OP, groups=[f"{OP}[{r}]" for r in regions],
                          plot_path=region_png)


if __name__ == "__main__":
    sys.exit(main())
