"""inpaint_fast::masked_tv (C++ CPU kernel) against the pure-PyTorch oracle.

Oracle: ``inpaint_fast.reference.tv.total_variation(img, r, p=p, normalize=..., reduction=...)``
evaluated in float64 on the same (upcast) image, with r the region weight in float64: ones
('all'), the known mask m ('known'), 1 - m ('hole') or ``reference.tv.dilate(1 - m)``
('hole_dilated'); normalize='none' is the reference's reduction='sum'. Gradients are autograd's
through that reference. A few closed forms (hand-computed) pin the oracle itself.
"""
import itertools

import pytest
import torch

from inpaint_fast.ops import library
from inpaint_fast.ops.masked_tv import NORMALIZE_CODES, REGION_CODES, masked_tv, native_channels_last
from inpaint_fast.reference import tv

from .conftest import GPU_DEVICE, TRITON_INTERPRETED
from .triton_aot import require_sm90, run_script

# The tests of the C++ CPU kernel need the built extension (marked at the end of the module); the
# GPU-backend tests (test_gpu_*) run whatever the gpu_backend fixture finds (Triton needs no extension).
NO_EXTENSION = library.load_error()
OP = torch.ops.inpaint_fast.masked_tv.default if NO_EXTENSION is None else None
UNIT_ELEMENTS = 1 << 16  # kUnitElements of csrc/ops/cpu/masked_tv_kernel.cpp: image elements per work unit
LANES = 16               # float lanes of one vector step of the row kernel (8 for float64)

DTYPES = [torch.float64, torch.float32, torch.float16, torch.bfloat16]
# The loss: fp32 (fp64) accumulation from exactly upcast inputs, then rounded to the input dtype.
LOSS_TOL = {torch.float64: dict(rtol=1e-11, atol=1e-12), torch.float32: dict(rtol=2e-6, atol=1e-6),
            torch.float16: dict(rtol=1e-3, atol=1e-5), torch.bfloat16: dict(rtol=8e-3, atol=1e-4)}
# The gradient: a sum of four scaled +-w (p = 1) or w d (p = 2) terms, rounded once to the dtype;
# atol relative to the gradient's scale (terms of opposite signs cancel).
GRAD_TOL = {torch.float64: dict(rtol=1e-10, atol=1e-12), torch.float32: dict(rtol=1e-5, atol=1e-6),
            torch.float16: dict(rtol=2e-3, atol=2e-3), torch.bfloat16: dict(rtol=1.6e-2, atol=1.6e-2)}


# ---------------------------------------------------------------- inputs and the oracle

def make_image(shape, dtype=torch.float64, seed=0, ties=True):
    gen = torch.Generator().manual_seed(seed)
    img = torch.randn(shape, generator=gen, dtype=torch.float64)
    if ties:  # exact zero differences: sign(0) = 0 in the gradient
        img[..., 1::4] = img[..., 0::4][..., : img[..., 1::4].shape[-1]]  # column 4k+1 = column 4k
        img[..., 1::5, :] = img[..., 0::5, :][..., : img[..., 1::5, :].shape[-2], :]  # row 5k+1 = row 5k
    return img.to(dtype)


def make_mask(shape, kind, dtype, seed=1):
    """kind: 'binary' (random 0/1), 'box' (a rectangular hole), 'soft', 'zeros', 'ones'."""
    gen = torch.Generator().manual_seed(seed)
    h, w = shape[-2:]
    if kind == "binary":
        m = (torch.rand(shape, generator=gen) > 0.45).double()
    elif kind == "box":
        m = torch.ones(shape, dtype=torch.float64)
        m[..., h // 4: h // 4 + max(1, h // 2), w // 3: w // 3 + max(1, w // 2)] = 0
    elif kind == "soft":
        m = torch.rand(shape, generator=gen, dtype=torch.float64)
    elif kind == "zeros":
        m = torch.zeros(shape, dtype=torch.float64)
    else:
        m = torch.ones(shape, dtype=torch.float64)
    return m.to(dtype)


def region_weight(img, mask, mask_is_hole, region):
    """The oracle's region weight r in float64 (the spec's definition, through the reference's dilate)."""
    if region == "all":
        return torch.ones(1, 1, *img.shape[2:], dtype=torch.float64)
    m = mask.double()
    known = 1 - m if mask_is_hole else m
    if region == "known":
        return known
    if region == "hole":
        return 1 - known
    return tv.dilate(1 - known)


def oracle(img, mask, *, mask_is_hole=False, region="hole", p=1, normalize="mask", eps=1e-8):
    """(loss, grad) of the reference in float64."""
    x = img.detach().double().requires_grad_()
    w = region_weight(img, mask, mask_is_hole, region)
    if normalize == "sum":
        loss = tv.total_variation(x, w, p=p, normalize="mask", reduction="sum", eps=eps)
    else:
        loss = tv.total_variation(x, w, p=p, normalize=normalize, reduction="mean", eps=eps)
    if not loss.requires_grad:  # H = 1 and W = 1: the reference returns a constant 0
        return loss.detach(), torch.zeros_like(x)
    (grad,) = torch.autograd.grad(loss, x)
    return loss.detach(), grad


def ours(img, mask, **options):
    """(loss, grad) of the op through its entry function."""
    x = img.detach().clone().requires_grad_()
    loss = masked_tv(x, mask, **options)
    (grad,) = torch.autograd.grad(loss, x)
    return loss, grad


def check(img, mask, **options):
    options = {"mask_is_hole": False, "region": "hole", "p": 1, "normalize": "mask", "eps": 1e-8, **options}
    loss, grad = ours(img, mask, **options)
    ref_loss, ref_grad = oracle(img, mask, **options)
    dtype = img.dtype
    assert loss.shape == () and loss.dtype == dtype
    assert grad.shape == img.shape and grad.dtype == dtype
    torch.testing.assert_close(loss.double(), ref_loss, **LOSS_TOL[dtype])
    tol = dict(GRAD_TOL[dtype])
    tol["atol"] = tol["atol"] * max(1.0, ref_grad.abs().max().item())
    torch.testing.assert_close(grad.double(), ref_grad, **tol)
    return loss, grad


# ---------------------------------------------------------------- closed forms (pin the oracle)

def test_closed_forms():
    img = torch.tensor([[[[0.0, 1.0, 3.0], [2.0, 2.0, 2.0]]]], dtype=torch.float64)  # (1, 1, 2, 3)
    known = torch.tensor([[[[1.0, 0.0, 0.0], [1.0, 0.0, 1.0]]]], dtype=torch.float64)
    opts = dict(mask_is_hole=False, eps=1e-8)
    # all pairs: vertical |2-0|, |2-1|, |2-3| (mean 4/3), horizontal 1, 2, 0, 0 (mean 3/4)
    assert masked_tv(img, None, region="all", p=1, normalize="mask", **opts).item() == pytest.approx(4 / 3 + 3 / 4)
    assert masked_tv(img, None, region="all", p=2, normalize="sum", **opts).item() == pytest.approx(6 + 5)
    # hole pixels (0,1), (0,2), (1,1): vertical hole pair column 1 (|2-1|), horizontal (0,1)-(0,2) (|3-1|)
    assert masked_tv(img, known, region="hole", p=1, normalize="mask", **opts).item() == pytest.approx(1 + 2)
    assert masked_tv(img, known, region="hole", p=1, normalize="all", **opts).item() == pytest.approx(1 / 3 + 2 / 4)
    # known pixels (0,0), (1,0), (1,2): vertical pair column 0 (|2-0|), no horizontal pair
    assert masked_tv(img, 1 - known, region="known", p=1, normalize="mask", mask_is_hole=True,
                     eps=1e-8).item() == pytest.approx(2)
    # the hole dilated by one pixel covers the whole 2x3 image: every pair counts
    assert masked_tv(img, known, region="hole_dilated", p=1, normalize="sum", **opts).item() == pytest.approx(4 + 3)
    # gradient of the 'sum' TV at x(0,1) = 1: vertical +sign(1-2), horizontal sign(1-0) - sign(3-1)
    x = img.clone().requires_grad_()
    (g,) = torch.autograd.grad(masked_tv(x, None, region="all", p=1, normalize="sum", **opts), x)
    assert g[0, 0, 0, 1].item() == -1 + (1 - 1)
    assert g[0, 0, 1, 1].item() == 1 + (0 - 0)  # ties with both horizontal neighbours: sign(0) = 0


def test_dilated_region_closed_form():
    # one hole pixel in the middle of a 5x5 image: the dilated hole is the 3x3 block around it
    img = torch.arange(25, dtype=torch.float64).reshape(1, 1, 5, 5) ** 1.5
    known = torch.ones(1, 1, 5, 5, dtype=torch.float64)
    known[0, 0, 2, 2] = 0
    block = img[0, 0, 1:4, 1:4]
    expected = (block[1:] - block[:-1]).abs().sum() + (block[:, 1:] - block[:, :-1]).abs().sum()
    loss = masked_tv(img, known, mask_is_hole=False, region="hole_dilated", p=1, normalize="sum", eps=1e-8)
    assert loss.item() == pytest.approx(expected.item())


# ---------------------------------------------------------------- values against the oracle

MASK_KINDS = ["bool", "uint8", "binary", "soft", "zeros", "ones"]


def _mask_for(kind, shape, dtype, seed=1):
    if kind in ("bool", "uint8"):
        m = make_mask(shape, "binary", torch.float64, seed) > 0.5
        return m if kind == "bool" else m.to(torch.uint8)
    return make_mask(shape, kind, dtype, seed)


@pytest.mark.parametrize("region", list(REGION_CODES))
@pytest.mark.parametrize("mshape", ["N1HW", "NCHW", "11HW"])
def test_every_option_fp64(region, mshape):
    shape = (2, 3, 9, 21)  # W = 21: one vector step, an overlapping last step and scalar-free ends
    n, c, h, w = shape
    img = make_image(shape)
    mask_shape = {"N1HW": (n, 1, h, w), "NCHW": shape, "11HW": (1, 1, h, w)}[mshape]
    for kind, p, normalize, hole in itertools.product(MASK_KINDS, (1, 2), NORMALIZE_CODES, (False, True)):
        mask = _mask_for(kind, mask_shape, torch.float64, seed=len(kind))
        check(img, mask, mask_is_hole=hole, region=region, p=p, normalize=normalize)


@pytest.mark.parametrize("dtype", DTYPES[1:], ids=str)
@pytest.mark.parametrize("region", list(REGION_CODES))
def test_reduced_precision(dtype, region):
    shape = (2, 3, 12, 37)
    img = make_image(shape, dtype)
    for kind, p, normalize in itertools.product(["bool", "soft", "zeros"], (1, 2), ("mask", "all", "sum")):
        mask = _mask_for(kind, (2, 1, 12, 37), dtype)
        check(img, mask, mask_is_hole=kind == "soft", region=region, p=p, normalize=normalize)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_row_widths_around_the_vector_length(dtype):
    # Rows shorter than a vector (one pixel at a time), exactly one vector, one more, and several
    # vectors with and without an overlapping last step (8 lanes for float64, 16 otherwise).
    for w in [1, 2, 3, 7, 8, 9, 15, 16, 17, 18, 31, 32, 33, 47, 48, 49, 64, 100]:
        img = make_image((1, 2, 5, w), dtype, seed=w)
        mask = make_mask((1, 1, 5, w), "binary", dtype, seed=w)
        for region, p in [("hole", 1), ("all", 2), ("hole_dilated", 1), ("known", 2)]:
            check(img, mask, region=region, p=p, normalize="mask")


@pytest.mark.parametrize("shape", [(1, 1, 1, 1), (2, 3, 1, 40), (2, 3, 40, 1), (1, 1, 2, 2), (3, 2, 7, 5)])
@pytest.mark.parametrize("normalize", list(NORMALIZE_CODES))
def test_degenerate_and_odd_shapes(shape, normalize):
    # A direction without pairs (H = 1 or W = 1) contributes 0, never NaN.
    img = make_image(shape, torch.float32, seed=sum(shape))
    mask = make_mask((shape[0], 1) + shape[2:], "binary", torch.float32)
    for region, p in itertools.product(REGION_CODES, (1, 2)):
        loss, grad = check(img, mask, region=region, p=p, normalize=normalize)
        assert torch.isfinite(loss) and torch.isfinite(grad).all()


def test_several_work_units_and_pre_pass_blocks():
    # Row blocks: ceil(2**16 / (C W)) rows per unit. W = 2050, C = 1: 32 rows, so H = 70 gives 3
    # units per image (a block's first row needs the row above it); the pre-pass (ceil(2**16 / W)
    # rows of the mask) is cut the same way. C = 3, W = 700: 32 rows, 2 units of 3 channels.
    assert -(-UNIT_ELEMENTS // 2050) == 32 and -(-UNIT_ELEMENTS // (3 * 700)) == 32
    for shape, mshape, region, p in [((2, 1, 70, 2050), (2, 1, 70, 2050), "hole", 1),
                                     ((1, 2, 70, 2050), (1, 2, 70, 2050), "hole_dilated", 2),
                                     ((1, 3, 40, 700), (1, 1, 40, 700), "hole_dilated", 1)]:
        img = make_image(shape, torch.float32, seed=shape[-1])
        mask = make_mask(mshape, "box", torch.float32)
        check(img, mask, region=region, p=p, normalize="mask")


def test_empty_batch_gives_zero():
    img = torch.randn(0, 3, 4, 4, dtype=torch.float64)
    mask = torch.ones(1, 1, 4, 4, dtype=torch.bool)
    for normalize in NORMALIZE_CODES:
        loss = masked_tv(img, mask, mask_is_hole=False, region="hole", p=1, normalize=normalize, eps=1e-8)
        assert loss.item() == 0
    x = img.clone().requires_grad_()
    (g,) = torch.autograd.grad(masked_tv(x, mask, mask_is_hole=False, region="hole", p=1, normalize="mask",
                                         eps=1e-8), x)
    assert g.shape == img.shape


def test_empty_region_is_zero_with_zero_gradient():
    img = make_image((2, 3, 8, 20), torch.float32)
    for region, mask in [("hole", torch.ones(2, 1, 8, 20)), ("known", torch.zeros(2, 1, 8, 20)),
                         ("hole_dilated", torch.ones(1, 1, 8, 20, dtype=torch.uint8))]:
        loss, grad = ours(img, mask, mask_is_hole=False, region=region, p=1, normalize="mask", eps=1e-8)
        assert loss.item() == 0 and torch.equal(grad, torch.zeros_like(grad))


def test_eps_clamps_a_tiny_soft_area():
    img = make_image((1, 1, 6, 20))
    mask = torch.full((1, 1, 6, 20), 1 - 1e-6, dtype=torch.float64)  # hole weight 1e-6: pair areas ~1e-10
    check(img, mask, region="hole", p=1, normalize="mask", eps=1e-8)
    check(img, mask, region="hole", p=2, normalize="mask", eps=1e-3)


# ---------------------------------------------------------------- layouts and strides

def _channels_last(t):
    return t.contiguous(memory_format=torch.channels_last)


def _strided(t):  # every other column of a wider tensor: planes are not contiguous
    wide = torch.zeros(t.shape[:-1] + (2 * t.shape[-1],), dtype=t.dtype, device=t.device)
    wide[..., ::2] = t
    return wide[..., ::2]


def _channel_slice(t):  # a slice along C: planes contiguous, read in place
    wide = torch.zeros((t.shape[0], t.shape[1] + 2) + t.shape[2:], dtype=t.dtype, device=t.device)
    wide[:, 1:-1] = t
    return wide[:, 1:-1]


def _transposed(t):  # H and W swapped in memory
    return t.transpose(2, 3).contiguous().transpose(2, 3)


@pytest.mark.parametrize("layout", [_channels_last, _strided, _channel_slice, _transposed],
                         ids=lambda f: f.__name__.strip("_"))
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_layouts(layout, dtype):
    img = make_image((2, 3, 9, 35), dtype)
    mask = make_mask((2, 3, 9, 35), "soft", dtype)
    img_l, mask_l = layout(img), layout(mask)
    assert not img_l.is_contiguous()
    opts = dict(mask_is_hole=False, region="hole_dilated", p=1, normalize="mask", eps=1e-8)
    loss_l, grad_l = check(img_l, mask_l, **opts)
    loss, grad = ours(img, mask, **opts)
    assert torch.equal(loss_l, loss) and torch.equal(grad_l, grad)  # the layout changes nothing, bitwise


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16], ids=str)
def test_channels_last_read_in_place(dtype):
    # A channels_last image with a mask shared by its channels is read in place: rows of W * C
    # interleaved elements, neighbours C apart (vector steps of 16 / 8 lanes, shuffles at the row
    # ends, an overlapping last step). The gradient is channels_last and equals, element for
    # element, the one of the same image in NCHW.
    widths = [1, 2, 5, 6, 7, 8, 9, 16, 21, 33] if dtype != torch.bfloat16 else [5, 6, 11]
    for c, w in itertools.product([2, 3, 4, 7], widths):
        img = _channels_last(make_image((2, c, 6, w), dtype, seed=c * w))
        mask = make_mask((2, 1, 6, w), "binary", dtype, seed=w)
        for region, p in [("hole", 1), ("hole_dilated", 2), ("all", 1)]:
            loss, grad = check(img, mask, region=region, p=p, normalize="mask")
            assert grad.is_contiguous(memory_format=torch.channels_last)
            if c > 1 and w > 1:
                assert not grad.is_contiguous()
            _, grad_nchw = ours(img.contiguous(), mask, mask_is_hole=False, region=region, p=p, normalize="mask",
                                eps=1e-8)
            assert torch.equal(grad, grad_nchw)


def test_channels_last_fallbacks_and_batch_slices():
    # Per-channel masks and 8+ channels: copied to NCHW (contiguous gradient); a batch slice of a
    # channels_last tensor is read in place.
    img = _channels_last(make_image((2, 3, 5, 20), torch.float32))
    per_channel = make_mask((2, 3, 5, 20), "binary", torch.float32)
    loss, grad = check(img, per_channel, region="hole", p=1, normalize="mask")
    assert grad.is_contiguous()
    wide = _channels_last(make_image((1, 8, 5, 20), torch.float32))
    loss, grad = check(wide, make_mask((1, 1, 5, 20), "binary", torch.float32), region="known", p=2,
                       normalize="all")
    assert grad.is_contiguous()
    batch = _channels_last(make_image((4, 3, 7, 30), torch.float32))[1:3]
    mask = make_mask((2, 1, 7, 30), "box", torch.float32)
    loss, grad = check(batch, mask, region="hole_dilated", p=1, normalize="sum")
    assert grad.is_contiguous(memory_format=torch.channels_last) and not grad.is_contiguous()


def test_broadcast_masks_read_in_place():
    img = make_image((3, 2, 8, 40), torch.float32)
    plane = make_mask((1, 1, 8, 40), "binary", torch.float32)
    expanded = plane.expand(3, 2, 8, 40)  # stride 0 along N and C
    assert expanded.stride(0) == 0 and expanded.stride(1) == 0
    for region in ("known", "hole_dilated"):
        loss_e, grad_e = check(img, expanded, region=region, p=2, normalize="mask")
        loss_p, grad_p = ours(img, plane, mask_is_hole=False, region=region, p=2, normalize="mask", eps=1e-8)
        assert torch.equal(loss_e, loss_p) and torch.equal(grad_e, grad_p)


# ---------------------------------------------------------------- autograd machinery

def test_gradcheck_fp64():
    gen = torch.Generator().manual_seed(7)
    h, w = 3, 18
    # p = 1 is differentiable where no difference is 0: strictly increasing along rows and columns
    base = torch.arange(h * w, dtype=torch.float64).reshape(1, 1, h, w)
    img = (base + 0.3 * torch.rand(1, 2, h, w, generator=gen, dtype=torch.float64)).requires_grad_()
    mask = torch.rand(1, 1, h, w, generator=gen, dtype=torch.float64)
    for region, p, normalize in [("hole", 1, "mask"), ("hole_dilated", 2, "all")]:
        def fn(x):
            return masked_tv(x, mask, mask_is_hole=False, region=region, p=p, normalize=normalize, eps=1e-8)
        assert torch.autograd.gradcheck(fn, (img,))


def test_retained_graph_runs_backward_twice():
    img = make_image((1, 2, 5, 20)).requires_grad_()
    mask = make_mask((1, 1, 5, 20), "binary", torch.float64)
    loss = masked_tv(img, mask, mask_is_hole=False, region="hole", p=1, normalize="mask", eps=1e-8)
    (g1,) = torch.autograd.grad(loss, img, retain_graph=True)
    torch.testing.assert_close(g1, oracle(img, mask)[1])
    (g2,) = torch.autograd.grad(2 * loss, img)  # the saved gradient is not consumed by a backward
    torch.testing.assert_close(g2, 2 * oracle(img, mask)[1])


def test_grad_output_scales_the_gradient():
    img = make_image((2, 2, 6, 20)).requires_grad_()
    mask = make_mask((2, 1, 6, 20), "soft", torch.float64)
    loss = masked_tv(img, mask, mask_is_hole=True, region="hole", p=2, normalize="all", eps=1e-8)
    (g,) = torch.autograd.grad(loss * -2.5, img)
    torch.testing.assert_close(g, -2.5 * oracle(img, mask, mask_is_hole=True, p=2, normalize="all")[1])


def test_double_backward_raises():
    img = make_image((1, 2, 5, 20)).requires_grad_()
    mask = make_mask((1, 1, 5, 20), "binary", torch.float64)
    for p in (1, 2):
        loss = masked_tv(img, mask, mask_is_hole=False, region="hole", p=p, normalize="mask", eps=1e-8)
        with pytest.raises(RuntimeError, match="double backward"):
            torch.autograd.grad(loss, img, create_graph=True)


def test_mask_requiring_grad_is_rejected():
    img = make_image((1, 1, 4, 20)).requires_grad_()
    mask = make_mask((1, 1, 4, 20), "soft", torch.float64).requires_grad_()
    with pytest.raises(RuntimeError, match="does not differentiate its mask"):
        masked_tv(img, mask, mask_is_hole=False, region="hole", p=1, normalize="mask", eps=1e-8)


def test_no_gradient_buffer_without_grad():
    img = make_image((1, 2, 4, 20), torch.float32)
    mask = make_mask((1, 1, 4, 20), "binary", torch.float32)
    for requires_grad, grad_mode in [(False, True), (True, False)]:
        x = img.clone().requires_grad_(requires_grad)
        with torch.set_grad_enabled(grad_mode):
            loss = masked_tv(x, mask, mask_is_hole=False, region="hole", p=1, normalize="mask", eps=1e-8)
        assert loss.grad_fn is None
        torch.testing.assert_close(loss.double(), oracle(img, mask)[0], **LOSS_TOL[torch.float32])
    loss, grad = OP(img, mask, False, REGION_CODES["hole"], 1, NORMALIZE_CODES["mask"], 1e-8, False)
    assert grad.shape == (0,) and loss.dtype == torch.float32


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16], ids=str)
def test_opcheck(dtype):
    img = make_image((2, 3, 5, 18), dtype)
    mask = make_mask((2, 1, 5, 18), "binary", dtype)
    for args in [(img, mask, False, 2, 1, 1, 1e-8, True), (img.clone().requires_grad_(), mask > 0.5, True, 3, 2, 2,
                                                            1e-8, True),
                 (_channels_last(img), mask[:1].to(torch.uint8), False, 1, 1, 0, 1e-8, False),
                 (img, None, False, 0, 2, 1, 1e-8, True)]:
        torch.library.opcheck(OP, args)


def test_extension_reports_the_cpu_kernel():
    assert "cpu" in library.kernels("masked_tv")


def test_torch_compile_fullgraph():
    img = make_image((2, 3, 8, 20), torch.float32)
    mask = make_mask((2, 1, 8, 20), "box", torch.float32)

    def loss_fn(x, m):
        return 0.5 * masked_tv(x, m, mask_is_hole=False, region="hole_dilated", p=1, normalize="mask", eps=1e-8)

    torch._dynamo.reset()
    compiled = torch.compile(loss_fn, fullgraph=True, backend="aot_eager")
    x = img.clone().requires_grad_()
    loss = compiled(x, mask)
    loss.backward()
    ref_loss, ref_grad = oracle(img, mask, region="hole_dilated")
    torch.testing.assert_close(loss.double(), 0.5 * ref_loss, **LOSS_TOL[torch.float32])
    torch.testing.assert_close(x.grad.double(), 0.5 * ref_grad, rtol=1e-5, atol=1e-7)


# ---------------------------------------------------------------- determinism

def _run(img, mask, **opts):
    x = img.clone().requires_grad_()
    loss = masked_tv(x, mask, **opts)
    (g,) = torch.autograd.grad(loss, x)
    return loss, g


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=str)
def test_bitwise_deterministic_across_runs_and_threads(dtype):
    # 4 images x 7 row blocks (ceil(2**16 / (2 * 600)) = 55 rows of 380) = 28 units: split between threads.
    img = make_image((4, 2, 380, 600), dtype, seed=11)
    mask = make_mask((4, 1, 380, 600), "soft", dtype)
    opts = dict(mask_is_hole=False, region="hole_dilated", p=1, normalize="mask", eps=1e-8)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        first, second = _run(img, mask, **opts), _run(img, mask, **opts)
        torch.set_num_threads(1)
        single = _run(img, mask, **opts)
    finally:
        torch.set_num_threads(threads)
    for a, b, c in zip(first, second, single):
        assert torch.equal(a, b) and torch.equal(a, c)
    torch.testing.assert_close(first[0].double(), oracle(img, mask, **opts)[0], **LOSS_TOL[dtype])


# ---------------------------------------------------------------- C++ checks

def test_cpp_checks():
    img = torch.rand(2, 3, 4, 5)
    mask = torch.ones(2, 1, 4, 5)
    good = (img, mask, False, 2, 1, 1, 1e-8, True)

    def call(**changes):
        names = ["img", "mask", "mask_is_hole", "region", "p", "normalize", "eps", "compute_grad"]
        args = dict(zip(names, good))
        args.update(changes)
        return OP(*[args[n] for n in names])

    call()  # the good call passes
    bad = [
        (dict(img=torch.rand(3, 4, 5)), "4-D"),
        (dict(img=img.int()), "float16, bfloat16, float32 or float64"),
        (dict(region=4), "region must be"),
        (dict(p=3), "p must be 1 or 2"),
        (dict(normalize=3), "normalize must be"),
        (dict(eps=-1.0), "eps must be"),
        (dict(mask=None), "needs a mask"),
        (dict(mask=torch.ones(2, 2, 4, 5)), "mask shape"),
        (dict(mask=torch.ones(2, 1, 4, 6)), "mask shape"),
        (dict(mask=torch.ones(1, 4, 5)), "mask shape"),
        (dict(mask=torch.ones(2, 1, 4, 5, dtype=torch.float64)), "mask must be bool, uint8 or img's dtype"),
        (dict(mask=torch.ones(2, 1, 4, 5, dtype=torch.int32)), "mask must be bool, uint8 or img's dtype"),
    ]
    for changes, match in bad:
        with pytest.raises(RuntimeError, match=match):
            call(**changes)


# ---------------------------------------------------------------- marks of the C++ CPU kernel's tests

_needs_extension = pytest.mark.skipif(NO_EXTENSION is not None, reason=str(NO_EXTENSION))
for _name, _fn in list(globals().items()):
    if _name.startswith("test_") and callable(_fn):
        globals()[_name] = _needs_extension(_fn)
del _name, _fn


# ================================================================ GPU backends (CUDA C++ and Triton)
# Through the gpu_backend fixture: 'cuda' (the CUDA C++ kernel of inpaint_fast::masked_tv) and
# 'triton' (inpaint_fast::masked_tv_triton) on a GPU; here, without one, Triton runs interpreted on
# CPU tensors. Same oracle as above (float64 reference). Shapes span several kernel tiles (the
# interpreter's tiles: 64 columns, 1024 pixels; on a GPU 128 x 4), so tile halos are exercised.

def _gpu(t, device):
    return t.to(device) if t is not None else None


def gpu_check(name, device, img, mask, **options):
    """check() for the backend `name`: loss and gradient against the float64 oracle (on the CPU)."""
    options = {"mask_is_hole": False, "region": "hole", "p": 1, "normalize": "mask", "eps": 1e-8, **options}
    x = _gpu(img, device).detach().requires_grad_()
    loss = masked_tv(x, _gpu(mask, device), backend=name, **options)
    (grad,) = torch.autograd.grad(loss, x)
    ref_loss, ref_grad = oracle(img.cpu(), None if mask is None else mask.cpu(), **options)
    dtype = img.dtype
    assert loss.shape == () and loss.dtype == dtype and loss.device.type == device.type
    assert grad.shape == img.shape and grad.dtype == dtype
    torch.testing.assert_close(loss.double().cpu(), ref_loss, **LOSS_TOL[dtype])
    tol = dict(GRAD_TOL[dtype])
    tol["atol"] = tol["atol"] * max(1.0, ref_grad.abs().max().item())
    torch.testing.assert_close(grad.double().cpu(), ref_grad, **tol)
    return loss, grad


def _raw_op(name):
    return torch.ops.inpaint_fast.masked_tv_triton.default if name == "triton" else torch.ops.inpaint_fast.masked_tv.default


GPU_SHAPE = (2, 2, 20, 70)  # interpreted Triton: 2 x 2 tiles per image (16 rows x 64 columns)


@pytest.mark.parametrize("region", list(REGION_CODES))
def test_gpu_every_option_fp64(gpu_backend, region):
    name, device = gpu_backend
    n, c, h, w = GPU_SHAPE
    img = make_image(GPU_SHAPE, seed=3)
    mshapes = {"N1HW": (n, 1, h, w), "NCHW": GPU_SHAPE, "11HW": (1, 1, h, w)}
    cases = [("bool", "N1HW", 1, "mask", False), ("uint8", "NCHW", 2, "mask", True),
             ("soft", "11HW", 1, "all", True), ("soft", "NCHW", 2, "sum", False),
             ("box", "11HW", 2, "mask", True), ("zeros", "N1HW", 1, "mask", False)]
    for kind, mshape, p, normalize, hole in cases:
        mask = _mask_for(kind, mshapes[mshape], torch.float64, seed=len(kind)) if kind != "box" else \
            make_mask(mshapes[mshape], "box", torch.float64)
        gpu_check(name, device, img, mask, mask_is_hole=hole, region=region, p=p, normalize=normalize)


def _gpu_dtypes():
    return [torch.float32, torch.float16] + ([torch.bfloat16] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
def test_gpu_reduced_precision(gpu_backend, dtype):
    name, device = gpu_backend
    if dtype == torch.bfloat16 and device.type != "cuda":
        pytest.skip("bfloat16 is only checked on a GPU (the Triton interpreter's bf16 is not faithful)")
    img = make_image((2, 2, 18, 67), dtype, seed=5)
    for region, kind, p, normalize in [("all", "bool", 2, "mask"), ("known", "soft", 1, "all"),
                                       ("hole", "uint8", 2, "sum"), ("hole_dilated", "binary", 1, "mask"),
                                       ("hole_dilated", "soft", 2, "all")]:
        mask = _mask_for(kind, (2, 1, 18, 67), dtype)
        gpu_check(name, device, img, mask, mask_is_hole=kind == "soft", region=region, p=p, normalize=normalize)


@pytest.mark.parametrize("shape", [(1, 1, 1, 1), (2, 3, 1, 40), (2, 3, 40, 1), (1, 1, 2, 2), (3, 2, 7, 5)])
def test_gpu_degenerate_and_odd_shapes(gpu_backend, shape):
    name, device = gpu_backend
    img = make_image(shape, torch.float32, seed=sum(shape))
    mask = make_mask((shape[0], 1) + shape[2:], "binary", torch.float32)
    for region, p, normalize, eps in [("hole", 1, "mask", 1e-8), ("hole_dilated", 2, "mask", 0.0),
                                      ("all", 1, "all", 1e-8), ("known", 2, "sum", 1e-8)]:
        loss, grad = gpu_check(name, device, img, mask, region=region, p=p, normalize=normalize, eps=eps)
        assert torch.isfinite(loss) and torch.isfinite(grad).all()


def test_gpu_empty_full_and_tiny_regions(gpu_backend):
    name, device = gpu_backend
    img = make_image((2, 3, 8, 20), torch.float32)
    for region, mask in [("hole", torch.ones(2, 1, 8, 20)), ("known", torch.zeros(2, 1, 8, 20)),
                         ("hole_dilated", torch.ones(1, 1, 8, 20, dtype=torch.uint8))]:
        x = img.to(device).requires_grad_()
        loss = masked_tv(x, mask.to(device), mask_is_hole=False, region=region, p=1, normalize="mask", eps=1e-8,
                         backend=name)
        (grad,) = torch.autograd.grad(loss, x)
        assert loss.item() == 0 and torch.equal(grad, torch.zeros_like(grad))
    # a full region: every pair counts (= region 'all')
    gpu_check(name, device, img, torch.ones(2, 1, 8, 20, dtype=torch.bool), region="known", p=2, normalize="mask")
    # a tiny soft area: eps clamps the normaliser
    tiny = torch.full((1, 1, 6, 20), 1 - 1e-6, dtype=torch.float64)
    gpu_check(name, device, make_image((1, 1, 6, 20)), tiny, region="hole", p=1, normalize="mask", eps=1e-8)
    # an empty batch
    empty = torch.zeros(0, 3, 4, 4, device=device, requires_grad=True)
    loss = masked_tv(empty, torch.ones(1, 1, 4, 4, dtype=torch.bool, device=device), mask_is_hole=False,
                     region="hole", p=1, normalize="mask", eps=1e-8, backend=name)
    assert loss.item() == 0
    (grad,) = torch.autograd.grad(loss, empty)
    assert grad.shape == empty.shape


@pytest.mark.parametrize("layout", [_channels_last, _strided, _channel_slice, _transposed],
                         ids=lambda f: f.__name__.strip("_"))
def test_gpu_layouts(gpu_backend, layout):
    name, device = gpu_backend
    img = make_image((2, 3, 9, 35), torch.float32)
    for mshape in [(2, 1, 9, 35), (2, 3, 9, 35)]:
        mask = make_mask(mshape, "soft", torch.float32)
        img_l, mask_l = layout(img.to(device)), layout(mask.to(device))
        assert not img_l.is_contiguous()
        opts = dict(mask_is_hole=False, region="hole_dilated", p=1, normalize="mask", eps=1e-8)
        x = img_l.detach().requires_grad_()
        loss = masked_tv(x, mask_l, backend=name, **opts)
        (grad,) = torch.autograd.grad(loss, x)
        ref_loss, ref_grad = oracle(img, mask, **opts)
        torch.testing.assert_close(loss.double().cpu(), ref_loss, **LOSS_TOL[torch.float32])
        torch.testing.assert_close(grad.double().cpu(), ref_grad, rtol=1e-5, atol=1e-6)
        # the gradient's layout is the one the fake kernel announces
        if native_channels_last(img_l, mask_l, REGION_CODES["hole_dilated"]):
            assert grad.is_contiguous(memory_format=torch.channels_last) and not grad.is_contiguous()
        else:
            assert grad.is_contiguous()


def test_gpu_channels_last_and_broadcast_masks(gpu_backend):
    name, device = gpu_backend
    for c, w in [(2, 9), (3, 33), (7, 5)]:
        img = _channels_last(make_image((2, c, 6, w), torch.float32, seed=c * w))
        mask = make_mask((2, 1, 6, w), "binary", torch.float32, seed=w)
        for region, p in [("hole", 1), ("hole_dilated", 2), ("all", 1)]:
            _, grad = gpu_check(name, device, img, mask, region=region, p=p, normalize="mask")
            assert grad.is_contiguous(memory_format=torch.channels_last)
    # a batch slice of a channels_last tensor, and an expanded (stride-0) mask
    batch = _channels_last(make_image((4, 3, 7, 30), torch.float32))[1:3]
    gpu_check(name, device, batch, make_mask((2, 1, 7, 30), "box", torch.float32), region="hole_dilated", p=1,
              normalize="sum")
    plane = make_mask((1, 1, 8, 40), "binary", torch.float32).to(device)
    expanded = plane.expand(3, 2, 8, 40)  # stride 0 along N and C, on the device
    assert expanded.stride(0) == 0 and expanded.stride(1) == 0
    gpu_check(name, device, make_image((3, 2, 8, 40), torch.float32), expanded, region="known", p=2,
              normalize="mask")


def test_gpu_no_gradient_buffer_without_grad(gpu_backend):
    name, device = gpu_backend
    img = make_image((1, 2, 4, 20), torch.float32).to(device)
    mask = make_mask((1, 1, 4, 20), "binary", torch.float32).to(device)
    loss, grad = _raw_op(name)(img, mask, False, REGION_CODES["hole"], 1, NORMALIZE_CODES["mask"], 1e-8, False)
    assert grad.shape == (0,) and loss.dtype == torch.float32
    torch.testing.assert_close(loss.double().cpu(), oracle(img.cpu(), mask.cpu())[0], **LOSS_TOL[torch.float32])


def test_gpu_gradcheck_fp64(gpu_backend):
    name, device = gpu_backend
    gen = torch.Generator().manual_seed(7)
    h, w = 3, 7
    base = torch.arange(h * w, dtype=torch.float64).reshape(1, 1, h, w)  # no zero differences (p = 1)
    img = (base + 0.3 * torch.rand(1, 2, h, w, generator=gen, dtype=torch.float64)).to(device).requires_grad_()
    mask = torch.rand(1, 1, h, w, generator=gen, dtype=torch.float64).to(device)
    for region, p, normalize in [("hole", 1, "mask"), ("hole_dilated", 2, "all")]:
        def fn(x):
            return masked_tv(x, mask, mask_is_hole=False, region=region, p=p, normalize=normalize, eps=1e-8,
                             backend=name)
        assert torch.autograd.gradcheck(fn, (img,), fast_mode=TRITON_INTERPRETED)


def test_gpu_opcheck(gpu_backend):
    name, device = gpu_backend
    img = make_image((2, 3, 5, 18), torch.float32).to(device)
    mask = make_mask((2, 1, 5, 18), "binary", torch.float32).to(device)
    cases = [(_channels_last(img), mask[:1].to(torch.uint8), False, 1, 1, 0, 1e-8, False),
             (_channels_last(img).requires_grad_(), mask, False, 2, 1, 1, 1e-8, True)]
    if device.type == "cuda":
        cases += [(img.clone().requires_grad_(), mask > 0.5, True, 3, 2, 2, 1e-8, True),
                  (img, None, False, 0, 2, 1, 1e-8, True)]
    for args in cases:
        torch.library.opcheck(_raw_op(name), args)


def test_gpu_bitwise_deterministic(gpu_backend):
    name, device = gpu_backend
    img = make_image((1, 2, 20, 130), torch.float32, seed=11).to(device)
    mask = make_mask((1, 1, 20, 130), "soft", torch.float32).to(device)
    opts = dict(mask_is_hole=False, region="hole_dilated", p=1, normalize="mask", eps=1e-8)
    runs = []
    for _ in range(2):
        x = img.clone().requires_grad_()
        loss = masked_tv(x, mask, backend=name, **opts)
        runs.append((loss, torch.autograd.grad(loss, x)[0]))
    assert torch.equal(runs[0][0], runs[1][0]) and torch.equal(runs[0][1], runs[1][1])
    torch.testing.assert_close(runs[0][0].double().cpu(), oracle(img.cpu(), mask.cpu(), **opts)[0],
                               **LOSS_TOL[torch.float32])


def test_gpu_public_api_uses_the_backend(gpu_backend):
    # inpaint_fast.total_variation under use_backend(name) runs the backend's op (the fixture forces it)
    import inpaint_fast
    from inpaint_fast.ops import backend as _backend
    name, device = gpu_backend
    assert _backend.choose("masked_tv", device) == name
    img = make_image((2, 3, 10, 30), torch.float32).to(device)
    mask = make_mask((2, 1, 10, 30), "box", torch.float32).to(device)
    x = img.clone().requires_grad_()
    loss = inpaint_fast.functional.total_variation(x, mask=mask, region="hole", p=1)
    loss.backward()
    ref_loss, ref_grad = oracle(img.cpu(), mask.cpu(), region="hole")
    torch.testing.assert_close(loss.double().cpu(), ref_loss, **LOSS_TOL[torch.float32])
    torch.testing.assert_close(x.grad.double().cpu(), ref_grad, rtol=1e-5, atol=1e-6)


def test_gpu_torch_compile_fullgraph(gpu_backend):
    name, device = gpu_backend
    img = make_image((2, 3, 8, 20), torch.float32).to(device)
    mask = make_mask((2, 1, 8, 20), "box", torch.float32).to(device)

    def loss_fn(x, m):
        return 0.5 * masked_tv(x, m, mask_is_hole=False, region="hole_dilated", p=1, normalize="mask", eps=1e-8,
                               backend=name)

    torch._dynamo.reset()
    compiled = torch.compile(loss_fn, fullgraph=True, backend="aot_eager" if device.type == "cpu" else "inductor")
    x = img.clone().requires_grad_()
    loss = compiled(x, mask)
    loss.backward()
    ref_loss, ref_grad = oracle(img.cpu(), mask.cpu(), region="hole_dilated")
    torch.testing.assert_close(loss.double().cpu(), 0.5 * ref_loss, **LOSS_TOL[torch.float32])
    torch.testing.assert_close(x.grad.double().cpu(), 0.5 * ref_grad, rtol=1e-5, atol=1e-7)


_SM90_COMPILE = r"""
import json
import torch
import inpaint_fast  # noqa: F401  (registers the op: triton_op, since nothing is interpreted)
from tests.triton_aot import aot_forward_graph, compile_sm90
from inpaint_fast.ops.triton import masked_tv as k

DIV16 = ("x_ptr", "m_ptr", "g_ptr", "part_ptr", "scale_ptr")
for img, mask, region, per_c, p, grad in (("fp32", "i1", 3, False, 1, True), ("bf16", "u8", 2, True, 2, True),
                                           ("fp16", "fp16", 1, False, 1, False), ("fp64", "i1", 0, False, 2, True)):
    f64 = img == "fp64"
    compile_sm90(k._tv_kernel, dict(x_ptr="*" + img, m_ptr="*" + mask, g_ptr="*" + img, part_ptr="*fp64",
                                    scale_ptr="*fp64", xsn="i64"),
                 dict(REGION=region, MASK_IS_HOLE=False, MASK_PER_C=per_c, P=p, COMPUTE_GRAD=grad, F64=f64,
                      BLOCK_H=4, BLOCK_W=128), DIV16)
    if region:
        compile_sm90(k._area_kernel, dict(m_ptr="*" + mask, part_ptr="*fp64"),
                     dict(REGION=region, MASK_IS_HOLE=True, F64=f64, BLOCK_H=4, BLOCK_W=128), DIV16)
img, mask = torch.randn(2, 3, 4, 5), torch.rand(2, 1, 4, 5) > 0.5
print(json.dumps(aot_forward_graph(lambda x, m: torch.ops.inpaint_fast.masked_tv_triton(x, m, False, 3, 1, 1, 1e-8, True),
                                   img, mask)))
"""


def test_triton_kernels_compile_for_sm90():
    """The interpreter never runs Triton's compiler: the kernels compiled for sm_90 ahead of time (bool
    masks as i1 included), and torch.compile's trace of the op, whose bool mask reaches the kernels
    unconverted (Inductor in torch 2.11 cannot lower the bool -> uint8 view the launcher used to make)."""
    import json
    require_sm90()
    done = run_script(_SM90_COMPILE)
    assert done.returncode == 0, done.stderr[-3000:]
    graph = json.loads(done.stdout.strip().splitlines()[-1])
    assert graph.count("triton_kernel_wrapper_functional(") == 2, graph
    assert "view.dtype" not in graph and "'m_ptr': arg1_1" in graph, graph
