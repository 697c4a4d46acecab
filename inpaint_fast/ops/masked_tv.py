"""torch.library glue of ``inpaint_fast::masked_tv`` (C++ schema: csrc/ops/masked_tv.cpp).

:func:`masked_tv` is masked anisotropic total variation of ``img`` (N, C, H, W) in one stencil pass
that also writes the gradient (float32 for float16 images): a vertical pair (i, i+1) counts with weight
``r(i, j) r(i+1, j)``, a horizontal pair with ``r(i, j) r(i, j+1)``, the error being ``|d|`` (p = 1) or
``d**2`` (p = 2). The region weight ``r`` is 1 ('all'), the known mask m ('known'), 1 - m ('hole') or
the hole dilated by one pixel ('hole_dilated', ``inpaint_fast.reference.tv.dilate(1 - m)``, the PConv
paper's region P). ``normalize``: 'mask' divides each direction by its pair-weight area over the
broadcast (N, C, ...) shape (``max(area, eps)``), 'all' by its pair count, 'none' is the sum.
It equals ``inpaint_fast.reference.tv.total_variation(img, r, p=p, normalize=..., reduction=...)``.

Autograd: the op returns ``(loss, grad_img)``; the gradient is computed in the forward and saved;
backward only scales it by ``grad_output`` (``scale_grad.saved_grad``: in place, nothing done when it is
1; a second backward of the graph recomputes). Double backward (``create_graph=True``) raises. The mask is never
differentiated: a mask that requires grad is an error (callers route it to the reference).

Layouts: NCHW images with contiguous (H, W) planes, and channels_last images of 2 to 7 channels with
a mask shared by the channels, are read in place (the gradient then has img's layout); others are
copied to NCHW first (NCHW gradient).

Inputs are expected to be validated and 4-D already (``inpaint_fast._validation``); the C++ kernel
only re-checks them (RuntimeError). When the extension is not built this module registers nothing.
"""
from __future__ import annotations

import functools
from typing import Optional

import torch
from torch import Tensor

from .. import _extension
from .scale_grad import check_first_order, grad_buffer_dtype, keep_inputs, saved_grad

OP = "inpaint_fast::masked_tv"
REGIONS = {"all": 0, "known": 1, "hole": 2, "hole_dilated": 3}
NORMALIZE = {"none": 0, "mask": 1, "all": 2}

def masked_tv(img: Tensor, mask: Optional[Tensor], *, mask_is_hole: bool, region: str, p: int,
              normalize: str, eps: float, backend: str = "cpu") -> Tensor:
    """Masked total variation of ``img`` (N, C, H, W) as a 0-dim tensor of img's dtype (see module doc).

    ``mask``: None (only for region='all') or (N|1, C|1, H, W), bool/uint8 or img's dtype; it holds the
    known mask m, or the hole h = 1 - m when ``mask_is_hole``. ``region`` in 'all', 'known', 'hole',
    'hole_dilated'; ``p`` in 1, 2; ``normalize`` in 'mask', 'all', 'none' ('none' = the sum).
    Differentiable w.r.t. img. ``backend``: 'cpu'/'cuda' run the C++ op, 'triton' the Triton op.
    """
    compute_grad = torch.is_grad_enabled() and img.requires_grad
    op = torch.ops.inpaint_fast.masked_tv_triton if backend == "triton" else torch.ops.inpaint_fast.masked_tv
    loss, _ = op.default(
        img, mask, bool(mask_is_hole), REGIONS[region], int(p), NORMALIZE[normalize], float(eps), compute_grad)
    return loss.to(img.dtype)


MAX_NATIVE_CHANNELS_LAST = 7  # kMaxNativeChannelsLast of csrc/ops/masked_tv.h


def native_channels_last(img: Tensor, mask: Optional[Tensor], region: int) -> bool:
    """Whether the kernel reads img in place as channels_last and returns a channels_last gradient
    (else it works on NCHW planes, copying img if its planes are not contiguous, and the gradient is
    NCHW-contiguous). The C++ kernel's ``native_channels_last``, decided the same way."""
    _, c, h, w = img.shape
    s = img.stride()
    planes_contiguous = (w == 1 or s[3] == 1) and (h == 1 or s[2] == w)
    if c < 2 or c > MAX_NATIVE_CHANNELS_LAST or planes_contiguous:
        return False
    if s[1] != 1 or (w > 1 and s[3] != c) or (h > 1 and s[2] != w * c):
        return False
    return region == 0 or mask is None or mask.shape[1] == 1 or mask.stride(1) == 0


def _fake(img: Tensor, mask: Optional[Tensor], mask_is_hole: bool, region: int, p: int, normalize: int,
          eps: float, compute_grad: bool):
    torch._check(img.dim() == 4, lambda: f"img must be 4-D (N, C, H, W); got {tuple(img.shape)}")
    torch._check(region == 0 or mask is not None, lambda: f"region {region} needs a mask")
    loss = img.new_empty((), dtype=torch.float64 if img.dtype == torch.float64 else torch.float32)
    if compute_grad:
        layout = torch.channels_last if native_channels_last(img, mask, region) else torch.contiguous_format
        grad = torch.empty_like(img, dtype=grad_buffer_dtype(img.dtype), memory_format=layout)
    else:
        grad = img.new_empty((0,), dtype=grad_buffer_dtype(img.dtype))
    return loss, grad


def _setup_context(ctx, inputs, output, op: str = OP) -> None:
    img, mask, _, _, p, _, _, compute_grad = inputs
    if mask is not None and mask.requires_grad:
        raise RuntimeError(
            "inpaint_fast::masked_tv does not differentiate its mask; a mask that requires grad must go "
            "through the reference implementation (inpaint_fast.reference)")
    grad = output[1]
    ctx.mark_non_differentiable(grad)
    ctx.set_materialize_grads(False)  # no full-size zeros for the gradient output's (absent) gradient
    ctx.compute_grad = compute_grad
    ctx.img_dtype = img.dtype
    ctx.save_for_backward(grad)
    keep_inputs(ctx, op, inputs)


def _backward(ctx, grad_loss: Optional[Tensor], grad_grad: Optional[Tensor]):
    check_first_order("masked_tv")
    if grad_loss is None:
        return (None,) * 8
    if not ctx.compute_grad:
        raise RuntimeError("inpaint_fast::masked_tv was called with compute_grad=False: it has no gradient "
                           "(call it through inpaint_fast.ops.masked_tv.masked_tv)")
    (grad,) = saved_grad(ctx, lambda: ctx.saved_tensors, grad_loss, lambda outputs: outputs[1:], dtype=ctx.img_dtype)
    return grad, None, None, None, None, None, None, None


if _extension.load_error() is None:
    torch.library.register_fake(OP)(_fake)
    torch.library.register_autograd(OP, _backward, setup_context=_setup_context)

# The Triton twin ``inpaint_fast::masked_tv_triton`` (inpaint_fast/triton/masked_tv.py): same schema,
# the same fake kernel and autograd. Registered whenever triton imports, built extension or not.
OP_TRITON = "inpaint_fast::masked_tv_triton"
if "triton" in _extension.kernels("masked_tv"):
    from ..triton import masked_tv as _triton_masked_tv
    from ..triton._common import define_op

    define_op(OP_TRITON, _triton_masked_tv.masked_tv_triton)

    torch.library.register_fake(OP_TRITON)(_fake)
    torch.library.register_autograd(OP_TRITON, _backward, setup_context=functools.partial(_setup_context, op=OP_TRITON))
