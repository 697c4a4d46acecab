"""Host overhead of each public loss: tiny inputs (1x3x8x8, 1 thread), so that the kernels cost nothing.

What is timed is what a training step pays per loss call on the host: argument checks, backend choice,
op dispatch, autograd bookkeeping. Per loss (the CSV's ``op`` is ``overhead[<loss>]``), providers:

- ``eager``: the code of *Loss Functions for Image Inpainting* (``tests/notebook.py``) for the same
  number: ``reconstruction_loss``, ``l1_loss`` / ``l2_loss`` (masked_l1 / masked_l2 over the known
  pixels), ``tv_loss`` with the hole's pair masks (total_variation), ``frequency_loss``, ``gram_matrix``,
  the style distance of one feature map (style_loss with an identity extractor); for ``q_sample``, which
  the notebook writes inline, the reference ``inpaint_fast.reference.diffusion.q_sample``;
- ``compile``: ``torch.compile`` of that same function (``dynamic=False``);
- ``ours``: the public function (``inpaint_fast.<loss>``) with its default backend.

Modes: ``forward`` (grad recording on) and ``full`` (forward + backward). Values and gradients are checked
against eager first. Run: ``python benchmarks/bench_overhead.py`` (``--quick`` for a smoke run).
"""
from __future__ import annotations

import math
import os
import sys
from typing import Callable, Dict, List, Tuple

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import contenders  # noqa: E402  (through records, also puts the repository root on sys.path)
import harness  # noqa: E402
import measure  # noqa: E402
import records  # noqa: E402

import torch  # noqa: E402

import inpaint_fast as IF  # noqa: E402
from inpaint_fast.reference import diffusion as ref_diffusion  # noqa: E402
from tests import notebook  # noqa: E402

OP = "overhead"
SHAPES = [(1, 3, 8, 8)]
NUM_STEPS = 1000


def losses(shape: Tuple[int, ...], dtype: torch.dtype) -> Dict[str, Tuple[Callable, Callable, tuple]]:
    """loss name -> (eager, ours, inputs); inputs[0] is the prediction (requires grad)."""
    g = torch.Generator().manual_seed(0)
    n, c, h, w = shape
    pred = torch.rand(shape, generator=g, dtype=dtype).requires_grad_()
    target = torch.rand(shape, generator=g, dtype=dtype)
    mask = contenders.box_mask(n, h, w, dtype, torch.device("cpu"))
    t = torch.randint(0, NUM_STEPS, (n,), generator=g)
    abar = ref_diffusion.alphas_cumprod(ref_diffusion.linear_betas(NUM_STEPS)).to(dtype)
    noise = torch.randn(shape, generator=g, dtype=dtype)

    def notebook_style(p, f):
        return (notebook.gram_matrix(p) - notebook.gram_matrix(f.detach())).abs().mean()

    identity = (lambda z: [z])  # noqa: E731
    return {
        "reconstruction_loss": (lambda p, x, m: notebook.reconstruction_loss(x, p, m),
                                lambda p, x, m: IF.reconstruction_loss(p, x, mask=m), (pred, target, mask)),
        "masked_l1": (lambda p, x, m: notebook.l1_loss(x, p, m),
                      lambda p, x, m: IF.masked_l1(p, x, mask=m, region="known"), (pred, target, mask)),
        "masked_l2": (lambda p, x, m: notebook.l2_loss(x, p, m),
                      lambda p, x, m: IF.masked_l2(p, x, mask=m, region="known"), (pred, target, mask)),
        "total_variation": (lambda p, m: notebook.tv_loss(p, 1 - m), lambda p, m: IF.total_variation(p, mask=m),
                            (pred, mask)),
        "frequency_loss": (lambda p, x: notebook.frequency_loss(x, p), lambda p, x: IF.frequency_loss(p, x),
                           (pred, target)),
        "style_loss": (notebook_style, lambda p, f: IF.style_loss(p, f, extractor=identity), (pred, target)),
        "gram_matrix": (lambda p: notebook.gram_matrix(p).sum(), lambda p: IF.gram_matrix(p).sum(), (pred,)),
        "q_sample": (lambda x, z: ref_diffusion.q_sample(x, t, z, abar).sum(),
                     lambda x, z: IF.functional.diffusion.q_sample(x, t, z, abar).sum(), (pred, noise)),
    }


def no_bandwidth(row, roof_ms) -> Dict[str, float]:
    return {"gbps": math.nan, "pct_roofline": math.nan}


def bench_shape(shape, args, meta, failures: List[str]) -> List[Dict]:
    rows: List[Dict] = []
    where = records.shape_str(shape)
    idle = measure.Case(lambda: None)  # time_rows interleaves a reference case; here an empty call
    for name, (eager, ours, inputs) in losses(shape, args.torch_dtype).items():
        op = f"{OP}[{name}]"
        providers, notes = contenders.make_providers(eager, {"ours": ours}, inputs, args, f"{name} {where}")
        contenders.check_providers(providers, notes, inputs, args, failures, f"{name} {where} {args.dtype}")
        base = {"op": op, "shape": where, "dtype": args.dtype, "roofline_gbps": math.nan, **meta}
        for mode in args.modes:
            mode_rows, _ = contenders.time_rows(providers, notes, inputs, mode, args, idle, base, no_bandwidth)
            rows += mode_rows
        print(f"  {name}: done", flush=True)
    return rows


def table(rows) -> str:
    lines = [f"{'loss':22s} {'mode':8s} {'eager us':>9s} {'compile us':>11s} {'ours us':>8s} "
             f"{'ours/eager':>10s} {'ours/compile':>12s}"]
    by = {(r["op"], r["mode"], r["provider"]): r["median_ms"] * 1e3 for r in rows}
    for op, mode in dict.fromkeys((r["op"], r["mode"]) for r in rows):
        e, c, o = (by.get((op, mode, p), math.nan) for p in ("eager", "compile", "ours"))
        lines.append(f"{op[len(OP) + 1:-1]:22s} {mode:8s} {e:9.1f} {c:11.1f} {o:8.1f} {o / e:10.2f} {o / c:12.2f}")
    return "\n".join(lines)


def main(argv=None) -> int:
    args = harness.parse_args(__doc__.splitlines()[0], argv, shapes=(SHAPES, SHAPES), threads=1)
    args.modes = [m for m in args.modes if m != "backward"]  # forward and forward + backward
    meta = harness.header(OP, args)
    failures: List[str] = []
    rows: List[Dict] = []
    for shape in args.shapes:
        rows += bench_shape(shape, args, meta, failures)
    args.no_plot = True  # a table, not a plot: one tiny shape
    groups = list(dict.fromkeys(r["op"] for r in rows))
    return harness.finish(rows, failures, args, meta, OP, groups=groups, table=table)


if __name__ == "__main__":
    sys.exit(main())
