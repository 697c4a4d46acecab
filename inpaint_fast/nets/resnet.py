"""Frozen dilated ResNet-50 feature extractor of LaMa's high-receptive-field perceptual loss (ResNetPL,
Suvorov et al. 2021).

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
stem cannot load (the ADE20k checkpoint has conv1/conv2/conv3 stems). The loss itself:
:func:`inpaint_fast.functional.feature.hrf_perceptual_loss`.
"""
from __future__ import annotations

import os
from collections import OrderedDict
from typing import List, Sequence, Union

from torch import Tensor, nn
from torchvision.models import ResNet50_Weights, WeightsEnum, resnet50

from .. import _validation as V
from .weights import WeightsArg, hub_file, load_weights, register_input_normalization, resolve_weights

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
    return os.path.isfile(hub_file(w))


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
