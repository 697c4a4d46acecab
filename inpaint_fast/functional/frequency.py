"""Frequency loss: L1 between log-magnitude spectra (fused op ``inpaint_fast.ops.spectral_l1`` after
``torch.fft.rfft2``; reference ``inpaint_fast.reference.frequency``)."""
from __future__ import annotations

from torch import Tensor

from .. import _validation as V
from ..ops import backend as _backend
from ..ops import spectral_l1 as _spectral_l1_op
from ..reference import frequency as _ref_frequency

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
