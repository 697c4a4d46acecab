// Schemas of inpaint_fast::gram, inpaint_fast::gram_backward and inpaint_fast::style_distance.
//
// Notation: F_n is sample n of feat (N, C, H, W) seen as a C x HW matrix; w_n the spatial weight
// of sample n, weight (N|1, 1, H, W) flattened to HW (feat's dtype); without a weight w_n = 1.
// scale_n = 1 / (C * max(sum(w_n), eps)), i.e. 1 / (C * H * W) without a weight.
//
// gram(feat, weight, eps) -> (N, C, C) in feat's dtype
//   G_n = F_n diag(w_n) F_n^T * scale_n. One triangle (i <= j) is computed and mirrored, so G_n is
//   exactly symmetric. Accumulated in float32 (float64 for float64), with the scale folded into
//   an operand before accumulating wherever an operand is repacked (weighted or float16/bfloat16
//   features), so float16/bfloat16 features cannot overflow where float32 would not.
// gram_backward(grad, feat, weight, eps) -> grad_feat (feat's dtype and shape)
//   dF_n = (gG_n + gG_n^T) (w_n * F_n) * scale_n: one GEMM per sample. The weight is not
//   differentiated.
// style_distance(feat_pred, feat_target, weight, eps, compute_grad) -> (loss, grad_pred)
//   loss = mean over (N, C, C) of |G(feat_pred) - G(feat_target)|, a 0-dim float32 tensor
//   (float64 for float64 features). With compute_grad, grad_pred = d loss / d feat_pred is
//   written by this same call: dF_n = 2 S_n (w_n * F_n) * scale_n / (N C C) with
//   S_n = sign(G_n(pred) - G_n(target)) (sign(0) = 0, as torch's abs backward); else grad_pred
//   is an empty (0,) tensor. grad_pred has feat_pred's dtype, except float32 for float16
//   features: the gradient is computed before the backward multiplies it by grad_output (e.g. a
//   GradScaler's 2^16) and is usually below float16's range until then. The target is a constant: no gradient is computed for it (the
//   notebook's style loss detaches the features of the reference image).
//
// Gradients come back in feat's memory format when it is NCHW- or channels_last-contiguous
// (other layouts are copied to NCHW first, and their gradient is NCHW-contiguous).
//
// Kernels: ops/cpu/style_distance_kernel.cpp (CPU). Fake kernels, autograd and the Python entry
// functions: inpaint_fast/ops/style_distance.py.

#include <torch/library.h>

TORCH_LIBRARY_FRAGMENT(inpaint_fast, m) {
  m.set_python_module("inpaint_fast.ops.style_distance");
  m.def("gram(Tensor feat, Tensor? weight, float eps) -> Tensor");
  m.def("gram_backward(Tensor grad, Tensor feat, Tensor? weight, float eps) -> Tensor");
  m.def("style_distance(Tensor feat_pred, Tensor feat_target, Tensor? weight, float eps, "
        "bool compute_grad) -> (Tensor, Tensor)");
}
