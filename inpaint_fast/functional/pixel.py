"""Pixel losses: masked L1 / L2 / Charbonnier with hole and valid weighting, and masked total variation.

Conventions: see :mod:`inpaint_fast.functional`. Each loss validates its arguments
(``inpaint_fast._validation``), asks ``ops.backend.choose`` which implementation runs, and calls the
fused op (``inpaint_fast.ops.masked_error`` / ``masked_tv``) or the reference
(``inpaint_fast.reference.pixel`` / ``tv``). A fused op checks a floating mask's values itself; the
other paths check them here (``_check_values``).
"""
from __future__ import annotations

from typing import Dict, Optional

import torch

from torch import Tensor

from .. import _validation as V
from ..ops import backend as _backend
from ..ops import masked_error as _masked_error_op
from ..ops import masked_tv as _masked_tv_op
from ..reference import pixel as _ref_pixel
from ..reference import tv as _ref_tv

EPS = _ref_pixel.EPS
CHARBONNIER_EPS = _ref_pixel.CHARBONNIER_EPS
PIXEL_LOSSES = ("l1", "l2", "charbonnier")
_REGION_WEIGHTS = {"hole": (1.0, 0.0), "known": (0.0, 1.0), "all": (0.0, 1.0)}  # (weight_hole, weight_valid)


def _check_values(mask: Optional[V.Mask]) -> None:
    """The [0, 1] check of a floating mask that no fused op reads (``mask_arg(..., values=False)``)."""
    if mask is not None:
        V.check_mask_values(mask.tensor, mask.name)


def masked_error(pred: Tensor, target: Tensor, mask: Optional[V.Mask], *, loss: str, weight_hole: float,
                  weight_valid: float, normalize: str, reduction: str, eps: float, charbonnier_eps: float) -> Tensor:
    """``weight_hole * E(hole) + weight_valid * E(known)`` (no mask: ``weight_valid * E(all)``), fused
    in one pass on a built backend, else the reference. ``mask``: from ``mask_arg(..., values=False)``."""
    if normalize == "sample" and mask is None:
        normalize = "mask"  # samples of one size: the mean of their means is the mean
    backend = _backend.choose("masked_error", pred.device)
    nothing_weighted = weight_valid == 0 and (weight_hole == 0 or mask is None)  # the reference's exact 0
    if (reduction != "none" and not (mask is not None and mask.tensor.requires_grad) and backend != "reference"
            and not nothing_weighted and not (normalize == "sample" and reduction == "mean")
            and not _ref_pixel.distributed()):
        return _masked_error_op.masked_error(
            pred, target, None if mask is None else mask.tensor, backend=backend,
            mask_is_hole=mask is not None and mask.is_hole,
            loss=loss, charbonnier_eps=charbonnier_eps, weight_hole=weight_hole, weight_valid=weight_valid,
            normalize="sum" if reduction == "sum" else normalize, eps=eps)
    _check_values(mask)
    known = None if mask is None else mask.known(pred.dtype)
    return _ref_pixel.masked_error(pred, target, known, loss=loss, weight_hole=weight_hole, weight_valid=weight_valid,
                                   charbonnier_eps=charbonnier_eps, normalize=normalize, reduction=reduction, eps=eps)


def _pixel_loss(loss, pred, target, mask, hole, region, normalize, reduction, eps, charbonnier_eps=CHARBONNIER_EPS,
                process_group=None):
    pred, target = V.check_pair(pred, target)
    V.check_loss_options(reduction, normalize, eps)
    group = V.check_process_group(process_group)
    m = V.mask_arg(mask, hole, pred, required=False, values=False)
    region = V.resolve_region(region, m)
    if region == "all":
        _check_values(m)
    weight_hole, weight_valid = _REGION_WEIGHTS[region]
    with _ref_pixel.global_means(group):
        return masked_error(pred, target, None if region == "all" else m, loss=loss, weight_hole=weight_hole,
                            weight_valid=weight_valid, normalize=normalize, reduction=reduction, eps=eps,
                            charbonnier_eps=charbonnier_eps)


def masked_l1(pred: Tensor, target: Tensor, *, mask: Optional[Tensor] = None, hole: Optional[Tensor] = None,
              region: Optional[str] = None, normalize: str = "mask", reduction: str = "mean",
              eps: float = EPS, process_group=None) -> Tensor:
    """Mean absolute error over a region: ``sum(w |pred - target|) / max(sum(w), eps)``.

    pred, target: (N, C, H, W). With a mask, ``region`` defaults to 'hole' (w = 1 - mask); the
    notebook's ``l1_loss(x, pred, m)`` is ``masked_l1(pred, x, mask=m, region='known')``.
    ``process_group`` (True: the default group): the mean over every rank's batch under
    torch.distributed (:func:`inpaint_fast.reference.pixel.global_means`).
    """
    return _pixel_loss("l1", pred, target, mask, hole, region, normalize, reduction, eps,
                       process_group=process_group)


def masked_l2(pred: Tensor, target: Tensor, *, mask: Optional[Tensor] = None, hole: Optional[Tensor] = None,
              region: Optional[str] = None, normalize: str = "mask", reduction: str = "mean",
              eps: float = EPS, process_group=None) -> Tensor:
    """Mean squared error over a region: ``sum(w (pred - target)^2) / max(sum(w), eps)``.

    Same arguments as :func:`masked_l1`.
    """
    return _pixel_loss("l2", pred, target, mask, hole, region, normalize, reduction, eps,
                       process_group=process_group)


def masked_charbonnier(pred: Tensor, target: Tensor, *, mask: Optional[Tensor] = None,
                       hole: Optional[Tensor] = None, region: Optional[str] = None,
                       charbonnier_eps: float = CHARBONNIER_EPS, normalize: str = "mask", reduction: str = "mean",
                       eps: float = EPS, process_group=None) -> Tensor:
    """Mean Charbonnier error ``sqrt((pred - target)^2 + charbonnier_eps^2)`` over a region (a smooth
    L1, as restoration codes such as LapSRN and EDVR use). Same arguments as :func:`masked_l1`."""
    V.check_positive(charbonnier_eps, "charbonnier_eps")
    return _pixel_loss("charbonnier", pred, target, mask, hole, region, normalize, reduction, eps, charbonnier_eps,
                       process_group)


def reconstruction_loss(pred: Tensor, target: Tensor, *, mask: Optional[Tensor] = None,
                        hole: Optional[Tensor] = None, lambda_hole: float = 6.0, lambda_valid: float = 1.0,
                        loss: str = "l1", charbonnier_eps: float = CHARBONNIER_EPS, normalize: str = "mask",
                        reduction: str = "mean", eps: float = EPS, process_group=None) -> Tensor:
    """``lambda_hole * L(hole) + lambda_valid * L(known)``, each term a masked mean of its region.

    L is 'l1' (the notebook, PConv), 'l2' or 'charbonnier'. A mask is required. One fused pass computes
    both terms. With reduction='none' the result is the map ``(lambda_hole (1 - m) + lambda_valid m) * error``,
    whose sum is reduction='sum'. ``process_group``: as :func:`masked_l1`.
    """
    pred, target = V.check_pair(pred, target)
    V.check_loss_options(reduction, normalize, eps)
    V.check_choice(loss, "loss", PIXEL_LOSSES)
    V.check_positive(charbonnier_eps, "charbonnier_eps")
    lambda_hole = V.check_nonnegative(lambda_hole, "lambda_hole")
    lambda_valid = V.check_nonnegative(lambda_valid, "lambda_valid")
    m = V.mask_arg(mask, hole, pred, required=True, values=False)
    with _ref_pixel.global_means(V.check_process_group(process_group)):
        return masked_error(pred, target, m, loss=loss, weight_hole=lambda_hole, weight_valid=lambda_valid,
                            normalize=normalize, reduction=reduction, eps=eps, charbonnier_eps=charbonnier_eps)


def masked_error_stats(pred: Tensor, target: Tensor, *, mask: Optional[Tensor] = None,
                       hole: Optional[Tensor] = None) -> Dict[str, Tensor]:
    """The hole / known / full mean L1 and L2 errors in one pass, without gradient (a metrics table).

    Returns {'hole_l1', 'known_l1', 'full_l1', 'hole_l2', 'known_l2', 'full_l2'}: 0-dim tensors of
    pred's dtype, each ``masked_mean`` with normalize='mask' (an empty region gives 0); 'full' is
    (hole sum + known sum) / (hole area + known area), so a NaN in either region's sum reaches it.
    """
    pred, target = V.check_pair(pred, target)
    m = V.mask_arg(mask, hole, pred, required=False, values=False)
    with torch.no_grad():
        backend = _backend.choose("masked_error", pred.device)
        if backend != "reference":
            s = _masked_error_op.masked_error_stats(pred, target, None if m is None else m.tensor, backend=backend,
                                                    mask_is_hole=m is not None and m.is_hole)
        else:
            _check_values(m)
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
                    reduction: str = "mean", eps: float = EPS, pair_weight: str = "both",
                    process_group=None) -> Tensor:
    """Anisotropic total variation ``mean |dh|^p + mean |dw|^p`` of pred (N, C, H, W), p = 1 or 2.

    With a mask, a neighbour pair counts with the product of its pixels' region weights
    (``pair_weight='both'``, the notebook's pair masks) or with its first (top / left) pixel's weight
    ('first', mmagic's ``MaskedTVLoss``), and ``region`` defaults to 'hole'; 'hole_dilated' is the hole
    grown by one pixel (3x3), the region P of the PConv paper's TV term. Each direction is normalised
    by its own area. pair_weight='first' and normalize='sample' run the reference (no fused kernel).
    ``process_group``: as :func:`masked_l1`.
    """
    V.check_image(pred, "pred")
    V.check_loss_options(reduction, normalize, eps)
    V.check_tv_power(p)
    V.check_choice(pair_weight, "pair_weight", V.TV_PAIR_WEIGHTS)
    group = V.check_process_group(process_group)
    m = V.mask_arg(mask, hole, pred, required=False, values=False)
    region = V.resolve_region(region, m, choices=V.TV_REGIONS)
    backend = _backend.choose("masked_tv", pred.device)
    if region == "all":
        normalize = "mask" if normalize == "sample" else normalize  # samples of one size: the mean of means
        pair_weight = "both"
    with _ref_pixel.global_means(group):  # (or a CompositeLoss's, around this call)
        if (reduction != "none" and not (m is not None and m.tensor.requires_grad) and backend != "reference"
                and normalize != "sample" and pair_weight == "both" and not _ref_pixel.distributed()):
            if region == "all":
                _check_values(m)
            return _masked_tv_op.masked_tv(pred, None if region == "all" else m.tensor, backend=backend,
                                           mask_is_hole=m is not None and m.is_hole, region=region, p=p,
                                           normalize="sum" if reduction == "sum" else normalize, eps=eps)
        return _ref_tv.total_variation(pred, _tv_weight(m, region, pred.dtype), p=p, normalize=normalize,
                                       reduction=reduction, eps=eps, pair_weight=pair_weight)


def _tv_weight(m: Optional[V.Mask], region: str, dtype: torch.dtype) -> Optional[Tensor]:
    """The reference path's per-pixel weight of ``region`` (the mask's values checked here)."""
    _check_values(m)
    known = None if m is None else m.known(dtype)
    return _ref_tv.dilate(1 - known) if region == "hole_dilated" else V.region_weight(known, region)


def total_variation_norm(pred: Tensor, *, mask: Optional[Tensor] = None, hole: Optional[Tensor] = None,
                         region: Optional[str] = None, norm: str = "l2", reduction: str = "mean",
                         pair_weight: str = "both") -> Tensor:
    """Each image's total variation, not normalised by its size, then reduced over the batch: the sum
    over its neighbour pairs of |d| (``norm='l1'``) or d² ('l2_squared'), or the square root of that sum
    ('l2', the isotropic norm of the image's difference field; 0 with a zero gradient for a constant image).

    ``total_variation_norm(x, norm=k, reduction=r)`` is piq's ``TVLoss(norm_type=k, reduction=r)(x)``;
    reduction='none' gives the (N,) scores. A mask weights the pairs as in :func:`total_variation`
    (``region``, ``pair_weight``). Reference implementation (no fused kernel).
    """
    V.check_image(pred, "pred")
    V.check_choice(norm, "norm", V.TV_NORMS)
    V.check_choice(reduction, "reduction", V.REDUCTIONS)
    V.check_choice(pair_weight, "pair_weight", V.TV_PAIR_WEIGHTS)
    m = V.mask_arg(mask, hole, pred, required=False, values=False)
    region = V.resolve_region(region, m, choices=V.TV_REGIONS)
    scores = _ref_tv.image_total_variation(pred, _tv_weight(m, region, pred.dtype), norm=norm,
                                           pair_weight=pair_weight)
    if reduction == "none":
        return scores
    return scores.sum() if reduction == "sum" else scores.sum() / max(scores.numel(), 1)  # N = 0: 0
