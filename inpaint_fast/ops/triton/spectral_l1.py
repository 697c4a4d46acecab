"""Triton kernels of ``inpaint_fast::spectral_l1_triton`` (semantics: csrc/ops/spectral_l1.cpp; the op
is registered with torch.library.triton_op in inpaint_fast/ops/spectral_l1.py).

``spectral_l1_triton(z_pred, z_target, scale, grad_pred, grad_target) -> (loss, grad_z_pred, grad_z_target)``
over complex64/complex128 spectra: with a = log1p|z_pred| and b = log1p|z_target|,
loss = scale * sum|a - b| and, when asked, the gradients (PyTorch's convention for a real loss of a
complex input, dL/dRe + i dL/dIm)
    grad_z_pred   =  scale * sign(a - b) / (1 + |z_pred|)   * z_pred / |z_pred|    (0 where |z_pred| = 0)
    grad_z_target = -scale * sign(a - b) / (1 + |z_target|) * z_target / |z_target| (0 where |z_target| = 0)
as torch autograd computes them (|z| = hypot, as torch.abs: inf when a part is infinite): sign(NaN) = 0
(abs' backward), so a NaN z_pred makes grad_z_pred NaN (through 1 / (1 + |z_pred|)) and a NaN z_target
alone gives grad_z_pred = 0; where |z| is inf or NaN the gradient is NaN + NaN i.

Triton has no complex dtype: both spectra are read through ``torch.view_as_real`` as interleaved
(re, im) arrays (a contiguous run of 2*BLOCK reals, reshaped to [BLOCK, 2] and split into re and im), and the gradients are written the same way
into real buffers returned through ``torch.view_as_complex``. Inputs that are not contiguous (rfft2
outputs always are) or are conjugate views are copied first; the gradients are contiguous.

Kernels:
- ``_spectral_l1_kernel``: one pass; program p handles complex elements [p*BLOCK, (p+1)*BLOCK), writes
  the gradients asked for and the partial sum of |a - b| of its block (stage 1).
- ``_finish_kernel``: one program sums the partials in a fixed order and multiplies by scale (stage 2).
Deterministic (no atomics; the grouping depends on the size only); no host synchronisation: ``scale``
reaches the kernels as a one-element tensor of the real dtype (a Python float argument would be fp32
in Triton, too coarse for complex128), written by ``torch.full``.

Precision: complex64 computes in float32, complex128 in float64. |z| = sqrt(re^2 + im^2) with the
correctly rounded sqrt (``tl.sqrt_rn``), or, where re^2 + im^2 under- or overflows (outside
[2^-100, 2^121] for float32, [2^-1000, 2^1000] for float64, z != 0), the scaled form
max * sqrt(1 + (min/max)^2) (hypot without hypot: libdevice is not available in the interpreter).
log1p for float32 is the CPU kernel's branch-free one (exponent split, Cephes' logf polynomial and the
rounding error of 1 + x, <= 1 ulp), compiled and interpreted alike; for float64 it is libdevice's
log1p when compiled and, in the interpreter (no libdevice there), log(u) * x / (u - 1), u = 1 + x
(Goldberg). Divisions: float32 uses Triton's `/` (div.full.f32, <= 2 ulp), float64 IEEE.
"""
from __future__ import annotations

from typing import Tuple

import torch
import triton
import triton.language as tl
from triton.language.extra import libdevice

from ._common import INTERPRETED, launch

BLOCK = 1024       # complex elements per program of the main kernel
NUM_WARPS = 8      # 4 complex elements per thread: 64 registers (complex64, sm_90 ptxas), 4 blocks per SM
FINISH_BLOCK = 1024  # partials per step of the single-program stage 2


@triton.jit
def _div(a, b, FP64: tl.constexpr):
    # float32: Triton's `/` (PTX div.full.f32, full range, <= 2 ulp; a few instructions where the
    # IEEE div.rn.f32 takes a dozen and more); float64: IEEE division.
    return a / b


@triton.jit
def _sqrt(x, FP64: tl.constexpr):
    if FP64:
        r = tl.sqrt(x)  # float64 sqrt is correctly rounded
    else:
        r = tl.sqrt_rn(x)  # tl.sqrt of float32 may be the approximate one
    return r


@triton.jit
def _magnitude(re, im, FP64: tl.constexpr):
    """|re + i im| as torch.abs (hypot): sqrt of the sum of squares where that neither under- nor
    overflows, else max * sqrt(1 + (min/max)^2); inf when a part is infinite (also when the other is
    NaN), else NaN when a part is NaN (s is NaN: the first form)."""
    if FP64:
        TINY = 9.332636185032189e-302   # 2^-1000
        HUGE = 1.0715086071862673e+301  # 2^1000
    else:
        TINY = 7.888609052210118e-31    # 2^-100
        HUGE = 2.658455991569832e+36    # 2^121
    s = re * re + im * im
    m_fast = _sqrt(s, FP64)
    ar = tl.abs(re)
    ai = tl.abs(im)
    mx = tl.maximum(ar, ai)
    mn = tl.minimum(ar, ai)
    q = _div(mn, tl.where(mx > 0, mx, 1.0), FP64)
    m_slow = mx * _sqrt(1.0 + q * q, FP64)
    robust = ((s < TINY) & ((re != 0) | (im != 0))) | (s > HUGE)
    m = tl.where(robust, m_slow, m_fast)
    return tl.where((ar == float("inf")) | (ai == float("inf")), float("inf"), m)


@triton.jit
def _log1p_f32(x):
    """log1p(x) for float32 x >= 0 (inf -> inf, NaN -> NaN): the CPU kernel's log1p_nonneg."""
    u = 1.0 + x
    iu = u.to(tl.int32, bitcast=True) + (0x3F800000 - 0x3F3504F3)
    k = (iu >> 23) - 0x7F
    c_big = 1.0 - (u - x)
    c_small = x - (u - 1.0)
    c_over_u = tl.where(k >= 2, c_big, c_small) / u  # a correction below 1 ulp: <= 2 ulp of it is plenty
    c = tl.where((k == 0) | (k >= 25), 0.0, c_over_u)
    f_reduced = ((iu & 0x007FFFFF) + 0x3F3504F3).to(tl.float32, bitcast=True) - 1.0
    f = tl.where(k == 0, x, f_reduced)
    z = f * f
    y = 7.0376836292E-2
    y = y * f - 1.1514610310E-1
    y = y * f + 1.1676998740E-1
    y = y * f - 1.2420140846E-1
    y = y * f + 1.4249322787E-1
    y = y * f - 1.6668057665E-1
    y = y * f + 2.0000714765E-1
    y = y * f - 2.4999993993E-1
    y = y * f + 3.3333331174E-1
    y = y * f * z
    dk = k.to(tl.float32)
    y = y + (dk * -2.12194440e-4 + c)
    y = y - 0.5 * z
    r = f + y + dk * 0.693359375
    return tl.where(x < float("inf"), r, x)


@triton.jit
def _log1p_f64(x):
    """log1p(x) for float64 x >= 0 (inf -> inf, NaN -> NaN): log(u) * x / (u - 1), u = 1 + x."""
    u = 1.0 + x
    um1 = u - 1.0
    r = tl.log(u) * (x / tl.where(um1 == 0, 1.0, um1))
    r = tl.where(um1 == 0, x, r)
    return tl.where(x < float("inf"), r, x)


@triton.jit
def _log1p(x, FP64: tl.constexpr, LIBDEVICE: tl.constexpr):
    if FP64:
        if LIBDEVICE:
            r = libdevice.log1p(x)  # compiled: CUDA's log1p (the interpreter has no libdevice)
        else:
            r = _log1p_f64(x)
    else:
        r = _log1p_f32(x)
    return r


@triton.jit
def _direction_grad(re, im, m, sg, FP64: tl.constexpr):
    """(re, im) parts of sg / (1 + m) * sgn(z) as torch's autograd computes them: sgn(z) = z / |z|, 0
    where |z| = 0; where |z| is inf or NaN, sgn(z) has a NaN part and torch's complex product spreads
    it to both parts."""
    c = _div(sg, 1.0 + m, FP64)
    c = tl.where(m < float("inf"), c, float("nan"))
    zero = m == 0
    m_safe = tl.where(zero, 1.0, m)
    g_re = tl.where(zero, 0.0, c * _div(re, m_safe, FP64))
    g_im = tl.where(zero, 0.0, c * _div(im, m_safe, FP64))
    return g_re, g_im


@triton.jit
def _store(ptr, offs, values, mask, full):
    if full:
        tl.store(ptr + offs, values)
    else:
        tl.store(ptr + offs, values, mask=mask)


@triton.jit
def _spectral_l1_kernel(zp_ptr, zt_ptr, gp_ptr, gt_ptr, partial_ptr, scale_ptr, n_real,
                        GRAD_PRED: tl.constexpr, GRAD_TARGET: tl.constexpr, FP64: tl.constexpr,
                        LIBDEVICE: tl.constexpr, BLOCK: tl.constexpr):
    pid = tl.program_id(0)
    # The program's 2*BLOCK reals (BLOCK interleaved (re, im) pairs), int64 offsets: loaded as one
    # contiguous run (16-byte vector accesses), then reshaped to [BLOCK, 2] and split.
    # Full blocks load and store without a mask: a mask only vectorises when n_real is known to be
    # a multiple of 4 (Triton specialises integers divisible by 16), which an odd W//2+1 is not.
    start = pid.to(tl.int64) * (2 * BLOCK)
    offs = start + tl.arange(0, 2 * BLOCK)
    full = start + 2 * BLOCK <= n_real
    mask = offs < n_real
    if full:
        zp = tl.load(zp_ptr + offs)
        zt = tl.load(zt_ptr + offs)
    else:
        zp = tl.load(zp_ptr + offs, mask=mask, other=0.0)
        zt = tl.load(zt_ptr + offs, mask=mask, other=0.0)
    p_re, p_im = tl.split(tl.reshape(zp, [BLOCK, 2]))
    t_re, t_im = tl.split(tl.reshape(zt, [BLOCK, 2]))
    mp = _magnitude(p_re, p_im, FP64)
    mt = _magnitude(t_re, t_im, FP64)
    # Lanes past the end loaded 0 + 0i: d = log1p(0) - log1p(0) = 0 there, nothing to mask.
    d = _log1p(mp, FP64, LIBDEVICE) - _log1p(mt, FP64, LIBDEVICE)
    tl.store(partial_ptr + pid, tl.sum(tl.abs(d), axis=0))
    scale = tl.load(scale_ptr)
    # scale * sign(d), sign(0) = sign(NaN) = 0 (unused, and removed, when no gradient is asked).
    sg = tl.where(d > 0, scale, tl.where(d < 0, -scale, 0.0))
    if GRAD_PRED:
        gp_re, gp_im = _direction_grad(p_re, p_im, mp, sg, FP64)
        _store(gp_ptr, offs, tl.reshape(tl.join(gp_re, gp_im), [2 * BLOCK]), mask, full)
    if GRAD_TARGET:
        gt_re, gt_im = _direction_grad(t_re, t_im, mt, -sg, FP64)
        _store(gt_ptr, offs, tl.reshape(tl.join(gt_re, gt_im), [2 * BLOCK]), mask, full)


@triton.jit
def _finish_kernel(partial_ptr, scale_ptr, loss_ptr, num_partials, BLOCK: tl.constexpr):
    """loss = scale * sum(partials), in a fixed order (one program)."""
    acc = tl.zeros([BLOCK], dtype=partial_ptr.dtype.element_ty)
    for start in range(0, num_partials, BLOCK):
        o = start + tl.arange(0, BLOCK)
        acc += tl.load(partial_ptr + o, mask=o < num_partials, other=0.0)
    tl.store(loss_ptr, tl.sum(acc, axis=0) * tl.load(scale_ptr))




def _as_real(z: torch.Tensor) -> torch.Tensor:
    """Contiguous interleaved (re, im) view of a complex tensor (copied when not contiguous or a conj view)."""
    return torch.view_as_real(z.resolve_conj().contiguous())


def spectral_l1(z_pred: torch.Tensor, z_target: torch.Tensor, scale: float, compute_grad_pred: bool,
                compute_grad_target: bool) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``inpaint_fast::spectral_l1_triton`` (the C++ op's schema); arguments checked by the op
    (inpaint_fast/ops/spectral_l1.py)."""
    fp64 = z_pred.dtype == torch.complex128
    real = torch.float64 if fp64 else torch.float32
    zp = _as_real(z_pred)
    zt = _as_real(z_target)
    n = z_pred.numel()
    device = z_pred.device
    num_partials = max((n + BLOCK - 1) // BLOCK, 1)  # one program when empty: the loss is then 0
    partials = torch.empty((num_partials,), dtype=real, device=device)
    scale_t = torch.full((1,), scale, dtype=real, device=device)
    loss = torch.empty((), dtype=real, device=device)

    def grad_buffer(wanted: bool) -> torch.Tensor:
        return torch.empty((*z_pred.shape, 2) if wanted else (0, 2), dtype=real, device=device)

    gp = grad_buffer(compute_grad_pred)
    gt = grad_buffer(compute_grad_target)
    launch(_spectral_l1_kernel)[(num_partials,)](
        zp, zt, gp, gt, partials, scale_t, 2 * n,
        GRAD_PRED=compute_grad_pred, GRAD_TARGET=compute_grad_target, FP64=fp64, LIBDEVICE=not INTERPRETED,
        BLOCK=BLOCK,
        num_warps=NUM_WARPS)
    launch(_finish_kernel)[(1,)](partials, scale_t, loss, num_partials, BLOCK=FINISH_BLOCK,
                                      num_warps=4)
    return loss, torch.view_as_complex(gp), torch.view_as_complex(gt)
