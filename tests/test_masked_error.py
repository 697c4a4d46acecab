"""inpaint_fast::masked_error and masked_error_stats (C++ CPU kernels) against the pure-PyTorch oracle.

Oracle: ``inpaint_fast.reference.pixel.masked_error`` run in float64 on the same (upcast) inputs, and
autograd through it for the gradients.
"""
import itertools

import pytest
import torch

from inpaint_fast.ops import library
from inpaint_fast.ops import masked_error as ops_module
from inpaint_fast.reference import pixel

from .conftest import TRITON_INTERPRETED
from .triton_aot import require_sm90, run_script

# The C++ tests (CPU kernels) need the compiled extension; the GPU-backend tests below (gpu_backend
# fixture) skip by themselves: 'triton' does not need the extension.
requires_extension = pytest.mark.skipif(library.load_error() is not None,
                                        reason=str(library.load_error()))
OP = torch.ops.inpaint_fast.masked_error.default if library.load_error() is None else None
STATS_OP = torch.ops.inpaint_fast.masked_error_stats.default if library.load_error() is None else None


def masked_error(pred, target, mask, *, backend="cpu", **kw):
    return ops_module.masked_error(pred, target, mask, backend=backend, **kw)


def masked_error_stats(pred, target, mask, *, backend="cpu", **kw):
    return ops_module.masked_error_stats(pred, target, mask, backend=backend, **kw)
LOSS_TOL = {torch.float64: dict(rtol=1e-10, atol=1e-12), torch.float32: dict(rtol=2e-5, atol=1e-6),
            torch.float16: dict(rtol=2e-3, atol=1e-4), torch.bfloat16: dict(rtol=1e-2, atol=1e-3)}
GRAD_TOL = {torch.float64: dict(rtol=1e-10, atol=1e-12), torch.float32: dict(rtol=1e-5, atol=1e-8),
            torch.float16: dict(rtol=2e-3, atol=1e-6), torch.bfloat16: dict(rtol=1e-2, atol=1e-5)}


def make_mask(shape, kind, dtype, gen):
    if kind == "bool":
        return torch.rand(shape, generator=gen) > 0.4
    if kind == "uint8":
        return (torch.rand(shape, generator=gen) > 0.4).to(torch.uint8)
    if kind == "soft":
        return torch.rand(shape, generator=gen, dtype=torch.float64).to(dtype)
    return torch.full(shape, 0.0 if kind == "zeros" else 1.0, dtype=dtype)


def make_images(shape, dtype, seed=0, ties=True):
    gen = torch.Generator().manual_seed(seed)
    pred = torch.randn(shape, generator=gen, dtype=torch.float64).to(dtype)
    target = torch.randn(shape, generator=gen, dtype=torch.float64).to(dtype)
    if ties:  # exact zeros of d: the L1 slope there is 0, as torch's abs backward
        target[..., ::7] = pred[..., ::7]
    return pred, target, gen


def run_ours(pred, target, mask, is_hole, backend="cpu", **kw):
    p = pred.clone().requires_grad_()
    value = masked_error(p, target, mask, mask_is_hole=is_hole, backend=backend, **kw)
    value.backward()
    return value, p.grad


def run_oracle(pred, target, mask, is_hole, *, loss, charbonnier_eps, weight_hole, weight_valid, normalize, eps):
    p = pred.to(torch.float64, copy=True).requires_grad_()
    known = None if mask is None else (1 - mask.double() if is_hole else mask.double())
    reduction = "sum" if normalize == "sum" else "mean"
    value = pixel.masked_error(p, target.double(), known, loss=loss, weight_hole=weight_hole, weight_valid=weight_valid,
                               charbonnier_eps=charbonnier_eps, normalize="mask" if normalize == "sum" else normalize,
                               reduction=reduction, eps=eps)
    value.backward()
    return value, p.grad


def check(pred, target, mask, is_hole, **kw):
    ours, grad = run_ours(pred, target, mask, is_hole, **kw)
    expected, expected_grad = run_oracle(pred, target, mask, is_hole, **kw)
    assert ours.dtype == pred.dtype and ours.shape == ()
    torch.testing.assert_close(ours.double(), expected, **LOSS_TOL[pred.dtype])
    assert grad.dtype == pred.dtype and grad.shape == pred.shape
    torch.testing.assert_close(grad.double(), expected_grad, **GRAD_TOL[pred.dtype])
    return grad


OPTIONS = dict(loss="l1", charbonnier_eps=1e-3, weight_hole=6.0, weight_valid=1.0, normalize="mask", eps=1e-8)


@requires_extension
@pytest.mark.parametrize("loss,normalize,weights", list(itertools.product(
    ["l1", "l2", "charbonnier"], ["mask", "all", "sum"], [(6.0, 1.0), (1.0, 0.0), (0.0, 1.0)])))
def test_losses_normalisers_and_region_weights(loss, normalize, weights):
    pred, target, gen = make_images((2, 3, 17, 23), torch.float64)
    mask = make_mask((2, 1, 17, 23), "soft", torch.float64, gen)
    options = dict(OPTIONS, loss=loss, normalize=normalize, weight_hole=weights[0], weight_valid=weights[1])
    check(pred, target, mask, False, **options)
    check(pred, target, mask, True, **options)


@requires_extension
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("kind", ["bool", "uint8", "soft", "zeros", "ones"])
@pytest.mark.parametrize("mask_shape", [(2, 1), (2, 3), (1, 1)])
def test_mask_kinds_shapes_and_dtypes(dtype, kind, mask_shape):
    pred, target, gen = make_images((2, 3, 12, 19), dtype)
    mask = make_mask(mask_shape + (12, 19), kind, dtype, gen)
    for loss in ("l1", "l2"):
        check(pred, target, mask, kind == "uint8", **dict(OPTIONS, loss=loss))


@requires_extension
def test_no_mask_is_the_plain_mean():
    pred, target, _ = make_images((2, 3, 9, 8), torch.float64)
    check(pred, target, None, False, **dict(OPTIONS, weight_hole=0.0, weight_valid=1.0))
    value = masked_error(pred, target, None, mask_is_hole=False, **dict(OPTIONS, weight_valid=1.0))
    torch.testing.assert_close(value, (pred - target).abs().mean())


@requires_extension
def test_empty_region_gives_zero_and_zero_gradient():
    pred, target, _ = make_images((1, 3, 8, 8), torch.float32)
    full = torch.ones(1, 1, 8, 8, dtype=torch.bool)
    value, grad = run_ours(pred, target, full, False, **dict(OPTIONS, weight_hole=1.0, weight_valid=0.0))
    assert value.item() == 0.0 and (grad == 0).all()
    empty = torch.zeros(0, 3, 8, 8)
    assert masked_error(empty, empty, None, mask_is_hole=False, **OPTIONS).item() == 0.0


@requires_extension
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_several_units_and_odd_sizes(dtype):
    # 70 * 70 = 4900 > 4096 elements per unit: two units per plane, the second one partial
    pred, target, gen = make_images((2, 2, 70, 70), dtype)
    check(pred, target, make_mask((2, 1, 70, 70), "bool", dtype, gen), False, **OPTIONS)
    pred, target, gen = make_images((1, 1, 1, 5), dtype)
    check(pred, target, make_mask((1, 1, 1, 5), "soft", dtype, gen), False, **OPTIONS)


@requires_extension
@pytest.mark.parametrize("mask_shape", [(2, 1), (2, 3), (1, 3)])
def test_channels_last_is_read_in_place_and_the_gradient_keeps_its_format(mask_shape):
    pred, target, gen = make_images((2, 3, 40, 110), torch.float32)  # 1365 pixels per unit: 4 units per image
    mask = make_mask(mask_shape + (40, 110), "soft", torch.float32, gen)
    expected = check(pred, target, mask, False, **OPTIONS)
    cl = check(pred.to(memory_format=torch.channels_last), target.to(memory_format=torch.channels_last),
               mask.to(memory_format=torch.channels_last) if mask_shape[1] == 3 else mask, False, **OPTIONS)
    assert cl.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(cl, expected, rtol=1e-6, atol=1e-9)


@requires_extension
def test_strided_inputs():
    pred, target, gen = make_images((3, 4, 10, 12), torch.float64)
    mask = make_mask((3, 1, 10, 12), "bool", torch.float64, gen)
    check(pred[1:, ::2], target[1:, ::2], mask[1:], False, **OPTIONS)  # slices along N and C, read in place
    check(pred.transpose(2, 3), target.transpose(2, 3), mask.transpose(2, 3), True, **OPTIONS)  # copied
    check(pred, target, mask.expand(3, 4, 10, 12), False, **OPTIONS)  # expanded (stride 0) mask


@requires_extension
def test_target_gradient_and_gradcheck():
    pred, target, gen = make_images((2, 2, 5, 6), torch.float64, ties=False)
    mask = make_mask((2, 1, 5, 6), "soft", torch.float64, gen)
    p, t = pred.clone().requires_grad_(), target.clone().requires_grad_()
    gp, gt = torch.autograd.grad(masked_error(p, t, mask, mask_is_hole=False, **OPTIONS), (p, t))
    torch.testing.assert_close(gt, -gp)
    for loss in ("l1", "l2", "charbonnier"):
        fn = lambda a, b: masked_error(a, b, mask, mask_is_hole=True, **dict(OPTIONS, loss=loss))  # noqa: E731
        assert torch.autograd.gradcheck(fn, (p, t))


@requires_extension
def test_gradient_is_scaled_by_grad_output():
    pred, target, gen = make_images((1, 3, 6, 6), torch.float64)
    mask = make_mask((1, 1, 6, 6), "bool", torch.float64, gen)
    p = pred.clone().requires_grad_()
    (3.5 * masked_error(p, target, mask, mask_is_hole=False, **OPTIONS)).backward()
    _, expected = run_oracle(pred, target, mask, False, **OPTIONS)
    torch.testing.assert_close(p.grad, 3.5 * expected)


@requires_extension
def test_retained_graph_runs_backward_twice():
    pred, target, gen = make_images((1, 3, 4, 4), torch.float32)
    mask = make_mask((1, 1, 4, 4), "bool", torch.float32, gen)
    p = pred.clone().requires_grad_()
    value = masked_error(p, target, mask, mask_is_hole=False, **OPTIONS)
    value.backward(retain_graph=True)
    first = p.grad.clone()
    (2 * value).backward()
    torch.testing.assert_close(p.grad, 3 * first)
    torch.testing.assert_close(first.double(), run_oracle(pred, target, mask, False, **OPTIONS)[1],
                               **GRAD_TOL[torch.float32])


@requires_extension
def test_no_gradient_work_without_requires_grad():
    pred, target, _ = make_images((1, 3, 6, 6), torch.float32)
    value, grad = OP(pred, target, None, False, 0, 1e-3, 1.0, 1.0, 1, 1e-8, False)
    assert grad.numel() == 0 and value.dtype == torch.float32


@requires_extension
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_opcheck(dtype):
    pred, target, gen = make_images((2, 3, 8, 9), dtype, ties=False)
    mask = make_mask((2, 1, 8, 9), "soft", dtype, gen)
    for compute_grad, p in ((True, pred.clone().requires_grad_()), (False, pred)):
        torch.library.opcheck(OP, (p, target, mask, False, 0, 1e-3, 6.0, 1.0, 1, 1e-8, compute_grad))
    torch.library.opcheck(OP, (pred, target, mask.bool(), True, 2, 1e-3, 1.0, 0.0, 2, 1e-8, False))
    torch.library.opcheck(STATS_OP, (pred, target, mask, False))


@pytest.mark.parametrize("backend", ["cpu", "triton"])
def test_mask_requiring_grad_is_rejected(backend):
    """Both autograds (C++ for the C++ op, Python for the Triton op) refuse to leave a mask undifferentiated."""
    if backend == "cpu" and library.load_error() is not None:
        pytest.skip(str(library.load_error()))
    if backend == "triton" and not TRITON_INTERPRETED:
        pytest.skip("the Triton op runs on CPU tensors only under TRITON_INTERPRET=1")
    pred, target, gen = make_images((1, 2, 4, 6), torch.float32)
    mask = make_mask((1, 1, 4, 6), "soft", torch.float32, gen).requires_grad_()
    with pytest.raises(RuntimeError, match="does not differentiate its mask"):
        masked_error(pred.requires_grad_(), target, mask, backend=backend, mask_is_hole=False, **OPTIONS)


@requires_extension
def test_compile_fullgraph():
    pred, target, gen = make_images((2, 3, 8, 8), torch.float32)
    mask = make_mask((2, 1, 8, 8), "bool", torch.float32, gen)

    def step(p):
        return masked_error(p, target, mask, mask_is_hole=False, **OPTIONS)

    torch._dynamo.reset()
    p = pred.clone().requires_grad_()
    value = torch.compile(step, fullgraph=True, backend="aot_eager")(p)
    value.backward()
    expected, expected_grad = run_oracle(pred, target, mask, False, **OPTIONS)
    torch.testing.assert_close(value.double(), expected, **LOSS_TOL[torch.float32])
    torch.testing.assert_close(p.grad.double(), expected_grad, **GRAD_TOL[torch.float32])


@requires_extension
@pytest.mark.parametrize("channels_last", [False, True])
def test_bitwise_deterministic_across_runs_and_threads(channels_last):
    pred, target, gen = make_images((4, 3, 96, 96), torch.float32)
    mask = make_mask((4, 1, 96, 96), "soft", torch.float32, gen)
    if channels_last:
        pred, target = pred.to(memory_format=torch.channels_last), target.to(memory_format=torch.channels_last)
    threads = torch.get_num_threads()
    results = []
    try:
        for n in (1, 2, 2):
            torch.set_num_threads(n)
            results.append(run_ours(pred, target, mask, False, **dict(OPTIONS, loss="charbonnier")))
            results.append((STATS_OP(pred, target, mask, False), None))
    finally:
        torch.set_num_threads(threads)
    for (value, grad), (value0, grad0) in zip(results[2:], results[:2] * 2):
        assert torch.equal(value, value0)
        assert grad is None or torch.equal(grad, grad0)


@requires_extension
@pytest.mark.parametrize("kind", ["bool", "soft"])
def test_stats_match_the_reference(kind):
    pred, target, gen = make_images((2, 3, 30, 41), torch.float32)
    mask = make_mask((2, 1, 30, 41), kind, torch.float32, gen)
    p, t = pred.double(), target.double()
    known = mask.double()
    expected = torch.stack([pixel.l1(p, t, 1 - known, reduction="sum"), pixel.l1(p, t, known, reduction="sum"),
                            pixel.l2(p, t, 1 - known, reduction="sum"), pixel.l2(p, t, known, reduction="sum"),
                            (1 - known).expand_as(p).sum(), known.expand_as(p).sum()])
    torch.testing.assert_close(masked_error_stats(pred, target, mask, mask_is_hole=False).double(), expected,
                               rtol=2e-5, atol=1e-4)
    flipped = masked_error_stats(pred, target, 1 - mask.float() if kind == "soft" else ~mask, mask_is_hole=True)
    torch.testing.assert_close(flipped.double(), expected, rtol=2e-5, atol=1e-4)


@requires_extension
@pytest.mark.parametrize("args,match", [
    ((torch.rand(2, 3, 4), torch.rand(2, 3, 4), None), "pred must be 4-D"),
    ((torch.rand(1, 3, 4, 4), torch.rand(1, 3, 4, 5), None), "target shape"),
    ((torch.rand(1, 3, 4, 4), torch.rand(1, 3, 4, 4).double(), None), "target dtype"),
    ((torch.rand(1, 3, 4, 4), torch.rand(1, 3, 4, 4), torch.rand(1, 2, 4, 4)), "mask shape"),
    ((torch.rand(1, 3, 4, 4), torch.rand(1, 3, 4, 4), torch.rand(1, 1, 4, 4).double()), "mask must be bool, uint8"),
    ((torch.rand(1, 3, 4, 4).long(), torch.rand(1, 3, 4, 4).long(), None), "pred must be float16"),
])
def test_cpp_checks(args, match):
    with pytest.raises(RuntimeError, match=match):
        OP(*args, False, 0, 1e-3, 1.0, 1.0, 1, 1e-8, False)
    with pytest.raises(RuntimeError, match=match):
        STATS_OP(*args, False)
    with pytest.raises(RuntimeError, match="loss must be 0"):
        OP(torch.rand(1, 1, 2, 2), torch.rand(1, 1, 2, 2), None, False, 7, 1e-3, 1.0, 1.0, 1, 1e-8, False)


@requires_extension
def test_baseline_isa_build():
    """ATEN_CPU_CAPABILITY=default selects the baseline (non-AVX2) build of the hot loops: the same
    checks against the oracle, in a fresh process."""
    import os
    import subprocess
    import sys
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    code = ("import torch; from tests import test_masked_error as t; "
            "[t.test_mask_kinds_shapes_and_dtypes(d, 'soft', (2, 1)) for d in (torch.float32, torch.float16)]; "
            "t.test_losses_normalisers_and_region_weights('charbonnier', 'mask', (6.0, 1.0)); "
            "t.test_channels_last_is_read_in_place_and_the_gradient_keeps_its_format((2, 1)); "
            "t.test_stats_match_the_reference('bool'); print('baseline ok')")
    env = {**os.environ, "ATEN_CPU_CAPABILITY": "default"}
    done = subprocess.run([sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True)
    assert done.returncode == 0 and "baseline ok" in done.stdout, done.stderr[-3000:]


# ---------------------------------------------------------------------------------------------
# GPU backends: the CUDA C++ kernels ('cuda', on a GPU) and the Triton kernels ('triton', on a GPU
# or, without one, on CPU tensors in Triton's interpreter). Same oracle, same tolerances.

GPU_DTYPES = [torch.float32, torch.float16] + ([] if TRITON_INTERPRETED else [torch.bfloat16])


def gpu_check(gpu_backend, pred, target, mask, is_hole, **kw):
    """Runs the backend on its device (inputs keep their layout) and compares with the fp64 oracle."""
    name, device = gpu_backend
    to = (lambda x: None if x is None else x.to(device))
    ours, grad = run_ours(to(pred), to(target), to(mask), is_hole, backend=name, **kw)
    expected, expected_grad = run_oracle(pred, target, mask, is_hole, **kw)
    assert ours.dtype == pred.dtype and ours.shape == () and ours.device.type == device.type
    torch.testing.assert_close(ours.double().cpu(), expected, **LOSS_TOL[pred.dtype])
    assert grad.dtype == pred.dtype and grad.shape == pred.shape
    torch.testing.assert_close(grad.double().cpu(), expected_grad, **GRAD_TOL[pred.dtype])
    return grad


def gpu_op(name):
    return (torch.ops.inpaint_fast.masked_error_triton.default if name == "triton"
            else torch.ops.inpaint_fast.masked_error.default)


def gpu_stats_op(name):
    return (torch.ops.inpaint_fast.masked_error_stats_triton.default if name == "triton"
            else torch.ops.inpaint_fast.masked_error_stats.default)


@pytest.mark.parametrize("loss", ["l1", "l2", "charbonnier"])
def test_gpu_losses_and_normalisers(gpu_backend, loss):
    pred, target, gen = make_images((2, 3, 17, 23), torch.float32)
    mask = make_mask((2, 1, 17, 23), "soft", torch.float32, gen)
    for normalize, weights, is_hole in (("mask", (6.0, 1.0), False), ("all", (1.0, 0.0), True),
                                        ("sum", (0.0, 1.0), False), ("mask", (6.0, 0.5), True)):
        gpu_check(gpu_backend, pred, target, mask, is_hole,
                  **dict(OPTIONS, loss=loss, normalize=normalize, weight_hole=weights[0], weight_valid=weights[1]))


@pytest.mark.parametrize("dtype", GPU_DTYPES)
@pytest.mark.parametrize("kind", ["bool", "uint8", "soft", "zeros", "ones"])
def test_gpu_mask_kinds_shapes_and_dtypes(gpu_backend, dtype, kind):
    # zeros/ones: an empty or a full region (its normaliser clamps at eps, its terms are 0)
    pred, target, gen = make_images((2, 3, 12, 20), dtype)
    for mask_shape, loss in (((2, 1), "l1"), ((2, 3), "l2"), ((1, 1), "charbonnier")):
        mask = make_mask(mask_shape + (12, 20), kind, dtype, gen)
        gpu_check(gpu_backend, pred, target, mask, kind == "uint8", **dict(OPTIONS, loss=loss))


def test_gpu_no_mask_and_empty(gpu_backend):
    name, device = gpu_backend
    pred, target, _ = make_images((2, 3, 9, 8), torch.float32)
    for normalize in ("mask", "all", "sum"):
        gpu_check(gpu_backend, pred, target, None, False, **dict(OPTIONS, normalize=normalize, loss="l2"))
    empty = torch.zeros(0, 3, 8, 8, device=device)
    assert masked_error(empty, empty, None, mask_is_hole=False, backend=name, **OPTIONS).item() == 0.0
    value, grad = gpu_op(name)(empty, empty, empty[:, :1].bool(), False, 0, 1e-3, 1.0, 1.0, 1, 1e-8, True)
    assert value.item() == 0.0 and grad.shape == empty.shape
    full = torch.ones(1, 1, 9, 8, dtype=torch.bool, device=device)
    p = pred[:1].to(device, copy=True).requires_grad_()
    value = masked_error(p, target[:1].to(device), full, mask_is_hole=False, backend=name,
                         **dict(OPTIONS, weight_hole=1.0, weight_valid=0.0))
    value.backward()
    assert value.item() == 0.0 and (p.grad == 0).all()
    stats = masked_error_stats(empty, empty, None, mask_is_hole=False, backend=name)
    assert stats.tolist() == [0.0] * 6


def test_gpu_odd_sizes_and_several_programs(gpu_backend, monkeypatch):
    name, _ = gpu_backend
    if name == "triton":  # small tiles: many programs, several tiles per program, int64 offsets
        from inpaint_fast.ops.triton import masked_error as tk
        monkeypatch.setattr(tk, "MAIN_BLOCK", 256)
        monkeypatch.setattr(tk, "MAIN_BLOCK_CL", 128)
        monkeypatch.setattr(tk, "MASK_BLOCK", 64)
        monkeypatch.setattr(tk, "PROGRAMS", 8)
    pred, target, gen = make_images((3, 3, 29, 31), torch.float32)
    mask = make_mask((3, 1, 29, 31), "bool", torch.float32, gen)
    gpu_check(gpu_backend, pred, target, mask, False, **OPTIONS)
    gpu_check(gpu_backend, pred.to(memory_format=torch.channels_last), target.to(memory_format=torch.channels_last),
              mask, True, **dict(OPTIONS, loss="charbonnier"))
    if name == "triton":
        monkeypatch.setattr(tk, "INT32_MAX", 0)
        gpu_check(gpu_backend, pred, target, mask.expand(3, 3, 29, 31), False, **dict(OPTIONS, loss="l2"))
        gpu_check(gpu_backend, pred.to(memory_format=torch.channels_last),
                  target.to(memory_format=torch.channels_last), mask, True, **OPTIONS)
    pred, target, gen = make_images((1, 1, 1, 5), torch.float32)
    gpu_check(gpu_backend, pred, target, make_mask((1, 1, 1, 5), "soft", torch.float32, gen), False, **OPTIONS)


@pytest.mark.parametrize("mask_shape", [(2, 1), (2, 3), (1, 3)])
def test_gpu_channels_last_keeps_the_gradient_format(gpu_backend, mask_shape):
    pred, target, gen = make_images((2, 3, 20, 24), torch.float32)
    mask = make_mask(mask_shape + (20, 24), "soft", torch.float32, gen)
    cl = gpu_check(gpu_backend, pred.to(memory_format=torch.channels_last),
                   target.to(memory_format=torch.channels_last),
                   mask.to(memory_format=torch.channels_last) if mask_shape[1] == 3 else mask, False, **OPTIONS)
    assert cl.is_contiguous(memory_format=torch.channels_last)


def test_gpu_strided_inputs(gpu_backend):
    pred, target, gen = make_images((3, 4, 10, 12), torch.float32)
    mask = make_mask((3, 1, 10, 12), "bool", torch.float32, gen)
    gpu_check(gpu_backend, pred[1:, ::2], target[1:, ::2], mask[1:], False, **OPTIONS)  # N and C slices
    gpu_check(gpu_backend, pred.transpose(2, 3), target.transpose(2, 3), mask.transpose(2, 3), True, **OPTIONS)
    gpu_check(gpu_backend, pred, target, mask.expand(3, 4, 10, 12), False, **OPTIONS)  # stride-0 mask
    gpu_check(gpu_backend, pred[..., 1:], target[..., :-1], mask[..., 1:], False, **OPTIONS)  # offset planes
    # channels_last pred with an NCHW target: not both channels_last, read through NCHW strides
    gpu_check(gpu_backend, pred.to(memory_format=torch.channels_last), target, mask, False, **OPTIONS)


def test_gpu_gradcheck_fp64_and_target_gradient(gpu_backend):
    name, device = gpu_backend
    pred, target, gen = make_images((2, 2, 3, 4), torch.float64, ties=False)
    mask = make_mask((2, 1, 3, 4), "soft", torch.float64, gen).to(device)
    p, t = pred.to(device, copy=True).requires_grad_(), target.to(device, copy=True).requires_grad_()
    gp, gt = torch.autograd.grad(masked_error(p, t, mask, mask_is_hole=False, backend=name, **OPTIONS), (p, t))
    torch.testing.assert_close(gt, -gp)
    for loss in ("l1", "l2", "charbonnier"):
        fn = lambda a, b: masked_error(a, b, mask, mask_is_hole=True, backend=name, **dict(OPTIONS, loss=loss))  # noqa: E731
        # interpreted, every evaluation costs ~0.1 s: the fast (random projection) mode
        assert torch.autograd.gradcheck(fn, (p, t), fast_mode=TRITON_INTERPRETED)


def test_gpu_gradient_is_scaled_by_grad_output(gpu_backend):
    name, device = gpu_backend
    pred, target, gen = make_images((1, 3, 6, 6), torch.float32)
    mask = make_mask((1, 1, 6, 6), "bool", torch.float32, gen)
    p = pred.to(device, copy=True).requires_grad_()
    (3.5 * masked_error(p, target.to(device), mask.to(device), mask_is_hole=False, backend=name, **OPTIONS)).backward()
    _, expected = run_oracle(pred, target, mask, False, **OPTIONS)
    torch.testing.assert_close(p.grad.double().cpu(), 3.5 * expected, **GRAD_TOL[torch.float32])


def test_gpu_opcheck(gpu_backend):
    name, device = gpu_backend
    pred, target, gen = make_images((2, 3, 8, 9), torch.float32, ties=False)
    pred, target = pred.to(device), target.to(device)
    mask = make_mask((2, 1, 8, 9), "soft", torch.float32, gen).to(device)
    op, stats_op = gpu_op(name), gpu_stats_op(name)
    torch.library.opcheck(op, (pred.clone().requires_grad_(), target, mask, False, 0, 1e-3, 6.0, 1.0, 1, 1e-8, True))
    torch.library.opcheck(op, (pred.to(memory_format=torch.channels_last), target.to(memory_format=torch.channels_last),
                               mask.bool(), True, 2, 1e-3, 1.0, 0.0, 2, 1e-8, False))
    torch.library.opcheck(stats_op, (pred, target, mask, False))


def test_gpu_compile_fullgraph(gpu_backend):
    name, device = gpu_backend
    pred, target, gen = make_images((2, 3, 8, 8), torch.float32)
    mask = make_mask((2, 1, 8, 8), "bool", torch.float32, gen)
    t, m = target.to(device), mask.to(device)

    def step(p):
        return masked_error(p, t, m, mask_is_hole=False, backend=name, **OPTIONS)

    torch._dynamo.reset()
    p = pred.to(device, copy=True).requires_grad_()
    # Inductor cannot compile user Triton kernels for CPU tensors: interpreted, the graph runs eagerly.
    value = torch.compile(step, fullgraph=True, backend="aot_eager" if device.type == "cpu" else "inductor")(p)
    value.backward()
    expected, expected_grad = run_oracle(pred, target, mask, False, **OPTIONS)
    torch.testing.assert_close(value.double().cpu(), expected, **LOSS_TOL[torch.float32])
    torch.testing.assert_close(p.grad.double().cpu(), expected_grad, **GRAD_TOL[torch.float32])


@pytest.mark.parametrize("channels_last", [False, True])
def test_gpu_bitwise_deterministic(gpu_backend, channels_last):
    name, device = gpu_backend
    shape = (2, 3, 40, 48) if TRITON_INTERPRETED else (8, 3, 256, 256)
    pred, target, gen = make_images(shape, torch.float32)
    mask = make_mask((shape[0], 1) + shape[2:], "soft", torch.float32, gen).to(device)
    pred, target = pred.to(device), target.to(device)
    if channels_last:
        pred, target = pred.to(memory_format=torch.channels_last), target.to(memory_format=torch.channels_last)
    runs = [(run_ours(pred, target, mask, False, backend=name, **dict(OPTIONS, loss="charbonnier")),
             masked_error_stats(pred, target, mask, mask_is_hole=False, backend=name)) for _ in range(2)]
    (v0, g0), s0 = runs[0]
    (v1, g1), s1 = runs[1]
    assert torch.equal(v0, v1) and torch.equal(g0, g1) and torch.equal(s0, s1)


@pytest.mark.parametrize("kind", ["bool", "soft"])
def test_gpu_stats_match_the_reference(gpu_backend, kind):
    name, device = gpu_backend
    pred, target, gen = make_images((2, 3, 30, 41), torch.float32)
    mask = make_mask((2, 1, 30, 41), kind, torch.float32, gen)
    p, t = pred.double(), target.double()
    known = mask.double()
    expected = torch.stack([pixel.l1(p, t, 1 - known, reduction="sum"), pixel.l1(p, t, known, reduction="sum"),
                            pixel.l2(p, t, 1 - known, reduction="sum"), pixel.l2(p, t, known, reduction="sum"),
                            (1 - known).expand_as(p).sum(), known.expand_as(p).sum()])
    pred, target, mask = pred.to(device), target.to(device), mask.to(device)
    ours = masked_error_stats(pred, target, mask, mask_is_hole=False, backend=name)
    assert ours.dtype == torch.float32 and ours.shape == (6,)
    torch.testing.assert_close(ours.double().cpu(), expected, rtol=2e-5, atol=1e-4)
    flipped = masked_error_stats(pred.to(memory_format=torch.channels_last), target.to(memory_format=torch.channels_last),
                                 1 - mask.float() if kind == "soft" else ~mask, mask_is_hole=True, backend=name)
    torch.testing.assert_close(flipped.double().cpu(), expected, rtol=2e-5, atol=1e-4)
    no_mask = masked_error_stats(pred, target, None, mask_is_hole=False, backend=name)
    torch.testing.assert_close(no_mask.double().cpu()[[1, 3, 5]], torch.stack(
        [(p - t).abs().sum(), ((p - t) ** 2).sum(), torch.tensor(float(p.numel()), dtype=torch.float64)]),
        rtol=2e-5, atol=1e-4)
    assert no_mask[[0, 2, 4]].tolist() == [0.0, 0.0, 0.0]


_SM90_COMPILE = r"""
from tests.triton_aot import compile_sm90
from inpaint_fast.ops.triton import masked_error as k

# as a launch specialises them: 16-byte aligned pointers, ints divisible by 16, unit strides
DIV16 = ("p_ptr", "t_ptr", "m_ptr", "g_ptr", "part_ptr", "coef_ptr", "out_ptr", "HW", "p_sn", "p_sc", "t_sn", "t_sc",
         "m_sn", "m_sc", "PER_N", "PER_PLANE")


def ptx(fn, types, consts):
    return compile_sm90(fn, types, consts, DIV16, num_warps=8).asm["ptx"]


for dt, mdt, f64, cl, stats in (("fp32", "u8", False, False, False), ("bf16", "bf16", False, True, False),
                                ("fp16", "u8", False, False, True), ("fp64", "fp64", True, False, False)):
    acc = "fp64" if f64 else "fp32"
    consts = dict(LOSS=2, HAS_MASK=True, MASK_BCAST_C=True, GRAD=not stats, COEF_PTR=not stats, CHANNELS_LAST=cl,
                  STATS=stats, F64=f64, I64=False, BLOCK_C=1 if cl else 4, BLOCK=4096 if cl else 1024, TILES=8,
                  C_CL=3 if cl else 1, p_shw=1, t_shw=1, m_shw=1)
    types = dict(p_ptr="*" + dt, t_ptr="*" + dt, m_ptr="*" + mdt, g_ptr="*" + dt, part_ptr="*" + acc,
                 coef_ptr="*fp64", m_a="fp64", m_b="fp64", k_hole_in="fp64", k_valid_in="fp64", ceps2_in="fp64")
    code = ptx(k._main_kernel, types, consts)
    # 16-byte loads of pred and target (8-byte for fp64 pairs), 16-byte stores of the gradient
    assert ("ld.global.v4" in code or "ld.global.v2.b64" in code), (dt, cl)
    assert stats or "st.global.v4" in code or "st.global.v2.b64" in code, (dt, cl)
# A bool mask (i1, as the launchers pass it) and 64-bit offsets, in both layouts.
for cl in (False, True):
    consts = dict(LOSS=0, HAS_MASK=True, MASK_BCAST_C=True, GRAD=True, COEF_PTR=True, CHANNELS_LAST=cl, STATS=False,
                  F64=False, I64=True, BLOCK_C=1 if cl else 4, BLOCK=512, TILES=8, C_CL=3 if cl else 1)
    ptx(k._main_kernel, dict(p_ptr="*fp32", t_ptr="*fp32", m_ptr="*i1", g_ptr="*fp32", part_ptr="*fp32",
                             coef_ptr="*fp64", m_a="fp64", m_b="fp64", k_hole_in="fp64", k_valid_in="fp64",
                             ceps2_in="fp64", HW="i64"), consts)
for mode, rows in ((0, 1), (1, 2), (2, 4)):
    ptx(k._finish_kernel, dict(part_ptr="*fp32", out_ptr="*fp32" if mode else "*fp64", coef_ptr="*fp64", k_hole="fp64",
                               k_valid="fp64", scale="fp64", total="fp64", eps="fp64", weight_hole="fp64",
                               weight_valid="fp64"),
        dict(MODE=mode, ROWS=rows, IS_HOLE=True, HAS_MASK=True, COEF_PTR=True, BLOCK=1024))
# A float16 image writes its gradient in float32 (a uint8 mask read as binary).
consts = dict(LOSS=1, HAS_MASK=True, MASK_BCAST_C=True, GRAD=True, COEF_PTR=True, CHANNELS_LAST=False, STATS=False,
              F64=False, I64=False, BLOCK_C=4, BLOCK=1024, TILES=8, C_CL=1, p_shw=1, t_shw=1, m_shw=1)
ptx(k._main_kernel, dict(p_ptr="*fp16", t_ptr="*fp16", m_ptr="*u8", g_ptr="*fp32", part_ptr="*fp32", coef_ptr="*fp64",
                         m_a="fp64", m_b="fp64", k_hole_in="fp64", k_valid_in="fp64", ceps2_in="fp64"), consts)
ptx(k._mask_sum_kernel, dict(m_ptr="*u8", part_ptr="*fp32"), dict(I64=False, BLOCK=4096, TILES=8, m_shw=1))
ptx(k._mask_sum_kernel, dict(m_ptr="*fp64", part_ptr="*fp64"), dict(I64=False, BLOCK=4096, TILES=8, m_shw=1))
ptx(k._mask_sum_kernel, dict(m_ptr="*i1", part_ptr="*fp32", HW="i64"), dict(I64=True, BLOCK=4096, TILES=8))
print("sm90 ok")
"""


def test_triton_kernels_compile_for_sm90():
    """The interpreter never runs Triton's compiler: compile the kernels for an H100 (sm_90) ahead of time,
    without a GPU, and check that the loads and stores are vectorised (fresh process, no TRITON_INTERPRET)."""
    require_sm90()
    done = run_script(_SM90_COMPILE)
    assert done.returncode == 0 and "sm90 ok" in done.stdout, done.stderr[-3000:]


_BOOL_MASK_GRAPHS = r"""
import json
import torch
import inpaint_fast  # noqa: F401  (registers the ops: triton_op, since nothing is interpreted)
from tests.triton_aot import aot_forward_graph

ops = torch.ops.inpaint_fast
p, t = torch.randn(2, 3, 4, 5), torch.randn(2, 3, 4, 5)
m = torch.rand(2, 1, 4, 5) > 0.5
print(json.dumps([
    aot_forward_graph(lambda p, t, m: ops.masked_error_triton(p, t, m, False, 0, 1e-3, 6.0, 1.0, 1, 1e-8, True), p, t, m),
    aot_forward_graph(lambda p, t, m: ops.masked_error_stats_triton(p, t, m, True), p, t, m)]))
"""


def test_compile_trace_passes_a_bool_mask_on_as_it_is():
    """What torch.compile makes of the triton_ops: the bool mask reaches the kernels unconverted (Inductor
    in torch 2.11 cannot lower the bool -> uint8 view the launcher used to make)."""
    import json
    require_sm90()
    done = run_script(_BOOL_MASK_GRAPHS)
    assert done.returncode == 0, done.stderr[-3000:]
    for code in json.loads(done.stdout.strip().splitlines()[-1]):
        assert "triton_kernel_wrapper_functional" in code, code
        assert "view.dtype" not in code and "_to_copy.default(arg2_1" not in code, code
        assert "'m_ptr': arg2_1" in code, code
