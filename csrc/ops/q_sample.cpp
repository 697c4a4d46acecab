// Schemas of inpaint_fast::q_sample, q_sample_backward and repaint_blend: the DDPM forward process
// (Ho et al. 2020, eq. 4) and RePaint's blend of the re-noised known region with the model's sample
// (Lugmayr et al. 2022, eq. 8), each one elementwise pass.
//
// q_sample(x0, t, noise, alphas_cumprod) -> x_t
//   x_t[n] = sqrt(abar[t[n]]) * x0[n] + sqrt(1 - abar[t[n]]) * noise[n]  for every sample n.
//   x0, noise: (N, C, H, W), one floating dtype; t: (N,) int64 (or int32); alphas_cumprod: (T,)
//   floating (abar). The two coefficients are taken in float64 from abar, then used in float32
//   (float64 for float64 images); x_t has x0's dtype. t[n] outside [0, T) is a ValueError. abar
//   outside [0, 1] gives NaN, as the formula does.
// q_sample_backward(grad, t, alphas_cumprod, x0_grad, noise_grad) -> (grad_x0, grad_noise)
//   grad_x0 = sqrt(abar[t]) * grad (when x0_grad, else an empty tensor), grad_noise =
//   sqrt(1 - abar[t]) * grad (when noise_grad, else empty), both read from grad in one pass. It is
//   the adjoint of q_sample: its own backward is q_sample(gg_x0, t, gg_noise, abar).
// repaint_blend(x_known, noise, x_pred, mask, mask_is_hole, t, alphas_cumprod) -> x
//   x = v * q_sample(x_known, t, noise, abar) + (1 - v) * x_pred, with v the known weight: the mask
//   (N|1, C|1, H, W), or 1 - mask when mask_is_hole. A bool/uint8 mask is binary (nonzero = set) and
//   selects: x = q where known, x_pred (bitwise) elsewhere, whatever the other one holds there. q is
//   the q_sample formula computed in this pass (it may differ from the q_sample op's output in the
//   last bit: the compiler may contract a*x + b*z into an FMA differently in the two loops). A
//   floating mask (x_pred's dtype) is a soft weight. No backward (a sampling step): the Python
//   entry routes inputs that require grad to a differentiable composite.
//
// Outputs are channels_last when every image input is channels_last-dense (C > 1, H * W > 1), else
// contiguous. Kernels: ops/cpu/q_sample_kernel.cpp. Fake kernels and autograd:
// inpaint_fast/ops/q_sample.py.

#include <torch/library.h>

TORCH_LIBRARY_FRAGMENT(inpaint_fast, m) {
  m.set_python_module("inpaint_fast.ops.q_sample");
  m.def("q_sample(Tensor x0, Tensor t, Tensor noise, Tensor alphas_cumprod) -> Tensor");
  m.def(
      "q_sample_backward(Tensor grad, Tensor t, Tensor alphas_cumprod, bool x0_grad, bool noise_grad) "
      "-> (Tensor, Tensor)");
  m.def(
      "repaint_blend(Tensor x_known, Tensor noise, Tensor x_pred, Tensor mask, bool mask_is_hole, Tensor t, "
      "Tensor alphas_cumprod) -> Tensor");
}
