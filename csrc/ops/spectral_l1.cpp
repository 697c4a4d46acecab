// Schema of inpaint_fast::spectral_l1: the part of the frequency loss after the FFT, fused.
//
// spectral_l1(z_pred, z_target, scale, compute_grad_pred, compute_grad_target) -> (loss, grad_z_pred, grad_z_target)
//   z_pred, z_target: complex64 or complex128 spectra of one shape (any shape; the frequency loss
//   passes rfft2 outputs (N, C, H, W//2+1)). With a = log1p|z_pred|, b = log1p|z_target|:
//     loss = scale * sum |a - b|                       (0-dim float32 for complex64, float64 for complex128)
//     grad_z_pred   =  scale * sign(a - b) / (1 + |z_pred|)   * z_pred / |z_pred|     (when compute_grad_pred)
//     grad_z_target = -scale * sign(a - b) / (1 + |z_target|) * z_target / |z_target| (when compute_grad_target)
//   with sign(0) = sign(NaN) = 0 and a zero gradient where |z| = 0 (torch's sign and abs backward): a
//   NaN coefficient of z_pred makes its own gradient NaN, a NaN in z_target zeroes the pair's gradient. This is PyTorch's
//   convention for the gradient of a real loss w.r.t. a complex input (dL/dRe + i dL/dIm). A gradient
//   that is not asked for is returned as an empty (0-element) tensor. The gradients have the input's
//   dtype and shape and are contiguous (as rfft2 outputs are; other layouts are copied first).
//
// Kernel: ops/cpu/spectral_l1_kernel.cpp (CPU). Fake kernel, autograd (the saved gradients are
// scaled by grad_output) and the Python entry frequency_l1: inpaint_fast/ops/spectral_l1.py.

#include <torch/library.h>

TORCH_LIBRARY_FRAGMENT(inpaint_fast, m) {
  m.set_python_module("inpaint_fast.ops.spectral_l1");
  m.def("spectral_l1(Tensor z_pred, Tensor z_target, float scale, bool compute_grad_pred, bool compute_grad_target) "
        "-> (Tensor, Tensor, Tensor)");
}
