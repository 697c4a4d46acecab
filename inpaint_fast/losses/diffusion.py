"""The diffusion inpainting loss module."""
from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import Tensor, nn

from .. import _validation as V
from ..functional.diffusion import (PREDICTION_TYPES, SCHEDULES, alphas_cumprod, cosine_beta_schedule, diffusion_loss,
                                    linear_beta_schedule)

class DiffusionInpaintingLoss(nn.Module):
    """The diffusion training objective with its schedule held as a buffer (``alphas_cumprod``).

    ``forward(model, x0, mask=..., t=None, noise=None, generator=None)``. ``conditional=True``
    (default) is the mask-conditioned objective of the notebook, ``False`` the plain DDPM one (train a
    RePaint prior). ``schedule``: 'linear' (beta_start → beta_end) or 'cosine'; ``prediction_type``:
    'epsilon' | 'sample' | 'v_prediction'; ``weight_hole``/``weight_known``, ``process_group``: see
    :func:`diffusion_loss`.
    """

    def __init__(self, num_steps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02, *,
                 schedule: str = "linear", prediction_type: str = "epsilon", conditional: bool = True,
                 weight_hole: float = 1.0, weight_known: float = 1.0, reduction: str = "mean", process_group=None):
        super().__init__()
        self.process_group = process_group
        self.conditional = bool(conditional)
        self.schedule = V.check_choice(schedule, "schedule", SCHEDULES)
        self.prediction_type = V.check_choice(prediction_type, "prediction_type", PREDICTION_TYPES)
        self.weight_hole = V.check_nonnegative(weight_hole, "weight_hole")
        self.weight_known = V.check_nonnegative(weight_known, "weight_known")
        self.reduction = V.check_choice(reduction, "reduction", V.REDUCTIONS)
        betas = linear_beta_schedule(num_steps, beta_start, beta_end) if schedule == "linear" \
            else cosine_beta_schedule(num_steps)
        self.register_buffer("alphas_cumprod", alphas_cumprod(betas))

    @property
    def num_steps(self) -> int:
        return self.alphas_cumprod.shape[0]

    def forward(self, model: Callable[..., Tensor], x0: Tensor, *, mask: Optional[Tensor] = None,
                hole: Optional[Tensor] = None, t: Optional[Tensor] = None, noise: Optional[Tensor] = None,
                generator: Optional[torch.Generator] = None) -> Tensor:
        return diffusion_loss(model, x0, alphas_cumprod=self.alphas_cumprod, mask=mask, hole=hole,
                              conditional=self.conditional, t=t, noise=noise, generator=generator,
                              prediction_type=self.prediction_type, weight_hole=self.weight_hole,
                              weight_known=self.weight_known, reduction=self.reduction,
                              process_group=self.process_group)

    def extra_repr(self) -> str:
        return (f"num_steps={self.num_steps}, schedule={self.schedule!r}, prediction_type={self.prediction_type!r}, "
                f"conditional={self.conditional}, weight_hole={self.weight_hole}, weight_known={self.weight_known}, "
                f"reduction={self.reduction!r}")
