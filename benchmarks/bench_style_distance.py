"""Benchmark of the public style functions ``style_distance`` / ``style_loss`` and ``gram_matrix`` (the
ops ``inpaint_fast::style_distance`` and ``inpaint_fast::gram`` behind them).

Ops (the CSV's ``op``; ``--ops`` picks them), fp32 and 2 threads by default, features (N, C, H, W):

- ``style_distance``: one layer of the notebook's style loss, ``mean |G(f_pred) - G(f_target)|`` with the
  notebook's ``G(F) = F F^T / (C H W)``; the gradient is taken w.r.t. ``f_pred`` (the notebook detaches the
  target's features). Modes forward / backward / full (forward + backward).
- ``style_loss[identity]`` (``--ops style_loss``): the same number through the public style *loss*, whose
  extractor is the identity (``lambda z: [z]``: the "image" is the feature map). Mode full only by default
  (``--style-loss-modes`` adds forward / backward).
- ``gram``: the Gram matrix alone, forward (``--gram-modes`` adds backward / full).

Providers, all computing the same numbers:

- ``eager``: the notebook's code (``tests/notebook.py``, imported, not copied): for
  ``style_distance`` the per-layer term of its ``style_loss``, ``(gram_matrix(fp) -
  gram_matrix(ft.detach())).abs().mean()``; for ``style_loss[identity]`` its ``style_loss`` with that one
  layer (the term, then ``torch.stack(...).mean()`` over the layers, as there; the notebook's VGG call is what
  the identity extractor replaces); its ``gram_matrix`` for ``gram``;
- ``compile``: ``torch.compile`` (default inductor, ``mode=None``, ``dynamic=False``) of that same function;
- ``cpu``: the public function a user calls, under ``inpaint_fast.use_backend('cpu')`` (the C++ ops):
  ``inpaint_fast.style_distance(f_pred, f_target)`` (features given by the user),
  ``inpaint_fast.style_loss(f_pred, f_target, extractor=lambda z: [z])`` and
  ``inpaint_fast.gram_matrix(f_pred)``: argument checks, backend choice, then the ops layer. On CPU
  ``style_loss`` runs its extractor and distance in micro-batches of about 256x256 pixels
  (``functional.feature.auto_micro_batch``: one image per call at 256x256), as it does for a user.
  (There is no separate ``reference`` provider: the pure-PyTorch reference is the notebook's formula with
  the same two ``bmm``.)
- ``cuda``, ``triton`` (with ``--device cuda``): the same public calls under ``use_backend('cuda')`` (the
  C++ op's CUDA kernel: the epilogue around cuBLAS) or ``use_backend('triton')`` (``style_distance_triton``
  / ``gram_triton``); a backend without a kernel for the op is skipped, with a note row.
- ``<backend>[op]`` (e.g. ``cpu[op]``; ``style_distance`` and ``gram`` only, and only when named in
  ``--providers``, e.g. ``--providers 'eager,cpu,cpu[op]'``): the ops layer beneath, the entry functions
  ``inpaint_fast.ops.style_distance.style_distance(f_pred, f_target, backend=...)`` /
  ``gram_matrix(f_pred, backend=...)``, without the public functions' checks: set beside the public
  row, it shows what those cost.

On CUDA the eager baseline is cuBLAS ``bmm`` at the input dtype; "equal precision" is the process's
``torch.set_float32_matmul_precision`` (``--matmul-precision``, default ``highest``: fp32 inputs get
full-fp32 GEMMs, no TF32), which eager, compile and our kernels all see; it is printed in the header
and written to each row's note (``mm_precision=...``).

Before timing, each provider's value and gradient are checked against eager's (rtol 1e-5 in fp32); a
mismatch is printed loudly, noted in the CSV, and makes the exit status 1.

Roofline. These ops are FLOP-bound (a Gram of a C x HW matrix does ~C multiply-adds per element it
reads), so the copy bandwidth is no bound for them. The roofline is instead the measured GFLOP/s of
``torch.mm`` of one sample's Gram product, ``(C x HW) @ (HW x C)``, on the same machine and threads
(ATen's BLAS: MKL here), timed interleaved with the providers. On CUDA one sample's 256 x 256 output
fills only a few of the GPU's multiprocessors, so the roofline there is a square 4096 x 4096 x 4096
``torch.mm`` at the same dtype and matmul precision: the GPU's GEMM rate for that precision. Work is counted as the *minimal* FLOPs
of the problem, the same for every provider: a symmetric Gram is ``N C (C+1) HW`` FLOPs (one triangle,
as BLAS syrk does), the gradient ``dF = 2 S (w F) scale / (N C C)`` one GEMM of ``2 N C^2 HW``; so
style forward = 2 Grams, backward = 1 GEMM, full = both (``style_distance`` and ``style_loss[identity]``
alike); gram forward = 1 Gram, gram backward = 1 GEMM.
In the CSV, ``pct_roofline`` is achieved GFLOP/s in % of that mm's GFLOP/s, ``gbps`` and
``roofline_gbps`` are left empty, and ``note`` carries ``gflops=<achieved>;mm_gflops=<roofline>``.
An implementation that does the minimal work at the mm's rate scores 100%; eager does twice the
minimal FLOPs (two full Grams forward, two GEMMs in the bmm backward), so it scores at most ~50%.

Hand-over rows: ``style_distance``'s fused op computes the gradient in its forward (one GEMM) and saves
it; its backward only hands it over. So the 'backward' rows of our compiled backends for
``style_distance`` and ``style_loss[identity]`` time no GEMM, beside eager's real backward: they carry the
note ``hand-over: gradient computed in the forward``, no GFLOP/s (``pct_roofline``, the note's
``gflops=``) or speedups, and are not plotted. ``gram``'s backward is a real GEMM (``gram_backward``): its
rows are whole.

Run from the repository root: ``python benchmarks/bench_style_distance.py`` (``--quick`` for a smoke run,
``--device cuda`` on a GPU: 8x256x128x128 by default, ``--help`` for the options).
"""
from __future__ import annotations

import functools
import math
import os
import sys
from typing import Callable, Dict, List, Sequence, Tuple

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import contenders  # noqa: E402  (through records, also puts the repository root on sys.path)
import harness  # noqa: E402
import measure  # noqa: E402
import records  # noqa: E402

import torch  # noqa: E402

import inpaint_fast  # noqa: E402
from tests import notebook  # noqa: E402

STYLE_LOSS = "style_loss[identity]"
OPS = ("style_distance", STYLE_LOSS, "gram")
OP_ALIASES = {"style_loss": STYLE_LOSS}  # --ops names without the brackets
KERNEL_OP = {"style_distance": "style_distance", STYLE_LOSS: "style_distance", "gram": "gram"}  # library.kernels
HANDOVER_OPS = ("style_distance", STYLE_LOSS)  # the fused forward computes the gradient (see the module doc)

SHAPES = [(4, 256, 64, 64), (4, 64, 256, 256)]  # VGG relu3_3-like and relu1_2-like layers, batch 4
QUICK_SHAPES = [(2, 32, 16, 16)]
GPU_SHAPES = [(8, 256, 128, 128)]  # issue 4's GPU target (a relu3_3-like layer of 512 px images, batch 8)
GPU_MM = 4096  # the square torch.mm whose GFLOP/s is the roofline on CUDA
# contenders.RTOL with looser fp16 / bf16 entries for style_distance and gram.
RTOL = {**contenders.RTOL, torch.float16: 2e-2, torch.bfloat16: 3e-2}

Fn = Callable[..., torch.Tensor]


def notebook_style_term(fp: torch.Tensor, ft: torch.Tensor) -> torch.Tensor:
    """One layer of the notebook's ``style_loss`` (the loop body), target features detached as there."""
    return (notebook.gram_matrix(fp) - notebook.gram_matrix(ft.detach())).abs().mean()


def notebook_style_loss_identity(fp: torch.Tensor, ft: torch.Tensor) -> torch.Tensor:
    """The notebook's ``style_loss`` with one layer, the feature map itself: its loop body, then its
    ``torch.stack(losses).mean()`` over the layers."""
    return torch.stack([notebook_style_term(fp, ft)]).mean()


def notebook_gram(fp: torch.Tensor) -> torch.Tensor:
    return notebook.gram_matrix(fp)


def identity_extractor(z: torch.Tensor) -> List[torch.Tensor]:
    return [z]


def public(op: str, backend: str) -> Fn:
    """The public function of ``op`` on ``backend`` (the provider named ``backend``)."""
    if op == "style_distance":
        def call(fp, ft):
            with inpaint_fast.use_backend(backend):
                return inpaint_fast.style_distance(fp, ft)
    elif op == STYLE_LOSS:
        def call(fp, ft):
            with inpaint_fast.use_backend(backend):
                return inpaint_fast.style_loss(fp, ft, extractor=identity_extractor)
    else:
        def call(fp):
            with inpaint_fast.use_backend(backend):
                return inpaint_fast.gram_matrix(fp)
    return call


def our_providers(op: str, backends: List[str], wanted) -> Dict[str, Fn]:
    """``{backend: public call}``, plus ``{backend[op]: ops-level entry}`` for those named in ``--providers``
    (style_distance and gram: style_loss[identity] runs the style_distance op)."""
    from inpaint_fast.ops import style_distance as ops_
    providers = {b: public(op, b) for b in backends}
    if op != STYLE_LOSS:
        entry = ops_.style_distance if op == "style_distance" else ops_.gram_matrix
        providers.update({f"{b}[op]": functools.partial(entry, backend=b) for b in backends
                          if wanted and f"{b}[op]" in wanted})
    return providers


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
    if op in ("style_distance", STYLE_LOSS):
        return {"forward": 2 * sym_gram, "backward": grad_gemm, "full": 2 * sym_gram + grad_gemm}[mode]
    return {"forward": sym_gram, "backward": grad_gemm, "full": sym_gram + grad_gemm}[mode]


def mm_case(shape: Sequence[int], dtype: torch.dtype, device: torch.device) -> Tuple[measure.Case, float]:
    """The roofline's matrix product and its FLOPs: on CPU torch.mm of one sample's Gram product
    (C x HW) @ (HW x C); on CUDA a square GPU_MM^3 torch.mm (see the module doc)."""
    if device.type == "cuda":
        a = torch.randn(GPU_MM, GPU_MM, dtype=dtype, device=device)
        b = torch.randn(GPU_MM, GPU_MM, dtype=dtype, device=device)
        out = torch.empty(GPU_MM, GPU_MM, dtype=dtype, device=device)
        return measure.Case(lambda: torch.mm(a, b, out=out)), 2.0 * GPU_MM ** 3
    _, c, h, w = shape
    a = torch.randn(c, h * w, dtype=dtype, device=device)
    out = torch.empty(c, c, dtype=dtype, device=device)
    return measure.Case(lambda: torch.mm(a, a.t(), out=out)), 2.0 * c * c * h * w


def bench_op(op: str, modes: List[str], shape, args, meta, failures: List[str]) -> List[Dict]:
    device, dtype = args.device, args.torch_dtype
    fp, ft = make_inputs(shape, dtype, device)
    inputs = (fp,) if op == "gram" else (fp, ft)
    notebook_fn = {"style_distance": notebook_style_term, STYLE_LOSS: notebook_style_loss_identity,
                   "gram": notebook_gram}[op]
    backends, skipped = contenders.our_backends(KERNEL_OP[op], device, contenders.op_level_backends(args.providers),
                                                module="style_distance")
    providers, notes = contenders.make_providers(notebook_fn, our_providers(op, backends, args.providers), inputs, args,
                                                 op)
    notes.update(skipped)
    contenders.check_providers(providers, notes, inputs, args, failures, f"{records.shape_str(shape)} {args.dtype}",
                               tag=f"{op} ", rtols=RTOL, elementwise=True)

    def scalar(fn: Fn) -> Fn:  # gram returns a matrix: backward of its sum (a ones gradient)
        return fn if op != "gram" else (lambda *a: fn(*a).sum())

    base = {"op": op, "shape": records.shape_str(shape), "dtype": args.dtype, "gbps": math.nan,
            "roofline_gbps": math.nan, **meta}
    rows = []
    for mode in modes:
        roof_case, mm_flops = mm_case(shape, dtype, device)
        work = flops(op, mode, shape)

        def metrics(row, roof_ms, work=work, mm_flops=mm_flops):
            gflops = work / (row["median_ms"] * 1e-3) / 1e9
            mm_gflops = mm_flops / (roof_ms * 1e-3) / 1e9
            precision = f"mm_precision={torch.get_float32_matmul_precision()}" if device.type == "cuda" else ""
            note = records.join_notes(f"gflops={gflops:.4g};mm_gflops={mm_gflops:.4g}", precision, row["note"])
            return {"pct_roofline": 100.0 * gflops / mm_gflops, "gflops": gflops, "mm_gflops": mm_gflops, "note": note}
        handover = contenders.handover_providers(providers) if op in HANDOVER_OPS else ()
        mode_rows, roof = contenders.time_rows({n: scalar(f) for n, f in providers.items()}, notes, inputs, mode, args,
                                               roof_case, base, metrics, handover)
        rows += mode_rows
        print(f"  {op} {records.shape_str(shape)} {mode}: done (torch.mm roofline "
              f"{mm_flops / (roof.median_ms * 1e-3) / 1e9:.1f} GFLOP/s)", flush=True)
    return rows


FLOPS_COLS = [("op", "op", 0), ("shape", "shape", 0), ("mode", "mode", 0), ("provider", "provider", 0),
              ("median_ms", "median ms", 4), ("p20_ms", "p20", 4), ("p80_ms", "p80", 4),
              ("speedup_vs_eager", "x eager", 3), ("speedup_vs_compile", "x compile", 3),
              ("gflops", "GFLOP/s", 4), ("pct_roofline", "% mm", 3), ("peak_mem_mb", "peak MB", 4),
              ("flag", "note", 0)]


def flag(row: Dict) -> str:
    """The console table's note: 'hand-over', the MISMATCH / skipped / failed part of the note, or ''
    (the GFLOP/s figures the note also carries have their own columns)."""
    if records.is_handover(row):
        return "hand-over (gradient computed in the forward)"
    return "; ".join(p for p in str(row.get("note") or "").split("; ")
                     if p.startswith(("MISMATCH", "skipped", "compile failed")))


def format_flops_table(rows: Sequence[Dict]) -> str:
    """op, shape, mode, provider, median/p20/p80 ms, x eager, x compile, GFLOP/s, % of mm, peak MB, note."""
    return records.format_table([{**r, "flag": flag(r)} for r in rows], FLOPS_COLS, left=4)


def add_arguments(p) -> None:
    p.add_argument("--ops", default="style_distance,style_loss,gram",
                   help="comma-separated subset of style_distance,style_loss,gram (style_loss: the rows "
                        f"{STYLE_LOSS}; default all three)")
    p.add_argument("--style-loss-modes", default="full", help=f"modes for {STYLE_LOSS} (default full)")
    p.add_argument("--gram-modes", default="forward", help="modes for the gram op (default forward)")
    p.add_argument("--matmul-precision", default="highest", choices=("highest", "high", "medium"),
                   help="torch.set_float32_matmul_precision for every provider (default highest: no TF32)")


def style_png(op: str, png: str) -> str:
    """style_distance at the default PNG, gram at ``gram_<device>.png`` (or ``<png>_gram.png``),
    style_loss[identity] at ``style_loss_identity_<device>.png`` (or ``<png>_style_loss_identity.png``)."""
    if op == "style_distance":
        return png
    root, ext = os.path.splitext(png)
    name = "gram" if op == "gram" else "style_loss_identity"
    return (root.replace("style_distance_", name + "_") if "style_distance_" in root else f"{root}_{name}") + ext


def modes_list(text: str) -> List[str]:
    return [m.strip() for m in text.split(",") if m.strip()]


def main(argv=None) -> int:
    args = harness.parse_args(__doc__.splitlines()[0], argv, add_arguments, shapes=(SHAPES, QUICK_SHAPES, GPU_SHAPES),
                              processes=True)
    torch.set_float32_matmul_precision(args.matmul_precision)
    ops = [OP_ALIASES.get(o.strip(), o.strip()) for o in args.ops.split(",") if o.strip()]
    bad = [o for o in ops if o not in OPS]
    if bad:
        raise SystemExit(f"unknown op(s) {bad}; choose from style_distance, style_loss, gram")
    modes = {"style_distance": args.modes, STYLE_LOSS: modes_list(args.style_loss_modes),
             "gram": modes_list(args.gram_modes)}
    bad = [m for op in ops for m in modes[op] if m not in measure.MODES]
    if bad:
        raise SystemExit(f"unknown mode(s) {bad}; choose from {list(measure.MODES)}")
    meta = harness.header("style_distance/style_loss/gram", args)
    failures: List[str] = []
    rows = harness.collect(args, failures, lambda: [row for shape in args.shapes for op in ops
                                                    for row in bench_op(op, modes[op], shape, args, meta, failures)],
                           meta)
    return harness.finish(rows, failures, args, meta, "style_distance", groups=ops, table=format_flops_table,
                          plot_path=style_png)


if __name__ == "__main__":
    sys.exit(main())
