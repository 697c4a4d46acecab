"""torch.library glue of ``inpaint_fast::gram`` and ``inpaint_fast::style_distance``
(C++ schemas: csrc/ops/style_distance.cpp; CPU kernels: csrc/ops/cpu/style_distance_kernel.cpp).

For features ``F`` (N, C, H, W), seen per sample as a C x HW matrix, and an optional spatial
weight ``w`` (N|1, 1, H, W) (already at the features' resolution, the features' dtype):

- ``gram_matrix(feat, weight=None, eps=1e-8)``: ``G = F diag(w) F^T / (C * max(sum(w), eps))``
  per sample, ``F F^T / (C H W)`` without a weight: (N, C, C) in feat's dtype, exactly symmetric,
  accumulated in float32 (float64 for float64). Differentiable w.r.t. ``feat``:
  ``dF = (gG + gG^T) (w * F) * scale`` (the op ``gram_backward``, one GEMM).
- ``style_distance(feat_pred, feat_target, weight=None, eps=1e-8)``: the notebook's per-layer style
  term ``mean |G(feat_pred) - G(feat_target)|``, 0-dim in feat's dtype. Differentiable w.r.t.
  ``feat_pred`` only: the target's features are a constant (the notebook detaches them), so a
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
``style_distance_triton`` (kernels: inpaint_fast/ops/triton/style_distance.py), registered here with
``torch.library.triton_op`` with the same fake kernels as the C++ ops and the Python twin of their autograd, whenever
triton imports (independently of the compiled extension). They support float16, bfloat16, float32
and float64 features, any strides and channels_last.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor

from . import library
from .checks import check_eps, check_image, check_like
from .scale_grad import check_first_order, check_no_grad, grad_buffer_dtype, keep_inputs, saved_grad

GRAM_OP = "inpaint_fast::gram"
GRAM_BACKWARD_OP = "inpaint_fast::gram_backward"
STYLE_OP = "inpaint_fast::style_distance"
# The Triton twins (inpaint_fast/ops/triton/style_distance.py): same schemas and semantics.
GRAM_TRITON_OP = "inpaint_fast::gram_triton"
GRAM_BACKWARD_TRITON_OP = "inpaint_fast::gram_backward_triton"
STYLE_TRITON_OP = "inpaint_fast::style_distance_triton"
EPS = 1e-8

_WEIGHT_NO_GRAD = ("a weight that requires grad must go through the reference implementation "
                   "(inpaint_fast.use_backend('reference'))")
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
    return loss if loss.dtype == feat_pred.dtype else loss.to(feat_pred.dtype)


# ------------------------------------------------------------------------------ fake kernels

def _loss_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def grad_layout(feat: Tensor) -> torch.memory_format:
    """The layout rule of the gradients w.r.t. features (csrc/ops/style_distance.h): feat's layout when
    channels_last-contiguous (and not also NCHW-contiguous), else NCHW."""
    if not feat.is_contiguous() and feat.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    return torch.contiguous_format


def check_weight(op: str, weight: Optional[Tensor], feat: Tensor) -> None:
    """``weight`` None or (N|1, 1, H, W) of feat's dtype and device."""
    if weight is None:
        return
    torch._check(weight.dim() == 4 and weight.size(0) in (1, feat.size(0)) and weight.size(1) == 1
                 and weight.size(2) == feat.size(2) and weight.size(3) == feat.size(3),
                 lambda: f"{op}: weight shape {tuple(weight.shape)} must be (N|1, 1, H, W) for features of "
                         f"shape {tuple(feat.shape)}")
    torch._check(weight.dtype == feat.dtype,
                 lambda: f"{op}: weight dtype {weight.dtype} must equal the features' dtype {feat.dtype}")
    torch._check(weight.device == feat.device,
                 lambda: f"{op}: weight must be on the features' device {feat.device}; got {weight.device}")


def check_gram_inputs(op: str, feat: Tensor, weight: Optional[Tensor], eps: float) -> None:
    """gram's checks (csrc/ops/style_distance.h ``check_gram_inputs``)."""
    check_image(feat, op, "feat")
    check_weight(op, weight, feat)
    check_eps(eps, op, positive=True)


def check_gram_backward_inputs(op: str, grad: Tensor, feat: Tensor, weight: Optional[Tensor], eps: float) -> None:
    """gram_backward's checks (csrc/ops/style_distance.h ``check_gram_backward_inputs``)."""
    check_gram_inputs(op, feat, weight, eps)
    n, c = feat.shape[0], feat.shape[1]
    torch._check(grad.dim() == 3 and grad.size(0) == n and grad.size(1) == c and grad.size(2) == c,
                 lambda: f"{op}: grad must have shape (N, C, C) = ({n}, {c}, {c}); got {tuple(grad.shape)}")
    torch._check(grad.dtype.is_floating_point, lambda: f"{op}: grad must be floating; got {grad.dtype}")
    torch._check(grad.device == feat.device,
                 lambda: f"{op}: grad must be on feat's device {feat.device}; got {grad.device}")


def check_style_inputs(op: str, feat_pred: Tensor, feat_target: Tensor, weight: Optional[Tensor], eps: float) -> None:
    """style_distance's checks (csrc/ops/style_distance.h ``check_style_inputs``)."""
    check_image(feat_pred, op, "feat_pred")
    check_like(feat_target, feat_pred, op, "feat_target", "feat_pred")
    check_weight(op, weight, feat_pred)
    check_eps(eps, op, positive=True)


def _fake_gram(feat: Tensor, weight: Optional[Tensor], eps: float, op: str = GRAM_OP) -> Tensor:
    check_gram_inputs(op, feat, weight, eps)
    n, c = feat.shape[0], feat.shape[1]
    return feat.new_empty((n, c, c))


def _fake_gram_backward(grad: Tensor, feat: Tensor, weight: Optional[Tensor], eps: float,
                        op: str = GRAM_BACKWARD_OP) -> Tensor:
    check_gram_backward_inputs(op, grad, feat, weight, eps)
    return torch.empty_like(feat, memory_format=grad_layout(feat))


def _fake_style(feat_pred: Tensor, feat_target: Tensor, weight: Optional[Tensor], eps: float,
                compute_grad: bool, op: str = STYLE_OP) -> Tuple[Tensor, Tensor]:
    check_style_inputs(op, feat_pred, feat_target, weight, eps)
    loss = feat_pred.new_empty((), dtype=_loss_dtype(feat_pred.dtype))
    grad_dtype = grad_buffer_dtype(feat_pred.dtype)
    grad = (torch.empty_like(feat_pred, dtype=grad_dtype, memory_format=grad_layout(feat_pred)) if compute_grad
            else feat_pred.new_empty((0,), dtype=grad_dtype))
    return loss, grad


# ------------------------------------------------------------------------------ Triton ops

def _gram_triton(feat: Tensor, weight: Optional[Tensor], eps: float) -> Tensor:
    check_gram_inputs(GRAM_TRITON_OP, feat, weight, eps)
    return _triton_kernels.gram(feat, weight, eps)


def _gram_backward_triton(grad: Tensor, feat: Tensor, weight: Optional[Tensor], eps: float) -> Tensor:
    check_gram_backward_inputs(GRAM_BACKWARD_TRITON_OP, grad, feat, weight, eps)
    return _triton_kernels.gram_backward(grad, feat, weight, eps, grad_layout=grad_layout(feat))


def _style_distance_triton(feat_pred: Tensor, feat_target: Tensor, weight: Optional[Tensor], eps: float,
                           compute_grad: bool) -> Tuple[Tensor, Tensor]:
    check_style_inputs(STYLE_TRITON_OP, feat_pred, feat_target, weight, eps)
    return _triton_kernels.style_distance(feat_pred, feat_target, weight, eps, compute_grad,
                                          grad_layout=grad_layout(feat_pred))


# ------------------------------------------------------------------------------ autograd

def _gram_setup_context(ctx, inputs, output, op: str) -> None:
    feat, weight, eps = inputs
    check_no_grad(op, weight, "weight", _WEIGHT_NO_GRAD)
    ctx.save_for_backward(feat, weight)
    ctx.eps = eps


def _gram_backward(ctx, grad: Tensor):
    feat, weight = ctx.saved_tensors
    grad_feat = None
    if ctx.needs_input_grad[0]:
        grad_feat = torch.ops.inpaint_fast.gram_backward_triton.default(grad, feat, weight, ctx.eps)
    return grad_feat, None, None


def _no_setup(ctx, inputs, output, op: str) -> None:
    pass


def _gram_double_backward(ctx, grad: Tensor):
    raise RuntimeError(_DOUBLE_BACKWARD.format(op="gram"))


def _style_setup_context(ctx, inputs, output, op: str) -> None:
    feat_pred, feat_target, weight, eps, compute_grad = inputs
    check_no_grad(op, weight, "weight", _WEIGHT_NO_GRAD)
    if feat_target.requires_grad:
        raise RuntimeError(
            f"{op} treats feat_target as a constant (the style loss detaches the "
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


if library.load_error() is None:  # the C++ ops' autograd is C++ (csrc/ops/autograd/style_distance_kernel.cpp)
    library.register(GRAM_OP, _fake_gram)
    library.register(GRAM_BACKWARD_OP, _fake_gram_backward)
    library.register(STYLE_OP, _fake_style)

if "triton" in library.kernels("style_distance"):
    # The Triton ops (triton_op on a GPU, custom_op interpreted: triton/_common.define_op), with the same
    # checks, layout rule, fake kernels and autograd; registered whether or not the extension is built.
    from .triton import style_distance as _triton_kernels
    from .triton._common import define_op

    define_op(GRAM_TRITON_OP, _gram_triton)
    define_op(GRAM_BACKWARD_TRITON_OP, _gram_backward_triton)
    define_op(STYLE_TRITON_OP, _style_distance_triton)
    library.register(GRAM_TRITON_OP, _fake_gram, _gram_backward, _gram_setup_context)
    library.register(GRAM_BACKWARD_TRITON_OP, _fake_gram_backward, _gram_double_backward, _no_setup)
    library.register(STYLE_TRITON_OP, _fake_style, _style_backward, _style_setup_context)
