// Schema of inpaint_fast::scale_grad_: the in-place scaling that the fused ops' backward applies to
// the gradient their forward pass wrote (inpaint_fast/ops/scale_grad.py).
//
// scale_grad_(grad, scale) -> ()
//   grad *= scale, in place, unless scale == 1, in which case grad is not touched at all.
//   grad: a floating tensor whose elements fill one dense block of memory (contiguous in some
//   dimension order: what the fused ops allocate); a complex gradient is passed as its real view.
//   scale: a one-element tensor on grad's device (the backward's grad_output). The test of
//   scale == 1 is made where scale lives: on a GPU by the kernel itself, so the host never waits
//   for the device (no sync, CUDA-graph safe), and loss.backward() (scale 1) costs one tiny
//   launch instead of a read and a write of the whole gradient.
//
// Kernels: ops/cpu/scale_grad_kernel.cpp, ops/cuda/scale_grad_kernel.cu.

#include <torch/library.h>

TORCH_LIBRARY_FRAGMENT(inpaint_fast, m) {
  m.set_python_module("inpaint_fast.ops.scale_grad");
  m.def("scale_grad_(Tensor(a!) grad, Tensor scale) -> ()");
}
