"""The only copy of the input checks of the public API.

Every public function validates here, then hands plain tensors to a backend: the reference
(``inpaint_fast.reference``) or a fused op. Checks look at metadata (shapes, dtypes, layouts,
devices); the one check of values is that a floating mask lies in [0, 1] (one reduction over the
mask: a ValueError on CPU, an asynchronous device-side assert on a GPU, never a host sync).

Mask convention: ``mask`` has 1 for a KNOWN pixel and 0 for a HOLE; ``hole`` is its complement
(1 = missing), as LaMa, DeepFill, mmagic and diffusers' Stable Diffusion inpainting use (diffusers'
RePaint uses ``mask``). bool and uint8 masks are binary (any non-zero
value is 1, so a 0/255 PNG mask works as it is); floating masks are soft weights in [0, 1]. A mask is
normalised to ``known``: a floating tensor of the image dtype, 4-D, broadcastable to the image:
(N|1, C|1, H, W).
"""
from __future__ import annotations

import numbers
from typing import Dict, List, Mapping, NamedTuple, Optional, Sequence

import torch
from torch import Tensor

REDUCTIONS = ("mean", "sum", "none")
NORMALIZES = ("mask", "all", "sample")  # region area, every element, per-sample means averaged (mmagic sample_wise)
REGIONS = ("hole", "known", "all")
TV_REGIONS = REGIONS + ("hole_dilated",)  # the PConv paper's TV region: the hole grown by one pixel
TV_PAIR_WEIGHTS = ("both", "first")  # a pair's weight: both pixels' product (the notebook), its top/left one's (mmagic)
TV_NORMS = ("l1", "l2", "l2_squared")  # piq's per-image norm_type
_MASK_DTYPES = (torch.bool, torch.uint8)


def check_choice(value, name: str, choices: Sequence[str]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(repr(c) for c in choices)}; got {value!r}")
    return value


def check_nonnegative(value, name: str) -> float:
    """A loss weight or a constant: a finite real number >= 0."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number; got {type(value).__name__}")
    value = float(value)
    if not value >= 0.0 or value == float("inf"):
        raise ValueError(f"{name} must be a finite number >= 0; got {value}")
    return value


def check_positive(value, name: str) -> float:
    value = check_nonnegative(value, name)
    if value == 0.0:
        raise ValueError(f"{name} must be > 0; got {value}")
    return value


def check_tv_power(p) -> int:
    if isinstance(p, bool) or p not in (1, 2):
        raise ValueError(f"p must be 1 (L1 total variation) or 2 (squared); got {p!r}")
    return p


def check_dense(t, name: str) -> Tensor:
    """A dense (strided) torch.Tensor: sparse and other layouts are refused by name."""
    if not isinstance(t, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor; got {type(t).__name__}")
    if t.layout != torch.strided:
        raise TypeError(f"{name} must be a dense (strided) tensor; got layout {t.layout} (call .to_dense())")
    return t


def check_image(t, name: str) -> Tensor:
    """A dense floating (N, C, H, W) tensor."""
    check_dense(t, name)
    if not t.is_floating_point():
        raise TypeError(f"{name} must be a floating tensor (float16/bfloat16/float32/float64); got {t.dtype}")
    if t.dim() != 4:
        raise ValueError(f"{name} must have shape (N, C, H, W); got {tuple(t.shape)} ({t.dim()}-D)")
    return t


def check_pair(pred, target, pred_name: str = "pred", target_name: str = "target"):
    """``pred`` and ``target``: images of one shape, dtype and device; returns them. Under
    ``torch.autocast`` two dtypes are first cast to their promoted dtype, as torch's own losses do."""
    check_image(pred, pred_name)
    check_image(target, target_name)
    if pred.dtype != target.dtype and torch.is_autocast_enabled(pred.device.type):
        dtype = torch.promote_types(pred.dtype, target.dtype)
        pred, target = pred.to(dtype), target.to(dtype)
    if pred.shape != target.shape:
        raise ValueError(
            f"{pred_name} and {target_name} must have the same shape; "
            f"got {tuple(pred.shape)} and {tuple(target.shape)}")
    if pred.dtype != target.dtype:
        raise TypeError(f"{pred_name} and {target_name} must have the same dtype; got {pred.dtype} and {target.dtype}")
    if pred.device != target.device:
        raise ValueError(
            f"{pred_name} and {target_name} must be on the same device; got {pred.device} and {target.device}")
    return pred, target


def check_same_device(t: Tensor, name: str, like: Tensor, like_name: str) -> None:
    if t.device != like.device:
        raise ValueError(f"{name} must be on the device of {like_name} ({like.device}); got {t.device}")


class Mask(NamedTuple):
    """A validated mask: ``tensor`` is 4-D (N|1, C|1, H, W), bool/uint8 or the image's floating
    dtype, holding the known mask, or the hole mask when ``is_hole``. Kernels read it as it is."""
    tensor: Tensor
    is_hole: bool

    @property
    def name(self) -> str:
        """The argument it came as: 'hole' or 'mask'."""
        return "hole" if self.is_hole else "mask"

    def known(self, dtype: torch.dtype) -> Tensor:
        """The known-pixel weight as a floating tensor (1 - hole for a hole mask)."""
        m = as_weight(self.tensor, dtype)
        return 1 - m if self.is_hole else m


def as_weight(m: Tensor, dtype: torch.dtype) -> Tensor:
    """A checked mask as a floating weight: bool/uint8 are binary (non-zero = 1)."""
    return (m != 0).to(dtype) if m.dtype == torch.uint8 else m.to(dtype)


def check_mask_values(m: Tensor, name: str) -> None:
    """A floating mask must lie in [0, 1] (NaN is outside). A ValueError on CPU; on other devices (and
    while compiling) an asynchronous device-side assert, so a GPU step never waits for it."""
    if not m.is_floating_point() or m.numel() == 0:
        return
    m, compiling = m.detach(), torch.compiler.is_compiling()
    while not compiling and torch._C._functorch.is_functorch_wrapped_tensor(m):  # torch.func.vmap: all values
        m = torch._C._functorch.get_unwrapped(m)
    low, high = torch.aminmax(m)
    if m.device.type == "cpu" and not compiling:
        low, high = low.item(), high.item()  # Python floats: two reads, no more tensor ops
        if not (low >= 0 and high <= 1):  # NaN fails both
            raise ValueError(f"{_mask_values_message(name)}; got values from {low} to {high}. bool and uint8 masks "
                             "are binary (any non-zero value is 1)")
    else:
        torch._assert_async((low >= 0) & (high <= 1), _mask_values_message(name))


def _mask_values_message(name: str) -> str:
    return f"{name} must hold values in [0, 1] (1 = {'missing' if name == 'hole' else 'known'} pixel)"


def mask_arg(mask: Optional[Tensor], hole: Optional[Tensor], like: Tensor, *, required: bool,
             like_name: str = "pred", values: bool = True) -> Optional[Mask]:
    """Check ``mask=`` (1 = known) or ``hole=`` (1 = missing) against the image ``like`` (N, C, H, W).

    Accepted shapes: (N,1,H,W), (N,C,H,W), (N,H,W), (1,1,H,W), (H,W); dtypes bool, uint8 (binary:
    non-zero = 1) or floating (a soft per-pixel weight in [0, 1], cast to ``like.dtype``). Returns None
    when neither was given (an error when ``required``). ``values=False`` leaves the [0, 1] check of a
    floating mask to the caller: the fused op it calls checks it (csrc/common/checks.h).
    """
    if mask is not None and hole is not None:
        raise ValueError("pass either mask= (1 = known pixel) or hole= (1 = missing pixel), not both")
    if mask is None and hole is None:
        if required:
            raise ValueError("a mask is required: pass mask= (1 = known pixel) or hole= (1 = missing pixel)")
        return None
    name, m = ("mask", mask) if mask is not None else ("hole", hole)
    check_mask_dtype(m, name)
    check_same_device(m, name, like, like_name)
    n, c, h, w = like.shape
    if m.dim() == 2:
        m = m[None, None]
    elif m.dim() == 3:
        m = m[:, None]
    elif m.dim() != 4:
        raise ValueError(f"{name} must have shape (N,1,H,W), (N,C,H,W), (N,H,W) or (H,W); got {tuple(m.shape)}")
    mn, mc, mh, mw = m.shape
    if (mh, mw) != (h, w) or mn not in (1, n) or mc not in (1, c):
        raise ValueError(
            f"{name} of shape {tuple((mask if mask is not None else hole).shape)} cannot broadcast to "
            f"{like_name} of shape {tuple(like.shape)}: expected (N|1, 1|C, H, W) = ({n}|1, 1|{c}, {h}, {w})")
    if values:
        check_mask_values(m, name)
    if m.is_floating_point() and m.dtype != like.dtype:
        m = m.to(like.dtype)
    return Mask(m, hole is not None)


def check_mask_dtype(m, name: str) -> None:
    check_dense(m, name)
    if not (m.dtype in _MASK_DTYPES or m.is_floating_point()):
        raise TypeError(f"{name} must be bool, uint8 or floating; got {m.dtype}")


def known_from_mask(mask: Optional[Tensor], hole: Optional[Tensor], like: Tensor, *,
                    required: bool, like_name: str = "pred") -> Optional[Tensor]:
    """:func:`mask_arg` as the known-pixel weight: a tensor of ``like.dtype``, 4-D, broadcastable to
    ``like``, or None when no mask was given."""
    arg = mask_arg(mask, hole, like, required=required, like_name=like_name)
    return None if arg is None else arg.known(like.dtype)


def check_process_group(process_group):
    """``process_group=``: None (per-rank means), True (torch.distributed's default group) or a
    ProcessGroup; returns the group or None. torch.distributed must be initialised for the latter two."""
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


def check_region(region: Optional[str], choices: Sequence[str] = REGIONS) -> Optional[str]:
    """A module's ``region`` option: None (resolved per call by :func:`resolve_region`) or one of ``choices``."""
    return None if region is None else check_choice(region, "region", choices)


def resolve_region(region: Optional[str], mask, *, choices: Sequence[str] = REGIONS, default: str = "hole") -> str:
    """The region a masked loss is taken over: one of ``choices`` ('hole', 'known', 'all', ...).

    ``None`` means ``default`` when a mask (any non-None ``mask``) was given and 'all' when none was.
    """
    if check_region(region, choices) is None:
        return default if mask is not None else "all"
    if region != "all" and mask is None:
        raise ValueError(f"region={region!r} needs a mask: pass mask= (1 = known pixel) or hole= (1 = missing pixel)")
    return region


def region_weight(known: Optional[Tensor], region: str) -> Optional[Tensor]:
    """Per-pixel weight of ``region``: 1 - known for 'hole', known for 'known', None for 'all'."""
    if region == "all" or known is None:
        return None
    return 1 - known if region == "hole" else known


def check_loss_options(reduction: str, normalize: str = "mask", eps: float = 1e-8) -> None:
    check_choice(reduction, "reduction", REDUCTIONS)
    check_choice(normalize, "normalize", NORMALIZES)
    check_positive(eps, "eps")


def spatial_weight(known: Optional[Tensor]) -> Optional[Tensor]:
    """The per-pixel weight an image-level feature loss resizes to each feature map: the known mask
    itself when it is (N|1, 1, H, W), else its channel mean (N|1, 1, H, W). An RGB mask whose three
    channels are equal (naoto0804's PConv loader) gives that channel; for a binary mask, exactly."""
    if known is None or known.shape[1] == 1:
        return known
    return known.mean(1, keepdim=True)


def check_spatial_weight(weight: Optional[Tensor], name: str = "mask") -> None:
    """A mask given at a feature map's resolution (gram_matrix, style_distance) weights its positions,
    so it must be single-channel."""
    if weight is not None and weight.shape[1] != 1:
        raise ValueError(
            f"{name} for feature maps must be single-channel, (N,1,H,W), (N,H,W) or (H,W); "
            f"got {weight.shape[1]} channels ({tuple(weight.shape)})")


def check_extractor(extractor) -> None:
    if not callable(extractor):
        raise TypeError(
            "extractor must be a callable returning a list of feature maps, e.g. "
            f"inpaint_fast.VGGFeatures(weights=None); got {type(extractor).__name__}")


def check_layer_weights(layer_weights: Optional[Sequence[float]], num_layers: int) -> Optional[List[float]]:
    if layer_weights is None:
        return None
    if not isinstance(layer_weights, Sequence) or len(layer_weights) != num_layers:
        raise ValueError(f"layer_weights must be a sequence of {num_layers} numbers, one per feature layer; "
                         f"got {layer_weights!r}")
    return [check_nonnegative(w, f"layer_weights[{i}]") for i, w in enumerate(layer_weights)]


def check_term_weights(weights, name: str, terms: Sequence[str]) -> Dict[str, float]:
    """A non-empty mapping from some of ``terms`` to non-negative weights."""
    if not isinstance(weights, Mapping) or not weights:
        raise ValueError(f"{name} must be a non-empty mapping of term name to weight; got {weights!r}")
    unknown = sorted(set(weights) - set(terms))
    if unknown:
        raise ValueError(f"{name} has unknown terms {unknown}; known terms: {list(terms)}")
    return {k: check_nonnegative(v, f"{name}[{k!r}]") for k, v in weights.items()}


def hole_map(mask, hole, like: Tensor, name: str) -> Optional[Tensor]:
    """``mask=`` / ``hole=`` as a hole map (1 = missing), (N|1, 1, H, W) of ``like``'s dtype, at its own
    resolution (it is resized later to the logits or features ``like`` (N, C, h, w)).

    Metadata checks only (unlike :func:`mask_arg`, the mask need not have ``like``'s resolution: the
    patch discriminators' logits and features are coarser than the image).
    """
    if mask is not None and hole is not None:
        raise ValueError("pass either mask= (1 = known pixel) or hole= (1 = missing pixel), not both")
    if mask is None and hole is None:
        return None
    mname, m = ("mask", mask) if mask is not None else ("hole", hole)
    check_mask_dtype(m, mname)
    if like.dim() != 4:
        raise ValueError(f"a mask needs per-patch maps: {name} must have shape (N, C, h, w); "
                         f"got {tuple(like.shape)}")
    check_same_device(m, mname, like, name)
    shape = tuple(m.shape)
    if m.dim() == 2:
        m = m[None, None]
    elif m.dim() == 3:
        m = m[:, None]
    if m.dim() != 4 or m.shape[1] != 1 or m.shape[0] not in (1, like.shape[0]):
        raise ValueError(f"{mname} must have shape (N|1, 1, H, W), (N, H, W) or (H, W) with N = {like.shape[0]} "
                         f"(the batch of {name}); got {shape}")
    check_mask_values(m, mname)
    m = as_weight(m, like.dtype)
    return 1 - m if mask is not None else m


# ---- diffusion ---------------------------------------------------------------------------------

def check_int(value, name: str, minimum: int = 1) -> int:
    """An int (not a bool) >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int; got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}; got {value}")
    return int(value)


def check_timesteps(t, like: Tensor, like_name: str = "x0") -> Tensor:
    """``t``: an (N,) int64/int32 tensor on ``like``'s device. Values are checked by the kernel."""
    if not isinstance(t, Tensor):
        raise TypeError(f"t must be a torch.Tensor of timesteps; got {type(t).__name__}")
    if t.dtype not in (torch.int64, torch.int32):
        raise TypeError(f"t must be an int64 (or int32) tensor of timesteps; got {t.dtype}")
    if t.dim() != 1 or t.shape[0] != like.shape[0]:
        raise ValueError(f"t must have shape (N,) = ({like.shape[0]},), one timestep per image of {like_name}; "
                         f"got {tuple(t.shape)}")
    check_same_device(t, "t", like, like_name)
    return t


def check_alphas_cumprod(alphas_cumprod, like: Tensor) -> Tensor:
    """``alphas_cumprod``: a 1-D floating tensor, non-empty when there are images; moved to ``like``'s device."""
    if not isinstance(alphas_cumprod, Tensor):
        raise TypeError("alphas_cumprod must be a torch.Tensor (the schedule's ᾱ); "
                        f"got {type(alphas_cumprod).__name__}")
    if not alphas_cumprod.is_floating_point():
        raise TypeError(f"alphas_cumprod must be floating (the schedule's ᾱ); got {alphas_cumprod.dtype}")
    if alphas_cumprod.dim() != 1 or (alphas_cumprod.shape[0] == 0 and like.shape[0] > 0):
        raise ValueError(f"alphas_cumprod must have shape (T,) with T >= 1; got {tuple(alphas_cumprod.shape)}")
    return alphas_cumprod if alphas_cumprod.device == like.device else alphas_cumprod.to(like.device)


def check_noise(noise, like: Tensor, like_name: str = "x0") -> Tensor:
    """``noise``: a tensor of ``like``'s shape, dtype and device."""
    if not isinstance(noise, Tensor):
        raise TypeError(f"noise must be a torch.Tensor; got {type(noise).__name__}")
    if noise.shape != like.shape:
        raise ValueError(f"noise must have the shape of {like_name} {tuple(like.shape)}; got {tuple(noise.shape)}")
    if noise.dtype != like.dtype:
        raise TypeError(f"noise must have the dtype of {like_name} ({like.dtype}); got {noise.dtype}")
    check_same_device(noise, "noise", like, like_name)
    return noise
