// Host-side input checks of inpaint_fast::gram, gram_backward and style_distance, shared by their
// CPU and CUDA kernels (schemas and semantics: style_distance.cpp).
#pragma once

#include <ATen/ATen.h>

#include <optional>

#include "common/checks.h"
#include "common/numerics.h"

namespace inpaint_fast {
namespace style_distance_host {

inline void check_feat(const at::Tensor& feat, const char* op, const char* name, at::DeviceType device) {
  check_image(feat, op, name);
  TORCH_CHECK(feat.device().type() == device, op, ": ", name, " must be a ", c10::DeviceTypeName(device),
              " tensor; got ", feat.device());
}

inline void check_weight(const std::optional<at::Tensor>& weight, const at::Tensor& feat, const char* op) {
  if (!weight.has_value()) return;
  const at::Tensor& w = *weight;
  TORCH_CHECK(w.dim() == 4 && (w.size(0) == 1 || w.size(0) == feat.size(0)) && w.size(1) == 1 &&
                  w.size(2) == feat.size(2) && w.size(3) == feat.size(3),
              op, ": weight shape ", w.sizes(), " must be (N|1, 1, H, W) for features of shape ", feat.sizes());
  TORCH_CHECK(w.scalar_type() == feat.scalar_type(), op, ": weight dtype ", w.scalar_type(),
              " must equal the features' dtype ", feat.scalar_type());
  TORCH_CHECK(w.device() == feat.device(), op, ": weight must be on the features' device ", feat.device(),
              "; got ", w.device());
}

inline void check_eps(double eps, const char* op) { TORCH_CHECK(eps > 0, op, ": eps must be positive; got ", eps); }

// The checks of each op's inputs; ``device`` is the kernel's (CPU or CUDA).
inline void check_gram_inputs(const at::Tensor& feat, const std::optional<at::Tensor>& weight, double eps,
                              at::DeviceType device) {
  const char* op = "inpaint_fast::gram";
  check_feat(feat, op, "feat", device);
  check_weight(weight, feat, op);
  check_eps(eps, op);
}

inline void check_gram_backward_inputs(const at::Tensor& grad, const at::Tensor& feat,
                                       const std::optional<at::Tensor>& weight, double eps, at::DeviceType device) {
  const char* op = "inpaint_fast::gram_backward";
  check_feat(feat, op, "feat", device);
  check_weight(weight, feat, op);
  check_eps(eps, op);
  const int64_t N = feat.size(0), C = feat.size(1);
  TORCH_CHECK(grad.dim() == 3 && grad.size(0) == N && grad.size(1) == C && grad.size(2) == C,
              op, ": grad must have shape (N, C, C) = (", N, ", ", C, ", ", C, "); got ", grad.sizes());
  TORCH_CHECK(at::isFloatingType(grad.scalar_type()), op, ": grad must be floating; got ", grad.scalar_type());
  TORCH_CHECK(grad.device() == feat.device(), op, ": grad must be on feat's device ", feat.device(), "; got ",
              grad.device());
}

inline void check_style_inputs(const at::Tensor& pred, const at::Tensor& target,
                               const std::optional<at::Tensor>& weight, double eps, at::DeviceType device) {
  const char* op = "inpaint_fast::style_distance";
  check_feat(pred, op, "feat_pred", device);
  check_feat(target, op, "feat_target", device);
  check_like(target, pred, op, "feat_target", "feat_pred");
  check_weight(weight, pred, op);
  check_eps(eps, op);
}

}  // namespace style_distance_host
}  // namespace inpaint_fast
