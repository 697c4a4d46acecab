"""inpaint_fast: fused, mask-aware image-inpainting losses for PyTorch.

Mask convention: ``mask`` = 1 for a known pixel, 0 for a hole; or pass ``hole`` = 1 for a missing
pixel (the convention of LaMa, DeepFill, mmagic and diffusers' Stable Diffusion inpainting; diffusers'
RePaint uses ``mask``). The layers, bottom up: ``reference`` (pure PyTorch),
``ops`` (the fused kernels and how a backend is chosen), ``nets`` (extractors, discriminators),
``functional`` (the loss functions, one module per family), ``losses`` (their ``nn.Module``s),
``presets``; see docs/ARCHITECTURE.md.
"""
__version__ = "0.1.0"

from . import functional, losses, nets, reference
from .functional import (FeatureCache, diffusion_loss, discriminator_loss, feature_matching_loss, frequency_loss,
                         generator_loss, gradient_penalty, gram_matrix, hrf_perceptual_loss, masked_charbonnier,
                         masked_error_stats, masked_l1, masked_l2, perceptual_loss, r1_penalty, reconstruction_loss,
                         repaint, style_distance, style_loss, total_variation, total_variation_norm)
from .losses import (AdversarialLoss, CompositeLoss, DiffusionInpaintingLoss, FeatureMatchingLoss, FrequencyLoss,
                     HRFPerceptualLoss, PerceptualLoss, R1Penalty, ReconstructionLoss, StyleLoss, TVLoss,
                     composite_loss)
from .nets import NLayerDiscriminator, ResNetFeatures, SNPatchDiscriminator, VGGFeatures
from .ops.backend import use_backend
from .presets import deepfill_v2_loss, lama_loss, pconv_loss

__all__ = [
    "masked_l1", "masked_l2", "masked_charbonnier", "masked_error_stats", "reconstruction_loss", "total_variation",
    "total_variation_norm",
    "frequency_loss", "perceptual_loss", "gram_matrix", "style_loss", "style_distance", "hrf_perceptual_loss", "FeatureCache",
    "discriminator_loss", "generator_loss", "r1_penalty", "gradient_penalty", "feature_matching_loss", "diffusion_loss", "repaint",
    "composite_loss",
    "ReconstructionLoss", "TVLoss", "FrequencyLoss", "PerceptualLoss", "StyleLoss", "HRFPerceptualLoss",
    "AdversarialLoss", "R1Penalty", "FeatureMatchingLoss", "DiffusionInpaintingLoss", "CompositeLoss",
    "VGGFeatures", "ResNetFeatures", "SNPatchDiscriminator", "NLayerDiscriminator",
    "pconv_loss", "lama_loss", "deepfill_v2_loss", "use_backend",
    "functional", "losses", "nets", "reference",
]
