// Host-side input checks of inpaint_fast::masked_error and masked_error_stats, shared by their CPU and
// CUDA kernels (schemas and semantics: masked_error.cpp); each kernel calls them first, before any
// allocation or launch.
#pragma once

#include <ATen/ATen.h>

#include <cmath>
#include <cstdint>
#include <optional>

#include "common/checks.h"
#include "common/numerics.h"

namespace inpaint_fast {
namespace masked_error_host {

enum Loss : int64_t { kL1 = 0, kL2 = 1, kCharbonnier = 2 };
enum Normalize : int64_t { kSum = 0, kMaskArea = 1, kAllElements = 2 };

// pred, target (N, C, H, W) of one floating dtype on one device; mask (N|1, C|1, H, W), bool, uint8 or
// pred's dtype, on that device.
inline void check_tensors(const at::Tensor& pred, const at::Tensor& target, const std::optional<at::Tensor>& mask,
                          const char* op) {
  check_image(pred, op, "pred");
  TORCH_CHECK(target.sizes() == pred.sizes(), op, ": target shape ", target.sizes(), " must equal pred shape ",
              pred.sizes());
  TORCH_CHECK(target.scalar_type() == pred.scalar_type(), op, ": target dtype ", target.scalar_type(),
              " must equal pred dtype ", pred.scalar_type());
  TORCH_CHECK(target.device() == pred.device(), op, ": pred and target must be on one device; got ", pred.device(),
              " and ", target.device());
  if (mask) check_mask(*mask, pred, op, "pred");
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
