"""Pixel losses: the notebook's ``get_mean``, L1, L2 and hole/valid reconstruction, generalised.

Inputs are validated by the public API: ``pred``/``target`` are (N, C, H, W) tensors of one
floating dtype; ``weight`` is None or a floating tensor broadcastable to them (the per-pixel
weight of the region averaged over; the notebook's ``mask`` argument of ``get_mean``).
"""
from __future__ import annotations

import threading
from typing import List, Optional

import torch
from torch import Tensor

EPS = 1e-8
CHARBONNIER_EPS = 1e-3


def accumulate_dtype(dtype: torch.dtype) -> torch.dtype:
    """float16/bfloat16 sums are taken in float32 so that mask areas cannot overflow."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def masked_mean(err: Tensor, weight: Optional[Tensor] = None, *, normalize: str = "mask",
                reduction: str = "mean", eps: float = EPS) -> Tensor:
    """The notebook's ``get_mean(err, weight, eps)`` with a reduction and a normaliser.

    'mean' with normalize='mask': ``sum(w * err) / max(sum(w expanded to err), eps)``;
    normalize='all': ``sum(w * err) / err.numel()``; normalize='sample': that 'mask' mean of each
    sample (dim 0), then their mean (mmagic's ``sample_wise=True``); 'sum': ``sum(w * err)``; 'none':
    ``w * err``. An empty region gives 0, never NaN.
    """
    weighted = err if weight is None else err * weight
    if reduction == "none":
        return weighted
    acc = accumulate_dtype(err.dtype)
    if err.dtype == torch.float16 and weight is not None:
        # The gradient of sum / max(area, eps) is 1 / eps = 1e8 for an empty region: it would be inf in
        # float16, and inf * weight 0 = NaN. Weighted in float32, the float16 gradient is w / area.
        return masked_mean(err.to(acc), weight.to(acc), normalize=normalize, reduction=reduction,
                           eps=eps).to(err.dtype)
    if distributed():
        return global_mean(err, weight, normalize=normalize, reduction=reduction, eps=eps)
    if err.numel() == 0:  # 0, still a function of err (a zero gradient, not a missing one)
        return err.sum(dtype=acc).to(err.dtype)
    if weight is None:
        if reduction == "sum":
            return err.sum(dtype=acc).to(err.dtype)
        return err.mean(dtype=acc).to(err.dtype)
    if reduction == "mean" and normalize == "sample":
        totals = weighted.flatten(1).sum(1, dtype=acc)
        areas = weight.expand_as(err).flatten(1).sum(1, dtype=acc)
        return (totals / areas.clamp_min(eps)).mean().to(err.dtype)
    total = weighted.sum(dtype=acc)
    if reduction == "sum":
        return total.to(err.dtype)
    if normalize == "all":
        return (total / err.numel()).to(err.dtype)
    area = weight.expand_as(err).sum(dtype=acc)
    return (total / area.clamp_min(eps)).to(err.dtype)


# ---- masked means over the global batch under torch.distributed (DistributedDataParallel) ----------
_STATE = threading.local()  # .group: the process group of global_means (a thread-local, which Dynamo traces)


class global_means:
    """``with global_means(process_group):`` every :func:`masked_mean` in the block is taken over the
    ranks of ``process_group`` (a torch.distributed ProcessGroup; None changes nothing).

    A masked mean ``sum(w e) / sum(w)`` taken per rank and then averaged by DDP weights every rank
    equally, however many hole pixels it holds. Here the numerator and the denominator are summed over
    the ranks (one differentiable all-reduce of a small vector per mean,
    ``torch.distributed.nn.functional.all_reduce``), then divided: every rank's loss is the one-process
    loss of the whole batch. The all-reduce's backward sums the ranks' gradients, so the gradient that
    reaches a rank's inputs is ``world_size`` times the one-process gradient of its samples, and DDP's
    averaging of the parameter gradients divides it back (without DDP, divide by the world size yourself).
    (A class, not a generator: entering it costs a losses' host path almost nothing when the group is None.)
    """

    __slots__ = ("group", "previous")

    def __init__(self, process_group):
        self.group, self.previous = process_group, None

    def __enter__(self) -> None:
        if self.group is not None:
            self.previous = getattr(_STATE, "group", None)
            _STATE.group = self.group

    def __exit__(self, *exc) -> None:
        if self.group is not None:
            _STATE.group = self.previous


def distributed() -> bool:
    """Whether the masked means are taken over a process group now (the fused kernels are then skipped)."""
    return getattr(_STATE, "group", None) is not None


def _all_reduce_ratio(parts: List[Tensor], eps: float) -> Tensor:
    """``sum_ranks(parts[0]) / max(sum_ranks(parts[1]), eps)`` (or the global ``parts[0]`` alone)."""
    from torch.distributed.nn.functional import all_reduce
    total = all_reduce(torch.stack(parts), group=_STATE.group)
    return total[0] if len(parts) == 1 else total[0] / total[1].clamp_min(eps)


def global_mean(err: Tensor, weight: Optional[Tensor] = None, *, normalize: str = "mask",
                reduction: str = "mean", eps: float = EPS) -> Tensor:
    """:func:`masked_mean` over the process group of :func:`global_means`: the numerator and the
    denominator summed over the ranks (one all-reduce), then divided."""
    acc = accumulate_dtype(err.dtype)
    weighted = (err if weight is None else err * weight).to(acc)
    if reduction == "sum":
        parts = [weighted.sum()]
    elif normalize == "sample" and weight is not None:
        totals = weighted.flatten(1).sum(1)
        areas = weight.expand_as(err).flatten(1).sum(1, dtype=acc)
        parts = [(totals / areas.clamp_min(eps)).sum(), totals.new_tensor(float(err.shape[0]))]
    elif normalize == "all" or weight is None:
        parts = [weighted.sum(), weighted.new_tensor(float(err.numel()))]
    else:
        parts = [weighted.sum(), weight.expand_as(err).sum(dtype=acc)]
    return _all_reduce_ratio(parts, eps).to(err.dtype)


def pixel_error(pred: Tensor, target: Tensor, loss: str = "l1", charbonnier_eps: float = CHARBONNIER_EPS) -> Tensor:
    """Elementwise error of d = pred - target: |d| ('l1'), d**2 ('l2') or sqrt(d**2 + eps**2) ('charbonnier',
    computed in float32 for float16/bfloat16, where eps**2 may underflow to 0: its gradient would be 0/0)."""
    diff = pred - target
    if loss == "l1":
        return diff.abs()
    if loss == "l2":
        return diff ** 2
    wide = diff.to(accumulate_dtype(diff.dtype))
    return (wide * wide + charbonnier_eps * charbonnier_eps).sqrt().to(diff.dtype)


def l1(pred: Tensor, target: Tensor, weight: Optional[Tensor] = None, **options) -> Tensor:
    """The notebook's ``l1_loss``: ``masked_mean(|pred - target|, weight)``."""
    return masked_mean(pixel_error(pred, target, "l1"), weight, **options)


def l2(pred: Tensor, target: Tensor, weight: Optional[Tensor] = None, **options) -> Tensor:
    """The notebook's ``l2_loss``: ``masked_mean((pred - target)**2, weight)``."""
    return masked_mean(pixel_error(pred, target, "l2"), weight, **options)


def masked_error(pred: Tensor, target: Tensor, known: Optional[Tensor], *, loss: str = "l1",
                 weight_hole: float = 1.0, weight_valid: float = 1.0,
                 charbonnier_eps: float = CHARBONNIER_EPS, **options) -> Tensor:
    """``weight_hole * masked_mean(e, 1 - known) + weight_valid * masked_mean(e, known)``, the
    semantics of the fused ``masked_error`` op; terms of weight 0 are left out (all of them: 0 with a
    zero gradient). Without a mask (known None) it is ``weight_valid * masked_mean(e)``: the whole
    image counts as known.
    """
    err = pixel_error(pred, target, loss, charbonnier_eps)
    terms = [(weight_valid, None)] if known is None else [(weight_hole, 1 - known), (weight_valid, known)]
    out = [w * masked_mean(err, region, **options) for w, region in terms if w != 0]
    if out:
        return sum(out[1:], out[0])
    if options.get("reduction") == "none":
        return err * 0
    # both weights 0: 0 with a zero gradient, even for a NaN error (a sum of no element of the inputs)
    return (pred.flatten()[:0].sum() + target.flatten()[:0].sum()).to(pred.dtype)


def reconstruction(pred: Tensor, target: Tensor, known: Tensor, *, lambda_hole: float = 6.0,
                   lambda_valid: float = 1.0, **options) -> Tensor:
    """The notebook's ``reconstruction_loss``: ``lambda_hole * L(hole) + lambda_valid * L(known)``.

    ``known`` is the mask (1 = known pixel); each term is normalised by its own region.
    """
    return masked_error(pred, target, known, weight_hole=lambda_hole, weight_valid=lambda_valid, **options)
