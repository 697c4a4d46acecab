"""The cache of the fused CPU ops' large outputs (csrc/common/alloc.cpp).

Each fused CPU op writes its output or gradient in one pass into a buffer of its own. A fresh
multi-megabyte buffer costs first-touch page faults on every call (glibc maps and unmaps buffers
above its mmap threshold, at most 32 MiB), as much as the kernel's pass on small VMs and as variable.
So buffers of 1 MiB and more come from a cache: when autograd or the user frees such a tensor its
memory returns to the cache, still mapped, and the next call of that size (up to 1.25x larger) reuses
it without a fault. Idle memory is bounded by ``INPAINT_FAST_OUTPUT_CACHE_MB`` (MiB, default 1024;
``0`` turns the cache off), read once, at the first fused CPU call (checked at import); the
longest-idle blocks go first.
Values, determinism and peak memory during a step are unchanged: the tensors are ordinary CPU tensors,
and the profiler's memory records count them as it counts torch's own.
"""
from __future__ import annotations

import os
from typing import Dict

import torch

ENV = "INPAINT_FAST_OUTPUT_CACHE_MB"
STATS = ("limit_bytes", "cached_bytes", "in_use_bytes", "hits", "misses", "evictions")


def check_env(environ=os.environ) -> None:
    """Raises ``ValueError`` naming :data:`ENV` when it is set to anything but a whole number >= 0
    (checked before the extension loads; the C++ reads the variable at the first fused CPU call and
    checks it again for C++ users of the library)."""
    text = environ.get(ENV, "")
    if text and not (text.isascii() and text.isdigit()):
        raise ValueError(f"{ENV} must be a whole number of MiB >= 0 (0 turns the cache of the fused CPU ops' "
                         f"outputs off), got {text!r}")


def stats() -> Dict[str, int]:
    """``limit_bytes`` (the bound on idle memory), ``cached_bytes`` (idle, ready for reuse),
    ``in_use_bytes`` (held by live tensors), ``hits``, ``misses`` and ``evictions`` so far; all zero
    when the extension is not loaded."""
    if not hasattr(torch.ops.inpaint_fast, "output_cache_stats"):
        return dict.fromkeys(STATS, 0)
    return dict(zip(STATS, torch.ops.inpaint_fast.output_cache_stats()))


def empty() -> None:
    """Frees every idle block (the blocks held by live tensors return when those are freed)."""
    if hasattr(torch.ops.inpaint_fast, "empty_output_cache"):
        torch.ops.inpaint_fast.empty_output_cache()
