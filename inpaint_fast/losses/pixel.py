"""Pixel loss modules: reconstruction and total variation."""
from __future__ import annotations

from typing import Optional

from torch import Tensor, nn

from .. import _validation as V
from ..functional import pixel as LF

class ReconstructionLoss(nn.Module):
    """``lambda_hole * L(hole) + lambda_valid * L(known)`` (the notebook's defaults: 6 and 1, L1).

    ``forward(pred, target, mask=... | hole=...)``; see :func:`inpaint_fast.functional.reconstruction_loss`.
    """

    def __init__(self, lambda_hole: float = 6.0, lambda_valid: float = 1.0, *, loss: str = "l1",
                 charbonnier_eps: float = LF.CHARBONNIER_EPS, normalize: str = "mask", reduction: str = "mean",
                 eps: float = LF.EPS, process_group=None):
        super().__init__()
        self.process_group = process_group
        self.lambda_hole = V.check_nonnegative(lambda_hole, "lambda_hole")
        self.lambda_valid = V.check_nonnegative(lambda_valid, "lambda_valid")
        self.loss = V.check_choice(loss, "loss", LF.PIXEL_LOSSES)
        self.charbonnier_eps = V.check_positive(charbonnier_eps, "charbonnier_eps")
        V.check_loss_options(reduction, normalize, eps)
        self.normalize, self.reduction, self.eps = normalize, reduction, eps

    def forward(self, pred: Tensor, target: Tensor, *, mask: Optional[Tensor] = None,
                hole: Optional[Tensor] = None) -> Tensor:
        return LF.reconstruction_loss(pred, target, mask=mask, hole=hole, lambda_hole=self.lambda_hole,
                                      lambda_valid=self.lambda_valid, loss=self.loss,
                                      charbonnier_eps=self.charbonnier_eps, normalize=self.normalize,
                                      reduction=self.reduction, eps=self.eps, process_group=self.process_group)

    def extra_repr(self) -> str:
        return (f"lambda_hole={self.lambda_hole}, lambda_valid={self.lambda_valid}, loss={self.loss!r}, "
                f"normalize={self.normalize!r}, reduction={self.reduction!r}")


class TVLoss(nn.Module):
    """Anisotropic total variation of ``pred``, optionally over a mask region.

    ``forward(pred, mask=... | hole=...)``; see :func:`inpaint_fast.functional.total_variation`.
    """

    def __init__(self, region: Optional[str] = None, *, p: int = 1, normalize: str = "mask",
                 reduction: str = "mean", eps: float = LF.EPS, pair_weight: str = "both", process_group=None):
        super().__init__()
        self.process_group = process_group
        V.check_region(region, V.TV_REGIONS)
        V.check_loss_options(reduction, normalize, eps)
        V.check_tv_power(p)
        self.pair_weight = V.check_choice(pair_weight, "pair_weight", V.TV_PAIR_WEIGHTS)
        self.region, self.p, self.normalize, self.reduction, self.eps = region, p, normalize, reduction, eps

    def forward(self, pred: Tensor, *, mask: Optional[Tensor] = None, hole: Optional[Tensor] = None) -> Tensor:
        return LF.total_variation(pred, mask=mask, hole=hole, region=self.region, p=self.p,
                                  normalize=self.normalize, reduction=self.reduction, eps=self.eps,
                                  pair_weight=self.pair_weight, process_group=self.process_group)

    def extra_repr(self) -> str:
        return (f"region={self.region!r}, p={self.p}, normalize={self.normalize!r}, reduction={self.reduction!r}, "
                f"pair_weight={self.pair_weight!r}")
