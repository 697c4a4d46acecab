// Schemas of inpaint_fast::masked_error_sums and its backward.
//
// masked_error_sums(pred, target, weight) -> (3,) tensor [sum w*|d|, sum w*d^2, sum w]
//   d = pred - target; w = weight broadcast from (N|1, C|1, H, W) to pred's (N, C, H, W), so a
//   (N,1,H,W) weight counts C times in sum w. The result is float32 for float16/bfloat16/float32
//   inputs and float64 for float64 inputs.
// masked_error_sums_backward(grad, pred, target, weight) -> grad_pred
//   grad_pred = w * (grad[0] * sign(d) + 2 * grad[1] * d), pred's dtype and shape (contiguous);
//   the gradient of target is -grad_pred. The weight is not differentiated.
//
// Kernels: ops/cpu/masked_error_sums_kernel.cpp (CPU). Fake kernels and autograd:
// inpaint_fast/ops/masked_error_sums.py.

#include <torch/library.h>

TORCH_LIBRARY_FRAGMENT(inpaint_fast, m) {
  // Where the fake (meta) kernels and the autograd formula live, for torch's error messages.
  m.set_python_module("inpaint_fast.ops.masked_error_sums");
  m.def("masked_error_sums(Tensor pred, Tensor target, Tensor weight) -> Tensor");
  m.def("masked_error_sums_backward(Tensor grad, Tensor pred, Tensor target, Tensor weight) -> Tensor");
}
