"""inpaint_fast: fused, mask-aware image-inpainting losses for PyTorch.

Mask convention: ``mask`` = 1 for a known pixel, 0 for a hole; or pass ``hole`` = 1 for a missing
pixel (LaMa / DeepFill / diffusers convention).
"""
__version__ = "0.1.0"

from . import diffusion, functional, gan, reference
from ._backend import use_backend
from .diffusion import repaint
from .features import FeatureCache, VGGFeatures
from .functional import (composite_loss, frequency_loss, gram_matrix, masked_charbonnier, masked_error_stats,
                         masked_l1, masked_l2, perceptual_loss, reconstruction_loss, style_loss, total_variation)
from .gan import FeatureMatchingLoss, NLayerDiscriminator, SNPatchDiscriminator
from .hrf import HRFPerceptualLoss, ResNetFeatures, hrf_perceptual_loss
from .losses import (AdversarialLoss, CompositeLoss, DiffusionInpaintingLoss, FrequencyLoss, PerceptualLoss, R1Penalty,
                     ReconstructionLoss, StyleLoss, TVLoss)
from .presets import deepfill_v2_loss, lama_loss, pconv_loss

__all__ = [
    "masked_l1", "masked_l2", "masked_charbonnier", "masked_error_stats", "reconstruction_loss", "perceptual_loss", "gram_matrix", "style_loss",
    "total_variation", "frequency_loss", "composite_loss",
    "ReconstructionLoss", "PerceptualLoss", "StyleLoss", "TVLoss", "FrequencyLoss", "AdversarialLoss",
    "R1Penalty", "DiffusionInpaintingLoss", "CompositeLoss", "FeatureMatchingLoss", "pconv_loss", "lama_loss",
    "deepfill_v2_loss", "VGGFeatures", "FeatureCache", "SNPatchDiscriminator",
    "NLayerDiscriminator", "HRFPerceptualLoss", "ResNetFeatures", "hrf_perceptual_loss", "repaint", "use_backend",
    "functional", "gan", "diffusion", "reference",
]
