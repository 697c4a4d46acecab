"""The loss ``nn.Module``s, one module per loss family (as :mod:`inpaint_fast.functional`): configuration
in ``__init__``, tensors in ``forward``."""
from .adversarial import AdversarialLoss, FeatureMatchingLoss, R1Penalty
from .composite import CompositeLoss, composite_loss
from .diffusion import DiffusionInpaintingLoss
from .feature import HRFPerceptualLoss, PerceptualLoss, StyleLoss
from .frequency import FrequencyLoss
from .pixel import ReconstructionLoss, TVLoss

__all__ = ["ReconstructionLoss", "TVLoss", "FrequencyLoss", "PerceptualLoss", "StyleLoss", "HRFPerceptualLoss",
           "AdversarialLoss", "R1Penalty", "FeatureMatchingLoss", "DiffusionInpaintingLoss", "CompositeLoss",
           "composite_loss"]


