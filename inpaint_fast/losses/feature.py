"""Feature-space loss modules: perceptual, style, and the seed's composite objective."""
from __future__ import annotations

from typing import Callable, Dict, List, Mapping, Optional, Sequence

from torch import Tensor, nn

from .. import _validation as V
from .. import functional as LF
from ..features import VGGFeatures

SEED_LAYERS = ("relu1_2", "relu2_2", "relu3_3")  # the seed's VGG16 layers 3, 8, 15


def _make_extractor(extractor, arch, layers, weights) -> Callable[[Tensor], List[Tensor]]:
    if extractor is None:
        return VGGFeatures(arch=arch, layers=layers, weights=weights)
    V.check_extractor(extractor)
    return extractor


class PerceptualLoss(nn.Module):
    """Perceptual (VGG feature) loss, the seed's defaults: VGG16 relu1_2/relu2_2/relu3_3, L1.

    ``weights`` is passed to :class:`VGGFeatures` ('DEFAULT' = torchvision's ImageNet weights,
    None = untrained, or a local state-dict path); or pass your own ``extractor``.
    ``forward(pred, target, mask=... | hole=...)``; see :func:`inpaint_fast.functional.perceptual_loss`.
    """

    def __init__(self, extractor: Optional[Callable[[Tensor], List[Tensor]]] = None, *, arch: str = "vgg16",
                 layers: Sequence = SEED_LAYERS, weights="DEFAULT", region: Optional[str] = None, loss: str = "l1",
                 layer_weights: Optional[Sequence[float]] = None, normalize: str = "mask", reduction: str = "mean",
                 eps: float = LF.EPS):
        super().__init__()
        self.extractor = _make_extractor(extractor, arch, layers, weights)
        V.check_region(region)
        self.loss = V.check_choice(loss, "loss", LF.FEATURE_LOSSES)
        V.check_loss_options(reduction, normalize, eps)
        self.region, self.layer_weights = region, layer_weights
        self.normalize, self.reduction, self.eps = normalize, reduction, eps

    def forward(self, pred: Tensor, target: Tensor, *, mask: Optional[Tensor] = None,
                hole: Optional[Tensor] = None):
        return LF.perceptual_loss(pred, target, extractor=self.extractor, mask=mask, hole=hole, region=self.region,
                                  loss=self.loss, layer_weights=self.layer_weights, normalize=self.normalize,
                                  reduction=self.reduction, eps=self.eps)


class StyleLoss(nn.Module):
    """Style (Gram-matrix L1) loss over VGG features, the seed's defaults.

    ``forward(pred, target, mask=... | hole=...)``; see :func:`inpaint_fast.functional.style_loss`.
    """

    def __init__(self, extractor: Optional[Callable[[Tensor], List[Tensor]]] = None, *, arch: str = "vgg16",
                 layers: Sequence = SEED_LAYERS, weights="DEFAULT", region: Optional[str] = None,
                 layer_weights: Optional[Sequence[float]] = None, reduction: str = "mean", eps: float = LF.EPS):
        super().__init__()
        self.extractor = _make_extractor(extractor, arch, layers, weights)
        V.check_region(region)
        self.reduction = V.check_choice(reduction, "reduction", V.REDUCTIONS)
        self.eps = V.check_positive(eps, "eps")
        self.region, self.layer_weights = region, layer_weights

    def forward(self, pred: Tensor, target: Tensor, *, mask: Optional[Tensor] = None,
                hole: Optional[Tensor] = None):
        return LF.style_loss(pred, target, extractor=self.extractor, mask=mask, hole=hole, region=self.region,
                             layer_weights=self.layer_weights, reduction=self.reduction, eps=self.eps)


class CompositeLoss(nn.Module):
    """The seed's weighted objective; ``forward(pred, target, mask=...)`` returns a dict of the
    terms ('rec', 'perc', 'style', 'tv', 'freq' as weighted) and ``'total'``.

    ``weights`` defaults to the seed's {rec 1, perc 0.1, style 10, tv 0.01, freq 0.1}. A VGG
    extractor is built (``arch``/``layers``/``vgg_weights``) only when 'perc' or 'style' is weighted.
    """

    def __init__(self, weights: Optional[Mapping[str, float]] = None,
                 extractor: Optional[Callable[[Tensor], List[Tensor]]] = None, *, arch: str = "vgg16",
                 layers: Sequence = SEED_LAYERS, vgg_weights="DEFAULT"):
        super().__init__()
        self.weights = LF.check_composite_weights(weights)
        needs_features = "perc" in self.weights or "style" in self.weights
        self.extractor = _make_extractor(extractor, arch, layers, vgg_weights) if needs_features else None

    def forward(self, pred: Tensor, target: Tensor, *, mask: Optional[Tensor] = None,
                hole: Optional[Tensor] = None) -> Dict[str, Tensor]:
        return LF.composite_loss(pred, target, mask=mask, hole=hole, extractor=self.extractor, weights=self.weights)

    def extra_repr(self) -> str:
        return f"weights={self.weights}"
