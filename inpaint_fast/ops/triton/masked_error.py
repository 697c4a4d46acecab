"""Triton kernels of ``inpaint_fast::masked_error_triton`` and ``masked_error_stats_triton`` and their
launchers (schemas and semantics: csrc/ops/masked_error.cpp; registration: inpaint_fast/ops/masked_error.py).

Launches, all on the current stream, none reading a value back to the host (CUDA-graph safe):

1. ``_mask_sum_kernel`` (only when a mask is given and the areas are needed: normalize='mask', or
   the stats): sums each distinct (H, W) plane of the mask once, one partial per program (float32,
   float64 for float64 images).
2. ``_finish_kernel`` (AREA): one program adds those partials in a fixed order (float64), scales
   them by the broadcast factor and writes [k_hole, k_valid, A_hole, A_valid] (float64) to a small
   device buffer that the main kernel reads.
3. ``_main_kernel``: one pass over pred/target (and the mask): per-program partial sums of the
   hole and valid error terms (or the four stats sums), and the gradient w.r.t. pred when asked.
   NCHW layout: a tile is BLOCK_C channels x BLOCK pixels of one image; a mask broadcast over C is
   loaded once per pixel tile and reused for every channel. channels_last (dense, C > 1): a tile
   is BLOCK consecutive elements of one image; the mask is gathered by (pixel, channel).
4. ``_finish_kernel`` (LOSS / STATS): one program adds the partials in a fixed order (float64) and
   writes the loss (a term whose weight k is exactly 0 left out: 0, even when its sum is inf or NaN)
   or the (6,) stats.

Two-stage deterministic reduction: the grid and the tiles depend on the shape only, every program
writes its own partial slot, and the partials are summed by one program in a fixed order; no atomics.
Loads are converted to float32 (float64 stays float64) and accumulated there. A bool/uint8 mask is
binary (any non-zero value is 1), a floating mask a soft weight. The gradient is float32 for float16
images, else in the images' dtype.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
import triton
import triton.language as tl
from torch import Tensor

from ..scale_grad import grad_buffer_dtype
from ._common import INTERPRETED, bstride, launch, mask_weight

INT32_MAX = 2**31 - 1  # offsets above it use int64 arithmetic
# Kernels run in Triton's interpreter (on CPU tensors): fewer, bigger programs; see ops/masked_error.py.
_INTERPRETED = INTERPRETED or not torch.cuda.is_available()
# Launch geometry (module attributes so that tests can force several programs, tiles and int64 offsets).
MAIN_BLOCK = 8192 if _INTERPRETED else 4096      # elements per tile of the main kernel (BLOCK_C x BLOCK in NCHW)
MAIN_BLOCK_CL = 8192 if _INTERPRETED else 4096   # elements per tile in channels_last
MASK_BLOCK = 8192 if _INTERPRETED else 4096      # mask elements per tile of the area pre-pass
PROGRAMS = 64 if _INTERPRETED else 4096          # about this many programs at most (up to 8 tiles each)
FINISH_BLOCK = 1024

MODE_AREA, MODE_LOSS, MODE_STATS = 0, 1, 2


@triton.jit
def _scalar(x, dtype: tl.constexpr):
    """A float64 kernel argument (a Python float in the interpreter) as a 0-d tensor of ``dtype``."""
    return (x + tl.zeros([], dtype)).to(dtype)


@triton.jit
def _mask_sum_kernel(m_ptr, part_ptr, CM, HW, PER_PLANE, m_sn, m_sc, m_shw, I64: tl.constexpr, BLOCK: tl.constexpr,
                     TILES: tl.constexpr):
    """part[plane * programs_per_plane + pid] = sum of BLOCK * TILES mask weights of one mask plane, in
    part's dtype."""
    flat = tl.program_id(0)
    plane = flat // PER_PLANE
    pid = flat - plane * PER_PLANE
    if I64:
        pid = pid.to(tl.int64)
    n = plane // CM
    c = plane - n * CM
    base = m_ptr + n.to(tl.int64) * m_sn + c.to(tl.int64) * m_sc
    acc_t = part_ptr.dtype.element_ty
    acc = tl.zeros([BLOCK], dtype=acc_t)
    for it in tl.static_range(TILES):
        hw = (pid * TILES + it) * BLOCK + tl.arange(0, BLOCK)
        acc += mask_weight(tl.load(base + hw * m_shw, mask=hw < HW, other=0), acc_t)
    tl.store(part_ptr + flat, tl.sum(acc, axis=0))


@triton.jit
def _finish_kernel(part_ptr, P, out_ptr, coef_ptr,
                   k_hole: tl.float64, k_valid: tl.float64, scale: tl.float64, total: tl.float64,
                   eps: tl.float64, weight_hole: tl.float64, weight_valid: tl.float64,
                   MODE: tl.constexpr, ROWS: tl.constexpr, IS_HOLE: tl.constexpr, HAS_MASK: tl.constexpr,
                   COEF_PTR: tl.constexpr, BLOCK: tl.constexpr):
    """Sums the ROWS x P partials (row-major) in a fixed order in float64 and writes the result.

    MODE_AREA: coef[0:4] = k_hole, k_valid, A_hole, A_valid (float64) from the mask sum * scale.
    MODE_LOSS: out[0] = k_hole * S_hole + k_valid * S_valid (k from coef when COEF_PTR), a term of k = 0
    left out.
    MODE_STATS: out[0:4] = the sums, out[4:6] = A_hole, A_valid (from coef when HAS_MASK).
    """
    scale = _scalar(scale, tl.float64)
    total = _scalar(total, tl.float64)
    eps = _scalar(eps, tl.float64)
    rows = tl.arange(0, ROWS)[:, None]
    cols = tl.arange(0, BLOCK)[None, :]
    acc = tl.zeros([ROWS, BLOCK], dtype=tl.float64)
    for start in tl.range(0, P, BLOCK):
        idx = start + cols
        acc += tl.load(part_ptr + rows * P + idx, mask=(idx < P) & (rows < ROWS), other=0).to(tl.float64)
    sums = tl.sum(acc, axis=1)  # [ROWS]
    r = tl.arange(0, ROWS)
    if MODE == 0:
        s = tl.sum(tl.where(r == 0, sums, 0.0), axis=0) * scale
        if IS_HOLE:
            area_valid = total - s
        else:
            area_valid = s
        area_hole = total - area_valid
        tl.store(coef_ptr + 0, weight_hole / tl.maximum(area_hole, eps))
        tl.store(coef_ptr + 1, weight_valid / tl.maximum(area_valid, eps))
        tl.store(coef_ptr + 2, area_hole)
        tl.store(coef_ptr + 3, area_valid)
    elif MODE == 1:
        if COEF_PTR:
            kh = tl.load(coef_ptr + 0)
            kv = tl.load(coef_ptr + 1)
        else:
            kh = _scalar(k_hole, tl.float64)
            kv = _scalar(k_valid, tl.float64)
        s_hole = tl.sum(tl.where(r == 0, sums, 0.0), axis=0)
        s_valid = tl.sum(tl.where(r == 1, sums, 0.0), axis=0)
        value = tl.where(kh != 0, kh * s_hole, 0.0) + tl.where(kv != 0, kv * s_valid, 0.0)
        tl.store(out_ptr, value.to(out_ptr.dtype.element_ty))
    else:
        tl.store(out_ptr + r, sums.to(out_ptr.dtype.element_ty))
        if HAS_MASK:
            area_hole = tl.load(coef_ptr + 2)
            area_valid = tl.load(coef_ptr + 3)
        else:
            area_hole = total * 0.0
            area_valid = total
        tl.store(out_ptr + 4, area_hole.to(out_ptr.dtype.element_ty))
        tl.store(out_ptr + 5, area_valid.to(out_ptr.dtype.element_ty))


@triton.jit
def _error_terms(p, t, v, valid, k_hole, k_valid, ceps2, LOSS: tl.constexpr, STATS: tl.constexpr,
                 HAS_MASK: tl.constexpr, F64: tl.constexpr):
    """e, de (slope) and the gradient factor of one tile; ``valid`` zeroes the padding lanes."""
    d = p - t
    if STATS:
        e = tl.abs(d)
        de = d
    elif LOSS == 0:
        e = tl.abs(d)
        de = (d > 0).to(d.dtype) - (d < 0).to(d.dtype)
    elif LOSS == 1:
        e = d * d
        de = 2.0 * d
    else:
        if F64:  # float64 sqrt and division are correctly rounded
            e = tl.sqrt(d * d + ceps2)
            de = d / e
        else:  # IEEE-rounded float32 (the default ones are approximate on the GPU)
            e = tl.sqrt_rn(d * d + ceps2)
            de = tl.div_rn(d, e)
    e = tl.where(valid, e, 0.0)
    if HAS_MASK:
        g = (k_hole * (1.0 - v) + k_valid * v) * de
    else:
        g = k_valid * de
    return e, de, g


@triton.jit
def _accumulate(s0, s1, s2, s3, e, de, v, valid, STATS: tl.constexpr, HAS_MASK: tl.constexpr):
    """Adds one tile to the per-lane sums: hole / valid error (s0, s1) and, for the stats, hole / valid
    squared difference (s2, s3). v is the tile's known weight; without a mask there is no hole (its sums
    stay 0, also for a NaN error)."""
    if HAS_MASK:
        s0 += (1.0 - v) * e
    s1 += v * e
    if STATS:
        q = tl.where(valid, de * de, 0.0)
        if HAS_MASK:
            s2 += (1.0 - v) * q
        s3 += v * q
    return s0, s1, s2, s3


@triton.jit
def _main_kernel(p_ptr, t_ptr, m_ptr, g_ptr, part_ptr, coef_ptr,
                 C, HW, PER_N, p_sn, p_sc, p_shw, t_sn, t_sc, t_shw, m_sn, m_sc, m_shw,
                 m_a: tl.float64, m_b: tl.float64, k_hole_in: tl.float64, k_valid_in: tl.float64,
                 ceps2_in: tl.float64,
                 LOSS: tl.constexpr, HAS_MASK: tl.constexpr, MASK_BCAST_C: tl.constexpr, GRAD: tl.constexpr,
                 COEF_PTR: tl.constexpr, CHANNELS_LAST: tl.constexpr, STATS: tl.constexpr, F64: tl.constexpr,
                 I64: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK: tl.constexpr, TILES: tl.constexpr,
                 C_CL: tl.constexpr):
    """Partials of one program: part[r * P + slot] for rows r (2 for the loss, 4 for the stats)."""
    acc_t = tl.float64 if F64 else tl.float32
    slot = tl.program_id(0)
    n = slot // PER_N
    pid = slot - n * PER_N
    if I64:
        pid = pid.to(tl.int64)
    P = tl.num_programs(0)
    if COEF_PTR:
        k_hole = tl.load(coef_ptr + 0).to(acc_t)
        k_valid = tl.load(coef_ptr + 1).to(acc_t)
    else:
        k_hole = _scalar(k_hole_in, acc_t)
        k_valid = _scalar(k_valid_in, acc_t)
    ceps2 = _scalar(ceps2_in, acc_t)
    a = _scalar(m_a, acc_t)
    b = _scalar(m_b, acc_t)
    n64 = n.to(tl.int64)
    p_base = p_ptr + n64 * p_sn
    t_base = t_ptr + n64 * t_sn
    m_base = m_ptr + n64 * m_sn

    if CHANNELS_LAST:
        # pred/target/grad dense channels_last: element (n, c, hw) at n * s_n + hw * C + c.
        if I64:
            CHW = C.to(tl.int64) * HW
        else:
            CHW = C * HW
        g_base = g_ptr + n64 * CHW
        s0 = tl.zeros([BLOCK], dtype=acc_t)
        s1 = tl.zeros([BLOCK], dtype=acc_t)
        s2 = tl.zeros([BLOCK], dtype=acc_t)
        s3 = tl.zeros([BLOCK], dtype=acc_t)
        for it in tl.static_range(TILES):
            i = (pid * TILES + it) * BLOCK + tl.arange(0, BLOCK)
            if I64:
                i = i.to(tl.int64)
            valid = i < CHW
            p = tl.load(p_base + i, mask=valid, other=0).to(acc_t)
            t = tl.load(t_base + i, mask=valid, other=0).to(acc_t)
            if HAS_MASK:
                hw = i // C_CL  # C_CL == C: a division by a constant
                c = i - hw * C_CL
                m = mask_weight(tl.load(m_base + c * m_sc + hw * m_shw, mask=valid, other=0), acc_t)
                v = a + b * m
            else:
                v = tl.full([BLOCK], 1.0, acc_t)
            e, de, g = _error_terms(p, t, v, valid, k_hole, k_valid, ceps2, LOSS, STATS, HAS_MASK, F64)
            s0, s1, s2, s3 = _accumulate(s0, s1, s2, s3, e, de, v, valid, STATS, HAS_MASK)
            if not STATS and GRAD:
                tl.store(g_base + i, g.to(g_ptr.dtype.element_ty), mask=valid)
        tl.store(part_ptr + slot, tl.sum(s0, axis=0))
        tl.store(part_ptr + P + slot, tl.sum(s1, axis=0))
        if STATS:
            tl.store(part_ptr + 2 * P + slot, tl.sum(s2, axis=0))
            tl.store(part_ptr + 3 * P + slot, tl.sum(s3, axis=0))
    else:
        # NCHW with flattened (H, W) planes: a tile is BLOCK_C channels x BLOCK pixels.
        g_base = g_ptr + n64 * C * HW
        cl = tl.arange(0, BLOCK_C)[:, None]
        if I64:
            cl = cl.to(tl.int64)
        s0 = tl.zeros([BLOCK_C, BLOCK], dtype=acc_t)
        s1 = tl.zeros([BLOCK_C, BLOCK], dtype=acc_t)
        s2 = tl.zeros([BLOCK_C, BLOCK], dtype=acc_t)
        s3 = tl.zeros([BLOCK_C, BLOCK], dtype=acc_t)
        for it in tl.static_range(TILES):
            hw0 = (pid * TILES + it) * BLOCK
            j = tl.arange(0, BLOCK)[None, :]
            hw_ok = (hw0 + j) < HW
            if I64:
                j = j.to(tl.int64)
            hw064 = hw0.to(tl.int64)
            if HAS_MASK:
                if MASK_BCAST_C:
                    mb = mask_weight(tl.load(m_base + hw064 * m_shw + j * m_shw, mask=hw_ok, other=0), acc_t)
            for c0 in tl.range(0, C, BLOCK_C):
                valid = hw_ok & ((c0 + cl) < C)
                c064 = c0 + tl.zeros([], tl.int64)
                po = cl * p_sc + j * p_shw
                to = cl * t_sc + j * t_shw
                p = tl.load(p_base + c064 * p_sc + hw064 * p_shw + po, mask=valid, other=0).to(acc_t)
                t = tl.load(t_base + c064 * t_sc + hw064 * t_shw + to, mask=valid, other=0).to(acc_t)
                if HAS_MASK:
                    if MASK_BCAST_C:
                        v = a + b * mb
                    else:
                        m = mask_weight(tl.load(m_base + c064 * m_sc + hw064 * m_shw + cl * m_sc + j * m_shw,
                                                mask=valid, other=0), acc_t)
                        v = a + b * m
                else:
                    v = tl.full([BLOCK_C, BLOCK], 1.0, acc_t)
                e, de, g = _error_terms(p, t, v, valid, k_hole, k_valid, ceps2, LOSS, STATS, HAS_MASK, F64)
                s0, s1, s2, s3 = _accumulate(s0, s1, s2, s3, e, de, v, valid, STATS, HAS_MASK)
                if not STATS and GRAD:
                    go = (c064 + cl) * HW + hw064 + j
                    tl.store(g_base + go, g.to(g_ptr.dtype.element_ty), mask=valid)
        tl.store(part_ptr + slot, tl.sum(tl.sum(s0, axis=1), axis=0))
        tl.store(part_ptr + P + slot, tl.sum(tl.sum(s1, axis=1), axis=0))
        if STATS:
            tl.store(part_ptr + 2 * P + slot, tl.sum(tl.sum(s2, axis=1), axis=0))
            tl.store(part_ptr + 3 * P + slot, tl.sum(tl.sum(s3, axis=1), axis=0))


# ---------------------------------------------------------------------------------------------
# Host side: layouts and launch geometry (shape-only decisions: no tensor value is read).

def _hw_stride(t: Tensor) -> Optional[int]:
    """Stride of the flattened (H, W) plane, or None when H and W cannot be merged."""
    H, W = t.shape[2], t.shape[3]
    if H == 1:
        return t.stride(3) if W > 1 else 1
    if W == 1:
        return t.stride(2)
    return t.stride(3) if t.stride(2) == W * t.stride(3) else None


def _max_offset(t: Tensor) -> int:
    return sum((s - 1) * abs(st) for s, st in zip(t.shape, t.stride()) if s > 0)


def _tiles(programs: int, target: int) -> int:
    """Tiles per program (a power of two <= 8) so that there are about ``target`` programs or fewer."""
    tiles = 1
    while tiles < 8 and programs > target * tiles:
        tiles *= 2
    return tiles


class _Prepared:
    def __init__(self, pred: Tensor, target: Tensor, mask: Optional[Tensor], channels_last: bool):
        self.channels_last = channels_last
        if not self.channels_last:
            if _hw_stride(pred) is None:
                pred = pred.contiguous()
            if _hw_stride(target) is None:
                target = target.contiguous()
        if mask is not None:
            if _hw_stride(mask) is None:
                mask = mask.contiguous()
        self.pred, self.target, self.mask = pred, target, mask
        self.N, self.C, H, W = pred.shape
        self.HW = H * W
        self.numel = pred.numel()
        self.acc_dtype = torch.float64 if pred.dtype == torch.float64 else torch.float32


def _mask_areas(prep: _Prepared, mask_is_hole: bool, weight_hole: float, weight_valid: float, eps: float) -> Tensor:
    """Device buffer [k_hole, k_valid, A_hole, A_valid] (float64) from a pre-pass over the mask."""
    mask = prep.mask
    dev = mask.device
    Nm, Cm = mask.shape[0], mask.shape[1]
    planes_n = Nm if bstride(mask, 0) else 1
    planes_c = Cm if bstride(mask, 1) else 1
    coef = torch.empty(4, dtype=torch.float64, device=dev)
    block = MASK_BLOCK
    per_plane = triton.cdiv(prep.HW, block) if prep.HW else 0
    tiles = _tiles(per_plane * planes_n * planes_c, PROGRAMS)
    per_plane = triton.cdiv(per_plane, tiles) if per_plane else 0
    planes = planes_n * planes_c if per_plane and prep.numel else 0  # an empty batch reads no mask (data may be null)
    partials = torch.empty(max(planes * per_plane, 1), dtype=prep.acc_dtype, device=dev)
    if planes:
        span = block * tiles  # positions a program may index past the plane's end
        i64 = max(_max_offset(mask) + span * max(1, abs(_hw_stride(mask))), prep.HW + span) > INT32_MAX
        launch(_mask_sum_kernel)[(per_plane * planes,)](
            mask, partials, planes_c, prep.HW, per_plane, bstride(mask, 0), bstride(mask, 1), _hw_stride(mask),
            I64=i64, BLOCK=block, TILES=tiles)
    scale = float((prep.N // planes_n) * (prep.C // planes_c)) if prep.numel else 0.0
    launch(_finish_kernel)[(1,)](
        partials, planes * per_plane, coef, coef, 0.0, 0.0, scale, float(prep.numel), float(eps),
        float(weight_hole), float(weight_valid),
        MODE=MODE_AREA, ROWS=1, IS_HOLE=bool(mask_is_hole), HAS_MASK=True, COEF_PTR=False, BLOCK=FINISH_BLOCK)
    return coef


def _main(prep: _Prepared, mask_is_hole: bool, loss: int, charbonnier_eps: float, k_hole: float, k_valid: float,
          coef: Optional[Tensor], grad: Optional[Tensor], stats: bool) -> Tuple[Tensor, int]:
    """Runs the main kernel; returns its partials (rows x P, acc dtype) and P."""
    pred, target, mask = prep.pred, prep.target, prep.mask
    dev = pred.device
    rows = 4 if stats else 2
    if prep.channels_last:
        block_c = 1
        block = MAIN_BLOCK_CL
        extent = prep.C * prep.HW
    else:
        block_c = min(triton.next_power_of_2(max(prep.C, 1)), 4)
        block = max(MAIN_BLOCK // block_c, 16)
        extent = prep.HW
    per_n = triton.cdiv(extent, block) if extent else 0
    tiles = _tiles(per_n * prep.N, PROGRAMS)
    per_n = triton.cdiv(per_n, tiles) if per_n else 0
    P = per_n * prep.N
    partials = torch.empty((rows, max(P, 1)), dtype=prep.acc_dtype, device=dev)
    if P == 0:
        return partials, 0
    span = block * tiles
    i64 = any(_max_offset(x) + span * max(prep.C, 1) * 4 > INT32_MAX
              for x in (pred, target) + ((mask,) if mask is not None else ()))
    i64 = i64 or prep.numel + span > INT32_MAX
    has_mask = mask is not None
    m = mask if has_mask else pred
    hw_p = 1 if prep.channels_last else _hw_stride(pred)
    hw_t = 1 if prep.channels_last else _hw_stride(target)
    launch(_main_kernel)[(P,)](
        pred, target, m, grad if grad is not None else pred, partials, coef if coef is not None else partials,
        prep.C, prep.HW, per_n, pred.stride(0), pred.stride(1), hw_p, target.stride(0), target.stride(1), hw_t,
        bstride(m, 0) if has_mask else 0, bstride(m, 1) if has_mask else 0, _hw_stride(m) if has_mask else 0,
        1.0 if mask_is_hole else 0.0, -1.0 if mask_is_hole else 1.0, float(k_hole), float(k_valid),
        float(charbonnier_eps) ** 2,
        LOSS=int(loss), HAS_MASK=has_mask, MASK_BCAST_C=has_mask and bstride(m, 1) == 0,
        GRAD=grad is not None, COEF_PTR=coef is not None, CHANNELS_LAST=prep.channels_last, STATS=stats,
        F64=prep.acc_dtype == torch.float64, I64=i64, BLOCK_C=block_c, BLOCK=block, TILES=tiles,
        C_CL=prep.C if prep.channels_last and has_mask else 1,
        num_warps=8)
    return partials, P


def masked_error(pred: Tensor, target: Tensor, mask: Optional[Tensor], mask_is_hole: bool, loss: int,
                 charbonnier_eps: float, weight_hole: float, weight_valid: float, normalize: int,
                 eps: float, compute_grad: bool, *, channels_last: bool) -> Tuple[Tensor, Tensor]:
    """(loss, grad_pred): see csrc/ops/masked_error.cpp. Arguments checked and the layout
    (``channels_last``) decided by the op (inpaint_fast/ops/masked_error.py)."""
    prep = _Prepared(pred, target, mask, channels_last)
    numel = prep.numel
    coef = None
    k_hole, k_valid = float(weight_hole), float(weight_valid)
    if normalize == 1:
        if prep.mask is not None:
            coef = _mask_areas(prep, mask_is_hole, weight_hole, weight_valid, eps)
        else:  # everything known: no hole term, A_valid = numel
            k_hole = 0.0
            k_valid = weight_valid / max(float(numel), eps)
    elif normalize == 2:
        k_hole = weight_hole / max(numel, 1)
        k_valid = weight_valid / max(numel, 1)
    grad = None
    if compute_grad:
        fmt = torch.channels_last if prep.channels_last else torch.contiguous_format
        grad = torch.empty_like(pred, dtype=grad_buffer_dtype(pred.dtype), memory_format=fmt)
    partials, P = _main(prep, mask_is_hole, loss, charbonnier_eps, k_hole, k_valid, coef, grad, stats=False)
    value = torch.empty((), dtype=prep.acc_dtype, device=pred.device)
    launch(_finish_kernel)[(1,)](
        partials, P, value, coef if coef is not None else partials, k_hole, k_valid, 1.0, float(numel),
        float(eps), float(weight_hole), float(weight_valid),
        MODE=MODE_LOSS, ROWS=2, IS_HOLE=bool(mask_is_hole), HAS_MASK=prep.mask is not None,
        COEF_PTR=coef is not None, BLOCK=FINISH_BLOCK)
    if grad is None:
        grad = pred.new_empty((0,), dtype=grad_buffer_dtype(pred.dtype))
    return value, grad


def masked_error_stats(pred: Tensor, target: Tensor, mask: Optional[Tensor], mask_is_hole: bool, *,
                       channels_last: bool) -> Tensor:
    """(6,) [hole |d|, valid |d|, hole d^2, valid d^2, A_hole, A_valid] in float32 (float64 for float64)."""
    prep = _Prepared(pred, target, mask, channels_last)
    coef = _mask_areas(prep, mask_is_hole, 0.0, 0.0, 1.0) if prep.mask is not None else None
    partials, P = _main(prep, mask_is_hole, 0, 0.0, 0.0, 0.0, None, None, stats=True)
    out = torch.empty(6, dtype=prep.acc_dtype, device=pred.device)
    launch(_finish_kernel)[(1,)](
        partials, P, out, coef if coef is not None else partials, 0.0, 0.0, 1.0, float(prep.numel), 1.0, 0.0, 0.0,
        MODE=MODE_STATS, ROWS=4, IS_HOLE=bool(mask_is_hole), HAS_MASK=prep.mask is not None, COEF_PTR=False,
        BLOCK=FINISH_BLOCK)
    return out
