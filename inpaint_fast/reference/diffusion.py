"""Diffusion reference: schedules, forward process, prediction conversions, DDPM posterior, RePaint.

Pure PyTorch (and plain Python for the schedules of timesteps), no input checks: the oracle and the
fallback of :mod:`inpaint_fast.functional.diffusion`. Conventions:

- ``alphas_cumprod`` (ᾱ) is float64 of shape (T,), indexed by the 0-based training timestep t.
- Coefficients are computed in float64 and cast to the image dtype.
- ``mask`` = 1 for a KNOWN pixel (the project's convention).

Sources: DDPM (Ho et al. 2020), the cosine schedule (Nichol & Dhariwal 2021, improved-diffusion's
``betas_for_alpha_bar``), v-prediction (Salimans & Ho 2022; diffusers' ``get_velocity``), RePaint
(Lugmayr et al. 2022; github.com/andreas128/RePaint ``scheduler.get_schedule_jump``).
"""
from __future__ import annotations

import math
from typing import List

import torch
from torch import Tensor

PREDICTION_TYPES = ("epsilon", "sample", "v_prediction")


# --------------------------------------------------------------------------------------------------
# schedules
# --------------------------------------------------------------------------------------------------

def linear_betas(num_steps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> Tensor:
    """DDPM's linear schedule, float64: ``linspace(beta_start, beta_end, num_steps)``."""
    return torch.linspace(beta_start, beta_end, num_steps, dtype=torch.float64)


def cosine_betas(num_steps: int = 1000, s: float = 0.008, max_beta: float = 0.999) -> Tensor:
    """Nichol & Dhariwal's cosine schedule, float64: ``β_i = min(1 - f((i+1)/T) / f(i/T), max_beta)``
    with ``f(u) = cos²((u + s) / (1 + s) · π/2)`` (improved-diffusion's ``betas_for_alpha_bar``)."""
    def f(u: float) -> float:
        return math.cos((u + s) / (1 + s) * math.pi / 2) ** 2

    return torch.tensor([min(1 - f((i + 1) / num_steps) / f(i / num_steps), max_beta) for i in range(num_steps)],
                        dtype=torch.float64)


def alphas_cumprod(betas: Tensor) -> Tensor:
    """``alpha_bar_t = prod_{s <= t} (1 - beta_s)``."""
    return torch.cumprod(1.0 - betas, dim=0)


def _coef(values: Tensor, like: Tensor) -> Tensor:
    """Per-sample float64 coefficients (N,) as (N, 1, ..., 1) of ``like``'s dtype and device."""
    return values.to(device=like.device).to(like.dtype).view((-1,) + (1,) * (like.dim() - 1))


def _sqrt_ab(t: Tensor, alphas_cumprod: Tensor, like: Tensor):
    a = alphas_cumprod.to(like.device)[t]
    return _coef(a.sqrt(), like), _coef((1.0 - a).sqrt(), like)


# --------------------------------------------------------------------------------------------------
# forward process, targets and conversions
# --------------------------------------------------------------------------------------------------

def q_sample(x0: Tensor, t: Tensor, noise: Tensor, alphas_cumprod: Tensor) -> Tensor:
    """``x_t = sqrt(ᾱ_t) x0 + sqrt(1 - ᾱ_t) noise``; ``t`` is (N,) int64.

    The coefficients are taken in float64 and cast to the image dtype.
    """
    a, s = _sqrt_ab(t, alphas_cumprod, x0)
    return a * x0 + s * noise


def repaint_blend(x_known_noised: Tensor, x_pred: Tensor, mask: Tensor) -> Tensor:
    """RePaint's combination (Algorithm 1, line 8): ``m · x_known_noised + (1 - m) · x_pred``.

    ``mask`` = 1 for a known pixel, broadcastable to the images. Written as the two products (not a
    lerp) so that a binary mask returns the known pixels bit for bit.
    """
    return mask * x_known_noised + (1 - mask) * x_pred


def get_velocity(x0: Tensor, noise: Tensor, t: Tensor, alphas_cumprod: Tensor) -> Tensor:
    """The v-prediction target ``v = sqrt(ᾱ_t) ε - sqrt(1 - ᾱ_t) x0`` (Salimans & Ho 2022)."""
    a, s = _sqrt_ab(t, alphas_cumprod, x0)
    return a * noise - s * x0


def prediction_target(x0: Tensor, noise: Tensor, t: Tensor, alphas_cumprod: Tensor, prediction_type: str) -> Tensor:
    """What a model of ``prediction_type`` is trained to output: ε, x0 or v."""
    if prediction_type == "epsilon":
        return noise
    if prediction_type == "sample":
        return x0
    return get_velocity(x0, noise, t, alphas_cumprod)


def predicted_original_sample(model_output: Tensor, x_t: Tensor, t: Tensor, alphas_cumprod: Tensor,
                              prediction_type: str) -> Tensor:
    """x̂0 from a prediction: ``(x_t - sqrt(1-ᾱ) ε)/sqrt(ᾱ)``, x0 itself, or ``sqrt(ᾱ) x_t - sqrt(1-ᾱ) v``."""
    if prediction_type == "sample":
        return model_output
    a, s = _sqrt_ab(t, alphas_cumprod, x_t)
    if prediction_type == "epsilon":
        return (x_t - s * model_output) / a
    return a * x_t - s * model_output


def predicted_noise(model_output: Tensor, x_t: Tensor, t: Tensor, alphas_cumprod: Tensor,
                    prediction_type: str) -> Tensor:
    """ε̂ from a prediction: ε itself, ``(x_t - sqrt(ᾱ) x0)/sqrt(1-ᾱ)``, or ``sqrt(1-ᾱ) x_t + sqrt(ᾱ) v``."""
    if prediction_type == "epsilon":
        return model_output
    a, s = _sqrt_ab(t, alphas_cumprod, x_t)
    if prediction_type == "sample":
        return (x_t - a * model_output) / s
    return s * x_t + a * model_output


def convert_prediction(model_output: Tensor, x_t: Tensor, t: Tensor, alphas_cumprod: Tensor,
                       from_type: str, to_type: str) -> Tensor:
    """A prediction of ``from_type`` expressed as ``to_type`` (each of 'epsilon', 'sample', 'v_prediction')."""
    if from_type == to_type:
        return model_output
    if to_type == "sample":
        return predicted_original_sample(model_output, x_t, t, alphas_cumprod, from_type)
    if to_type == "epsilon":
        return predicted_noise(model_output, x_t, t, alphas_cumprod, from_type)
    x0 = predicted_original_sample(model_output, x_t, t, alphas_cumprod, from_type)
    eps = predicted_noise(model_output, x_t, t, alphas_cumprod, from_type)
    return get_velocity(x0, eps, t, alphas_cumprod)


# --------------------------------------------------------------------------------------------------
# reverse process and RePaint's schedule
# --------------------------------------------------------------------------------------------------

def spaced_timesteps(num_train_steps: int, num_inference_steps: int) -> List[int]:
    """The training timesteps a shorter sampler visits, ascending: improved-diffusion's
    ``space_timesteps(T, [S])``, which RePaint uses. As there, the position advances by the float stride
    (T-1)/(S-1) added step by step and is rounded half to even, so a step can differ by one from
    ``round(i (T-1)/(S-1))``. For S = 1: [T-1] (upstream gives [0], a sampler that starts at the least
    noisy step)."""
    if num_inference_steps == 1:
        return [num_train_steps - 1]
    stride, position, steps = (num_train_steps - 1) / (num_inference_steps - 1), 0.0, []
    for _ in range(num_inference_steps):
        steps.append(round(position))
        position += stride
    return steps


def get_schedule_jump(t_T: int, jump_length: int = 10, jump_n_sample: int = 10) -> List[int]:
    """RePaint's resampling schedule (``get_schedule_jump`` with n_sample=1 and no jump2/jump3).

    A list of states in [-1, t_T): it starts at ``t_T - 1`` and ends at -1 (the clean image). Each
    consecutive pair (a, b) is a denoising step when b = a - 1 and a forward (re-noising) step when
    b = a + 1. At every state j in ``range(0, t_T - jump_length, jump_length)`` the sampler jumps
    ``jump_length`` states back up ``jump_n_sample - 1`` times.
    """
    jumps = {j: jump_n_sample - 1 for j in range(0, t_T - jump_length, jump_length)}
    t, ts = t_T, []
    while t >= 1:
        t -= 1
        ts.append(t)
        if jumps.get(t, 0) > 0:
            jumps[t] -= 1
            for _ in range(jump_length):
                t += 1
                ts.append(t)
    ts.append(-1)
    return ts


def posterior_step(x_t: Tensor, x0_pred: Tensor, alpha_bar_t: float, alpha_bar_prev: float, noise: Tensor) -> Tensor:
    """One DDPM reverse step from level ᾱ_t to the earlier level ᾱ_prev (ᾱ_prev = 1: the clean image).

    ``q(x_prev | x_t, x̂0)``: mean ``sqrt(ᾱ_prev) β / (1-ᾱ_t) x̂0 + sqrt(α)(1-ᾱ_prev)/(1-ᾱ_t) x_t``,
    variance ``β (1-ᾱ_prev)/(1-ᾱ_t)`` with ``α = ᾱ_t/ᾱ_prev``, ``β = 1 - α`` (Ho et al. eqs. 6-7;
    a strided step uses the respaced β, as improved-diffusion).
    """
    alpha = alpha_bar_t / alpha_bar_prev
    beta = 1.0 - alpha
    c0 = math.sqrt(alpha_bar_prev) * beta / (1.0 - alpha_bar_t)
    ct = math.sqrt(alpha) * (1.0 - alpha_bar_prev) / (1.0 - alpha_bar_t)
    var = beta * (1.0 - alpha_bar_prev) / (1.0 - alpha_bar_t)
    out = c0 * x0_pred + ct * x_t
    return out + math.sqrt(var) * noise if var > 0 else out


def forward_step(x_prev: Tensor, alpha_bar_prev: float, alpha_bar_t: float, noise: Tensor) -> Tensor:
    """``q(x_t | x_prev)``: ``sqrt(α) x_prev + sqrt(1-α) ε`` with ``α = ᾱ_t/ᾱ_prev`` (RePaint's undo step)."""
    alpha = alpha_bar_t / alpha_bar_prev
    return math.sqrt(alpha) * x_prev + math.sqrt(1.0 - alpha) * noise
