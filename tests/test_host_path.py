"""The host path of the fused losses (issue 14): the C++ ops record their graph node in C++
(csrc/ops/autograd/), a GPU step never waits for the device, and a fused forward + backward can be
captured in a CUDA graph and replayed. Oracle: the reference backend (eager PyTorch)."""
import pytest
import torch

import inpaint_fast as IF
from inpaint_fast.ops import library

if library.load_error() is not None:
    pytest.skip(library.load_error(), allow_module_level=True)

CPP_OPS = ["masked_error", "masked_tv", "spectral_l1", "gram", "gram_backward", "style_distance", "q_sample",
           "q_sample_backward", "repaint_blend"]


@pytest.mark.parametrize("op", CPP_OPS)
def test_the_cpp_ops_autograd_is_cpp(op):
    """No Python runs when a C++ op records its node: its Autograd kernel is the one in csrc/ops/autograd/."""
    dump = torch._C._dispatch_dump(f"inpaint_fast::{op}")
    (line,) = [row for row in dump.splitlines() if row.startswith("Autograd")]
    assert "csrc/ops/autograd/" in line, line


def _step_losses(mask: torch.Tensor, target: torch.Tensor):
    """loss name -> pred -> loss: the fused losses of a training step, each one public call."""
    return {
        "reconstruction_loss": lambda p: IF.reconstruction_loss(p, target, mask=mask),
        "masked_l2 (float mask)": lambda p: IF.masked_l2(p, target, mask=mask.float(), region="known"),
        "total_variation": lambda p: IF.total_variation(p, mask=mask),
        "style_distance": lambda p: IF.style_distance(p, target),
        "q_sample": lambda p: IF.functional.diffusion.q_sample(
            p, torch.arange(p.shape[0], device=p.device), target, torch.linspace(0.9, 0.1, 8, device=p.device)).sum(),
    }


needs_cuda_build = pytest.mark.skipif(
    not torch.cuda.is_available() or not library.has_cuda_kernels(),
    reason="needs a GPU and the CUDA build of the extension")


def _case(name: str):
    """(pred0, loss_fn) on the GPU: a prediction's values and the loss ``name`` of it."""
    gen = torch.Generator().manual_seed(0)
    mask = (torch.rand(2, 1, 16, 24, generator=gen) > 0.3).cuda()
    pred0, target = (torch.rand(2, 3, 16, 24, generator=gen).cuda() for _ in range(2))
    return pred0, _step_losses(mask, target)[name]


@needs_cuda_build
@pytest.mark.parametrize("name", list(_step_losses(torch.ones(1), torch.ones(1))))
def test_no_host_sync_on_cuda(name):
    """Forward + backward issue no synchronising CUDA call (torch's sync debug mode raises on one)."""
    pred0, loss_fn = _case(name)
    pred = pred0.clone().requires_grad_()
    loss_fn(pred).backward()  # first call: lazy initialisation may sync
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        pred.grad = None
        loss_fn(pred).backward()
    finally:
        torch.cuda.set_sync_debug_mode("default")


@needs_cuda_build
@pytest.mark.parametrize("name", list(_step_losses(torch.ones(1), torch.ones(1))))
def test_forward_and_backward_replay_from_a_cuda_graph(name):
    """Captured once, replayed on new values in the same buffers: the loss and the gradient match eager."""
    pred0, loss_fn = _case(name)
    static_pred = pred0.clone().requires_grad_()
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm-up outside the capture, as torch.cuda.graphs asks
        for _ in range(3):
            static_pred.grad = None
            loss_fn(static_pred).backward()
    torch.cuda.current_stream().wait_stream(side)
    static_pred.grad = None
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static_loss = loss_fn(static_pred)
        static_loss.backward()
    for scale in (0.5, 2.0):
        with torch.no_grad():
            static_pred.copy_(pred0 * scale)
        graph.replay()
        with IF.use_backend("reference"):
            p = (pred0 * scale).requires_grad_()
            expected = loss_fn(p)
            (expected_grad,) = torch.autograd.grad(expected, p)
        torch.testing.assert_close(static_loss, expected, rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(static_pred.grad, expected_grad, rtol=1e-5, atol=1e-7)
