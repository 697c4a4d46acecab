// Host-side helpers of inpaint_fast::masked_error and masked_error_stats, shared by their CPU and CUDA
// kernels (schemas and semantics: masked_error.cpp): the input checks, which each kernel calls first,
// before any allocation or launch, and the layout rule (prepare).
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <optional>

#include "common/checks.h"
#include "common/layout.h"
#include "common/numerics.h"

namespace inpaint_fast {
namespace masked_error_host {

enum Loss : int64_t { kL1 = 0, kL2 = 1, kCharbonnier = 2 };

// pred, target (N, C, H, W) of one floating dtype on one device; mask (N|1, C|1, H, W), bool, uint8 or
// pred's dtype, on that device.
inline void check_tensors(const at::Tensor& pred, const at::Tensor& target, const std::optional<at::Tensor>& mask,
                          const char* op) {
  check_image(pred, op, "pred");
  check_like(target, pred, op, "target", "pred");
  if (mask) check_mask(*mask, pred, op, "pred's");
}

inline void check_options(int64_t loss, double charbonnier_eps, int64_t normalize, double eps, const char* op) {
  TORCH_CHECK(loss >= kL1 && loss <= kCharbonnier, op, ": loss must be 0 (L1), 1 (L2) or 2 (Charbonnier); got ",
              loss);
  check_normalize(normalize, eps, op);
  check_finite_nonnegative(charbonnier_eps, op, "charbonnier_eps");
}

// Both images channels_last-dense (and more than one channel, else NCHW is the same): read in place
// as one run per image, the gradient channels_last.
inline bool use_channels_last(const at::Tensor& pred, const at::Tensor& target) {
  return pred.size(1) > 1 && pred.is_contiguous(at::MemoryFormat::ChannelsLast) &&
         target.is_contiguous(at::MemoryFormat::ChannelsLast);
}

// The inputs as the kernels read them: channels_last-dense images as they are, otherwise images and
// mask with contiguous (H, W) planes (copied where they are not).
struct Prepared {
  at::Tensor pred, target;
  std::optional<at::Tensor> mask;
  bool channels_last;
};

inline Prepared prepare(const at::Tensor& pred, const at::Tensor& target, const std::optional<at::Tensor>& mask) {
  Prepared r{pred, target, std::nullopt, use_channels_last(pred, target)};
  if (!r.channels_last) {
    r.pred = with_contiguous_planes(pred);
    r.target = with_contiguous_planes(target);
  }
  if (mask) r.mask = with_contiguous_planes(*mask);
  return r;
}

}  // namespace masked_error_host
}  // namespace inpaint_fast
