"""Triton kernels of ``inpaint_fast::masked_tv_triton`` (schema and semantics: csrc/ops/masked_tv.cpp).

Three launches, no host sync:
 1. (normalize = 'mask' with a mask region only) ``_area_kernel``: a pre-pass over the MASK alone.
    Each program takes a tile of one mask plane (the mask's own (N|1, C|1) planes), derives the
    region weights r and the pair weights wv(i,j) = r(i,j) r(i+1,j), wh(i,j) = r(i,j) r(i,j+1), and
    writes its two sums (float64) to its own row of a partials buffer. Stage 2: ``torch.sum`` over
    the partials (a fixed order for a fixed shape), scaled to the broadcast (N, C) shape, then the
    normalisers 1 / max(area, eps) - all on the device, read by the main kernel from memory.
 2. ``_tv_kernel``: the stencil pass. A program owns a (BLOCK_H, BLOCK_W) tile of pixels of one
    image n and loops over the channels; the pair weights of the tile are derived from the mask once
    when the mask is shared by the channels (else per channel). Per pixel it loads x and its four
    neighbours (the neighbours of the tile's own pixels come from L1/L2, so DRAM sees the image about
    once), adds the loss terms of the pairs (i, i+1) and (j, j+1) and writes d loss / d x:
       g = kv wv(i-1) s(x(i) - x(i-1)) - kv wv(i) s(x(i+1) - x(i))
         + kh wh(j-1) s(x(j) - x(j-1)) - kh wh(j) s(x(j+1) - x(j))
    with s(d) = sign(d) (p = 1, sign(0) = 0) or 2 d (p = 2). Its loss partial (float64 of the
    tile's fp32/fp64 tree sum) goes to its own slot.
 3. stage 2 of the loss: ``torch.sum`` over the per-program partials (fixed order, float64).

Everything is addressed through strides (int64 offsets): NCHW, channels_last, slices, expanded
(stride-0) masks are read in place and never copied. The gradient's memory format is the fake
kernel's (``inpaint_fast.ops.masked_tv.native_channels_last``), written through its own strides.
bool masks are read as they are (Triton loads them as bytes); a bool/uint8 mask is binary (any non-zero
value is 1), a floating mask a soft weight. Accumulation in fp32 (fp64 for fp64 images); the gradient is
fp32 for fp16 images, else in the image dtype.
"""
from __future__ import annotations

from typing import Optional

import torch
import triton
import triton.language as tl
from torch import Tensor

from ..scale_grad import grad_buffer_dtype
from ._common import INTERPRETED, bstride, launch, mask_weight

# Tile of the stencil and area kernels: BLOCK_W columns (a power of two) and as many rows as fit in
# the tile's elements. On a GPU: 4 x 128 pixels, 4 warps (4 pixels per thread: the dilated region's
# 21 mask loads stay in ~120 registers, the other regions in 64, so 16 to 32 warps per SM keep
# enough loads in flight; row halos come from L1/L2). The interpreter (CPU tensors) pays per
# program: larger tiles there, still small enough that test images span several tiles.
_MAX_BLOCK_W = 64 if INTERPRETED else 128
_TILE_ELEMENTS = 1024 if INTERPRETED else 512
_NUM_WARPS = 4


@triton.jit
def _load_mask(m_base, rows, cols, H, W, msh, msw, FLIP: tl.constexpr, OOB: tl.constexpr,
               ACC: tl.constexpr):
    """The mask weight m (or 1 - m when FLIP) at (rows, cols) as ACC; OOB outside the image."""
    inside = (rows >= 0) & (rows < H) & (cols >= 0) & (cols < W)
    offs = rows.to(tl.int64) * msh + cols.to(tl.int64) * msw
    m = mask_weight(tl.load(m_base + offs, mask=inside, other=0), ACC)
    if FLIP:
        m = 1.0 - m
    return tl.where(inside, m, OOB)


@triton.jit
def _hmax3(m_base, rows, cols, H, W, msh, msw, FLIP: tl.constexpr, ACC: tl.constexpr):
    """max of the hole over (rows, cols-1 .. cols+1) inside the image (-inf outside it)."""
    a = _load_mask(m_base, rows, cols - 1, H, W, msh, msw, FLIP, float("-inf"), ACC)
    b = _load_mask(m_base, rows, cols, H, W, msh, msw, FLIP, float("-inf"), ACC)
    c = _load_mask(m_base, rows, cols + 1, H, W, msh, msw, FLIP, float("-inf"), ACC)
    return tl.maximum(tl.maximum(a, b), c)


@triton.jit
def _pair_weights(m_base, rows, cols, H, W, msh, msw, REGION: tl.constexpr, MASK_IS_HOLE: tl.constexpr,
                  NEED_LEFT_UP: tl.constexpr, ACC: tl.constexpr, BLOCK_H: tl.constexpr,
                  BLOCK_W: tl.constexpr):
    """Pair weights around the pixels (rows, cols): (wu, wd, wl, wr) = weights of the pairs
    (i-1, i), (i, i+1) vertically and (j-1, j), (j, j+1) horizontally; 0 for pairs that leave the
    image and for pixels outside it. wu and wl only when NEED_LEFT_UP (else zeros)."""
    pix = (rows < H) & (cols < W)
    has_d = pix & (rows + 1 < H)
    has_r = pix & (cols + 1 < W)
    has_u = pix & (rows >= 1)
    has_l = pix & (cols >= 1)
    zero = tl.zeros([BLOCK_H, BLOCK_W], dtype=ACC)
    one = zero + 1.0
    if REGION == 0:  # all: r = 1
        rc = one
        rd = one
        rr = one
        ru = one
        rl = one
    elif REGION == 3:  # hole_dilated: r = max of the hole h over the 3x3 neighbourhood
        FLIP: tl.constexpr = not MASK_IS_HOLE  # h = 1 - m, or the tensor itself when it is the hole
        # hm(k, c) = max of h over row k, columns c-1..c+1; the tile needs hm on rows i-2..i+2 at
        # column j and on rows i-1..i+1 at columns j-1 and j+1.
        hm_m2 = _hmax3(m_base, rows - 2, cols, H, W, msh, msw, FLIP, ACC)
        hm_p2 = _hmax3(m_base, rows + 2, cols, H, W, msh, msw, FLIP, ACC)
        # rows i-1, i, i+1 at columns j-2 .. j+2: h loaded once each
        hu0 = _load_mask(m_base, rows - 1, cols - 2, H, W, msh, msw, FLIP, float("-inf"), ACC)
        hu1 = _load_mask(m_base, rows - 1, cols - 1, H, W, msh, msw, FLIP, float("-inf"), ACC)
        hu2 = _load_mask(m_base, rows - 1, cols, H, W, msh, msw, FLIP, float("-inf"), ACC)
        hu3 = _load_mask(m_base, rows - 1, cols + 1, H, W, msh, msw, FLIP, float("-inf"), ACC)
        hu4 = _load_mask(m_base, rows - 1, cols + 2, H, W, msh, msw, FLIP, float("-inf"), ACC)
        hc0 = _load_mask(m_base, rows, cols - 2, H, W, msh, msw, FLIP, float("-inf"), ACC)
        hc1 = _load_mask(m_base, rows, cols - 1, H, W, msh, msw, FLIP, float("-inf"), ACC)
        hc2 = _load_mask(m_base, rows, cols, H, W, msh, msw, FLIP, float("-inf"), ACC)
        hc3 = _load_mask(m_base, rows, cols + 1, H, W, msh, msw, FLIP, float("-inf"), ACC)
        hc4 = _load_mask(m_base, rows, cols + 2, H, W, msh, msw, FLIP, float("-inf"), ACC)
        hd0 = _load_mask(m_base, rows + 1, cols - 2, H, W, msh, msw, FLIP, float("-inf"), ACC)
        hd1 = _load_mask(m_base, rows + 1, cols - 1, H, W, msh, msw, FLIP, float("-inf"), ACC)
        hd2 = _load_mask(m_base, rows + 1, cols, H, W, msh, msw, FLIP, float("-inf"), ACC)
        hd3 = _load_mask(m_base, rows + 1, cols + 1, H, W, msh, msw, FLIP, float("-inf"), ACC)
        hd4 = _load_mask(m_base, rows + 1, cols + 2, H, W, msh, msw, FLIP, float("-inf"), ACC)
        mid_u = tl.maximum(hu1, hu3)
        mid_c = tl.maximum(hc1, hc3)
        mid_d = tl.maximum(hd1, hd3)
        hm_u = tl.maximum(mid_u, hu2)  # column j
        hm_c = tl.maximum(mid_c, hc2)
        hm_d = tl.maximum(mid_d, hd2)
        hml_u = tl.maximum(tl.maximum(hu0, hu1), hu2)  # column j-1
        hml_c = tl.maximum(tl.maximum(hc0, hc1), hc2)
        hml_d = tl.maximum(tl.maximum(hd0, hd1), hd2)
        hmr_u = tl.maximum(tl.maximum(hu2, hu3), hu4)  # column j+1
        hmr_c = tl.maximum(tl.maximum(hc2, hc3), hc4)
        hmr_d = tl.maximum(tl.maximum(hd2, hd3), hd4)
        centre3 = tl.maximum(hm_u, hm_c)
        rc = tl.maximum(centre3, hm_d)
        rd = tl.maximum(tl.maximum(hm_c, hm_d), hm_p2)
        ru = tl.maximum(centre3, hm_m2)
        rl = tl.maximum(tl.maximum(hml_u, hml_c), hml_d)
        rr = tl.maximum(tl.maximum(hmr_u, hmr_c), hmr_d)
    else:  # known (r = m) or hole (r = 1 - m); the tensor holds m, or h = 1 - m when MASK_IS_HOLE
        FLIP2: tl.constexpr = (REGION == 2) != MASK_IS_HOLE
        rc = _load_mask(m_base, rows, cols, H, W, msh, msw, FLIP2, 0.0, ACC)
        rd = _load_mask(m_base, rows + 1, cols, H, W, msh, msw, FLIP2, 0.0, ACC)
        rr = _load_mask(m_base, rows, cols + 1, H, W, msh, msw, FLIP2, 0.0, ACC)
        if NEED_LEFT_UP:
            ru = _load_mask(m_base, rows - 1, cols, H, W, msh, msw, FLIP2, 0.0, ACC)
            rl = _load_mask(m_base, rows, cols - 1, H, W, msh, msw, FLIP2, 0.0, ACC)
        else:
            ru = zero
            rl = zero
    wd = tl.where(has_d, rc * rd, zero)
    wr = tl.where(has_r, rc * rr, zero)
    if NEED_LEFT_UP:
        wu = tl.where(has_u, ru * rc, zero)
        wl = tl.where(has_l, rl * rc, zero)
    else:
        wu = zero
        wl = zero
    return wu, wd, wl, wr


@triton.jit
def _area_kernel(m_ptr, part_ptr, H, W, MC, n_rb, n_cb, msn, msc, msh, msw,
                 REGION: tl.constexpr, MASK_IS_HOLE: tl.constexpr, F64: tl.constexpr,
                 BLOCK_H: tl.constexpr, BLOCK_W: tl.constexpr):
    """Stage 1 of the areas: (sum wv, sum wh) of one tile of one mask plane into part[pid, 0:2]."""
    ACC: tl.constexpr = tl.float64 if F64 else tl.float32
    pid = tl.program_id(0)
    cb = pid % n_cb
    t = pid // n_cb
    rb = t % n_rb
    plane = t // n_rb
    nm = (plane // MC).to(tl.int64)
    cm = (plane % MC).to(tl.int64)
    rows = rb * BLOCK_H + tl.arange(0, BLOCK_H)[:, None]
    cols = cb * BLOCK_W + tl.arange(0, BLOCK_W)[None, :]
    m_base = m_ptr + nm * msn + cm * msc
    _, wd, _, wr = _pair_weights(m_base, rows, cols, H, W, msh, msw, REGION, MASK_IS_HOLE, False, ACC,
                                 BLOCK_H, BLOCK_W)
    sv = tl.sum(tl.sum(wd.to(tl.float64), axis=1), axis=0)
    sh = tl.sum(tl.sum(wr.to(tl.float64), axis=1), axis=0)
    out = part_ptr + pid.to(tl.int64) * 2
    tl.store(out, sv)
    tl.store(out + 1, sh)


@triton.jit
def _err(d, P: tl.constexpr):
    if P == 1:
        return tl.abs(d)
    else:
        return d * d


@triton.jit
def _slope(d, P: tl.constexpr):
    """d e / d d without the factor 2 of p = 2: sign(d) (sign(0) = 0) or d."""
    if P == 1:
        return tl.where(d > 0, 1.0, tl.where(d < 0, -1.0, 0.0)).to(d.dtype)
    else:
        return d


@triton.jit
def _tv_channel(x_base, g_base, rows, cols, H, W, xsh, xsw, gsh, gsw, wu, wd, wl, wr, sv, sh, gv, gh,
                P: tl.constexpr, COMPUTE_GRAD: tl.constexpr, ACC: tl.constexpr):
    """Loss terms (a tile) of one channel, and its gradient stored when COMPUTE_GRAD."""
    pix = (rows < H) & (cols < W)
    r64 = rows.to(tl.int64)
    c64 = cols.to(tl.int64)
    offs = r64 * xsh + c64 * xsw
    has_d = pix & (rows + 1 < H)
    has_r = pix & (cols + 1 < W)
    x = tl.load(x_base + offs, mask=pix, other=0).to(ACC)
    xd = tl.load(x_base + offs + xsh, mask=has_d, other=0).to(ACC)
    xr = tl.load(x_base + offs + xsw, mask=has_r, other=0).to(ACC)
    # A pair that leaves the image (weight 0) does not exist: its difference is exactly 0, not one
    # against the masked load's 0 (0 * err(0 - inf) would be NaN).
    dd = tl.where(has_d, xd - x, 0.0)
    dr = tl.where(has_r, xr - x, 0.0)
    loss = sv * (wd * _err(dd, P)) + sh * (wr * _err(dr, P))
    if COMPUTE_GRAD:
        has_u = pix & (rows >= 1)
        has_l = pix & (cols >= 1)
        xu = tl.load(x_base + offs - xsh, mask=has_u, other=0).to(ACC)
        xl = tl.load(x_base + offs - xsw, mask=has_l, other=0).to(ACC)
        du = tl.where(has_u, x - xu, 0.0)
        dl = tl.where(has_l, x - xl, 0.0)
        g = (gv * (wu * _slope(du, P)) - gv * (wd * _slope(dd, P))) \
            + (gh * (wl * _slope(dl, P)) - gh * (wr * _slope(dr, P)))
        tl.store(g_base + r64 * gsh + c64 * gsw, g.to(g_base.dtype.element_ty), mask=pix)
    return loss


@triton.jit
def _tv_kernel(x_ptr, m_ptr, g_ptr, part_ptr, scale_ptr, C, H, W, n_rb, n_cb,
               xsn, xsc, xsh, xsw, msn, msc, msh, msw, gsn, gsc, gsh, gsw,
               REGION: tl.constexpr, MASK_IS_HOLE: tl.constexpr, MASK_PER_C: tl.constexpr, P: tl.constexpr,
               COMPUTE_GRAD: tl.constexpr, F64: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_W: tl.constexpr):
    """Stage 1 of the loss (its partial into part[pid]) and the gradient of one tile, all channels."""
    ACC: tl.constexpr = tl.float64 if F64 else tl.float32
    pid = tl.program_id(0)
    cb = pid % n_cb
    t = pid // n_cb
    rb = t % n_rb
    n = (t // n_rb).to(tl.int64)
    rows = rb * BLOCK_H + tl.arange(0, BLOCK_H)[:, None]
    cols = cb * BLOCK_W + tl.arange(0, BLOCK_W)[None, :]
    # Normalisers from the device: (sv, sh) scale the loss, (gv, gh) the gradient (x2 for p = 2).
    sv = tl.load(scale_ptr).to(ACC)
    sh = tl.load(scale_ptr + 1).to(ACC)
    if P == 2:
        gv = (tl.load(scale_ptr) * 2.0).to(ACC)
        gh = (tl.load(scale_ptr + 1) * 2.0).to(ACC)
    else:
        gv = sv
        gh = sh
    x_n = x_ptr + n * xsn
    g_n = g_ptr + n * gsn
    m_n = m_ptr + n * msn
    acc = tl.zeros([BLOCK_H, BLOCK_W], dtype=ACC)
    if MASK_PER_C:
        for c in range(C):
            c64 = tl.full([], c, tl.int64)
            wu, wd, wl, wr = _pair_weights(m_n + c64 * msc, rows, cols, H, W, msh, msw, REGION, MASK_IS_HOLE,
                                           COMPUTE_GRAD, ACC, BLOCK_H, BLOCK_W)
            acc += _tv_channel(x_n + c64 * xsc, g_n + c64 * gsc, rows, cols, H, W, xsh, xsw, gsh, gsw,
                               wu, wd, wl, wr, sv, sh, gv, gh, P, COMPUTE_GRAD, ACC)
    else:
        wu, wd, wl, wr = _pair_weights(m_n, rows, cols, H, W, msh, msw, REGION, MASK_IS_HOLE, COMPUTE_GRAD,
                                       ACC, BLOCK_H, BLOCK_W)
        for c in range(C):
            c64 = tl.full([], c, tl.int64)
            acc += _tv_channel(x_n + c64 * xsc, g_n + c64 * gsc, rows, cols, H, W, xsh, xsw, gsh, gsw,
                               wu, wd, wl, wr, sv, sh, gv, gh, P, COMPUTE_GRAD, ACC)
    total = tl.sum(tl.sum(acc, axis=1), axis=0)
    tl.store(part_ptr + pid, total.to(tl.float64))


# ---------------------------------------------------------------------------------------- launchers

def _tile(h: int, w: int):
    block_w = min(_MAX_BLOCK_W, max(16, triton.next_power_of_2(max(w, 1))))
    block_h = max(1, min(_TILE_ELEMENTS // block_w, triton.next_power_of_2(max(h, 1))))
    return block_h, block_w


def masked_tv(img: Tensor, mask: Optional[Tensor], mask_is_hole: bool, region: int, p: int, normalize: int,
              eps: float, compute_grad: bool, *, channels_last: bool) -> tuple[Tensor, Tensor]:
    """``inpaint_fast::masked_tv_triton`` (the C++ op's schema and semantics); arguments checked and the
    gradient's layout (``channels_last``) decided by the op (inpaint_fast/ops/masked_tv.py)."""
    # Shapes and strides as Python ints: tile sizes and the normalisers are computed from them
    # (a traced call specialises on them).
    N, C, H, W = (int(s) for s in img.shape)
    f64 = img.dtype == torch.float64
    loss_dtype = torch.float64 if f64 else torch.float32
    use_mask = region != 0
    if compute_grad:
        layout = torch.channels_last if channels_last else torch.contiguous_format
        grad = torch.empty_like(img, dtype=grad_buffer_dtype(img.dtype), memory_format=layout)
    else:
        grad = img.new_empty((0,), dtype=grad_buffer_dtype(img.dtype))
    if img.numel() == 0:
        return img.new_zeros((), dtype=loss_dtype), grad

    m = mask if use_mask else None
    # A mask dimension of size 1, or expanded (stride 0), is broadcast: stride 0 in the kernels.
    msn = bstride(m, 0) if m is not None else 0
    msc = bstride(m, 1) if m is not None else 0
    per_n, per_c = msn != 0, msc != 0
    msh = int(m.stride(2)) if m is not None else 0
    msw = int(m.stride(3)) if m is not None else 0
    m_arg = m if m is not None else img  # never read for region 'all'

    block_h, block_w = _tile(H, W)
    n_rb, n_cb = triton.cdiv(H, block_h), triton.cdiv(W, block_w)
    warps = _NUM_WARPS

    # Normalisers (sv, sh) in float64 on the device.
    if normalize == 1 and use_mask:
        planes = (N if per_n else 1) * (C if per_c else 1)
        parts = torch.empty((planes * n_rb * n_cb, 2), dtype=torch.float64, device=img.device)
        launch(_area_kernel)[(planes * n_rb * n_cb,)](
            m_arg, parts, H, W, C if per_c else 1, n_rb, n_cb, msn, msc, msh, msw,
            REGION=region, MASK_IS_HOLE=bool(mask_is_hole), F64=f64, BLOCK_H=block_h, BLOCK_W=block_w,
            num_warps=warps)
        copies = float((1 if per_n else N) * (1 if per_c else C))
        scale = torch.reciprocal(torch.clamp_min(parts.sum(0) * copies, eps))
        # A direction without pairs (H = 1 or W = 1) contributes 0, also when eps = 0 (no 0 * inf).
        if H < 2:
            scale[0:1].zero_()
        if W < 2:
            scale[1:2].zero_()
    else:
        if normalize == 0:
            sv = sh = 1.0
        else:  # 'all', and 'mask' for region 'all' (the areas are the pair counts; eps as the C++ op)
            cv, ch = float(N * C * (H - 1) * W), float(N * C * H * (W - 1))
            if normalize == 1:
                cv, ch = max(cv, eps), max(ch, eps)
            sv = 1.0 / cv if H > 1 else 0.0
            sh = 1.0 / ch if W > 1 else 0.0
        scale = torch.full((2,), sv, dtype=torch.float64, device=img.device)
        if sh != sv:
            scale[1:2].fill_(sh)

    programs = N * n_rb * n_cb
    partials = torch.empty((programs,), dtype=torch.float64, device=img.device)
    g_arg = grad if compute_grad else img
    gs = [int(s) for s in grad.stride()] if compute_grad else [0, 0, 0, 0]
    xs = [int(s) for s in img.stride()]
    launch(_tv_kernel)[(programs,)](
        img, m_arg, g_arg, partials, scale, C, H, W, n_rb, n_cb,
        xs[0], xs[1], xs[2], xs[3], msn, msc, msh, msw, gs[0], gs[1], gs[2], gs[3],
        REGION=region, MASK_IS_HOLE=bool(mask_is_hole), MASK_PER_C=per_c, P=p, COMPUTE_GRAD=bool(compute_grad),
        F64=f64, BLOCK_H=block_h, BLOCK_W=block_w, num_warps=warps)
    loss = partials.sum().to(loss_dtype)
    return loss, grad
