"""torch.library glue of ``inpaint_fast::masked_error`` and ``masked_error_stats``
(C++ schemas and semantics: csrc/ops/masked_error.cpp).

``masked_error`` computes a hole/valid-weighted L1, L2 or Charbonnier loss in one pass and, when
pred or target requires grad, writes d loss / d pred in that same pass (float32 for float16 images);
backward only scales that saved gradient by ``grad_output`` (``scale_grad.saved_grad``: in place,
nothing done when it is 1). The mask is never differentiated (callers route a mask that requires
grad to the reference). Inputs are validated by the caller (``inpaint_fast._validation``).
"""
from __future__ import annotations

import functools
from typing import Optional

import torch
from torch import Tensor

from .. import _extension
from .scale_grad import check_first_order, grad_buffer_dtype, keep_inputs, saved_grad

LOSSES = {"l1": 0, "l2": 1, "charbonnier": 2}
NORMALIZES = {"none": 0, "mask": 1, "all": 2}


def _sums_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def _grad_memory_format(pred: Tensor, target: Tensor) -> torch.memory_format:
    channels_last = (pred.shape[1] > 1 and pred.is_contiguous(memory_format=torch.channels_last)
                     and target.is_contiguous(memory_format=torch.channels_last))
    return torch.channels_last if channels_last else torch.contiguous_format


def masked_error(pred: Tensor, target: Tensor, mask: Optional[Tensor], *, mask_is_hole: bool, loss: str,
                 charbonnier_eps: float, weight_hole: float, weight_valid: float, normalize: str,
                 eps: float, backend: str = "cpu") -> Tensor:
    """``weight_hole * E(hole) + weight_valid * E(known)`` as a 0-dim tensor of pred's dtype.

    pred, target: (N, C, H, W); mask: None (everything known) or (N|1, C|1, H, W) bool/uint8/pred
    dtype, the known mask, or the hole mask when ``mask_is_hole``. E is the sum of the error over
    the region, divided by the region's area (normalize='mask'), by numel ('all') or not ('none').
    ``backend``: 'cpu' or 'cuda' run the C++ op (by the tensors' device), 'triton' the Triton op.
    """
    compute_grad = torch.is_grad_enabled() and (pred.requires_grad or target.requires_grad)
    op = torch.ops.inpaint_fast.masked_error_triton if backend == "triton" else torch.ops.inpaint_fast.masked_error
    value, _ = op.default(
        pred, target, mask, mask_is_hole, LOSSES[loss], charbonnier_eps, weight_hole, weight_valid,
        NORMALIZES[normalize], eps, compute_grad)
    return value.to(pred.dtype)


def masked_error_stats(pred: Tensor, target: Tensor, mask: Optional[Tensor], *, mask_is_hole: bool,
                       backend: str = "cpu") -> Tensor:
    """(6,) float32/float64: hole and valid sums of |d| and d^2, then the hole and valid areas. No grad."""
    op = (torch.ops.inpaint_fast.masked_error_stats_triton if backend == "triton"
          else torch.ops.inpaint_fast.masked_error_stats)
    return op.default(pred, target, mask, mask_is_hole)


def _fake(pred, target, mask, mask_is_hole, loss, charbonnier_eps, weight_hole, weight_valid, normalize, eps,
          compute_grad):
    value = pred.new_empty((), dtype=_sums_dtype(pred.dtype))
    if not compute_grad:
        return value, pred.new_empty((0,), dtype=grad_buffer_dtype(pred.dtype))
    return value, torch.empty_like(pred, dtype=grad_buffer_dtype(pred.dtype), memory_format=_grad_memory_format(pred, target))


def _fake_stats(pred, target, mask, mask_is_hole):
    return pred.new_empty((6,), dtype=_sums_dtype(pred.dtype))


def _setup_context(ctx, inputs, output, op: str) -> None:
    _, grad = output
    ctx.mark_non_differentiable(grad)
    ctx.set_materialize_grads(False)  # no full-size zeros for the gradient output's (absent) gradient
    ctx.save_for_backward(grad)
    ctx.compute_grad = inputs[-1]
    ctx.pred_dtype = inputs[0].dtype
    keep_inputs(ctx, op, inputs)


def _backward(ctx, grad_value: Optional[Tensor], _unused: Optional[Tensor]):
    check_first_order("masked_error")
    if grad_value is None:
        return (None,) * 11
    if not ctx.compute_grad:
        raise RuntimeError("inpaint_fast::masked_error ran without its gradient: no input required grad")
    (grad_pred,) = saved_grad(ctx, lambda: ctx.saved_tensors, grad_value, lambda outputs: outputs[1:],
                              dtype=ctx.pred_dtype)
    grad_target = grad_pred.neg() if ctx.needs_input_grad[1] else None
    return (grad_pred if ctx.needs_input_grad[0] else None), grad_target, *([None] * 9)


def _register(name: str, stats_name: str) -> None:
    torch.library.register_fake(name)(_fake)
    torch.library.register_fake(stats_name)(_fake_stats)
    torch.library.register_autograd(name, _backward, setup_context=functools.partial(_setup_context, op=name))


if _extension.load_error() is None:
    _register("inpaint_fast::masked_error", "inpaint_fast::masked_error_stats")

if "triton" in _extension.kernels("masked_error"):
    # The Triton ops (inpaint_fast/triton/masked_error.py) do not depend on the compiled extension;
    # triton_op on a GPU, custom_op in the interpreter (see triton/_common.define_op).
    from ..triton import masked_error as _triton_kernels
    from ..triton._common import define_op

    define_op("inpaint_fast::masked_error_triton", _triton_kernels.masked_error_triton)
    define_op("inpaint_fast::masked_error_stats_triton", _triton_kernels.masked_error_stats_triton)
    _register("inpaint_fast::masked_error_triton", "inpaint_fast::masked_error_stats_triton")
