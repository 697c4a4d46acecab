"""Frequency loss: L1 between log-magnitude spectra, the seed's ``frequency_loss``."""
from __future__ import annotations

import torch
from torch import Tensor

from .pixel import accumulate_dtype, masked_mean


def log_magnitude(img: Tensor) -> Tensor:
    """``log1p |rfft2(img, norm='ortho')|``; float16/bfloat16 are transformed in float32."""
    spectrum = torch.fft.rfft2(img.to(accumulate_dtype(img.dtype)), norm="ortho")
    return torch.log1p(spectrum.abs())


def frequency(pred: Tensor, target: Tensor, *, reduction: str = "mean") -> Tensor:
    """``reduce |log1p|F(pred)| - log1p|F(target)||`` over the (N, C, H, W//2+1) half spectrum."""
    diff = (log_magnitude(pred) - log_magnitude(target)).abs()
    return masked_mean(diff, None, reduction=reduction).to(pred.dtype)
