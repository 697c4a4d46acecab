"""Argument checks of the fused ops, shared by each op's fake kernel and its Triton launcher: the Python
twin of csrc/common/checks.h (per-op checks live in ``ops/<op>.py``, as in csrc/ops/<op>.h). They raise
RuntimeError "<op>: <name> must ..." through ``torch._check``, so they also hold on torch.compile's fake
tensors. The public API validates first (``inpaint_fast._validation``); these guard direct op calls.
"""
from __future__ import annotations

import math
from typing import Mapping, Optional

import torch
from torch import Tensor

from .. import _validation as V

FLOATING = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
# The integer codes of the ops' ``normalize`` argument (masked_error, masked_tv): divide the sums by
# nothing, by the region's area, or by the element (or pair) count.
NORMALIZE_CODES = {"sum": 0, "mask": 1, "all": 2}


def check_code(value: int, codes: Mapping[str, int], op: str, name: str) -> None:
    """``value`` is one of the integer ``codes`` ({name: code})."""
    listed = [f"{code} ({label})" for label, code in codes.items()]
    torch._check(value in codes.values(),
                 lambda: f"{op}: {name} must be {', '.join(listed[:-1])} or {listed[-1]}; got {value}")


def check_eps(eps: float, op: str, name: str = "eps", positive: bool = False) -> None:
    """A finite ``eps`` >= 0 (> 0 when ``positive``)."""
    ok = math.isfinite(eps) and (eps > 0 if positive else eps >= 0)
    torch._check(ok, lambda: f"{op}: {name} must be {'positive' if positive else 'finite and >= 0'}; got {eps}")


def check_image(t: Tensor, op: str, name: str) -> None:
    """``t`` (N, C, H, W) of a dtype the kernels take: float16, bfloat16, float32 or float64."""
    torch._check(t.dim() == 4, lambda: f"{op}: {name} must be 4-D (N, C, H, W); got shape {tuple(t.shape)}")
    torch._check(t.dtype in FLOATING,
                 lambda: f"{op}: {name} must be float16, bfloat16, float32 or float64; got {t.dtype}")


def check_like(t: Tensor, like: Tensor, op: str, name: str, like_name: str) -> None:
    """``t`` has ``like``'s shape, dtype and device."""
    torch._check(t.shape == like.shape,
                 lambda: f"{op}: {name} shape {tuple(t.shape)} must equal {like_name} shape {tuple(like.shape)}")
    torch._check(t.dtype == like.dtype,
                 lambda: f"{op}: {name} dtype {t.dtype} must equal {like_name} dtype {like.dtype}")
    torch._check(t.device == like.device,
                 lambda: f"{op}: {name} must be on {like_name}'s device {like.device}; got {t.device}")


def check_mask(mask: Optional[Tensor], images: Tensor, op: str, images_name: str) -> None:
    """``mask`` (N|1, C|1, H, W), bool, uint8 or the images' dtype, on their device (None passes)."""
    if mask is None:
        return
    torch._check(mask.device == images.device,
                 lambda: f"{op}: mask must be on {images_name}'s device {images.device}; got {mask.device}")
    torch._check(mask.dtype in (torch.bool, torch.uint8, images.dtype),
                 lambda: f"{op}: mask must be bool, uint8 or {images_name}'s dtype {images.dtype}; got {mask.dtype}")
    n, c, h, w = images.shape
    torch._check(mask.dim() == 4 and mask.shape[0] in (1, n) and mask.shape[1] in (1, c)
                 and mask.shape[2] == h and mask.shape[3] == w,
                 lambda: f"{op}: mask shape {tuple(mask.shape)} must be (N|1, C|1, H, W) for {images_name}'s shape "
                         f"{tuple(images.shape)}")


def check_mask_values(mask: Optional[Tensor], mask_is_hole: bool) -> None:
    """A floating mask's values in [0, 1] (csrc/common/checks.h ``check_mask_values``): a ValueError on CPU,
    an asynchronous device-side assert elsewhere. Each op checks the mask it gets; the public losses leave
    it to the op (``_validation.mask_arg(..., values=False)``)."""
    if mask is not None:
        V.check_mask_values(mask, "hole" if mask_is_hole else "mask")
