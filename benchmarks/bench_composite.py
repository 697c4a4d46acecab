"""Benchmark of one full training step of a composite objective (forward + backward to ``pred``), ours
against a plain-PyTorch baseline (issue 6 item 5).

Two objectives, each timed as one ``torch.autograd.grad(total, pred)`` (mode ``full``; there is no
forward-only or backward-only mode here), fp32, 2 threads, on CPU by default, VGG16 with *random*
weights (``weights=None``: nothing is downloaded; every provider of an objective holds the same
weights, copied from one state dict, so their values agree):

- ``pconv_step``: the PConv objective (Liu et al. 2018, "Image Inpainting for Irregular Holes Using
  Partial Convolutions"): valid 1, hole 6, perceptual 0.05 and style 120 on both the output and the
  composite over VGG16 pool1-pool3, TV 0.1 on the composite. VGG sees the raw input (no ImageNet
  normalisation, as in naoto0804's code, which normalises the images outside the loss). Providers:

  - ``plain``: naoto0804/pytorch-inpainting-with-partial-conv's ``InpaintingLoss`` +
    ``VGG16FeatureExtractor`` in plain PyTorch, as transcribed in ``tests/naoto_pconv.py`` (imported, not
    copied; also the oracle of tests/test_presets.py): three VGG passes (``output_comp``, ``output``, ``gt``; frozen
    parameters, so the target's pass records no graph), a ``gram_matrix`` per term, ``nn.L1Loss``,
    ``total_variation_loss`` of the composite; total = sum of ``LAMBDA_DICT`` {valid 1, hole 6, tv 0.1,
    prc 0.05, style 120} times the terms (naoto0804's train.py);
  - ``plain_compile`` (only with ``--compile``, or when named in ``--providers``): ``torch.compile`` of
    that same loss (default inductor, ``mode=None``, ``dynamic=False``), warmed up untimed;
  - ``ours``: ``inpaint_fast.pconv_loss(vgg_weights=None, normalize_input=False, tv_region='all')``,
    ``(pred, target, mask=mask)['total']``, with its defaults (channels_last VGG, micro-batched VGG calls:
    see *Fairness* below); the plain extractor is built from its VGGFeatures' state dict;
  - ``ours_nchw_batch``: the same loss with the baseline's settings: its ``VGGFeatures`` (same weights)
    built with ``channels_last=False`` and every VGG call on the whole batch (see *Fairness*).

- ``notebook_composite_step``: the notebook's composite (rec 1, perc 0.1, style 10, tv 0.01, freq 0.1;
  VGG16 relu1_2/relu2_2/relu3_3 with ImageNet input normalisation). Providers:

  - ``notebook``: ``tests/notebook.composite_loss(target, pred, mask, NOTEBOOK_WEIGHTS)['total']``
    (imported, not copied), its global ``vgg`` set to a frozen ``vgg16().features[:16]`` holding the
    weights of ours's extractor; it runs four VGG passes (pred and target, once for the perceptual and
    once for the style term);
  - ``ours``: ``inpaint_fast.CompositeLoss(extractor=inpaint_fast.VGGFeatures(weights=None,
    channels_last=True))`` with its default (the notebook's) weights, ``(pred, target, mask=mask)['total']``;
  - ``ours_nchw_batch``: the same with the notebook's settings (NCHW ``VGGFeatures``, whole-batch VGG calls).

Fairness (layout and batching). ``ours`` runs VGG as the library does by default: on a channels_last copy
of its input (``VGGFeatures(channels_last=True)``, what ``pconv_loss`` builds) and, on CPU, in micro-batches
of about 256x256 pixels per call (``inpaint_fast.functional.feature.auto_micro_batch``: one image per call
at 256x256 and 512x512), which keeps the activations in cache. The baselines run as written: NCHW, the
whole batch in each VGG call. So every objective also has ``ours_nchw_batch``, our loss with the
baselines' settings: an NCHW extractor (``channels_last=False``, same weights) and each VGG call on the
whole batch (:func:`whole_batch_per_vgg_call` lifts the micro-batching rule for the call). Its ratio
against the baseline is the like-for-like one (what the fused terms and the shared VGG passes are
worth); ``ours``'s ratio adds what the two settings are worth, and ``ours``/``ours_nchw_batch`` is that
part alone. (Ours still runs the output and the composite through VGG together, 2N images per call:
that is the loss's design, not a setting.) Each row's note names its VGG settings (``vgg=...``).

Inputs: ``pred`` and ``target`` uniform in [0, 1] (``pred`` requires grad), and a realistic irregular
mask, ``mask_with_strokes``: ``contenders.box_mask``'s hole (per image a random H/2 x W/2 box, a quarter of
the image) plus four random free-form brush strokes per image (each a 5-segment random walk, brush
radius H/32), 1 = known; the hole covers 33-42 % of each image.

Measured, per objective and shape: the median and p20/p80 of the step time, the providers timed
interleaved round by round (``measure.time_cases``; one call per sample: the step takes seconds); the
speedup of ours, ours_nchw_batch (and plain_compile) over the eager baseline (``plain`` or ``notebook``, as
written) measured in the same run, in the CSV column ``speedup_vs_eager`` (and over ``plain_compile`` in
``speedup_vs_compile``); the peak memory of one step (``measure.peak_memory_bytes``: on CPU the profiler's
allocation events) and, in the note of ours and ours_nchw_batch, its ratio to the baseline's
(``peak_mem_vs_<baseline>=``). ``gbps`` and
``pct_roofline`` are left empty: the step is dominated by VGG's convolutions, no single roofline fits.

Before timing, each provider's total loss is compared with the baseline's (rtol 1e-5 in fp32) and its gradient
w.r.t. ``pred`` in the relative L2 norm (``--grad-rtol``, default 1e-4), not entrywise: the L1 terms'
sign() turns rounding differences of near-equal features or Gram entries (the composite's known region
has the target's features) into jumps of single gradient entries, which follow each implementation's
rounding (channels_last convolutions: ~3e-5 in norm, ~4e-3 of the largest entry at 4x3x256x256; fp32
plain is itself ~5e-3 of the largest entry from its fp64 value at 1x3x128x128). plain_compile's value
and gradient are checked with ``--compile-rtol`` (default 1e-3: inductor's CPU code rounds differently).
A mismatch is printed loudly, noted in the CSV (``MISMATCH ...``) and makes the exit status 1.

Shapes: 4x3x256x256 (warm-up 1, 5 repeats) and 4x3x512x512 (``--warmup-large`` 1, ``--repeats-large``
3: a step takes several seconds on 2 cores); ``--repeats`` / ``--warmup`` set the counts of the shapes
up to 256 x 256 pixels, the ``-large`` ones those of larger shapes. ``--quick``: 1x3x32x32, 1 repeat.
``--profile N`` also prints, per objective and provider, the N ops with the most self CPU time in one
step (``torch.profiler``) at the first shape.

Run from the repository root: ``python benchmarks/bench_composite.py`` (``--quick`` for a smoke run,
``--ops pconv_step`` for one objective, ``--compile`` to add ``plain_compile`` (of the plain loss as written),
``--help`` for the options).
"""
from __future__ import annotations

import contextlib
import math
import os
import sys
from typing import Any, Callable, Dict, List, Sequence, Tuple

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import contenders  # noqa: E402  (through records, also puts the repository root on sys.path)
import harness  # noqa: E402
import measure  # noqa: E402
import records  # noqa: E402

import torch  # noqa: E402
from torch import nn  # noqa: E402

import inpaint_fast as IF  # noqa: E402
from inpaint_fast.functional import feature as IF_feature  # noqa: E402
from tests import naoto_pconv, notebook  # noqa: E402

OPS = ("pconv_step", "notebook_composite_step")
BASELINE = {"pconv_step": "plain", "notebook_composite_step": "notebook"}
PROVIDERS = ("plain", "plain_compile", "notebook", "ours_nchw_batch", "ours")
# The VGG settings each provider runs with, written to its rows' note: the baselines as written, ours with its
# defaults, ours_nchw_batch with the baselines' settings (the like-for-like comparison).
SETTINGS = {"plain": "vgg=NCHW,whole batch per call (as written)",
            "plain_compile": "vgg=NCHW,whole batch per call (as written)",
            "notebook": "vgg=NCHW,whole batch per call (as written)",
            "ours_nchw_batch": "vgg=NCHW,whole batch per call (the baseline's settings)",
            "ours": "vgg=channels_last,micro-batched (ours' defaults)"}
SHAPES = [(4, 3, 256, 256), (4, 3, 512, 512)]
QUICK_SHAPES = [(1, 3, 32, 32)]
LARGE_PIXELS = 256 * 256  # shapes with more pixels per image use --warmup-large / --repeats-large

# --------------------------------------------------------------------------------------------- plain PConv loss

def plain_extractor(features_state: Dict[str, torch.Tensor]) -> nn.Module:
    """naoto0804's VGG16FeatureExtractor (tests/naoto_pconv.py) on a ``vgg16().features[:17]`` holding
    ``features_state`` (instead of downloading the pretrained weights)."""
    from torchvision.models import vgg16
    with torch.device("meta"):
        features = vgg16(weights=None).features[:17]
    features = features.to_empty(device="cpu")
    features.load_state_dict(features_state)
    return naoto_pconv.NaotoVGG16FeatureExtractor(features)


def plain_pconv_total(criterion: nn.Module) -> Callable[..., torch.Tensor]:
    """(pred, target, mask) -> the weighted total, as naoto0804's train.py sums it (the network's input
    image is the masked target, ``gt * mask``)."""
    def total(pred, target, mask):
        return naoto_pconv.naoto_total(criterion(target * mask, mask, pred, target))
    return total


# --------------------------------------------------------------------------------------------- inputs

def mask_with_strokes(n: int, h: int, w: int, dtype: torch.dtype, device: torch.device, seed: int = 0,
                      strokes: int = 4, segments: int = 5) -> torch.Tensor:
    """(N, 1, H, W) binary mask, 1 = known: ``contenders.box_mask``'s H/2 x W/2 hole plus ``strokes`` random
    brush strokes per image (random walks of ``segments`` segments, length up to H/4 each, radius H/32)."""
    g = torch.Generator().manual_seed(seed + 1)
    hole = contenders.box_mask(n, h, w, torch.float32, torch.device("cpu"), seed) < 0.5
    radius = max(1.0, h / 32)
    ys = torch.arange(h, dtype=torch.float32).view(h, 1)
    xs = torch.arange(w, dtype=torch.float32).view(1, w)
    for i in range(n):
        for _ in range(strokes):
            y, x = torch.rand(2, generator=g).tolist()
            y, x = y * (h - 1), x * (w - 1)
            for _ in range(segments):
                angle = float(torch.rand((), generator=g)) * 2 * math.pi
                length = (0.3 + 0.7 * float(torch.rand((), generator=g))) * h / 4
                y1 = min(max(y + length * math.sin(angle), 0.0), h - 1.0)
                x1 = min(max(x + length * math.cos(angle), 0.0), w - 1.0)
                for t in torch.linspace(0, 1, max(2, int(length / (radius / 2)) + 1)).tolist():
                    cy, cx = y + t * (y1 - y), x + t * (x1 - x)
                    y0, y_1 = max(0, int(cy - radius)), min(h, int(cy + radius) + 2)
                    x0, x_1 = max(0, int(cx - radius)), min(w, int(cx + radius) + 2)
                    disk = (ys[y0:y_1] - cy) ** 2 + (xs[:, x0:x_1] - cx) ** 2 <= radius ** 2
                    hole[i, 0, y0:y_1, x0:x_1] |= disk
                y, x = y1, x1
    return (~hole).to(dtype=dtype, device=device)


def make_inputs(shape: Sequence[int], dtype: torch.dtype, device: torch.device):
    n, _, h, w = shape
    g = torch.Generator().manual_seed(1234)
    target = torch.rand(tuple(shape), generator=g).to(dtype=dtype, device=device)
    pred = torch.rand(tuple(shape), generator=g).to(dtype=dtype, device=device).requires_grad_(True)
    mask = mask_with_strokes(n, h, w, dtype, device)
    return pred, target, mask


# --------------------------------------------------------------------------------------------- providers

def frozen_notebook_vgg(features_state: Dict[str, torch.Tensor], device: torch.device) -> nn.Module:
    """The notebook's ``vgg16(...).features[:16].eval()``, frozen, holding ``features_state``."""
    from torchvision.models import vgg16
    with torch.device("meta"):
        net = vgg16(weights=None).features[:16]
    net = net.to_empty(device="cpu")
    net.load_state_dict(features_state)
    for p in net.parameters():
        p.requires_grad_(False)
    return net.eval().to(device)


def notebook_total(pred, target, mask):
    return notebook.composite_loss(target, pred, mask, notebook.NOTEBOOK_WEIGHTS)["total"]


@contextlib.contextmanager
def whole_batch_per_vgg_call():
    """Within the block, ``inpaint_fast``'s feature cache runs each extractor call on the whole batch, as the
    baselines do: its CPU micro-batching rule (``functional.feature.auto_micro_batch``: about
    ``CPU_PIXELS_PER_CALL`` = 256x256 pixels per call) is lifted by raising that constant. The cache decides
    its micro-batch in the forward, so the block only needs to hold the loss call."""
    if not hasattr(IF_feature, "CPU_PIXELS_PER_CALL"):
        raise RuntimeError("inpaint_fast.functional.feature.CPU_PIXELS_PER_CALL is gone: update "
                           "bench_composite.whole_batch_per_vgg_call")
    old = IF_feature.CPU_PIXELS_PER_CALL
    IF_feature.CPU_PIXELS_PER_CALL = 2 ** 62
    try:
        yield
    finally:
        IF_feature.CPU_PIXELS_PER_CALL = old


def ours_total(loss: nn.Module, baseline_settings: bool = False) -> Callable[..., torch.Tensor]:
    """(pred, target, mask) -> ``loss(pred, target, mask=mask)['total']``; ``baseline_settings``: inside
    :func:`whole_batch_per_vgg_call` (the provider ``ours_nchw_batch``, whose extractor is also NCHW)."""
    def total(pred, target, mask):
        if not baseline_settings:
            return loss(pred, target, mask=mask)["total"]
        with whole_batch_per_vgg_call():
            return loss(pred, target, mask=mask)["total"]
    return total


def nchw_twin(vgg: IF.VGGFeatures, layers: Sequence[str], normalize_input: bool) -> IF.VGGFeatures:
    """A VGGFeatures with ``vgg``'s weights, layers and input normalisation, run on NCHW input
    (``channels_last=False``): ``ours_nchw_batch``'s extractor."""
    twin = IF.VGGFeatures("vgg16", layers, weights=None, normalize_input=normalize_input, channels_last=False)
    twin.features.load_state_dict(vgg.features.state_dict())
    return twin


def pconv_providers(args, dtype, device) -> Tuple[Dict[str, Callable], Dict[str, str]]:
    """plain, ours_nchw_batch and ours for the PConv objective, with the same VGG weights."""
    torch.manual_seed(0)
    notes: Dict[str, str] = {}
    ours_loss = IF.pconv_loss(vgg_weights=None, normalize_input=False, tv_region="all")
    vgg = ours_loss.perceptual.extractor
    state = {k: v.clone() for k, v in vgg.features.state_dict().items()}
    plain = naoto_pconv.NaotoInpaintingLoss(plain_extractor(state).to(device=device, dtype=dtype))
    like_plain = IF.pconv_loss(normalize_input=False, tv_region="all",
                               extractor=nchw_twin(vgg, vgg.layers, normalize_input=False))
    ours_loss = ours_loss.to(device=device, dtype=dtype)
    like_plain = like_plain.to(device=device, dtype=dtype)
    providers: Dict[str, Callable] = {
        "plain": plain_pconv_total(plain),
        "ours_nchw_batch": ours_total(like_plain, baseline_settings=True),
        "ours": ours_total(ours_loss)}
    return providers, notes


def notebook_providers(args, dtype, device) -> Tuple[Dict[str, Callable], Dict[str, str]]:
    """notebook (its global vgg patched), ours_nchw_batch and ours (CompositeLoss with the same weights)."""
    torch.manual_seed(0)
    vgg = IF.VGGFeatures(weights=None, channels_last=True).to(device=device, dtype=dtype)
    notebook.vgg = frozen_notebook_vgg(vgg.features.state_dict(), device).to(dtype=dtype)
    ours_loss = IF.CompositeLoss(extractor=vgg)
    twin = nchw_twin(vgg, vgg.layers, normalize_input=True).to(device=device, dtype=dtype)
    like_notebook = IF.CompositeLoss(extractor=twin)
    return {"notebook": notebook_total,
            "ours_nchw_batch": ours_total(like_notebook, baseline_settings=True),
            "ours": ours_total(ours_loss)}, {}


def add_compiled(providers: Dict[str, Callable], notes: Dict[str, str], inputs: Sequence[Any]) -> None:
    """plain_compile: torch.compile of the plain loss, warmed by two forward+backwards (w.r.t. pred)."""
    torch._dynamo.reset()

    def warm(compiled):
        for _ in range(2):
            contenders.value_and_grad(compiled, inputs, inputs[0])
    compiled, err = contenders.compile_provider(providers["plain"], warm, dynamic=False)
    if compiled is None:
        records.loud(f"torch.compile failed for the plain PConv loss: {err}")
        notes["plain_compile"] = f"compile failed: {err}"
    else:
        providers["plain_compile"] = compiled


def step_mismatch(fn: Callable, ref: Tuple[torch.Tensor, torch.Tensor], inputs: Sequence[Any], rtol: float,
                  grad_rtol: float) -> str:
    """'' when fn's total is within ``rtol`` of ``ref``'s and its gradient w.r.t. pred within ``grad_rtol``
    of ``ref``'s in the L2 norm (``||g - g_ref|| / ||g_ref||``), else what differs. The gradient is not
    compared entrywise: the L1 terms' sign() makes single entries jump where a feature or Gram
    difference is within rounding of 0, and those entries follow whichever rounding an implementation
    has (fp32 plain itself is ~5e-3 of the largest entry away from its fp64 value at 128 x 128)."""
    out, grad = contenders.value_and_grad(fn, inputs, inputs[0])
    problems = []
    if not torch.allclose(out.double(), ref[0].double(), rtol=rtol, atol=0.0):
        problems.append(f"loss {out.item():.9g} != {ref[0].item():.9g} (rtol {rtol:g})")
    err = ((grad.double() - ref[1].double()).norm() / ref[1].double().norm()).item()
    if not err <= grad_rtol:
        problems.append(f"grad relative L2 error {err:.3g} > {grad_rtol:g}")
    return "; ".join(problems)


def check(op: str, providers: Dict[str, Callable], notes: Dict[str, str], inputs: Sequence[Any], base_name: str,
          args, failures: List[str], where: str) -> None:
    """Every provider's total (rtol 1e-5 in fp32; ``--compile-rtol`` for plain_compile) and gradient
    w.r.t. pred (``--grad-rtol``, in the L2 norm) against the baseline's (:func:`step_mismatch`), by
    ``contenders.check_providers``."""
    def compare(name, fn, ref):
        rtol = args.compile_rtol if name == "plain_compile" else contenders.RTOL.get(args.torch_dtype, 1e-5)
        return step_mismatch(fn, ref, inputs, rtol, max(rtol, args.grad_rtol))
    ref = contenders.check_providers(providers, notes, inputs, args, failures, where, f"{op} ", baseline=base_name,
                                     compare=compare)
    print(f"  {op} {where}: {base_name} total {ref[0].item():.9g}, max |grad| {ref[1].abs().max().item():.4g}",
          flush=True)


# --------------------------------------------------------------------------------------------- timing

def step_case(fn: Callable, inputs: Sequence[Any]) -> measure.Case:
    """One full step, ``torch.autograd.grad(fn(*inputs), pred)``, as a Case with an empty setup: with a
    setup, ``measure.time_cases`` takes one call per sample and skips the calibration call (a step takes
    seconds; the setup itself does nothing and is untimed)."""
    full = measure.mode_case(fn, inputs, (inputs[0],), "full").fn
    return measure.Case(lambda _state: full(), setup=lambda: None)


def counts(shape: Sequence[int], args) -> Tuple[int, int]:
    """(warmup, repeats) for a shape: the -large ones above 256 x 256 pixels."""
    if shape[-1] * shape[-2] > LARGE_PIXELS:
        return args.warmup_large, args.repeats_large
    return args.warmup, args.repeats


def profile_step(fn: Callable, inputs: Sequence[Any], top: int, title: str) -> None:
    """Prints the ``top`` ops by self CPU time of one step (after the timed runs have warmed it up)."""
    from torch.profiler import ProfilerActivity, profile
    case = step_case(fn, inputs)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        case.fn(None)
    print(f"\n--- profile: {title} (one step, self CPU time) ---")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=top, max_name_column_width=48))


def bench_op(op: str, shape: Sequence[int], args, meta, failures: List[str], profile_top: int = 0) -> List[Dict]:
    device, dtype = args.device, args.torch_dtype
    where = f"{records.shape_str(shape)} {args.dtype}"
    inputs = make_inputs(shape, dtype, device)
    providers, notes = (pconv_providers if op == "pconv_step" else notebook_providers)(args, dtype, device)
    base_name = BASELINE[op]
    if op == "pconv_step" and (args.compile or (args.providers and "plain_compile" in args.providers)):
        add_compiled(providers, notes, inputs)
    if args.providers is not None:  # the baseline always runs
        providers = {k: v for k, v in providers.items() if k in args.providers or k == base_name}
        notes = {k: v for k, v in notes.items() if k in args.providers}
    check(op, providers, notes, inputs, base_name, args, failures, where)

    cases = {name: step_case(fn, inputs) for name, fn in providers.items()}
    warmup, repeats = counts(shape, args)
    timings = measure.time_cases(cases, device=device, warmup=warmup, repeats=repeats, min_sample_ms=0.0)
    rows: List[Dict] = []
    base = {"op": op, "shape": records.shape_str(shape), "dtype": args.dtype, "mode": "full", "gbps": math.nan,
            "roofline_gbps": math.nan, "pct_roofline": math.nan, **meta}
    for name in list(providers) + [n for n in notes if n not in providers]:
        row = {**base, "provider": name, "note": records.join_notes(notes.get(name, ""), SETTINGS.get(name, ""))}
        if name in providers:
            t = timings[name]
            peak = measure.peak_memory_bytes(cases[name].fn, setup=cases[name].setup, device=device)
            row.update(median_ms=t.median_ms, p20_ms=t.p20_ms, p80_ms=t.p80_ms, peak_mem_mb=peak / 2**20)
        else:
            row.update(median_ms=math.nan, p20_ms=math.nan, p80_ms=math.nan, peak_mem_mb=math.nan)
        rows.append(row)
    fill_ratios(rows, base_name)
    print(f"  {op} {where}: done ({warmup} warmup, {repeats} repeats)", flush=True)
    if profile_top:
        for name, fn in providers.items():
            profile_step(fn, inputs, profile_top, f"{op} {where} {name}")
    return rows


def fill_ratios(rows: List[Dict], base_name: str) -> None:
    """speedup_vs_eager = baseline median / row median (the baseline is ``plain`` or ``notebook``, eager),
    speedup_vs_compile = plain_compile's / row's; ours's note gets its peak memory over the baseline's."""
    by = {r["provider"]: r for r in rows}
    for r in rows:
        for col, ref in (("speedup_vs_eager", by.get(base_name)), ("speedup_vs_compile", by.get("plain_compile"))):
            ok = ref is not None and records._finite(ref["median_ms"]) and records._finite(r["median_ms"])
            r[col] = ref["median_ms"] / r["median_ms"] if ok and r["median_ms"] > 0 else math.nan
        b = by.get(base_name)
        if r["provider"] != base_name and b is not None and records._finite(r["peak_mem_mb"]) \
                and records._finite(b["peak_mem_mb"]) and b["peak_mem_mb"] > 0:
            r["mem_ratio"] = r["peak_mem_mb"] / b["peak_mem_mb"]
            r["note"] = records.join_notes(r["note"], f"peak_mem_vs_{base_name}={r['mem_ratio']:.3g}")


TABLE_COLS = [("op", "op", 0), ("shape", "shape", 0), ("provider", "provider", 0), ("median_ms", "median ms", 4),
              ("p20_ms", "p20", 4), ("p80_ms", "p80", 4), ("speedup_vs_eager", "x baseline", 3),
              ("speedup_vs_compile", "x compile", 3), ("peak_mem_mb", "peak MB", 4), ("mem_ratio", "mem ratio", 3),
              ("note", "note", 0)]


def add_arguments(p) -> None:
    p.add_argument("--ops", default=",".join(OPS), help="comma-separated subset of " + ",".join(OPS))
    p.add_argument("--compile", action="store_true",
                   help="also time torch.compile of the plain PConv loss (plain_compile; compiling takes minutes)")
    p.add_argument("--compile-rtol", type=float, default=1e-3,
                   help="tolerance of plain_compile's check against plain (default 1e-3; see the module doc)")
    p.add_argument("--grad-rtol", type=float, default=1e-4,
                   help="tolerance of the gradient's relative L2 error against the baseline (default 1e-4)")
    p.add_argument("--warmup-large", type=int, default=1,
                   help="untimed steps per provider for shapes above 256x256 pixels (default 1)")
    p.add_argument("--repeats-large", type=int, default=3,
                   help="timed steps per provider for shapes above 256x256 pixels (default 3)")
    p.add_argument("--profile", type=int, default=0, metavar="N",
                   help="print the N ops with the most self CPU time of one step per provider, at the first shape")
    p.set_defaults(repeats=-1, warmup=-1)  # resolved in main (harness's defaults are for millisecond ops)


def main(argv=None) -> int:
    args = harness.parse_args(__doc__.splitlines()[0], argv, add_arguments, shapes=(SHAPES, QUICK_SHAPES))
    if args.repeats < 0:
        args.repeats = 1 if args.quick else 5
    if args.warmup < 0:
        args.warmup = 1
    ops = [o.strip() for o in args.ops.split(",") if o.strip()]
    bad = [o for o in ops if o not in OPS]
    if bad:
        raise SystemExit(f"unknown op(s) {bad}; choose from {list(OPS)}")
    bad = [p for p in args.providers or () if p not in PROVIDERS]
    if bad:
        raise SystemExit(f"unknown provider(s) {bad}; choose from {list(PROVIDERS)}")
    meta = harness.header("composite step", args,
                          extra=f"large shapes {args.repeats_large} repeats ({args.warmup_large} warmup), ")
    failures: List[str] = []
    rows: List[Dict] = []
    for i, shape in enumerate(args.shapes):
        for op in ops:
            rows += bench_op(op, shape, args, meta, failures, args.profile if i == 0 else 0)
    return finish(rows, failures, args, meta)


def op_png(op: str, png: str) -> str:
    """Each objective's PNG: ``plots/<op>_<device>.png`` by default, ``<png>_<op>.png`` for a ``--plot`` path."""
    root, ext = os.path.splitext(png)
    base = os.path.basename(root)
    if base.startswith("composite_"):
        return os.path.join(os.path.dirname(root), op + base[len("composite"):] + ext)
    return f"{root}_{op}{ext}"


def finish(rows: List[Dict], failures: Sequence[str], args, meta) -> int:
    """Table, CSV, plots, failure banner; the exit status (harness.finish would recompute the speedups
    against providers named eager / compile, which this script does not have)."""
    print(f"\n1-min load average at the end: {harness.load_average():.2f}")
    print(records.format_table(rows, TABLE_COLS, left=3))
    csv_path, png_path = harness.default_paths(args, "composite", args.device)
    plots = (([r for r in rows if r["op"] == op], op_png(op, png_path),
              f"{op}\n{meta['device']}, {meta['threads']} threads, {args.dtype}, torch {meta['torch_version']}")
             for op in dict.fromkeys(r["op"] for r in rows))
    return harness.write_outputs(rows, failures, args, csv_path, plots, against="the baseline")


if __name__ == "__main__":
    sys.exit(main())
