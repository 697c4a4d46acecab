"""Feature-space loss modules: perceptual, style and LaMa's HRF perceptual loss. Each can compute its
term from a shared :class:`inpaint_fast.functional.FeatureCache` (``from_cache``), as
:class:`inpaint_fast.CompositeLoss` does."""
from __future__ import annotations

from typing import Callable, List, Optional, Sequence

from torch import Tensor, nn

from .. import _validation as V
from ..functional import feature as LF
from ..functional.feature import FeatureCache
from ..nets.resnet import RESNET_LAYERS, ResNetFeatures
from ..nets.vgg import NOTEBOOK_LAYERS, VGGFeatures
from ..nets.weights import WeightsArg

def _make_extractor(extractor, arch, layers, weights, channels_last: bool = False) -> Callable[[Tensor], List[Tensor]]:
    if extractor is None:
        return VGGFeatures(arch=arch, layers=layers, weights=weights, channels_last=channels_last)
    V.check_extractor(extractor)
    return extractor


class PerceptualLoss(nn.Module):
    """Perceptual (VGG feature) loss, the notebook's defaults: VGG16 relu1_2/relu2_2/relu3_3, L1, layers averaged.

    ``weights`` is passed to :class:`VGGFeatures` ('DEFAULT' = torchvision's ImageNet weights,
    None = untrained, or a local state-dict path); or pass your own ``extractor``. ``loss`` ('l1',
    'l2' = 'mse', or one per layer), ``layer_weights``, ``region``, ``mask_resize`` ('nearest' |
    'area'), ``feature_norm`` (None | 'unit' | 'instance'), ``normalize``, ``reduction``,
    ``process_group``: see :func:`inpaint_fast.functional.perceptual_loss`.
    ``forward(pred, target, mask=... | hole=...)``.
    """

    def __init__(self, extractor: Optional[Callable[[Tensor], List[Tensor]]] = None, *, arch: str = "vgg16",
                 layers: Sequence = NOTEBOOK_LAYERS, weights="DEFAULT", region: Optional[str] = None, loss="l1",
                 layer_weights: Optional[Sequence[float]] = None, normalize: str = "mask", reduction: str = "mean",
                 eps: float = LF.EPS, mask_resize: str = "nearest", feature_norm: Optional[str] = None,
                 process_group=None):
        super().__init__()
        self.process_group = process_group
        self.extractor = _make_extractor(extractor, arch, layers, weights)
        self.region = V.check_region(region)
        LF.check_feature_options(loss, mask_resize, feature_norm)
        V.check_loss_options(reduction, normalize, eps)
        self.loss, self.layer_weights, self.mask_resize, self.feature_norm = loss, layer_weights, mask_resize, feature_norm
        self.normalize, self.reduction, self.eps = normalize, reduction, eps

    def forward(self, pred: Tensor, target: Tensor, *, mask: Optional[Tensor] = None,
                hole: Optional[Tensor] = None):
        return LF.perceptual_loss(pred, target, extractor=self.extractor, mask=mask, hole=hole, region=self.region,
                                  loss=self.loss, layer_weights=self.layer_weights, normalize=self.normalize,
                                  reduction=self.reduction, eps=self.eps, mask_resize=self.mask_resize,
                                  feature_norm=self.feature_norm, process_group=self.process_group)

    def from_cache(self, cache: FeatureCache, known: Optional[Tensor]) -> Tensor:
        """The loss summed over the images of ``cache`` against its target (``known``: the validated
        known weight (N|1, 1, H, W), or None)."""
        region = V.resolve_region(self.region, known)
        return sum(LF.perceptual_distance(cache[name], cache.target, known, region=region, loss=self.loss,
                                          layer_weights=self.layer_weights, normalize=self.normalize,
                                          reduction=self.reduction, eps=self.eps, mask_resize=self.mask_resize,
                                          feature_norm=self.feature_norm)
                   for name in cache.names)

    def extra_repr(self) -> str:
        return (f"loss={self.loss!r}, region={self.region!r}, layer_weights={self.layer_weights}, "
                f"mask_resize={self.mask_resize!r}, feature_norm={self.feature_norm!r}, normalize={self.normalize!r}")


class StyleLoss(nn.Module):
    """Style (Gram-matrix L1) loss over VGG features, the notebook's defaults.

    ``forward(pred, target, mask=... | hole=...)``; see :func:`inpaint_fast.functional.style_loss`.
    Inside a :class:`CompositeLoss`, ``region=None`` means unmasked Grams (the notebook's style term);
    a region ('hole', 'known') takes masked Grams over it.
    """

    def __init__(self, extractor: Optional[Callable[[Tensor], List[Tensor]]] = None, *, arch: str = "vgg16",
                 layers: Sequence = NOTEBOOK_LAYERS, weights="DEFAULT", region: Optional[str] = None,
                 layer_weights: Optional[Sequence[float]] = None, reduction: str = "mean", eps: float = LF.EPS,
                 mask_resize: str = "nearest"):
        super().__init__()
        self.extractor = _make_extractor(extractor, arch, layers, weights)
        self.region = V.check_region(region)
        self.reduction = V.check_choice(reduction, "reduction", V.REDUCTIONS)
        self.eps = V.check_positive(eps, "eps")
        self.mask_resize = V.check_choice(mask_resize, "mask_resize", LF.MASK_RESIZES)
        self.layer_weights = layer_weights

    def forward(self, pred: Tensor, target: Tensor, *, mask: Optional[Tensor] = None,
                hole: Optional[Tensor] = None):
        return LF.style_loss(pred, target, extractor=self.extractor, mask=mask, hole=hole, region=self.region,
                             layer_weights=self.layer_weights, reduction=self.reduction, eps=self.eps,
                             mask_resize=self.mask_resize)

    def from_cache(self, cache: FeatureCache, known: Optional[Tensor]) -> Tensor:
        """The loss (reduction 'mean') summed over the images of ``cache``; unmasked when ``region``
        is None, else Grams over the region of ``known``."""
        region = "all" if self.region is None else V.resolve_region(self.region, known)
        return LF.style_from_cache(cache, V.region_weight(known, region), region_key=region,
                                   layer_weights=self.layer_weights, eps=self.eps, mask_resize=self.mask_resize)

    def extra_repr(self) -> str:
        return f"region={self.region!r}, layer_weights={self.layer_weights}, mask_resize={self.mask_resize!r}"


class HRFPerceptualLoss(nn.Module):
    """LaMa's high-receptive-field perceptual loss (ResNetPL):
    ``weight * sum_l mean((phi_l(pred) - phi_l(target))**2)`` over the stages of a dilated ResNet-50.

    Args:
        weight: the loss multiplier (LaMa's ``weight``; big-lama trains with 30).
        extractor: a callable returning a list of feature maps; default a :class:`ResNetFeatures` built from
            ``weights``/``layers``/``dilated``.
        weights, layers, dilated: passed to :class:`ResNetFeatures` ('DEFAULT' = torchvision's ImageNet weights,
            None = untrained, or a local state-dict path, e.g. LaMa's ADE20k ``encoder_epoch_20.pth``).
        region, normalize, reduction, eps, process_group: as :class:`inpaint_fast.PerceptualLoss`. Without a mask this is
            LaMa's loss exactly (per layer ``F.mse_loss``, summed). With ``mask=``/``hole=`` (an RGB mask
            averaged over channels; resized to each stage by nearest neighbour) each layer's squared error
            is averaged over ``region`` (default 'hole'), an extension LaMa's ResNetPL does not have.
        layer_weights: per-layer multipliers; default all 1 (LaMa's sum).

    ``forward(pred, target, mask=... | hole=...)``: the target's features are taken without grad; gradient
    reaches ``pred`` only (never the ResNet's weights). reduction='none' returns the list of per-layer maps
    (unweighted by ``weight`` and ``layer_weights``).
    """

    def __init__(self, weight: float = 1.0, extractor=None, *, weights: WeightsArg = "DEFAULT",
                 layers: Sequence[str] = RESNET_LAYERS, dilated: bool = True, region: Optional[str] = None,
                 layer_weights: Optional[Sequence[float]] = None, normalize: str = "mask", reduction: str = "mean",
                 eps: float = LF.EPS, process_group=None):
        super().__init__()
        self.process_group = process_group
        self.weight = V.check_nonnegative(weight, "weight")
        if extractor is None:
            extractor = ResNetFeatures(weights=weights, layers=layers, dilated=dilated)
        else:
            V.check_extractor(extractor)
        self.extractor = extractor
        V.check_region(region)
        V.check_loss_options(reduction, normalize, eps)
        self.region, self.layer_weights = region, layer_weights
        self.normalize, self.reduction, self.eps = normalize, reduction, eps

    def forward(self, pred: Tensor, target: Tensor, *, mask: Optional[Tensor] = None,
                hole: Optional[Tensor] = None):
        return LF.hrf_perceptual_loss(pred, target, extractor=self.extractor, weight=self.weight, mask=mask, hole=hole,
                                      region=self.region, layer_weights=self.layer_weights,
                                      normalize=self.normalize, reduction=self.reduction, eps=self.eps,
                                      process_group=self.process_group)

    def from_cache(self, cache: FeatureCache, known: Optional[Tensor]) -> Tensor:
        """``weight`` times the loss summed over the images of ``cache`` (``known``: the validated known
        weight (N|1, 1, H, W), or None)."""
        region = V.resolve_region(self.region, known)
        return self.weight * sum(LF.hrf_distance(cache[name], cache.target, known, region, self.layer_weights,
                                           self.normalize, self.reduction, self.eps) for name in cache.names)

    def extra_repr(self) -> str:
        return f"weight={self.weight}, region={self.region!r}, reduction={self.reduction!r}"
