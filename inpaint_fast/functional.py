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
from .features import FeatureCache
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
FEATURE_LOSSES = ("l1", "l2", "mse")
MASK_RESIZES = _ref_features.MASK_RESIZES
FEATURE_NORMS = _ref_features.FEATURE_NORMS
SEED_COMPOSITE_WEIGHTS = {"rec": 1.0, "perc": 0.1, "style": 10.0, "tv": 0.01, "freq": 0.1}


def _masked_error(pred: Tensor, target: Tensor, mask: Optional[V.Mask], *, loss: str, weight_hole: float,
                  weight_valid: float, normalize: str, reduction: str, eps: float, charbonnier_eps: float) -> Tensor:
    """``weight_hole * E(hole) + weight_valid * E(known)`` (no mask: ``weight_valid * E(all)``), fused
    in one pass on a built backend, else the reference."""
    backend = _backend.choose("masked_error", pred.device)
    nothing_weighted = weight_valid == 0 and (weight_hole == 0 or mask is None)  # the reference's exact 0
    if (reduction != "none" and not (mask is not None and mask.tensor.requires_grad) and backend != "reference"
            and not nothing_weighted):
        return _masked_error_op.masked_error(
            pred, target, None if mask is None else mask.tensor, backend=backend,
            mask_is_hole=mask is not None and mask.is_hole,
            loss=loss, charbonnier_eps=charbonnier_eps, weight_hole=weight_hole, weight_valid=weight_valid,
            normalize="none" if reduction == "sum" else normalize, eps=eps)
    known = None if mask is None else mask.known(pred.dtype)
    return _ref_pixel.masked_error(pred, target, known, loss=loss, weight_hole=weight_hole, weight_valid=weight_valid,
                                   charbonnier_eps=charbonnier_eps, normalize=normalize, reduction=reduction, eps=eps)


def _pixel_loss(loss, pred, target, mask, hole, region, normalize, reduction, eps, charbonnier_eps=CHARBONNIER_EPS):
    pred, target = V.check_pair(pred, target)
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
    pred, target = V.check_pair(pred, target)
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
    pred's dtype, each ``masked_mean`` with normalize='mask' (an empty region gives 0); 'full' is
    (hole sum + known sum) / (hole area + known area), so a NaN in either region's sum reaches it.
    """
    pred, target = V.check_pair(pred, target)
    m = V.mask_arg(mask, hole, pred, required=False)
    with torch.no_grad():
        backend = _backend.choose("masked_error", pred.device)
        if backend != "reference":
            s = _masked_error_op.masked_error_stats(pred, target, None if m is None else m.tensor, backend=backend,
                                                    mask_is_hole=m is not None and m.is_hole)
        else:
            known = None if m is None else m.known(pred.dtype)
            acc = _ref_pixel.accumulate_dtype(pred.dtype)
            sums = []
            for loss in ("l1", "l2"):
                err = _ref_pixel.pixel_error(pred, target, loss).to(acc)
                sums += [err.new_zeros(()) if known is None else (err * (1 - known)).sum(),
                         (err if known is None else err * known).sum()]
            area_known = err.new_tensor(err.numel()) if known is None else known.expand_as(err).sum(dtype=acc)
            s = torch.stack(sums + [err.numel() - area_known, area_known])
        s = s.double()
        area_hole, area_known = s[4].clamp_min(EPS), s[5].clamp_min(EPS)
        total = (s[4] + s[5]).clamp_min(EPS)  # an empty batch: 0, as masked_mean gives
        values = {"hole_l1": s[0] / area_hole, "known_l1": s[1] / area_known, "full_l1": (s[0] + s[1]) / total,
                  "hole_l2": s[2] / area_hole, "known_l2": s[3] / area_known, "full_l2": (s[2] + s[3]) / total}
        return {k: v.to(pred.dtype) for k, v in values.items()}


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
    pred, target = V.check_pair(pred, target)
    V.check_choice(reduction, "reduction", V.REDUCTIONS)
    backend = _backend.choose("spectral_l1", pred.device)
    if reduction != "none" and backend != "reference" and pred.numel() > 0:  # the FFT of nothing: reference
        return _spectral_l1_op.frequency_l1(pred, target, reduction, backend=backend)
    return _ref_frequency.frequency(pred, target, reduction=reduction)


def extract_features(extractor: Callable[[Tensor], List[Tensor]], pred: Tensor, target: Tensor):
    """(pred features, target features); the target's are taken without grad, as the seed detaches them."""
    cache = FeatureCache(extractor, target, {"output": pred})
    return cache["output"], cache.target


def _feature_weight(pred, mask, hole, region) -> Optional[Tensor]:
    known = V.known_from_mask(mask, hole, pred, required=False)
    V.check_spatial_weight(known, "mask" if mask is not None else "hole")
    return V.region_weight(known, V.resolve_region(region, known))


def check_feature_options(loss="l1", mask_resize: str = "nearest", feature_norm: Optional[str] = None) -> None:
    """``loss``: 'l1', 'l2' or 'mse' (the same squared error), or a sequence of them, one per layer."""
    losses = [loss] if isinstance(loss, str) else loss
    if not isinstance(losses, Sequence) or not losses:
        raise ValueError(f"loss must be one of {FEATURE_LOSSES} or a non-empty sequence of them (one per layer); "
                         f"got {loss!r}")
    for kind in losses:
        V.check_choice(kind, "loss", FEATURE_LOSSES)
    V.check_choice(mask_resize, "mask_resize", MASK_RESIZES)
    if feature_norm is not None:
        V.check_choice(feature_norm, "feature_norm", FEATURE_NORMS)


def _layer_losses(loss, num_layers: int) -> List[str]:
    """One of 'l1' / 'l2' per layer ('mse' is 'l2')."""
    losses = [loss] * num_layers if isinstance(loss, str) else list(loss)
    if len(losses) != num_layers:
        raise ValueError(f"loss has {len(losses)} entries but the extractor returns {num_layers} layers; "
                         f"got {list(loss)}")
    return ["l2" if kind == "mse" else kind for kind in losses]


def perceptual_distance(pred_feats: Sequence[Tensor], target_feats: Sequence[Tensor], known: Optional[Tensor], *,
                        region: str, loss="l1", layer_weights: Optional[Sequence[float]] = None,
                        normalize: str = "mask", reduction: str = "mean", eps: float = EPS,
                        mask_resize: str = "nearest", feature_norm: Optional[str] = None):
    """The perceptual loss of extracted features (options validated): per layer the masked mean of the
    L1 / squared feature error over ``region`` of ``known`` (N|1, 1, H, W) resized to the layer, one
    fused ``masked_error`` pass per layer on a built backend; layers combined by ``layer_weights``
    (default: their mean). The target's features are constants."""
    if len(pred_feats) != len(target_feats):
        raise ValueError(f"the extractor returned {len(pred_feats)} feature maps for pred and "
                         f"{len(target_feats)} for target")
    losses = _layer_losses(loss, len(pred_feats))
    layer_weights = V.check_layer_weights(layer_weights, len(pred_feats))
    if _backend.choose("masked_error", pred_feats[0].device) == "reference":
        return _ref_features.feature_distance(pred_feats, [f.detach() for f in target_feats],
                                              V.region_weight(known, region), loss=losses, layer_weights=layer_weights,
                                              normalize=normalize, reduction=reduction, eps=eps,
                                              mask_resize=mask_resize, feature_norm=feature_norm)
    weight_hole, weight_valid = (1.0, 0.0) if region == "hole" else (0.0, 1.0)
    terms = []
    for fp, ft, kind in zip(pred_feats, target_feats, losses):
        fp = _ref_features.normalize_features(fp, feature_norm)
        ft = _ref_features.normalize_features(ft.detach(), feature_norm)
        mask = None
        if region != "all":
            mask = V.Mask(_ref_features.resize_weight(known, fp.shape[-2:], mask_resize).to(fp.dtype), False)
        terms.append(_masked_error(fp, ft, mask, loss=kind, weight_hole=weight_hole, weight_valid=weight_valid,
                                   normalize=normalize, reduction=reduction, eps=eps, charbonnier_eps=CHARBONNIER_EPS))
    return terms if reduction == "none" else _ref_features.combine_layers(terms, layer_weights)


def perceptual_loss(pred: Tensor, target: Tensor, *, extractor: Callable[[Tensor], List[Tensor]],
                    mask: Optional[Tensor] = None, hole: Optional[Tensor] = None, region: Optional[str] = None,
                    loss="l1", layer_weights: Optional[Sequence[float]] = None, normalize: str = "mask",
                    reduction: str = "mean", eps: float = EPS, mask_resize: str = "nearest",
                    feature_norm: Optional[str] = None):
    """Feature distance ``sum_l w_l masked_mean(e(phi_l(pred), phi_l(target)), mask_l)`` (w_l = 1/L by default).

    ``extractor`` maps (N, 3, H, W) to a list of feature maps (e.g. :class:`VGGFeatures`). ``loss`` is
    'l1' (the seed), 'l2' or 'mse' (both the squared error), or one of them per layer. The
    single-channel mask is resized to each layer by ``mask_resize`` ('nearest', the seed's, or
    'area': the fraction of each cell in the region, a soft weight); ``region`` defaults to 'hole'
    when a mask is given. ``feature_norm`` ('unit': LPIPS's unit length over channels per position;
    'instance': each channel standardised over space) is applied to both feature maps first. The
    target's features are taken without grad. reduction='none' returns the list of per-layer maps.
    """
    pred, target = V.check_pair(pred, target)
    V.check_loss_options(reduction, normalize, eps)
    check_feature_options(loss, mask_resize, feature_norm)
    known = V.known_from_mask(mask, hole, pred, required=False)
    V.check_spatial_weight(known, "mask" if mask is not None else "hole")
    region = V.resolve_region(region, known)
    pred_feats, target_feats = extract_features(extractor, pred, target)
    return perceptual_distance(pred_feats, target_feats, known, region=region, loss=loss, layer_weights=layer_weights,
                               normalize=normalize, reduction=reduction, eps=eps, mask_resize=mask_resize,
                               feature_norm=feature_norm)


def fused_gram(feat: Tensor, weight: Optional[Tensor] = None, eps: float = EPS) -> Tensor:
    """:func:`gram_matrix` of validated features and weight (at the features' resolution)."""
    backend = _fused_backend(feat, weight)
    if backend != "reference":
        return _style_distance_op.gram_matrix(feat, weight, eps, backend=backend)
    return _ref_features.gram_matrix(feat, weight, eps=eps)


def gram_matrix(feat: Tensor, *, mask: Optional[Tensor] = None, hole: Optional[Tensor] = None,
                region: Optional[str] = None, eps: float = EPS) -> Tensor:
    """Gram matrix ``F F^T / (C H W)`` of (N, C, H, W) features, (N, C, C).

    With a single-channel mask of the features' size the Gram is taken over the region's
    positions and divided by ``C * area``.
    """
    V.check_image(feat, "feat")
    V.check_positive(eps, "eps")
    return fused_gram(feat, _feature_weight(feat, mask, hole, region), eps)


def _fused_backend(feat: Tensor, weight: Optional[Tensor]) -> str:
    """The backend of the Gram / style-distance ops for these features ('reference' for a weight
    that requires grad: the fused ops do not differentiate it)."""
    if weight is not None and weight.requires_grad:
        return "reference"
    return _backend.choose("style_distance", feat.device)


def _style_distance(pred_feats: List[Tensor], target_feats: List[Tensor], weight: Optional[Tensor], *,
                    layer_weights=None, reduction: str = "mean", eps: float = EPS, mask_resize: str = "nearest"):
    """Per layer ``mean |G(f_pred) - G(f_target)|`` (target features constant), combined over layers;
    one fused op per layer on a built backend."""
    backend = _fused_backend(pred_feats[0], weight)
    if reduction == "none" or backend == "reference":
        return _ref_features.style_distance(pred_feats, target_feats, weight, layer_weights=layer_weights,
                                            reduction=reduction, eps=eps, mask_resize=mask_resize)
    terms = []
    for fp, ft in zip(pred_feats, target_feats):
        w = _ref_features.resize_weight(weight, fp.shape[-2:], mask_resize)
        term = _style_distance_op.style_distance(fp, ft.detach(), None if w is None else w.to(fp.dtype), eps,
                                                 backend=backend)
        terms.append(term * (fp.shape[0] * fp.shape[1] ** 2) if reduction == "sum" else term)
    return _ref_features.combine_layers(terms, layer_weights)


def style_loss(pred: Tensor, target: Tensor, *, extractor: Callable[[Tensor], List[Tensor]],
               mask: Optional[Tensor] = None, hole: Optional[Tensor] = None, region: Optional[str] = None,
               layer_weights: Optional[Sequence[float]] = None, reduction: str = "mean", eps: float = EPS,
               mask_resize: str = "nearest"):
    """Style loss ``mean_l mean |G(phi_l(pred)) - G(phi_l(target))|`` with Gram matrices G.

    Without a mask this is the seed's ``style_loss``. With one, each Gram is taken over the
    region's positions (``region`` defaults to 'hole'; the mask resized to each layer by
    ``mask_resize``, 'nearest' or 'area'). reduction='none' returns the list of per-layer
    (N, C_l, C_l) maps.
    """
    pred, target = V.check_pair(pred, target)
    V.check_choice(reduction, "reduction", V.REDUCTIONS)
    V.check_positive(eps, "eps")
    V.check_choice(mask_resize, "mask_resize", MASK_RESIZES)
    weight = _feature_weight(pred, mask, hole, region)
    pred_feats, target_feats = extract_features(extractor, pred, target)
    layer_weights = V.check_layer_weights(layer_weights, len(pred_feats))
    return _style_distance(pred_feats, target_feats, weight, layer_weights=layer_weights, reduction=reduction,
                           eps=eps, mask_resize=mask_resize)


def style_from_cache(cache: FeatureCache, weight: Optional[Tensor], *, region_key=None,
                     layer_weights: Optional[Sequence[float]] = None, eps: float = EPS,
                     mask_resize: str = "nearest") -> Tensor:
    """``sum_images sum_l w_l mean |G(phi_l(image)) - G(phi_l(target))|`` over the images of ``cache``
    (w_l = 1/L by default): one fused Gram per layer for all images (their batched features), the
    target's Grams from the cache (computed once). ``weight``: the region's spatial weight
    (N|1, 1, H, W) or None (plain Grams); ``region_key`` names it for the cache."""
    feats = cache.batched
    layer_weights = V.check_layer_weights(layer_weights, len(feats))
    num_images = len(cache.names)
    terms = []
    for layer, fp in enumerate(feats):
        w = _ref_features.resize_weight(weight, fp.shape[-2:], mask_resize)
        w = None if w is None else w.to(fp.dtype)
        target_gram = cache.target_gram(layer, w, key=None if w is None else (region_key, mask_resize))
        batched_w = w if w is None or w.shape[0] == 1 else w.repeat(num_images, 1, 1, 1)
        gram = fused_gram(fp, batched_w, eps)
        acc = _ref_pixel.accumulate_dtype(gram.dtype)
        diff = (gram.to(acc).unflatten(0, (num_images, -1)) - target_gram.to(acc)).abs()
        terms.append(diff.mean(dim=(1, 2, 3)).sum().to(fp.dtype))
    return _ref_features.combine_layers(terms, layer_weights)


def check_composite_weights(weights: Optional[Mapping[str, float]],
                            terms: Sequence[str] = tuple(SEED_COMPOSITE_WEIGHTS)) -> Dict[str, float]:
    """A dict of non-negative weights over ``terms``; None gives the seed's weights."""
    if weights is None:
        return dict(SEED_COMPOSITE_WEIGHTS)
    return V.check_term_weights(weights, "weights", terms)


def composite_loss(pred: Tensor, target: Tensor, *, mask: Optional[Tensor] = None, hole: Optional[Tensor] = None,
                   extractor: Optional[Callable[[Tensor], List[Tensor]]] = None,
                   weights: Optional[Mapping[str, float]] = None) -> Dict[str, Tensor]:
    """The seed's composite objective: a dict of the (unweighted) terms and their weighted ``'total'``.

    Terms: 'rec' (reconstruction, hole 6 / valid 1), 'perc' (perceptual over the hole), 'style'
    (unmasked), 'tv' (TV of pred over the hole), 'freq' (frequency). Only the terms named in
    ``weights`` (default: the seed's rec 1, perc 0.1, style 10, tv 0.01, freq 0.1) are computed;
    perceptual and style share one feature pass. A mask is required. For the other terms and
    options, and the presets, see :class:`inpaint_fast.CompositeLoss`.
    """
    from .losses import CompositeLoss  # the module holds the one implementation
    weights = check_composite_weights(weights)
    if ("perc" in weights or "style" in weights) and extractor is None:
        raise ValueError("composite terms 'perc' and 'style' need extractor=, e.g. inpaint_fast.VGGFeatures()")
    return CompositeLoss(weights, extractor)(pred, target, mask=mask, hole=hole)
