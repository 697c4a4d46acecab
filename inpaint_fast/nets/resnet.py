"""Frozen dilated ResNet-50 feature extractor of LaMa's high-receptive-field perceptual loss (ResNetPL,
Suvorov et al. 2021).

LaMa (``saicinpainting/training/losses/perceptual.py``, class ``ResNetPL``) computes::

    pred, target = (pred - mean) / std, (target - mean) / std          # ImageNet mean/std, inputs in [0, 1]
    feats = encoder(x, return_feature_maps=True)                       # outputs of layer1..layer4
    loss = weight * sum_l F.mse_loss(feat_pred_l, feat_target_l)       # weight = 30 in big-lama

with a frozen, eval-mode ResNet-50 whose last two stages are dilated (output stride 8), so the deep
features see a large part of the image. LaMa's encoder is the ADE20k segmentation ``resnet50dilated``
of CSAILVision's semantic-segmentation-pytorch (its own checkpoint,
``ade20k/ade20k-resnet50dilated-ppm_deepsup/encoder_epoch_20.pth``): a deep 3-conv stem
(conv1 3->64 stride 2, conv2 64->64, conv3 64->128, each 3x3 + BatchNorm + ReLU, then a 3x3/2 max-pool)
before the usual Bottleneck stages, which then start from 128 channels. By default the network here is
torchvision's ResNet-50 with the same dilation, ``resnet50(replace_stride_with_dilation=[False, True,
True])`` (layer3 dilation 2, layer4 dilation 4, first block of each at the previous dilation, exactly as
LaMa's ``_nostride_dilate``), with torchvision's ImageNet weights: LaMa's formula, other numbers. Given
the ADE20k checkpoint file, :class:`ResNetFeatures` recognises it by its keys (top-level ``conv2``/``conv3``/
``bn2``/``bn3``, a 3x3 ``conv1``) and loads it into its own deep-stem network (torchvision Bottleneck
blocks, the same dilation), giving LaMa's ResNetPL features, and so its loss, exactly. The loss itself:
:func:`inpaint_fast.functional.feature.hrf_perceptual_loss`.
"""
from __future__ import annotations

import os
from collections import OrderedDict
from typing import List, Sequence, Union

from torch import Tensor, nn
from torchvision.models import ResNet50_Weights, WeightsEnum, resnet50
from torchvision.models.resnet import Bottleneck, conv1x1

from .. import _validation as V
from .weights import WeightsArg, hub_file, load_weights, register_input_normalization, resolve_weights

RESNET_LAYERS = ("layer1", "layer2", "layer3", "layer4")
_STEM = ("conv1", "bn1", "relu", "maxpool")
# CSAILVision's ADE20k resnet50dilated (LaMa's ResNetPL encoder): its deep stem's module names
_DEEP_STEM = ("conv1", "bn1", "relu1", "conv2", "bn2", "relu2", "conv3", "bn3", "relu3", "maxpool")
_STAGES = ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2))  # ResNet-50: (planes, blocks, stride)


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


def _strip_module_prefix(state: dict) -> dict:
    """A checkpoint saved from ``nn.DataParallel`` (every key ``module.*``) -> the plain keys."""
    if state and all(isinstance(k, str) and k.startswith("module.") for k in state):
        return {k[len("module."):]: v for k, v in state.items()}
    return state


def _is_deep_stem(state: dict) -> bool:
    """Whether ``state`` is an ADE20k deep-stem ResNet (CSAILVision's resnet50dilated, LaMa's ResNetPL
    encoder): top-level conv2/conv3/bn2/bn3, or a 3x3 conv1 (torchvision's is (64, 3, 7, 7))."""
    if any(k.split(".")[0] in ("conv2", "conv3", "bn2", "bn3") for k in state if isinstance(k, str)):
        return True
    conv1 = state.get("conv1.weight")
    return getattr(conv1, "shape", None) == (64, 3, 3, 3)


def _deep_stem_resnet50(dilated: tuple, kept_names: tuple) -> nn.Sequential:
    """CSAILVision's ADE20k ResNet-50 (``models/ade20k/resnet.py`` in LaMa) up to the stages in ``kept_names``:
    the 3-conv stem, a 3x3/2 max-pool, then torchvision Bottleneck stages (stride on the 3x3 conv, as theirs)
    from 128 input channels, with torchvision's ``replace_stride_with_dilation`` semantics for ``dilated``
    (``(False, True, True)`` is their ``ResnetDilated(dilate_scale=8)``: ``_nostride_dilate`` gives the same
    strides, dilations and paddings)."""
    def conv3x3(cin, cout, stride=1):
        return nn.Conv2d(cin, cout, kernel_size=3, stride=stride, padding=1, bias=False)

    modules = OrderedDict([
        ("conv1", conv3x3(3, 64, stride=2)), ("bn1", nn.BatchNorm2d(64)), ("relu1", nn.ReLU(inplace=True)),
        ("conv2", conv3x3(64, 64)), ("bn2", nn.BatchNorm2d(64)), ("relu2", nn.ReLU(inplace=True)),
        ("conv3", conv3x3(64, 128)), ("bn3", nn.BatchNorm2d(128)), ("relu3", nn.ReLU(inplace=True)),
        ("maxpool", nn.MaxPool2d(kernel_size=3, stride=2, padding=1)),
    ])
    inplanes, dilation = 128, 1
    for name, (planes, blocks, stride), dilate in zip(RESNET_LAYERS, _STAGES, (False,) + dilated):
        if name not in kept_names:
            break
        previous_dilation = dilation  # as torchvision's ResNet._make_layer
        if dilate:
            dilation, stride = dilation * stride, 1
        downsample = None
        if stride != 1 or inplanes != planes * Bottleneck.expansion:
            downsample = nn.Sequential(conv1x1(inplanes, planes * Bottleneck.expansion, stride),
                                       nn.BatchNorm2d(planes * Bottleneck.expansion))
        stage = [Bottleneck(inplanes, planes, stride, downsample, dilation=previous_dilation)]
        inplanes = planes * Bottleneck.expansion
        stage += [Bottleneck(inplanes, planes, dilation=dilation) for _ in range(1, blocks)]
        modules[name] = nn.Sequential(*stage)
    return nn.Sequential(modules)


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
            file of a torchvision ResNet-50, or of CSAILVision's ADE20k ``resnet50dilated`` encoder (LaMa's
            ResNetPL weights, ``ade20k/ade20k-resnet50dilated-ppm_deepsup/encoder_epoch_20.pth``), which is
            recognised by its keys and loaded into its own deep-stem network (3-conv stem, Bottleneck
            stages from 128 channels), giving LaMa's numbers exactly (``fc.*``, a ``module.`` prefix on every
            key, and stages after the deepest requested one are ignored; the rest must fit exactly); or
            ``None`` for random (untrained, torchvision-initialised) torchvision features.
        layers: stage names among ``layer1``..``layer4``; outputs come back in this order, the network is
            truncated after the deepest one. Default: all four, as LaMa's ResNetPL.
        dilated: ``True`` (LaMa): layer3/layer4 keep stride 8 with dilations 2/4, so the stages are at
            1/4, 1/8, 1/8, 1/8 of the input; ``False``: the plain ResNet-50 (1/4, 1/8, 1/16, 1/32); or
            torchvision's ``replace_stride_with_dilation``, three bools for layer2..layer4
            (``True`` is ``(False, True, True)``).
        normalize_input: apply ``(x - mean) / std`` (ImageNet's) first, so inputs are RGB in [0, 1].

    ``forward(x)``: (N, 3, H, W) floating -> list of (N, C_l, H_l, W_l) tensors (C = 256, 512, 1024, 2048).
    Parameters never require grad and the module always stays in eval mode (``train()`` is a no-op; BatchNorm
    uses its running statistics); gradients still flow to ``x``. Attributes: ``layers``, ``dilated``,
    ``normalize_input``, ``deep_stem`` (True for the ADE20k network), ``weights_source``, ``body`` (the network,
    an ``nn.Sequential`` of the stem's modules and the kept stages, named as in the checkpoint).
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

        self.deep_stem = False
        if resolved is None:
            self.weights_source = "random init (untrained)"
            state = None
        else:
            self.weights_source, state = load_weights(resolved)
            if not isinstance(state, dict):
                raise ValueError(f"weights file {self.weights_source} does not hold a state dict; "
                                 f"got {type(state).__name__}")
            state = _strip_module_prefix(state)
            self.deep_stem = _is_deep_stem(state)
        if self.deep_stem:
            kept_names = _DEEP_STEM + RESNET_LAYERS[:deepest + 1]
            self.body = _deep_stem_resnet50(dilated, kept_names)
            arch = "the ADE20k deep-stem resnet50dilated (LaMa's ResNetPL encoder)"
        else:
            net = resnet50(weights=None, replace_stride_with_dilation=list(dilated))
            self.body = nn.Sequential(OrderedDict((name, getattr(net, name)) for name in kept_names))
            arch = "torchvision's resnet50"
        if state is not None:
            state = {k: v for k, v in state.items() if isinstance(k, str) and k.split(".")[0] in kept_names}
            try:
                self.body.load_state_dict(state, strict=True)
            except RuntimeError as e:
                raise ValueError(f"weights {self.weights_source} do not fit {arch} "
                                 f"({', '.join(n for n in kept_names if not n.startswith('relu'))}): {e}") from e
            if self.deep_stem:
                self.weights_source += " (ADE20k resnet50dilated deep-stem encoder, LaMa's ResNetPL)"

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
        return (f"layers={self.layers}, dilated={self.dilated}, deep_stem={self.deep_stem}, "
                f"weights={self.weights_source!r}, normalize_input={self.normalize_input}")
