"""Frozen VGG feature extractors for perceptual and style losses, and the per-step feature cache.

The seed notebook's extractor, generalised::

    vgg = vgg16(weights=VGG16_Weights.DEFAULT).features[:16].eval()   # frozen
    feats = [outputs of layers 3, 8, 15 of vgg((x - mean) / std)]       # relu1_2, relu2_2, relu3_3

is ``VGGFeatures()`` (the defaults). Layers are named as in the VGG paper: ``conv{b}_{i}``, ``relu{b}_{i}``
and ``pool{b}`` (block ``b`` from 1, conv ``i`` from 1 within its block); integers index
``torchvision.models.vgg16().features`` directly (vgg16: relu1_2 = 3, relu2_2 = 8, relu3_3 = 15, pool1 = 4).

Weights come from torchvision's weights API (the torch hub cache, ``<torch.hub.get_dir()>/checkpoints``),
from a local state-dict file, or are random (``weights=None``, which works offline).

``FeatureCache`` runs an extractor once per image of a loss step (the target under no_grad), for the
feature terms of a composite objective to share.
"""
from __future__ import annotations

import os
import re
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union
from urllib.parse import urlparse

import torch
from torch import Tensor, nn
from torchvision import models
from torchvision.models import WeightsEnum

from ._validation import check_choice, check_extractor, check_image

__all__ = ["VGGFeatures", "FeatureCache", "auto_micro_batch", "layer_names", "pretrained_available"]

# Convs per block; each block ends with a 2x2 max-pool. Checked against torchvision when a model is built.
_BLOCKS = {"vgg16": (2, 2, 3, 3, 3), "vgg19": (2, 2, 4, 4, 4)}
_BUILDERS = {"vgg16": (models.vgg16, models.VGG16_Weights), "vgg19": (models.vgg19, models.VGG19_Weights)}
ARCHS = tuple(_BLOCKS)
POOLINGS = ("max", "avg")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

WeightsArg = Union[None, str, os.PathLike, WeightsEnum]


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


def _hub_file(weights: WeightsEnum) -> str:
    """Where torch hub caches (and looks for) the file of ``weights``."""
    filename = os.path.basename(urlparse(weights.url).path)
    return os.path.join(torch.hub.get_dir(), "checkpoints", filename)


def resolve_weights(weights: WeightsArg, enum_cls):
    """-> (enum member | file path | None) for a torchvision weights enum ``enum_cls`` (e.g.
    ``VGG16_Weights``). A str names an enum member if it is one, else a state-dict file."""
    if weights is None or isinstance(weights, enum_cls):
        return weights
    if isinstance(weights, WeightsEnum):
        raise ValueError(f"weights={weights} are for another architecture; pass a {enum_cls.__name__} member")
    if isinstance(weights, str):
        name = weights.replace(enum_cls.__name__ + ".", "")
        if name in enum_cls.__members__:
            return enum_cls[name]
    if isinstance(weights, (str, os.PathLike)):
        path = os.fspath(weights)
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"weights: no state-dict file at {path!r} (and it is not a weights name: "
                f"{', '.join(repr(n) for n in enum_cls.__members__)}); pass None for untrained features")
        return path
    raise TypeError(f"weights must be None, a weights name, a {enum_cls.__name__} or a path to a state-dict file; "
                    f"got {type(weights).__name__}")


def _resolve_weights(arch: str, weights: WeightsArg):
    return resolve_weights(weights, _BUILDERS[arch][1])


def load_weights(resolved) -> Tuple[str, object]:
    """(a description of the source, the loaded object) for resolved weights: a weights-API member
    (downloaded to, or read from, the hub cache) or a state-dict file path."""
    if isinstance(resolved, WeightsEnum):
        return f"{type(resolved).__name__}.{resolved.name}", _download(resolved)
    return resolved, torch.load(resolved, map_location="cpu", weights_only=True)


def register_input_normalization(module: nn.Module, resolved) -> None:
    """Non-persistent buffers ``mean`` and ``std`` (1, 3, 1, 1) on ``module``: the normalisation of the
    weights' own transforms for a weights-API member, else ImageNet's."""
    mean, std = IMAGENET_MEAN, IMAGENET_STD
    if isinstance(resolved, WeightsEnum):
        mean = resolved.transforms.keywords.get("mean", mean)
        std = resolved.transforms.keywords.get("std", std)
    module.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
    module.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)


def pretrained_available(arch: str = "vgg16", weights: Union[str, WeightsEnum] = "DEFAULT") -> bool:
    """Whether the pretrained ``weights`` of ``arch`` are already in the torch hub cache (no network access)."""
    check_choice(arch, "arch", ARCHS)
    w = _resolve_weights(arch, weights)
    if not isinstance(w, WeightsEnum):
        raise ValueError(f"weights must name pretrained {arch} weights (e.g. 'DEFAULT'); got {weights!r}")
    return os.path.isfile(_hub_file(w))


def _download(weights: WeightsEnum) -> dict:
    """The state dict of ``weights`` from the hub cache, downloading it if needed."""
    cached = _hub_file(weights)

    def load():
        return torch.hub.load_state_dict_from_url(weights.url, map_location="cpu", progress=True,
                                                  check_hash=True, weights_only=True)
    if os.path.isfile(cached):  # present: any failure is a real error, not a download problem
        return load()
    try:
        return load()
    except Exception as e:
        raise RuntimeError(
            f"pretrained weights {weights} could not be downloaded from {weights.url} ({type(e).__name__}: {e}). "
            f"Without internet access, either put the file {os.path.basename(cached)!r} into "
            f"{os.path.dirname(cached)}/, or pass weights='/path/to/{os.path.basename(cached)}' (a state-dict "
            f"file), or weights=None for untrained (random) features") from e


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
            the deepest one. Default: the seed's relu1_2, relu2_2, relu3_3 (indices 3, 8, 15).
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


# Pixels per extractor call on CPU. A VGG16 pass to pool3, forward + backward of 8 images of 256x256 on
# 2 cores, took 3.6 s as one batch of 8, 2.7 s as batches of 4 and 2.2-2.3 s as batches of 2 or 1
# (smaller activations stay in cache); the whole pconv_loss step was fastest with one image per call.
CPU_PIXELS_PER_CALL = 256 * 256


def auto_micro_batch(image: Tensor, num_images: int) -> int:
    """Images per extractor call: on CPU about CPU_PIXELS_PER_CALL pixels (at least 1); elsewhere all
    ``num_images`` batches of the step in one call (a GPU is better used by one large batch)."""
    if image.device.type == "cpu":
        return max(1, CPU_PIXELS_PER_CALL // max(image.shape[-2] * image.shape[-1], 1))
    return num_images * image.shape[0]


class FeatureCache:
    """The features of one loss step, each image through the extractor once.

    >>> cache = FeatureCache(vgg, target, {"output": pred, "composite": comp})
    >>> cache.target          # [(N, C_l, H_l, W_l)]: target features, taken under no_grad (detached)
    >>> cache["composite"]    # [(N, C_l, H_l, W_l)]: features of comp
    >>> cache.batched         # [(I*N, C_l, H_l, W_l)]: all named images' features, in ``images`` order

    The named images (each (N, 3, H, W), like ``target``) are extracted the first time any of them is
    asked for, the target under ``torch.no_grad`` the first time it is asked for. ``micro_batch`` is
    the most images per extractor call: by default, on a GPU all named images in ONE batched forward
    (concatenated along the batch); on CPU calls of about 256x256 pixels (``auto_micro_batch``),
    which is faster there than one large batch (smaller activations stay in cache). Per-sample
    features do not depend on the batching (up to the convolution algorithm's rounding).
    ``target_gram(layer, weight)`` caches the target's Gram matrices, so terms that compare several
    images against the target compute each once. ``passes`` counts the extractor calls. Make one cache
    per step: it holds the step's features (and their autograd graph) until it is dropped.
    """

    def __init__(self, extractor, target: Tensor, images: Mapping[str, Tensor], *,
                 micro_batch: Optional[int] = None):
        check_extractor(extractor)
        check_image(target, "target")
        if not isinstance(images, Mapping) or not images:
            raise ValueError(f"images must be a non-empty mapping of name to image; got {images!r}")
        for name, image in images.items():
            check_image(image, f"images[{name!r}]")
            if image.shape != target.shape:
                raise ValueError(f"images[{name!r}] has shape {tuple(image.shape)}; every image must have the "
                                 f"target's shape {tuple(target.shape)}")
        if micro_batch is None:
            micro_batch = auto_micro_batch(target, len(images))
        elif isinstance(micro_batch, bool) or not isinstance(micro_batch, int) or micro_batch < 1:
            raise ValueError(f"micro_batch must be None or an integer >= 1; got {micro_batch!r}")
        self.extractor, self.names, self.micro_batch = extractor, tuple(images), micro_batch
        self._target, self._images = target, [images[name] for name in self.names]
        self._target_feats: Optional[List[Tensor]] = None
        self._batched: Optional[List[Tensor]] = None
        self._grams: Dict[tuple, Tensor] = {}
        self.passes = 0

    def _extract(self, x: Tensor) -> List[Tensor]:
        self.passes += 1
        feats = self.extractor(x)
        if not isinstance(feats, (list, tuple)) or not feats:
            raise TypeError(f"extractor must return a non-empty list of feature maps; got {type(feats).__name__}")
        return list(feats)

    def _extract_all(self, images: List[Tensor]) -> List[Tensor]:
        """Features of ``images`` concatenated along the batch, ``micro_batch`` images per call."""
        total = sum(x.shape[0] for x in images)
        if total <= self.micro_batch:
            return self._extract(images[0] if len(images) == 1 else torch.cat(images))
        parts = [self._extract(x[i:i + self.micro_batch]) for x in images
                 for i in range(0, x.shape[0], self.micro_batch)]
        return [torch.cat(layer) for layer in zip(*parts)]

    @property
    def target(self) -> List[Tensor]:
        if self._target_feats is None:
            with torch.no_grad():
                self._target_feats = [f.detach() for f in self._extract_all([self._target])]
        return self._target_feats

    @property
    def batched(self) -> List[Tensor]:
        if self._batched is None:
            self._batched = self._extract_all(self._images)
        return self._batched

    def __getitem__(self, name: str) -> List[Tensor]:
        if name not in self.names:
            raise KeyError(f"no image named {name!r} in this cache; it holds {list(self.names)}")
        i, n = self.names.index(name), self._target.shape[0]
        return [f[i * n:(i + 1) * n] for f in self.batched]

    def target_gram(self, layer: int, weight: Optional[Tensor] = None, key=None) -> Tensor:
        """The Gram matrix (N, C, C) of target layer ``layer`` (``inpaint_fast.gram_matrix`` over the
        spatial ``weight`` at the layer's resolution, or unweighted), computed once per (layer, key);
        pass a ``key`` naming the weight (e.g. the region) when one is given."""
        from .functional import fused_gram  # functional imports this module
        if weight is not None and key is None:
            raise ValueError("target_gram: pass a key naming the weight (e.g. its region) with weight=")
        if (layer, key) not in self._grams:
            with torch.no_grad():
                self._grams[(layer, key)] = fused_gram(self.target[layer], weight)
        return self._grams[(layer, key)]
