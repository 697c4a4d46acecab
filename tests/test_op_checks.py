"""Every argument check of every op, called directly (the public functions validate first): a bad
argument raises an error that names it, on the CPU kernels (whose checks csrc/ops/<op>.h shares with
the CUDA kernels) and on the Triton launchers (interpreted here), and nothing crashes."""
import math

import pytest
import torch

from inpaint_fast.ops import backend as _backend

OPS = torch.ops.inpaint_fast
F32 = torch.float32


def img(*shape, dtype=F32):
    return torch.rand(*shape, dtype=dtype)


def masked_error_args(pred=None, target=None, mask=None, loss=0, charbonnier_eps=1e-3, normalize=1, eps=1e-8):
    pred = img(2, 3, 4, 5) if pred is None else pred
    target = torch.ones_like(pred) if target is None else target
    return (pred, target, mask, False, loss, charbonnier_eps, 6.0, 1.0, normalize, eps, True)


def masked_tv_args(image=None, mask=None, region=2, p=1, normalize=1, eps=1e-8):
    image = img(2, 3, 4, 5) if image is None else image
    return (image, mask, False, region, p, normalize, eps, True)


def style_args(feat_pred=None, feat_target=None, weight=None, eps=1e-8):
    feat_pred = img(2, 3, 4, 5) if feat_pred is None else feat_pred
    return (feat_pred, torch.ones_like(feat_pred) if feat_target is None else feat_target, weight, eps, True)


def spectral_args(z_pred=None, z_target=None):
    z_pred = torch.randn(2, 3, 4, 3, dtype=torch.complex64) if z_pred is None else z_pred
    return (z_pred, torch.randn_like(z_pred) if z_target is None else z_target, 0.5, True, False)


MASK = torch.rand(2, 1, 4, 5) > 0.5
# (op, arguments, error type, message): each case breaks one rule of the op's schema.
CASES = [
    ("masked_error", masked_error_args(pred=img(3, 4, 5)), RuntimeError, "pred must be 4-D"),
    ("masked_error", masked_error_args(target=img(2, 3, 4, 6)), RuntimeError, "target shape"),
    ("masked_error", masked_error_args(pred=torch.ones(2, 3, 4, 5, dtype=torch.int32)), RuntimeError,
     "pred must be float16, bfloat16, float32 or float64"),
    ("masked_error", masked_error_args(pred=img(2, 3, 4, 5, dtype=torch.complex64)), RuntimeError,
     "pred must be float16"),
    ("masked_error", masked_error_args(target=img(2, 3, 4, 5, dtype=torch.float64)), RuntimeError, "target dtype"),
    ("masked_error", masked_error_args(mask=torch.ones(2, 1, 4, 5, dtype=torch.int32)), RuntimeError,
     "mask must be bool, uint8"),
    ("masked_error", masked_error_args(mask=MASK[:, :, :3]), RuntimeError, r"mask shape"),
    ("masked_error", masked_error_args(mask=torch.ones(3, 1, 4, 5, dtype=torch.bool)), RuntimeError, r"mask shape"),
    ("masked_error", masked_error_args(loss=3), RuntimeError, "loss must be 0"),
    ("masked_error", masked_error_args(normalize=-1), RuntimeError, "normalize must be 0"),
    ("masked_error", masked_error_args(charbonnier_eps=-1.0), RuntimeError, "charbonnier_eps must be finite"),
    ("masked_error", masked_error_args(eps=math.nan), RuntimeError, "eps must be finite"),
    ("masked_error", masked_error_args(eps=math.inf), RuntimeError, "eps must be finite"),
    ("masked_error_stats", masked_error_args(pred=img(2, 3, 4))[:3] + (False,), RuntimeError, "pred must be 4-D"),
    ("masked_error_stats", masked_error_args(mask=torch.ones(2, 2, 4, 5))[:3] + (False,), RuntimeError,
     "mask shape"),
    ("masked_tv", masked_tv_args(image=img(3, 4, 5)), RuntimeError, "img must be 4-D"),
    ("masked_tv", masked_tv_args(image=torch.ones(2, 3, 4, 5, dtype=torch.int64), mask=MASK), RuntimeError,
     "img must be float16"),
    ("masked_tv", masked_tv_args(mask=None, region=2), RuntimeError, "needs a mask"),
    ("masked_tv", masked_tv_args(mask=MASK, region=4), RuntimeError, "region must be"),
    ("masked_tv", masked_tv_args(mask=MASK, p=3), RuntimeError, "p must be 1 or 2"),
    ("masked_tv", masked_tv_args(mask=MASK, normalize=3), RuntimeError, "normalize must be"),
    ("masked_tv", masked_tv_args(mask=MASK, eps=-1.0), RuntimeError, "eps must be"),
    ("masked_tv", masked_tv_args(mask=MASK, eps=math.nan), RuntimeError, "eps must be"),
    ("masked_tv", masked_tv_args(mask=torch.ones(2, 1, 4, 5, dtype=torch.int16)), RuntimeError,
     "mask must be bool, uint8"),
    ("masked_tv", masked_tv_args(mask=torch.ones(2, 1, 5, 4)), RuntimeError, "mask shape"),
    ("gram", (img(3, 4, 5), None, 1e-8), RuntimeError, "feat must be 4-D"),
    ("gram", (torch.ones(2, 3, 4, 5, dtype=torch.int32), None, 1e-8), RuntimeError, "feat must be float16"),
    ("gram", (img(2, 3, 4, 5), img(2, 2, 4, 5), 1e-8), RuntimeError, "weight shape"),
    ("gram", (img(2, 3, 4, 5), img(2, 1, 4, 5, dtype=torch.float64), 1e-8), RuntimeError, "weight dtype"),
    ("gram", (img(2, 3, 4, 5), None, 0.0), RuntimeError, "eps must be positive"),
    ("gram", (img(2, 3, 4, 5), None, math.nan), RuntimeError, "eps must be positive"),
    ("gram_backward", (img(2, 3, 4), img(2, 3, 4, 5), None, 1e-8), RuntimeError, "grad must have shape"),
    ("gram_backward", (torch.ones(2, 3, 3, dtype=torch.int32), img(2, 3, 4, 5), None, 1e-8), RuntimeError,
     "grad must be floating"),
    ("gram_backward", (img(2, 3, 3), img(2, 3, 4, 5), None, -1.0), RuntimeError, "eps must be positive"),
    ("style_distance", style_args(feat_pred=img(2, 3, 4)), RuntimeError, "feat_pred must be 4-D"),
    ("style_distance", style_args(feat_target=img(2, 3, 4, 6)), RuntimeError, "feat_target shape"),
    ("style_distance", style_args(feat_target=img(2, 3, 4, 5, dtype=torch.float64)), RuntimeError,
     "feat_target dtype"),
    ("style_distance", style_args(weight=img(1, 1, 4, 4)), RuntimeError, "weight shape"),
    ("style_distance", style_args(eps=0.0), RuntimeError, "eps must be positive"),
    ("spectral_l1", spectral_args(z_pred=img(2, 3, 4, 3)), RuntimeError, "z_pred must be complex64"),
    ("spectral_l1", spectral_args(z_target=torch.randn(2, 3, 4, 3, dtype=torch.complex128)), RuntimeError,
     "z_target dtype"),
    ("spectral_l1", spectral_args(z_target=torch.randn(2, 3, 4, 2, dtype=torch.complex64)), RuntimeError,
     "z_target shape"),
    ("scale_grad_", (torch.ones(3, dtype=torch.int32), torch.ones(())), RuntimeError, "grad must be floating"),
    ("scale_grad_", (img(3), torch.ones(2)), RuntimeError, "scale must have one element"),
    ("scale_grad_", (img(4, 4)[:, ::2], torch.ones(())), RuntimeError, "grad must be dense"),
    ("q_sample", (img(2, 3, 4), torch.zeros(2, dtype=torch.long), img(2, 3, 4), img(10)), ValueError,
     "x0 must be 4-D"),
    ("q_sample", (img(2, 3, 4, 5), torch.zeros(2, dtype=torch.long), img(2, 3, 4, 4), img(10)), ValueError,
     "noise shape"),
    ("q_sample", (img(2, 3, 4, 5), torch.zeros(2), img(2, 3, 4, 5), img(10)), TypeError, "t must be int64"),
    ("q_sample", (img(2, 3, 4, 5), torch.zeros(3, dtype=torch.long), img(2, 3, 4, 5), img(10)), ValueError,
     r"t must have shape \(N,\)"),
    ("q_sample", (img(2, 3, 4, 5), torch.full((2,), 10), img(2, 3, 4, 5), img(10)), ValueError, "out of range"),
    ("q_sample", (img(2, 3, 4, 5), torch.full((2,), -1), img(2, 3, 4, 5), img(10)), ValueError, "out of range"),
    ("q_sample", (img(2, 3, 4, 5), torch.zeros(2, dtype=torch.long), img(2, 3, 4, 5), img(2, 5)), ValueError,
     "alphas_cumprod must be 1-D"),
    ("q_sample_backward", (img(2, 3, 4, 5), torch.full((2,), 10), img(10), True, True), ValueError, "out of range"),
    ("repaint_blend", (img(2, 3, 4, 5), img(2, 3, 4, 5), img(2, 3, 4, 5), torch.ones(2, 3, 4, 5, dtype=torch.int32),
                       False, torch.zeros(2, dtype=torch.long), img(10)), TypeError, "mask must be bool"),
    ("repaint_blend", (img(2, 3, 4, 5), img(2, 3, 4, 5), img(2, 3, 4, 5), torch.ones(2, 3, 5, 4), False,
                       torch.zeros(2, dtype=torch.long), img(10)), ValueError, "mask shape"),
]


def _runs():
    """(backend, device): the CPU kernels; the CUDA and Triton kernels on a GPU, else Triton interpreted."""
    available = _backend.availability()
    runs = [("cpu", "cpu")] if available["cpu"] is None else []
    gpu = "cuda" if torch.cuda.is_available() else None
    if gpu and available["cuda"] is None:
        runs.append(("cuda", gpu))
    if available["triton"] is None:
        runs.append(("triton", gpu or "cpu"))
    return runs


def _kernel(op, backend):
    if backend == "triton":
        return getattr(OPS, op + "_triton", None)
    key = "CUDA" if backend == "cuda" else "CPU"
    return getattr(OPS, op) if torch._C._dispatch_has_kernel_for_dispatch_key(f"inpaint_fast::{op}", key) else None


@pytest.mark.parametrize("backend, device", _runs(), ids=[r[0] for r in _runs()])
@pytest.mark.parametrize("op, args, error, message", CASES, ids=[f"{c[0]}-{c[3]}" for c in CASES])
def test_bad_argument_raises_a_named_error(op, args, error, message, backend, device):
    fn = _kernel(op, backend)
    if fn is None:
        pytest.skip(f"{op} has no {backend} kernel")
    args = tuple(a.to(device) if isinstance(a, torch.Tensor) else a for a in args)
    with pytest.raises(error, match=message):
        fn(*args)


def test_every_op_is_covered():
    """A new op gets its cases here too."""
    covered = {case[0] for case in CASES}
    from inpaint_fast.ops import library
    no_tensors = {"version", "cpu_capability", "output_cache_stats", "empty_output_cache"}
    ops = {op for op in library._dispatcher_ops() if not op.endswith("_triton")} - no_tensors
    assert ops <= covered, sorted(ops - covered)
