"""Published inpainting objectives as configured :class:`~inpaint_fast.CompositeLoss` modules.

Each preset has the paper's defaults and every weight as an argument; a weight of 0 leaves its term
out. Terms are returned unweighted, with the weighted ``'total'``. ``process_group=``: the masked
means over every rank's batch (:class:`~inpaint_fast.CompositeLoss`).
"""
from __future__ import annotations

from typing import Callable, Dict, List, Optional

from torch import Tensor

from . import _validation as V
from .losses import (AdversarialLoss, CompositeLoss, FeatureMatchingLoss, HRFPerceptualLoss, PerceptualLoss, R1Penalty,
                     ReconstructionLoss, StyleLoss, TVLoss)
from .nets import VGGFeatures

__all__ = ["pconv_loss", "lama_loss", "deepfill_v2_loss", "PCONV_LAYERS"]

PCONV_LAYERS = ("pool1", "pool2", "pool3")  # VGG16 features[:5], [5:10], [10:17]

Extractor = Callable[[Tensor], List[Tensor]]


def _weights(**weights: float) -> Dict[str, float]:
    """The non-zero weights (a 0 leaves the term out); all checked to be numbers >= 0."""
    checked = {k: V.check_nonnegative(v, k) for k, v in weights.items()}
    kept = {k: v for k, v in checked.items() if v != 0}
    if not kept:
        raise ValueError(f"every weight is 0; got {weights}")
    return kept


def pconv_loss(*, valid: float = 1.0, hole: float = 6.0, perceptual: float = 0.05, style: float = 120.0,
               tv: float = 0.1, extractor: Optional[Extractor] = None, vgg_weights="DEFAULT", normalize: str = "all",
               tv_region: str = "hole_dilated", normalize_input: bool = True, process_group=None) -> CompositeLoss:
    """The partial-convolution objective (Liu et al., "Image Inpainting for Irregular Holes Using Partial
    Convolutions", ECCV 2018, eq. 1–7): terms 'valid', 'hole', 'perc', 'style', 'tv' with weights
    1, 6, 0.05, 120, 0.1.

    - 'valid' / 'hole': L1 over the known / hole pixels of the output, divided by the number of
      elements (``normalize='all'``, the paper's 1/N_{I_gt}; 'mask' divides by each region's area);
    - 'perc': sum over VGG16 pool1, pool2, pool3 of the mean L1 feature distance, for the output and
      for the composite ``mask * target + (1 - mask) * pred`` (summed);
    - 'style': sum over the same layers of ``mean |G(phi(image)) - G(phi(target))|`` with
      ``G = F F^T / (C H W)``, for the output and the composite (the target's Grams computed once);
    - 'tv': TV of the composite over ``tv_region``: 'hole_dilated' (the paper's region P, the hole
      grown by one pixel; per direction, the sum over the pairs inside P divided by the number of all pairs
      of that direction, where the paper divides by the number of pixels: (H-1)/H and (W-1)/W of its
      value), or 'all' (the global mean, ``mean |dx| + mean |dy|``).

    VGG16 features are extracted once per image (output and composite together, the target under
    no_grad; see :class:`inpaint_fast.FeatureCache`). ``extractor`` (a callable returning the three feature maps)
    replaces the built ``VGGFeatures('vgg16', PCONV_LAYERS, weights=vgg_weights,
    normalize_input=normalize_input, channels_last=True)`` (channels_last: ~10 % faster on CPU);
    ``normalize_input=True`` feeds the VGG ImageNet-normalised [0, 1] images.

    ``pconv_loss(tv_region='all', normalize_input=False)`` is exactly the most copied PyTorch port,
    naoto0804/pytorch-inpainting-with-partial-conv's ``InpaintingLoss`` (its images are normalised by the
    data loader, so its VGG takes them as they are; its 'prc' term is our 'perc').
    """
    weights = _weights(valid=valid, hole=hole, perc=perceptual, style=style, tv=tv)
    V.check_choice(tv_region, "tv_region", V.TV_REGIONS)
    if extractor is None and ("perc" in weights or "style" in weights):
        extractor = VGGFeatures("vgg16", PCONV_LAYERS, weights=vgg_weights, normalize_input=normalize_input,
                                channels_last=True)
    sum_layers = (1.0, 1.0, 1.0)
    return CompositeLoss(
        weights,
        reconstruction=ReconstructionLoss(normalize=normalize) if "valid" in weights or "hole" in weights else None,
        perceptual=PerceptualLoss(extractor, region="all", layer_weights=sum_layers) if "perc" in weights else None,
        style=StyleLoss(extractor, layer_weights=sum_layers) if "style" in weights else None,
        tv=TVLoss(tv_region, normalize="all") if "tv" in weights else None,
        feature_images=("output", "composite"), tv_image="composite", process_group=process_group)


def lama_loss(*, l1_known: float = 10.0, l1_missing: float = 0.0, hrf: float = 30.0, adversarial: float = 10.0,
              gp_coef: float = 0.001, feature_matching: float = 100.0, hrf_extractor: Optional[Extractor] = None,
              hrf_weights="DEFAULT", mask_resize: str = "nearest", use_unmasked_for_discr: bool = True,
              process_group=None) -> CompositeLoss:
    """LaMa's generator and discriminator objectives (Suvorov et al., "Resolution-robust Large Mask
    Inpainting with Fourier Convolutions", WACV 2022; the big-lama training config).

    Generator terms, on the output ``pred``:

    - 'valid' (weight ``l1_known`` 10) and 'hole' (``l1_missing``, 0 so left out): LaMa's
      ``masked_l1_loss``, ``mean((hole * l1_missing + (1 - hole) * l1_known) * |pred - target|)`` over all elements;
    - 'hrf' (30): the high-receptive-field perceptual loss, ``sum_l mse(phi_l(pred), phi_l(target))`` (whole image) over the
      stages of a dilated ResNet-50 (:class:`HRFPerceptualLoss`; ``hrf_extractor`` replaces the built
      ``ResNetFeatures(weights=hrf_weights)``);
    - 'adv' (10): the non-saturating ``mean softplus(-D(pred))`` over all logits (``fake_logits=``);
    - 'fm' (100): feature matching, the mean over D's layers of ``mse(D_l(pred), D_l(target))``
      (``fake_features=``, ``real_features=``; LaMa's ``feature_matching_loss`` without a mask).

    ``discriminator_loss(real_logits, fake_logits, real_images=..., hole=...)``: LaMa's ``NonSaturatingWithR1``
    with ``mask_as_fake_target``: 'real' ``mean softplus(-D(x))``, 'fake' ``mean(h softplus(D(x̂)) + (1 - h)
    softplus(-D(x̂)))`` with the hole h resized to the logits by ``mask_resize`` ('nearest' as LaMa, or
    'maxpool'), and 'r1' ``gp_coef * mean_i ||∇_x sum D(x)_i||²`` (LaMa's ``make_r1_gp``; our
    :class:`R1Penalty` with gamma = 2 gp_coef). The discriminator is the caller's (LaMa: a
    pix2pixHD ``NLayerDiscriminator``). ``use_unmasked_for_discr=False`` (LaMa's option of that name,
    which turns ``mask_as_fake_target`` off): 'fake' is ``mean(h softplus(D(x̂)))``, the hole's fake
    logits only, divided by every logit.
    """
    if not isinstance(use_unmasked_for_discr, bool):
        raise TypeError(f"use_unmasked_for_discr must be a bool; got {type(use_unmasked_for_discr).__name__}")
    weights = _weights(valid=l1_known, hole=l1_missing, hrf=hrf, adv=adversarial, fm=feature_matching)
    gp_coef = V.check_nonnegative(gp_coef, "gp_coef")
    has = weights.__contains__
    return CompositeLoss(
        weights,
        reconstruction=ReconstructionLoss(normalize="all") if has("valid") or has("hole") else None,
        hrf=(HRFPerceptualLoss(extractor=hrf_extractor, region="all") if hrf_extractor is not None
             else HRFPerceptualLoss(weights=hrf_weights, region="all")) if has("hrf") else None,
        adversarial=AdversarialLoss("bce", region="all", resize=mask_resize,
                                    fake_mask="target" if use_unmasked_for_discr else "hole") if has("adv") else None,
        r1=R1Penalty(gamma=2 * gp_coef) if has("adv") and gp_coef > 0 else None,
        feature_matching=FeatureMatchingLoss("l2") if has("fm") else None,
        mask_as_fake_target=has("adv") and use_unmasked_for_discr, process_group=process_group)


def deepfill_v2_loss(*, l1_hole: float = 1.0, l1_valid: float = 1.0, adversarial: float = 1.0,
                     process_group=None) -> CompositeLoss:
    """DeepFill v2's objective (Yu et al., "Free-Form Image Inpainting with Gated Convolution", ICCV 2019;
    JiahuiYu/generative_inpainting ``inpaint_model.py``, ``l1_loss_alpha`` 1, ``gan_loss_alpha`` 1).

    - 'hole' + 'valid' (1 each, divided by all elements): together ``mean |pred - target|``; with
      ``coarse=`` (the coarse stage's output x1) each adds its value on it, so their sum is DeepFill's
      ``ae_loss = mean |gt - x1| + mean |gt - x2|``;
    - 'adv' (1): the hinge generator term ``-mean D(comp)`` (``fake_logits=``).

    ``discriminator_loss(real_logits, fake_logits)``: the hinge loss ``.5 mean relu(1 - D(x)) + .5 mean
    relu(1 + D(x̂))`` (neuralgym's ``gan_hinge_loss``). DeepFill's discriminator is the SN-PatchGAN
    (:class:`inpaint_fast.SNPatchDiscriminator`), shown the composite and the mask.
    """
    weights = _weights(hole=l1_hole, valid=l1_valid, adv=adversarial)
    return CompositeLoss(
        weights,
        reconstruction=ReconstructionLoss(normalize="all") if "hole" in weights or "valid" in weights else None,
        adversarial=AdversarialLoss("hinge", region="all") if "adv" in weights else None,
        process_group=process_group)
