// Argument checks that several ops' check headers (csrc/ops/<op>.h) share. ``op`` and the names go
// into the message: "<op>: <name> must ...".
#pragma once

#include <ATen/ATen.h>

#include "common/standard.h"

namespace inpaint_fast {

// t (N, C, H, W) of a dtype the kernels take: float16, bfloat16, float32 or float64.
inline void check_image(const at::Tensor& t, const char* op, const char* name) {
  TORCH_CHECK(t.dim() == 4, op, ": ", name, " must be 4-D (N, C, H, W); got shape ", t.sizes());
  const auto dtype = t.scalar_type();
  TORCH_CHECK(dtype == at::kFloat || dtype == at::kDouble || dtype == at::kHalf || dtype == at::kBFloat16, op,
              ": ", name, " must be float16, bfloat16, float32 or float64; got ", dtype);
}

// mask (N|1, C|1, H, W), bool, uint8 or the images' dtype, on the images' device.
inline void check_mask(const at::Tensor& mask, const at::Tensor& images, const char* op, const char* images_name) {
  TORCH_CHECK(mask.device() == images.device(), op, ": mask must be on ", images_name, "'s device ",
              images.device(), "; got ", mask.device());
  const auto dtype = images.scalar_type();
  TORCH_CHECK(mask.scalar_type() == at::kBool || mask.scalar_type() == at::kByte || mask.scalar_type() == dtype,
              op, ": mask must be bool, uint8 or ", images_name, "'s dtype ", dtype, "; got ", mask.scalar_type());
  TORCH_CHECK(mask.dim() == 4 && (mask.size(0) == 1 || mask.size(0) == images.size(0)) &&
                  (mask.size(1) == 1 || mask.size(1) == images.size(1)) && mask.size(2) == images.size(2) &&
                  mask.size(3) == images.size(3),
              op, ": mask shape ", mask.sizes(), " must be (N|1, C|1, H, W) for ", images_name, " shape ",
              images.sizes());
}

}  // namespace inpaint_fast
