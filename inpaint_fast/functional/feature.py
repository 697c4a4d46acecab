"""Feature-space losses: perceptual (VGG features), style (Gram matrices) and LaMa's HRF perceptual
loss, and :class:`FeatureCache`, which runs an extractor once per image of a loss step (the target
under no_grad) for the feature terms of a composite objective to share.

Extractors are any callable mapping (N, 3, H, W) to a list of feature maps (``inpaint_fast.nets``).
The per-layer distances run the fused ops ``masked_error`` and ``style_distance`` / ``gram``
(``inpaint_fast.ops``) or the reference (``inpaint_fast.reference.features``).
"""
from __future__ import annotations

from typing import Callable, Dict, List, Mapping, Optional, Sequence, Union

import torch
from torch import Tensor

from .. import _validation as V
from ..ops import backend as _backend
from ..ops import style_distance as _style_distance_op
from ..reference import features as _ref_features
from ..reference import pixel as _ref_pixel
from .pixel import CHARBONNIER_EPS, EPS, masked_error

FEATURE_LOSSES = ("l1", "l2", "mse")
MASK_RESIZES = _ref_features.MASK_RESIZES
FEATURE_NORMS = _ref_features.FEATURE_NORMS


# Pixels per extractor call on CPU. A VGG16 pass to pool3, forward + backward of 8 images of 256x256 on
# 2 cores, took 3.6 s as one batch of 8, 2.7 s as batches of 4 and 2.2-2.3 s as batches of 2 or 1
# (smaller activations stay in cache); the whole pconv_loss step was fastest with one image per call.
CPU_PIXELS_PER_CALL = 256 * 256


def auto_micro_batch(image: Tensor, num_images: int) -> int:
    """Images per extractor call: on CPU about CPU_PIXELS_PER_CALL pixels (at least 1); elsewhere all
    ``num_images`` batches of the step in one call (a GPU is better used by one large batch)."""
    if image.device.type == "cpu":
        return max(1, CPU_PIXELS_PER_CALL // max(image.shape[-2] * image.shape[-1], 1))
    return num_images * image.shape[0]


def checked_features(extractor, images: Tensor, constant: bool = False) -> List[Tensor]:
    """``extractor(images)`` checked to be a non-empty list of feature maps; ``constant``: taken under
    no_grad and detached (the target's, as the notebook does)."""
    with torch.set_grad_enabled(torch.is_grad_enabled() and not constant):
        feats = extractor(images)
    if not isinstance(feats, (list, tuple)) or not feats:
        raise TypeError(f"extractor must return a non-empty list of feature maps; got {type(feats).__name__}")
    return [f.detach() for f in feats] if constant else list(feats)


class FeatureCache:
    """The features of one loss step, each image through the extractor once.

    >>> cache = FeatureCache(vgg, target, {"output": pred, "composite": comp})
    >>> cache.target          # [(N, C_l, H_l, W_l)]: target features, taken under no_grad (detached)
    >>> cache["composite"]    # [(N, C_l, H_l, W_l)]: features of comp
    >>> cache.batched         # [(I*N, C_l, H_l, W_l)]: all named images' features, in ``images`` order

    The named images (each (N, 3, H, W), like ``target``) are extracted the first time any of them is
    asked for, the target under ``torch.no_grad`` the first time it is asked for. ``micro_batch`` is
    the most images per extractor call: by default, on a GPU all named images in ONE batched forward
    (concatenated along the batch); on CPU calls of about 256x256 pixels (``auto_micro_batch``),
    which is faster there than one large batch (smaller activations stay in cache). Per-sample
    features do not depend on the batching (up to the convolution algorithm's rounding).
    ``target_gram(layer, weight)`` caches the target's Gram matrices, so terms that compare several
    images against the target compute each once. ``passes`` counts the extractor calls. Make one cache
    per step: it holds the step's features (and their autograd graph) until it is dropped.
    """

    def __init__(self, extractor, target: Tensor, images: Mapping[str, Tensor], *,
                 micro_batch: Optional[int] = None):
        V.check_extractor(extractor)
        V.check_image(target, "target")
        if not isinstance(images, Mapping) or not images:
            raise ValueError(f"images must be a non-empty mapping of name to image; got {images!r}")
        for name, image in images.items():
            V.check_image(image, f"images[{name!r}]")
            if image.shape != target.shape:
                raise ValueError(f"images[{name!r}] has shape {tuple(image.shape)}; every image must have the "
                                 f"target's shape {tuple(target.shape)}")
        if micro_batch is None:
            micro_batch = auto_micro_batch(target, len(images))
        elif isinstance(micro_batch, bool) or not isinstance(micro_batch, int) or micro_batch < 1:
            raise ValueError(f"micro_batch must be None or an integer >= 1; got {micro_batch!r}")
        self.extractor, self.names, self.micro_batch = extractor, tuple(images), micro_batch
        self._target, self._images = target, [images[name] for name in self.names]
        self._target_feats: Optional[List[Tensor]] = None
        self._batched: Optional[List[Tensor]] = None
        self._grams: Dict[tuple, Tensor] = {}
        self.passes = 0

    def _extract(self, x: Tensor) -> List[Tensor]:
        self.passes += 1
        return checked_features(self.extractor, x)

    def _extract_all(self, images: List[Tensor]) -> List[Tensor]:
        """Features of ``images`` concatenated along the batch, ``micro_batch`` images per call."""
        total = sum(x.shape[0] for x in images)
        if total <= self.micro_batch:
            return self._extract(images[0] if len(images) == 1 else torch.cat(images))
        parts = [self._extract(chunk) for x in images for chunk in x.split(self.micro_batch)]
        return [torch.cat(layer) for layer in zip(*parts)]

    @property
    def target(self) -> List[Tensor]:
        if self._target_feats is None:
            with torch.no_grad():
                self._target_feats = [f.detach() for f in self._extract_all([self._target])]
        return self._target_feats

    @property
    def batched(self) -> List[Tensor]:
        if self._batched is None:
            self._batched = self._extract_all(self._images)
        return self._batched

    def __getitem__(self, name: str) -> List[Tensor]:
        if name not in self.names:
            raise KeyError(f"no image named {name!r} in this cache; it holds {list(self.names)}")
        if len(self.names) == 1:  # the batch is this image's: no slice (whose backward fills a zeroed copy)
            return self.batched
        i, n = self.names.index(name), self._target.shape[0]
        return [f[i * n:(i + 1) * n] for f in self.batched]

    def target_gram(self, layer: int, weight: Optional[Tensor] = None, key=None) -> Tensor:
        """The Gram matrix (N, C, C) of target layer ``layer`` (``inpaint_fast.gram_matrix`` over the
        spatial ``weight`` at the layer's resolution, or unweighted), computed once per (layer, key);
        pass a ``key`` naming the weight (e.g. the region) when one is given."""
        if weight is not None and key is None:
            raise ValueError("target_gram: pass a key naming the weight (e.g. its region) with weight=")
        if (layer, key) not in self._grams:
            with torch.no_grad():
                self._grams[(layer, key)] = fused_gram(self.target[layer], weight)
        return self._grams[(layer, key)]


def extract_features(extractor: Callable[[Tensor], List[Tensor]], pred: Tensor, target: Tensor):
    """(pred features, target features); the target's are taken without grad, as the notebook detaches them."""
    cache = FeatureCache(extractor, target, {"output": pred})
    return cache["output"], cache.target


def _feature_weight(pred, mask, hole, region, *, image: bool, like_name: str = "pred") -> Optional[Tensor]:
    """The region weight of a feature loss: of an image's mask (``image``: an RGB mask is averaged
    over channels, :func:`V.spatial_weight`) or of a feature map's (single-channel)."""
    known = V.known_from_mask(mask, hole, pred, required=False, like_name=like_name)
    if image:
        known = V.spatial_weight(known)
    else:
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
        terms.append(masked_error(fp, ft, mask, loss=kind, weight_hole=weight_hole, weight_valid=weight_valid,
                                   normalize=normalize, reduction=reduction, eps=eps, charbonnier_eps=CHARBONNIER_EPS))
    return terms if reduction == "none" else _ref_features.combine_layers(terms, layer_weights)


def perceptual_loss(pred: Tensor, target: Tensor, *, extractor: Callable[[Tensor], List[Tensor]],
                    mask: Optional[Tensor] = None, hole: Optional[Tensor] = None, region: Optional[str] = None,
                    loss="l1", layer_weights: Optional[Sequence[float]] = None, normalize: str = "mask",
                    reduction: str = "mean", eps: float = EPS, mask_resize: str = "nearest",
                    feature_norm: Optional[str] = None, process_group=None):
    """Feature distance ``sum_l w_l masked_mean(e(phi_l(pred), phi_l(target)), mask_l)`` (w_l = 1/L by default).

    ``extractor`` maps (N, 3, H, W) to a list of feature maps (e.g. :class:`VGGFeatures`). ``loss`` is
    'l1' (the notebook), 'l2' or 'mse' (both the squared error), or one of them per layer. The
    mask (a (N, C, H, W) one averaged over channels) is resized to each layer by ``mask_resize``
    ('nearest', the notebook's, or 'area': the fraction of each cell in the region, a soft weight);
    ``region`` defaults to 'hole' when a mask is given. ``feature_norm`` ('unit': LPIPS's unit length over channels per position;
    'instance': each channel standardised over space) is applied to both feature maps first. The
    target's features are taken without grad. reduction='none' returns the list of per-layer maps.
    ``process_group``: the masked means over every rank's batch (:func:`inpaint_fast.masked_l1`).
    """
    pred, target = V.check_pair(pred, target)
    V.check_loss_options(reduction, normalize, eps)
    check_feature_options(loss, mask_resize, feature_norm)
    known = V.spatial_weight(V.known_from_mask(mask, hole, pred, required=False))
    region = V.resolve_region(region, known)
    group = V.check_process_group(process_group)
    pred_feats, target_feats = extract_features(extractor, pred, target)
    with _ref_pixel.global_means(group):
        return perceptual_distance(pred_feats, target_feats, known, region=region, loss=loss,
                                   layer_weights=layer_weights, normalize=normalize, reduction=reduction, eps=eps,
                                   mask_resize=mask_resize, feature_norm=feature_norm)


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
    return fused_gram(feat, _feature_weight(feat, mask, hole, region, image=False, like_name="feat"), eps)


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

    Without a mask this is the notebook's ``style_loss``. With one, each Gram is taken over the
    region's positions (``region`` defaults to 'hole'; the mask resized to each layer by
    ``mask_resize``, 'nearest' or 'area'). reduction='none' returns the list of per-layer
    (N, C_l, C_l) maps. On CPU the images go through the extractor in micro-batches
    (:func:`auto_micro_batch`) and each micro-batch's distance is taken on its own features: the
    Grams are per sample, so no feature map is concatenated or sliced.
    """
    pred, target = V.check_pair(pred, target)
    V.check_extractor(extractor)
    V.check_choice(reduction, "reduction", V.REDUCTIONS)
    V.check_positive(eps, "eps")
    V.check_choice(mask_resize, "mask_resize", MASK_RESIZES)
    weight = _feature_weight(pred, mask, hole, region, image=True)
    if reduction == "none":
        pred_feats, target_feats = extract_features(extractor, pred, target)
        layer_weights = V.check_layer_weights(layer_weights, len(pred_feats))
        return _style_distance(pred_feats, target_feats, weight, layer_weights=layer_weights, reduction=reduction,
                               eps=eps, mask_resize=mask_resize)
    n = pred.shape[0]
    micro = auto_micro_batch(pred, 1)
    if n <= micro:
        chunks = [(pred, target, weight)]
    else:  # one split node each (its backward is one concatenation), not a slice per micro-batch
        weights = [weight] * -(-n // micro) if weight is None or weight.shape[0] == 1 else weight.split(micro)
        chunks = list(zip(pred.split(micro), target.split(micro), weights))
    total = None
    for p, t, w in chunks:
        pred_feats, target_feats = checked_features(extractor, p), checked_features(extractor, t, constant=True)
        checked = V.check_layer_weights(layer_weights, len(pred_feats))
        term = _style_distance(pred_feats, target_feats, w, layer_weights=checked, reduction=reduction, eps=eps,
                               mask_resize=mask_resize)
        if reduction == "mean" and len(chunks) > 1:
            term = term * (p.shape[0] / n)  # the mean over samples, a micro-batch at a time
        total = term if total is None else total + term
    return total


def style_distance(pred_feats: Union[Tensor, Sequence[Tensor]], target_feats: Union[Tensor, Sequence[Tensor]], *,
                   mask: Optional[Tensor] = None, hole: Optional[Tensor] = None, region: Optional[str] = None,
                   layer_weights: Optional[Sequence[float]] = None, reduction: str = "mean", eps: float = EPS,
                   mask_resize: str = "nearest"):
    """:func:`style_loss` on features you extracted yourself: ``mean_l mean |G(f_l) - G(g_l)|``.

    pred_feats, target_feats: one (N, C, H, W) feature map or a sequence of them (layer l of each has
    one shape, dtype and device); the target's features are a constant (detached), as in the notebook.
    mask / hole: (N|1, 1, H, W), (N, H, W) or (H, W) at any resolution (e.g. the image's), resized to
    each layer by ``mask_resize``; ``region``, ``layer_weights``, ``reduction``, ``eps`` as in
    :func:`style_loss`. One fused op per layer on a built backend.
    """
    pred_feats = _feature_list(pred_feats, "pred_feats")
    target_feats = _feature_list(target_feats, "target_feats")
    if len(pred_feats) != len(target_feats):
        raise ValueError(f"pred_feats and target_feats must have as many layers; got {len(pred_feats)} and "
                         f"{len(target_feats)}")
    for i, (fp, ft) in enumerate(zip(pred_feats, target_feats)):
        V.check_pair(fp, ft, f"pred_feats[{i}]", f"target_feats[{i}]")
        if fp.shape[0] != pred_feats[0].shape[0]:
            raise ValueError(f"every layer must have the batch of pred_feats[0] ({pred_feats[0].shape[0]}); "
                             f"pred_feats[{i}] has shape {tuple(fp.shape)}")
    V.check_choice(reduction, "reduction", V.REDUCTIONS)
    V.check_positive(eps, "eps")
    V.check_choice(mask_resize, "mask_resize", MASK_RESIZES)
    layer_weights = V.check_layer_weights(layer_weights, len(pred_feats))
    hole_map = V.hole_map(mask, hole, pred_feats[0], "pred_feats[0]")
    weight = V.region_weight(None if hole_map is None else 1 - hole_map, V.resolve_region(region, hole_map))
    return _style_distance(pred_feats, [f.detach() for f in target_feats], weight, layer_weights=layer_weights,
                           reduction=reduction, eps=eps, mask_resize=mask_resize)


def _feature_list(feats, name: str) -> List[Tensor]:
    if isinstance(feats, Tensor):
        return [feats]
    if isinstance(feats, str) or not isinstance(feats, Sequence) or not feats:
        raise TypeError(f"{name} must be a feature map (N, C, H, W) or a non-empty sequence of them; "
                        f"got {type(feats).__name__}")
    return list(feats)


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


def hrf_perceptual_loss(pred: Tensor, target: Tensor, *, extractor, weight: float = 1.0,
                        mask: Optional[Tensor] = None, hole: Optional[Tensor] = None, region: Optional[str] = None,
                        layer_weights: Optional[Sequence[float]] = None, normalize: str = "mask",
                        reduction: str = "mean", eps: float = EPS, process_group=None):
    """LaMa's ResNetPL: ``weight * sum_l layer_weights[l] * masked_mean((phi_l(pred) - phi_l(target))**2)``.

    ``extractor`` maps (N, 3, H, W) to a list of feature maps (e.g. :class:`ResNetFeatures`);
    ``layer_weights`` defaults to all ones (LaMa sums the layers). Without a mask each term is
    ``F.mse_loss(phi_l(pred), phi_l(target))``; with one, see :func:`inpaint_fast.functional.perceptual_loss`.
    The target's features are taken without grad. reduction='none' returns the list of per-layer
    squared-error maps (neither ``weight`` nor ``layer_weights`` applied). ``process_group``: as
    :func:`perceptual_loss`.
    """
    pred, target = V.check_pair(pred, target)
    V.check_loss_options(reduction, normalize, eps)
    weight = V.check_nonnegative(weight, "weight")
    known = V.spatial_weight(V.known_from_mask(mask, hole, pred, required=False))
    group = V.check_process_group(process_group)
    pred_feats, target_feats = extract_features(extractor, pred, target)
    with _ref_pixel.global_means(group):
        out = hrf_distance(pred_feats, target_feats, known, V.resolve_region(region, known), layer_weights,
                           normalize, reduction, eps)
    return out if reduction == "none" else out * weight


def hrf_distance(pred_feats, target_feats, known, region, layer_weights, normalize, reduction, eps):
    """sum_l layer_weights[l] * masked mean squared feature error (layer weights default to 1: LaMa's sum)."""
    if layer_weights is None:
        layer_weights = [1.0] * len(pred_feats)
    return perceptual_distance(pred_feats, target_feats, known, region=region, loss="l2",
                                  layer_weights=layer_weights, normalize=normalize, reduction=reduction, eps=eps)
