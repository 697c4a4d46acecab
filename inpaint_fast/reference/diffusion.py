"""DDPM forward process and the denoising objective (Ho et al. 2020), the seed's formulas."""
from __future__ import annotations

import torch
from torch import Tensor


def linear_betas(num_steps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> Tensor:
    """DDPM's linear schedule, float64: ``linspace(beta_start, beta_end, num_steps)``."""
    return torch.linspace(beta_start, beta_end, num_steps, dtype=torch.float64)


def alphas_cumprod(betas: Tensor) -> Tensor:
    """``alpha_bar_t = prod_{s <= t} (1 - beta_s)``."""
    return torch.cumprod(1.0 - betas, dim=0)


def q_sample(x0: Tensor, t: Tensor, noise: Tensor, alpha_bar: Tensor) -> Tensor:
    """``x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) noise``; ``t`` is (N,) int64.

    The coefficients are taken in float64 and cast to the image dtype.
    """
    a = alpha_bar.to(x0.device)[t]
    shape = (-1,) + (1,) * (x0.dim() - 1)
    return a.sqrt().to(x0.dtype).view(shape) * x0 + (1.0 - a).sqrt().to(x0.dtype).view(shape) * noise
