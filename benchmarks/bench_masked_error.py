"""Benchmark of ``reconstruction_loss`` (the op ``inpaint_fast::masked_error`` behind it).

The loss: ``6 * L1(hole) + 1 * L1(known)`` with a binary (N, 1, H, W) mask (1 = known), each term a
masked mean, fp32 by default. Providers, all computing that same number:

- ``eager``: the notebook's ``reconstruction_loss(x, y, mask)`` (``tests/notebook.py``,
  imported, not copied), called with the reference ``x = target`` first and ``y = pred`` second;
- ``compile``: ``torch.compile`` (default inductor, ``mode=None``, ``dynamic=False`` so each shape
  gets its own static graph) of that same notebook function;
- ``reference``: ``inpaint_fast.reconstruction_loss(pred, target, mask=mask)`` under
  ``use_backend('reference')`` (our pure-PyTorch path);
- ``cpu`` (on CPU) / ``cuda``, ``triton`` (on GPU): the same call on our compiled backend
  (``use_backend(name)``); a backend without a ``masked_error`` kernel is skipped, with a note row.

Before timing, each provider's loss and gradient w.r.t. ``pred`` are checked against eager's
(loss rtol 1e-5 in fp32); a mismatch is printed loudly, noted in the CSV, and makes the exit status 1.

Minimal bytes counted for GB/s (E = bytes of pred = bytes of target, M = bytes of the mask):
forward reads pred, target and mask once (2E + M); backward is a standalone gradient pass that
reads them once and writes grad_pred once (3E + M); full (forward + backward) fused into one pass
(the design's kernel contract) also moves 3E + M. The roofline is a measured ``copy_`` moving
the same bytes, timed interleaved with the providers (see ``measure.copy_case``).

Hand-over rows: the fused op computes the gradient in its forward and saves it; its backward only
hands it over (scaled by ``grad_output`` in place, nothing done for 1). So the 'backward' rows of our
compiled backends (``cpu``, ``cuda``, ``triton``) time that hand-over, not the gradient pass eager's
backward does: they carry the note ``hand-over: gradient computed in the forward``, no GB/s, % roofline
or speedups, and are not plotted (no plot has a backward panel). Compare ``full`` rows for the whole cost.

Run from the repository root: ``python benchmarks/bench_masked_error.py`` (``--quick`` for a
smoke run, ``--device cuda`` on a GPU: 16x3x1024x1024 by default, ``--help`` for the options).
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
from tests import notebook  # noqa: E402

OP = "reconstruction_loss"
SHAPES = [(8, 3, 256, 256), (16, 3, 512, 512)]  # in cache-ish; far beyond the last-level cache
QUICK_SHAPES = [(2, 3, 64, 64)]
GPU_SHAPES = [(16, 3, 1024, 1024)]  # issue 4's GPU target (200 MB per fp32 tensor, far beyond the L2)
LAMBDA_HOLE, LAMBDA_VALID = 6.0, 1.0

LossFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def make_inputs(shape: Tuple[int, ...], dtype: torch.dtype, device: torch.device):
    g = torch.Generator().manual_seed(1234)
    pred = torch.randn(shape, generator=g).to(dtype=dtype, device=device).requires_grad_(True)
    target = torch.randn(shape, generator=g).to(dtype=dtype, device=device)
    mask = contenders.box_mask(shape[0], shape[2], shape[3], dtype, device)
    return pred, target, mask


def notebook_eager(fn) -> LossFn:
    """The notebook's argument order: reference (target) first, prediction second."""
    def call(pred, target, mask):
        return fn(target, pred, mask, LAMBDA_HOLE, LAMBDA_VALID)
    return call


def ours(backend: str) -> LossFn:
    def call(pred, target, mask):
        with inpaint_fast.use_backend(backend):
            return inpaint_fast.reconstruction_loss(pred, target, mask=mask, lambda_hole=LAMBDA_HOLE,
                                                    lambda_valid=LAMBDA_VALID, loss="l1")
    return call


def our_backends(device: torch.device, wanted=None) -> Tuple[List[str], Dict[str, str]]:
    """Our compiled backends that can run on ``device`` with a masked_error kernel, and skip notes."""
    return contenders.our_backends("masked_error", device, wanted)


def bytes_moved(mode: str, pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> int:
    """Minimal bytes: forward reads pred, target, mask; backward/full also write grad_pred once."""
    read = measure.nbytes(pred) + measure.nbytes(target) + measure.nbytes(mask)
    return read if mode == "forward" else read + measure.nbytes(pred)


def bench_shape(shape, args, meta, failures: List[str]) -> List[Dict]:
    inputs = make_inputs(shape, args.torch_dtype, args.device)
    backends, skipped = our_backends(args.device, args.providers)
    ours_ = {b: ours(b) for b in ["reference"] + backends}
    return contenders.bench_copy_roofline(OP, shape, inputs, notebook.reconstruction_loss, ours_,
                                          lambda mode: bytes_moved(mode, *inputs), args, meta, failures,
                                          wrap=notebook_eager, skipped=skipped, handover=True)


def main(argv=None) -> int:
    args = harness.parse_args(__doc__.splitlines()[0], argv, shapes=(SHAPES, QUICK_SHAPES, GPU_SHAPES), processes=True)
    meta = harness.header(OP, args)
    failures: List[str] = []
    rows = harness.collect(args, failures, lambda: [row for shape in args.shapes
                                                    for row in bench_shape(shape, args, meta, failures)], meta)
    return harness.finish(rows, failures, args, meta, OP)


if __name__ == "__main__":
    sys.exit(main())
