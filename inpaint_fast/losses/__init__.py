"""The loss ``nn.Module``s: configuration in ``__init__``, tensors in ``forward``."""
from ..diffusion import DiffusionInpaintingLoss
from ..gan import AdversarialLoss
from .feature import SEED_LAYERS, CompositeLoss, PerceptualLoss, StyleLoss
from .pixel import FrequencyLoss, ReconstructionLoss, TVLoss

__all__ = ["ReconstructionLoss", "PerceptualLoss", "StyleLoss", "TVLoss", "FrequencyLoss", "AdversarialLoss",
           "DiffusionInpaintingLoss", "CompositeLoss", "SEED_LAYERS"]
