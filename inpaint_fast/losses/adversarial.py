"""Adversarial loss modules: the GAN objective, the R1 penalty and feature matching."""
from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import Tensor, nn

from .. import _validation as V
from ..functional.adversarial import (EPS, FAKE_MASKS, FEATURE_LOSSES, FEATURE_RESIZES, GENERATOR_REGIONS,
                                      MASK_RESIZES, PENALTY_NORMS, DiscriminatorLoss, _check_loss, discriminator_loss,
                                      feature_matching_loss, generator_loss, r1_penalty)

class R1Penalty(nn.Module):
    """R1 penalty with StyleGAN2's lazy regularisation: computed every ``interval``-th call, times ``interval``.

    Each call counts one D step; on due steps it returns ``interval * r1_penalty(...)``, on the others a
    zero (no gradient taken). ``due`` says whether the next call computes it (only then does D need
    ``real.requires_grad_()``). The step count is saved in ``state_dict``.

    >>> r1 = R1Penalty(gamma=10.0, interval=16)
    >>> real.requires_grad_(r1.due)
    >>> real_logits = D(real)
    >>> d = discriminator_loss(real_logits, D(fake.detach()), loss="hinge")
    >>> (d.total + r1(real_logits, real)).backward()
    """

    def __init__(self, gamma: float = 10.0, interval: int = 1, *, norm: str = "image"):
        super().__init__()
        self.gamma = V.check_nonnegative(gamma, "gamma")
        self.norm = V.check_choice(norm, "norm", PENALTY_NORMS)
        if isinstance(interval, bool) or not isinstance(interval, int) or interval < 1:
            raise ValueError(f"interval must be an integer >= 1; got {interval!r}")
        self.interval = interval
        self.steps = 0

    @property
    def due(self) -> bool:
        return self.steps % self.interval == 0

    def forward(self, real_logits: Tensor, real_images: Tensor, *, scaler=None, mask: Optional[Tensor] = None,
                hole: Optional[Tensor] = None) -> Tensor:
        due, self.steps = self.due, self.steps + 1
        if not due:
            dtype = torch.float64 if real_logits.dtype == torch.float64 else torch.float32
            return torch.zeros((), dtype=dtype, device=real_logits.device)
        return self.interval * r1_penalty(real_logits, real_images, gamma=self.gamma, scaler=scaler, mask=mask,
                                          hole=hole, norm=self.norm)

    def get_extra_state(self):
        return {"steps": self.steps}

    def set_extra_state(self, state) -> None:
        self.steps = int(state["steps"])

    def extra_repr(self) -> str:
        return f"gamma={self.gamma}, interval={self.interval}, norm={self.norm!r}"


class FeatureMatchingLoss(nn.Module):
    """Holds the options of :func:`feature_matching_loss`; ``forward(fake_features, real_features, mask=... | hole=...)``.

    LaMa's (big-lama, no mask): ``FeatureMatchingLoss("l2")``; pix2pixHD's: ``FeatureMatchingLoss("l1",
    layer_weights=[4 / (n_layers + 1)] * n_features)``.
    """

    def __init__(self, loss: str = "l1", *, region: Optional[str] = None, resize: str = "nearest",
                 normalize: str = "mask", layer_weights: Optional[Sequence[float]] = None, eps: float = EPS,
                 process_group=None):
        super().__init__()
        self.process_group = process_group
        self.loss = V.check_choice(loss, "loss", FEATURE_LOSSES)
        self.region = V.check_region(region)
        self.resize = V.check_choice(resize, "resize", FEATURE_RESIZES)
        self.normalize = V.check_choice(normalize, "normalize", V.NORMALIZES)
        self.eps = V.check_positive(eps, "eps")
        self.layer_weights = layer_weights

    def forward(self, fake_features: Sequence[Tensor], real_features: Sequence[Tensor], *,
                mask: Optional[Tensor] = None, hole: Optional[Tensor] = None) -> Tensor:
        return feature_matching_loss(fake_features, real_features, loss=self.loss, mask=mask, hole=hole,
                                     region=self.region, resize=self.resize, normalize=self.normalize,
                                     layer_weights=self.layer_weights, eps=self.eps,
                                     process_group=self.process_group)

    def extra_repr(self) -> str:
        return f"loss={self.loss!r}, region={self.region!r}, resize={self.resize!r}"


class AdversarialLoss(nn.Module):
    """Holds the GAN loss kind and mask options; ``forward(fake_logits)`` is the generator term.

    >>> adv = AdversarialLoss("hinge")
    >>> g = adv(D(fake), hole=hole)                                          # generator step
    >>> d = adv.discriminator_loss(D(real), D(fake.detach()), hole=hole).total   # discriminator step
    """

    def __init__(self, loss: str = "bce", *, resize: str = "nearest", region: Optional[str] = None,
                 fake_mask: str = "target", process_group=None):
        super().__init__()
        self.process_group = process_group
        self.loss = _check_loss(loss)
        self.resize = V.check_choice(resize, "resize", MASK_RESIZES)
        self.region = None if region is None else V.check_choice(region, "region", GENERATOR_REGIONS)
        self.fake_mask = V.check_choice(fake_mask, "fake_mask", FAKE_MASKS)

    def generator_loss(self, fake_logits: Tensor, *, mask: Optional[Tensor] = None,
                       hole: Optional[Tensor] = None) -> Tensor:
        return generator_loss(fake_logits, loss=self.loss, mask=mask, hole=hole, region=self.region,
                              resize=self.resize, process_group=self.process_group)

    def discriminator_loss(self, real_logits: Tensor, fake_logits: Tensor, *, mask: Optional[Tensor] = None,
                           hole: Optional[Tensor] = None) -> DiscriminatorLoss:
        return discriminator_loss(real_logits, fake_logits, loss=self.loss, mask=mask, hole=hole,
                                  resize=self.resize, fake_mask=self.fake_mask)

    def forward(self, fake_logits: Tensor, *, mask: Optional[Tensor] = None,
                hole: Optional[Tensor] = None) -> Tensor:
        return self.generator_loss(fake_logits, mask=mask, hole=hole)

    def extra_repr(self) -> str:
        return f"loss={self.loss!r}, resize={self.resize!r}, region={self.region!r}, fake_mask={self.fake_mask!r}"
