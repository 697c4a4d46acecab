"""torch.library glue of ``inpaint_fast::masked_error`` and ``masked_error_stats``
(C++ schemas and semantics: csrc/ops/masked_error.cpp).

``masked_error`` computes a hole/valid-weighted L1, L2 or Charbonnier loss in one pass and, when
pred or target requires grad, writes d loss / d pred in that same pass (float32 for float16 images);
backward only scales that saved gradient by ``grad_output`` (in place, nothing done when it is 1:
csrc/common/saved_grad.h for the C++ op, ``scale_grad.saved_grad`` for the Triton op). The mask is never
differentiated: a mask that requires grad is an error (callers route it to the reference). Inputs are
validated by the caller (``inpaint_fast._validation``), except a floating mask's values in [0, 1]: the op
checks those (``checks.check_mask_values``; the CUDA kernel in its pass over the mask's area).
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor

from . import library
from .checks import NORMALIZE_CODES, check_code, check_eps, check_image, check_like, check_mask, check_mask_values
from .scale_grad import check_first_order, check_no_grad, grad_buffer_dtype, keep_inputs, saved_grad

OP, STATS_OP = "inpaint_fast::masked_error", "inpaint_fast::masked_error_stats"
OP_TRITON, STATS_OP_TRITON = OP + "_triton", STATS_OP + "_triton"
LOSS_CODES = {"l1": 0, "l2": 1, "charbonnier": 2}


def check_inputs(op: str, pred: Tensor, target: Tensor, mask: Optional[Tensor]) -> None:
    """The op's tensor checks (csrc/ops/masked_error.h ``check_tensors``)."""
    check_image(pred, op, "pred")
    check_like(target, pred, op, "target", "pred")
    check_mask(mask, pred, op, "pred")


def check_options(op: str, loss: int, charbonnier_eps: float, normalize: int, eps: float) -> None:
    """The op's option checks (csrc/ops/masked_error.h ``check_options``)."""
    check_code(loss, LOSS_CODES, op, "loss")
    check_code(normalize, NORMALIZE_CODES, op, "normalize")
    check_eps(charbonnier_eps, op, "charbonnier_eps")
    check_eps(eps, op)


def use_channels_last(pred: Tensor, target: Tensor) -> bool:
    """The layout rule (csrc/ops/masked_error.h ``use_channels_last``): both images channels_last-dense with
    C > 1 are read in place and the gradient is channels_last; otherwise the kernels work on NCHW (H, W)
    planes and the gradient is NCHW-contiguous."""
    return (pred.shape[1] > 1 and pred.is_contiguous(memory_format=torch.channels_last)
            and target.is_contiguous(memory_format=torch.channels_last))


def _sums_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


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
        pred, target, mask, mask_is_hole, LOSS_CODES[loss], charbonnier_eps, weight_hole, weight_valid,
        NORMALIZE_CODES[normalize], eps, compute_grad)
    return value if value.dtype == pred.dtype else value.to(pred.dtype)


def masked_error_stats(pred: Tensor, target: Tensor, mask: Optional[Tensor], *, mask_is_hole: bool,
                       backend: str = "cpu") -> Tensor:
    """(6,) float32/float64: hole and valid sums of |d| and d^2, then the hole and valid areas. No grad."""
    op = (torch.ops.inpaint_fast.masked_error_stats_triton if backend == "triton"
          else torch.ops.inpaint_fast.masked_error_stats)
    return op.default(pred, target, mask, mask_is_hole)


def _fake(pred, target, mask, mask_is_hole, loss, charbonnier_eps, weight_hole, weight_valid, normalize, eps,
          compute_grad, op: str = OP):
    check_inputs(op, pred, target, mask)
    check_options(op, loss, charbonnier_eps, normalize, eps)
    value = pred.new_empty((), dtype=_sums_dtype(pred.dtype))
    if not compute_grad:
        return value, pred.new_empty((0,), dtype=grad_buffer_dtype(pred.dtype))
    layout = torch.channels_last if use_channels_last(pred, target) else torch.contiguous_format
    return value, torch.empty_like(pred, dtype=grad_buffer_dtype(pred.dtype), memory_format=layout)


def _fake_stats(pred, target, mask, mask_is_hole, op: str = STATS_OP):
    check_inputs(op, pred, target, mask)
    return pred.new_empty((6,), dtype=_sums_dtype(pred.dtype))


def _masked_error_triton(pred: Tensor, target: Tensor, mask: Optional[Tensor], mask_is_hole: bool, loss: int,
                         charbonnier_eps: float, weight_hole: float, weight_valid: float, normalize: int, eps: float,
                         compute_grad: bool) -> Tuple[Tensor, Tensor]:
    check_inputs(OP_TRITON, pred, target, mask)
    check_options(OP_TRITON, loss, charbonnier_eps, normalize, eps)
    check_mask_values(mask, mask_is_hole)
    return _triton_kernels.masked_error(pred, target, mask, mask_is_hole, loss, charbonnier_eps, weight_hole,
                                        weight_valid, normalize, eps, compute_grad,
                                        channels_last=use_channels_last(pred, target))


def _masked_error_stats_triton(pred: Tensor, target: Tensor, mask: Optional[Tensor], mask_is_hole: bool) -> Tensor:
    check_inputs(STATS_OP_TRITON, pred, target, mask)
    check_mask_values(mask, mask_is_hole)
    return _triton_kernels.masked_error_stats(pred, target, mask, mask_is_hole,
                                              channels_last=use_channels_last(pred, target))


def _setup_context(ctx, inputs, output, op: str) -> None:
    check_no_grad(op, inputs[2], "mask", "a mask that requires grad must go through the reference implementation")
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


if library.load_error() is None:  # the C++ op's autograd is C++ (csrc/ops/autograd/masked_error_kernel.cpp)
    library.register(OP, _fake)
    library.register(STATS_OP, _fake_stats)

if "triton" in library.kernels("masked_error"):
    # The Triton ops do not depend on the compiled extension: triton_op on a GPU, custom_op in the
    # interpreter (see triton/_common.define_op); the same checks, layout rule, fake kernel and autograd.
    from .triton import masked_error as _triton_kernels
    from .triton._common import define_op

    define_op(OP_TRITON, _masked_error_triton)
    define_op(STATS_OP_TRITON, _masked_error_stats_triton)
    library.register(OP_TRITON, _fake, _backward, _setup_context)
    library.register(STATS_OP_TRITON, _fake_stats)
