"""torch.library glue of ``inpaint_fast::gram`` and ``inpaint_fast::style_distance``
(C++ schemas: csrc/ops/style_distance.cpp; CPU kernels: csrc/ops/cpu/style_distance_kernel.cpp).

For features ``F`` (N, C, H, W), seen per sample as a C x HW matrix, and an optional spatial
weight ``w`` (N|1, 1, H, W) (already at the features' resolution, the features' dtype):

- ``gram_matrix(feat, weight=None, eps=1e-8)``: ``G = F diag(w) F^T / (C * max(sum(w), eps))``
  per sample, ``F F^T / (C H W)`` without a weight: (N, C, C) in feat's dtype, exactly symmetric,
  accumulated in float32 (float64 for float64). Differentiable w.r.t. ``feat``:
  ``dF = (gG + gG^T) (w * F) * scale`` (the op ``gram_backward``, one GEMM).
- ``style_distance(feat_pred, feat_target, weight=None, eps=1e-8)``: the seed's per-layer style
  term ``mean |G(feat_pred) - G(feat_target)|``, 0-dim in feat's dtype. Differentiable w.r.t.
  ``feat_pred`` only: the target's features are a constant (the seed detaches them), so a
  ``feat_target`` that requires grad is an error (detach it, or use the reference backend).
  The gradient is computed by the forward op itself (``compute_grad``) into one buffer, which the
  backward only scales by the incoming gradient (``scale_grad.saved_grad``: in place; a second
  backward of the graph recomputes; double backward is an error). For float16 features that buffer is float32 (the gradient before
  the multiplication by grad_output, e.g. a GradScaler's 2^16, is typically ~1e-10, below
  float16's range), cast to float16 after the multiplication.

The weight is never differentiated (a weight that requires grad is an error). Inputs are expected
to be validated already (``inpaint_fast._validation``); the C++ kernels only re-check them
(RuntimeError). When the extension is not built this module registers no C++ op glue.

The Triton backend: ``inpaint_fast::gram_triton``, ``gram_backward_triton`` and
``style_distance_triton`` (kernels: inpaint_fast/triton/style_distance.py), registered here with
``torch.library.triton_op`` and the same fake kernels and autograd functions as the C++ ops, whenever
triton imports (independently of the compiled extension). They support float16, bfloat16, float32
and float64 features, any strides and channels_last.
"""
from __future__ import annotations

import functools
from typing import Optional, Tuple

import torch
from torch import Tensor

from .. import _extension
from .scale_grad import check_first_order, grad_buffer_dtype, keep_inputs, saved_grad

GRAM_OP = "inpaint_fast::gram"
GRAM_BACKWARD_OP = "inpaint_fast::gram_backward"
STYLE_OP = "inpaint_fast::style_distance"
# The Triton twins (inpaint_fast/triton/style_distance.py): same schemas and semantics.
GRAM_TRITON_OP = "inpaint_fast::gram_triton"
GRAM_BACKWARD_TRITON_OP = "inpaint_fast::gram_backward_triton"
STYLE_TRITON_OP = "inpaint_fast::style_distance_triton"
EPS = 1e-8

_DOUBLE_BACKWARD = ("inpaint_fast::{op} does not support double backward (differentiating its "
                    "gradient, e.g. create_graph=True); use inpaint_fast.use_backend('reference')")


def gram_matrix(feat: Tensor, weight: Optional[Tensor] = None, eps: float = EPS, backend: str = "cpu") -> Tensor:
    """Per-sample Gram matrix ``F diag(w) F^T / (C * max(sum(w), eps))`` (see the module doc).
    ``backend`` 'cpu'/'cuda': the C++ op; 'triton': the Triton op."""
    op = torch.ops.inpaint_fast.gram_triton if backend == "triton" else torch.ops.inpaint_fast.gram
    return op.default(feat, weight, eps)


def style_distance(feat_pred: Tensor, feat_target: Tensor, weight: Optional[Tensor] = None,
                   eps: float = EPS, backend: str = "cpu") -> Tensor:
    """``mean |G(feat_pred) - G(feat_target)|`` in feat's dtype (see the module doc)."""
    compute_grad = torch.is_grad_enabled() and feat_pred.requires_grad
    op = torch.ops.inpaint_fast.style_distance_triton if backend == "triton" else torch.ops.inpaint_fast.style_distance
    loss, _ = op.default(feat_pred, feat_target, weight, eps, compute_grad)
    return loss.to(feat_pred.dtype)


# ------------------------------------------------------------------------------ fake kernels

def _loss_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def _grad_like(feat: Tensor) -> Tensor:
    """What the kernels allocate: feat's layout when NCHW- or channels_last-contiguous, else NCHW."""
    if not feat.is_contiguous() and feat.is_contiguous(memory_format=torch.channels_last):
        return torch.empty_like(feat, memory_format=torch.channels_last)
    return torch.empty_like(feat, memory_format=torch.contiguous_format)


def _check_feat(feat: Tensor, name: str) -> None:
    torch._check(feat.dim() == 4, lambda: f"{name} must be 4-D (N, C, H, W); got {tuple(feat.shape)}")


def _fake_gram(feat: Tensor, weight: Optional[Tensor], eps: float) -> Tensor:
    _check_feat(feat, "feat")
    n, c = feat.shape[0], feat.shape[1]
    return feat.new_empty((n, c, c))


def _fake_gram_backward(grad: Tensor, feat: Tensor, weight: Optional[Tensor], eps: float) -> Tensor:
    _check_feat(feat, "feat")
    torch._check(grad.dim() == 3, lambda: f"grad must be (N, C, C); got {tuple(grad.shape)}")
    return _grad_like(feat)


def _fake_style(feat_pred: Tensor, feat_target: Tensor, weight: Optional[Tensor], eps: float,
                compute_grad: bool) -> Tuple[Tensor, Tensor]:
    _check_feat(feat_pred, "feat_pred")
    torch._check(feat_target.shape == feat_pred.shape,
                 lambda: f"feat_target shape {tuple(feat_target.shape)} must equal feat_pred shape "
                         f"{tuple(feat_pred.shape)}")
    loss = feat_pred.new_empty((), dtype=_loss_dtype(feat_pred.dtype))
    grad_dtype = grad_buffer_dtype(feat_pred.dtype)
    grad = (_grad_like(feat_pred).to(grad_dtype) if compute_grad
            else feat_pred.new_empty((0,), dtype=grad_dtype))
    return loss, grad


# ------------------------------------------------------------------------------ autograd

def _reject_weight_grad(op: str, weight: Optional[Tensor]) -> None:
    if weight is not None and weight.requires_grad:
        raise RuntimeError(f"inpaint_fast::{op} does not differentiate its weight; a weight that "
                           "requires grad must go through the reference implementation "
                           "(inpaint_fast.use_backend('reference'))")


def _gram_setup_context(ctx, inputs, output) -> None:
    feat, weight, eps = inputs
    _reject_weight_grad("gram", weight)
    ctx.save_for_backward(feat, weight)
    ctx.eps = eps


def _gram_backward_with(backward_op: str):
    """The backward of a gram op whose gradient is the op ``backward_op`` (gram_backward or its
    Triton twin), looked up when the backward runs."""
    namespace, name = backward_op.split("::")

    def _gram_backward(ctx, grad: Tensor):
        feat, weight = ctx.saved_tensors
        grad_feat = None
        if ctx.needs_input_grad[0]:
            op = getattr(getattr(torch.ops, namespace), name).default
            grad_feat = op(grad, feat, weight, ctx.eps)
        return grad_feat, None, None

    return _gram_backward


def _no_setup(ctx, inputs, output) -> None:
    pass


def _gram_double_backward(ctx, grad: Tensor):
    raise RuntimeError(_DOUBLE_BACKWARD.format(op="gram"))


def _style_setup_context(ctx, inputs, output, op: str) -> None:
    feat_pred, feat_target, weight, eps, compute_grad = inputs
    _reject_weight_grad("style_distance", weight)
    if feat_target.requires_grad:
        raise RuntimeError(
            "inpaint_fast::style_distance treats feat_target as a constant (the seed detaches the "
            "target's features) and computes no gradient for it; pass feat_target.detach(), or use "
            "inpaint_fast.use_backend('reference') to differentiate both sides")
    _, grad_pred = output
    ctx.mark_non_differentiable(grad_pred)
    # No zero-filled full-size gradient for the (non-differentiable) grad_pred output.
    ctx.set_materialize_grads(False)
    ctx.save_for_backward(grad_pred)
    ctx.compute_grad = compute_grad
    ctx.feat_dtype = feat_pred.dtype
    keep_inputs(ctx, op, inputs)


def _style_backward(ctx, grad_loss: Optional[Tensor], _grad_of_grad: Optional[Tensor]):
    check_first_order("style_distance")
    if not ctx.needs_input_grad[0] or grad_loss is None:
        return None, None, None, None, None
    if not ctx.compute_grad:
        raise RuntimeError("inpaint_fast::style_distance was called with compute_grad=False, so "
                           "it has no gradient; call it with compute_grad=True when feat_pred "
                           "requires grad (inpaint_fast.ops.style_distance.style_distance does)")
    (grad_pred,) = saved_grad(ctx, lambda: ctx.saved_tensors, grad_loss, lambda outputs: outputs[1:],
                              dtype=ctx.feat_dtype)
    return grad_pred, None, None, None, None


if _extension.load_error() is None:
    torch.library.register_fake(GRAM_OP)(_fake_gram)
    torch.library.register_fake(GRAM_BACKWARD_OP)(_fake_gram_backward)
    torch.library.register_fake(STYLE_OP)(_fake_style)
    torch.library.register_autograd(GRAM_OP, _gram_backward_with(GRAM_BACKWARD_OP),
                                    setup_context=_gram_setup_context)
    torch.library.register_autograd(GRAM_BACKWARD_OP, _gram_double_backward, setup_context=_no_setup)
    torch.library.register_autograd(STYLE_OP, _style_backward,
                                    setup_context=functools.partial(_style_setup_context, op=STYLE_OP))

if "triton" in _extension.kernels("style_distance"):
    # triton_op on a GPU, custom_op in the interpreter (see triton/_common.define_op).
    from ..triton import style_distance as _triton_kernels
    from ..triton._common import define_op

    for _name, _fn, _fake in (
            (GRAM_TRITON_OP, _triton_kernels.gram, _fake_gram),
            (GRAM_BACKWARD_TRITON_OP, _triton_kernels.gram_backward, _fake_gram_backward),
            (STYLE_TRITON_OP, _triton_kernels.style_distance, _fake_style)):
        define_op(_name, _fn)
        # The fake kernels of the C++ ops (triton_op's default, tracing the launcher, would do too).
        torch.library.register_fake(_name)(_fake)
    torch.library.register_autograd(GRAM_TRITON_OP, _gram_backward_with(GRAM_BACKWARD_TRITON_OP),
                                    setup_context=_gram_setup_context)
    torch.library.register_autograd(GRAM_BACKWARD_TRITON_OP, _gram_double_backward, setup_context=_no_setup)
    torch.library.register_autograd(STYLE_TRITON_OP, _style_backward,
                                    setup_context=functools.partial(_style_setup_context, op=STYLE_TRITON_OP))
