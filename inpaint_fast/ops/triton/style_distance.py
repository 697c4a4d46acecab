"""Triton kernels of ``inpaint_fast::gram_triton``, ``gram_backward_triton`` and ``style_distance_triton``
(same schemas and semantics as the C++ ops: csrc/ops/style_distance.cpp; glue, fake kernels and autograd:
inpaint_fast/ops/style_distance.py, which registers the launchers below as ops).

Notation: F_n is sample n of feat (N, C, H, W) as a C x HW matrix (read through its strides: NCHW,
channels_last or any other layout, no copy), w_n the weight row of sample n, scale_n = 1 / (C * max(sum(w_n), eps))
(1 / (C H W) without a weight), ws_n = w_n * scale_n.

1. Pre-pass (weight only, torch ops on the (Nw, HW) weight): area in float64, scale, ws = w * scale
   in the accumulation dtype (float32; float64 for float64). No host sync.
2. ``_gram_partial_kernel``: split-K GEMM over HW, pred and target in one launch when they share strides
   (program axis 2 = feature * N + n). Program (tile, split, n) computes the BLOCK_C x BLOCK_C
   tile (ti, tj), ti <= tj only (the lower tiles' programs return at once), of F_n[:, K_s] diag(ws_n[K_s])
   F_n[:, K_s]^T over its range K_s of positions, accumulated in float32 (float64), into its own slot of a
   partial buffer (no atomics). With a weight the left operand is scaled before the product (so float16
   cannot overflow: operands are then float32 and the dot runs in TF32 on a GPU, which holds float16/
   bfloat16 values exactly); without one the operands are the features themselves (float16/bfloat16 tensor
   cores, exact products, float32 accumulation) and the tile is multiplied by scale_n at the end.
   The HW split is chosen so that the programs run in one round (about two per SM).
3. ``_gram_finish_kernel`` (gram) / ``_style_finish_kernel`` (style): per (tile, n) the split partials are
   summed in a fixed order; gram writes the tile and its mirror (diagonal tiles: the upper triangle and its
   mirror, so G is exactly symmetric); style takes D = G_p - G_t, writes the tile's sum of |D| (upper
   triangle of the matrix, off-diagonal entries twice) to a per-tile partial and, when the gradient is
   wanted, the symmetric sign matrix S = sign(D) in the dot dtype (+-1/0 is exact in float16/bfloat16).
   The loss is the fixed-order sum of the per-tile partials (torch.sum in float64) / (N C C).
4. ``_grad_kernel``: dF_n = (A_n F_n) * (coef * ws_n[k]) (or * coef * scale_n), one GEMM per sample tiled over
   (C, HW): style A = S, coef = 2 / (N C C); gram_backward A = gG + gG^T (float32/float64), coef = 1.

Precision of ``tl.dot``: float32 features use TF32 when ``torch.backends.cuda.matmul.allow_tf32`` is set
(the caller's precision, as cuBLAS), IEEE float32 otherwise; float64 uses float64; in the interpreter
(TRITON_INTERPRET=1, CPU tensors) always IEEE, bfloat16 operands as float32. Results are bitwise
deterministic: the split of HW and the tiles depend on the shape and the device only, partials are
summed in a fixed order. Features without positions (H or W = 0) give a zero Gram and a 0 loss.
"""
from __future__ import annotations

import functools
from typing import Optional, Tuple

import torch
import triton
import triton.language as tl
from torch import Tensor

from ..scale_grad import grad_buffer_dtype
from ._common import INTERPRETED, launch

# ------------------------------------------------------------------------------------------ kernels

# Triton's interpreter multiplies the bit patterns of bfloat16 tl.dot operands (unsupported there:
# triton-lang/triton#11584); it gets them as float32, which holds them exactly. Compiled: never.
_BF16_DOT_AS_FP32 = tl.constexpr(INTERPRETED)


@triton.jit
def _dot_operand(x):
    if _BF16_DOT_AS_FP32 and x.dtype == tl.bfloat16:
        return x.to(tl.float32)
    return x


@triton.jit
def _cols(offs_k, W, s_h, s_w, FLAT: tl.constexpr):
    """Element offsets (int64) of positions offs_k = h * W + w."""
    if FLAT:  # s_h == W * s_w (NCHW- or channels_last-contiguous, and more)
        return offs_k.to(tl.int64) * s_w
    else:
        return (offs_k // W).to(tl.int64) * s_h + (offs_k % W).to(tl.int64) * s_w


@triton.jit
def _gram_tile(base, ws_row, acc, offs_i, offs_j, C, k_start, k_stop, W, s_c, s_h, s_w,
               WEIGHTED: tl.constexpr, FLAT: tl.constexpr, TF32: tl.constexpr, BLOCK_K: tl.constexpr):
    """acc += F[offs_i, K] diag(ws[K]) F[offs_j, K]^T over the positions K = [k_start, k_stop)."""
    mask_i = offs_i < C
    mask_j = offs_j < C
    rows_i = offs_i.to(tl.int64) * s_c
    rows_j = offs_j.to(tl.int64) * s_c
    for k0 in range(k_start, k_stop, BLOCK_K):
        offs_k = k0 + tl.arange(0, BLOCK_K)
        mask_k = offs_k < k_stop
        cols = _cols(offs_k, W, s_h, s_w, FLAT)
        a = tl.load(base + rows_i[:, None] + cols[None, :], mask=mask_i[:, None] & mask_k[None, :], other=0.0)
        b = tl.load(base + rows_j[:, None] + cols[None, :], mask=mask_j[:, None] & mask_k[None, :], other=0.0)
        if WEIGHTED:  # scaled before accumulating, in the accumulation dtype
            wsv = tl.load(ws_row + offs_k, mask=mask_k, other=0.0)
            a = a.to(ws_row.dtype.element_ty) * wsv[None, :]
            b = b.to(ws_row.dtype.element_ty)
        a = _dot_operand(a)
        b = _dot_operand(b)
        if TF32:
            acc = tl.dot(a, tl.trans(b), acc, input_precision="tf32", out_dtype=acc.dtype)
        else:
            acc = tl.dot(a, tl.trans(b), acc, input_precision="ieee", out_dtype=acc.dtype)
    return acc


@triton.jit
def _gram_partial_kernel(feat_ptr, feat2_ptr, ws_ptr, scale_ptr, part_ptr,
                         N, C, HW, W, s_n, s_c, s_h, s_w, ws_sn, k_per_split, n_split, part_n0,
                         T: tl.constexpr, NF: tl.constexpr, WEIGHTED: tl.constexpr, FLAT: tl.constexpr,
                         TF32: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_K: tl.constexpr):
    """Program (row * T * T + tile, split), row = f * N + n: the split's partial of tile (ti <= tj) of
    feature f's Gram (f = 0: feat_ptr, 1: feat2_ptr, both with the strides s_*), written to its own slot.
    (Rows share grid axis 0 with the tiles: axes 1 and 2 hold at most 65535 programs.)"""
    tile = tl.program_id(0) % (T * T)
    row = tl.program_id(0) // (T * T)
    split = tl.program_id(1)
    n = row % N
    ti = tile // T
    tj = tile % T
    if ti > tj:
        return
    offs_i = ti * BLOCK_C + tl.arange(0, BLOCK_C)
    offs_j = tj * BLOCK_C + tl.arange(0, BLOCK_C)
    acc = tl.zeros((BLOCK_C, BLOCK_C), dtype=scale_ptr.dtype.element_ty)
    k_start = split.to(tl.int64) * k_per_split
    k_stop = tl.minimum(k_start + k_per_split, HW)
    ws_row = ws_ptr + n.to(tl.int64) * ws_sn
    offset = n.to(tl.int64) * s_n
    if NF == 1:
        base = feat_ptr + offset
    else:  # a select, not a branch: one copy of the pipelined loop (and of its shared memory)
        base = tl.where(row < N, feat_ptr, feat2_ptr) + offset
    acc = _gram_tile(base, ws_row, acc, offs_i, offs_j, C, k_start, k_stop, W, s_c, s_h, s_w,
                     WEIGHTED, FLAT, TF32, BLOCK_K)
    if not WEIGHTED:
        acc = acc * tl.load(scale_ptr + n)
    idx = tl.arange(0, BLOCK_C)[:, None] * BLOCK_C + tl.arange(0, BLOCK_C)[None, :]
    slot = ((part_n0 + row).to(tl.int64) * n_split + split) * (T * T) + tile
    tl.store(part_ptr + slot * (BLOCK_C * BLOCK_C) + idx, acc)


@triton.jit
def _sum_splits(part_ptr, n_row, tile, n_split, T: tl.constexpr, BLOCK_C: tl.constexpr):
    """Fixed-order sum over the splits of one tile's partials (sample row n_row of the buffer)."""
    idx = tl.arange(0, BLOCK_C)[:, None] * BLOCK_C + tl.arange(0, BLOCK_C)[None, :]
    acc = tl.zeros((BLOCK_C, BLOCK_C), dtype=part_ptr.dtype.element_ty)
    for s in range(0, n_split):
        slot = (n_row.to(tl.int64) * n_split + s) * (T * T) + tile
        acc += tl.load(part_ptr + slot * (BLOCK_C * BLOCK_C) + idx)
    return acc


@triton.jit
def _gram_finish_kernel(part_ptr, out_ptr, C, n_split, T: tl.constexpr, BLOCK_C: tl.constexpr):
    tile = tl.program_id(0) % (T * T)
    n = tl.program_id(0) // (T * T)
    ti = tile // T
    tj = tile % T
    if ti > tj:
        return
    g = _sum_splits(part_ptr, n, tile, n_split, T, BLOCK_C)
    li = tl.arange(0, BLOCK_C)
    offs_i = ti * BLOCK_C + li
    offs_j = tj * BLOCK_C + li
    valid = (offs_i[:, None] < C) & (offs_j[None, :] < C) & ((ti < tj) | (li[:, None] <= li[None, :]))
    base = out_ptr + n.to(tl.int64) * C * C
    g = g.to(out_ptr.dtype.element_ty)
    tl.store(base + offs_i[:, None].to(tl.int64) * C + offs_j[None, :], g, mask=valid)
    tl.store(base + offs_j[None, :].to(tl.int64) * C + offs_i[:, None], g, mask=valid)


@triton.jit
def _style_finish_kernel(part_ptr, loss_ptr, sign_ptr, C, N, n_split,
                         T: tl.constexpr, BLOCK_C: tl.constexpr, COMPUTE_GRAD: tl.constexpr):
    tile = tl.program_id(0) % (T * T)
    n = tl.program_id(0) // (T * T)
    ti = tile // T
    tj = tile % T
    if ti > tj:  # the loss partial buffer is zero-initialised
        return
    gp = _sum_splits(part_ptr, n, tile, n_split, T, BLOCK_C)
    gt = _sum_splits(part_ptr, N + n, tile, n_split, T, BLOCK_C)
    d = gp - gt
    li = tl.arange(0, BLOCK_C)
    offs_i = ti * BLOCK_C + li
    offs_j = tj * BLOCK_C + li
    upper = (ti < tj) | (li[:, None] <= li[None, :])
    valid = (offs_i[:, None] < C) & (offs_j[None, :] < C) & upper
    strict = (ti < tj) | (li[:, None] < li[None, :])
    absd = tl.where(valid, tl.abs(d), 0.0)
    absd = tl.where(strict, 2.0 * absd, absd)
    tl.store(loss_ptr + n.to(tl.int64) * (T * T) + tile, tl.sum(tl.sum(absd, axis=1), axis=0))
    if COMPUTE_GRAD:
        s = (tl.where(d > 0, 1.0, 0.0) - tl.where(d < 0, 1.0, 0.0)).to(sign_ptr.dtype.element_ty)
        base = sign_ptr + n.to(tl.int64) * C * C
        tl.store(base + offs_i[:, None].to(tl.int64) * C + offs_j[None, :], s, mask=valid)
        tl.store(base + offs_j[None, :].to(tl.int64) * C + offs_i[:, None], s, mask=valid)


@triton.jit
def _grad_kernel(a_ptr, feat_ptr, ws_ptr, scale_ptr, grad_ptr,
                 C, HW, W, s_n, s_c, s_h, s_w, ws_sn, g_n, g_c, g_h, g_w, n_mb, n_kb,
                 WEIGHTED: tl.constexpr, FLAT: tl.constexpr, G_FLAT: tl.constexpr, TF32: tl.constexpr,
                 BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_J: tl.constexpr):
    """Program ((n * n_kb + pid_k) * n_mb + pid_m): rows pid_m, positions pid_k of sample n's gradient
    (one grid axis: axes 1 and 2 hold at most 65535 programs)."""
    pid = tl.program_id(0)
    pid_m = pid % n_mb
    pid_k = ((pid // n_mb) % n_kb).to(tl.int64)
    n = pid // (n_mb * n_kb)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_k = pid_k * BLOCK_N + tl.arange(0, BLOCK_N)
    mask_m = offs_m < C
    mask_k = offs_k < HW
    cols = _cols(offs_k, W, s_h, s_w, FLAT)
    a_base = a_ptr + n.to(tl.int64) * C * C
    f_base = feat_ptr + n.to(tl.int64) * s_n
    acc_ty = scale_ptr.dtype.element_ty
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=acc_ty)
    for j0 in range(0, C, BLOCK_J):
        offs_j = j0 + tl.arange(0, BLOCK_J)
        mask_j = offs_j < C
        a = tl.load(a_base + offs_m[:, None].to(tl.int64) * C + offs_j[None, :],
                    mask=mask_m[:, None] & mask_j[None, :], other=0.0)
        f = tl.load(f_base + offs_j[:, None].to(tl.int64) * s_c + cols[None, :],
                    mask=mask_j[:, None] & mask_k[None, :], other=0.0)
        f = _dot_operand(f.to(a_ptr.dtype.element_ty))
        a = _dot_operand(a)
        if TF32:
            acc = tl.dot(a, f, acc, input_precision="tf32", out_dtype=acc.dtype)
        else:
            acc = tl.dot(a, f, acc, input_precision="ieee", out_dtype=acc.dtype)
    if WEIGHTED:
        wsv = tl.load(ws_ptr + n.to(tl.int64) * ws_sn + offs_k, mask=mask_k, other=0.0)
        acc = acc * wsv[None, :]
    else:
        acc = acc * tl.load(scale_ptr + n)
    g_cols = _cols(offs_k, W, g_h, g_w, G_FLAT)
    out = grad_ptr + n.to(tl.int64) * g_n + offs_m[:, None].to(tl.int64) * g_c + g_cols[None, :]
    tl.store(out, acc.to(grad_ptr.dtype.element_ty), mask=mask_m[:, None] & mask_k[None, :])


# ------------------------------------------------------------------------------------------ helpers

_HALF = (torch.float16, torch.bfloat16)


def _interpreted(device: torch.device) -> bool:
    return device.type == "cpu" or INTERPRETED


@functools.lru_cache(maxsize=None)
def _sm_count(device_type: str, index: Optional[int]) -> int:
    if device_type == "cuda":
        index = index if index is not None else torch.cuda.current_device()
        return torch.cuda.get_device_properties(index).multi_processor_count
    return 4  # the interpreter: a few programs per item, so that the split-K path is exercised


def _acc_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def _tf32(dtype: torch.dtype, device: torch.device, weighted_or_converted: bool) -> bool:
    """TF32 dots: float32 features when the caller allows TF32 matmuls; float16/bfloat16 features whose
    operands were converted to float32 (TF32 holds their values exactly). Never in the interpreter."""
    if _interpreted(device):
        return False
    if dtype == torch.float32:
        return bool(torch.backends.cuda.matmul.allow_tf32)
    return dtype in _HALF and weighted_or_converted


def _flat(t: Tensor) -> bool:
    """Positions h * W + w are at a single stride: s_h == W * s_w (or H == 1)."""
    return t.size(2) == 1 or t.stride(2) == t.size(3) * t.stride(3)


def _strides(t: Tensor):
    return t.stride(0), t.stride(1), t.stride(2), t.stride(3)


def _scales(feat: Tensor, weight: Optional[Tensor], eps: float) -> Tuple[Tensor, Tensor, int]:
    """(scale (N,) and ws (Nw, HW), both in the accumulation dtype, ws's sample stride): the mask-only
    pre-pass. Without a weight scale_n = 1 / (C H W) and ws is scale itself (unused by the kernels)."""
    n, c, h, w = feat.shape
    acc = _acc_dtype(feat.dtype)
    if weight is None:
        scale = torch.full((n,), 1.0 / (c * h * w), dtype=acc, device=feat.device)
        return scale, scale, 0
    wf = weight.reshape(weight.size(0), h * w)
    area = wf.to(torch.float64).sum(dim=1)  # fixed-order reduction, float64 like the CPU kernel
    row_scale = (1.0 / (c * torch.clamp(area, min=eps))).to(acc)
    ws = (wf.to(acc) * row_scale[:, None]).contiguous()
    scale = row_scale.expand(n).contiguous()
    return scale, ws, (0 if weight.size(0) == 1 else h * w)


def _gram_blocks(c: int, dtype: torch.dtype, device: torch.device):
    block_c = max(16, min(128, triton.next_power_of_2(c)))
    if _interpreted(device):
        return block_c, 128, 4, 1
    block_k = 32 if (dtype in (torch.float32, torch.float64)) else 64
    if dtype == torch.float64:
        block_c, block_k = min(block_c, 64), 16
    return block_c, block_k, (8 if block_c >= 128 else 4), 3


def _split(items: int, hw: int, block_k: int, device: torch.device) -> Tuple[int, int]:
    """(splits of HW, positions per split): at most about two programs per SM (one round: two CTAs of
    the Gram kernel fit an SM), at least 4 K-blocks per split. Depends on the shape and the device only
    (determinism)."""
    target = 2 * _sm_count(device.type, device.index)
    max_split = max(1, triton.cdiv(hw, 4 * block_k))
    split = max(1, min(target // max(items, 1), max_split))
    k_per_split = triton.cdiv(triton.cdiv(hw, split), block_k) * block_k
    return triton.cdiv(hw, k_per_split), k_per_split


def _gram_partials(feats, scale: Tensor, ws: Tensor, ws_sn: int, weighted: bool):
    """Launches the split-K Gram kernel for each feature tensor in ``feats`` (same shape); returns
    (partials, T, block_c, n_split)."""
    f0 = feats[0]
    n, c, h, w = f0.shape
    hw = h * w
    block_c, block_k, warps, stages = _gram_blocks(c, f0.dtype, f0.device)
    t = triton.cdiv(c, block_c)
    tiles = t * (t + 1) // 2
    n_split, k_per_split = _split(len(feats) * n * tiles, hw, block_k, f0.device)
    part = torch.empty((len(feats) * n, n_split, t * t, block_c, block_c), dtype=scale.dtype, device=f0.device)
    tf32 = _tf32(f0.dtype, f0.device, weighted)
    # Both features in one launch when they share strides (the usual case), else one launch each.
    groups = [feats] if len(feats) == 2 and _strides(feats[0]) == _strides(feats[1]) else [[f] for f in feats]
    row0 = 0
    for group in groups:
        f = group[0]
        s_n, s_c, s_h, s_w = _strides(f)
        launch(_gram_partial_kernel)[(t * t * len(group) * n, n_split)](
            f, group[-1], ws, scale, part, n, c, hw, w, s_n, s_c, s_h, s_w, ws_sn, k_per_split, n_split, row0,
            T=t, NF=len(group), WEIGHTED=weighted, FLAT=_flat(f), TF32=tf32, BLOCK_C=block_c, BLOCK_K=block_k,
            num_warps=warps, num_stages=stages)
        row0 += len(group) * n
    return part, t, block_c, n_split


def _apply_gradient(a: Tensor, feat: Tensor, scale: Tensor, ws: Tensor, ws_sn: int, weighted: bool,
                    coef: float, grad: Tensor) -> None:
    """grad_n = (a_n feat_n) * coef * ws_n[k] (or * scale_n without a weight). coef is folded into the
    (small) scale tensors here: a Python float kernel argument would be float32 on a GPU."""
    if coef != 1.0:
        scale, ws = scale * coef, (ws * coef if weighted else ws)
    n, c, h, w = feat.shape
    hw = h * w
    interp = _interpreted(feat.device)
    block_m = max(16, min(128, triton.next_power_of_2(c)))
    if interp:
        block_n, block_j, warps, stages = 128, max(16, min(64, triton.next_power_of_2(c))), 4, 1
    elif feat.dtype == torch.float64:
        block_m, block_n, block_j, warps, stages = min(block_m, 64), 64, 16, 4, 2
    else:
        block_n = 128
        block_j = max(16, min(64 if a.dtype in _HALF else 32, triton.next_power_of_2(c)))
        warps, stages = (8 if block_m >= 128 else 4), 3
    tf32 = _tf32(feat.dtype, feat.device, a.dtype not in _HALF)
    s_n, s_c, s_h, s_w = _strides(feat)
    g_n, g_c, g_h, g_w = _strides(grad)
    n_mb, n_kb = triton.cdiv(c, block_m), triton.cdiv(hw, block_n)
    launch(_grad_kernel)[(n_mb * n_kb * n,)](
        a, feat, ws, scale, grad, c, hw, w, s_n, s_c, s_h, s_w, ws_sn, g_n, g_c, g_h, g_w, n_mb, n_kb,
        WEIGHTED=weighted, FLAT=_flat(feat), G_FLAT=_flat(grad), TF32=tf32,
        BLOCK_M=block_m, BLOCK_N=block_n, BLOCK_J=block_j, num_warps=warps, num_stages=stages)


# ------------------------------------------------------------------------------------------ launchers

def gram(feat: Tensor, weight: Optional[Tensor], eps: float) -> Tensor:
    """inpaint_fast::gram_triton: (N, C, C) in feat's dtype, exactly symmetric. Arguments checked by the
    op (inpaint_fast/ops/style_distance.py), as for the launchers below."""
    n, c, h, w = feat.shape
    out = feat.new_empty((n, c, c))
    if n * c == 0:
        return out
    if h * w == 0:  # no positions: a zero Gram
        return out.zero_()
    scale, ws, ws_sn = _scales(feat, weight, eps)
    part, t, block_c, n_split = _gram_partials([feat], scale, ws, ws_sn, weight is not None)
    launch(_gram_finish_kernel)[(t * t * n,)](part, out, c, n_split, T=t, BLOCK_C=block_c,
                                                 num_warps=4 if block_c <= 64 else 8)
    return out


def gram_backward(grad: Tensor, feat: Tensor, weight: Optional[Tensor], eps: float, *,
                  grad_layout: torch.memory_format) -> Tensor:
    """inpaint_fast::gram_backward_triton: dF_n = (gG_n + gG_n^T) (w_n * F_n) * scale_n, in ``grad_layout``."""
    out = torch.empty_like(feat, memory_format=grad_layout)
    if out.numel() == 0:
        return out
    acc = _acc_dtype(feat.dtype)
    g = grad.to(acc)
    a = (g + g.transpose(1, 2)).contiguous()
    scale, ws, ws_sn = _scales(feat, weight, eps)
    _apply_gradient(a, feat, scale, ws, ws_sn, weight is not None, 1.0, out)
    return out


def style_distance(feat_pred: Tensor, feat_target: Tensor, weight: Optional[Tensor], eps: float,
                   compute_grad: bool, *, grad_layout: torch.memory_format) -> Tuple[Tensor, Tensor]:
    """inpaint_fast::style_distance_triton: (mean |G_p - G_t| (0-dim float32/float64), d loss / d feat_pred
    in ``grad_layout`` or an empty (0,) tensor); float16 features get a float32 gradient."""
    n, c, h, w = feat_pred.shape
    acc = _acc_dtype(feat_pred.dtype)
    grad_dtype = grad_buffer_dtype(feat_pred.dtype)
    grad = (torch.empty_like(feat_pred, dtype=grad_dtype, memory_format=grad_layout) if compute_grad
            else feat_pred.new_empty((0,), dtype=grad_dtype))
    if n * c == 0 or h * w == 0:
        if compute_grad:
            grad.zero_()
        return torch.zeros((), dtype=acc, device=feat_pred.device), grad
    weighted = weight is not None
    scale, ws, ws_sn = _scales(feat_pred, weight, eps)
    part, t, block_c, n_split = _gram_partials([feat_pred, feat_target], scale, ws, ws_sn, weighted)
    loss_part = torch.zeros((n, t * t), dtype=acc, device=feat_pred.device)
    # S in the dot dtype of the gradient GEMM: the features' own for float16/bfloat16 (+-1/0 exact)
    sign = torch.empty((n, c, c) if compute_grad else (0,), dtype=feat_pred.dtype, device=feat_pred.device)
    launch(_style_finish_kernel)[(t * t * n,)](part, loss_part, sign, c, n, n_split, T=t, BLOCK_C=block_c,
                                                  COMPUTE_GRAD=compute_grad, num_warps=4 if block_c <= 64 else 8)
    denom = float(n) * float(c) * float(c)
    loss = (loss_part.sum(dtype=torch.float64) / denom).to(acc)
    if compute_grad:
        _apply_gradient(sign, feat_pred, scale, ws, ws_sn, weighted, 2.0 / denom, grad)
    return loss, grad
