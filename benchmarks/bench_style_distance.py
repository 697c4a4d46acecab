"""Benchmark of the style term ``inpaint_fast::style_distance`` (and of ``inpaint_fast::gram`` alone).

Ops timed, fp32 and 2 threads by default:

- ``style_distance``: one layer of the seed's style loss, ``mean |G(f_pred) - G(f_target)|`` with the
  seed's ``G(F) = F F^T / (C H W)``; the gradient is taken w.r.t. ``f_pred`` (the seed detaches the
  target's features). Modes forward / backward / full (forward + backward).
- ``gram``: the Gram matrix alone, forward (``--gram-modes`` adds backward / full).

Providers, all computing the same numbers:

- ``eager``: the seed notebook's code (``tests/seed_notebook.py``, imported, not copied): the per-layer
  term of its ``style_loss``, ``(gram_matrix(fp) - gram_matrix(ft.detach())).abs().mean()``, and its
  ``gram_matrix`` for ``gram``;
- ``compile``: ``torch.compile`` (default inductor, ``mode=None``, ``dynamic=False``) of that same function;
- ``cpu``: our C++ op through its Python entry function (``inpaint_fast.ops.style_distance.style_distance``
  / ``gram_matrix``). (There is no separate ``reference`` provider: the pure-PyTorch reference is the
  seed's formula with the same two ``bmm``.)

Before timing, each provider's value and gradient are checked against eager's (rtol 1e-5 in fp32); a
mismatch is printed loudly, noted in the CSV, and makes the exit status 1.

Roofline. These ops are FLOP-bound (a Gram of a C x HW matrix does ~C multiply-adds per element it
reads), so the copy bandwidth is no bound for them. The roofline is instead the measured GFLOP/s of
``torch.mm`` of one sample's Gram product, ``(C x HW) @ (HW x C)``, on the same machine and threads
(ATen's BLAS: MKL here), timed interleaved with the providers. Work is counted as the *minimal* FLOPs
of the problem, the same for every provider: a symmetric Gram is ``N C (C+1) HW`` FLOPs (one triangle,
as BLAS syrk does), the gradient ``dF = 2 S (w F) scale / (N C C)`` one GEMM of ``2 N C^2 HW``; so
style forward = 2 Grams, backward = 1 GEMM, full = both; gram forward = 1 Gram, gram backward = 1 GEMM.
In the CSV, ``pct_roofline`` is achieved GFLOP/s in % of that mm's GFLOP/s, ``gbps`` and
``roofline_gbps`` are left empty, and ``note`` carries ``gflops=<achieved>;mm_gflops=<roofline>``.
An implementation that does the minimal work at the mm's rate scores 100%; eager does twice the
minimal FLOPs (two full Grams forward, two GEMMs in the bmm backward), so it scores at most ~50%.

Run from the repository root: ``python benchmarks/bench_style_distance.py`` (``--quick`` for a smoke run,
``--help`` for the options).
"""
from __future__ import annotations

import math
import os
import sys
from typing import Callable, Dict, List, Sequence, Tuple

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402  (also puts the repository root on sys.path)

import torch  # noqa: E402

from inpaint_fast import _extension  # noqa: E402
from tests import seed_notebook  # noqa: E402

SHAPES = [(4, 256, 64, 64), (4, 64, 256, 256)]  # VGG relu3_3-like and relu1_2-like layers, batch 4
QUICK_SHAPES = [(2, 32, 16, 16)]
MM = "__mm__"  # the roofline's case among the providers'
RTOL = {torch.float64: 1e-7, torch.float32: 1e-5, torch.float16: 2e-2, torch.bfloat16: 3e-2}

Fn = Callable[..., torch.Tensor]


def seed_style_term(fp: torch.Tensor, ft: torch.Tensor) -> torch.Tensor:
    """One layer of the seed's ``style_loss`` (the loop body), target features detached as there."""
    return (seed_notebook.gram_matrix(fp) - seed_notebook.gram_matrix(ft.detach())).abs().mean()


def seed_gram(fp: torch.Tensor) -> torch.Tensor:
    return seed_notebook.gram_matrix(fp)


def make_inputs(shape: Tuple[int, ...], dtype: torch.dtype, device: torch.device):
    g = torch.Generator().manual_seed(1234)
    # Post-ReLU-like features (VGG activations are non-negative).
    fp = torch.randn(shape, generator=g).relu_().to(dtype=dtype, device=device).requires_grad_(True)
    ft = torch.randn(shape, generator=g).relu_().to(dtype=dtype, device=device)
    return fp, ft


def flops(op: str, mode: str, shape: Sequence[int]) -> float:
    """Minimal FLOPs (see the module doc)."""
    n, c, h, w = shape
    hw = h * w
    sym_gram = n * c * (c + 1) * hw
    grad_gemm = 2 * n * c * c * hw
    if op == "style_distance":
        return {"forward": 2 * sym_gram, "backward": grad_gemm, "full": 2 * sym_gram + grad_gemm}[mode]
    return {"forward": sym_gram, "backward": grad_gemm, "full": sym_gram + grad_gemm}[mode]


def mm_case(shape: Sequence[int], dtype: torch.dtype, device: torch.device) -> Tuple[common.Case, float]:
    """torch.mm of one sample's Gram product (C x HW) @ (HW x C), and its FLOPs."""
    _, c, h, w = shape
    a = torch.randn(c, h * w, dtype=dtype, device=device)
    out = torch.empty(c, c, dtype=dtype, device=device)
    return common.Case(lambda: torch.mm(a, a.t(), out=out)), 2.0 * c * c * h * w


def value_and_grad(fn: Fn, inputs, grad_input):
    out = fn(*inputs)
    (grad,) = torch.autograd.grad(out, (grad_input,), grad_outputs=torch.ones_like(out))
    return out.detach(), grad


def check(fn: Fn, ref, inputs, grad_input, dtype) -> str:
    """'' when fn's value and gradient match eager's, else a description of the mismatch."""
    out, grad = value_and_grad(fn, inputs, grad_input)
    rtol = RTOL.get(dtype, 1e-5)
    problems = []
    scale = ref[0].double().abs().max().item()
    if out.shape != ref[0].shape or not torch.allclose(out.double(), ref[0].double(), rtol=rtol, atol=rtol * scale):
        problems.append(f"value max abs err {(out.double() - ref[0].double()).abs().max().item():.3g} "
                        f"(max |value| {scale:.3g}, rtol {rtol:g})")
    gscale = ref[1].double().abs().max().item()
    if not torch.allclose(grad.double(), ref[1].double(), rtol=rtol, atol=rtol * gscale):
        err = (grad.double() - ref[1].double()).abs().max().item()
        problems.append(f"grad max abs err {err:.3g} (max |grad| {gscale:.3g})")
    return "; ".join(problems)


def loud(msg: str) -> None:
    bar = "!" * 100
    print(f"\n{bar}\n!!! {msg}\n{bar}\n", file=sys.stderr, flush=True)


def providers_for(op: str, inputs, args, notes: Dict[str, str]) -> Dict[str, Fn]:
    from inpaint_fast.ops import style_distance as ours
    seed_fn = seed_style_term if op == "style_distance" else seed_gram
    providers: Dict[str, Fn] = {"eager": seed_fn}
    wanted = args.providers
    if wanted is None or "compile" in wanted:
        torch._dynamo.reset()  # a fresh static graph per shape

        def warm(compiled):
            for _ in range(2):
                compiled(*inputs)                               # forward (grad-recording)
                value_and_grad(compiled, inputs, inputs[0])     # forward + backward
        compiled, err = common.compile_provider(seed_fn, warm, dynamic=False)
        if compiled is None:
            loud(f"torch.compile failed for {op}: {err}")
            notes["compile"] = f"compile failed: {err}"
        else:
            providers["compile"] = compiled
    if "cpu" in _extension.kernels(op) and args.device.type == "cpu":
        providers["cpu"] = ours.style_distance if op == "style_distance" else ours.gram_matrix
    if wanted is not None:
        providers = {k: v for k, v in providers.items() if k in wanted or k == "eager"}
    return providers


def bench_op(op: str, modes: List[str], shape, args, meta, failures: List[str]) -> List[Dict]:
    device, dtype = args.device, args.torch_dtype
    fp, ft = make_inputs(shape, dtype, device)
    inputs = (fp, ft) if op == "style_distance" else (fp,)
    notes: Dict[str, str] = {}
    providers = providers_for(op, inputs, args, notes)

    ref = value_and_grad(providers["eager"], inputs, fp)
    for name, fn in list(providers.items())[1:]:
        try:
            bad = check(fn, ref, inputs, fp, dtype)
        except Exception as exc:  # noqa: BLE001
            bad = f"raised {type(exc).__name__}: {exc}"
            del providers[name]
        if bad:
            msg = f"MISMATCH vs eager: {op} {name} at {common.shape_str(shape)} {args.dtype}: {bad}"
            loud(msg)
            failures.append(msg)
            notes[name] = msg

    def scalar(fn: Fn) -> Fn:  # gram returns a matrix: backward of its sum (a ones gradient)
        return fn if op == "style_distance" else (lambda *a: fn(*a).sum())

    rows = []
    for mode in modes:
        cases = {name: common.mode_case(scalar(fn), inputs, (fp,), mode) for name, fn in providers.items()}
        cases[MM], mm_flops = mm_case(shape, dtype, device)
        timings = common.time_cases(cases, device=device, warmup=args.warmup, repeats=args.repeats,
                                    min_sample_ms=0.5 if args.quick else 2.0)
        mm_gflops = mm_flops / (timings.pop(MM).median_ms * 1e-3) / 1e9
        del cases[MM]
        work = flops(op, mode, shape)
        for name in list(providers) + [n for n in notes if n not in providers]:
            row = {"op": op, "shape": common.shape_str(shape), "dtype": args.dtype, "provider": name, "mode": mode,
                   "gbps": math.nan, "roofline_gbps": math.nan, **meta}
            if name in providers:
                t = timings[name]
                peak = common.peak_memory_bytes(cases[name].fn, setup=cases[name].setup, device=device)
                gflops = work / (t.median_ms * 1e-3) / 1e9
                row.update(median_ms=t.median_ms, p20_ms=t.p20_ms, p80_ms=t.p80_ms, peak_mem_mb=peak / 2**20,
                           pct_roofline=100.0 * gflops / mm_gflops, gflops=gflops, mm_gflops=mm_gflops)
                row["note"] = "; ".join(s for s in (f"gflops={gflops:.4g};mm_gflops={mm_gflops:.4g}",
                                                    notes.get(name, "")) if s)
            else:
                row.update(median_ms=math.nan, p20_ms=math.nan, p80_ms=math.nan, pct_roofline=math.nan,
                           peak_mem_mb=math.nan, note=notes.get(name, ""))
            rows.append(row)
        print(f"  {op} {common.shape_str(shape)} {mode}: done (torch.mm roofline {mm_gflops:.1f} GFLOP/s)", flush=True)
    return rows


def format_flops_table(rows: Sequence[Dict]) -> str:
    """op, shape, mode, provider, median/p20/p80 ms, x eager, x compile, GFLOP/s, % of mm, peak MB."""
    cols = [("op", "op", 0), ("shape", "shape", 0), ("mode", "mode", 0), ("provider", "provider", 0),
            ("median_ms", "median ms", 4), ("p20_ms", "p20", 4), ("p80_ms", "p80", 4),
            ("speedup_vs_eager", "x eager", 3), ("speedup_vs_compile", "x compile", 3),
            ("gflops", "GFLOP/s", 4), ("pct_roofline", "% mm", 3), ("peak_mem_mb", "peak MB", 4)]
    fmt = common._fmt  # noqa: SLF001 - the harness's number formatting
    table = [[h for _, h, _ in cols]]
    for r in rows:
        table.append([fmt(r.get(k), d) if d else fmt(r.get(k)) for k, _, d in cols])
    widths = [max(len(row[i]) for row in table) for i in range(len(cols))]
    lines = ["  ".join(c.ljust(w) if i < 4 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))).rstrip()
             for row in table]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def add_arguments(p) -> None:
    p.add_argument("--ops", default="style_distance,gram", help="comma-separated subset of style_distance,gram")
    p.add_argument("--gram-modes", default="forward", help="modes for the gram op (default forward)")


def main(argv=None) -> int:
    args = common.parse_args(__doc__.splitlines()[0], argv, add_arguments)
    threads = common.set_threads(args.threads)
    device = args.device
    shapes = args.shapes or (QUICK_SHAPES if args.quick else SHAPES)
    ops = [o.strip() for o in args.ops.split(",") if o.strip()]
    gram_modes = [m.strip() for m in args.gram_modes.split(",") if m.strip()]
    meta = common.run_metadata(device)
    print(f"style_distance/gram: device {meta['device']!r}, torch {meta['torch_version']}, {threads} threads, "
          f"{args.dtype}, git {meta['git_rev']}, {args.repeats} repeats ({args.warmup} warmup), shapes "
          f"{', '.join(map(common.shape_str, shapes))}", flush=True)
    common.warn_if_busy(threads)
    failures: List[str] = []
    rows: List[Dict] = []
    for shape in shapes:
        for op in ops:
            rows += bench_op(op, args.modes if op == "style_distance" else gram_modes, shape, args, meta, failures)
    for op in ops:  # speedups within each op (fill_speedups keys on shape, mode, dtype and provider)
        common.fill_speedups([r for r in rows if r["op"] == op])
    print(f"\n1-min load average at the end: {common.load_average():.2f}")
    print(format_flops_table(rows))
    csv_path, png_path = common.default_paths(args, "style_distance", device)
    if not args.no_csv:
        print(f"\nCSV rows appended to {os.path.relpath(common.write_rows(csv_path, rows))}")
    if not args.no_plot:
        for op in ops:
            sel = [r for r in rows if r["op"] == op]
            root, ext = os.path.splitext(png_path)
            path = png_path if op == "style_distance" else (
                root.replace("style_distance_", "gram_") if "style_distance_" in root else root + "_gram") + ext
            title = f"{op} — {meta['device']}, {threads} threads, {args.dtype}, torch {meta['torch_version']}"
            out = common.plot_rows(sel, path, title)
            if out:
                print(f"plot written to {os.path.relpath(out)}")
    if failures:
        loud(f"{len(failures)} provider(s) disagree with eager:\n!!! " + "\n!!! ".join(failures))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
