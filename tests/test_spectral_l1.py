"""inpaint_fast::spectral_l1 (C++ CPU kernel) and frequency_l1 against independent oracles.

Oracles: ``inpaint_fast.reference.frequency`` (the notebook's frequency loss) evaluated in float64 on the
same (upcast) images, with its gradients from autograd; for the op on its own, the closed form
``scale * sum|log1p|z_p| - log1p|z_t||`` written with torch ops in complex128, whose gradients
w.r.t. the complex inputs come from torch's autograd (dL/dRe + i dL/dIm).
"""
import csv
import os
import pathlib
import subprocess
import sys

import pytest
import torch

from inpaint_fast.ops import library

if library.load_error() is not None:
    pytest.skip(library.load_error(), allow_module_level=True)

from inpaint_fast.ops.spectral_l1 import frequency_l1, spectral_l1  # noqa: E402
from inpaint_fast.reference import frequency as ref  # noqa: E402

OP = torch.ops.inpaint_fast.spectral_l1.default
SEGMENT = 4096  # kSegment of csrc/ops/cpu/spectral_l1_kernel.cpp: complex elements per work unit
BLOCK = 64      # kBlock: elements per fast-path block

DTYPES = [torch.float64, torch.float32, torch.float16, torch.bfloat16]
# The loss is returned in the image dtype (one rounding); FFTs run in float32 for float16/bfloat16.
LOSS_TOL = {torch.float64: dict(rtol=1e-12, atol=1e-14), torch.float32: dict(rtol=1e-5, atol=1e-7),
            torch.float16: dict(rtol=1e-3, atol=1e-5), torch.bfloat16: dict(rtol=8e-3, atol=1e-4)}
# Gradients: relative to their largest element (float32 FFTs, then one rounding to the image dtype).
GRAD_TOL = {torch.float64: 1e-12, torch.float32: 2e-5, torch.float16: 2e-3, torch.bfloat16: 1.6e-2}


def images(shape, dtype, seed=0):
    gen = torch.Generator().manual_seed(seed)
    pred = torch.rand(shape, generator=gen, dtype=torch.float64)
    target = (pred + 0.3 * torch.randn(shape, generator=gen, dtype=torch.float64)).clamp(0, 1)
    return pred.to(dtype), target.to(dtype)


def reference_loss_and_grads(pred, target, reduction, g=1.0):
    p = pred.detach().double().requires_grad_()
    t = target.detach().double().requires_grad_()
    loss = ref.frequency(p, t, reduction=reduction)
    gp, gt = torch.autograd.grad(loss, (p, t), grad_outputs=torch.tensor(g, dtype=torch.float64))
    return loss.detach(), gp, gt


def assert_grad_close(got, want, dtype):
    assert got.dtype == dtype and got.shape == want.shape
    scale = want.abs().max().item()
    torch.testing.assert_close(got.double(), want, rtol=GRAD_TOL[dtype], atol=GRAD_TOL[dtype] * scale)


def check_frequency_l1(pred, target, reduction="mean", g=1.0):
    p = pred.detach().clone().requires_grad_()
    t = target.detach().clone().requires_grad_()
    loss = frequency_l1(p, t, reduction)
    assert loss.dtype == pred.dtype and loss.shape == ()
    gp, gt = torch.autograd.grad(loss, (p, t), grad_outputs=torch.tensor(g, dtype=loss.dtype))
    want, want_gp, want_gt = reference_loss_and_grads(pred, target, reduction, g)
    torch.testing.assert_close(loss.double(), want, **LOSS_TOL[pred.dtype])
    assert_grad_close(gp, want_gp, pred.dtype)
    assert_grad_close(gt, want_gt, pred.dtype)


# ---------------------------------------------------------------- frequency_l1 against the reference

@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_frequency_l1_matches_reference(dtype, reduction):
    check_frequency_l1(*images((2, 3, 16, 17), dtype), reduction, g=0.7)


@pytest.mark.parametrize("shape", [(1, 1, 1, 1), (1, 1, 1, 2), (3, 1, 5, 1), (1, 2, 7, 9), (2, 1, 8, 8)])
def test_odd_small_shapes(shape):
    check_frequency_l1(*images(shape, torch.float32, seed=3))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_several_units_and_a_partial_block(dtype):
    # 2*2*66*45 = 11880 complex elements: 2 full units + a partial one whose last block is partial.
    shape = (2, 2, 66, 88)
    numel = 2 * 2 * 66 * (88 // 2 + 1)
    assert numel > 2 * SEGMENT and numel % SEGMENT % BLOCK != 0
    check_frequency_l1(*images(shape, dtype, seed=5), "sum", g=-1.3)


def test_the_notebook_frequency_loss_is_matched():
    from tests import notebook
    pred, target = images((2, 3, 32, 32), torch.float32, seed=2)
    # The notebook takes the reference first; the term is symmetric in its arguments.
    torch.testing.assert_close(frequency_l1(pred, target), notebook.frequency_loss(target, pred),
                               rtol=1e-5, atol=0)


@pytest.mark.parametrize("layout", ["channels_last", "strided", "transposed"])
def test_image_layouts(layout):
    pred, target = images((2, 3, 12, 10), torch.float32, seed=4)
    if layout == "channels_last":
        pred_l = pred.contiguous(memory_format=torch.channels_last)
    elif layout == "strided":
        pred_l = torch.zeros(2, 3, 12, 20).index_copy(3, torch.arange(0, 20, 2), pred)[..., ::2]
    else:
        pred_l = pred.transpose(2, 3).contiguous().transpose(2, 3)
    assert not pred_l.is_contiguous()
    check_frequency_l1(pred_l, target)


def test_only_pred_requires_grad():
    pred, target = images((1, 2, 8, 6), torch.float64)
    p = pred.clone().requires_grad_()
    loss = frequency_l1(p, target)
    (gp,) = torch.autograd.grad(loss, (p,))
    _, want_gp, _ = reference_loss_and_grads(pred, target, "mean")
    torch.testing.assert_close(gp, want_gp)
    assert target.grad is None


def test_no_grad_mode_and_no_grad_inputs():
    pred, target = images((1, 2, 8, 6), torch.float64)
    want = ref.frequency(pred, target)
    with torch.no_grad():
        loss = frequency_l1(pred.clone().requires_grad_(), target)
    assert not loss.requires_grad
    torch.testing.assert_close(loss, want)
    torch.testing.assert_close(frequency_l1(pred, target), want)


def test_bad_reduction():
    pred, target = images((1, 1, 4, 4), torch.float32)
    with pytest.raises(ValueError, match="reduction"):
        frequency_l1(pred, target, "none")


def test_zero_spectrum_gives_finite_loss_and_zero_gradient():
    # pred = 0: every z_pred is exactly 0. The gradient w.r.t. z_pred is 0 there (torch's abs
    # backward), hence w.r.t. pred too; target's gradient is the usual one.
    _, target = images((2, 2, 8, 9), torch.float32)
    pred = torch.zeros_like(target)
    p = pred.clone().requires_grad_()
    t = target.clone().requires_grad_()
    loss = frequency_l1(p, t)
    loss.backward()
    want, want_gp, want_gt = reference_loss_and_grads(pred, target, "mean")
    assert torch.isfinite(loss) and torch.equal(p.grad, torch.zeros_like(p))
    assert torch.equal(want_gp, torch.zeros_like(want_gp))
    torch.testing.assert_close(loss.double(), want, rtol=1e-5, atol=0)
    assert_grad_close(t.grad, want_gt, torch.float32)


def test_gradcheck_fp64_frequency_l1():
    pred, target = images((1, 2, 5, 6), torch.float64, seed=7)
    for reduction in ("sum", "mean"):
        assert torch.autograd.gradcheck(
            lambda p, t: frequency_l1(p, t, reduction),
            (pred.clone().requires_grad_(), target.clone().requires_grad_()))


def test_torch_compile_fullgraph():
    pred, target = images((2, 3, 8, 10), torch.float32, seed=8)

    def loss_fn(p, t):
        return 2.0 * frequency_l1(p, t)

    torch._dynamo.reset()
    compiled = torch.compile(loss_fn, fullgraph=True, backend="aot_eager")
    for shape_pred, shape_target in [(pred, target), images((1, 2, 6, 7), torch.float32, seed=9)]:
        p = shape_pred.clone().requires_grad_()
        t = shape_target.clone().requires_grad_()
        loss = compiled(p, t)
        loss.backward()
        want, want_gp, want_gt = reference_loss_and_grads(shape_pred, shape_target, "mean", g=2.0)
        torch.testing.assert_close(loss.double(), 2.0 * want, rtol=1e-5, atol=0)
        assert_grad_close(p.grad, want_gp, torch.float32)
        assert_grad_close(t.grad, want_gt, torch.float32)


# ---------------------------------------------------------------- the op against its closed form

def spectra(shape, dtype=torch.complex64, seed=0, magnitude=1.0):
    gen = torch.Generator().manual_seed(seed)
    real = torch.float64

    def one():
        return torch.complex(torch.randn(shape, generator=gen, dtype=real),
                             torch.randn(shape, generator=gen, dtype=real)) * magnitude
    return one().to(dtype), one().to(dtype)


def closed_form(zp, zt, scale):
    """(loss, grad_zp, grad_zt) in complex128 by torch ops and torch's autograd."""
    p = zp.detach().to(torch.complex128).requires_grad_()
    t = zt.detach().to(torch.complex128).requires_grad_()
    loss = scale * (torch.log1p(p.abs()) - torch.log1p(t.abs())).abs().sum()
    gp, gt = torch.autograd.grad(loss, (p, t))
    return loss.detach(), gp, gt


def check_op(zp, zt, scale=0.37, rtol=None):
    complex128 = zp.dtype == torch.complex128
    rtol = rtol if rtol is not None else (1e-12 if complex128 else 2e-6)
    loss, gp, gt = OP(zp, zt, scale, True, True)
    assert loss.dtype == (torch.float64 if complex128 else torch.float32) and loss.shape == ()
    assert gp.dtype == zp.dtype and gp.shape == zp.shape and gt.shape == zt.shape
    want, want_gp, want_gt = closed_form(zp, zt, scale)
    torch.testing.assert_close(loss.double(), want, rtol=rtol, atol=0)
    for got, wanted in ((gp, want_gp), (gt, want_gt)):
        torch.testing.assert_close(got.to(torch.complex128), wanted, rtol=rtol,
                                   atol=rtol * wanted.abs().max().item())
    return loss, gp, gt


@pytest.mark.parametrize("dtype", [torch.complex64, torch.complex128], ids=str)
@pytest.mark.parametrize("shape", [(2, 3, 16, 9), (1, 1, 1, 1), (3, 1, 5, 63), (1, 2, 70, 65)])
def test_op_matches_closed_form(dtype, shape):
    check_op(*spectra(shape, dtype, seed=sum(shape)))


@pytest.mark.parametrize("dtype", [torch.complex64, torch.complex128], ids=str)
def test_op_flags_and_empty_gradients(dtype):
    zp, zt = spectra((2, 2, 4, 3), dtype)
    want, want_gp, want_gt = closed_form(zp, zt, 1.0)
    for gpf, gtf in [(False, False), (True, False), (False, True)]:
        loss, gp, gt = OP(zp, zt, 1.0, gpf, gtf)
        torch.testing.assert_close(loss.double(), want)
        for flag, got, wanted in ((gpf, gp, want_gp), (gtf, gt, want_gt)):
            if flag:
                torch.testing.assert_close(got.to(torch.complex128), wanted, rtol=2e-6, atol=1e-7)
            else:
                assert got.shape == (0,) and got.dtype == dtype


def test_op_exact_zeros_in_the_spectrum():
    zp, zt = spectra((2, 3, 8, 9), seed=1)
    zp[..., ::3] = 0      # |z_p| = 0: zero gradient there
    zt[:, 1] = 0
    zp[0, 0, 0, :4] = zt[0, 0, 0, :4]  # a = b: sign(0) = 0, zero gradients
    loss, gp, gt = check_op(zp, zt)
    assert torch.isfinite(loss)
    assert torch.equal(gp[..., ::3], torch.zeros_like(gp[..., ::3]))
    assert torch.equal(gt[:, 1], torch.zeros_like(gt[:, 1]))
    assert torch.equal(gp[0, 0, 0, 1:3], torch.zeros(2, dtype=gp.dtype))


@pytest.mark.parametrize("magnitude", [1e-30, 1e-22, 1e-8, 1e8, 1e20, 1e30])
def test_op_extreme_magnitudes_complex64(magnitude):
    # |z|^2 underflows or overflows float32 outside about [1e-19, 1e19]: those blocks take the
    # robust hypot path; mixed with normal elements in one block, and alone.
    zp, zt = spectra((1, 2, 8, 40), seed=2)
    zp[0, 0] *= magnitude
    zt[0, 1, :4] *= magnitude
    check_op(zp, zt, scale=1.0, rtol=1e-5)
    check_op(zp[0, 0] * 1, zt[0, 0] * magnitude, scale=1.0, rtol=1e-5)


def test_op_extreme_magnitudes_complex128():
    zp, zt = spectra((1, 2, 8, 40), torch.complex128, seed=2)
    zp[0, 0] *= 1e-200
    zt[0, 1] *= 1e200
    check_op(zp, zt)


def test_op_nan_propagates():
    zp, zt = spectra((1, 1, 4, 70), seed=6)
    zp[0, 0, 1, 3] = complex(float("nan"), 0.0)
    loss, _, _ = OP(zp, zt, 1.0, True, True)
    assert torch.isnan(loss)


@pytest.mark.parametrize("layout", ["strided", "transposed", "conj_view"])
def test_op_non_contiguous_spectra(layout):
    zp, zt = spectra((2, 3, 6, 10), seed=4)
    if layout == "strided":
        zp_l, zt_l = zp[..., ::2], zt[..., ::2]
        zp, zt = zp_l.contiguous(), zt_l.contiguous()
    elif layout == "transposed":
        zp_l = zp.transpose(2, 3).contiguous().transpose(2, 3)
        zt_l = zt.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2)  # channels_last-like
    else:
        zp_l, zt_l = zp.conj(), zt
        zp = zp_l.resolve_conj()
    assert not zp_l.is_contiguous() or zp_l.is_conj()
    got = check_op(zp_l, zt_l)
    for a, b in zip(got, OP(zp, zt, 0.37, True, True)):
        assert torch.equal(a, b) and a.is_contiguous()


def test_gradcheck_op_complex128():
    zp, zt = spectra((1, 2, 3, 5), torch.complex128, seed=7)
    zp, zt = zp + 0.1 * zp / zp.abs(), zt + 0.1 * zt / zt.abs()  # |z| >= 0.1: away from z = 0
    assert ((zp.abs().log1p() - zt.abs().log1p()).abs() > 1e-3).all()  # and away from a = b
    assert torch.autograd.gradcheck(
        lambda p, t: spectral_l1(p, t, 0.3, True, True)[0],
        (zp.requires_grad_(), zt.requires_grad_()))


@pytest.mark.parametrize("dtype", [torch.complex64, torch.complex128], ids=str)
def test_opcheck(dtype):
    zp, zt = spectra((2, 3, 5, 4), dtype)
    torch.library.opcheck(OP, (zp, zt, 0.5, False, False))
    torch.library.opcheck(OP, (zp, zt, 1.0, True, False))
    torch.library.opcheck(OP, (zp.clone().requires_grad_(), zt.clone().requires_grad_(), 0.25, True, True))
    torch.library.opcheck(OP, (zp.clone().requires_grad_(), zt, 0.25, True, False))


def test_grad_output_scales_the_saved_gradient():
    zp, zt = spectra((1, 2, 4, 5), torch.complex128, seed=3)
    p, t = zp.clone().requires_grad_(), zt.clone().requires_grad_()
    loss, _, _ = spectral_l1(p, t, 0.5, True, True)
    gp, gt = torch.autograd.grad(loss, (p, t), grad_outputs=torch.tensor(-2.5, dtype=torch.float64))
    _, want_gp, want_gt = closed_form(zp, zt, 0.5)
    torch.testing.assert_close(gp, -2.5 * want_gp)
    torch.testing.assert_close(gt, -2.5 * want_gt)


def test_retained_graph_runs_backward_twice_and_double_backward_raises():
    pred, target = images((1, 2, 6, 6), torch.float64)
    p = pred.clone().requires_grad_()
    loss = frequency_l1(p, target)
    loss.backward(retain_graph=True)
    _, want_gp, _ = reference_loss_and_grads(pred, target, "mean")
    torch.testing.assert_close(p.grad, want_gp)
    (2 * loss).backward()  # the saved gradient was not consumed by the first backward
    torch.testing.assert_close(p.grad, 3 * want_gp)
    with pytest.raises(RuntimeError, match="double backward"):
        torch.autograd.grad(frequency_l1(p, target), (p,), create_graph=True)


def test_gradient_needed_but_not_computed_raises():
    zp, zt = spectra((1, 1, 2, 3))
    p = zp.clone().requires_grad_()
    loss, _, _ = spectral_l1(p, zt, 1.0, False, False)
    with pytest.raises(RuntimeError, match="compute_grad_pred=False"):
        loss.backward()


# ---------------------------------------------------------------- determinism

def _run(pred, target):
    p, t = pred.clone().requires_grad_(), target.clone().requires_grad_()
    loss = frequency_l1(p, t)
    gp, gt = torch.autograd.grad(loss, (p, t))
    zp, zt = torch.fft.rfft2(pred, norm="ortho"), torch.fft.rfft2(target, norm="ortho")
    return (loss, gp, gt) + OP(zp, zt, 1.0, True, True)


def test_bitwise_deterministic_across_runs_and_threads():
    # 4*3*64*33 = 25344 complex elements: 7 units for at::parallel_for to split between threads.
    pred, target = images((4, 3, 64, 64), torch.float32, seed=11)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        first, second = _run(pred, target), _run(pred, target)
        torch.set_num_threads(1)
        single = _run(pred, target)
    finally:
        torch.set_num_threads(threads)
    for a, b, c in zip(first, second, single):
        assert torch.equal(a, b) and torch.equal(a, c)
    want, _, _ = reference_loss_and_grads(pred, target, "mean")
    torch.testing.assert_close(first[0].double(), want, rtol=1e-5, atol=0)


# ---------------------------------------------------------------- registration and C++ checks

def test_extension_reports_the_cpu_kernel():
    assert "cpu" in library.kernels("spectral_l1")


def test_cpp_checks():
    zp, zt = spectra((1, 2, 3, 4))
    with pytest.raises(RuntimeError, match="complex64 or complex128"):
        OP(zp.real.contiguous(), zt.real.contiguous(), 1.0, False, False)
    with pytest.raises(RuntimeError, match="z_target dtype"):
        OP(zp, zt.to(torch.complex128), 1.0, False, False)
    with pytest.raises(RuntimeError, match="z_target shape"):
        OP(zp, zt[..., :3], 1.0, False, False)


# ---------------------------------------------------------------- the baseline build and the benchmark

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_baseline_isa_build_and_the_benchmark(tmp_path):
    # On x86-64 the float block runs the x86-64-v3 (AVX2 + FMA) build when the CPU has it;
    # ATEN_CPU_CAPABILITY=default selects the baseline build: checked against the oracles in a fresh
    # process, which also smoke-runs the benchmark script (one interpreter start for both).
    out = tmp_path / "quick.csv"
    code = ("import sys, torch; from tests import test_spectral_l1 as t; "
            "t.test_op_matches_closed_form(torch.complex64, (1, 2, 70, 65)); "
            "t.test_op_exact_zeros_in_the_spectrum(); t.test_op_extreme_magnitudes_complex64(1e-30); "
            "t.test_frequency_l1_matches_reference(torch.float32, 'mean'); "
            "t.test_bitwise_deterministic_across_runs_and_threads(); print('baseline ok'); "
            "sys.path.insert(0, 'benchmarks'); import bench_spectral_l1 as b; "
            f"sys.exit(b.main(['--quick', '--providers', 'eager,cpu', '--modes', 'full', '--no-plot', '--out', {str(out)!r}]))")
    env = {**os.environ, "ATEN_CPU_CAPABILITY": "default"}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0 and "baseline ok" in done.stdout, done.stderr[-3000:]
    rows = list(csv.DictReader(out.open()))
    assert {r["provider"] for r in rows} == {"eager", "cpu"}
    assert all(float(r["median_ms"]) > 0 and not r["note"] for r in rows)


# ---------------------------------------------------------------- GPU backends: the Triton op
# On a GPU both gpu_backend params run on CUDA tensors. spectral_l1 has no CUDA C++ kernel, so under
# use_backend('cuda') frequency_loss runs the reference (checked below: that selection is part of
# the contract); the op-level tests take the Triton op directly (fixture triton_device). Without a
# GPU, 'triton' runs the kernels on CPU tensors in Triton's interpreter and 'cuda' is skipped.

from inpaint_fast.ops import backend as _backend  # noqa: E402
from inpaint_fast.functional import frequency_loss  # noqa: E402
from tests.conftest import GPU_DEVICE, TRITON_INTERPRETED  # noqa: E402
from tests.triton_aot import require_sm90, run_script  # noqa: E402

GPU_IMAGE_DTYPES = [torch.float32, torch.float16, torch.bfloat16]  # bfloat16: on a GPU only
TRITON_BLOCK = 1024  # BLOCK of inpaint_fast/triton/spectral_l1.py: complex elements per program


@pytest.fixture
def triton_device():
    reason = _backend.availability()["triton"]
    if reason is not None:
        pytest.skip(f"backend 'triton': {reason}")
    return GPU_DEVICE


def triton_op():
    return torch.ops.inpaint_fast.spectral_l1_triton.default


def check_triton_op(zp, zt, device, scale=0.37, rtol=None, flags=(True, True)):
    """The Triton op on ``device`` against the closed form (complex128 autograd, on the CPU)."""
    complex128 = zp.dtype == torch.complex128
    rtol = rtol if rtol is not None else (1e-12 if complex128 else 2e-6)
    loss, gp, gt = triton_op()(zp.to(device), zt.to(device), scale, *flags)
    assert loss.dtype == (torch.float64 if complex128 else torch.float32) and loss.shape == ()
    assert loss.device.type == device.type
    want, want_gp, want_gt = closed_form(zp, zt, scale)
    torch.testing.assert_close(loss.cpu().double(), want, rtol=rtol, atol=0)
    for flag, got, wanted in zip(flags, (gp, gt), (want_gp, want_gt)):
        if not flag:
            assert got.shape == (0,) and got.dtype == zp.dtype
            continue
        assert got.dtype == zp.dtype and got.shape == zp.shape and got.is_contiguous()
        torch.testing.assert_close(got.cpu().to(torch.complex128), wanted, rtol=rtol,
                                   atol=rtol * wanted.abs().max().item())
    return loss, gp, gt


def gpu_images(shape, dtype, device, seed=0):
    pred, target = images(shape, torch.float64, seed)
    return pred.to(device=device, dtype=dtype), target.to(device=device, dtype=dtype)


@pytest.mark.parametrize("dtype", GPU_IMAGE_DTYPES, ids=str)
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_gpu_frequency_loss_matches_reference(gpu_backend, dtype, reduction):
    name, device = gpu_backend
    if dtype == torch.bfloat16 and device.type != "cuda":
        pytest.skip("bfloat16 is checked on a GPU only (Triton's interpreter mishandles it)")
    expected = "triton" if name == "triton" else ("cuda" if "cuda" in library.kernels("spectral_l1")
                                                  else "reference")
    assert _backend.choose("spectral_l1", device) == expected
    # 2*3*40*33 = 7920 complex elements: 8 Triton programs, the last one partial.
    pred, target = gpu_images((2, 3, 40, 64), dtype, device, seed=21)
    p, t = pred.clone().requires_grad_(), target.clone().requires_grad_()
    loss = frequency_loss(p, t, reduction=reduction)
    assert loss.dtype == dtype and loss.shape == () and loss.device.type == device.type
    gp, gt = torch.autograd.grad(loss, (p, t), grad_outputs=torch.tensor(0.7, dtype=dtype, device=device))
    want, want_gp, want_gt = reference_loss_and_grads(pred.cpu(), target.cpu(), reduction, g=0.7)
    torch.testing.assert_close(loss.cpu().double(), want, **LOSS_TOL[dtype])
    assert_grad_close(gp.cpu(), want_gp, dtype)
    assert_grad_close(gt.cpu(), want_gt, dtype)


def test_gpu_frequency_loss_zero_image(gpu_backend):
    # pred = 0: every z_pred is exactly 0; its gradient is 0 (torch's abs backward), target's is not.
    _, device = gpu_backend
    _, target = gpu_images((2, 2, 8, 9), torch.float32, device, seed=22)
    pred = torch.zeros_like(target)
    p, t = pred.clone().requires_grad_(), target.clone().requires_grad_()
    loss = frequency_loss(p, t)
    loss.backward()
    want, _, want_gt = reference_loss_and_grads(pred.cpu(), target.cpu(), "mean")
    assert torch.isfinite(loss).item() and torch.equal(p.grad, torch.zeros_like(p))
    torch.testing.assert_close(loss.cpu().double(), want, rtol=1e-5, atol=0)
    assert_grad_close(t.grad.cpu(), want_gt, torch.float32)


@pytest.mark.parametrize("dtype", [torch.complex64, torch.complex128], ids=str)
@pytest.mark.parametrize("shape", [(1, 1, 1, 1), (2, 3, 16, 9), (1, 2, 70, 65)])
def test_triton_op_matches_closed_form(triton_device, dtype, shape):
    # (1, 2, 70, 65): 9100 elements, 9 programs, a partial last one.
    check_triton_op(*spectra(shape, dtype, seed=sum(shape)), triton_device)


def test_triton_op_empty_spectrum(triton_device):
    zp, zt = spectra((2, 0, 5), torch.complex64)
    loss, gp, gt = triton_op()(zp.to(triton_device), zt.to(triton_device), 0.5, True, True)
    assert loss.item() == 0.0 and gp.shape == zp.shape and gt.shape == zt.shape


@pytest.mark.parametrize("dtype", [torch.complex64, torch.complex128], ids=str)
def test_triton_op_flags_and_empty_gradients(triton_device, dtype):
    zp, zt = spectra((2, 2, 4, 3), dtype, seed=23)
    for flags in [(False, False), (True, False), (False, True)]:
        check_triton_op(zp, zt, triton_device, scale=1.0, flags=flags)


@pytest.mark.parametrize("dtype", [torch.complex64, torch.complex128], ids=str)
def test_triton_op_exact_zeros_in_the_spectrum(triton_device, dtype):
    zp, zt = spectra((2, 3, 8, 9), dtype, seed=1)
    zp[..., ::3] = 0      # |z_p| = 0: zero gradient there
    zt[:, 1] = 0
    zp[0, 0, 0, :4] = zt[0, 0, 0, :4]  # a = b: sign(0) = 0, zero gradients
    zp[1, 2, 3, 4] = complex(0.0, -0.0)  # signed zeros
    zt[1, 2, 3, 5] = complex(-0.0, 0.0)
    loss, gp, gt = (x.cpu() for x in check_triton_op(zp, zt, triton_device))
    assert torch.isfinite(loss)
    assert torch.equal(gp[..., ::3], torch.zeros_like(gp[..., ::3]))
    assert torch.equal(gt[:, 1], torch.zeros_like(gt[:, 1]))
    assert torch.equal(gp[0, 0, 0, 1:3], torch.zeros(2, dtype=gp.dtype))
    assert torch.isfinite(torch.view_as_real(gp)).all() and torch.isfinite(torch.view_as_real(gt)).all()


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the interpreter's numpy: |z|^2 overflows
@pytest.mark.parametrize("magnitude", [1e-30, 1e-22, 1e-8, 1e8, 1e20, 1e30])
def test_triton_op_extreme_magnitudes_complex64(triton_device, magnitude):
    # |z|^2 under- or overflows float32 outside about [1e-19, 1e19]: the scaled magnitude is used.
    zp, zt = spectra((1, 2, 8, 40), seed=2)
    zp[0, 0] *= magnitude
    zt[0, 1, :4] *= magnitude
    check_triton_op(zp, zt, triton_device, scale=1.0, rtol=1e-5)


@pytest.mark.parametrize("dtype", [torch.complex64, torch.complex128], ids=str)
@pytest.mark.parametrize("magnitude", [1e-3, 1e-6])
def test_triton_op_small_magnitudes(triton_device, dtype, magnitude):
    # Both spectra small: log1p(x) ~ x, which log(1 + x) would get wrong by ~1 ulp of 1 (relative).
    zp, zt = spectra((2, 3, 16, 9), dtype, seed=26, magnitude=magnitude)
    check_triton_op(zp, zt, triton_device, scale=1.0)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the interpreter's numpy: |z|^2 overflows
def test_triton_op_extreme_magnitudes_complex128(triton_device):
    zp, zt = spectra((1, 2, 8, 40), torch.complex128, seed=2)
    zp[0, 0] *= 1e-200
    zt[0, 1] *= 1e200
    zt[0, 0, 0, 0] = complex(1e-310, -3e-310)  # subnormal parts
    check_triton_op(zp, zt, triton_device)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the interpreter's numpy: inf - inf
def test_triton_op_nan_and_inf(triton_device):
    zp, zt = spectra((1, 1, 4, 70), seed=6)
    zp[0, 0, 1, 3] = complex(float("nan"), 0.0)
    loss, _, _ = triton_op()(zp.to(triton_device), zt.to(triton_device), 1.0, True, True)
    assert torch.isnan(loss).item()
    zp, zt = spectra((1, 1, 4, 70), seed=6)
    zp[0, 0, 1, 3] = complex(float("inf"), 1.0)
    loss, _, _ = triton_op()(zp.to(triton_device), zt.to(triton_device), 1.0, False, False)
    assert loss.item() == float("inf")


@pytest.mark.parametrize("layout", ["strided", "transposed", "conj_view"])
def test_triton_op_non_contiguous_spectra(triton_device, layout):
    zp, zt = spectra((2, 3, 6, 10), seed=4)
    zp, zt = zp.to(triton_device), zt.to(triton_device)
    if layout == "strided":
        zp_l, zt_l = zp[..., ::2], zt[..., ::2]
        zp, zt = zp_l.contiguous(), zt_l.contiguous()
    elif layout == "transposed":
        zp_l = zp.transpose(2, 3).contiguous().transpose(2, 3)
        zt_l = zt.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2)  # channels_last-like
    else:
        zp_l, zt_l = zp.conj(), zt
        zp = zp_l.resolve_conj()
    assert not zp_l.is_contiguous() or zp_l.is_conj()
    got = check_triton_op(zp_l.cpu(), zt_l.cpu(), triton_device)  # the oracle on the same values
    got_l = triton_op()(zp_l, zt_l, 0.37, True, True)
    for a, b, c in zip(got_l, triton_op()(zp, zt, 0.37, True, True), got):
        assert torch.equal(a, b) and torch.equal(a, c) and a.is_contiguous()


def test_triton_op_bitwise_deterministic(triton_device):
    # 5 programs of the main kernel; two runs give bitwise the same loss and gradients.
    zp, zt = spectra((1, 3, 40, 41), seed=24)
    zp, zt = zp.to(triton_device), zt.to(triton_device)
    first = triton_op()(zp, zt, 0.25, True, True)
    second = triton_op()(zp, zt, 0.25, True, True)
    for a, b in zip(first, second):
        assert torch.equal(a, b)
    assert zp.numel() > 2 * TRITON_BLOCK


def test_gpu_frequency_loss_bitwise_deterministic(gpu_backend):
    _, device = gpu_backend
    pred, target = gpu_images((2, 3, 32, 40), torch.float32, device, seed=25)

    def run():
        p, t = pred.clone().requires_grad_(), target.clone().requires_grad_()
        loss = frequency_loss(p, t)
        return (loss,) + torch.autograd.grad(loss, (p, t))
    for a, b in zip(run(), run()):
        assert torch.equal(a, b)


def test_triton_gradcheck_complex128(triton_device):
    zp, zt = spectra((1, 2, 3, 5), torch.complex128, seed=7)
    zp, zt = zp + 0.1 * zp / zp.abs(), zt + 0.1 * zt / zt.abs()  # |z| >= 0.1: away from z = 0
    assert ((zp.abs().log1p() - zt.abs().log1p()).abs() > 1e-3).all()  # and away from a = b
    zp, zt = zp.to(triton_device), zt.to(triton_device)
    assert torch.autograd.gradcheck(
        lambda p, t: spectral_l1(p, t, 0.3, True, True, backend="triton")[0],
        (zp.requires_grad_(), zt.requires_grad_()), fast_mode=True)


def test_triton_grad_output_scales_the_saved_gradient(triton_device):
    zp, zt = spectra((1, 2, 4, 5), torch.complex128, seed=3)
    p, t = zp.to(triton_device).requires_grad_(), zt.to(triton_device).requires_grad_()
    loss, _, _ = spectral_l1(p, t, 0.5, True, True, backend="triton")
    gp, gt = torch.autograd.grad(loss, (p, t), grad_outputs=torch.tensor(-2.5, dtype=torch.float64,
                                                                          device=triton_device))
    _, want_gp, want_gt = closed_form(zp, zt, 0.5)
    torch.testing.assert_close(gp.cpu(), -2.5 * want_gp)
    torch.testing.assert_close(gt.cpu(), -2.5 * want_gt)


@pytest.mark.parametrize("dtype", [torch.complex64, torch.complex128], ids=str)
def test_triton_opcheck(triton_device, dtype):
    zp, zt = (z.to(triton_device) for z in spectra((2, 3, 5, 4), dtype))
    op = triton_op()
    torch.library.opcheck(op, (zp, zt, 0.5, False, False))
    torch.library.opcheck(op, (zp.clone().requires_grad_(), zt.clone().requires_grad_(), 0.25, True, True))
    torch.library.opcheck(op, (zp.clone().requires_grad_(), zt, 0.25, True, False))


def test_triton_checks(triton_device):
    zp, zt = (z.to(triton_device) for z in spectra((1, 2, 3, 4)))
    op = triton_op()
    with pytest.raises(RuntimeError, match="complex64 or complex128"):
        op(zp.real.contiguous(), zt.real.contiguous(), 1.0, False, False)
    with pytest.raises(RuntimeError, match="z_target dtype"):
        op(zp, zt.to(torch.complex128), 1.0, False, False)
    with pytest.raises(RuntimeError, match="z_target shape"):
        op(zp, zt[..., :3], 1.0, False, False)


def test_gpu_torch_compile_fullgraph(gpu_backend):
    # On a GPU: inductor, which traces into the triton_op (wrap_triton kernels in the graph). In the
    # interpreter the op is an opaque custom op (see inpaint_fast/ops/spectral_l1.py) and inductor
    # cannot compile CPU Triton kernels: aot_eager there.
    name, device = gpu_backend
    compile_backend = "aot_eager" if TRITON_INTERPRETED else "inductor"

    def loss_fn(p, t):
        return 2.0 * frequency_loss(p, t)

    torch._dynamo.reset()
    compiled = torch.compile(loss_fn, fullgraph=True, backend=compile_backend)
    for shape, seed in [((2, 3, 8, 10), 8), ((1, 2, 6, 7), 9)]:  # the second: a new shape
        pred, target = gpu_images(shape, torch.float32, device, seed)
        p, t = pred.clone().requires_grad_(), target.clone().requires_grad_()
        loss = compiled(p, t)
        loss.backward()
        want, want_gp, want_gt = reference_loss_and_grads(pred.cpu(), target.cpu(), "mean", g=2.0)
        torch.testing.assert_close(loss.cpu().double(), 2.0 * want, rtol=1e-5, atol=0)
        assert_grad_close(p.grad.cpu(), want_gp, torch.float32)
        assert_grad_close(t.grad.cpu(), want_gt, torch.float32)


def test_extension_reports_the_triton_kernel():
    try:
        import triton  # noqa: F401
    except ImportError:
        pytest.skip("triton is not installed")
    assert "triton" in library.kernels("spectral_l1")
    assert hasattr(torch.ops.inpaint_fast, "spectral_l1_triton")
    from inpaint_fast.ops.triton import spectral_l1 as kernels
    assert kernels.BLOCK == TRITON_BLOCK


# Run without TRITON_INTERPRET (JIT functions, not interpreted ones): compile the kernels for sm_90
# ahead of time (no GPU needed: Triton's own ptxas) and inspect the PTX.
_COMPILE_SM90 = r"""
import json
import torch
import inpaint_fast  # noqa: F401  (registers the op; triton_op, since nothing is interpreted)
from tests.triton_aot import aot_forward_graph, compile_sm90
from inpaint_fast.ops.triton import spectral_l1 as k
assert type(k._spectral_l1_kernel).__name__ == "JITFunction"
aligned = ("zp_ptr", "zt_ptr", "gp_ptr", "gt_ptr", "partial_ptr", "scale_ptr")  # what the JIT infers for fresh buffers
out = {}
for ty in ("fp32", "fp64"):
    ptrs = {name: "*" + ty for name in aligned}
    for gp, gt in ((True, True), (False, False)) if ty == "fp32" else ((True, True),):
        const = {"GRAD_PRED": gp, "GRAD_TARGET": gt, "FP64": ty == "fp64", "LIBDEVICE": True, "BLOCK": k.BLOCK}
        c = compile_sm90(k._spectral_l1_kernel, dict(ptrs, n_real="i64"), const, aligned, num_warps=k.NUM_WARPS)
        out[f"{ty}-{gp}-{gt}"] = c.asm["ptx"]
    compile_sm90(k._finish_kernel, {"partial_ptr": "*" + ty, "scale_ptr": "*" + ty, "loss_ptr": "*" + ty},
                 {"BLOCK": k.FINISH_BLOCK})

# What torch.compile will see: AOTAutograd decomposes the triton_op into triton_kernel_wrapper_functional
# calls; their tensors_to_clone come from torch's analysis of the kernels' TTIR. Only the gradient and
# partial buffers (and the loss) may be written: an input listed there would be copied on every call.
zp = torch.randn(2, 3, 4, 5, dtype=torch.complex64)
out["graph"] = aot_forward_graph(lambda p, t: torch.ops.inpaint_fast.spectral_l1_triton(p, t, 0.5, True, True),
                                 zp, zp + 1)
print(json.dumps(out))
"""


def test_triton_kernels_compile_for_sm90():
    require_sm90()
    done = run_script(_COMPILE_SM90)
    assert done.returncode == 0, done.stderr[-3000:]
    import json
    ptx = json.loads(done.stdout.strip().splitlines()[-1])
    fp32 = ptx["fp32-True-True"]
    # One 16-byte access per 4 reals: BLOCK reals per spectrum and array over 256 threads.
    assert fp32.count("ld.global.v4.b32") == 2 * (2 * TRITON_BLOCK) // (4 * 32 * 8)
    assert fp32.count("st.global.v4.b32") == 2 * (2 * TRITON_BLOCK) // (4 * 32 * 8)
    assert "st.global.v4.b32" not in ptx["fp32-False-False"]
    for text in (fp32, ptx["fp32-False-False"]):
        assert "sqrt.approx" not in text and "lg2.approx" not in text and "ex2.approx" not in text
    assert "ld.global.v2.b64" in ptx["fp64-True-True"]
    graph = ptx["graph"]
    assert graph.count("triton_kernel_wrapper_functional(") == 2 and "spectral_l1_triton" not in graph
    assert "tensors_to_clone = ['gp_ptr', 'gt_ptr', 'partial_ptr']" in graph
    assert "tensors_to_clone = ['loss_ptr']" in graph
