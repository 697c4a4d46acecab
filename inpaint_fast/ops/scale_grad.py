"""The backward shared by the Triton ops that write their gradient in the forward pass, and the glue of
``inpaint_fast::scale_grad_`` (schema: csrc/ops/scale_grad.cpp). The C++ ops follow the same rules in
C++ (csrc/common/saved_grad.h, their autograd: csrc/ops/autograd/).

A fused forward writes d loss / d input for ``grad_output == 1`` into a buffer it saves. Its backward
(:func:`saved_grad`) must return ``buffer * grad_output`` without a host sync, and cheaply in the
common case ``loss.backward()`` (grad_output 1):

- The first backward through a graph scales the buffer *in place* with ``scale_grad_``, which leaves
  it untouched when grad_output is 1 (tested on the device on a GPU) and hands it over: no copy, no
  second full-size buffer, and no pass over it for grad_output 1.
- A later backward through the same graph (``retain_graph=True``, ``gradcheck``) must not reuse that
  buffer (it may be scaled, and handed out already): the op's ``recompute`` gives a fresh one, from the
  inputs the forward kept (an input changed in place since then is an error, as in autograd).
- Traced (``torch.compile``, fake tensors, functorch) or where no ``scale_grad_`` kernel is built for the
  device, the product is taken out of place (the compiler fuses it where it can).
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence

import torch
from torch import Tensor

from . import library


def grad_buffer_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype of the gradient buffer a fused forward writes for inputs of ``dtype``: float32 for
    float16 (the gradient for grad_output 1, e.g. 1 / numel, is subnormal in float16 before a loss
    scaler multiplies it; :func:`saved_grad` casts after the multiplication), else ``dtype``."""
    return torch.float32 if dtype == torch.float16 else dtype


def check_first_order(op: str) -> None:
    """Backward of a fused op returns a constant gradient: refuse ``create_graph=True`` rather than
    return silently wrong second derivatives."""
    if torch.is_grad_enabled():
        raise RuntimeError(f"inpaint_fast::{op} does not support double backward (create_graph=True); "
                           "use inpaint_fast.use_backend('reference') for higher-order gradients")


def check_no_grad(op: str, t: Optional[Tensor], name: str, why: str) -> None:
    """An input the op does not differentiate (a mask, a weight) must not require grad (the twin of
    csrc/common/saved_grad.h ``check_no_grad``)."""
    if t is not None and t.requires_grad:
        raise RuntimeError(f"{op} does not differentiate its {name}; {why}")


def _eager(t: Tensor) -> bool:
    """An ordinary tensor in eager mode (not fake/functional/functorch, no dispatch mode, no compile)."""
    return (type(t) is Tensor and not torch.compiler.is_compiling()
            and torch._C._len_torch_dispatch_stack() == 0
            and not torch._C._functorch.is_functorch_wrapped_tensor(t))


def _real(t: Tensor) -> Tensor:
    return torch.view_as_real(t) if t.is_complex() else t


def scale_grad_(grad: Tensor, scale: Tensor) -> Tensor:
    """``grad *= scale`` in place, skipped when ``scale == 1``; returns ``grad``. ``grad``: a dense
    floating or complex tensor; ``scale``: a one-element tensor on its device."""
    with torch.autograd._unsafe_preserve_version_counter(grad):
        # The buffer is also saved for backward: keep its version so that a later backward of the
        # graph can still unpack the saved tensors (it then recomputes instead of reading it).
        torch.ops.inpaint_fast.scale_grad_.default(_real(grad), scale)
    return grad


def keep_inputs(ctx, op: str, inputs: Sequence) -> None:
    """In setup_context: keep the forward's inputs and the op (e.g. 'inpaint_fast::masked_tv') on ``ctx``
    for :func:`saved_grad`'s recompute (references, no copies)."""
    ctx.recompute_op = op
    ctx.recompute_inputs = tuple(inputs)
    ctx.recompute_versions = tuple(t._version if isinstance(t, Tensor) else None for t in inputs)
    ctx.grad_handed_out = False


def _recompute(ctx) -> tuple:
    """The op run again on the kept inputs, checked to be unchanged since the forward."""
    for t, version in zip(ctx.recompute_inputs, ctx.recompute_versions):
        if isinstance(t, Tensor) and t._version != version:
            raise RuntimeError(f"{ctx.recompute_op}: an input was modified in place after the forward pass; "
                               "a second backward through the graph needs it unchanged")
    namespace, name = ctx.recompute_op.split("::")
    return getattr(getattr(torch.ops, namespace), name).default(*ctx.recompute_inputs)


def saved_grad(ctx, saved: Callable[[], Sequence[Tensor]], grad_output: Tensor,
               pick: Callable[[tuple], Sequence[Tensor]], dtype: Optional[torch.dtype] = None) -> list:
    """``[g * grad_output for g in saved()]`` for one backward call (see the module doc). ``saved``: gives
    the gradient buffers the forward wrote (unpacked only by the first backward: the user may have changed
    a handed-out buffer in place since); ``pick(outputs)``: the same buffers among the op's outputs, for
    the recompute that a later backward of the graph runs (:func:`keep_inputs` must have run). ``dtype``:
    the gradients' dtype when a buffer is wider (float32 for float16 inputs), cast after the scaling."""
    if ctx.grad_handed_out:
        with torch.no_grad():
            fresh = pick(_recompute(ctx))
        grads = [_scaled_copy(g, grad_output) for g in fresh]
    else:
        ctx.grad_handed_out = True
        buffers = saved()
        if not (_eager(grad_output) and all(_eager(g) for g in buffers)):
            grads = [_scaled_copy(g, grad_output) for g in buffers]
        else:
            grads = [_scale_in_place(g, grad_output) for g in buffers]
    return grads if dtype is None else [g.to(dtype) for g in grads]


def _scaled_copy(g: Tensor, grad_output: Tensor) -> Tensor:
    if g.is_complex():
        return torch.view_as_complex(torch.view_as_real(g) * grad_output)
    return g * grad_output


def _scale_in_place(g: Tensor, grad_output: Tensor) -> Tensor:
    if g.numel() == 0 or g.device.type not in library.kernels("scale_grad_"):
        return _scaled_copy(g, grad_output)
    return scale_grad_(g, grad_output)


if library.load_error() is None:
    torch.library.register_fake("inpaint_fast::scale_grad_")(lambda grad, scale: None)
