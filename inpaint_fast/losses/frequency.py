"""Frequency loss module."""
from __future__ import annotations

from torch import Tensor, nn

from .. import _validation as V
from ..functional import frequency as LF

class FrequencyLoss(nn.Module):
    """L1 between log-magnitude spectra; see :func:`inpaint_fast.functional.frequency_loss`."""

    def __init__(self, reduction: str = "mean"):
        super().__init__()
        self.reduction = V.check_choice(reduction, "reduction", V.REDUCTIONS)

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        return LF.frequency_loss(pred, target, reduction=self.reduction)

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}"
