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
backward only scales it by ``grad_output`` (in place, nothing done when it is 1; a second backward of the
graph recomputes: csrc/common/saved_grad.h for the C++ op, ``scale_grad.saved_grad`` for the Triton op). Double backward (``create_graph=True``) raises. The mask is never
differentiated: a mask that requires grad is an error (callers route it to the reference).

Layouts: NCHW images with contiguous (H, W) planes, and channels_last images of 2 to 7 channels with
a mask shared by the channels, are read in place (the gradient then has img's layout); others are
copied to NCHW first (NCHW gradient).

Inputs are expected to be validated and 4-D already (``inpaint_fast._validation``); the C++ kernel
only re-checks them (RuntimeError), and checks a floating mask's values in [0, 1] (ValueError;
``checks.check_mask_values``), which the public losses leave to the op. When the extension is not built
this module registers nothing.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor

from . import library
from .checks import NORMALIZE_CODES, check_code, check_eps, check_image, check_mask, check_mask_values
from .scale_grad import check_first_order, check_no_grad, grad_buffer_dtype, keep_inputs, saved_grad

OP = "inpaint_fast::masked_tv"
OP_TRITON = OP + "_triton"
REGION_CODES = {"all": 0, "known": 1, "hole": 2, "hole_dilated": 3}


def check_inputs(op: str, img: Tensor, mask: Optional[Tensor], region: int, p: int, normalize: int,
                 eps: float) -> None:
    """The op's checks (csrc/ops/masked_tv.h ``check_inputs``)."""
    check_image(img, op, "img")
    check_code(region, REGION_CODES, op, "region")
    torch._check(p in (1, 2), lambda: f"{op}: p must be 1 or 2; got {p}")
    check_code(normalize, NORMALIZE_CODES, op, "normalize")
    check_eps(eps, op)
    torch._check(region == 0 or mask is not None, lambda: f"{op}: region {region} needs a mask; got None")
    check_mask(mask, img, op, "img")


def masked_tv(img: Tensor, mask: Optional[Tensor], *, mask_is_hole: bool, region: str, p: int,
              normalize: str, eps: float, backend: str = "cpu") -> Tensor:
    """Masked total variation of ``img`` (N, C, H, W) as a 0-dim tensor of img's dtype (see module doc).

    ``mask``: None (only for region='all') or (N|1, C|1, H, W), bool/uint8 or img's dtype; it holds the
    known mask m, or the hole h = 1 - m when ``mask_is_hole``. ``region`` in 'all', 'known', 'hole',
    'hole_dilated'; ``p`` in 1, 2; ``normalize`` in 'mask', 'all', 'sum'.
    Differentiable w.r.t. img. ``backend``: 'cpu'/'cuda' run the C++ op, 'triton' the Triton op.
    """
    compute_grad = torch.is_grad_enabled() and img.requires_grad
    op = torch.ops.inpaint_fast.masked_tv_triton if backend == "triton" else torch.ops.inpaint_fast.masked_tv
    loss, _ = op.default(
        img, mask, bool(mask_is_hole), REGION_CODES[region], int(p), NORMALIZE_CODES[normalize], float(eps),
        compute_grad)
    return loss if loss.dtype == img.dtype else loss.to(img.dtype)


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
          eps: float, compute_grad: bool, op: str = OP):
    check_inputs(op, img, mask, region, p, normalize, eps)
    loss = img.new_empty((), dtype=torch.float64 if img.dtype == torch.float64 else torch.float32)
    if compute_grad:
        layout = torch.channels_last if native_channels_last(img, mask, region) else torch.contiguous_format
        grad = torch.empty_like(img, dtype=grad_buffer_dtype(img.dtype), memory_format=layout)
    else:
        grad = img.new_empty((0,), dtype=grad_buffer_dtype(img.dtype))
    return loss, grad


def _setup_context(ctx, inputs, output, op: str = OP) -> None:
    img, mask, _, _, p, _, _, compute_grad = inputs
    check_no_grad(op, mask, "mask",
                  "a mask that requires grad must go through the reference implementation (inpaint_fast.reference)")
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


def _masked_tv_triton(img: Tensor, mask: Optional[Tensor], mask_is_hole: bool, region: int, p: int, normalize: int,
                      eps: float, compute_grad: bool) -> Tuple[Tensor, Tensor]:
    check_inputs(OP_TRITON, img, mask, region, p, normalize, eps)
    check_mask_values(mask, mask_is_hole)
    return _triton_kernels.masked_tv(img, mask, mask_is_hole, region, p, normalize, eps, compute_grad,
                                     channels_last=native_channels_last(img, mask, region))


if library.load_error() is None:  # the C++ op's autograd is C++ (csrc/ops/autograd/masked_tv_kernel.cpp)
    library.register(OP, _fake)

if "triton" in library.kernels("masked_tv"):
    # The Triton op (triton_op on a GPU, custom_op interpreted: triton/_common.define_op), with the same
    # checks, layout rule, fake kernel and autograd; registered whether or not the extension is built.
    from .triton import masked_tv as _triton_kernels
    from .triton._common import define_op

    define_op(OP_TRITON, _masked_tv_triton)
    library.register(OP_TRITON, _fake, _backward, _setup_context)
