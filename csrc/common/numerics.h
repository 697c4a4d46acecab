// What the fused ops share about dtypes and masks, host and device code alike.
#pragma once

#include <ATen/ATen.h>
#include <c10/macros/Macros.h>

#include <cstdint>
#include <type_traits>

#include "common/standard.h"

namespace inpaint_fast {

// The dtype of the gradient buffer a fused forward writes (masked_error, masked_tv, style_distance):
// float32 for float16 inputs (their gradient for grad_output = 1, e.g. 1 / numel, is subnormal in
// float16; the Python glue scales it, then casts: inpaint_fast/ops/scale_grad.py), else the input's.
// grad_type is its C++ type.
inline at::ScalarType grad_dtype(at::ScalarType input) { return input == at::kHalf ? at::kFloat : input; }
template <typename scalar_t>
using grad_type = std::conditional_t<std::is_same_v<scalar_t, at::Half>, float, scalar_t>;

// Whether a mask of this dtype is binary: bool (read as uint8) and uint8 masks; floating masks are
// soft weights.
inline bool is_binary_mask(at::ScalarType dtype) { return dtype == at::kBool || dtype == at::kByte; }

// A mask value as a weight: bool (read as uint8) and uint8 masks are binary, any non-zero value is 1;
// floating masks are soft weights.
template <typename acc_t, typename mask_t>
C10_HOST_DEVICE inline acc_t mask_weight(mask_t m) {
  if constexpr (std::is_same_v<mask_t, uint8_t>) {
    // (m + 255) >> 8 is (m != 0) for a byte, in arithmetic: gcc makes `m != 0` a branch per element
    // in the CPU hot loops instead of vectorising them.
    return static_cast<acc_t>((static_cast<int>(m) + 255) >> 8);
  } else {
    return static_cast<acc_t>(m);
  }
}

}  // namespace inpaint_fast
