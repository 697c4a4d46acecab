"""The public loss functions, one module per loss family: :mod:`.pixel` (masked L1 / L2 / Charbonnier,
reconstruction, total variation), :mod:`.frequency`, :mod:`.feature` (perceptual, style, Gram, HRF),
:mod:`.adversarial` (GAN losses, R1, feature matching) and :mod:`.diffusion` (schedules, the denoising
objective, RePaint). Each function validates its arguments and runs the fused op or the reference.

Conventions (``torch.nn.functional`` style): prediction first, target second, masks and options as
keywords. ``mask`` has 1 for a KNOWN pixel, ``hole`` has 1 for a MISSING pixel; pass one of them.
Accepted mask shapes: (N,1,H,W), (N,C,H,W), (N,H,W), (1,1,H,W), (H,W); dtypes bool, uint8 or
floating (soft weights in [0, 1]).

``region`` picks where a masked loss is taken: 'hole' (the default when a mask is given),
'known', or 'all'. ``normalize='mask'`` divides by the region's area counted over channels (*Loss
Functions for Image Inpainting*, mmagic); ``'all'`` divides by every element (LaMa, PConv ports).
``reduction`` is 'mean', 'sum' or 'none' (the weighted elementwise map). An empty region gives 0 and a
zero gradient.
"""
from . import adversarial, diffusion
from .adversarial import discriminator_loss, feature_matching_loss, generator_loss, gradient_penalty, r1_penalty
from .diffusion import diffusion_loss, q_sample, repaint
from .feature import FeatureCache, gram_matrix, hrf_perceptual_loss, perceptual_loss, style_distance, style_loss
from .frequency import frequency_loss
from .pixel import (masked_charbonnier, masked_error_stats, masked_l1, masked_l2, reconstruction_loss,
                    total_variation, total_variation_norm)

__all__ = ["masked_l1", "masked_l2", "masked_charbonnier", "masked_error_stats", "reconstruction_loss",
           "total_variation", "total_variation_norm", "frequency_loss", "perceptual_loss", "gram_matrix", "style_loss",
           "style_distance", "hrf_perceptual_loss", "FeatureCache", "discriminator_loss", "generator_loss", "r1_penalty",
           "gradient_penalty",
           "feature_matching_loss", "diffusion_loss", "q_sample", "repaint", "adversarial", "diffusion"]


