"""The loss ``nn.Module``s: configuration in ``__init__``, tensors in ``forward``."""
from ..diffusion import DiffusionInpaintingLoss
from ..gan import AdversarialLoss, FeatureMatchingLoss, R1Penalty
from .feature import SEED_LAYERS, CompositeLoss, PerceptualLoss, StyleLoss
from .pixel import FrequencyLoss, ReconstructionLoss, TVLoss

__all__ = ["ReconstructionLoss", "PerceptualLoss", "StyleLoss", "TVLoss", "FrequencyLoss", "AdversarialLoss",
           "R1Penalty", "FeatureMatchingLoss", "DiffusionInpaintingLoss", "CompositeLoss", "SEED_LAYERS"]
