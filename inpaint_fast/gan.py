"""Adversarial objectives on discriminator logits (any shape: per image or per patch).

The discriminator is trained with :func:`discriminator_loss` (real -> "real", fake -> "fake");
the generator with :func:`generator_loss` (fake -> "real", the non-saturating loss). Logits are
raw scores: positive means "real".
"""
from __future__ import annotations

from typing import NamedTuple

from torch import Tensor, nn

from . import _validation as V
from .reference import gan as _ref

GAN_LOSSES = ("bce",)


class DiscriminatorLoss(NamedTuple):
    """The discriminator objective ``total = real + fake`` and its two named terms."""
    total: Tensor
    real: Tensor
    fake: Tensor


def _check_logits(t, name: str) -> Tensor:
    if not isinstance(t, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor; got {type(t).__name__}")
    if not t.is_floating_point():
        raise TypeError(f"{name} must be a floating tensor of logits; got {t.dtype}")
    if t.numel() == 0:
        raise ValueError(f"{name} is empty (shape {tuple(t.shape)}): there is nothing to average")
    return t


def discriminator_loss(real_logits: Tensor, fake_logits: Tensor, *, loss: str = "bce") -> DiscriminatorLoss:
    """D's loss: 'bce' gives ``BCE(real, 1)`` and ``BCE(fake, 0)`` (means over all logits).

    Detach the fake images before the discriminator so that this loss trains D only.
    """
    V.check_choice(loss, "loss", GAN_LOSSES)
    _check_logits(real_logits, "real_logits")
    _check_logits(fake_logits, "fake_logits")
    V.check_same_device(fake_logits, "fake_logits", real_logits, "real_logits")
    real, fake = _ref.discriminator_terms(real_logits, fake_logits)
    return DiscriminatorLoss(real + fake, real, fake)


def generator_loss(fake_logits: Tensor, *, loss: str = "bce") -> Tensor:
    """G's adversarial loss: 'bce' gives the non-saturating ``BCE(fake, 1)``."""
    V.check_choice(loss, "loss", GAN_LOSSES)
    return _ref.generator_term(_check_logits(fake_logits, "fake_logits"))


class AdversarialLoss(nn.Module):
    """Holds the GAN loss kind; ``forward(fake_logits)`` is the generator term.

    >>> adv = AdversarialLoss()
    >>> g = adv(D(fake))                                  # generator step
    >>> d = adv.discriminator_loss(D(real), D(fake.detach())).total   # discriminator step
    """

    def __init__(self, loss: str = "bce"):
        super().__init__()
        self.loss = V.check_choice(loss, "loss", GAN_LOSSES)

    def generator_loss(self, fake_logits: Tensor) -> Tensor:
        return generator_loss(fake_logits, loss=self.loss)

    def discriminator_loss(self, real_logits: Tensor, fake_logits: Tensor) -> DiscriminatorLoss:
        return discriminator_loss(real_logits, fake_logits, loss=self.loss)

    def forward(self, fake_logits: Tensor) -> Tensor:
        return self.generator_loss(fake_logits)

    def extra_repr(self) -> str:
        return f"loss={self.loss!r}"
