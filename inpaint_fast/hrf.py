"""High-receptive-field perceptual loss (LaMa's ``ResNetPL``, Suvorov et al. 2021).

LaMa (``saicinpainting/training/losses/perceptual.py``, class ``ResNetPL``) computes::

    pred, target = (pred - mean) / std, (target - mean) / std          # ImageNet mean/std, inputs in [0, 1]
    feats = encoder(x, return_feature_maps=True)                       # outputs of layer1..layer4
    loss = weight * sum_l F.mse_loss(feat_pred_l, feat_target_l)       # weight = 30 in big-lama

with a frozen, eval-mode ResNet-50 whose last two stages are dilated (output stride 8), so the deep
features see a large part of the image. LaMa's encoder is the ADE20k segmentation ``resnet50dilated``
of CSAILVision's semantic-segmentation-pytorch (a deep 3-conv stem, its own checkpoint). Here the
network is torchvision's ResNet-50 with the same dilation, ``resnet50(replace_stride_with_dilation=
[False, True, True])`` (layer3 dilation 2, layer4 dilation 4, first block of each at the previous
dilation, as in LaMa's ``_nostride_dilate``), with torchvision's ImageNet weights by default. The
formula is LaMa's; the numbers equal LaMa's only with the same network weights, which torchvision's
stem cannot load (the ADE20k checkpoint has conv1/conv2/conv3 stems).
"""
from __future__ import annotations

import os
from collections import OrderedDict
from typing import List, Optional, Sequence, Union

import torch
from torch import Tensor, nn
from torchvision.models import ResNet50_Weights, WeightsEnum, resnet50

from . import _validation as V
from . import functional as LF
from .features import FeatureCache, WeightsArg, _hub_file, load_weights, register_input_normalization, resolve_weights

__all__ = ["ResNetFeatures", "HRFPerceptualLoss", "hrf_perceptual_loss", "RESNET_LAYERS", "pretrained_available"]

RESNET_LAYERS = ("layer1", "layer2", "layer3", "layer4")
_STEM = ("conv1", "bn1", "relu", "maxpool")



def _resolve_weights(weights: WeightsArg):
    return resolve_weights(weights, ResNet50_Weights)


def _resolve_layers(layers) -> tuple:
    valid = f"valid names: {', '.join(RESNET_LAYERS)}"
    if isinstance(layers, (str, bytes)) or not isinstance(layers, Sequence):
        raise TypeError(f"layers must be a sequence (list/tuple) of stage names; got {layers!r}; {valid}")
    if len(layers) == 0:
        raise ValueError(f"layers must not be empty; {valid}")
    for layer in layers:
        if layer not in RESNET_LAYERS:
            raise ValueError(f"layers: unknown stage {layer!r}; {valid}")
    if len(set(layers)) != len(layers):
        raise ValueError(f"layers: a stage is requested twice; got {list(layers)}")
    return tuple(layers)


def pretrained_available(weights: Union[str, WeightsEnum] = "DEFAULT") -> bool:
    """Whether the pretrained ResNet-50 ``weights`` are already in the torch hub cache (no network access)."""
    w = _resolve_weights(weights)
    if not isinstance(w, WeightsEnum):
        raise ValueError(f"weights must name pretrained ResNet-50 weights (e.g. 'DEFAULT'); got {weights!r}")
    return os.path.isfile(_hub_file(w))


class ResNetFeatures(nn.Module):
    """Frozen (dilated) ResNet-50 feature extractor returning the outputs of the requested stages.

    Args:
        weights: ``"DEFAULT"`` / ``"IMAGENET1K_V1"`` / ``"IMAGENET1K_V2"`` / a ``ResNet50_Weights`` member
            (torchvision's weights API, cached in ``<torch.hub.get_dir()>/checkpoints``); a path to a state-dict
            file of a torchvision ResNet-50 (``fc.*`` and stages after the deepest requested one are ignored);
            or ``None`` for random (untrained, torchvision-initialised) features.
        layers: stage names among ``layer1``..``layer4``; outputs come back in this order, the network is
            truncated after the deepest one. Default: all four, as LaMa's ResNetPL.
        dilated: ``True`` (LaMa): layer3/layer4 keep stride 8 with dilations 2/4, so the stages are at
            1/4, 1/8, 1/8, 1/8 of the input; ``False``: the plain ResNet-50 (1/4, 1/8, 1/16, 1/32); or
            torchvision's ``replace_stride_with_dilation``, three bools for layer2..layer4
            (``True`` is ``(False, True, True)``).
        normalize_input: apply ``(x - mean) / std`` (ImageNet's) first, so inputs are RGB in [0, 1].

    ``forward(x)``: (N, 3, H, W) floating -> list of (N, C_l, H_l, W_l) tensors (C = 256, 512, 1024, 2048).
    Parameters never require grad and the module always stays in eval mode (``train()`` is a no-op; BatchNorm
    uses its running statistics); gradients still flow to ``x``.
    """

    def __init__(self, weights: WeightsArg = "DEFAULT", layers: Sequence[str] = RESNET_LAYERS, dilated=True,
                 normalize_input: bool = True):
        super().__init__()
        if not isinstance(normalize_input, bool):
            raise TypeError(f"normalize_input must be a bool; got {type(normalize_input).__name__}")
        if isinstance(dilated, bool):
            dilated = (False, dilated, dilated)
        if (not isinstance(dilated, Sequence) or len(dilated) != 3
                or not all(isinstance(flag, bool) for flag in dilated)):
            raise TypeError(f"dilated must be a bool or three bools (replace_stride_with_dilation for "
                            f"layer2..layer4); got {dilated!r}")
        dilated = tuple(dilated)
        self.layers = _resolve_layers(layers)
        self.dilated, self.normalize_input = dilated, normalize_input
        resolved = _resolve_weights(weights)
        deepest = max(RESNET_LAYERS.index(name) for name in self.layers)
        kept_names = _STEM + RESNET_LAYERS[:deepest + 1]

        net = resnet50(weights=None, replace_stride_with_dilation=list(dilated))
        self.body = nn.Sequential(OrderedDict((name, getattr(net, name)) for name in kept_names))
        if resolved is None:
            self.weights_source = "random init (untrained)"
        else:
            self.weights_source, state = load_weights(resolved)
            if not isinstance(state, dict):
                raise ValueError(f"weights file {self.weights_source} does not hold a state dict; "
                                 f"got {type(state).__name__}")
            state = {k: v for k, v in state.items() if k.split(".")[0] in kept_names}
            try:
                self.body.load_state_dict(state, strict=True)
            except RuntimeError as e:
                raise ValueError(f"weights {self.weights_source} do not fit torchvision's resnet50 "
                                 f"({', '.join(kept_names)}): {e}") from e

        register_input_normalization(self, resolved)
        self.requires_grad_(False)
        super().train(False)

    def train(self, mode: bool = True) -> "ResNetFeatures":
        """Frozen: stays in eval mode whatever ``mode`` is."""
        return super().train(False)

    def forward(self, x: Tensor) -> List[Tensor]:
        """(N, 3, H, W) floating -> [(N, C_l, H_l, W_l) for each requested stage, in the requested order]."""
        V.check_image(x, "x")
        if x.shape[1] != 3:
            raise ValueError(f"x must have 3 (RGB) channels, shape (N, 3, H, W); got {tuple(x.shape)}")
        if self.normalize_input:
            x = (x - self.mean) / self.std
        found = {}
        for name, module in self.body.named_children():
            x = module(x)
            if name in self.layers:
                found[name] = x
        return [found[name] for name in self.layers]

    def extra_repr(self) -> str:
        return (f"layers={self.layers}, dilated={self.dilated}, weights={self.weights_source!r}, "
                f"normalize_input={self.normalize_input}")


def hrf_perceptual_loss(pred: Tensor, target: Tensor, *, extractor, weight: float = 1.0,
                        mask: Optional[Tensor] = None, hole: Optional[Tensor] = None, region: Optional[str] = None,
                        layer_weights: Optional[Sequence[float]] = None, normalize: str = "mask",
                        reduction: str = "mean", eps: float = LF.EPS):
    """LaMa's ResNetPL: ``weight * sum_l layer_weights[l] * masked_mean((phi_l(pred) - phi_l(target))**2)``.

    ``extractor`` maps (N, 3, H, W) to a list of feature maps (e.g. :class:`ResNetFeatures`);
    ``layer_weights`` defaults to all ones (LaMa sums the layers). Without a mask each term is
    ``F.mse_loss(phi_l(pred), phi_l(target))``; with one, see :func:`inpaint_fast.functional.perceptual_loss`.
    The target's features are taken without grad. reduction='none' returns the list of per-layer
    squared-error maps (neither ``weight`` nor ``layer_weights`` applied).
    """
    pred, target = V.check_pair(pred, target)
    V.check_loss_options(reduction, normalize, eps)
    weight = V.check_nonnegative(weight, "weight")
    known = V.known_from_mask(mask, hole, pred, required=False)
    V.check_spatial_weight(known, "mask" if mask is not None else "hole")
    pred_feats, target_feats = LF.extract_features(extractor, pred, target)
    out = _distance(pred_feats, target_feats, known, V.resolve_region(region, known), layer_weights, normalize,
                    reduction, eps)
    return out if reduction == "none" else out * weight


def _distance(pred_feats, target_feats, known, region, layer_weights, normalize, reduction, eps):
    """sum_l layer_weights[l] * masked mean squared feature error (layer weights default to 1: LaMa's sum)."""
    if layer_weights is None:
        layer_weights = [1.0] * len(pred_feats)
    return LF.perceptual_distance(pred_feats, target_feats, known, region=region, loss="l2",
                                  layer_weights=layer_weights, normalize=normalize, reduction=reduction, eps=eps)


class HRFPerceptualLoss(nn.Module):
    """LaMa's high-receptive-field perceptual loss (ResNetPL):
    ``weight * sum_l mean((phi_l(pred) - phi_l(target))**2)`` over the stages of a dilated ResNet-50.

    Args:
        weight: the loss multiplier (LaMa's ``weight``; big-lama trains with 30).
        extractor: a callable returning a list of feature maps; default a :class:`ResNetFeatures` built from
            ``weights``/``layers``/``dilated``.
        weights, layers, dilated: passed to :class:`ResNetFeatures` ('DEFAULT' = torchvision's ImageNet weights,
            None = untrained, or a local state-dict path).
        region, normalize, reduction, eps: as :class:`inpaint_fast.PerceptualLoss`. Without a mask this is
            LaMa's loss exactly (per layer ``F.mse_loss``, summed). With ``mask=``/``hole=`` (single-channel,
            resized to each stage by nearest neighbour) each layer's squared error is averaged over ``region``
            (default 'hole'), an extension LaMa's ResNetPL does not have.
        layer_weights: per-layer multipliers; default all 1 (LaMa's sum).

    ``forward(pred, target, mask=... | hole=...)``: the target's features are taken without grad; gradient
    reaches ``pred`` only (never the ResNet's weights). reduction='none' returns the list of per-layer maps
    (unweighted by ``weight`` and ``layer_weights``).
    """

    def __init__(self, weight: float = 1.0, extractor=None, *, weights: WeightsArg = "DEFAULT",
                 layers: Sequence[str] = RESNET_LAYERS, dilated: bool = True, region: Optional[str] = None,
                 layer_weights: Optional[Sequence[float]] = None, normalize: str = "mask", reduction: str = "mean",
                 eps: float = LF.EPS):
        super().__init__()
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
        return hrf_perceptual_loss(pred, target, extractor=self.extractor, weight=self.weight, mask=mask, hole=hole,
                                   region=self.region, layer_weights=self.layer_weights, normalize=self.normalize,
                                   reduction=self.reduction, eps=self.eps)

    def from_cache(self, cache: FeatureCache, known: Optional[Tensor]) -> Tensor:
        """``weight`` times the loss summed over the images of ``cache`` (``known``: the validated known
        weight (N|1, 1, H, W), or None)."""
        region = V.resolve_region(self.region, known)
        return self.weight * sum(_distance(cache[name], cache.target, known, region, self.layer_weights,
                                           self.normalize, self.reduction, self.eps) for name in cache.names)

    def extra_repr(self) -> str:
        return f"weight={self.weight}, region={self.region!r}, reduction={self.reduction!r}"
