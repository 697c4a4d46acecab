"""torch.library glue of ``inpaint_fast::masked_error_sums`` (C++ schema: csrc/ops/masked_error_sums.cpp).

``masked_error_sums(pred, target, weight)`` returns the (3,) tensor
``[sum(w * |d|), sum(w * d**2), sum(w)]`` with ``d = pred - target`` and ``w`` the weight
broadcast from ``(N|1, C|1, H, W)`` to pred's ``(N, C, H, W)`` (so a (N,1,H,W) weight counts C
times in ``sum(w)``); float32 for float16/bfloat16/float32 inputs, float64 for float64 inputs.

Gradients: pred and target (``grad_pred = w * (g[0] * sign(d) + 2 * g[1] * d)``,
``grad_target = -grad_pred``, computed by the op ``masked_error_sums_backward``). The weight is
never differentiated: a weight that requires grad is an error (callers route that case to the
reference implementation). Double backward is not supported.

Inputs are expected to be validated already (``inpaint_fast._validation``); the C++ kernels only
re-check them (RuntimeError). When the extension is not built this module registers nothing.
"""
from __future__ import annotations

import torch
from torch import Tensor

from .. import _extension

OP = "inpaint_fast::masked_error_sums"
BACKWARD_OP = "inpaint_fast::masked_error_sums_backward"


def _sums_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def masked_error_sums(pred: Tensor, target: Tensor, weight: Tensor) -> Tensor:
    """``[sum(w*|pred-target|), sum(w*(pred-target)**2), sum(w)]`` in one pass (see module doc)."""
    return torch.ops.inpaint_fast.masked_error_sums.default(pred, target, weight)


def _fake_forward(pred: Tensor, target: Tensor, weight: Tensor) -> Tensor:
    torch._check(pred.dim() == 4, lambda: f"pred must be 4-D; got {tuple(pred.shape)}")
    torch._check(target.shape == pred.shape,
                 lambda: f"target shape {tuple(target.shape)} must equal pred shape {tuple(pred.shape)}")
    return pred.new_empty((3,), dtype=_sums_dtype(pred.dtype))


def _fake_backward(grad: Tensor, pred: Tensor, target: Tensor, weight: Tensor) -> Tensor:
    torch._check(grad.dim() == 1 and grad.shape[0] == 3,
                 lambda: f"grad must have shape (3,); got {tuple(grad.shape)}")
    return torch.empty_like(pred, memory_format=torch.contiguous_format)


def _setup_context(ctx, inputs, output) -> None:
    pred, target, weight = inputs
    if weight.requires_grad:
        raise RuntimeError(
            "inpaint_fast::masked_error_sums does not differentiate its weight; a weight that "
            "requires grad must go through the reference implementation (inpaint_fast.reference)")
    ctx.save_for_backward(pred, target, weight)


def _backward(ctx, grad: Tensor):
    pred, target, weight = ctx.saved_tensors
    need_pred, need_target = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
    grad_pred = grad_target = None
    if need_pred or need_target:
        g = torch.ops.inpaint_fast.masked_error_sums_backward.default(grad, pred, target, weight)
        grad_pred = g if need_pred else None
        grad_target = g.neg() if need_target else None
    return grad_pred, grad_target, None


def _setup_context_double(ctx, inputs, output) -> None:
    pass


def _double_backward(ctx, grad: Tensor):
    raise RuntimeError("inpaint_fast::masked_error_sums does not support double backward "
                       "(differentiating its gradient); use the reference implementation")


if _extension.load_error() is None:
    torch.library.register_fake(OP)(_fake_forward)
    torch.library.register_fake(BACKWARD_OP)(_fake_backward)
    torch.library.register_autograd(OP, _backward, setup_context=_setup_context)
    torch.library.register_autograd(BACKWARD_OP, _double_backward,
                                    setup_context=_setup_context_double)
