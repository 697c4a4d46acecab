"""Diffusion inpainting objectives: the DDPM schedule, forward process and ε-prediction loss.

Notation: ``x0`` is the clean image (N, C, H, W), ``t`` the timestep (N,) int64 in
[0, num_steps), ``alphas_cumprod`` the schedule's ᾱ (float64, (num_steps,)). The conditional
objective feeds the model ``(x_t, t, x0 * m, m)`` (the seed's ``eps_theta(x_t, t, x ⊙ m, m)``,
m = 1 for known pixels); the unconditional one ``(x_t, t)``.
"""
from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import Tensor, nn

from . import _validation as V
from .reference import diffusion as _ref
from .reference.pixel import masked_mean


def linear_beta_schedule(num_steps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> Tensor:
    """DDPM's linear β schedule (Ho et al. 2020), float64 of shape (num_steps,)."""
    if isinstance(num_steps, bool) or not isinstance(num_steps, int) or num_steps < 1:
        raise ValueError(f"num_steps must be a positive int; got {num_steps!r}")
    beta_start = V.check_positive(beta_start, "beta_start")
    beta_end = V.check_positive(beta_end, "beta_end")
    if not beta_start <= beta_end < 1.0:
        raise ValueError(f"need 0 < beta_start <= beta_end < 1; got beta_start={beta_start}, beta_end={beta_end}")
    return _ref.linear_betas(num_steps, beta_start, beta_end)


def alphas_cumprod(betas: Tensor) -> Tensor:
    """ᾱ_t = Π_{s≤t} (1 - β_s)."""
    return _ref.alphas_cumprod(betas)


def _check_timesteps(t, x0: Tensor) -> Tensor:
    if not isinstance(t, Tensor) or t.dtype not in (torch.int32, torch.int64):
        raise TypeError(f"t must be an int64 tensor of timesteps; got {getattr(t, 'dtype', type(t).__name__)}")
    if t.shape != (x0.shape[0],):
        raise ValueError(f"t must have shape (N,) = ({x0.shape[0]},), one timestep per image; got {tuple(t.shape)}")
    V.check_same_device(t, "t", x0, "x0")
    return t.long()


def _check_noise(noise, x0: Tensor) -> Tensor:
    if not isinstance(noise, Tensor) or noise.shape != x0.shape or noise.dtype != x0.dtype:
        raise ValueError(f"noise must be a tensor of x0's shape {tuple(x0.shape)} and dtype {x0.dtype}; "
                         f"got {getattr(noise, 'shape', type(noise).__name__)}")
    V.check_same_device(noise, "noise", x0, "x0")
    return noise


def _check_alphas_cumprod(alpha_bar) -> Tensor:
    if not isinstance(alpha_bar, Tensor) or alpha_bar.dim() != 1 or not alpha_bar.is_floating_point():
        raise TypeError("alphas_cumprod must be a 1-D floating tensor (the schedule's ᾱ); "
                        f"got {getattr(alpha_bar, 'shape', type(alpha_bar).__name__)}")
    return alpha_bar


def q_sample(x0: Tensor, t: Tensor, noise: Tensor, alphas_cumprod: Tensor) -> Tensor:
    """The forward process ``x_t = sqrt(ᾱ_t) x0 + sqrt(1 - ᾱ_t) noise``."""
    V.check_image(x0, "x0")
    return _ref.q_sample(x0, _check_timesteps(t, x0), _check_noise(noise, x0), _check_alphas_cumprod(alphas_cumprod))


def sample_timesteps(batch: int, num_steps: int, *, device=None, generator: Optional[torch.Generator] = None) -> Tensor:
    """Uniform timesteps in [0, num_steps), (batch,) int64."""
    return torch.randint(0, num_steps, (batch,), device=device, generator=generator)


def diffusion_loss(model: Callable[..., Tensor], x0: Tensor, *, alphas_cumprod: Tensor, mask: Optional[Tensor] = None,
                   hole: Optional[Tensor] = None, conditional: bool = False, t: Optional[Tensor] = None,
                   noise: Optional[Tensor] = None, generator: Optional[torch.Generator] = None,
                   reduction: str = "mean") -> Tensor:
    """ε-prediction objective ``E ||ε - ε_θ(x_t, t[, x0 ⊙ m, m])||²`` (a mean over elements).

    ``t`` and ``noise`` are drawn (with ``generator``) when not given. ``conditional=True`` needs a
    mask and calls ``model(x_t, t, x0 * m, m)`` with m expanded to the batch; otherwise
    ``model(x_t, t)``. reduction='none' gives the (N, C, H, W) squared error.
    """
    V.check_image(x0, "x0")
    V.check_choice(reduction, "reduction", V.REDUCTIONS)
    if not callable(model):
        raise TypeError(f"model must be callable (an ε-prediction network); got {type(model).__name__}")
    alpha_bar = _check_alphas_cumprod(alphas_cumprod)
    known = V.known_from_mask(mask, hole, x0, required=conditional, like_name="x0")
    t = sample_timesteps(x0.shape[0], alpha_bar.shape[0], device=x0.device, generator=generator) if t is None \
        else _check_timesteps(t, x0)
    noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype) if noise is None \
        else _check_noise(noise, x0)
    x_t = _ref.q_sample(x0, t, noise, alpha_bar)
    if conditional:
        known = known.expand(x0.shape[0], -1, -1, -1)
        eps_pred = model(x_t, t, x0 * known, known)
    else:
        eps_pred = model(x_t, t)
    if not isinstance(eps_pred, Tensor) or eps_pred.shape != noise.shape:
        raise ValueError(f"model must return ε of x0's shape {tuple(x0.shape)}; "
                         f"got {getattr(eps_pred, 'shape', type(eps_pred).__name__)}")
    return masked_mean((eps_pred - noise) ** 2, None, reduction=reduction)


class DiffusionInpaintingLoss(nn.Module):
    """The DDPM ε-prediction objective with a linear schedule held as a buffer.

    ``forward(model, x0, mask=..., t=None, noise=None, generator=None)``; ``conditional=True``
    (default) is the mask-conditioned objective of the seed, ``False`` the plain DDPM one.
    """

    def __init__(self, num_steps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02, *,
                 conditional: bool = True, reduction: str = "mean"):
        super().__init__()
        self.conditional = bool(conditional)
        self.reduction = V.check_choice(reduction, "reduction", V.REDUCTIONS)
        self.register_buffer("alphas_cumprod", alphas_cumprod(linear_beta_schedule(num_steps, beta_start, beta_end)))

    @property
    def num_steps(self) -> int:
        return self.alphas_cumprod.shape[0]

    def forward(self, model: Callable[..., Tensor], x0: Tensor, *, mask: Optional[Tensor] = None,
                hole: Optional[Tensor] = None, t: Optional[Tensor] = None, noise: Optional[Tensor] = None,
                generator: Optional[torch.Generator] = None) -> Tensor:
        return diffusion_loss(model, x0, alphas_cumprod=self.alphas_cumprod, mask=mask, hole=hole,
                              conditional=self.conditional, t=t, noise=noise, generator=generator,
                              reduction=self.reduction)

    def extra_repr(self) -> str:
        return f"num_steps={self.num_steps}, conditional={self.conditional}, reduction={self.reduction!r}"
