"""Frequency loss: L1 between log-magnitude spectra, the notebook's ``frequency_loss``."""
from __future__ import annotations

import torch
from torch import Tensor

from .pixel import accumulate_dtype, masked_mean


def log_magnitude(img: Tensor) -> Tensor:
    """``log1p |rfft2(img, norm='ortho')|``; float16/bfloat16 are transformed in float32."""
    spectrum = torch.fft.rfft2(img.to(accumulate_dtype(img.dtype)), norm="ortho")
    return torch.log1p(spectrum.abs())


def frequency(pred: Tensor, target: Tensor, *, reduction: str = "mean") -> Tensor:
    """``reduce |log1p|F(pred)| - log1p|F(target)||`` over the (N, C, H, W//2+1) half spectrum.
    An empty image (a 0 in its shape) gives 0 (a map of zeros), with a zero gradient."""
    if pred.numel() == 0:  # the FFT of nothing is an error (MKL, pocketfft): its spectrum is empty
        n, c, h, w = pred.shape
        diff = (pred.sum() + target.sum()).expand(n, c, h, w // 2 + 1)
    else:
        diff = (log_magnitude(pred) - log_magnitude(target)).abs()
    return masked_mean(diff, None, reduction=reduction).to(pred.dtype)
