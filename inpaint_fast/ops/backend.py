"""Which implementation runs a fused op: 'reference' | 'cpu' | 'cuda' | 'triton'.

By default a call uses the compiled kernel for its device when one is built (C++ on CPU; CUDA C++,
then Triton, on GPU) and the pure-PyTorch reference otherwise. ``use_backend(name)`` (a context
manager, for the calling thread only) or the environment variable ``INPAINT_FAST_BACKEND`` (read at
import, for every thread) force one. Forcing a backend that is
not available here is an error, never a silent fallback; an op that the forced backend has no
kernel for yet runs the reference (``python -m inpaint_fast info`` lists the kernels), and so does
every op inside a ``torch.func`` transform (grad, vmap, jacrev ...), which the fused ops' autograd
does not support.
"""
from __future__ import annotations

import contextlib
import os
import threading
from typing import Dict, Iterator, Optional

import torch

from . import library

BACKENDS = ("reference", "cpu", "cuda", "triton")
FUSED_OPS = ("masked_error", "masked_tv", "q_sample", "spectral_l1", "style_distance")  # the ops that dispatch through choose()
ENV_VAR = "INPAINT_FAST_BACKEND"

_local = threading.local()  # .forced: this thread's stack of names set by use_backend()
_ENV_NAME = os.environ.get(ENV_VAR) or None  # read once, checked at first use


def _compute_availability() -> Dict[str, Optional[str]]:
    ext = library.load_error()
    gpu = torch.cuda.is_available()
    if not library.triton_imports():
        triton = "triton is not installed"
    elif not gpu and os.environ.get("TRITON_INTERPRET") != "1":
        triton = "no GPU (set TRITON_INTERPRET=1 to run the Triton kernels on CPU tensors, slowly)"
    else:
        triton = None
    return {
        "reference": None,
        "cpu": ext,
        "cuda": ext or (None if library.has_cuda_kernels() else "the extension was built without CUDA")
        or (None if gpu else "no CUDA device"),
        "triton": triton,
    }


# Fixed for the life of the process (Triton reads TRITON_INTERPRET when its kernels are defined, at
# import): computed once, so that choose() is a few dict lookups that torch.compile traces.
_AVAILABILITY: Dict[str, Optional[str]] = _compute_availability()
_INTERPRETED = _AVAILABILITY["triton"] is None and not torch.cuda.is_available()


def availability() -> Dict[str, Optional[str]]:
    """Each backend mapped to None when it can run here, else the reason it cannot."""
    return dict(_AVAILABILITY)


def _check_name(name: str) -> str:
    if name not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(map(repr, BACKENDS))}; got {name!r}")
    reason = _AVAILABILITY[name]
    if reason is not None:
        raise RuntimeError(f"backend {name!r} is not available here: {reason}")
    return name


@contextlib.contextmanager
def use_backend(name: str) -> Iterator[None]:
    """Run the fused ops called by this thread inside the ``with`` block on backend ``name`` (other
    threads keep theirs)."""
    name = _check_name(name)
    if not hasattr(_local, "forced"):
        _local.forced = []
    _local.forced.append(name)
    try:
        yield
    finally:
        _local.forced.pop()


def forced() -> Optional[str]:
    stack = getattr(_local, "forced", None)
    if stack:
        return stack[-1]
    return _check_name(_ENV_NAME) if _ENV_NAME else None


def _in_functorch_transform() -> bool:
    """Inside torch.func.grad / vmap / jvp ...: the fused ops' autograd (torch.library.register_autograd)
    does not support functorch transforms, so the ops run the reference there."""
    return not torch.compiler.is_compiling() and torch._C._functorch.peek_interpreter_stack() is not None


def choose(op: str, device: torch.device) -> str:
    """The backend that runs ``op`` for tensors on ``device`` (the reference inside a torch.func transform)."""
    if _in_functorch_transform():
        return "reference"
    name = forced()
    kernels = library.kernels(op)
    if name is not None:
        if name != "reference" and (device.type == "cpu") != (name == "cpu") and not (
                name == "triton" and device.type == "cpu" and _INTERPRETED):
            raise RuntimeError(f"backend {name!r} cannot run {op} on a {device.type} tensor")
        return name if name in kernels else "reference"
    if device.type == "cpu":
        return "cpu" if "cpu" in kernels else "reference"
    if device.type == "cuda":
        for name in ("cuda", "triton"):
            if name in kernels and _AVAILABILITY[name] is None:
                return name
    return "reference"
