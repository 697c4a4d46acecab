// Host-side input checks of inpaint_fast::masked_error and masked_error_stats, shared by their CPU and
// CUDA kernels (schemas and semantics: masked_error.cpp). Each kernel calls them first, before any
// allocation or launch.
#pragma once

#include <ATen/ATen.h>

#include <cmath>
#include <cstdint>
#include <optional>

#include "common/standard.h"

namespace inpaint_fast {
namespace masked_error_host {

enum Loss : int64_t { kL1 = 0, kL2 = 1, kCharbonnier = 2 };
enum Normalize : int64_t { kSum = 0, kMaskArea = 1, kAllElements = 2 };

// pred, target (N, C, H, W) of one floating dtype on one device; mask (N|1, C|1, H, W), bool, uint8 or
// pred's dtype, on that device.
inline void check_tensors(const at::Tensor& pred, const at::Tensor& target, const std::optional<at::Tensor>& mask,
                          const char* op) {
  TORCH_CHECK(pred.dim() == 4, op, ": pred must be 4-D (N, C, H, W); got shape ", pred.sizes());
  TORCH_CHECK(target.sizes() == pred.sizes(), op, ": target shape ", target.sizes(), " must equal pred shape ",
              pred.sizes());
  const auto dtype = pred.scalar_type();
  TORCH_CHECK(dtype == at::kFloat || dtype == at::kDouble || dtype == at::kHalf || dtype == at::kBFloat16, op,
              ": pred must be float16, bfloat16, float32 or float64; got ", dtype);
  TORCH_CHECK(target.scalar_type() == dtype, op, ": target dtype ", target.scalar_type(), " must equal pred dtype ",
              dtype);
  TORCH_CHECK(target.device() == pred.device(), op, ": pred and target must be on one device; got ", pred.device(),
              " and ", target.device());
  if (!mask) return;
  const at::Tensor& m = *mask;
  TORCH_CHECK(m.device() == pred.device(), op, ": mask must be on pred's device ", pred.device(), "; got ",
              m.device());
  TORCH_CHECK(m.scalar_type() == at::kBool || m.scalar_type() == at::kByte || m.scalar_type() == dtype, op,
              ": mask must be bool, uint8 or pred's dtype ", dtype, "; got ", m.scalar_type());
  TORCH_CHECK(m.dim() == 4 && (m.size(0) == 1 || m.size(0) == pred.size(0)) &&
                  (m.size(1) == 1 || m.size(1) == pred.size(1)) && m.size(2) == pred.size(2) &&
                  m.size(3) == pred.size(3),
              op, ": mask shape ", m.sizes(), " must be (N|1, C|1, H, W) for pred shape ", pred.sizes());
}

inline void check_options(int64_t loss, double charbonnier_eps, int64_t normalize, double eps, const char* op) {
  TORCH_CHECK(loss >= kL1 && loss <= kCharbonnier, op, ": loss must be 0 (L1), 1 (L2) or 2 (Charbonnier); got ",
              loss);
  TORCH_CHECK(normalize >= kSum && normalize <= kAllElements, op,
              ": normalize must be 0 (sum), 1 (mask) or 2 (all); got ", normalize);
  TORCH_CHECK(std::isfinite(charbonnier_eps) && charbonnier_eps >= 0, op,
              ": charbonnier_eps must be finite and >= 0; got ", charbonnier_eps);
  TORCH_CHECK(std::isfinite(eps) && eps >= 0, op, ": eps must be finite and >= 0; got ", eps);
}

}  // namespace masked_error_host
}  // namespace inpaint_fast
