"""Frozen VGG feature extractors for the perceptual and style losses.

The extractor of *Loss Functions for Image Inpainting*, generalised::

    vgg = vgg16(weights=VGG16_Weights.DEFAULT).features[:16].eval()   # frozen
    feats = [outputs of layers 3, 8, 15 of vgg((x - mean) / std)]       # relu1_2, relu2_2, relu3_3

is ``VGGFeatures()`` (the defaults, :data:`NOTEBOOK_LAYERS`). Layers are named as in the VGG paper:
``conv{b}_{i}``, ``relu{b}_{i}`` and ``pool{b}`` (block ``b`` from 1, conv ``i`` from 1 within its
block); integers index ``torchvision.models.vgg16().features`` directly (vgg16: relu1_2 = 3,
relu2_2 = 8, relu3_3 = 15, pool1 = 4). Weights: :mod:`inpaint_fast.nets.weights`.
"""
from __future__ import annotations

import os
import re
from typing import List, Sequence, Tuple, Union

import torch
from torch import Tensor, nn
from torchvision import models
from torchvision.models import WeightsEnum

from .._validation import check_choice, check_image
from .weights import WeightsArg, hub_file, load_weights, register_input_normalization, resolve_weights

NOTEBOOK_LAYERS = ("relu1_2", "relu2_2", "relu3_3")  # the notebook's VGG16 layers 3, 8, 15

# Convs per block; each block ends with a 2x2 max-pool. Checked against torchvision when a model is built.
_BLOCKS = {"vgg16": (2, 2, 3, 3, 3), "vgg19": (2, 2, 4, 4, 4)}
_BUILDERS = {"vgg16": (models.vgg16, models.VGG16_Weights), "vgg19": (models.vgg19, models.VGG19_Weights)}
ARCHS = tuple(_BLOCKS)
POOLINGS = ("max", "avg")


def layer_names(arch: str = "vgg16") -> List[str]:
    """Names of the layers of ``torchvision.models.<arch>().features``, in index order.

    ``layer_names("vgg16")[:5] == ["conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1"]``.
    """
    check_choice(arch, "arch", ARCHS)
    names = []
    for b, n_conv in enumerate(_BLOCKS[arch], start=1):
        for i in range(1, n_conv + 1):
            names += [f"conv{b}_{i}", f"relu{b}_{i}"]
        names.append(f"pool{b}")
    return names


def _resolve_layers(arch: str, layers) -> Tuple[Tuple[int, ...], Tuple[str, ...]]:
    """User's ``layers`` (names or indices) -> (indices, names), in the user's order."""
    names = layer_names(arch)
    valid = f"valid names for {arch}: {', '.join(names)}; or indices 0..{len(names) - 1}"
    if isinstance(layers, (str, bytes)) or not isinstance(layers, Sequence):
        raise TypeError(f"layers must be a sequence (list/tuple) of layer names or indices; got {layers!r}")
    if len(layers) == 0:
        raise ValueError(f"layers must not be empty; {valid}")
    indices = []
    for layer in layers:
        if isinstance(layer, str):
            if layer not in names:
                raise ValueError(f"layers: unknown layer name {layer!r}; {valid}")
            idx = names.index(layer)
        elif isinstance(layer, bool) or not hasattr(layer, "__index__"):
            raise TypeError(f"layers must contain layer names (str) or indices (int); got {layer!r} "
                            f"({type(layer).__name__})")
        else:
            idx = layer.__index__()
            if not 0 <= idx < len(names):
                raise ValueError(f"layers: index {idx} is out of range for {arch}; {valid}")
        if idx in indices:
            raise ValueError(f"layers: {layer!r} ({names[idx]}, index {idx}) is requested twice; got {list(layers)}")
        indices.append(idx)
    return tuple(indices), tuple(names[i] for i in indices)


def _resolve_weights(arch: str, weights: WeightsArg):
    return resolve_weights(weights, _BUILDERS[arch][1])


def pretrained_available(arch: str = "vgg16", weights: Union[str, WeightsEnum] = "DEFAULT") -> bool:
    """Whether the pretrained ``weights`` of ``arch`` are already in the torch hub cache (no network access)."""
    check_choice(arch, "arch", ARCHS)
    w = _resolve_weights(arch, weights)
    if not isinstance(w, WeightsEnum):
        raise ValueError(f"weights must name pretrained {arch} weights (e.g. 'DEFAULT'); got {weights!r}")
    return os.path.isfile(hub_file(w))


def _features_state_dict(state: dict, n_kept: int, source: str) -> dict:
    """Keys of ``features[:n_kept]`` from a full VGG (``features.0.weight``, classifier ignored) or a
    features-only (``0.weight``) state dict."""
    if not isinstance(state, dict):
        raise ValueError(f"weights file {source} does not hold a state dict; got {type(state).__name__}")
    if any(k.startswith("features.") for k in state):
        state = {k[len("features."):]: v for k, v in state.items() if k.startswith("features.")}
    bad = [k for k in state if not re.fullmatch(r"\d+\.\w+", k)]
    if bad:
        raise ValueError(f"weights file {source} is neither a torchvision VGG state dict ('features.0.weight', ...) "
                         f"nor a features-only one ('0.weight', ...); unexpected keys: {bad[:5]}")
    return {k: v for k, v in state.items() if int(k.split(".")[0]) < n_kept}


class VGGFeatures(nn.Module):
    """Frozen VGG16/19 feature extractor returning the outputs of the requested layers.

    Args:
        arch: ``"vgg16"`` or ``"vgg19"``.
        layers: names (``"relu1_2"``, ``"conv3_1"``, ``"pool2"``; see :func:`layer_names`) or indices into
            torchvision's ``.features``. Features come back in this order; the network is truncated after
            the deepest one. Default: the notebook's relu1_2, relu2_2, relu3_3 (indices 3, 8, 15).
        weights: ``"DEFAULT"`` / ``"IMAGENET1K_V1"`` / a ``VGG16_Weights``/``VGG19_Weights`` member (torchvision's
            weights API, cached in ``<torch.hub.get_dir()>/checkpoints``); a path to a state-dict file (full
            torchvision VGG or features-only keys); or ``None`` for random (untrained) features.
        normalize_input: apply ``(x - mean) / std`` first, with the weights' mean/std (ImageNet's
            (0.485, 0.456, 0.406) / (0.229, 0.224, 0.225) unless the weights enum says otherwise),
            so inputs are RGB in [0, 1].
        pooling: ``"max"`` (torchvision's) or ``"avg"`` (each MaxPool2d replaced by an AvgPool2d of the
            same kernel and stride, as in style-transfer code).
        channels_last: run the network on a channels_last copy of the input (oneDNN / cuDNN's preferred
            layout: faster on most CPUs and GPUs); the features come back channels_last.

    ``forward(x)``: ``x`` (N, 3, H, W) floating -> list of (N, C_l, H_l, W_l) tensors, one per requested layer.
    Parameters never require grad and the module always stays in eval mode (``train()`` is a no-op);
    gradients still flow to ``x``. Attributes: ``arch``, ``layers`` (names), ``indices``, ``weights_source``.
    """

    def __init__(self, arch: str = "vgg16", layers: Sequence[Union[str, int]] = ("relu1_2", "relu2_2", "relu3_3"),
                 weights: WeightsArg = "DEFAULT", normalize_input: bool = True, pooling: str = "max",
                 channels_last: bool = False):
        super().__init__()
        check_choice(arch, "arch", ARCHS)
        check_choice(pooling, "pooling", POOLINGS)
        for name, flag in (("normalize_input", normalize_input), ("channels_last", channels_last)):
            if not isinstance(flag, bool):
                raise TypeError(f"{name} must be a bool; got {type(flag).__name__}")
        self.indices, self.layers = _resolve_layers(arch, layers)
        self.arch, self.pooling, self.normalize_input, self.channels_last = arch, pooling, normalize_input, channels_last
        resolved = _resolve_weights(arch, weights)
        n_kept = max(self.indices) + 1

        # Build on the meta device (no 500 MB classifier allocation or init), keep features[:n_kept].
        with torch.device("meta"):
            full = _BUILDERS[arch][0](weights=None).features
        names = layer_names(arch)
        kinds = {"conv": nn.Conv2d, "relu": nn.ReLU, "pool": nn.MaxPool2d}
        assert len(full) == len(names) and all(isinstance(m, kinds[n[:4]]) for m, n in zip(full, names)), \
            f"torchvision's {arch} layout changed; update _BLOCKS"
        kept = []
        for i, m in enumerate(full[:n_kept]):
            if isinstance(m, nn.ReLU):  # in place (less memory) unless it would overwrite a requested conv output
                m = nn.ReLU(inplace=i - 1 not in self.indices)
            elif isinstance(m, nn.MaxPool2d) and pooling == "avg":
                m = nn.AvgPool2d(m.kernel_size, m.stride, m.padding, ceil_mode=m.ceil_mode)
            kept.append(m)
        self.features = nn.Sequential(*kept).to_empty(device="cpu")

        if resolved is None:
            self.weights_source = "random init (untrained)"
            for m in self.features:
                if isinstance(m, nn.Conv2d):  # torchvision's VGG initialisation
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                    nn.init.zeros_(m.bias)
        else:
            self.weights_source, state = load_weights(resolved)
            state = _features_state_dict(state, n_kept, self.weights_source)
            try:
                self.features.load_state_dict(state, strict=True)
            except RuntimeError as e:
                raise ValueError(f"weights {self.weights_source} do not fit {arch}.features[:{n_kept}]: {e}") from e

        register_input_normalization(self, resolved)
        self.requires_grad_(False)
        super().train(False)
        # forward's bookkeeping: which position of the output each kept layer fills
        self._slot = {idx: pos for pos, idx in enumerate(self.indices)}

    def train(self, mode: bool = True) -> "VGGFeatures":
        """Frozen: stays in eval mode whatever ``mode`` is."""
        return super().train(False)

    def forward(self, x: Tensor) -> List[Tensor]:
        """(N, 3, H, W) floating -> [(N, C_l, H_l, W_l) for each requested layer, in the requested order]."""
        check_image(x, "x")
        if x.shape[1] != 3:
            raise ValueError(f"x must have 3 (RGB) channels, shape (N, 3, H, W); got {tuple(x.shape)}")
        if self.normalize_input:
            x = (x - self.mean) / self.std
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        out: List[Tensor] = [x] * len(self.indices)
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self._slot:
                out[self._slot[i]] = x
        return out

    def extra_repr(self) -> str:
        layers = ", ".join(f"{n}={i}" for n, i in zip(self.layers, self.indices))
        return (f"arch={self.arch!r}, layers=({layers}), weights={self.weights_source!r}, "
                f"normalize_input={self.normalize_input}, pooling={self.pooling!r}, channels_last={self.channels_last}")
