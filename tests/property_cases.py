"""Generated cases, an independent float64 oracle and the checks of ``tests/test_properties.py``.

Every public loss is drawn with its options, shapes (N, C, H, W from 0; H, W up to 9), dtypes, memory
layouts and mask kinds, run on one backend (value and gradient by autograd) and compared with an
oracle written here in plain float64 torch from the documented semantics (README "Mask convention",
the docstrings of ``inpaint_fast.functional``, the issue-12 contract), never with
``inpaint_fast.reference``. A fused backend is also compared with the reference backend.

A case is a :class:`Case` (its repr is the whole description; :func:`build` makes its tensors
deterministically from ``case.seed``), so a falsifying example reproduces with::

    from tests.property_cases import Case, Mask, check   # the Case(...) hypothesis printed
    check(Case(...), 'cpu')

Run as ``python -m tests.property_cases BACKEND [SCALE [FAMILY,...]]``: the sweep of one backend in
this process (the fused kernels may crash on odd inputs, so ``test_properties.py`` runs it in a
child process); prints one JSON line: per family the number of cases run, the seconds and the failure.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
import tempfile
import time
import traceback
from collections import Counter
from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F

if not torch.cuda.is_available():  # before triton.jit runs (inpaint_fast's import), as conftest does
    os.environ.setdefault("TRITON_INTERPRET", "1")

from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import inpaint_fast as IF  # noqa: E402

FAMILIES = ("masked_l1", "masked_l2", "masked_charbonnier", "reconstruction_loss", "masked_error_stats",
            "total_variation", "gram_matrix", "style_loss", "perceptual_loss", "frequency_loss")
PIXEL = ("masked_l1", "masked_l2", "masked_charbonnier")
FEATURE = ("gram_matrix", "style_loss", "perceptual_loss")  # single-channel masks only
DTYPES = ("float64", "float32", "float16", "bfloat16")
IMAGE_LAYOUTS = ("contiguous", "channels_last", "strided", "transposed", "offset")
MASK_KINDS = ("bool", "uint8_01", "uint8_255", "uint8_any", "float_binary", "float_soft")
MASK_FORMS = ("N1HW", "NCHW", "NHW", "11HW", "HW")
MASK_LAYOUTS = ("contiguous", "expanded", "strided", "transposed", "channels_last")
EPS = 1e-8
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# (rtol, atol): |library - oracle| <= rtol * |oracle| + atol * scale, where the scale is 1 for the
# losses (inputs in [-1, 1]: every term is O(1) and non-negative, no cancellation), the magnitude of
# the Gram entries for gram_matrix / style_loss (they cancel), and for a gradient the larger of
# max |oracle gradient| and |loss scale| * max |value| (a gradient that cancels to ~0).
TOL = {"float64": (1e-9, 1e-10), "float32": (1e-4, 2e-5), "float16": (1.5e-2, 4e-3), "bfloat16": (6e-2, 3e-2)}
# relative size below which a Gram difference may take either sign in the library's precision
NEAR_TIE = {"float64": 1e-12, "float32": 2e-5, "float16": 3e-3, "bfloat16": 2.5e-2}

COUNTS: Counter = Counter()  # (backend, family) -> cases checked (hypothesis' shrinking runs included)


# ---- cases --------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Mask:
    arg: str                 # 'mask' (1 = known) or 'hole' (1 = missing)
    kind: str                # MASK_KINDS
    fill: str                # 'zeros' | 'ones' | 'random'
    form: str                # MASK_FORMS
    layout: str              # MASK_LAYOUTS
    dtype: str = "float32"   # for the float kinds
    requires_grad: bool = False


@dataclasses.dataclass(frozen=True)
class Case:
    family: str
    shape: Tuple[int, int, int, int]
    dtype: str
    values: str              # 'uniform' | 'quantized' (many ties) | 'ties' (target = pred at half the pixels) | 'equal'
    pred_layout: str
    target_layout: str       # IMAGE_LAYOUTS or 'expanded' (stride 0 over N)
    mask: Optional[Mask]
    options: Tuple[Tuple[str, object], ...]
    gscale: float            # d loss / d output for a scalar output (the loss scale), else the cotangent's scale
    seed: int
    nonfinite: Tuple[Tuple[str, int, float], ...] = ()   # (tensor 'pred'|'target', flat index, value)

    @property
    def opts(self) -> dict:
        return dict(self.options)


def _mask_shape(form: str, shape) -> tuple:
    n, c, h, w = shape
    return {"N1HW": (n, 1, h, w), "NCHW": (n, c, h, w), "NHW": (n, h, w), "11HW": (1, 1, h, w), "HW": (h, w)}[form]


@st.composite
def masks(draw, family: str, dtype: str, shape, allow_grad: bool = True) -> Optional[Mask]:
    if family != "reconstruction_loss" and draw(st.integers(0, 4)) == 0:
        return None
    forms = [f for f in MASK_FORMS if not (family in FEATURE and f == "NCHW" and shape[1] != 1)]
    form = draw(st.sampled_from(forms))
    layouts = [lay for lay in MASK_LAYOUTS if not (lay == "channels_last" and form in ("NHW", "HW"))]
    kind = draw(st.sampled_from(MASK_KINDS))
    is_float = kind.startswith("float")
    return Mask(arg=draw(st.sampled_from(("mask", "hole"))), kind=kind,
                fill=draw(st.sampled_from(("random", "random", "random", "zeros", "ones"))), form=form,
                layout=draw(st.sampled_from(layouts)),
                dtype=draw(st.sampled_from((dtype, "float32", "float64"))) if is_float else "float32",
                requires_grad=is_float and allow_grad and draw(st.integers(0, 5)) == 0)


def _region(draw, mask, extra=()):
    return draw(st.sampled_from((None, "all") if mask is None else (None, "hole", "known", "all") + extra))


@st.composite
def cases(draw, family: str, *, nonfinite: bool = False, dtypes=DTYPES) -> Case:
    """A case of ``family`` (``nonfinite``: with 1 to 3 NaN / inf values in pred or target)."""
    dims = [draw(st.sampled_from((1, 1, 2, 2, 3))), draw(st.sampled_from((1, 1, 2, 3, 3))),
            draw(st.integers(1, 9)), draw(st.integers(1, 9))]
    if draw(st.sampled_from((False,) * 5 + (True,))):  # an empty image: about one case in six
        for i in draw(st.sets(st.integers(0, 3), min_size=1)):
            dims[i] = 0
    n, c, h, w = shape = tuple(dims)
    dtype = draw(st.sampled_from(dtypes))
    values = draw(st.sampled_from(("uniform", "quantized", "ties", "equal")))
    if family == "frequency_loss" and values == "quantized":
        values = "uniform"  # a spectrum with exact zeros has no defined magnitude gradient
    opts = {}
    mask = None
    if family in PIXEL or family == "reconstruction_loss":
        mask = draw(masks(family, dtype, shape))
        if family != "reconstruction_loss":
            opts["region"] = _region(draw, mask)
        opts["normalize"] = draw(st.sampled_from(("mask", "all")))
        opts["reduction"] = draw(st.sampled_from(("mean", "sum", "none")))
        if draw(st.integers(0, 4)) == 0:
            opts["eps"] = 1e-3
        loss = {"masked_l1": "l1", "masked_l2": "l2", "masked_charbonnier": "charbonnier"}.get(family)
        if family == "reconstruction_loss":
            loss = draw(st.sampled_from(("l1", "l2", "charbonnier")))
            opts["loss"] = loss
            opts["lambda_hole"] = draw(st.sampled_from((6.0, 1.0, 0.5, 0.0)))
            opts["lambda_valid"] = draw(st.sampled_from((1.0, 2.0, 0.0)))
        if loss == "charbonnier":
            opts["charbonnier_eps"] = draw(st.sampled_from((1e-3, 1e-6, 0.1)))
    elif family == "masked_error_stats":
        mask = draw(masks(family, dtype, shape, allow_grad=False))
    elif family == "total_variation":
        mask = draw(masks(family, dtype, shape))
        opts["region"] = _region(draw, mask, ("hole_dilated", "hole_dilated", "hole_dilated"))
        opts["p"] = draw(st.sampled_from((1, 2)))
        opts["normalize"] = draw(st.sampled_from(("mask", "all")))
        opts["reduction"] = draw(st.sampled_from(("mean", "sum", "none")))
        if draw(st.integers(0, 4)) == 0:
            opts["eps"] = 1e-3
    elif family == "gram_matrix":
        mask = draw(masks(family, dtype, shape))
        opts["region"] = _region(draw, mask)
        if draw(st.integers(0, 4)) == 0:
            opts["eps"] = 1e-3
    elif family in ("style_loss", "perceptual_loss"):
        mask = draw(masks(family, dtype, shape))
        opts["region"] = _region(draw, mask)
        extractor = draw(st.sampled_from(tuple(EXTRACTORS)))
        opts["extractor"] = extractor
        layers = EXTRACTOR_LAYERS[extractor]
        opts["reduction"] = draw(st.sampled_from(("mean", "sum", "none")))
        opts["mask_resize"] = draw(st.sampled_from(("nearest", "area")))
        if draw(st.booleans()):
            opts["layer_weights"] = tuple(draw(st.sampled_from((0.0, 0.5, 1.0, 2.0))) for _ in range(layers))
        if family == "perceptual_loss":
            opts["normalize"] = draw(st.sampled_from(("mask", "all")))
            loss = draw(st.sampled_from(("l1", "l2", "mse", "per_layer")))
            opts["loss"] = (tuple(draw(st.sampled_from(("l1", "l2", "mse"))) for _ in range(layers))
                            if loss == "per_layer" else loss)
            # feature normalisation: continuous values in float32/float64 only (in float16 the normalised
            # features are rounded by both implementations alike, and a zero vector has no unit direction)
            # (and not for pred == target: normalised in different memory layouts, equal features may
            # differ by a rounding, where the L1 slope is +-1)
            if dtype in ("float32", "float64") and values == "uniform" and draw(st.integers(0, 2)) == 0:
                opts["feature_norm"] = draw(st.sampled_from(("unit", "instance")))
        if draw(st.integers(0, 4)) == 0:
            opts["eps"] = 1e-3
    elif family == "frequency_loss":
        opts["reduction"] = draw(st.sampled_from(("mean", "sum", "none")))
    else:
        raise ValueError(family)
    bad = ()
    if nonfinite:
        numel = n * c * h * w
        k = draw(st.integers(1, 3))
        vals = (math.nan, math.inf, -math.inf)
        if family == "frequency_loss":  # inf through an FFT: the NaN/inf pattern depends on the FFT's butterflies
            vals = (math.nan,)
        bad = tuple((draw(st.sampled_from(("pred", "target"))) if family not in ("total_variation", "gram_matrix")
                     else "pred", draw(st.integers(0, max(numel - 1, 0))), draw(st.sampled_from(vals)))
                    for _ in range(k)) if numel else ()
    gscale = draw(st.sampled_from((1.0, 1.0, -0.5, 3.0, 1024.0)))
    return Case(family=family, shape=shape, dtype=dtype, values=values,
                pred_layout=draw(st.sampled_from(IMAGE_LAYOUTS)),
                target_layout=draw(st.sampled_from(IMAGE_LAYOUTS + ("expanded",))), mask=mask,
                options=tuple(sorted(opts.items())), gscale=gscale, seed=draw(st.integers(0, 2**31 - 1)),
                nonfinite=bad)


# ---- tensors --------------------------------------------------------------------------------------

def _layout(x: torch.Tensor, layout: str) -> torch.Tensor:
    if layout == "contiguous":
        return x.contiguous()
    if layout == "channels_last":
        return x.contiguous(memory_format=torch.channels_last)
    if layout == "strided":  # every other column of a wider tensor: not dense
        big = x.new_zeros(*x.shape[:-1], 2 * x.shape[-1])
        big[..., ::2] = x
        return big[..., ::2]
    if layout == "transposed":  # dense, the last two strides swapped
        return x.transpose(-1, -2).contiguous().transpose(-1, -2)
    if layout == "offset":  # a view at a storage offset
        big = x.new_zeros(x.shape[0] + 1, *x.shape[1:])
        big[1:] = x
        return big[1:]
    raise ValueError(layout)


@dataclasses.dataclass
class Tensors:
    pred: torch.Tensor
    target: torch.Tensor
    mask: Optional[torch.Tensor]


def _mask_tensor(spec: Mask, shape, gen: torch.Generator) -> torch.Tensor:
    full = _mask_shape(spec.form, shape)
    base = list(full)
    if spec.layout == "expanded":  # stride 0 along a broadcast dimension
        if spec.form == "11HW":
            base[2] = 1
        else:
            base[0] = 1
            if spec.form == "NCHW":
                base[1] = 1
    u = torch.rand(base, generator=gen, dtype=torch.float64)
    if spec.fill == "zeros":
        u = torch.zeros_like(u)
    elif spec.fill == "ones":
        u = torch.ones_like(u)
    if spec.kind == "float_soft":
        if spec.fill == "random":  # exact 0 and 1 too
            u = torch.where(u < 0.15, 0.0, torch.where(u > 0.85, 1.0, u))
        m = u.to(getattr(torch, spec.dtype))
    else:
        bits = u > 0.5
        if spec.kind == "bool":
            m = bits
        elif spec.kind == "uint8_01":
            m = bits.to(torch.uint8)
        elif spec.kind == "uint8_255":
            m = bits.to(torch.uint8) * 255
        elif spec.kind == "uint8_any":
            m = bits.to(torch.uint8) * torch.randint(1, 256, base, generator=gen).to(torch.uint8)
        else:
            m = bits.to(getattr(torch, spec.dtype))
    if spec.layout == "expanded":
        m = m.expand(full)
    elif spec.layout != "contiguous":
        m = _layout(m, spec.layout)
    if spec.requires_grad:
        m = m.detach().requires_grad_(True)
    return m


def build(case: Case) -> Tensors:
    """The case's tensors, the same on every call: pred a leaf requiring grad with the case's layout."""
    gen = torch.Generator().manual_seed(case.seed)
    dtype = getattr(torch, case.dtype)
    shape = case.shape
    if case.values == "quantized":
        p = torch.randint(-1, 2, shape, generator=gen).double() * 0.5
        t = torch.randint(-1, 2, shape, generator=gen).double() * 0.5
    else:
        p = torch.rand(shape, generator=gen, dtype=torch.float64) * 2 - 1
        t = torch.rand(shape, generator=gen, dtype=torch.float64) * 2 - 1
    if case.values == "ties":
        t = torch.where(torch.rand(shape, generator=gen, dtype=torch.float64) < 0.5, p, t)
    elif case.values == "equal":
        t = p.clone()
    for which, index, value in case.nonfinite:
        (p if which == "pred" else t).view(-1)[index] = value
    p, t = p.to(dtype), t.to(dtype)
    pred = _layout(p, case.pred_layout).detach().requires_grad_(True)
    if case.target_layout == "expanded":
        target = (t[:1] if shape[0] else t.new_zeros(1, *shape[1:])).expand(shape)
    else:
        target = _layout(t, case.target_layout)
    mask = None if case.mask is None else _mask_tensor(case.mask, shape, gen)
    return Tensors(pred, target, mask)


# Feature extractors for style / perceptual: linear with non-negative coefficients (so the
# near-tie allowance of the style gradient can be pushed back through them, see _style_allowance).
EXTRACTORS = {
    "identity": lambda x: [x],
    "pyramid": lambda x: [x, x[..., ::2, ::2]],
    "widen": lambda x: [torch.cat([x, 0.5 * x[:, :1]], dim=1), x[..., ::2, :]],
}
EXTRACTOR_LAYERS = {"identity": 1, "pyramid": 2, "widen": 2}


# ---- the library ----------------------------------------------------------------------------------

def _mask_kwargs(case: Case, t: Tensors) -> dict:
    return {} if case.mask is None else {case.mask.arg: t.mask}


def call_library(case: Case, t: Tensors):
    o = case.opts
    kw = _mask_kwargs(case, t)
    fam = case.family
    if fam in PIXEL:
        fn = getattr(IF, fam)
        return fn(t.pred, t.target, **kw, **o)
    if fam == "reconstruction_loss":
        return IF.reconstruction_loss(t.pred, t.target, **kw, **o)
    if fam == "masked_error_stats":
        return IF.masked_error_stats(t.pred, t.target, **kw)
    if fam == "total_variation":
        return IF.total_variation(t.pred, **kw, **o)
    if fam == "gram_matrix":
        return IF.gram_matrix(t.pred, **kw, **o)
    if fam in ("style_loss", "perceptual_loss"):
        o = dict(o)
        o["extractor"] = EXTRACTORS[o["extractor"]]
        if "layer_weights" in o:
            o["layer_weights"] = list(o["layer_weights"])
        if isinstance(o.get("loss"), tuple):
            o["loss"] = list(o["loss"])
        return getattr(IF, fam)(t.pred, t.target, **kw, **o)
    if fam == "frequency_loss":
        return IF.frequency_loss(t.pred, t.target, **o)
    raise ValueError(fam)


def _flatten(out) -> List[Tuple[str, torch.Tensor]]:
    if isinstance(out, dict):
        return [(k, out[k]) for k in sorted(out)]
    if isinstance(out, (list, tuple)):
        return [(f"layer{i}", v) for i, v in enumerate(out)]
    return [("value", out)]


def _cotangents(case: Case, shapes) -> List[torch.Tensor]:
    gen = torch.Generator().manual_seed(case.seed + 1)
    gs = []
    for shape in shapes:
        if len(shape) == 0:
            gs.append(torch.tensor(case.gscale, dtype=torch.float64))
        else:
            gs.append((torch.rand(shape, generator=gen, dtype=torch.float64) * 2 - 1) * abs(case.gscale))
    return gs


class Mismatch(AssertionError):
    pass


@dataclasses.dataclass
class Result:
    outputs: List[Tuple[str, torch.Tensor]]   # float64 copies
    grad_pred: Optional[torch.Tensor]
    grad_mask: Optional[torch.Tensor]
    scales: Optional[List[torch.Tensor]] = None  # oracle only: the atol scale of each output
    grad_allowance: Optional[torch.Tensor] = None  # oracle only: extra elementwise slack of grad_pred


def run_library(case: Case, backend: str, shapes=None) -> Result:
    """Value and gradient (autograd, cotangents from the case) on ``backend``. ``shapes``: the oracle's
    output shapes (the cotangents); a different shape is a mismatch."""
    t = build(case)
    with IF.use_backend(backend):
        out = call_library(case, t)
        outs = _flatten(out)
        if case.family == "masked_error_stats":
            for name, v in outs:
                if v.dtype != t.pred.dtype or v.shape != ():
                    raise Mismatch(f"{backend}: {name} has dtype {v.dtype} and shape {tuple(v.shape)}, expected "
                                   f"{t.pred.dtype} and ()")
            return Result([(k, v.detach().double()) for k, v in outs], None, None)
        got = [tuple(v.shape) for _, v in outs]
        if shapes is None:
            shapes = got
        if [tuple(s) for s in shapes] != got and not _empty_spectrum(case):
            raise Mismatch(f"{backend}: output shapes {got}, expected {[tuple(s) for s in shapes]}")
        for name, v in outs:
            if v.dtype != t.pred.dtype:
                raise Mismatch(f"{backend}: output {name} has dtype {v.dtype}, expected {t.pred.dtype}")
        gs = _cotangents(case, got)
        total = sum(((v.double() * g).sum() for (_, v), g in zip(outs, gs)), torch.zeros((), dtype=torch.float64))
        if not total.requires_grad:
            raise Mismatch(f"{backend}: the output does not depend on pred (no grad_fn): {[v for _, v in outs]}")
        total.backward()
    g = t.pred.grad
    if g is None:
        raise Mismatch(f"{backend}: pred.grad is None after backward")
    if g.shape != t.pred.shape or g.dtype != t.pred.dtype:
        raise Mismatch(f"{backend}: pred.grad has shape {tuple(g.shape)} / {g.dtype}, expected "
                       f"{tuple(t.pred.shape)} / {t.pred.dtype}")
    gm = None
    if t.mask is not None and t.mask.requires_grad:
        gm = t.mask.grad if t.mask.grad is not None else torch.zeros_like(t.mask)
        gm = gm.double()
    return Result([(k, v.detach().double()) for k, v in outs], g.double(), gm)


def _empty_spectrum(case: Case) -> bool:
    """frequency_loss(reduction='none') of an image with H or W = 0: the half spectrum's width is
    not defined (W // 2 + 1 columns of nothing); only 'all zeros' is checked."""
    return case.family == "frequency_loss" and case.opts["reduction"] == "none" and 0 in case.shape[2:]


# ---- the float64 oracle ---------------------------------------------------------------------------
# Written from the documentation: binary (bool/uint8) masks count any non-zero as 1; a floating mask
# is a weight in [0, 1] cast to the image dtype; hole = 1 - known; a region's mean is
# sum(w e) / max(sum(w over the broadcast (N, C, H, W)), eps) or / numel for normalize='all'; an empty
# region or tensor gives 0 (and a zero gradient); a term whose loss weight is 0 is left out.

def o_known(case: Case, m: torch.Tensor) -> torch.Tensor:
    m4 = m[None, None] if m.dim() == 2 else m[:, None] if m.dim() == 3 else m
    if m4.dtype in (torch.bool, torch.uint8):
        k = (m4 != 0).double()
        return 1 - k if case.mask.arg == "hole" else k
    k = m4.to(getattr(torch, case.dtype)).double()
    return 1 - k if case.mask.arg == "hole" else k


def o_error(d: torch.Tensor, loss: str, ceps: float = 1e-3) -> torch.Tensor:
    if loss == "l1":
        return d.abs()
    if loss == "l2":
        return d * d
    return torch.sqrt(d * d + ceps * ceps)


def o_mean(e: torch.Tensor, w: Optional[torch.Tensor], normalize: str, reduction: str, eps: float) -> torch.Tensor:
    we = e if w is None else e * w
    if reduction == "none":
        return we.expand(e.shape) if we.shape != e.shape else we
    s = we.sum()
    if reduction == "sum":
        return s
    if w is None or normalize == "all":
        return s / max(e.numel(), 1)  # an empty tensor: 0
    return s / w.expand(e.shape).sum().clamp_min(eps)


def o_region(known: Optional[torch.Tensor], region: str) -> Optional[torch.Tensor]:
    if region == "all" or known is None:
        return None
    return 1 - known if region == "hole" else known


def o_resolve(region, has_mask: bool) -> str:
    return region if region is not None else ("hole" if has_mask else "all")


def o_pixel(case, p, t, known):
    o = case.opts
    eps = o.get("eps", EPS)
    fam = case.family
    if fam == "reconstruction_loss":
        loss, lh, lv = o["loss"], o["lambda_hole"], o["lambda_valid"]
    else:
        loss = {"masked_l1": "l1", "masked_l2": "l2", "masked_charbonnier": "charbonnier"}[fam]
        region = o_resolve(o.get("region"), known is not None)
        if region == "all":
            known = None
        lh, lv = (1.0, 0.0) if region == "hole" else (0.0, 1.0)
    e = o_error(p - t, loss, o.get("charbonnier_eps", 1e-3))
    norm, red = o["normalize"], o["reduction"]
    if known is None:
        return lv * o_mean(e, None, norm, red, eps)
    terms = [lam * o_mean(e, w, norm, red, eps) for lam, w in ((lh, 1 - known), (lv, known)) if lam != 0]
    if not terms:  # both loss weights 0: exactly 0 (even with inf / NaN errors), a zero gradient
        return torch.zeros((), dtype=torch.float64) if red != "none" else torch.zeros(e.shape, dtype=torch.float64)
    return sum(terms[1:], terms[0])


def o_stats(case, p, t, known):
    """'full' is documented as (hole sum + known sum) / (hole area + known area)."""
    out = {}
    for loss in ("l1", "l2"):
        e = o_error(p - t, loss)
        out[f"hole_{loss}"] = e.new_zeros(()) if known is None else o_mean(e, 1 - known, "mask", "mean", EPS)
        out[f"known_{loss}"] = o_mean(e, known, "mask", "mean", EPS)
        if known is None:
            out[f"full_{loss}"] = o_mean(e, None, "mask", "mean", EPS)
        else:
            both = (e * (1 - known)).sum() + (e * known).sum()
            out[f"full_{loss}"] = both / max(e.numel(), EPS) if e.numel() else e.new_zeros(())
    return out


def o_dilate(hole: torch.Tensor) -> torch.Tensor:
    """The hole grown by one pixel: max over the 3x3 neighbourhood inside the image."""
    if hole.numel() == 0:
        return hole
    return F.max_pool2d(hole, kernel_size=3, stride=1, padding=1)


def o_tv(case, p, known):
    o = case.opts
    region = o_resolve(o.get("region"), known is not None)
    power, norm, red, eps = o["p"], o["normalize"], o["reduction"], o.get("eps", EPS)
    if known is None or region == "all":
        w = None
    elif region == "hole_dilated":
        w = o_dilate((1 - known).expand(known.shape))
    else:
        w = o_region(known, region)
    dh = p[:, :, 1:, :] - p[:, :, :-1, :]
    dw = p[:, :, :, 1:] - p[:, :, :, :-1]
    eh, ew = (dh.abs(), dw.abs()) if power == 1 else (dh * dh, dw * dw)
    wh = None if w is None else w[:, :, 1:, :] * w[:, :, :-1, :]
    ww = None if w is None else w[:, :, :, 1:] * w[:, :, :, :-1]
    th, tw = o_mean(eh, wh, norm, red, eps), o_mean(ew, ww, norm, red, eps)
    if red != "none":
        return th + tw
    out = torch.zeros(p.shape, dtype=torch.float64)
    h, wd = p.shape[2:]
    if h > 1:
        out = out + F.pad(th, (0, 0, 0, 1))
    if wd > 1:
        out = out + F.pad(tw, (0, 1, 0, 0))
    return out


def o_gram(f: torch.Tensor, w: Optional[torch.Tensor], eps: float) -> torch.Tensor:
    n, c, h, wd = f.shape
    ff = f.reshape(n, c, h * wd)
    if w is None:
        return ff @ ff.transpose(1, 2) / max(c * h * wd, 1)  # no positions: the zero matrix
    wf = w.expand(n, 1, h, wd).reshape(n, 1, h * wd)
    area = wf.sum(dim=2, keepdim=True).clamp_min(eps)
    return (ff * wf) @ ff.transpose(1, 2) / (c * area)


def o_spatial_weight(case, known):
    """The region weight (N|1, 1, H, W) of a feature loss, None for 'all'."""
    region = o_resolve(case.opts.get("region"), known is not None)
    return o_region(known, region)


def o_resize(w, size, mode):
    if w is None or tuple(w.shape[-2:]) == tuple(size):
        return w
    if w.numel() == 0 or 0 in tuple(size):  # nothing to resize: the (empty) weight of that size
        return w.new_zeros(*w.shape[:2], *size) + 0 * w.sum()
    return F.interpolate(w, size=tuple(size), mode=mode)


def o_combine(terms, layer_weights):
    if layer_weights is None:
        return sum(terms[1:], terms[0]) / len(terms)
    return sum(lw * t for lw, t in zip(layer_weights, terms))


def o_normalize_features(f, mode):
    if mode is None:
        return f
    if mode == "unit":
        return f / (torch.sqrt((f * f).sum(dim=1, keepdim=True)) + 1e-10)
    mean = f.mean(dim=(2, 3), keepdim=True)
    var = ((f - mean) ** 2).mean(dim=(2, 3), keepdim=True)
    return (f - mean) / torch.sqrt(var + 1e-5)


def o_features(case, p, t):
    ex = EXTRACTORS[case.opts["extractor"]]
    return ex(p), [f.detach() for f in ex(t)]


def o_perceptual(case, p, t, known):
    o = case.opts
    w = o_spatial_weight(case, known)
    fps, fts = o_features(case, p, t)
    losses = o["loss"] if isinstance(o["loss"], tuple) else (o["loss"],) * len(fps)
    terms = []
    for fp, ft, loss in zip(fps, fts, losses):
        fp, ft = o_normalize_features(fp, o.get("feature_norm")), o_normalize_features(ft, o.get("feature_norm"))
        e = (fp - ft).abs() if loss == "l1" else (fp - ft) ** 2
        terms.append(o_mean(e, o_resize(w, e.shape[-2:], o["mask_resize"]), o["normalize"], o["reduction"],
                            o.get("eps", EPS)))
    return terms if o["reduction"] == "none" else o_combine(terms, o.get("layer_weights"))


def o_style(case, p, t, known, keep=None):
    """``keep``: a list that receives (features, weight, G_pred, G_target, |dG|) per layer."""
    o = case.opts
    w = o_spatial_weight(case, known)
    fps, fts = o_features(case, p, t)
    eps = o.get("eps", EPS)
    terms, scales = [], []
    for fp, ft in zip(fps, fts):
        ww = o_resize(w, fp.shape[-2:], o["mask_resize"])
        gp, gt = o_gram(fp, ww, eps), o_gram(ft, ww, eps)
        diff = (gp - gt).abs()
        if keep is not None:
            diff.retain_grad() if diff.requires_grad else None
            keep.append((fp, ww, gp, gt, diff))
        mag = gp.detach().abs() + gt.abs()
        if o["reduction"] == "none":
            terms.append(diff)
            scales.append(mag)
        elif o["reduction"] == "sum":
            terms.append(diff.sum())
            scales.append(mag.sum())
        else:
            terms.append(diff.sum() / max(diff.numel(), 1))
            scales.append(mag.sum() / max(diff.numel(), 1))
    if o["reduction"] == "none":
        return terms, scales
    lws = o.get("layer_weights")
    return o_combine(terms, lws), o_combine(scales, None if lws is None else [abs(x) for x in lws])


def o_frequency(case, p, t):
    red = case.opts["reduction"]
    n, c, h, w = p.shape
    if p.numel() == 0:
        z = (p * 0).sum()
        return z if red != "none" else torch.zeros(n, c, h, w // 2 + 1, dtype=torch.float64) + z
    lp = torch.log1p(torch.fft.rfft2(p, norm="ortho").abs())
    lt = torch.log1p(torch.fft.rfft2(t, norm="ortho").abs())
    e = (lp - lt).abs()
    return e if red == "none" else e.sum() if red == "sum" else e.mean()


def run_oracle(case: Case) -> Result:
    """The oracle's value and gradient (float64 autograd, the same cotangents as the library's)."""
    t = build(case)
    p = t.pred.detach().double().requires_grad_(True)
    tg = t.target.detach().double()
    mask_leaf = None
    known = None
    if t.mask is not None:
        mask_leaf = t.mask.detach().requires_grad_(True) if t.mask.requires_grad else t.mask
        known = o_known(case, mask_leaf)
    fam = case.family
    keep = [] if fam == "style_loss" else None
    scales = None
    if fam in PIXEL or fam == "reconstruction_loss":
        out = o_pixel(case, p, tg, known)
    elif fam == "masked_error_stats":
        with torch.no_grad():
            out = o_stats(case, p, tg, known)
        return Result([(k, out[k].double()) for k in sorted(out)], None, None)
    elif fam == "total_variation":
        out = o_tv(case, p, known)
    elif fam == "gram_matrix":
        w = o_spatial_weight(case, known)
        out = o_gram(p, w, case.opts.get("eps", EPS))
        scales = [o_gram(p.detach().abs(), None if w is None else w.detach(), case.opts.get("eps", EPS))]
    elif fam == "perceptual_loss":
        out = o_perceptual(case, p, tg, known)
    elif fam == "style_loss":
        out, sc = o_style(case, p, tg, known, keep)
        scales = sc if isinstance(sc, list) else [sc]
    elif fam == "frequency_loss":
        out = o_frequency(case, p, tg)
        n_el = max(out.numel(), 1) if case.opts["reduction"] == "none" else max(p.shape[0] * p.shape[1] * p.shape[2]
                                                                            * (p.shape[3] // 2 + 1), 1)
        scales = [torch.tensor(3.0 * (n_el if case.opts["reduction"] == "sum" else 1))]
    else:
        raise ValueError(fam)
    outs = _flatten(out)
    gs = _cotangents(case, [tuple(v.shape) for _, v in outs])
    total = sum(((v * g).sum() for (_, v), g in zip(outs, gs)), torch.zeros((), dtype=torch.float64))
    leaves = [p] + ([mask_leaf] if mask_leaf is not None and mask_leaf.requires_grad else [])
    if total.requires_grad:
        total.backward()
    gp = p.grad if p.grad is not None else torch.zeros_like(p)
    gm = None
    if len(leaves) > 1:
        gm = (mask_leaf.grad if mask_leaf.grad is not None else torch.zeros_like(mask_leaf)).double()
    allowance = _style_allowance(case, p.shape, keep) if keep else None
    return Result([(k, v.detach()) for k, v in outs], gp.detach(), gm,
                  scales=[torch.as_tensor(s).detach().double() for s in scales] if scales else None,
                  grad_allowance=allowance)


def _style_allowance(case: Case, shape, keep) -> Optional[torch.Tensor]:
    """Slack on the style gradient for Gram entries whose difference is within the library's rounding of
    0: there sign(dG) may be -1, 0 or +1. With c = d loss / d |dG_ij| and A = |c| on those entries,
    |d G_ij / d F_kp| = (delta_ik |F_jp| + delta_jk |F_ip|) w_p / (C area), so the slack on the features
    is 2 w_p / (C area) ((A + A^T) |F|)_kp, pushed back to pred through the extractor (linear, with
    non-negative coefficients)."""
    tie = NEAR_TIE[case.dtype]
    slacks = []
    any_near = False
    for fp, ww, gp, gt, diff in keep:
        n, c, h, w = fp.shape
        coef = diff.grad if diff.grad is not None else torch.zeros_like(diff)
        near = diff.detach() <= tie * (gp.detach().abs() + gt.abs()) + 1e-300
        a = near.double() * coef.abs()
        if not bool(near.any()) or fp.numel() == 0:
            slacks.append(torch.zeros(fp.shape, dtype=torch.float64))
            continue
        any_near = True
        f = fp.detach().abs().reshape(n, c, h * w)
        if ww is None:
            wf = torch.ones(n, 1, h * w, dtype=torch.float64)
            area = torch.full((n, 1, 1), float(h * w), dtype=torch.float64)
        else:
            wf = ww.detach().expand(n, 1, h, w).reshape(n, 1, h * w)
            area = wf.sum(dim=2, keepdim=True).clamp_min(case.opts.get("eps", EPS))
        s = 2 * ((a + a.transpose(1, 2)) @ f) * wf / (c * area)
        slacks.append(s.reshape(n, c, h, w))
    if not any_near:
        return None
    x = torch.zeros(shape, dtype=torch.float64, requires_grad=True)
    feats = EXTRACTORS[case.opts["extractor"]](x)
    (g,) = torch.autograd.grad(feats, x, grad_outputs=slacks, allow_unused=True)
    return None if g is None else g


# ---- comparison -------------------------------------------------------------------------------------

def _describe(name, got, want, bad) -> str:
    idx = bad.nonzero()[:3].tolist()
    pairs = [(tuple(i), float(got[tuple(i)]), float(want[tuple(i)])) for i in idx] if got.dim() else \
        [((), float(got), float(want))]
    return f"{name}: {int(bad.sum())} of {bad.numel()} elements differ, e.g. (index, got, expected) {pairs}"


def _overflows(want: torch.Tensor, dtype: str) -> torch.Tensor:
    """Where the exact result is beyond the dtype's range (e.g. d loss / d mask ~ 1/eps = 1e8 on an empty
    region, in float16): there the library's +-inf is the correctly rounded result."""
    return want.abs() > 0.99 * torch.finfo(getattr(torch, dtype)).max


def _close(got: torch.Tensor, want: torch.Tensor, rtol: float, atol, dtype: str) -> torch.Tensor:
    """Elementwise 'bad' mask; equal non-finite values (same inf, both NaN) are not bad, nor an inf of
    the sign of a result beyond the dtype's range."""
    same = (got == want) | (got.isnan() & want.isnan())
    same |= got.isinf() & (torch.sign(got) == torch.sign(want)) & _overflows(want, dtype)
    return ~(same | ((got - want).abs() <= rtol * want.abs() + atol))


def compare(case: Case, got: Result, want: Result, what: str, slack: float = 1.0) -> List[str]:
    rtol, atol = TOL[case.dtype]
    rtol, atol = rtol * slack, atol * slack
    errors = []
    if [k for k, _ in got.outputs] != [k for k, _ in want.outputs]:
        return [f"outputs {[k for k, _ in got.outputs]} vs {what} {[k for k, _ in want.outputs]}"]
    for i, ((name, g), (_, w)) in enumerate(zip(got.outputs, want.outputs)):
        if _empty_spectrum(case):
            if g.numel() and not bool((g == 0).all()):
                errors.append(f"{name}: frequency map of an empty image is not all zeros: {g}")
            continue
        if g.shape != w.shape:
            errors.append(f"{name}: shape {tuple(g.shape)} vs {what} {tuple(w.shape)}")
            continue
        scale = want.scales[i] if want.scales else 1.0
        bad = _close(g, w, rtol, atol * scale, case.dtype)
        if bool(bad.any()):
            errors.append("value " + _describe(name, g, w, bad) + f" (vs {what})")
    # a gradient's scale: its largest element, or the value's times the loss scale when the gradient
    # cancels to ~0 (e.g. d mean / d w_i = (e_i - mean) / area on a single pixel)
    mdtype = case.mask.dtype if case.mask is not None else case.dtype
    vmax = abs(case.gscale) * max((float(v[v.isfinite()].abs().max()) for _, v in want.outputs
                                   if v[v.isfinite()].numel()), default=0.0)
    for name, g, w in (("grad pred", got.grad_pred, want.grad_pred), ("grad mask", got.grad_mask, want.grad_mask)):
        if w is None or g is None:
            if (w is None) != (g is None):
                errors.append(f"{name}: {'missing' if g is None else 'unexpected'} (vs {what})")
            continue
        if g.shape != w.shape:
            errors.append(f"{name}: shape {tuple(g.shape)} vs {what} {tuple(w.shape)}")
            continue
        finite = w[w.isfinite()]
        gmax = float(finite.abs().max()) if finite.numel() else 0.0
        extra = want.grad_allowance if (name == "grad pred" and want.grad_allowance is not None) else 0.0
        bad = _close(g, w, rtol, atol * max(gmax, vmax) + extra, case.dtype if name == "grad pred" else mdtype)
        if name == "grad mask" and want.grad_allowance is not None:
            continue  # near-tie Gram entries: the mask gradient's sign is not defined there
        if bool(bad.any()):
            errors.append(_describe(name, g, w, bad) + f" (max |expected| {gmax:.3g}; vs {what})")
    return errors


def _finite(case: Case, res: Result, want: Result) -> List[str]:
    """Finite results for finite inputs (except where the exact result overflows the dtype)."""
    errors = []
    for (name, v), (_, w) in zip(res.outputs, want.outputs):
        if v.shape == w.shape and not bool((v.isfinite() | _overflows(w, case.dtype)).all()):
            errors.append(f"non-finite value {name} for finite inputs: {v}")
    mdtype = case.mask.dtype if case.mask is not None else case.dtype
    for name, g, w, dtype in (("grad pred", res.grad_pred, want.grad_pred, case.dtype),
                              ("grad mask", res.grad_mask, want.grad_mask, mdtype)):
        if g is not None and w is not None and g.shape == w.shape:
            bad = ~(g.isfinite() | _overflows(w, dtype))
            if bool(bad.any()):
                errors.append(f"non-finite {name} for finite inputs: {int(bad.sum())} of {g.numel()}")
    return errors


def check(case: Case, backend: str) -> None:
    """The case on ``backend``: value and gradients against the oracle, finite, and (a fused backend)
    against the reference backend."""
    COUNTS[(backend, case.family)] += 1
    want = run_oracle(case)
    got = run_library(case, backend, [tuple(v.shape) for _, v in want.outputs])
    errors = _finite(case, got, want) + compare(case, got, want, "oracle")
    if backend != "reference":
        ref = run_library(case, "reference", [tuple(v.shape) for _, v in want.outputs])
        want_ref = dataclasses.replace(ref, scales=want.scales, grad_allowance=want.grad_allowance)
        errors += compare(case, got, want_ref, "reference backend", slack=2.0)
    if errors:
        raise Mismatch(f"{backend}: {case}\n  " + "\n  ".join(errors))


# ---- non-finite inputs ----------------------------------------------------------------------------

def _pattern(t: torch.Tensor) -> torch.Tensor:
    """0 finite, 1 NaN, 2 +inf, 3 -inf."""
    return torch.where(t.isnan(), 1, torch.where(t == math.inf, 2, torch.where(t == -math.inf, 3, 0)))


def _pattern_errors(got: Result, want: Result, what: str, grads: bool = True) -> List[str]:
    errors = []
    for (name, g), (_, w) in zip(got.outputs, want.outputs):
        if g.shape == w.shape and not bool((_pattern(g) == _pattern(w)).all()):
            errors.append(f"NaN/inf pattern of {name}: got {g.flatten()[:12].tolist()}, "
                          f"{what} {w.flatten()[:12].tolist()}")
    if grads and got.grad_pred is not None and want.grad_pred is not None:
        gg, wg = got.grad_pred, want.grad_pred
        pg, pw = _pattern(gg), _pattern(wg)
        if not bool((pg == pw).all()):
            bad = [tuple(i) for i in (pg != pw).nonzero()[:4].tolist()]
            errors.append(f"NaN/inf pattern of grad pred: {int((pg != pw).sum())} of {pg.numel()} differ from {what}, "
                          f"e.g. (index, got, {what}) {[(i, float(gg[i]), float(wg[i])) for i in bad]}")
    return errors


def _nan_must_propagate(case: Case) -> bool:
    """A NaN in an input the loss reads must reach the value (the cases where the documented formula
    makes that certain: every pixel enters a term, at weight 0 as 0 * NaN = NaN)."""
    n, c, h, w = case.shape
    t = build(case)
    in_pred = bool(t.pred.detach().isnan().any())
    in_target = bool(t.target.isnan().any())
    o = case.opts
    if case.family == "reconstruction_loss" and o["lambda_hole"] == 0 and o["lambda_valid"] == 0:
        return False
    if case.family in ("style_loss", "perceptual_loss") and 0.0 in (o.get("layer_weights") or ()):
        return False
    if case.family == "total_variation":
        return in_pred and (h > 1 or w > 1)
    if case.family == "gram_matrix":
        return in_pred
    return in_pred or in_target


def check_nonfinite(case: Case, backend: str) -> None:
    """NaN/inf inputs: a NaN reaches the value; the NaN/inf pattern of value and gradient is the
    reference backend's and the oracle's."""
    COUNTS[(backend, "nonfinite:" + case.family)] += 1
    errors = []
    want = run_oracle(case)
    shapes = [tuple(v.shape) for _, v in want.outputs]
    got = run_library(case, backend, shapes)
    if _nan_must_propagate(case):
        if case.family == "masked_error_stats":
            nan_out = all(bool(v.isnan().any()) for k, v in got.outputs if k.startswith("full"))
        else:
            nan_out = any(bool(v.isnan().any()) for _, v in got.outputs)
        if not nan_out:
            errors.append(f"a NaN input does not reach the value: {[v for _, v in got.outputs]}")
    # An inf through a Gram gradient, (g + g^T) F or g F + g^T F, is inf or inf - inf = NaN depending on
    # how the formula groups the symmetric cotangent: only the value's pattern is defined there.
    grads = not (case.family in ("gram_matrix", "style_loss") and any(math.isinf(v) for _, _, v in case.nonfinite))
    errors += _pattern_errors(got, want, "oracle", grads)
    if backend != "reference":
        errors += _pattern_errors(got, run_library(case, "reference", shapes), "reference backend", grads)
    if errors:
        raise Mismatch(f"{backend}: {case}\n  " + "\n  ".join(errors))


# ---- sweeps -----------------------------------------------------------------------------------------

# Examples per family and backend at scale 1 (measured: see test_properties.py's docstring).
EXAMPLES = {"reference": 250, "cpu": 250, "triton": 60}
NONFINITE_EXAMPLES = {"reference": 250, "cpu": 250, "triton": 60}


def _settings(n: int):
    return settings(max_examples=max(int(n), 1), derandomize=True, database=None, deadline=None,
                    print_blob=False, suppress_health_check=list(HealthCheck),
                    phases=(Phase.explicit, Phase.generate, Phase.shrink))


def dtypes_for(family: str, backend: str) -> Tuple[str, ...]:
    """The dtypes a family is drawn in on a backend. Triton's interpreter (no GPU) multiplies the bit
    patterns of bfloat16 operands in ``tl.dot`` (triton-lang/triton#11584, unsupported upstream), so
    the Gram-based families leave bfloat16 to a GPU there (as tests/test_style_distance.py does)."""
    interpreted = backend == "triton" and not torch.cuda.is_available()
    if interpreted and family in ("gram_matrix", "style_loss"):
        return tuple(d for d in DTYPES if d != "bfloat16")
    return DTYPES


def run_family(family: str, backend: str, scale: float = 1.0) -> None:
    """The hypothesis sweep of ``family`` on ``backend`` (raises the shrunk failure)."""

    @_settings(EXAMPLES[backend] * scale)
    @given(case=cases(family, dtypes=dtypes_for(family, backend)))
    def sweep(case):
        check(case, backend)

    sweep()


def run_nonfinite(backend: str, scale: float = 1.0) -> None:
    """The non-finite sweep of ``backend``, every family."""

    @_settings(NONFINITE_EXAMPLES[backend] * scale)
    @given(case=st.sampled_from(FAMILIES).flatmap(
        lambda f: cases(f, nonfinite=True, dtypes=dtypes_for(f, backend))))
    def sweep(case):
        check_nonfinite(case, backend)

    sweep()


def _error_text(exc: BaseException) -> str:
    text = ""
    if not isinstance(exc, (Mismatch, BaseExceptionGroup)):  # where the library raised
        tb = traceback.extract_tb(exc.__traceback__)
        frames = [f for f in tb if f.filename.startswith(os.path.join(ROOT, "inpaint_fast"))][-3:] + tb[-1:]
        text += "".join(f"  at {os.path.relpath(f.filename, ROOT)}:{f.lineno} {f.name}: {f.line}\n" for f in frames)
    text += "".join(traceback.format_exception_only(type(exc), exc))  # with hypothesis' notes
    if isinstance(exc, BaseExceptionGroup):
        text += "".join(_error_text(e) for e in exc.exceptions)
    return text


def main(argv: List[str]) -> int:
    """``BACKEND [SCALE [FAMILY,...]]``: the sweeps of one backend (all, or the named families and
    'nonfinite'), SCALE times the examples; hypothesis' files go to a temporary folder unless
    HYPOTHESIS_STORAGE_DIRECTORY says where."""
    os.environ.setdefault("HYPOTHESIS_STORAGE_DIRECTORY",
                          os.path.join(tempfile.gettempdir(), "inpaint_fast_hypothesis"))
    backend = argv[0]
    scale = float(argv[1]) if len(argv) > 1 else float(os.environ.get("INPAINT_FAST_PROPERTY_SCALE", "1"))
    only = argv[2].split(",") if len(argv) > 2 else None
    report = {}
    jobs = [(f, lambda f=f: run_family(f, backend, scale)) for f in FAMILIES]
    jobs.append(("nonfinite", lambda: run_nonfinite(backend, scale)))
    for name, job in jobs:
        if only and name not in only:
            continue
        start = time.perf_counter()
        error = None
        try:
            job()
        except Exception as exc:  # noqa: BLE001 - reported to the parent test
            error = _error_text(exc)[-6000:]
        cases_run = (sum(v for (b, f), v in COUNTS.items() if b == backend and f.startswith("nonfinite:"))
                     if name == "nonfinite" else COUNTS[(backend, name)])
        report[name] = {"cases": cases_run, "seconds": round(time.perf_counter() - start, 2), "error": error}
        print(f"{name}: {report[name]['cases']} cases, {report[name]['seconds']} s"
              + ("" if error is None else " FAILED"), file=sys.stderr, flush=True)
    print("PROPERTY-REPORT " + json.dumps(report), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
