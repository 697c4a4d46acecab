"""What the Triton modules share: whether their kernels run in Triton's interpreter, how a launcher
becomes an ``inpaint_fast::<op>_triton`` op, how a launcher reads a broadcast stride, and how a kernel
reads a mask value as a weight."""
from __future__ import annotations

import os
from typing import Callable

import torch
import triton
import triton.language as tl

# TRITON_INTERPRET=1 when triton.jit decorates the kernels (at import): they then run on CPU tensors,
# each program interpreted in Python (fewer, bigger programs pay off there).
INTERPRETED = os.environ.get("TRITON_INTERPRET") == "1"


def launch(kernel):
    """What a launcher indexes with its grid, ``launch(kernel)[grid](...)``: on a GPU
    ``torch.library.wrap_triton(kernel)``, which torch.compile traces into; interpreted, the kernel itself
    (torch 2.11's wrap_triton refuses an interpreted kernel; 2.14's hands it back)."""
    return kernel if INTERPRETED else torch.library.wrap_triton(kernel)


def define_op(name: str, fn: Callable):
    """``fn`` (a launcher of kernels through :func:`launch`) as the op ``name``, its schema inferred
    from ``fn``'s annotations (torch 2.11's ``triton_op`` infers it even when given one; they must be
    complete, and tests/test_backend.py checks them against the C++ op's schema).

    On a GPU a ``torch.library.triton_op``: torch.compile traces into it and Inductor sees the
    kernels. Interpreted, ``launch`` hands back the bare interpreted kernel, which AOT tracing
    would launch on fake tensors (opcheck and torch.compile fail): there it is an opaque
    ``custom_op``, traced through its fake kernel. The fake kernel and autograd are registered by
    ``inpaint_fast/ops/<op>.py``, shared with the C++ op.
    """
    make = torch.library.custom_op if INTERPRETED else torch.library.triton_op
    return make(name, fn, mutates_args=())


def bstride(t: torch.Tensor, dim: int) -> int:
    """The stride of dimension ``dim`` as a broadcast: 0 where it has size 1 or is expanded (stride 0), so
    that one plane serves every index; else the stride (csrc/common/layout.h ``bstride``)."""
    return 0 if t.shape[dim] == 1 else int(t.stride(dim))


@triton.jit
def mask_weight(m, dtype: tl.constexpr):
    """Loaded mask values as weights of ``dtype``: a bool/uint8 mask is binary (any non-zero value is 1,
    so a 0/255 mask weighs 0/1), a floating mask is a soft weight (its value)."""
    if m.dtype.is_floating():
        w = m.to(dtype)
    else:
        w = (m != 0).to(dtype)
    return w
