"""The backward shared by the fused ops that write their gradient in the forward pass."""
from __future__ import annotations

import torch
from torch import Tensor


def _plain_cpu_scalar(t: Tensor) -> bool:
    """True for an ordinary CPU tensor in eager mode, whose value can be read without a device sync or
    a trace-time data dependency (not a fake/functional/functorch tensor, no dispatch mode, no compile)."""
    return (type(t) is Tensor and t.device.type == "cpu" and not torch.compiler.is_compiling()
            and torch._C._len_torch_dispatch_stack() == 0
            and not torch._C._functorch.is_functorch_wrapped_tensor(t))


def check_first_order(op: str) -> None:
    """Backward of a fused op returns a constant gradient: refuse ``create_graph=True`` rather than
    return silently wrong second derivatives."""
    if torch.is_grad_enabled():
        raise RuntimeError(f"inpaint_fast::{op} does not support double backward (create_graph=True); "
                           "use inpaint_fast.use_backend('reference') for higher-order gradients")


def scale_saved_grad(saved: Tensor, grad_output: Tensor) -> Tensor:
    """``saved * grad_output`` for a gradient the forward pass wrote assuming ``grad_output == 1``.

    The saved buffer is never modified, so a graph can be run backward twice (retain_graph,
    gradcheck). When ``grad_output`` is exactly 1 (a loss's own backward) and is a plain CPU scalar,
    the buffer is returned as it is: autograd then hands it over as the gradient without a copy. On
    a GPU, and when traced, the product is always taken (no sync, no data-dependent branch). A
    complex buffer is scaled through its real view (half the arithmetic of a complex product).
    """
    if _plain_cpu_scalar(grad_output) and grad_output.item() == 1.0:
        return saved
    if saved.is_complex():
        return torch.view_as_complex(torch.view_as_real(saved) * grad_output)
    return saved * grad_output
