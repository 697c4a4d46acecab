"""Masked means over the global batch under ``torch.distributed`` (DistributedDataParallel).

A masked mean ``sum(w e) / sum(w)`` taken per rank and then averaged by DDP weights every rank equally,
however many hole pixels it holds. With ``process_group=`` a loss all-reduces its numerator and its
denominator (one differentiable all-reduce of a small vector per mean,
``torch.distributed.nn.functional.all_reduce``) and divides the global sums, so every rank's loss is
the one-process loss of the concatenated batch.

Gradients: the all-reduce's backward sums the ranks' gradients, so the gradient that reaches a rank's
inputs is ``world_size`` times the one-process gradient of its samples; DDP's averaging of the
parameter gradients divides it back, so the model's gradients equal one process's on the whole batch.
(Without DDP, divide by the world size yourself.) Such losses run the reference implementation.
"""
from __future__ import annotations

import contextlib
import contextvars
from typing import Iterator, List

import torch
from torch import Tensor

_GROUP: contextvars.ContextVar = contextvars.ContextVar("inpaint_fast_process_group", default=None)


def check_process_group(process_group):
    """None (no all-reduce), True (the default group, ``torch.distributed.group.WORLD``) or a ProcessGroup;
    torch.distributed must be initialised for the latter two."""
    if process_group is None:
        return None
    import torch.distributed as dist
    if not dist.is_available() or not dist.is_initialized():
        raise ValueError("process_group= needs torch.distributed initialised (init_process_group) first")
    if process_group is True:
        return dist.group.WORLD
    if not isinstance(process_group, dist.ProcessGroup):
        raise TypeError(f"process_group must be None, True (the default group) or a torch.distributed.ProcessGroup; "
                        f"got {type(process_group).__name__}")
    return process_group


@contextlib.contextmanager
def global_means(process_group) -> Iterator[None]:
    """Within the block, the masked means of the reference losses are taken over ``process_group``
    (None: nothing changes)."""
    group = check_process_group(process_group)
    if group is None:
        yield
        return
    token = _GROUP.set(group)
    try:
        yield
    finally:
        _GROUP.reset(token)


def active() -> bool:
    """Whether losses are taken over a process group now (the fused kernels are then skipped)."""
    return _GROUP.get() is not None


def all_reduce_ratio(parts: List[Tensor], eps: float) -> Tensor:
    """``sum_ranks(parts[0]) / max(sum_ranks(parts[1]), eps)`` (or the global ``parts[0]`` alone), one
    differentiable all-reduce of the stacked parts; parts are 0-d tensors of one dtype."""
    from torch.distributed.nn.functional import all_reduce
    total = all_reduce(torch.stack(parts), group=_GROUP.get())
    return total[0] if len(parts) == 1 else total[0] / total[1].clamp_min(eps)
