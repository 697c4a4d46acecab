// Host-side helpers of inpaint_fast::masked_tv shared by its CPU and CUDA kernels (schema and
// semantics: masked_tv.cpp): the region codes, the input checks and the layout rule that decides the
// gradient's memory format (inpaint_fast/ops/masked_tv.py's fake kernel decides the same way).
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <optional>

#include "common/checks.h"
#include "common/layout.h"
#include "common/numerics.h"

namespace inpaint_fast {
namespace masked_tv_host {

// The region argument: the pixels whose pairs count (masked_tv.cpp).
enum Region : int64_t { kRegionAll = 0, kRegionKnown = 1, kRegionHole = 2, kRegionHoleDilated = 3 };

// Channels_last images of up to this many channels are read in place (the CPU kernel's neighbours
// stay within one vector of 8 doubles).
constexpr int64_t kMaxNativeChannelsLast = 7;

// Whether img is read in place as channels_last (rows of W * C interleaved elements, the gradient
// channels_last too) rather than copied to NCHW: a channels_last image (any N stride) of 2 to
// kMaxNativeChannelsLast channels whose planes are not contiguous anyway, and a mask, if any, that is
// the same for every channel.
inline bool native_channels_last(const at::Tensor& img, const std::optional<at::Tensor>& mask) {
  const int64_t C = img.size(1), H = img.size(2), W = img.size(3);
  if (C < 2 || C > kMaxNativeChannelsLast || planes_contiguous(img)) return false;
  if (img.stride(1) != 1 || (W > 1 && img.stride(3) != C) || (H > 1 && img.stride(2) != W * C)) return false;
  return !mask.has_value() || bstride(*mask, 1) == 0;
}

inline void check_inputs(const at::Tensor& img, const std::optional<at::Tensor>& mask, int64_t region, int64_t p,
                         int64_t normalize, double eps) {
  const char* op = "inpaint_fast::masked_tv";
  check_image(img, op, "img");
  TORCH_CHECK(region >= kRegionAll && region <= kRegionHoleDilated, op,
              ": region must be 0 (all), 1 (known), 2 (hole) or 3 (hole_dilated); got ", region);
  TORCH_CHECK(p == 1 || p == 2, op, ": p must be 1 or 2; got ", p);
  check_normalize(normalize, eps, op);
  if (!mask.has_value()) {
    TORCH_CHECK(region == kRegionAll, op, ": region ", region, " needs a mask; got None");
    return;
  }
  check_mask(*mask, img, op, "img's");
}

}  // namespace masked_tv_host
}  // namespace inpaint_fast
