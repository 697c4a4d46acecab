"""The public loss functions.

Conventions (``torch.nn.functional`` style): prediction first, target second, masks and options as
keywords. ``mask`` has 1 for a KNOWN pixel, ``hole`` has 1 for a MISSING pixel; pass one of them.
Accepted mask shapes: (N,1,H,W), (N,C,H,W), (N,H,W), (1,1,H,W), (H,W); dtypes bool, uint8 or
floating (soft weights in [0, 1]).

``region`` picks where a masked loss is taken: 'hole' (the default when a mask is given),
'known', or 'all'. ``normalize='mask'`` divides by the region's area counted over channels (the
seed, mmagic); ``'all'`` divides by every element (LaMa, PConv ports). ``reduction`` is 'mean',
'sum' or 'none' (the weighted elementwise map). An empty region gives 0 and a zero gradient.
"""
from __future__ import annotations

from typing import Callable, Dict, List, Mapping, Optional, Sequence

import torch
from torch import Tensor

from . import _backend
from . import _validation as V
from .ops import masked_error as _masked_error_op
from .ops import masked_tv as _masked_tv_op
from .ops import spectral_l1 as _spectral_l1_op
from .ops import style_distance as _style_distance_op
from .reference import features as _ref_features
from .reference import frequency as _ref_frequency
from .reference import pixel as _ref_pixel
from .reference import tv as _ref_tv

EPS = _ref_pixel.EPS
CHARBONNIER_EPS = _ref_pixel.CHARBONNIER_EPS
PIXEL_LOSSES = ("l1", "l2", "charbonnier")
FEATURE_LOSSES = ("l1", "l2")
SEED_COMPOSITE_WEIGHTS = {"rec": 1.0, "perc": 0.1, "style": 10.0, "tv": 0.01, "freq": 0.1}


def _masked_error(pred: Tensor, target: Tensor, mask: Optional[V.Mask], *, loss: str, weight_hole: float,
                  weight_valid: float, normalize: str, reduction: str, eps: float, charbonnier_eps: float) -> Tensor:
    """``weight_hole * E(hole) + weight_valid * E(known)`` (no mask: ``weight_valid * E(all)``), fused
    in one pass on a built backend, else the reference."""
    backend = _backend.choose("masked_error", pred.device)
    if reduction != "none" and not (mask is not None and mask.tensor.requires_grad) and backend != "reference":
        return _masked_error_op.masked_error(
            pred, target, None if mask is None else mask.tensor, backend=backend,
            mask_is_hole=mask is not None and mask.is_hole,
            loss=loss, charbonnier_eps=charbonnier_eps, weight_hole=weight_hole, weight_valid=weight_valid,
            normalize="none" if reduction == "sum" else normalize, eps=eps)
    known = None if mask is None else mask.known(pred.dtype)
    return _ref_pixel.masked_error(pred, target, known, loss=loss, weight_hole=weight_hole, weight_valid=weight_valid,
                                   charbonnier_eps=charbonnier_eps, normalize=normalize, reduction=reduction, eps=eps)


def _pixel_loss(loss, pred, target, mask, hole, region, normalize, reduction, eps, charbonnier_eps=CHARBONNIER_EPS):
    V.check_pair(pred, target)
    V.check_loss_options(reduction, normalize, eps)
    m = V.mask_arg(mask, hole, pred, required=False)
    region = V.resolve_region(region, m)
    weights = {"hole": (1.0, 0.0), "known": (0.0, 1.0), "all": (0.0, 1.0)}[region]
    return _masked_error(pred, target, None if region == "all" else m, loss=loss, weight_hole=weights[0],
                         weight_valid=weights[1], normalize=normalize, reduction=reduction, eps=eps,
                         charbonnier_eps=charbonnier_eps)


def masked_l1(pred: Tensor, target: Tensor, *, mask: Optional[Tensor] = None, hole: Optional[Tensor] = None,
              region: Optional[str] = None, normalize: str = "mask", reduction: str = "mean",
              eps: float = EPS) -> Tensor:
    """Mean absolute error over a region: ``sum(w |pred - target|) / max(sum(w), eps)``.

    pred, target: (N, C, H, W). With a mask, ``region`` defaults to 'hole' (w = 1 - mask); the
    seed's ``l1_loss(x, pred, m)`` is ``masked_l1(pred, x, mask=m, region='known')``.
    """
    return _pixel_loss("l1", pred, target, mask, hole, region, normalize, reduction, eps)


def masked_l2(pred: Tensor, target: Tensor, *, mask: Optional[Tensor] = None, hole: Optional[Tensor] = None,
              region: Optional[str] = None, normalize: str = "mask", reduction: str = "mean",
              eps: float = EPS) -> Tensor:
    """Mean squared error over a region: ``sum(w (pred - target)^2) / max(sum(w), eps)``.

    Same arguments as :func:`masked_l1`.
    """
    return _pixel_loss("l2", pred, target, mask, hole, region, normalize, reduction, eps)


def masked_charbonnier(pred: Tensor, target: Tensor, *, mask: Optional[Tensor] = None,
                       hole: Optional[Tensor] = None, region: Optional[str] = None,
                       charbonnier_eps: float = CHARBONNIER_EPS, normalize: str = "mask", reduction: str = "mean",
                       eps: float = EPS) -> Tensor:
    """Mean Charbonnier error ``sqrt((pred - target)^2 + charbonnier_eps^2)`` over a region (a smooth
    L1, as restoration codes such as LapSRN and EDVR use). Same arguments as :func:`masked_l1`."""
    V.check_positive(charbonnier_eps, "charbonnier_eps")
    return _pixel_loss("charbonnier", pred, target, mask, hole, region, normalize, reduction, eps, charbonnier_eps)


def reconstruction_loss(pred: Tensor, target: Tensor, *, mask: Optional[Tensor] = None,
                        hole: Optional[Tensor] = None, lambda_hole: float = 6.0, lambda_valid: float = 1.0,
                        loss: str = "l1", charbonnier_eps: float = CHARBONNIER_EPS, normalize: str = "mask",
                        reduction: str = "mean", eps: float = EPS) -> Tensor:
    """``lambda_hole * L(hole) + lambda_valid * L(known)``, each term a masked mean of its region.

    L is 'l1' (the seed, PConv), 'l2' or 'charbonnier'. A mask is required. One fused pass computes
    both terms. With reduction='none' the result is the map ``(lambda_hole (1 - m) + lambda_valid m) * error``,
    whose sum is reduction='sum'.
    """
    V.check_pair(pred, target)
    V.check_loss_options(reduction, normalize, eps)
    V.check_choice(loss, "loss", PIXEL_LOSSES)
    V.check_positive(charbonnier_eps, "charbonnier_eps")
    lambda_hole = V.check_nonnegative(lambda_hole, "lambda_hole")
    lambda_valid = V.check_nonnegative(lambda_valid, "lambda_valid")
    m = V.mask_arg(mask, hole, pred, required=True)
    return _masked_error(pred, target, m, loss=loss, weight_hole=lambda_hole, weight_valid=lambda_valid,
                         normalize=normalize, reduction=reduction, eps=eps, charbonnier_eps=charbonnier_eps)


def masked_error_stats(pred: Tensor, target: Tensor, *, mask: Optional[Tensor] = None,
                       hole: Optional[Tensor] = None) -> Dict[str, Tensor]:
    """The hole / known / full mean L1 and L2 errors in one pass, without gradient (a metrics table).

    Returns {'hole_l1', 'known_l1', 'full_l1', 'hole_l2', 'known_l2', 'full_l2'}: 0-dim tensors of
    pred's dtype, each ``masked_mean`` with normalize='mask' (an empty region gives 0).
    """
    V.check_pair(pred, target)
    m = V.mask_arg(mask, hole, pred, required=False)
    with torch.no_grad():
        backend = _backend.choose("masked_error", pred.device)
        if backend != "reference":
            s = _masked_error_op.masked_error_stats(pred, target, None if m is None else m.tensor, backend=backend,
                                                    mask_is_hole=m is not None and m.is_hole).double()
            area_hole, area_known = s[4].clamp_min(EPS), s[5].clamp_min(EPS)
            total = s[4] + s[5]
            values = {"hole_l1": s[0] / area_hole, "known_l1": s[1] / area_known, "full_l1": (s[0] + s[1]) / total,
                      "hole_l2": s[2] / area_hole, "known_l2": s[3] / area_known, "full_l2": (s[2] + s[3]) / total}
            return {k: v.to(pred.dtype) for k, v in values.items()}
        known = None if m is None else m.known(pred.dtype)
        values = {}
        for loss in ("l1", "l2"):
            err = _ref_pixel.pixel_error(pred, target, loss)
            values[f"hole_{loss}"] = err.new_zeros(()) if known is None else _ref_pixel.masked_mean(err, 1 - known)
            values[f"known_{loss}"] = _ref_pixel.masked_mean(err, known)
            values[f"full_{loss}"] = _ref_pixel.masked_mean(err)
        return values


def total_variation(pred: Tensor, *, mask: Optional[Tensor] = None, hole: Optional[Tensor] = None,
                    region: Optional[str] = None, p: int = 1, normalize: str = "mask",
                    reduction: str = "mean", eps: float = EPS) -> Tensor:
    """Anisotropic total variation ``mean |dh|^p + mean |dw|^p`` of pred (N, C, H, W), p = 1 or 2.

    With a mask, a neighbour pair counts with the product of its pixels' region weights (the seed's
    pair masks) and ``region`` defaults to 'hole'; 'hole_dilated' is the hole grown by one pixel
    (3x3), the region P of the PConv paper's TV term. Each direction is normalised by its own area.
    """
    V.check_image(pred, "pred")
    V.check_loss_options(reduction, normalize, eps)
    V.check_tv_power(p)
    m = V.mask_arg(mask, hole, pred, required=False)
    region = V.resolve_region(region, m, choices=V.TV_REGIONS)
    backend = _backend.choose("masked_tv", pred.device)
    if reduction != "none" and not (m is not None and m.tensor.requires_grad) and backend != "reference":
        return _masked_tv_op.masked_tv(pred, None if region == "all" else m.tensor, backend=backend,
                                       mask_is_hole=m is not None and m.is_hole, region=region, p=p,
                                       normalize="none" if reduction == "sum" else normalize, eps=eps)
    known = None if m is None else m.known(pred.dtype)
    weight = _ref_tv.dilate(1 - known) if region == "hole_dilated" else V.region_weight(known, region)
    return _ref_tv.total_variation(pred, weight, p=p, normalize=normalize, reduction=reduction, eps=eps)


def frequency_loss(pred: Tensor, target: Tensor, *, reduction: str = "mean") -> Tensor:
    """L1 between log-magnitude spectra: ``mean |log1p|F(pred)| - log1p|F(target)||``.

    F is ``torch.fft.rfft2(., norm='ortho')`` over (H, W); float16/bfloat16 are transformed in
    float32. reduction='none' gives the (N, C, H, W//2 + 1) map.
    """
    V.check_pair(pred, target)
    V.check_choice(reduction, "reduction", V.REDUCTIONS)
    backend = _backend.choose("spectral_l1", pred.device)
    if reduction != "none" and backend != "reference":
        return _spectral_l1_op.frequency_l1(pred, target, reduction, backend=backend)
    return _ref_frequency.frequency(pred, target, reduction=reduction)


def extract_features(extractor: Callable[[Tensor], List[Tensor]], pred: Tensor, target: Tensor):
    """(pred features, target features); the target's are taken without grad, as the seed detaches them."""
    V.check_extractor(extractor)
    with torch.no_grad():
        target_feats = list(extractor(target))
    return list(extractor(pred)), target_feats


def _feature_weight(pred, mask, hole, region) -> Optional[Tensor]:
    known = V.known_from_mask(mask, hole, pred, required=False)
    V.check_spatial_weight(known, "mask" if mask is not None else "hole")
    return V.region_weight(known, V.resolve_region(region, known))


def perceptual_loss(pred: Tensor, target: Tensor, *, extractor: Callable[[Tensor], List[Tensor]],
                    mask: Optional[Tensor] = None, hole: Optional[Tensor] = None, region: Optional[str] = None,
                    loss: str = "l1", layer_weights: Optional[Sequence[float]] = None, normalize: str = "mask",
                    reduction: str = "mean", eps: float = EPS):
    """Feature distance ``mean_l masked_mean(|phi_l(pred) - phi_l(target)|, mask_l)``.

    ``extractor`` maps (N, 3, H, W) to a list of feature maps (e.g. :class:`VGGFeatures`). The
    single-channel mask is resized to each layer by nearest neighbour; ``region`` defaults to 'hole'
    when a mask is given. Layers are averaged, or weighted by ``layer_weights``. The target's
    features are taken without grad. reduction='none' returns the list of per-layer maps.
    """
    V.check_pair(pred, target)
    V.check_loss_options(reduction, normalize, eps)
    V.check_choice(loss, "loss", FEATURE_LOSSES)
    weight = _feature_weight(pred, mask, hole, region)
    pred_feats, target_feats = extract_features(extractor, pred, target)
    layer_weights = V.check_layer_weights(layer_weights, len(pred_feats))
    return _ref_features.feature_distance(pred_feats, target_feats, weight, loss=loss, layer_weights=layer_weights,
                                          normalize=normalize, reduction=reduction, eps=eps)


def gram_matrix(feat: Tensor, *, mask: Optional[Tensor] = None, hole: Optional[Tensor] = None,
                region: Optional[str] = None, eps: float = EPS) -> Tensor:
    """Gram matrix ``F F^T / (C H W)`` of (N, C, H, W) features, (N, C, C).

    With a single-channel mask of the features' size the Gram is taken over the region's
    positions and divided by ``C * area``.
    """
    V.check_image(feat, "feat")
    V.check_positive(eps, "eps")
    weight = _feature_weight(feat, mask, hole, region)
    backend = _fused_backend(feat, weight)
    if backend != "reference":
        return _style_distance_op.gram_matrix(feat, weight, eps, backend=backend)
    return _ref_features.gram_matrix(feat, weight, eps=eps)


def _fused_backend(feat: Tensor, weight: Optional[Tensor]) -> str:
    """The backend of the Gram / style-distance ops for these features ('reference' for a weight
    that requires grad: the fused ops do not differentiate it)."""
    if weight is not None and weight.requires_grad:
        return "reference"
    return _backend.choose("style_distance", feat.device)


def _style_distance(pred_feats: List[Tensor], target_feats: List[Tensor], weight: Optional[Tensor], *,
                    layer_weights=None, reduction: str = "mean", eps: float = EPS):
    """Per layer ``mean |G(f_pred) - G(f_target)|`` (target features constant), combined over layers;
    one fused op per layer on a built backend."""
    backend = _fused_backend(pred_feats[0], weight)
    if reduction == "none" or backend == "reference":
        return _ref_features.style_distance(pred_feats, target_feats, weight, layer_weights=layer_weights,
                                            reduction=reduction, eps=eps)
    terms = []
    for fp, ft in zip(pred_feats, target_feats):
        term = _style_distance_op.style_distance(fp, ft.detach(), _ref_features.resize_weight(weight, fp.shape[-2:]),
                                                 eps, backend=backend)
        terms.append(term * (fp.shape[0] * fp.shape[1] ** 2) if reduction == "sum" else term)
    return _ref_features.combine_layers(terms, layer_weights)


def style_loss(pred: Tensor, target: Tensor, *, extractor: Callable[[Tensor], List[Tensor]],
               mask: Optional[Tensor] = None, hole: Optional[Tensor] = None, region: Optional[str] = None,
               layer_weights: Optional[Sequence[float]] = None, reduction: str = "mean", eps: float = EPS):
    """Style loss ``mean_l mean |G(phi_l(pred)) - G(phi_l(target))|`` with Gram matrices G.

    Without a mask this is the seed's ``style_loss``. With one, each Gram is taken over the
    region's positions (``region`` defaults to 'hole'). reduction='none' returns the list of
    per-layer (N, C_l, C_l) maps.
    """
    V.check_pair(pred, target)
    V.check_choice(reduction, "reduction", V.REDUCTIONS)
    V.check_positive(eps, "eps")
    weight = _feature_weight(pred, mask, hole, region)
    pred_feats, target_feats = extract_features(extractor, pred, target)
    layer_weights = V.check_layer_weights(layer_weights, len(pred_feats))
    return _style_distance(pred_feats, target_feats, weight, layer_weights=layer_weights, reduction=reduction,
                           eps=eps)


def check_composite_weights(weights: Optional[Mapping[str, float]]) -> Dict[str, float]:
    """A dict of non-negative weights over the composite terms; None gives the seed's weights."""
    if weights is None:
        return dict(SEED_COMPOSITE_WEIGHTS)
    return V.check_term_weights(weights, "weights", tuple(SEED_COMPOSITE_WEIGHTS))


def composite_loss(pred: Tensor, target: Tensor, *, mask: Optional[Tensor] = None, hole: Optional[Tensor] = None,
                   extractor: Optional[Callable[[Tensor], List[Tensor]]] = None,
                   weights: Optional[Mapping[str, float]] = None) -> Dict[str, Tensor]:
    """The seed's composite objective: a dict of the weighted terms and their ``'total'``.

    Terms: 'rec' (reconstruction, hole 6 / valid 1), 'perc' (perceptual over the hole), 'style'
    (unmasked), 'tv' (TV of pred over the hole), 'freq' (frequency). Only the terms named in
    ``weights`` (default: the seed's rec 1, perc 0.1, style 10, tv 0.01, freq 0.1) are computed;
    perceptual and style share one feature pass. A mask is required.
    """
    weights = check_composite_weights(weights)
    V.check_pair(pred, target)
    known = V.known_from_mask(mask, hole, pred, required=True)
    terms: Dict[str, Tensor] = {}
    if "rec" in weights:
        terms["rec"] = reconstruction_loss(pred, target, mask=known)
    if "perc" in weights or "style" in weights:
        if extractor is None:
            raise ValueError("composite terms 'perc' and 'style' need extractor=, e.g. inpaint_fast.VGGFeatures()")
        V.check_spatial_weight(known, "mask" if mask is not None else "hole")
        pred_feats, target_feats = extract_features(extractor, pred, target)
        if "perc" in weights:
            terms["perc"] = _ref_features.feature_distance(pred_feats, target_feats, 1 - known)
        if "style" in weights:
            terms["style"] = _style_distance(pred_feats, target_feats, None)
    if "tv" in weights:
        terms["tv"] = total_variation(pred, mask=known, region="hole")
    if "freq" in weights:
        terms["freq"] = frequency_loss(pred, target)
    terms["total"] = sum(weights[k] * terms[k] for k in weights)
    return terms
