"""The DDPM forward process and RePaint's blend as fused CPU ops: torch.library glue of
``inpaint_fast::q_sample``, ``q_sample_backward`` and ``repaint_blend`` (C++ schemas and semantics:
csrc/ops/q_sample.cpp), and their Python entry functions.

- :func:`q_sample`: ``x_t = sqrt(ᾱ_t) x0 + sqrt(1 - ᾱ_t) ε`` (Ho et al. 2020, "Denoising Diffusion
  Probabilistic Models", eq. 4) in one pass, differentiable w.r.t. ``x0`` and ``noise``: the backward is
  the op ``q_sample_backward`` (both gradients from one read of ``grad``), whose own backward is
  ``q_sample`` again (the two are adjoint), so higher-order gradients work too. No gradient flows to
  ``t`` (integer) or ``alphas_cumprod`` (a fixed schedule).
- :func:`repaint_blend_fused`: ``m ⊙ q_sample(x_known, t, ε) + (1 - m) ⊙ x_pred`` (Lugmayr et al. 2022,
  "RePaint", eq. 8: the known region re-noised from the input, the hole from the model) in one pass.
  Sampling runs under ``torch.no_grad()``, so the op has no backward; a call where an input requires
  grad (with grad mode on) is routed to a differentiable composite (the ``q_sample`` op, then the blend
  in PyTorch: two passes, same values). Calling ``torch.ops.inpaint_fast.repaint_blend`` directly on such
  inputs records a graph whose backward raises.
- :func:`repaint_blend`: the unfused blend's signature, ``m ⊙ x_known_noised + (1 - m) ⊙ x_pred``, on the
  same kernel (coefficients 1 and 0).

Conventions: images (N, C, H, W) of one floating dtype (float16/bfloat16 are computed in float32,
float64 in float64, the result in the images' dtype); ``t`` (N,) int64 (int32 accepted) in [0, T);
``alphas_cumprod`` (T,) floating, the schedule's ᾱ (moved to the images' device when it is elsewhere,
as the reference does). ``mask`` is 1 for a KNOWN pixel, ``hole=`` its complement, of
shape (N|1, 1|C, H, W), (N, H, W) or (H, W): bool/uint8 are binary (nonzero = set) and select (the
known pixels are ``q``, the others ``x_pred`` bitwise, whatever the other value is: no NaN leaks across);
a floating mask is a soft weight ``v q + (1 - v) x_pred``.
A timestep out of range is a ValueError raised by the kernel (it reads ``t`` on the CPU: no sync).
Outputs are channels_last when every image input is channels_last, else contiguous.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from . import library
from .. import _validation as V

__all__ = ["q_sample", "repaint_blend_fused", "repaint_blend"]


# --------------------------------------------------------------------------------------------- entry points

def q_sample(x0: Tensor, t: Tensor, noise: Tensor, alphas_cumprod: Tensor) -> Tensor:
    """The DDPM forward process ``x_t = sqrt(ᾱ_t) x0 + sqrt(1 - ᾱ_t) noise``, fused (Ho et al. 2020, eq. 4).

    x0, noise: (N, C, H, W), one floating dtype; t: (N,) int64 in [0, T); alphas_cumprod: (T,) ᾱ.
    Returns x_t of x0's shape and dtype. Differentiable w.r.t. ``x0`` and ``noise``.
    """
    V.check_image(x0, "x0")
    noise = V.check_noise(noise, x0)
    t = V.check_timesteps(t, x0)
    alphas_cumprod = V.check_alphas_cumprod(alphas_cumprod, x0)
    return torch.ops.inpaint_fast.q_sample.default(x0, t, noise, alphas_cumprod)


def _requires_grad(*tensors: Optional[Tensor]) -> bool:
    return torch.is_grad_enabled() and any(x is not None and x.requires_grad for x in tensors)


def _blend_composite(x_known, noise, x_pred, mask: V.Mask, t, alphas_cumprod) -> Tensor:
    """The differentiable route: the q_sample op, then the blend in PyTorch (two passes)."""
    q = torch.ops.inpaint_fast.q_sample.default(x_known, t, noise, alphas_cumprod)
    if mask.tensor.is_floating_point():
        v = mask.known(x_pred.dtype)
        return v * q + (1 - v) * x_pred
    known = mask.tensor != 0
    return torch.where(~known if mask.is_hole else known, q, x_pred)


def repaint_blend_fused(x_known: Tensor, noise: Tensor, x_pred: Tensor, mask: Optional[Tensor], t: Tensor,
                        alphas_cumprod: Tensor, *, hole: Optional[Tensor] = None) -> Tensor:
    """One RePaint step's blend, fused: ``m ⊙ q_sample(x_known, t, noise) + (1 - m) ⊙ x_pred``
    (Lugmayr et al. 2022, eq. 8).

    x_known, noise, x_pred: (N, C, H, W), one floating dtype; mask: 1 = known (or ``hole=``: 1 = missing),
    (N|1, 1|C, H, W) / (N, H, W) / (H, W), bool/uint8 (a select) or floating (a soft weight);
    t: (N,) int64; alphas_cumprod: (T,). Returns x of x_pred's shape and dtype. Inputs that require grad
    go through a differentiable composite (see the module doc).
    """
    V.check_pair(x_known, x_pred, "x_known", "x_pred")
    noise = V.check_noise(noise, x_known, "x_known")
    t = V.check_timesteps(t, x_known, "x_known")
    alphas_cumprod = V.check_alphas_cumprod(alphas_cumprod, x_known)
    m = V.mask_arg(mask, hole, x_known, required=True, like_name="x_known")
    if _requires_grad(x_known, noise, x_pred, m.tensor):
        return _blend_composite(x_known, noise, x_pred, m, t, alphas_cumprod)
    return torch.ops.inpaint_fast.repaint_blend.default(x_known, noise, x_pred, m.tensor, m.is_hole, t,
                                                        alphas_cumprod)


def repaint_blend(x_known_noised: Tensor, x_pred: Tensor, mask: Optional[Tensor], *,
                  hole: Optional[Tensor] = None) -> Tensor:
    """``m ⊙ x_known_noised + (1 - m) ⊙ x_pred`` on the fused kernel (q_sample's coefficients 1 and 0:
    the known pixels are copied exactly when finite). Shapes, dtypes and the mask as in :func:`repaint_blend_fused`."""
    V.check_pair(x_known_noised, x_pred, "x_known_noised", "x_pred")
    n = x_known_noised.shape[0]
    t = torch.zeros(n, dtype=torch.int64, device=x_known_noised.device)
    unit = torch.ones(1, dtype=torch.float64, device=x_known_noised.device)
    m = V.mask_arg(mask, hole, x_known_noised, required=True, like_name="x_known_noised")
    if _requires_grad(x_known_noised, x_pred, m.tensor):
        if m.tensor.is_floating_point():
            v = m.known(x_pred.dtype)
            return v * x_known_noised + (1 - v) * x_pred
        known = m.tensor != 0
        return torch.where(~known if m.is_hole else known, x_known_noised, x_pred)
    return torch.ops.inpaint_fast.repaint_blend.default(x_known_noised, x_known_noised, x_pred, m.tensor, m.is_hole,
                                                        t, unit)


# --------------------------------------------------------------------------------------------- fake kernels

def _channels_last_dense(x: Tensor) -> bool:
    _, c, h, w = x.shape
    s = x.stride()
    return (c == 1 or s[1] == 1) and (w == 1 or s[3] == c) and (h == 1 or s[2] == w * c)


def output_format(*images: Tensor) -> torch.memory_format:
    """The kernels' output layout: channels_last when every image is channels_last-dense (C > 1,
    H * W > 1), else contiguous (mirrors csrc/ops/cpu/q_sample_kernel.cpp's ``prepare``)."""
    x = images[0]
    if x.shape[1] > 1 and x.shape[2] * x.shape[3] > 1 and all(_channels_last_dense(i) for i in images):
        return torch.channels_last
    return torch.contiguous_format


def _empty(like: Tensor, fmt: torch.memory_format) -> Tensor:
    return torch.empty(like.shape, dtype=like.dtype, device=like.device, memory_format=fmt)


def _fake_q_sample(x0, t, noise, alphas_cumprod):
    return _empty(x0, output_format(x0, noise))


def _fake_q_sample_backward(grad, t, alphas_cumprod, x0_grad, noise_grad):
    fmt = output_format(grad)
    return (_empty(grad, fmt) if x0_grad else grad.new_empty((0,)),
            _empty(grad, fmt) if noise_grad else grad.new_empty((0,)))


def _fake_repaint_blend(x_known, noise, x_pred, mask, mask_is_hole, t, alphas_cumprod):
    return _empty(x_known, output_format(x_known, noise, x_pred))


def _register() -> None:  # the autograd is C++ (csrc/ops/autograd/q_sample_kernel.cpp)
    torch.library.register_fake("inpaint_fast::q_sample")(_fake_q_sample)
    torch.library.register_fake("inpaint_fast::q_sample_backward")(_fake_q_sample_backward)
    torch.library.register_fake("inpaint_fast::repaint_blend")(_fake_repaint_blend)


if library.load_error() is None and "cpu" in library.kernels("q_sample"):
    _register()
