"""Where the feature extractors' pretrained weights come from: torchvision's weights API (the torch hub
cache, ``<torch.hub.get_dir()>/checkpoints``), a local state-dict file, or none (``weights=None``:
random, works offline); and the input normalisation that goes with them."""
from __future__ import annotations

import os
from typing import Tuple, Union
from urllib.parse import urlparse

import torch
from torch import nn
from torchvision.models import WeightsEnum

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
WeightsArg = Union[None, str, os.PathLike, WeightsEnum]


def hub_file(weights: WeightsEnum) -> str:
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


def _download(weights: WeightsEnum) -> dict:
    """The state dict of ``weights`` from the hub cache, downloading it if needed."""
    cached = hub_file(weights)

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
