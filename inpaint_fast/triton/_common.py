"""What the Triton modules share: whether their kernels run in Triton's interpreter, and how a
launcher becomes an ``inpaint_fast::<op>_triton`` op."""
from __future__ import annotations

import os
from typing import Callable, Optional

import torch

# TRITON_INTERPRET=1 when triton.jit decorates the kernels (at import): they then run on CPU tensors,
# each program interpreted in Python (fewer, bigger programs pay off there).
INTERPRETED = os.environ.get("TRITON_INTERPRET") == "1"


def define_op(name: str, fn: Callable, schema: Optional[str] = None):
    """``fn`` (a launcher using ``torch.library.wrap_triton``) as the op ``name``.

    On a GPU a ``torch.library.triton_op``: torch.compile traces into it and Inductor sees the
    kernels. Interpreted, ``wrap_triton`` hands back the bare interpreted kernel, which AOT tracing
    would launch on fake tensors (opcheck and torch.compile fail): there it is an opaque
    ``custom_op``, traced through its fake kernel. The fake kernel and autograd are registered by
    ``inpaint_fast/ops/<op>.py``, shared with the C++ op.
    """
    make = torch.library.custom_op if INTERPRETED else torch.library.triton_op
    return make(name, fn, mutates_args=(), schema=schema)
