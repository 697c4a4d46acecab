// Schemas of inpaint_fast::masked_error and masked_error_stats.
//
// masked_error(pred, target, mask, mask_is_hole, loss, charbonnier_eps, weight_hole, weight_valid,
//              normalize, eps, compute_grad) -> (loss, grad_pred)
//   d = pred - target, e = |d| (loss 0), d^2 (loss 1) or sqrt(d^2 + charbonnier_eps^2) (loss 2);
//   v = the known-pixel weight (mask, or 1 - mask when mask_is_hole; 1 everywhere without a mask),
//   broadcast from (N|1, C|1, H, W); a bool/uint8 mask is binary (any non-zero value is 1), a floating one
//   must lie in [0, 1] (a ValueError on CPU, a device-side assert on a GPU: common/checks.h).
//   With S_h = sum (1 - v) e, S_v = sum v e and the areas
//   A_h = sum (1 - v), A_v = sum v over the broadcast shape:
//     normalize 0 (sum):  weight_hole * S_h + weight_valid * S_v
//     normalize 1 (mask): weight_hole * S_h / max(A_h, eps) + weight_valid * S_v / max(A_v, eps)
//     normalize 2 (all):  (weight_hole * S_h + weight_valid * S_v) / numel
//   where a term whose weight (after the division) is 0 is left out (an inf or NaN in its sum does
//   not reach the loss). loss is 0-dim float32 (float64 for float64 inputs). When compute_grad,
//   grad_pred (pred's shape and memory format; pred's dtype, float32 for float16) is d loss / d pred,
//   written in the same pass; else it is empty.
// masked_error_stats(pred, target, mask, mask_is_hole) -> (6,) float32/float64
//   [S_h, S_v for |d|; S_h, S_v for d^2; A_h, A_v]: the hole/valid L1 and L2 tables in one pass.
//
// Kernels: ops/cpu/masked_error_kernel.cpp. Fake kernels and autograd: inpaint_fast/ops/masked_error.py.

#include <torch/library.h>

TORCH_LIBRARY_FRAGMENT(inpaint_fast, m) {
  m.set_python_module("inpaint_fast.ops.masked_error");
  m.def(
      "masked_error(Tensor pred, Tensor target, Tensor? mask, bool mask_is_hole, int loss, "
      "float charbonnier_eps, float weight_hole, float weight_valid, int normalize, float eps, "
      "bool compute_grad) -> (Tensor, Tensor)");
  m.def("masked_error_stats(Tensor pred, Tensor target, Tensor? mask, bool mask_is_hole) -> Tensor");
}
