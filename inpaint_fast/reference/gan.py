"""Adversarial terms on discriminator logits: the pure-PyTorch oracle of :mod:`inpaint_fast.functional.adversarial`.

The notebook's ``bce_logits_loss`` plus hinge (DeepFill v2) and least squares (LSGAN), per-logit maps
for patch discriminators with LaMa's ``mask_as_fake_target``, the R1 penalty and feature matching.
Inputs are assumed valid (the public API checks them).
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from .pixel import distributed, global_mean


def bce_logits(logits: Tensor, target: float) -> Tensor:
    """The notebook's ``bce_logits_loss``: BCE-with-logits of every logit against a constant label."""
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, float(target)))


# ---------------------------------------------------------------- per-logit maps of each loss
def real_map(z: Tensor, loss: str) -> Tensor:
    """D's per-logit loss for a logit whose target is "real"."""
    if loss == "bce":
        return F.softplus(-z)                     # BCE(z, 1)
    if loss == "hinge":
        return 0.5 * F.relu(1 - z)                # DeepFill v2 gan_hinge_loss: 0.5 * relu(1 - pos)
    return 0.5 * (z - 1) ** 2                     # LSGAN (Mao et al. 2017, b = 1)


def fake_map(z: Tensor, loss: str) -> Tensor:
    """D's per-logit loss for a logit whose target is "fake"."""
    if loss == "bce":
        return F.softplus(z)                      # BCE(z, 0)
    if loss == "hinge":
        return 0.5 * F.relu(1 + z)                # 0.5 * relu(1 + neg)
    return 0.5 * z ** 2                           # LSGAN, a = 0


def generator_map(z: Tensor, loss: str) -> Tensor:
    """G's per-logit loss on the fake logits."""
    if loss == "bce":
        return F.softplus(-z)                     # non-saturating: BCE(z, 1)
    if loss == "hinge":
        return -z                                 # DeepFill v2: g_loss = -mean(neg)
    return 0.5 * (z - 1) ** 2                     # LSGAN, c = 1


# ---------------------------------------------------------------- masks on the logit grid
def resize_hole(hole: Tensor, size: Sequence[int], mode: str) -> Tensor:
    """A (N|1, 1, H, W) hole map (1 = missing) resized to ``size`` (LaMa's ``interpolate_mask``).

    'nearest' samples it; 'maxpool' (adaptive max pooling) marks a logit as hole when any pixel of its
    cell is; 'bilinear' averages (soft weights, LaMa's feature-matching choice).
    """
    size = tuple(int(s) for s in size)
    if tuple(hole.shape[-2:]) == size:
        return hole
    if mode == "maxpool":
        return F.adaptive_max_pool2d(hole, size)
    if mode == "bilinear":
        return F.interpolate(hole, size=size, mode="bilinear", align_corners=False)
    return F.interpolate(hole, size=size, mode="nearest")


def weighted_mean(e: Tensor, w: Optional[Tensor], normalize: str = "mask", eps: float = 1e-8) -> Tensor:
    """``sum(w e) / max(sum(w expanded to e), eps)`` ('mask'), ``sum(w e) / numel(e)`` ('all'), or the
    mean over samples (dim 0) of each sample's 'mask' mean ('sample')."""
    if distributed():
        return global_mean(e, w, normalize=normalize, eps=eps)
    if e.numel() == 0:  # an empty batch: 0, with a zero gradient
        return e.sum()
    if w is None:
        return e.mean()
    if normalize == "sample":
        num, area = (w * e).flatten(1).sum(1), w.expand_as(e).flatten(1).sum(1)
        return (num / torch.clamp(area, min=eps)).mean()
    num = (w * e).sum()
    if normalize == "all":
        return num / e.numel()
    return num / torch.clamp(w.expand_as(e).sum(), min=eps)


# ---------------------------------------------------------------- the two players' terms
def discriminator_terms(real_logits: Tensor, fake_logits: Tensor, loss: str = "bce",
                        fake_hole: Optional[Tensor] = None, fake_mask: str = "target") -> Tuple[Tensor, Tensor]:
    """(real term, fake term) of D's loss, each a mean over its logits.

    ``fake_hole`` (broadcastable to ``fake_logits``, 1 = hole) with ``fake_mask='target'`` is LaMa's
    ``mask_as_fake_target``: a fake logit's target is "fake" with weight ``hole`` and "real" with
    weight ``1 - hole``; with 'hole' (LaMa's ``use_unmasked_for_discr=False``) only the hole's fake
    logits count: ``mean(hole * fake_term)``, still divided by every logit.
    """
    if loss == "bce" and fake_hole is None:       # the notebook's exact code path
        return bce_logits(real_logits, 1.0), bce_logits(fake_logits, 0.0)
    real = real_map(real_logits, loss).mean()
    if fake_hole is None:
        return real, fake_map(fake_logits, loss).mean()
    fake = fake_hole * fake_map(fake_logits, loss)
    if fake_mask == "target":
        fake = fake + (1 - fake_hole) * real_map(fake_logits, loss)
    return real, fake.mean()


def generator_term(fake_logits: Tensor, loss: str = "bce", weight: Optional[Tensor] = None,
                   normalize: str = "mask", eps: float = 1e-8) -> Tensor:
    """G's adversarial term: the mean of :func:`generator_map`, weighted by ``weight`` if given."""
    if loss == "bce" and weight is None and not distributed():
        return bce_logits(fake_logits, 1.0)
    return weighted_mean(generator_map(fake_logits, loss), weight, normalize, eps)


def region_mean(value: Tensor, hole: Optional[Tensor]) -> Tensor:
    """mmagic's masked penalties divide by ``mean(hole)``; an empty region gives 0 (not 0/0)."""
    if hole is None:
        return value
    area = hole.mean()
    return torch.where(area > 0, value / area.clamp_min(torch.finfo(area.dtype).tiny), torch.zeros_like(value))


def gradient_penalty(grad: Tensor, hole: Optional[Tensor] = None, norm: str = "image") -> Tensor:
    """WGAN-GP's ``mean (||g|| - 1)^2`` of D's input gradient g (N, C, H, W): the norm over (C, H, W)
    per image ('image', Gulrajani et al. 2017) or over C per pixel, averaged over (N, H, W) ('pixel',
    mmagic's default); with ``hole`` (1 = missing), mmagic's masked form ``mean (||hole g|| - 1)^2 / mean(hole)``."""
    if grad.dtype in (torch.float16, torch.bfloat16):
        grad = grad.float()
    if hole is not None:
        grad = grad * hole
    norms = grad.norm(2, dim=1) if norm == "pixel" else grad.flatten(1).norm(2, dim=1)
    return region_mean(((norms - 1) ** 2).mean(), hole)


def r1_penalty(real_logits: Tensor, real_images: Tensor, gamma: float, scale: Optional[Tensor] = None,
               hole: Optional[Tensor] = None, norm: str = "image") -> Tensor:
    """``gamma / 2 * mean_i ||d sum(D(x)) / d x_i||^2`` (Mescheder et al. 2018; StyleGAN2, LaMa ``make_r1_gp``).

    ``create_graph=True`` so the penalty trains D. With ``scale`` (the GradScaler's scale as a tensor)
    the gradient is taken of the scaled logits and divided by it (PyTorch AMP gradient-penalty recipe);
    the scaled output is ``scale * mean(logits)`` (then times the logit count), so that each logit's
    incoming gradient is ``scale / count``, not ``scale``, which overflows fp16 at the default 2**16.
    ``norm='pixel'`` averages the squared norm over pixels too (mmagic's default: the 'image' value
    divided by H W); ``hole`` (1 = missing) is mmagic's masked R1, ``gamma / 2 * mean ||hole g||^2 / mean(hole)``.
    """
    if scale is None:
        (grad,) = torch.autograd.grad(real_logits.sum(), real_images, create_graph=True)
    else:
        (grad,) = torch.autograd.grad(real_logits.float().mean() * scale, real_images, create_graph=True)
    if grad.dtype in (torch.float16, torch.bfloat16):
        grad = grad.float()
    if scale is not None:
        grad = grad * (real_logits.numel() / scale)
    if hole is not None:
        grad = grad * hole
    squares = grad.pow(2).sum(1).mean() if norm == "pixel" else grad.pow(2).flatten(1).sum(1).mean()
    return 0.5 * gamma * region_mean(squares, hole)


def feature_matching(fake_features: Sequence[Tensor], real_features: Sequence[Tensor], loss: str = "l1",
                     hole: Optional[Tensor] = None, region: str = "all", resize: str = "nearest",
                     normalize: str = "mask", layer_weights: Optional[Sequence[float]] = None,
                     eps: float = 1e-8) -> Tensor:
    """Mean over layers (or the ``layer_weights``-weighted sum, pix2pixHD) of the (masked) L1 / L2 mean
    between fake and detached real features.

    ``hole`` (N|1, 1, H, W), 1 = missing, is resized per layer; ``region`` 'hole' | 'known' | 'all'.
    """
    values: List[Tensor] = []
    for i, (f, r) in enumerate(zip(fake_features, real_features)):
        d = f - r.detach()
        e = d.abs() if loss == "l1" else d * d
        w = None
        if hole is not None and region != "all":
            h = resize_hole(hole.to(e.dtype), f.shape[-2:], resize)
            w = h if region == "hole" else 1 - h
        v = weighted_mean(e, w, normalize, eps)
        values.append(v)
    if layer_weights is None:
        return torch.stack(values).mean()
    return sum(w * v for w, v in zip(layer_weights, values))
