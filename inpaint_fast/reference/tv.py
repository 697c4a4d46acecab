"""Anisotropic total variation with the notebook's pair masks.

``img`` is (N, C, H, W); ``weight`` is None or broadcastable to it (1 = pixel counted). A vertical
or horizontal neighbour pair counts with the product of its two pixels' weights, as in the notebook.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from .pixel import EPS, accumulate_dtype, masked_mean


def total_variation(img: Tensor, weight: Optional[Tensor] = None, *, p: int = 1, normalize: str = "mask",
                    reduction: str = "mean", eps: float = EPS, pair_weight: str = "both") -> Tensor:
    """The notebook's ``tv_loss(img, weight)``: ``mean_w |dh|^p + mean_w |dw|^p`` (p = 1 or 2).

    A pair's weight is the product of its two pixels' weights (``pair_weight='both'``, the notebook)
    or the weight of its first (top / left) pixel ('first', mmagic's ``MaskedTVLoss``).
    Each direction is normalised by its own pair-weight area ('mask') or pair count ('all').
    'none' returns an (N, C, H, W) map holding at each pixel its down and right pair terms
    (0 on the last row / column), so that its sum is the 'sum' reduction. float16 is computed in
    float32 (the gradient of an empty region's 1 / eps overflows float16).
    """
    if img.dtype == torch.float16:
        wide = None if weight is None else weight.float()
        return total_variation(img.float(), wide, p=p, normalize=normalize, reduction=reduction,
                               eps=eps, pair_weight=pair_weight).to(img.dtype)
    dh = img[:, :, 1:, :] - img[:, :, :-1, :]
    dw = img[:, :, :, 1:] - img[:, :, :, :-1]
    dh, dw = (dh.abs(), dw.abs()) if p == 1 else (dh.square(), dw.square())
    wh = ww = None
    if weight is not None and pair_weight == "first":
        wh, ww = weight[:, :, :-1, :], weight[:, :, :, :-1]
    elif weight is not None:
        wh = weight[:, :, 1:, :] * weight[:, :, :-1, :]
        ww = weight[:, :, :, 1:] * weight[:, :, :, :-1]
    options = dict(normalize=normalize, reduction=reduction, eps=eps)
    th, tw = masked_mean(dh, wh, **options), masked_mean(dw, ww, **options)
    if reduction != "none":
        return th + tw
    out = img.new_zeros(img.shape)
    out[:, :, :-1, :] += th
    out[:, :, :, :-1] += tw
    return out


def image_total_variation(img: Tensor, weight: Optional[Tensor] = None, *, norm: str = "l2",
                          pair_weight: str = "both") -> Tensor:
    """Each image's total variation, (N,): the weighted sum over its pairs of |d| ('l1') or d²
    ('l2_squared'), or the square root of that sum ('l2', the isotropic norm of the difference field):
    piq's ``total_variation(x, reduction='none', norm_type=norm)``. The square root of 0 (a constant
    image) is taken with a zero gradient, where ``sqrt`` has none."""
    p = 1 if norm == "l1" else 2
    per_pixel = total_variation(img, weight, p=p, reduction="none", pair_weight=pair_weight)
    sums = per_pixel.flatten(1).sum(1, dtype=accumulate_dtype(img.dtype))
    if norm == "l2":
        positive = sums > 0
        sums = torch.where(positive, sums, torch.ones_like(sums)).sqrt() * positive
    return sums.to(img.dtype)


def dilate(hole: Tensor) -> Tensor:
    """The hole grown by one pixel (3x3 neighbourhood, max for soft weights): the region P of the
    PConv paper's TV term, "the 1-pixel dilation of the hole region"."""
    if hole.numel() == 0:  # max_pool2d refuses empty planes
        return hole
    return F.max_pool2d(hole, kernel_size=3, stride=1, padding=1)
