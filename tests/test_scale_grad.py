"""inpaint_fast::scale_grad_ and the backward every fused op shares (inpaint_fast/ops/scale_grad.py):
the first backward scales the forward's gradient buffer in place (untouched for grad_output 1),
later backwards of the same graph recompute. Oracle: the reference backend's gradients."""
import pytest
import torch

import inpaint_fast as IF
from inpaint_fast.ops import library

if library.load_error() is not None:
    pytest.skip(library.load_error(), allow_module_level=True)

from inpaint_fast.ops.scale_grad import scale_grad_  # noqa: E402

OP = torch.ops.inpaint_fast.scale_grad_.default


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
def test_scales_in_place_and_skips_one(dtype):
    g = torch.randn(2, 3, 5, 7, dtype=torch.float64).to(dtype)
    expected = (g.double() * 2.5).to(dtype)
    before = g.clone()
    OP(g, torch.tensor(1.0))
    assert torch.equal(g, before)
    ptr = g.data_ptr()
    OP(g, torch.tensor([2.5], dtype=dtype))
    assert g.data_ptr() == ptr
    torch.testing.assert_close(g, expected, rtol=1e-2 if dtype in (torch.float16, torch.bfloat16) else 1e-6, atol=0)


def test_complex_channels_last_and_version_kept():
    z = torch.randn(2, 3, 4, 5, dtype=torch.complex64)
    expected = z * -3.0
    version = z._version
    assert scale_grad_(z, torch.tensor(-3.0)) is z
    torch.testing.assert_close(z, expected)
    assert z._version == version
    g = torch.randn(2, 3, 4, 5).to(memory_format=torch.channels_last)
    expected = g * 0.5
    scale_grad_(g, torch.tensor(0.5))
    torch.testing.assert_close(g, expected)


def test_opcheck_and_bad_scale():
    torch.library.opcheck(OP, (torch.randn(3, 4), torch.tensor(2.0)))
    with pytest.raises(RuntimeError, match="scale must have one element"):
        OP(torch.randn(3), torch.ones(2))


def _losses(mask):
    """Each fused op through its public function, on (1, 3, 12, 10) images."""
    target = torch.rand(1, 3, 12, 10, dtype=torch.float64).to(mask.device)
    feat_target = torch.randn(1, 4, 6, 5, dtype=torch.float64).to(mask.device)
    return {
        "masked_error": lambda p: IF.reconstruction_loss(p, target, mask=mask),
        "masked_tv": lambda p: IF.total_variation(p, mask=mask, region="hole_dilated"),
        "spectral_l1": lambda p: IF.frequency_loss(p, target),
        "style_distance": lambda p: IF.functional.feature._style_distance([p[:, :, :6, :5].repeat(1, 2, 1, 1)[:, :4]],
                                                                  [feat_target], None),
    }


@pytest.fixture
def images():
    gen = torch.Generator().manual_seed(3)
    mask = (torch.rand(1, 1, 12, 10, generator=gen) > 0.5).double()
    return torch.rand(1, 3, 12, 10, generator=gen, dtype=torch.float64), mask


@pytest.mark.parametrize("op", ["masked_error", "masked_tv", "spectral_l1", "style_distance"])
def test_repeated_backward_of_one_graph(images, op):
    """retain_graph: each backward gets grad_output x the gradient, whatever came before, and the
    tensor handed out by the first backward is not changed by the second."""
    pred0, mask = images
    loss_fn = _losses(mask)[op]
    with IF.use_backend("reference"):
        p = pred0.clone().requires_grad_()
        (expected,) = torch.autograd.grad(loss_fn(p), p)
    p = pred0.clone().requires_grad_()
    loss = loss_fn(p)
    (g1,) = torch.autograd.grad(loss * 3.0, p, retain_graph=True)
    (g2,) = torch.autograd.grad(loss, p, retain_graph=True)
    (g3,) = torch.autograd.grad(loss * -0.5, p)
    torch.testing.assert_close(g1, 3.0 * expected, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(g2, expected, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(g3, -0.5 * expected, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("op", ["masked_error", "masked_tv", "spectral_l1", "style_distance"])
def test_changing_a_handed_out_gradient_in_place_does_not_change_the_next_backward(images, op):
    """The first backward hands over the op's own buffer; a user may change it in place."""
    pred0, mask = images
    p = pred0.clone().requires_grad_()
    loss = _losses(mask)[op](p)
    (g1,) = torch.autograd.grad(loss, p, retain_graph=True)
    expected = g1.clone()
    g1.mul_(100)
    (g2,) = torch.autograd.grad(loss, p)
    torch.testing.assert_close(g2, expected, rtol=0, atol=0)


@pytest.mark.parametrize("op", ["masked_error", "masked_tv", "spectral_l1", "style_distance"])
def test_weighted_backward_accumulates(images, op):
    pred0, mask = images
    loss_fn = _losses(mask)[op]
    with IF.use_backend("reference"):
        p = pred0.clone().requires_grad_()
        (expected,) = torch.autograd.grad(loss_fn(p), p)
    p = pred0.clone().requires_grad_()
    (0.25 * loss_fn(p)).backward()
    (2.0 * loss_fn(p)).backward()
    torch.testing.assert_close(p.grad, 2.25 * expected, rtol=1e-9, atol=1e-12)


def test_second_backward_after_an_input_changed_is_an_error(images):
    pred0, mask = images
    p = pred0.clone().requires_grad_()
    q = p * 1.0
    loss = IF.reconstruction_loss(q, pred0.flip(-1), mask=mask)
    loss.backward(retain_graph=True)
    with torch.no_grad():
        q.add_(1.0)
    with pytest.raises(RuntimeError, match="modified in place"):
        loss.backward()


@pytest.mark.skipif(not torch.cuda.is_available() or "cuda" not in library.kernels("scale_grad_"),
                    reason="needs a GPU and the CUDA build of the extension")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
def test_cuda_kernel_tests_the_scale_on_the_device(dtype):
    g = torch.randn(7, 3, 33, 17, device="cuda").to(dtype).to(memory_format=torch.channels_last)
    before = g.clone()
    OP(g, torch.ones((), device="cuda"))
    assert torch.equal(g, before)
    OP(g, torch.full((1,), -2.0, device="cuda", dtype=dtype))
    torch.testing.assert_close(g.double(), before.double() * -2.0, rtol=0, atol=0)


@pytest.mark.parametrize("op", ["masked_error", "masked_tv", "spectral_l1", "style_distance"])
def test_repeated_backward_on_gpu_backends(gpu_backend, op):
    """The same contract on the GPU backends (on a GPU only: interpreted it repeats the CPU test)."""
    name, device = gpu_backend
    if device.type != "cuda":
        pytest.skip("covered by test_repeated_backward_of_one_graph on CPU")
    gen = torch.Generator().manual_seed(3)
    mask = (torch.rand(1, 1, 12, 10, generator=gen) > 0.5).double().to(device)
    pred0 = torch.rand(1, 3, 12, 10, generator=gen, dtype=torch.float64).to(device)
    loss_fn = _losses(mask)[op]
    with IF.use_backend("reference"):
        p = pred0.clone().requires_grad_()
        (expected,) = torch.autograd.grad(loss_fn(p), p)
    p = pred0.clone().requires_grad_()
    loss = loss_fn(p)
    (g1,) = torch.autograd.grad(loss, p, retain_graph=True)
    (g2,) = torch.autograd.grad(loss * 3.0, p)
    torch.testing.assert_close(g1, expected, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(g2, 3.0 * expected, rtol=1e-9, atol=1e-12)
