"""inpaint_fast::masked_error_sums (C++ CPU kernel) against the pure-PyTorch oracle.

Oracle: ``inpaint_fast.reference.pixel`` evaluated in float64 on the same (upcast) inputs:
``sums == [l1(sum), l2(sum), weight.expand_as(pred).sum()]`` and the gradients are those of
autograd through the reference.
"""
import pytest
import torch

from inpaint_fast import _extension

if _extension.load_error() is not None:
    pytest.skip(_extension.load_error(), allow_module_level=True)

from inpaint_fast.ops.masked_error_sums import masked_error_sums  # noqa: E402
from inpaint_fast.reference import pixel  # noqa: E402

OP = torch.ops.inpaint_fast.masked_error_sums.default
BACKWARD_OP = torch.ops.inpaint_fast.masked_error_sums_backward.default
SEGMENT = 4096  # kSegment of csrc/ops/cpu/masked_error_sums_kernel.cpp: elements per work unit

DTYPES = [torch.float64, torch.float32, torch.float16, torch.bfloat16]
# Sums are accumulated in float32 (float64 for float64) from the exactly upcast inputs.
SUM_TOL = {torch.float64: dict(rtol=1e-12, atol=1e-12), torch.float32: dict(rtol=2e-6, atol=1e-5),
           torch.float16: dict(rtol=2e-6, atol=1e-5), torch.bfloat16: dict(rtol=2e-6, atol=1e-5)}
# Gradients are rounded once to the input dtype.
GRAD_TOL = {torch.float64: dict(rtol=1e-12, atol=1e-12), torch.float32: dict(rtol=1e-6, atol=1e-6),
            torch.float16: dict(rtol=1e-3, atol=1e-4), torch.bfloat16: dict(rtol=8e-3, atol=1e-3)}


def make_weight(shape, kind, dtype, gen):
    if kind == "binary":
        w = (torch.rand(shape, generator=gen) > 0.4).double()
    elif kind == "soft":
        w = torch.rand(shape, generator=gen, dtype=torch.float64)
    elif kind == "zeros":
        w = torch.zeros(shape, dtype=torch.float64)
    else:
        w = torch.ones(shape, dtype=torch.float64)
    return w.to(dtype)


def make_inputs(shape, dtype, weight_shape=None, kind="soft", seed=0, ties=True):
    gen = torch.Generator().manual_seed(seed)
    pred = torch.randn(shape, generator=gen, dtype=torch.float64).to(dtype)
    target = torch.randn(shape, generator=gen, dtype=torch.float64).to(dtype)
    if ties:  # exact zeros of d: sign(0) = 0 in the gradient
        target[..., ::5] = pred[..., ::5]
    n, c, h, w = shape
    weight = make_weight(weight_shape or (n, 1, h, w), kind, dtype, gen)
    return pred, target, weight


def oracle_sums(pred, target, weight):
    p, t, w = pred.double(), target.double(), weight.double()
    return torch.stack([pixel.l1(p, t, w, reduction="sum"), pixel.l2(p, t, w, reduction="sum"),
                        w.expand_as(p).sum()])


def oracle_grads(pred, target, weight, g):
    p = pred.double().requires_grad_()
    t = target.double().requires_grad_()
    w = weight.double()
    g = g.double()
    loss = (g[0] * pixel.l1(p, t, w, reduction="sum") + g[1] * pixel.l2(p, t, w, reduction="sum")
            + g[2] * w.expand_as(p).sum())
    return torch.autograd.grad(loss, (p, t))


def op_grads(pred, target, weight, g):
    p = pred.detach().clone().requires_grad_()
    t = target.detach().clone().requires_grad_()
    sums = masked_error_sums(p, t, weight)
    return torch.autograd.grad(sums, (p, t), grad_outputs=g.to(sums.dtype))


def check_forward(pred, target, weight):
    sums = masked_error_sums(pred, target, weight)
    expected_dtype = torch.float64 if pred.dtype == torch.float64 else torch.float32
    assert sums.shape == (3,) and sums.dtype == expected_dtype
    torch.testing.assert_close(sums.double(), oracle_sums(pred, target, weight), **SUM_TOL[pred.dtype])
    return sums


def check_backward(pred, target, weight, seed=1):
    g = torch.randn(3, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    gp, gt = op_grads(pred, target, weight, g)
    rp, rt = oracle_grads(pred, target, weight, g)
    assert gp.dtype == pred.dtype and gp.shape == pred.shape
    assert gt.dtype == target.dtype and gt.shape == target.shape
    torch.testing.assert_close(gp.double(), rp, **GRAD_TOL[pred.dtype])
    torch.testing.assert_close(gt.double(), rt, **GRAD_TOL[pred.dtype])


# ---------------------------------------------------------------- values against the oracle

@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("wshape", ["N1HW", "NCHW", "11HW"])
@pytest.mark.parametrize("kind", ["binary", "soft", "zeros", "ones"])
def test_forward_backward_match_reference(dtype, wshape, kind):
    shape = (2, 3, 17, 19)
    n, c, h, w = shape
    weight_shape = {"N1HW": (n, 1, h, w), "NCHW": shape, "11HW": (1, 1, h, w)}[wshape]
    pred, target, weight = make_inputs(shape, dtype, weight_shape, kind)
    sums = check_forward(pred, target, weight)
    if kind == "zeros":
        assert torch.equal(sums, torch.zeros_like(sums))
    check_backward(pred, target, weight)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_several_segments_per_row(dtype):
    # H*W = 8643 = 2 full segments + a 451-element tail; also 1 element less than a segment.
    assert 67 * 129 > 2 * SEGMENT and (67 * 129) % SEGMENT != 0
    for shape in [(1, 2, 67, 129), (1, 1, 1, SEGMENT - 1), (1, 1, 1, SEGMENT + 1)]:
        pred, target, weight = make_inputs(shape, dtype, kind="binary", seed=sum(shape))
        check_forward(pred, target, weight)
        check_backward(pred, target, weight)


@pytest.mark.parametrize("shape", [(1, 1, 1, 1), (3, 2, 1, 7), (2, 1, 5, 1), (1, 4, 3, 3)])
def test_odd_small_shapes(shape):
    pred, target, weight = make_inputs(shape, torch.float32, kind="soft", seed=3)
    check_forward(pred, target, weight)
    check_backward(pred, target, weight)


def test_empty_input_gives_zeros():
    pred, target, weight = make_inputs((0, 3, 4, 4), torch.float32, weight_shape=(1, 1, 4, 4))
    sums = masked_error_sums(pred, target, weight)
    torch.testing.assert_close(sums.double(), oracle_sums(pred, target, weight))
    assert torch.equal(sums, torch.zeros(3))


# ---------------------------------------------------------------- layouts and strides

def _channels_last(t):
    return t.contiguous(memory_format=torch.channels_last)


def _strided(t):  # every other column of a wider tensor: planes are not contiguous
    wide = torch.zeros(t.shape[:-1] + (2 * t.shape[-1],), dtype=t.dtype)
    wide[..., ::2] = t
    return wide[..., ::2]


def _channel_slice(t):  # a slice along C: planes contiguous, rows not evenly spaced in N
    wide = torch.zeros((t.shape[0], t.shape[1] + 2) + t.shape[2:], dtype=t.dtype)
    wide[:, 1:-1] = t
    return wide[:, 1:-1]


def _transposed(t):  # H and W swapped in memory
    return t.transpose(2, 3).contiguous().transpose(2, 3)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("layout", [_channels_last, _strided, _channel_slice, _transposed],
                         ids=lambda f: f.__name__.strip("_"))
def test_layouts(dtype, layout):
    pred, target, weight = make_inputs((2, 3, 9, 70), dtype, weight_shape=(2, 3, 9, 70), kind="soft")
    pred_l, target_l, weight_l = layout(pred), layout(target), layout(weight)
    assert not pred_l.is_contiguous()
    check_forward(pred_l, target_l, weight_l)
    check_backward(pred_l, target_l, weight_l)
    # The layout changes nothing: same sums and gradients, bitwise.
    assert torch.equal(masked_error_sums(pred_l, target_l, weight_l), masked_error_sums(pred, target, weight))
    g = torch.randn(3, generator=torch.Generator().manual_seed(5))
    assert torch.equal(BACKWARD_OP(g, pred_l, target_l, weight_l), BACKWARD_OP(g, pred, target, weight))


def test_expanded_and_mixed_layout_weight():
    pred, target, _ = make_inputs((3, 2, 8, 11), torch.float32)
    plane = torch.rand(1, 1, 8, 11)
    expanded = plane.expand(3, 1, 8, 11)  # stride 0 along N
    assert expanded.stride(0) == 0
    check_forward(_channels_last(pred), target, expanded)
    check_backward(pred, _strided(target), expanded)
    hw_broadcast = torch.full((1, 1, 1, 1), 0.25).expand(3, 2, 8, 11)  # stride 0 everywhere
    check_forward(pred, target, hw_broadcast)
    check_backward(pred, target, hw_broadcast)


# ---------------------------------------------------------------- autograd machinery

def test_gradcheck_fp64():
    gen = torch.Generator().manual_seed(7)
    pred = torch.randn(2, 2, 3, 5, generator=gen, dtype=torch.float64)
    sign = torch.where(torch.rand(pred.shape, generator=gen) > 0.5, 1.0, -1.0).double()
    target = pred + sign * (0.1 + torch.rand(pred.shape, generator=gen, dtype=torch.float64))  # |d| >= 0.1
    weight = torch.rand(2, 1, 3, 5, generator=gen, dtype=torch.float64)
    pred.requires_grad_()
    target.requires_grad_()
    assert torch.autograd.gradcheck(lambda p, t: masked_error_sums(p, t, weight), (pred, target))


def test_only_requested_gradients():
    pred, target, weight = make_inputs((1, 2, 4, 6), torch.float64)
    p = pred.clone().requires_grad_()
    sums = masked_error_sums(p, target, weight)
    (gp,) = torch.autograd.grad(sums.sum(), (p,))  # sum(): grad is a stride-0 expansion of 1
    rp, _ = oracle_grads(pred, target, weight, torch.ones(3, dtype=torch.float64))
    torch.testing.assert_close(gp, rp)
    assert target.grad is None


def test_weight_requiring_grad_is_rejected():
    pred, target, weight = make_inputs((1, 2, 4, 6), torch.float32)
    with pytest.raises(RuntimeError, match="does not differentiate its weight"):
        masked_error_sums(pred.requires_grad_(), target, weight.requires_grad_())


def test_double_backward_is_rejected():
    pred, target, weight = make_inputs((1, 2, 4, 6), torch.float64)
    p = pred.clone().requires_grad_()
    (gp,) = torch.autograd.grad(masked_error_sums(p, target, weight)[1], (p,), create_graph=True)
    torch.testing.assert_close(gp, 2 * (pred - target) * weight)  # first backward still works
    with pytest.raises(RuntimeError, match="double backward"):
        gp.sum().backward()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16], ids=str)
def test_opcheck(dtype):
    pred, target, weight = make_inputs((2, 3, 5, 6), dtype)
    torch.library.opcheck(OP, (pred, target, weight))
    torch.library.opcheck(OP, (pred.clone().requires_grad_(), target.clone().requires_grad_(), weight))
    torch.library.opcheck(OP, (_channels_last(pred), target, weight[:1]))
    g = torch.randn(3, dtype=torch.float64 if dtype == torch.float64 else torch.float32)
    torch.library.opcheck(BACKWARD_OP, (g, pred, target, weight))


def test_extension_reports_the_cpu_kernel():
    assert "cpu" in _extension.kernels("masked_error_sums")
    assert "cpu" in _extension.kernels("masked_error_sums_backward")
    assert _extension.kernels("no_such_op") == frozenset()
    assert _extension.has_cuda_kernels() == torch._C._dispatch_has_kernel_for_dispatch_key(
        "inpaint_fast::masked_error_sums", "CUDA")


def test_torch_compile_fullgraph():
    pred, target, weight = make_inputs((2, 3, 8, 8), torch.float32, kind="binary")
    assert "cpu" in _extension.kernels("masked_error_sums")  # the compiled function takes the op

    def loss_fn(p, t, w):
        if "cpu" in _extension.kernels("masked_error_sums"):  # plain dict lookup: no graph break
            s = masked_error_sums(p, t, w)
        else:
            s = torch.stack([(w * (p - t).abs()).sum(), (w * (p - t) ** 2).sum(), w.expand_as(p).sum()])
        return (s[0] + 0.5 * s[1]) / s[2].clamp_min(1e-8)

    torch._dynamo.reset()
    compiled = torch.compile(loss_fn, fullgraph=True)
    p = pred.clone().requires_grad_()
    t = target.clone().requires_grad_()
    loss = compiled(p, t, weight)
    loss.backward()
    ref_p, ref_t = pred.double().requires_grad_(), target.double().requires_grad_()
    w64 = weight.double()
    ref = (pixel.l1(ref_p, ref_t, w64) + 0.5 * pixel.l2(ref_p, ref_t, w64, reduction="sum")
           / w64.expand_as(ref_p).sum())
    ref.backward()
    torch.testing.assert_close(loss.double(), ref, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(p.grad.double(), ref_p.grad, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(t.grad.double(), ref_t.grad, rtol=1e-5, atol=1e-7)


# ---------------------------------------------------------------- determinism

def _run(pred, target, weight, g):
    p, t = pred.clone().requires_grad_(), target.clone().requires_grad_()
    sums = masked_error_sums(p, t, weight)
    gp, gt = torch.autograd.grad(sums, (p, t), grad_outputs=g)
    return sums, gp, gt


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=str)
def test_bitwise_deterministic_across_runs_and_threads(dtype):
    # 2*4 rows x 3 segments = 24 units: enough for at::parallel_for to split them between threads.
    pred, target, weight = make_inputs((2, 4, 64, 130), dtype, kind="soft", seed=11)
    g = torch.tensor([0.7, -1.3, 0.2])
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        first, second = _run(pred, target, weight, g), _run(pred, target, weight, g)
        torch.set_num_threads(1)
        single = _run(pred, target, weight, g)
    finally:
        torch.set_num_threads(threads)
    for a, b, c in zip(first, second, single):
        assert torch.equal(a, b) and torch.equal(a, c)
    torch.testing.assert_close(first[0].double(), oracle_sums(pred, target, weight), **SUM_TOL[dtype])


# ---------------------------------------------------------------- C++ checks

@pytest.mark.parametrize("args, match", [
    (((2, 3, 4, 4), (2, 3, 4, 5), (2, 1, 4, 4)), "target shape"),
    (((2, 3, 4, 4), (2, 3, 4, 4), (2, 2, 4, 4)), "weight shape"),
    (((2, 3, 4, 4), (2, 3, 4, 4), (2, 1, 4, 5)), "weight shape"),
    (((2, 3, 4, 4), (2, 3, 4, 4), (2, 4, 4)), "weight shape"),
    (((3, 4, 4), (3, 4, 4), (1, 4, 4)), "4-D"),
])
def test_cpp_checks_reject_bad_shapes(args, match):
    pred, target, weight = (torch.rand(s) for s in args)
    with pytest.raises(RuntimeError, match=match):
        OP(pred, target, weight)
    with pytest.raises(RuntimeError, match=match):
        BACKWARD_OP(torch.ones(3), pred, target, weight)


def test_cpp_checks_reject_bad_dtypes_and_grad():
    pred, target, weight = make_inputs((1, 2, 3, 3), torch.float32)
    with pytest.raises(RuntimeError, match="target dtype"):
        OP(pred, target.double(), weight)
    with pytest.raises(RuntimeError, match="weight dtype"):
        OP(pred, target, weight.half())
    with pytest.raises(RuntimeError, match="float16, bfloat16, float32 or float64"):
        OP(pred.int(), target.int(), weight.int())
    with pytest.raises(RuntimeError, match=r"grad must have shape \(3,\)"):
        BACKWARD_OP(torch.ones(4), pred, target, weight)
