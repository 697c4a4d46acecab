"""torch.library glue of ``inpaint_fast::spectral_l1`` (C++ schema: csrc/ops/spectral_l1.cpp) and the
frequency loss built on it.

``spectral_l1(z_pred, z_target, scale, compute_grad_pred, compute_grad_target) -> (loss, grad_z_pred,
grad_z_target)`` is the part of the frequency loss after the FFT, in one pass over both complex
spectra: with ``a = log1p|z_pred|`` and ``b = log1p|z_target|``, ``loss = scale * sum|a - b|`` (float32 for
complex64, float64 for complex128) and, when asked, the gradients w.r.t. the spectra (PyTorch's
convention for a real loss of a complex input, dL/dRe + i dL/dIm):
``grad_z_pred = scale * sign(a - b) / (1 + |z_pred|) * z_pred / |z_pred|`` (0 where |z_pred| = 0),
``grad_z_target`` likewise with the opposite sign. A gradient not asked for is a 0-element tensor.

Autograd: the op's gradient outputs are saved and marked non-differentiable;
backward only scales them by ``grad_output`` (in place, nothing done when it is 1; a second backward of
the graph recomputes: csrc/common/saved_grad.h for the C++ op, ``scale_grad.saved_grad`` for the Triton op). Double backward (``create_graph=True``) raises.

:func:`frequency_l1` is the whole frequency loss: ``torch.fft.rfft2(., norm='ortho')`` of both
images (float16/bfloat16 are transformed in float32, as the reference does), this op, and torch's
own FFT backward for the gradients w.r.t. the images.

Inputs are expected to be validated already (``inpaint_fast._validation``); the C++ kernel only
re-checks them (RuntimeError). When the extension is not built this module registers no C++ op glue.
When triton imports, it also registers ``inpaint_fast::spectral_l1_triton`` (same schema, semantics,
fake kernel and autograd; kernels in inpaint_fast/ops/triton/spectral_l1.py) with ``torch.library.triton_op``
(an opaque ``custom_op`` under Triton's interpreter).
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor

from . import library
from .checks import check_like
from .scale_grad import check_first_order, keep_inputs, saved_grad
from ..reference.pixel import accumulate_dtype

OP = "inpaint_fast::spectral_l1"
OP_TRITON = OP + "_triton"
REDUCTIONS = ("mean", "sum")


def check_inputs(op: str, z_pred: Tensor, z_target: Tensor) -> None:
    """The op's checks (csrc/ops/spectral_l1.h)."""
    torch._check(z_pred.dtype in (torch.complex64, torch.complex128),
                 lambda: f"{op}: z_pred must be complex64 or complex128; got {z_pred.dtype}")
    check_like(z_target, z_pred, op, "z_target", "z_pred")


def _loss_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.complex128 else torch.float32


def spectral_l1(z_pred: Tensor, z_target: Tensor, scale: float, compute_grad_pred: bool,
                compute_grad_target: bool, backend: str = "cpu") -> Tuple[Tensor, Tensor, Tensor]:
    """``(scale * sum|log1p|z_pred| - log1p|z_target||, grad_z_pred, grad_z_target)`` in one pass
    (``backend`` 'cpu'/'cuda': the C++ op; 'triton': the Triton op)."""
    op = torch.ops.inpaint_fast.spectral_l1_triton if backend == "triton" else torch.ops.inpaint_fast.spectral_l1
    return op.default(z_pred, z_target, scale, compute_grad_pred, compute_grad_target)


def frequency_l1(pred: Tensor, target: Tensor, reduction: str = "mean", backend: str = "cpu") -> Tensor:
    """``reduce |log1p|F(pred)| - log1p|F(target)||`` over the (N, C, H, W//2+1) half spectrum,
    F = ``torch.fft.rfft2(., norm='ortho')``; reduction 'mean' (the notebook's) or 'sum'.

    The loss has pred's dtype. Gradients reach ``pred``, and ``target`` when it requires grad (the
    notebook does not detach it), through the op's autograd and torch.fft's backward.
    """
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {', '.join(map(repr, REDUCTIONS))}; got {reduction!r}")
    dtype, fft_dtype = pred.dtype, accumulate_dtype(pred.dtype)
    if fft_dtype != dtype:
        pred, target = pred.to(fft_dtype), target.to(fft_dtype)
    z_pred = torch.fft.rfft2(pred, norm="ortho")
    z_target = torch.fft.rfft2(target, norm="ortho")
    grad_mode = torch.is_grad_enabled()
    scale = 1.0 / max(z_pred.numel(), 1) if reduction == "mean" else 1.0
    loss, _, _ = spectral_l1(z_pred, z_target, scale, grad_mode and z_pred.requires_grad,
                             grad_mode and z_target.requires_grad, backend)
    return loss if loss.dtype == dtype else loss.to(dtype)


def _fake(z_pred: Tensor, z_target: Tensor, scale: float, compute_grad_pred: bool, compute_grad_target: bool,
          op: str = OP):
    check_inputs(op, z_pred, z_target)

    def grad(wanted: bool) -> Tensor:
        return z_pred.new_empty(z_pred.shape if wanted else (0,))  # contiguous, as the kernel's

    return z_pred.new_empty((), dtype=_loss_dtype(z_pred.dtype)), grad(compute_grad_pred), grad(compute_grad_target)


def _setup_context(ctx, inputs, output, op: str = OP) -> None:
    _, _, _, compute_grad_pred, compute_grad_target = inputs
    _, grad_z_pred, grad_z_target = output
    ctx.mark_non_differentiable(grad_z_pred, grad_z_target)
    ctx.set_materialize_grads(False)  # no zeros for the gradient outputs' (absent) gradients
    ctx.save_for_backward(grad_z_pred, grad_z_target)
    ctx.computed = (compute_grad_pred, compute_grad_target)
    keep_inputs(ctx, op, inputs)


def _backward(ctx, grad_loss: Optional[Tensor], _grad_gp: Optional[Tensor], _grad_gt: Optional[Tensor]):
    check_first_order("spectral_l1")
    need = ctx.needs_input_grad[:2]
    if grad_loss is None:
        return None, None, None, None, None
    for name, needed, computed in zip(("z_pred", "z_target"), need, ctx.computed):
        if needed and not computed:
            raise RuntimeError(f"inpaint_fast::spectral_l1: a gradient w.r.t. {name} is needed but the op "
                               f"was called with compute_grad_{name[2:]}=False")
    grads = iter(saved_grad(ctx, lambda: [g for g, n in zip(ctx.saved_tensors, need) if n], grad_loss,
                            lambda outputs: [g for g, n in zip(outputs[1:], need) if n]))
    return (next(grads) if need[0] else None), (next(grads) if need[1] else None), None, None, None


def _spectral_l1_triton(z_pred: Tensor, z_target: Tensor, scale: float, compute_grad_pred: bool,
                        compute_grad_target: bool) -> Tuple[Tensor, Tensor, Tensor]:
    check_inputs(OP_TRITON, z_pred, z_target)
    return _triton_kernels.spectral_l1(z_pred, z_target, scale, compute_grad_pred, compute_grad_target)


if library.load_error() is None:  # the C++ op's autograd is C++ (csrc/ops/autograd/spectral_l1_kernel.cpp)
    library.register(OP, _fake)

if "triton" in library.kernels("spectral_l1"):
    # The Triton op (triton_op on a GPU, custom_op interpreted: triton/_common.define_op), with the same
    # checks, fake kernel and autograd; registered whether or not the extension is built.
    from .triton import spectral_l1 as _triton_kernels
    from .triton._common import define_op

    define_op(OP_TRITON, _spectral_l1_triton)
    library.register(OP_TRITON, _fake, _backward, _setup_context)
