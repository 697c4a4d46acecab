"""Adversarial terms on discriminator logits, the seed's ``bce_logits_loss``."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def bce_logits(logits: Tensor, target: float) -> Tensor:
    """The seed's ``bce_logits_loss``: BCE-with-logits of every logit against a constant label."""
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, float(target)))


def discriminator_terms(real_logits: Tensor, fake_logits: Tensor):
    """(real term, fake term) of the discriminator loss: real -> label 1, fake -> label 0."""
    return bce_logits(real_logits, 1.0), bce_logits(fake_logits, 0.0)


def generator_term(fake_logits: Tensor) -> Tensor:
    """Non-saturating generator loss: the fake logits against the real label."""
    return bce_logits(fake_logits, 1.0)
