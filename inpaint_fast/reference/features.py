"""Feature-space losses on lists of feature maps: perceptual distance, Gram matrices, style.

Feature maps are (N, C_l, H_l, W_l) tensors, one per layer (a ``VGGFeatures`` output). A spatial
``weight`` (N|1, 1, H, W) at image resolution is resized to each layer by nearest neighbour, as the
notebook does, or by area averaging (``mask_resize='area'``: a soft weight, the fraction of each feature
cell's pixels in the region).
"""
from __future__ import annotations

from typing import List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from .pixel import EPS, accumulate_dtype, masked_mean


MASK_RESIZES = ("nearest", "area")
FEATURE_NORMS = ("unit", "instance")
UNIT_EPS = 1e-10  # LPIPS's normalize_tensor
INSTANCE_EPS = 1e-5  # nn.InstanceNorm2d's


def resize_weight(weight: Optional[Tensor], size, mode: str = "nearest") -> Optional[Tensor]:
    """The notebook's ``F.interpolate(mask, size=..., mode='nearest')`` (or ``mode='area'``); None stays None."""
    if weight is None or tuple(weight.shape[-2:]) == tuple(size):
        return weight
    if weight.numel() == 0 or 0 in tuple(size):  # interpolate refuses empty planes: a weight of nothing
        return weight.new_zeros((*weight.shape[:2], *size))
    return F.interpolate(weight, size=tuple(size), mode=mode)


def normalize_features(feat: Tensor, mode: Optional[str]) -> Tensor:
    """Per-position or per-channel feature normalisation before a distance (None: unchanged).

    'unit': each position's feature vector divided by its L2 norm over channels (LPIPS's
    ``normalize_tensor``, eps 1e-10); 'instance': each channel of each sample standardised over
    (H, W), ``(f - mean) / sqrt(var + 1e-5)`` (``nn.InstanceNorm2d`` without affine).
    """
    if mode is None:
        return feat
    if mode == "unit":
        return feat / (feat.pow(2).sum(dim=1, keepdim=True).sqrt() + UNIT_EPS)
    var, mean = torch.var_mean(feat, dim=(2, 3), keepdim=True, correction=0)
    return (feat - mean) / (var + INSTANCE_EPS).sqrt()


def combine_layers(terms: List[Tensor], layer_weights: Optional[Sequence[float]]):
    """The notebook's ``torch.stack(terms).mean()``, or ``sum(w_l * term_l)`` with explicit weights."""
    if layer_weights is None:
        return terms[0] if len(terms) == 1 else torch.stack(terms).mean()  # the mean of one term is that term
    return sum(w * t for w, t in zip(layer_weights, terms))


def feature_distance(pred_feats: Sequence[Tensor], target_feats: Sequence[Tensor],
                     weight: Optional[Tensor] = None, *, loss="l1",
                     layer_weights: Optional[Sequence[float]] = None, normalize: str = "mask",
                     reduction: str = "mean", eps: float = EPS, mask_resize: str = "nearest",
                     feature_norm: Optional[str] = None):
    """Perceptual distance: per layer ``masked_mean(e(f_pred, f_target), weight resized)`` with e the
    absolute ('l1') or squared ('l2' = 'mse') difference (``loss``: one name, or one per layer), of
    the features after ``normalize_features(., feature_norm)``; averaged over layers (or weighted by
    ``layer_weights``). 'none' gives the list of weighted per-layer error maps."""
    losses = [loss] * len(pred_feats) if isinstance(loss, str) else list(loss)
    terms = []
    for fp, ft, kind in zip(pred_feats, target_feats, losses):
        fp, ft = normalize_features(fp, feature_norm), normalize_features(ft, feature_norm)
        err = (fp - ft).abs() if kind == "l1" else (fp - ft) ** 2
        terms.append(masked_mean(err, resize_weight(weight, err.shape[-2:], mask_resize), normalize=normalize,
                                 reduction=reduction, eps=eps))
    return terms if reduction == "none" else combine_layers(terms, layer_weights)


def gram_matrix(feat: Tensor, weight: Optional[Tensor] = None, *, eps: float = EPS) -> Tensor:
    """The notebook's ``F F^T / (C H W)`` per sample: (N, C, H, W) -> (N, C, C).

    With a spatial ``weight`` (N|1, 1, H, W) the Gram is taken over the weighted positions,
    ``F diag(w) F^T / (C * max(sum(w), eps))``, so an all-ones weight gives the plain Gram.
    float16/bfloat16 features are multiplied in float32 and the result cast back. Empty features
    (H or W = 0) give a zero Gram.
    """
    n, c, h, w = feat.shape
    acc = accumulate_dtype(feat.dtype)
    f = feat.reshape(n, c, h * w).to(acc)
    if weight is None:
        gram = torch.bmm(f, f.transpose(1, 2)) / max(c * h * w, 1)  # no positions: a zero Gram
    else:
        wf = weight.to(acc).expand(n, 1, h, w).reshape(n, 1, h * w)
        area = wf.sum(dim=2, keepdim=True).clamp_min(eps)
        gram = torch.bmm(f * wf, f.transpose(1, 2)) / (c * area)
    return gram.to(feat.dtype)


def style_distance(pred_feats: Sequence[Tensor], target_feats: Sequence[Tensor],
                   weight: Optional[Tensor] = None, *, layer_weights: Optional[Sequence[float]] = None,
                   reduction: str = "mean", eps: float = EPS, mask_resize: str = "nearest"):
    """Style loss: per layer ``mean |G(f_pred) - G(f_target)|``, averaged over layers (or
    weighted by ``layer_weights``); 'sum' sums the Gram differences, 'none' gives the list of
    per-layer (N, C_l, C_l) maps."""
    terms = []
    for fp, ft in zip(pred_feats, target_feats):
        ww = resize_weight(weight, fp.shape[-2:], mask_resize)
        diff = (gram_matrix(fp, ww, eps=eps) - gram_matrix(ft, ww, eps=eps)).abs()
        terms.append(masked_mean(diff, None, reduction=reduction))
    return terms if reduction == "none" else combine_layers(terms, layer_weights)
