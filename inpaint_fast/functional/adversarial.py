"""Adversarial objectives on discriminator logits (any shape: per image or per patch), the R1 penalty
and feature matching. Discriminators: :mod:`inpaint_fast.nets.discriminators`.

The discriminator is trained with :func:`discriminator_loss` (real -> "real", fake -> "fake"); the
generator with :func:`generator_loss`. Logits are raw scores: positive means "real". Kinds (``loss=``):

======== ====================================== ====================================== =====================
loss     D real term (mean over logits)         D fake term                            G term
======== ====================================== ====================================== =====================
'bce'    BCE(z, 1) = softplus(-z)               BCE(z, 0) = softplus(z)                softplus(-z) (non-saturating)
'hinge'  ½ relu(1 - z)                          ½ relu(1 + z)                          -z
'lsgan'  ½ (z - 1)²                             ½ z²                                   ½ (z - 1)²
======== ====================================== ====================================== =====================

'bce' is the ``bce_logits_loss`` of *Loss Functions for Image Inpainting* (Goodfellow et al. 2014,
non-saturating G). 'hinge' is DeepFill v2's ``gan_sn_patch_gan_loss`` (Yu et al. 2019;
JiahuiYu/generative_inpainting ``inpaint_ops.py``, neuralgym's ``gan_hinge_loss``):
``d_loss = .5 * mean(relu(1 - pos)) + .5 * mean(relu(1 + neg))``, ``g_loss = -mean(neg)``; the ½ is
kept in each named term, so ``total`` is DeepFill's ``d_loss``. 'lsgan' is Mao et al. 2017 with
a = 0, b = c = 1 and the paper's ½ factors (pix2pix/pix2pixHD's ``MSELoss`` is twice these terms).

Masks (patch discriminators): every masked argument takes ``mask=`` (1 = known) or ``hole=``
(1 = missing), shapes (N|1, 1, H, W), (N, H, W) or (H, W) at image or logit resolution, resized to the
logits by ``resize`` = 'nearest' (default) or 'maxpool' (a logit is hole when any pixel of its cell is;
LaMa's ``mask_scale_mode``).
"""
from __future__ import annotations

from typing import NamedTuple, Optional, Sequence

import torch
from torch import Tensor

from .. import _validation as V
from ..reference import gan as _ref
from ..reference import pixel as _ref_pixel

GAN_LOSSES = ("bce", "hinge", "lsgan")
MASK_RESIZES = ("nearest", "maxpool")
FAKE_MASKS = ("target", "hole")  # LaMa's mask_as_fake_target; its use_unmasked_for_discr=False
FEATURE_RESIZES = ("nearest", "maxpool", "bilinear")
FEATURE_LOSSES = ("l1", "l2")
GENERATOR_REGIONS = ("hole", "known", "all")
EPS = 1e-8


class DiscriminatorLoss(NamedTuple):
    """The discriminator objective ``total = real + fake`` and its two named terms.

    ``real``: the term of the real logits (target "real"); ``fake``: the term of the fake logits
    (target "fake", or LaMa's mixed target when a mask was given). The generator's term is
    :func:`generator_loss`.
    """
    total: Tensor
    real: Tensor
    fake: Tensor


# ---------------------------------------------------------------- checks (candidates for _validation.py)
def _check_logits(t, name: str) -> Tensor:
    if not isinstance(t, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor; got {type(t).__name__}")
    if not t.is_floating_point():
        raise TypeError(f"{name} must be a floating tensor of logits; got {t.dtype}")
    if t.numel() == 0:
        raise ValueError(f"{name} is empty (shape {tuple(t.shape)}): there is nothing to average")
    return t


def _hole_for_logits(mask, hole, logits: Tensor, name: str, resize: str) -> Optional[Tensor]:
    """:func:`inpaint_fast._validation.hole_map` resized to the logit grid (h, w) of ``logits`` (N, C, h, w) by ``resize``."""
    V.check_choice(resize, "resize", MASK_RESIZES)
    h = V.hole_map(mask, hole, logits, name)
    return None if h is None else _ref.resize_hole(h, logits.shape[-2:], resize)


def _check_loss(loss: str) -> str:
    return V.check_choice(loss, "loss", GAN_LOSSES)


# ---------------------------------------------------------------- losses
def discriminator_loss(real_logits: Tensor, fake_logits: Tensor, *, loss: str = "bce",
                       mask: Optional[Tensor] = None, hole: Optional[Tensor] = None,
                       resize: str = "nearest", fake_mask: str = "target") -> DiscriminatorLoss:
    """D's loss as ``DiscriminatorLoss(total, real, fake)`` (see the module table for each ``loss``).

    real_logits, fake_logits: D's raw scores, any shape (means over all elements); detach the fake
    images before D so that this loss trains D only.

    With ``mask=`` (1 = known) or ``hole=`` (1 = missing) the fake logits must be (N, C, h, w) and
    the hole is resized to (h, w) by ``resize``. ``fake_mask='target'`` is LaMa's
    ``mask_as_fake_target`` (Suvorov et al. 2022, ``NonSaturatingWithR1``): each fake logit's target
    is "fake" in the hole and "real" in the known region, ``fake = mean(hole * fake_term(z) + (1 - hole)
    * real_term(z))``; 'hole' is LaMa's ``use_unmasked_for_discr=False``: only the hole's fake logits
    count, ``fake = mean(hole * fake_term(z))`` (divided by every logit, as LaMa).
    The real logits are always "real".
    """
    _check_loss(loss)
    V.check_choice(fake_mask, "fake_mask", FAKE_MASKS)
    _check_logits(real_logits, "real_logits")
    _check_logits(fake_logits, "fake_logits")
    V.check_same_device(fake_logits, "fake_logits", real_logits, "real_logits")
    fake_hole = _hole_for_logits(mask, hole, fake_logits, "fake_logits", resize)
    real, fake = _ref.discriminator_terms(real_logits, fake_logits, loss, fake_hole, fake_mask)
    return DiscriminatorLoss(real + fake, real, fake)


def generator_loss(fake_logits: Tensor, *, loss: str = "bce", mask: Optional[Tensor] = None,
                   hole: Optional[Tensor] = None, region: Optional[str] = None, resize: str = "nearest",
                   normalize: str = "mask", eps: float = EPS, process_group=None) -> Tensor:
    """G's adversarial loss: the mean of the G term over the fake logits (module table).

    'bce' is the non-saturating ``BCE(fake, 1)``; 'hinge' is ``-mean(fake)``; 'lsgan' ``½ mean (fake - 1)²``.
    With a mask (fake_logits (N, C, h, w)), ``region`` ('hole' by default, 'known' or 'all') restricts
    the term to the logits of that region (hole resized by ``resize``); ``normalize='mask'`` divides by
    the region's logit count (0 for an empty region), 'all' by every logit (LaMa's
    ``use_unmasked_for_gen=False``: ``mean(loss * mask)``). ``process_group``: the mean over every
    rank's logits (:func:`inpaint_fast.masked_l1`).
    """
    _check_loss(loss)
    _check_logits(fake_logits, "fake_logits")
    V.check_choice(normalize, "normalize", V.NORMALIZES)
    V.check_positive(eps, "eps")
    h = _hole_for_logits(mask, hole, fake_logits, "fake_logits", resize)
    region = V.resolve_region(region, h, choices=GENERATOR_REGIONS)
    weight = None if region == "all" else (h if region == "hole" else 1 - h)
    with _ref_pixel.global_means(V.check_process_group(process_group)):
        return _ref.generator_term(fake_logits, loss, weight, normalize, eps)


def _scale_tensor(scaler, like: Tensor) -> Optional[Tensor]:
    """The GradScaler's current scale as a tensor (no host sync): ``scaler.scale(1)``."""
    if scaler is None:
        return None
    if not hasattr(scaler, "scale") or not hasattr(scaler, "is_enabled"):
        raise TypeError(f"scaler must be a torch.amp.GradScaler; got {type(scaler).__name__}")
    if not scaler.is_enabled():
        return None
    return scaler.scale(torch.ones((), dtype=torch.float32, device=like.device))


PENALTY_NORMS = ("image", "pixel")  # the gradient's norm per image (C, H, W) or per pixel (C): mmagic's 'HWC' / 'pixel'


def _penalty_hole(mask, hole, images: Tensor, norm: str) -> Optional[Tensor]:
    """The checked ``norm`` and the hole weight (1 = missing) of a masked gradient penalty, at the images' size."""
    V.check_choice(norm, "norm", PENALTY_NORMS)
    if norm == "pixel" and images.dim() != 4:
        raise ValueError(f"norm='pixel' needs (N, C, H, W) images; got shape {tuple(images.shape)}")
    if mask is None and hole is None:
        return None
    V.check_image(images, "real_images")
    m = V.mask_arg(mask, hole, images, required=True, like_name="real_images")
    return 1 - m.known(torch.float32 if images.dtype in (torch.float16, torch.bfloat16) else images.dtype)


def r1_penalty(real_logits: Tensor, real_images: Tensor, *, gamma: float = 10.0, scaler=None,
               mask: Optional[Tensor] = None, hole: Optional[Tensor] = None, norm: str = "image") -> Tensor:
    """R1 gradient penalty ``gamma / 2 * E_i ||∇_x sum D(x_i)||²`` on real images (Mescheder et al. 2018).

    real_images: the (N, ...) tensor D was called on, with ``requires_grad=True``; real_logits: D's
    output on it (any shape; summed per image, as StyleGAN2 and LaMa's ``make_r1_gp``). The gradient is
    taken with ``create_graph=True`` so the penalty trains D. Returns a 0-d fp32 (or fp64) tensor.

    mmagic's variants (``r1_gradient_penalty_loss``, whose value is ours with gamma = 2): ``norm='pixel'``
    averages each pixel's squared gradient norm over (N, H, W) (mmagic's default norm_mode; the
    'image' value divided by H W); ``mask=``/``hole=`` (image size) keeps the gradient in the hole only
    and divides by the hole's mean, ``gamma / 2 * E ||hole ∇||² / mean(hole)`` (0 for an empty hole).

    AMP: pass the ``torch.amp.GradScaler`` used for D (``scaler=``); the gradient is then taken of the
    scaled logits and unscaled (PyTorch AMP notes, "Gradient penalty"), so fp16 gradients do not
    underflow. Under ``torch.autocast`` call it inside the autocast region. LaMa's ``gp_coef`` is
    ``gamma / 2`` here (its default 5 is gamma = 10). Not traceable by
    ``torch.compile`` (double backward through ``autograd.grad``): compile D, not this call.
    """
    gamma = V.check_nonnegative(gamma, "gamma")
    _check_logits(real_logits, "real_logits")
    if not isinstance(real_images, Tensor):
        raise TypeError(f"real_images must be a torch.Tensor; got {type(real_images).__name__}")
    if not real_images.requires_grad:
        raise ValueError("real_images must require grad: call real_images.requires_grad_() before D(real_images)")
    if not real_logits.requires_grad:
        raise ValueError("real_logits does not require grad: compute it as D(real_images) with autograd enabled")
    if real_logits.shape[0] != real_images.shape[0]:
        raise ValueError(f"real_logits and real_images must have the same batch size; got "
                         f"{tuple(real_logits.shape)} and {tuple(real_images.shape)}")
    weight = _penalty_hole(mask, hole, real_images, norm)
    return _ref.r1_penalty(real_logits, real_images, gamma, _scale_tensor(scaler, real_logits), weight, norm)


def gradient_penalty(discriminator, real_images: Tensor, fake_images: Tensor, *, mask: Optional[Tensor] = None,
                     hole: Optional[Tensor] = None, norm: str = "image", alpha: Optional[Tensor] = None,
                     generator: Optional[torch.Generator] = None) -> Tensor:
    """WGAN-GP's gradient penalty (Gulrajani et al. 2017): ``E (||∇ sum D(x̂)|| - 1)²`` at
    ``x̂ = alpha real + (1 - alpha) fake``, a new leaf (no gradient reaches the images; the penalty
    trains D through ``create_graph=True``). Multiply by its weight yourself (λ = 10 in the paper).

    discriminator: called as ``discriminator(x̂)``, returning logits (any shape, summed per image).
    real_images, fake_images: (N, ...) of one shape, dtype and device. ``alpha``: (N,) or broadcastable
    interpolation weights; default one ``torch.rand(N, 1, ..., 1, generator=generator)`` draw of float32
    on the images' device, cast to their dtype (on CPU with the global generator: mmagic's draw).
    ``norm``: 'image' (the norm over each image, the paper's; mmagic's 'HWC') or 'pixel' (over channels
    per pixel, the mean over (N, H, W): mmagic's default). ``mask=``/``hole=``: mmagic's masked penalty,
    the gradient times the hole, the result divided by the hole's mean (0 for an empty hole); as there,
    with 'pixel' each pixel outside the hole still counts (0 - 1)² = 1.
    """
    if not callable(discriminator):
        raise TypeError(f"discriminator must be callable (an nn.Module); got {type(discriminator).__name__}")
    for name, t in (("real_images", real_images), ("fake_images", fake_images)):
        if not isinstance(t, Tensor) or not t.is_floating_point() or t.dim() < 2:
            raise TypeError(f"{name} must be a floating (N, ...) tensor; got "
                            f"{getattr(t, 'shape', type(t).__name__)}")
    if real_images.shape != fake_images.shape or real_images.dtype != fake_images.dtype:
        raise ValueError(f"real_images and fake_images must have one shape and dtype; got {tuple(real_images.shape)} "
                         f"{real_images.dtype} and {tuple(fake_images.shape)} {fake_images.dtype}")
    V.check_same_device(fake_images, "fake_images", real_images, "real_images")
    weight = _penalty_hole(mask, hole, real_images, norm)
    n, ones = real_images.shape[0], (1,) * (real_images.dim() - 1)
    if alpha is None:
        alpha = torch.rand((n,) + ones, generator=generator, device=real_images.device).to(real_images.dtype)
    elif not isinstance(alpha, Tensor) or not alpha.is_floating_point():
        raise TypeError(f"alpha must be a floating tensor of interpolation weights; got {type(alpha).__name__}")
    elif alpha.dim() == 1:
        if alpha.shape[0] != n:
            raise ValueError(f"alpha must have shape (N,) = ({n},) or broadcast to the images; got {tuple(alpha.shape)}")
        alpha = alpha.view((n,) + ones)
    with torch.enable_grad():
        x = (alpha * real_images.detach() + (1 - alpha) * fake_images.detach()).requires_grad_(True)
        logits = discriminator(x)
        _check_logits(logits, "discriminator(x̂)")
        (grad,) = torch.autograd.grad(logits.sum(), x, create_graph=True)
    return _ref.gradient_penalty(grad, weight, norm)


def feature_matching_loss(fake_features: Sequence[Tensor], real_features: Sequence[Tensor], *,
                          loss: str = "l1", mask: Optional[Tensor] = None, hole: Optional[Tensor] = None,
                          region: Optional[str] = None, resize: str = "nearest", normalize: str = "mask",
                          layer_weights: Optional[Sequence[float]] = None, eps: float = EPS,
                          process_group=None) -> Tensor:
    """Feature matching between D's intermediate features of fake and real images (pix2pixHD, LaMa).

    fake_features, real_features: equal-length lists of (N, C_l, H_l, W_l) maps (e.g.
    ``NLayerDiscriminator(x, return_features=True)[1]``); real features are detached. Per layer the
    mean L1 ('l1', pix2pixHD) or squared ('l2', LaMa) difference; the result is the mean over layers,
    or ``sum_l layer_weights[l] * value_l`` (pix2pixHD uses 4 / (n_layers + 1) each).
    With ``mask=`` / ``hole=`` (single channel, image resolution), the hole is resized to each layer by
    ``resize`` ('nearest', 'maxpool', or 'bilinear' as LaMa) and ``region`` ('hole' by default,
    'known', 'all') weights the per-layer mean (``normalize`` and ``process_group`` as in :func:`generator_loss`).
    """
    if not isinstance(fake_features, (list, tuple)) or not isinstance(real_features, (list, tuple)):
        raise TypeError("fake_features and real_features must be lists of feature maps; got "
                        f"{type(fake_features).__name__} and {type(real_features).__name__}")
    if len(fake_features) != len(real_features) or not fake_features:
        raise ValueError(f"fake_features and real_features must be non-empty lists of one length; got "
                         f"{len(fake_features)} and {len(real_features)}")
    V.check_choice(loss, "loss", FEATURE_LOSSES)
    V.check_choice(resize, "resize", FEATURE_RESIZES)
    V.check_choice(normalize, "normalize", V.NORMALIZES)
    V.check_positive(eps, "eps")
    for i, (f, r) in enumerate(zip(fake_features, real_features)):
        V.check_pair(f, r, f"fake_features[{i}]", f"real_features[{i}]")
    layer_weights = V.check_layer_weights(layer_weights, len(fake_features))
    h = V.hole_map(mask, hole, fake_features[0], "fake_features[0]")
    region = V.resolve_region(region, h)
    with _ref_pixel.global_means(V.check_process_group(process_group)):
        return _ref.feature_matching(fake_features, real_features, loss, h, region, resize, normalize,
                                     layer_weights, eps)
