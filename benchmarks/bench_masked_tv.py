"""Benchmark of masked total variation (the op ``inpaint_fast::masked_tv``).

The loss: anisotropic TV of ``pred`` (p = 1 by default) over a region of a binary (N, 1, H, W) mask
(1 = known; per image a random H/2 x W/2 hole), each direction normalised by its pair-weight area
(the seed's ``tv_loss``), fp32 by default. ``--regions`` picks the region(s):

- ``hole`` (default): pairs inside the hole, the seed's ``tv_loss(pred, 1 - mask)``;
- ``hole_dilated``: pairs inside the hole grown by one pixel (the PConv paper's region P),
  ``tv_loss(pred, dilate(1 - mask))`` with ``inpaint_fast.reference.tv.dilate`` (3x3 max pool).

Providers, all computing that same number:

- ``eager``: the seed notebook's ``tv_loss`` (``tests/seed_notebook.py``, imported, not copied) on
  the region weight computed in the timed call (``1 - mask``, or its dilation);
- ``compile``: ``torch.compile`` (default inductor, ``mode=None``, ``dynamic=False``) of that same
  function;
- ``cpu``: ``inpaint_fast.ops.masked_tv.masked_tv(pred, mask, mask_is_hole=False, region=...)``, the
  fused C++ op through its Python entry function.

(``reference``, our pure-PyTorch path, is the seed's formula itself here, so it is not timed apart.)

Before timing, each provider's loss and gradient w.r.t. ``pred`` are checked against eager's (rtol
1e-5 in fp32); a mismatch is printed loudly, noted in the CSV, and makes the exit status 1.

Minimal bytes counted for GB/s (E = bytes of pred, M = bytes of the mask): forward reads pred and
the mask once (E + M); backward (a standalone gradient pass) and full (forward + backward, the
fused op's single pass) read them once and write the gradient once (2E + M). The roofline is a
measured ``copy_`` moving the same bytes, timed interleaved with the providers.

Run from the repository root: ``python benchmarks/bench_masked_tv.py`` (``--quick`` for a smoke
run, ``--regions hole,hole_dilated`` for both regions, ``--help`` for the options).
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
from inpaint_fast.reference import tv as ref_tv  # noqa: E402
from tests import seed_notebook  # noqa: E402

OP = "masked_tv"
SHAPES = [(8, 3, 256, 256), (16, 3, 512, 512)]  # in cache-ish; far beyond the last-level cache
QUICK_SHAPES = [(2, 3, 64, 64)]
REGIONS = ("hole", "hole_dilated")
COPY = "__copy__"  # the roofline's case among the providers'
RTOL = {torch.float64: 1e-7, torch.float32: 1e-5, torch.float16: 1e-2, torch.bfloat16: 2e-2}

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


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
    mask = box_mask(shape[0], shape[2], shape[3], dtype, device)
    return pred, mask


def seed_tv(region: str) -> LossFn:
    """The seed's tv_loss over the region of the known mask, the weight computed inside the call."""
    if region == "hole":
        def tv_hole(pred, mask):
            return seed_notebook.tv_loss(pred, 1 - mask)
        return tv_hole

    def tv_hole_dilated(pred, mask):
        return seed_notebook.tv_loss(pred, ref_tv.dilate(1 - mask))
    return tv_hole_dilated


def ours(region: str, p: int = 1) -> LossFn:
    from inpaint_fast.ops.masked_tv import masked_tv

    def call(pred, mask):
        return masked_tv(pred, mask, mask_is_hole=False, region=region, p=p, normalize="mask", eps=1e-8)
    return call


def bytes_moved(mode: str, pred: torch.Tensor, mask: torch.Tensor) -> int:
    """Minimal bytes: forward reads pred and mask; backward/full also write the gradient once."""
    read = common.nbytes(pred) + common.nbytes(mask)
    return read if mode == "forward" else read + common.nbytes(pred)


def loss_and_grad(fn: LossFn, pred, mask):
    loss = fn(pred, mask)
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


def bench_shape(shape, region: str, args, meta, failures: List[str]) -> List[Dict]:
    device, dtype = args.device, args.torch_dtype
    pred, mask = make_inputs(shape, dtype, device)
    inputs = (pred, mask)
    op_name = f"{OP}[{region}]"
    eager_fn = seed_tv(region)

    providers: Dict[str, LossFn] = {"eager": eager_fn}
    notes: Dict[str, str] = {}
    wanted = args.providers
    if wanted is None or "compile" in wanted:
        torch._dynamo.reset()  # a fresh static graph per shape

        def warm(compiled):
            for _ in range(2):
                compiled(*inputs)                     # forward (grad-recording)
                loss_and_grad(compiled, *inputs)      # forward + backward
        compiled, err = common.compile_provider(eager_fn, warm, dynamic=False)
        if compiled is None:
            loud(f"torch.compile failed for {common.shape_str(shape)}: {err}")
            notes["compile"] = f"compile failed: {err}"
        else:
            providers["compile"] = compiled
    if device.type == "cpu" and "cpu" in _extension.kernels("masked_tv"):
        providers["cpu"] = ours(region)
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
            msg = f"MISMATCH vs eager: {name} at {common.shape_str(shape)} {region} {args.dtype}: {bad}"
            loud(msg)
            failures.append(msg)
            notes[name] = msg

    rows = []
    for mode in args.modes:
        cases = {name: common.mode_case(fn, inputs, (pred,), mode) for name, fn in providers.items()}
        moved = bytes_moved(mode, pred, mask)
        cases[COPY], copied = common.copy_case(moved, device=device)  # the roofline, timed interleaved
        timings = common.time_cases(cases, device=device, warmup=args.warmup, repeats=args.repeats,
                                    min_sample_ms=0.5 if args.quick else 2.0)
        roof = common.gbps(copied, timings.pop(COPY).median_ms)
        del cases[COPY]
        for name in list(providers) + [n for n in notes if n not in providers]:
            row = {"op": op_name, "shape": common.shape_str(shape), "dtype": args.dtype, "provider": name,
                   "mode": mode, "roofline_gbps": roof, "note": notes.get(name, ""), **meta}
            if name in providers:
                t = timings[name]
                peak = common.peak_memory_bytes(cases[name].fn, setup=cases[name].setup, device=device)
                row.update(median_ms=t.median_ms, p20_ms=t.p20_ms, p80_ms=t.p80_ms,
                           gbps=common.gbps(moved, t.median_ms), peak_mem_mb=peak / 2**20)
                row["pct_roofline"] = 100.0 * row["gbps"] / roof
            else:
                row.update(median_ms=math.nan, p20_ms=math.nan, p80_ms=math.nan, gbps=math.nan,
                           pct_roofline=math.nan, peak_mem_mb=math.nan)
            rows.append(row)
        print(f"  {common.shape_str(shape)} {region} {mode}: done (copy roofline {roof:.1f} GB/s for "
              f"{moved / 2**20:.1f} MiB)", flush=True)
    return rows


def add_arguments(p) -> None:
    p.add_argument("--regions", default="hole",
                   help="comma-separated subset of " + ",".join(REGIONS) + " (default hole)")


def main(argv=None) -> int:
    args = common.parse_args(__doc__.splitlines()[0], argv, add_arguments)
    regions = [r.strip() for r in args.regions.split(",") if r.strip()]
    bad = [r for r in regions if r not in REGIONS]
    if bad:
        raise SystemExit(f"unknown region(s) {bad}; choose from {list(REGIONS)}")
    threads = common.set_threads(args.threads)
    device = args.device
    shapes = args.shapes or (QUICK_SHAPES if args.quick else SHAPES)
    meta = common.run_metadata(device)
    print(f"{OP}: device {meta['device']!r}, torch {meta['torch_version']}, {threads} threads, {args.dtype}, "
          f"git {meta['git_rev']}, {args.repeats} repeats ({args.warmup} warmup), regions {', '.join(regions)}, "
          f"shapes {', '.join(map(common.shape_str, shapes))}", flush=True)
    common.warn_if_busy(threads)
    failures: List[str] = []
    rows: List[Dict] = []
    for region in regions:
        for shape in shapes:
            rows += bench_shape(shape, region, args, meta, failures)
    for region in regions:  # speedups within a region: fill_speedups matches rows by shape and mode only
        common.fill_speedups([r for r in rows if r["op"] == f"{OP}[{region}]"])
    print(f"\n1-min load average at the end: {common.load_average():.2f}")
    for region in regions:
        print(f"\n{OP}[{region}]")
        print(common.format_table([r for r in rows if r["op"] == f"{OP}[{region}]"]))
    csv_path, png_path = common.default_paths(args, OP, device)
    if not args.no_csv:
        print(f"\nCSV rows appended to {os.path.relpath(common.write_rows(csv_path, rows))}")
    if not args.no_plot:
        for region in regions:  # one figure per region: panels are (shape, mode)
            root, ext = os.path.splitext(png_path)
            path = png_path if region == "hole" else f"{root}_{region}{ext or '.png'}"
            title = (f"{OP}[{region}] — {meta['device']}, {threads} threads, {args.dtype}, "
                     f"torch {meta['torch_version']}")
            out = common.plot_rows([r for r in rows if r["op"] == f"{OP}[{region}]"], path, title)
            if out:
                print(f"plot written to {os.path.relpath(out)}")
    if failures:
        loud(f"{len(failures)} provider(s) disagree with eager:\n!!! " + "\n!!! ".join(failures))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
