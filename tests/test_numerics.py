"""Numerics regressions of issue 12 on every backend that runs here (reference, cpu, and triton, which
runs in its interpreter on CPU tensors when there is no GPU):

1. bool and uint8 masks are binary: a 0/255 (or any non-zero) uint8 mask, or hole, gives exactly the
   bool mask's value and gradient;
2. float16 under loss scaling: the gradient for grad_output = 1 is below float16's normal range, yet
   ``(loss.float() * 1024).backward()`` gives the float64 gradient to float16 accuracy;
3. non-finite values: +inf inside the region gives +inf, NaN in pred gives a NaN value and the
   reference's gradient (its NaN pattern and values); total_variation with inf/NaN at the image
   border, or in an image with no pairs in a direction (H = 1, W = 1), gives the reference's value
   and gradient (a pair that leaves the image does not exist: no 0 * inf); masked_error_stats without
   a mask keeps the hole sums at 0 when pred holds NaN;
4. frequency_loss with NaN in pred or target: the reference's gradient (NaN, or zero, over the plane
   holding it).

Oracles: float64 formulas written here with plain torch (and autograd through them), or the
reference backend where the point is agreeing with it.
"""
import functools

import pytest
import torch
import torch.nn.functional as F

import inpaint_fast as IF
from inpaint_fast.ops import backend as _backend

from .conftest import CPU_BACKENDS, GPU_DEVICE

SHAPE = (2, 3, 8, 8)
EPS = 1e-8
CHARBONNIER_EPS = 1e-3
PIXEL_LOSSES = ["masked_l1", "masked_l2", "masked_charbonnier"]


@pytest.fixture(params=CPU_BACKENDS + ["triton", "cuda"])
def each_backend(request):
    """(name, device): the conftest's CPU backends on CPU tensors, 'triton' on its device and 'cuda' on a
    GPU (skipped where it cannot run)."""
    reason = _backend.availability()[request.param]
    if reason is not None:
        pytest.skip(f"backend {request.param!r}: {reason}")
    with IF.use_backend(request.param):
        yield request.param, GPU_DEVICE if request.param in ("triton", "cuda") else torch.device("cpu")


def images(shape=SHAPE, dtype=torch.float32, device="cpu", seed=0):
    gen = torch.Generator().manual_seed(seed)
    pred = torch.rand(shape, generator=gen, dtype=torch.float64).to(dtype)
    target = torch.rand(shape, generator=gen, dtype=torch.float64).to(dtype)
    return pred.to(device), target.to(device)


def known_mask(shape=SHAPE, device="cpu", seed=1):
    """A bool (N, 1, H, W) mask, True = known, with both regions non-empty."""
    gen = torch.Generator().manual_seed(seed)
    return (torch.rand((shape[0], 1, *shape[2:]), generator=gen) > 0.4).to(device)


def as_uint8(binary, seed=2):
    """The uint8 form of a bool mask: 0 where False, any level 1..255 where True."""
    gen = torch.Generator().manual_seed(seed)
    levels = torch.randint(1, 256, binary.shape, generator=gen, dtype=torch.uint8).to(binary.device)
    return torch.where(binary, levels, torch.zeros_like(levels))


def value_and_grad(fn, pred, *args, **kwargs):
    p = pred.detach().clone().requires_grad_()
    value = fn(p, *args, **kwargs)
    (grad,) = torch.autograd.grad(value, p)
    return value.detach(), grad


def rel_l2(actual, expected):
    return ((actual.double() - expected).norm() / expected.norm()).item()


# ------------------------------------------------------------------------------- float64 oracles

def masked_mean(err, weight, eps=EPS):
    """sum(w e) / max(sum(w over e's shape), eps)."""
    weight = weight.expand_as(err)
    return (weight * err).sum() / weight.sum().clamp_min(eps)


def pixel_error(pred, target, loss):
    d = pred - target
    return {"l1": d.abs(), "l2": d * d, "charbonnier": (d * d + CHARBONNIER_EPS ** 2).sqrt()}[loss]


def pixel_oracle(pred, target, known, loss, weight_hole, weight_valid, eps=EPS):
    """weight_hole * mean over the hole + weight_valid * mean over the known pixels (terms of weight 0 left out)."""
    err = pixel_error(pred, target, loss)
    terms = [(weight_hole, 1 - known), (weight_valid, known)]
    return sum(w * masked_mean(err, region, eps) for w, region in terms if w != 0)


def region_weight(known, region):
    if region == "known":
        return known
    if region == "hole":
        return 1 - known
    if region == "hole_dilated":
        return F.max_pool2d(1 - known, kernel_size=3, stride=1, padding=1)
    return torch.ones_like(known)


def tv_oracle(img, weight, p, eps=EPS):
    """Each direction's mean of |d|^p over its pairs, a pair weighted by the product of its pixels' weights."""
    weight = weight.expand_as(img)
    total = 0
    for d, w in [(img[:, :, 1:] - img[:, :, :-1], weight[:, :, 1:] * weight[:, :, :-1]),
                 (img[:, :, :, 1:] - img[:, :, :, :-1], weight[:, :, :, 1:] * weight[:, :, :, :-1])]:
        total = total + masked_mean(d.abs() if p == 1 else d * d, w, eps)
    return total


# ------------------------------------------------------------------------------- 1. binary masks

def pixel_call(name, region):
    """The public loss `name` as fn(pred, target, **mask_kwargs), and its oracle's (loss, weight_hole, weight_valid)."""
    if name == "reconstruction_loss":
        return IF.reconstruction_loss, ("l1", 6.0, 1.0)
    weights = (1.0, 0.0) if region == "hole" else (0.0, 1.0)
    return functools.partial(getattr(IF, name), region=region), (name.split("_")[1], *weights)


@pytest.mark.parametrize("name,region", [(n, r) for n in PIXEL_LOSSES for r in ("hole", "known")]
                         + [("reconstruction_loss", None)])
def test_uint8_masks_are_binary_pixel(each_backend, name, region):
    _, device = each_backend
    pred, target = images(device=device)
    known = known_mask(device=device)
    fn, (loss, weight_hole, weight_valid) = pixel_call(name, region)
    value, grad = value_and_grad(fn, pred, target, mask=known)
    for mask_kwargs in (dict(mask=known.to(torch.uint8) * 255), dict(hole=as_uint8(~known))):
        value_u8, grad_u8 = value_and_grad(fn, pred, target, **mask_kwargs)
        assert torch.equal(value_u8, value) and torch.equal(grad_u8, grad), list(mask_kwargs)
    expected, expected_grad = value_and_grad(pixel_oracle, pred.double().cpu(), target.double().cpu(),
                                             known.double().cpu(), loss, weight_hole, weight_valid)
    torch.testing.assert_close(value.double().cpu(), expected, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(grad.double().cpu(), expected_grad, rtol=1e-5, atol=1e-7)


def test_uint8_masks_are_binary_stats(each_backend):
    _, device = each_backend
    pred, target = images(device=device)
    known = known_mask(device=device)
    stats = IF.masked_error_stats(pred, target, mask=known)
    for mask_kwargs in (dict(mask=known.to(torch.uint8) * 255), dict(hole=as_uint8(~known))):
        stats_u8 = IF.masked_error_stats(pred, target, **mask_kwargs)
        assert all(torch.equal(stats_u8[k], stats[k]) for k in stats), list(mask_kwargs)
    p, t, k = pred.double().cpu(), target.double().cpu(), known.double().cpu()
    for loss in ("l1", "l2"):
        err = pixel_error(p, t, loss)
        expected = {"hole": masked_mean(err, 1 - k), "known": masked_mean(err, k), "full": err.mean()}
        for region, value in expected.items():
            torch.testing.assert_close(stats[f"{region}_{loss}"].double().cpu(), value, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("region", ["all", "known", "hole", "hole_dilated"])
@pytest.mark.parametrize("p", [1, 2])
def test_uint8_masks_are_binary_tv(each_backend, region, p):
    _, device = each_backend
    img, _ = images(device=device)
    known = known_mask(device=device)
    value, grad = value_and_grad(IF.total_variation, img, mask=known, region=region, p=p)
    for mask_kwargs in (dict(mask=known.to(torch.uint8) * 255), dict(hole=as_uint8(~known))):
        value_u8, grad_u8 = value_and_grad(IF.total_variation, img, region=region, p=p, **mask_kwargs)
        assert torch.equal(value_u8, value) and torch.equal(grad_u8, grad), list(mask_kwargs)
    weight = region_weight(known.double().cpu(), region)
    expected, expected_grad = value_and_grad(tv_oracle, img.double().cpu(), weight, p)
    torch.testing.assert_close(value.double().cpu(), expected, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(grad.double().cpu(), expected_grad, rtol=1e-5, atol=1e-7)


# ------------------------------------------------------------------------------- 2. float16, loss scaling

# The gradient for grad_output = 1 is a normaliser 1 / area times O(1). A large `eps` (the floor of
# the normaliser) makes it 1 / 1e7 on a tiny image: under two float16 subnormal steps (6e-8), as
# 1 / numel = 8e-8 is for a 16x3x512x512 batch. Scaled by 1024 it is a normal float16 number.
LOSS_SCALE = 1024.0
BIG_EPS = 1e7
FP16_TOL = 1e-2


@pytest.mark.parametrize("case", ["masked_l1", "masked_l2", "reconstruction_loss", "tv_p1", "tv_p2"])
def test_float16_gradient_under_loss_scaling(each_backend, case):
    _, device = each_backend
    pred, target = images(shape=(2, 3, 16, 16), dtype=torch.float16, device=device)
    known = known_mask(shape=pred.shape, device=device)
    p64, t64, k64 = pred.double().cpu(), target.double().cpu(), known.double().cpu()
    if case.startswith("tv_"):
        power = int(case[-1])
        fn = lambda x: IF.total_variation(x, mask=known, region="known", p=power, eps=BIG_EPS)  # noqa: E731
        oracle = lambda x: tv_oracle(x, k64, power, eps=BIG_EPS)  # noqa: E731
    else:
        loss, weights = {"masked_l1": ("l1", (1.0, 0.0)), "masked_l2": ("l2", (1.0, 0.0)),
                         "reconstruction_loss": ("l1", (6.0, 1.0))}[case]
        fn = lambda x: getattr(IF, case)(x, target, mask=known, eps=BIG_EPS)  # noqa: E731
        oracle = lambda x: pixel_oracle(x, t64, k64, loss, *weights, eps=BIG_EPS)  # noqa: E731
    _, unit_grad = value_and_grad(oracle, p64)
    assert unit_grad.abs().max() < torch.finfo(torch.float16).tiny  # subnormal in float16
    expected = unit_grad * LOSS_SCALE
    # The test has teeth: a float16 buffer for the grad_output = 1 gradient would fail it.
    assert rel_l2(unit_grad.half() * LOSS_SCALE, expected) > 3 * FP16_TOL

    p = pred.clone().requires_grad_()
    (fn(p).float() * LOSS_SCALE).backward()
    assert p.grad.dtype == torch.float16
    assert rel_l2(p.grad.cpu(), expected) < FP16_TOL


# ------------------------------------------------------------------------------- 3. non-finite values

def region_pixels(known, channel):
    """(n, channel, i, j) of a hole pixel whose right neighbour is in the hole too (a TV pair of
    weight 1), and of a known pixel."""
    n, i, j = (~known[:, 0, :, :-1] & ~known[:, 0, :, 1:]).nonzero()[0].tolist()
    n_known, i_known, j_known = known[:, 0].nonzero()[-1].tolist()
    return (n, channel, i, j), (n_known, channel, i_known, j_known)


def reference_and(backend_name, fn, *args, **kwargs):
    """fn's (value, grad w.r.t. the first argument) on the reference backend, then on the current one."""
    with IF.use_backend("reference"):
        reference = value_and_grad(fn, *args, **kwargs)
    with IF.use_backend(backend_name):
        return reference, value_and_grad(fn, *args, **kwargs)


def assert_same(actual, expected, rtol=1e-5, atol=1e-7):
    """Equal NaN patterns, the other values close (infinities equal)."""
    assert torch.equal(actual.isnan().cpu(), expected.isnan().cpu())
    torch.testing.assert_close(actual.cpu(), expected.cpu(), equal_nan=True, rtol=rtol, atol=atol)


@pytest.mark.parametrize("case", ["masked_l1", "masked_l2", "reconstruction_hole_only", "reconstruction"])
def test_inf_inside_the_region(each_backend, case):
    name, device = each_backend
    pred, target = images(device=device)
    known = known_mask(device=device)
    pred[region_pixels(known, channel=1)[0]] = float("inf")
    fn = {"masked_l1": lambda p: IF.masked_l1(p, target, mask=known, region="hole"),
          "masked_l2": lambda p: IF.masked_l2(p, target, mask=known, region="hole"),
          "reconstruction_hole_only": lambda p: IF.reconstruction_loss(p, target, mask=known, lambda_valid=0.0),
          # the known term's sum(w e) holds 0 * inf = NaN, as the reference's
          "reconstruction": lambda p: IF.reconstruction_loss(p, target, mask=known)}[case]
    (ref_value, ref_grad), (value, grad) = reference_and(name, fn, pred)
    if case != "reconstruction":
        assert value.item() == float("inf")
    assert_same(value, ref_value)
    assert_same(grad, ref_grad)


@pytest.mark.parametrize("case", PIXEL_LOSSES + ["reconstruction_loss", "tv_p1", "tv_p2"])
def test_nan_in_pred(each_backend, case):
    name, device = each_backend
    shape = (2, 3, 8, 24)  # rows long enough for the CPU TV kernel's vector steps
    pred, target = images(shape, device=device)
    known = known_mask(shape, device=device)
    hole_pixel, known_pixel = region_pixels(known, channel=1)
    pred[hole_pixel] = pred[known_pixel] = float("nan")
    if case.startswith("tv_"):
        fn = lambda p: IF.total_variation(p, mask=known, p=int(case[-1]))  # noqa: E731
    elif case == "reconstruction_loss":
        fn = lambda p: IF.reconstruction_loss(p, target, mask=known)  # noqa: E731
    else:
        fn = lambda p: getattr(IF, case)(p, target, mask=known, region="hole")  # noqa: E731
    (ref_value, ref_grad), (value, grad) = reference_and(name, fn, pred)
    assert value.isnan()
    assert_same(grad, ref_grad)


# A TV pair that leaves the image does not exist, and a direction without pairs (H = 1 or W = 1)
# adds exactly 0 and nothing to the gradient: the fused kernels took such a pair's difference
# against a stand-in neighbour (x - x, or x - 0), and its weight 0 times inf or NaN made the value
# or the gradient NaN.

@pytest.mark.parametrize("shape", [(1, 1, 1, 2), (1, 1, 2, 1), (1, 3, 1, 40), (2, 3, 40, 1)])
@pytest.mark.parametrize("p", [1, 2])
def test_tv_inf_in_an_image_with_one_direction(each_backend, shape, p):
    name, device = each_backend
    img, _ = images(shape, dtype=torch.float64, device=device)
    img[0, 0, 0, 0] = float("inf")
    (ref_value, ref_grad), (value, grad) = reference_and(name, lambda x: IF.total_variation(x, p=p), img)
    assert value.item() == float("inf")
    assert_same(value, ref_value)
    assert_same(grad, ref_grad)


@pytest.mark.parametrize("region", [None, "known", "hole", "hole_dilated"])
@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_tv_of_an_image_without_pairs(each_backend, region, value):
    name, device = each_backend
    img = torch.full((2, 3, 1, 1), value, dtype=torch.float64, device=device)
    kwargs = {} if region is None else dict(mask=torch.ones(2, 1, 1, 1, dtype=torch.bool, device=device),
                                            region=region)
    for p in (1, 2):
        value_, grad = value_and_grad(IF.total_variation, img, p=p, **kwargs)
        assert value_.item() == 0 and torch.equal(grad, torch.zeros_like(img))


@pytest.mark.parametrize("region", ["all", "known", "hole", "hole_dilated"])
@pytest.mark.parametrize("p", [1, 2])
@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
@pytest.mark.parametrize("nan", [False, True])
def test_tv_non_finite_at_the_border(each_backend, region, p, layout, nan):
    name, device = each_backend
    shape = (2, 3, 5, 24)  # rows long enough for the CPU kernel's vector steps; 3 channels read in place
    known = known_mask(shape, device=device)
    # corners, edges and an inside pixel, on different channels and images
    spots = [(0, 0, 0, 0), (0, 1, -1, -1), (1, 2, 0, -1), (1, 0, -1, 7), (0, 2, 2, 0), (1, 1, 3, 11)]
    for dtype, rtol in ((torch.float64, 1e-9), (torch.float32, 1e-5), (torch.float16, 1e-2)):
        img, _ = images(shape, dtype=dtype, device=device)
        for k, spot in enumerate(spots):
            img[spot] = float("nan") if nan and k == 2 else (-1) ** k * float("inf")
        if layout == "channels_last":
            img = img.contiguous(memory_format=torch.channels_last)
        for normalize, reduction in (("mask", "mean"), ("all", "mean"), ("mask", "sum")):
            fn = functools.partial(IF.total_variation, mask=known, region=region, p=p, normalize=normalize,
                                   reduction=reduction)
            (ref_value, ref_grad), (value, grad) = reference_and(name, fn, img)
            assert_same(value, ref_value, rtol=rtol)
            assert_same(grad, ref_grad, rtol=rtol)


def test_stats_without_a_mask_nan_in_pred(each_backend):
    _, device = each_backend
    pred, target = images(device=device)
    pred[0, 1, 2, 3] = float("nan")
    stats = IF.masked_error_stats(pred, target)
    for loss in ("l1", "l2"):  # no mask: no hole region, its means stay 0 (not 0 * NaN)
        assert stats[f"hole_{loss}"].item() == 0
        assert stats[f"known_{loss}"].isnan() and stats[f"full_{loss}"].isnan()


# ------------------------------------------------------------------------------- 4. frequency_loss

@pytest.mark.parametrize("nan_in", ["pred", "target"])
def test_frequency_loss_nan(each_backend, nan_in):
    name, device = each_backend
    pred, target = images(device=device)
    (pred if nan_in == "pred" else target)[0, 1, 2, 3] = float("nan")
    fn = lambda p: IF.frequency_loss(p, target)  # noqa: E731
    (ref_value, ref_grad), (value, grad) = reference_and(name, fn, pred)
    assert value.isnan() and ref_value.isnan()
    # The FFT spreads the NaN over its plane's spectrum; in the target it stops there (torch.sign(NaN) = 0).
    plane = ref_grad[0, 1]
    assert plane.isnan().all() if nan_in == "pred" else (plane == 0).all()
    assert_same(grad, ref_grad)
