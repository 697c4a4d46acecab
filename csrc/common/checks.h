// Argument checks that several ops' check headers (csrc/ops/<op>.h) share, and the argument codes
// they check. ``op`` and the names go into the message: "<op>: <name> must ...".
#pragma once

#include <ATen/ATen.h>

#include <cmath>
#include <cstdint>
#include <string>

#include "common/numerics.h"
#include "common/standard.h"

namespace inpaint_fast {

// The normalize argument of masked_error and masked_tv: how the loss's sums are divided.
enum Normalize : int64_t {
  kNormalizeSum = 0,   // 'sum': not divided
  kNormalizeMask = 1,  // 'mask': by the area of the term's region (at least eps)
  kNormalizeAll = 2,   // 'all': by the number of elements (of pairs, for masked_tv)
};

// How an op reports a bad argument: torch's RuntimeError (TORCH_CHECK; the fused losses), or
// Python's ValueError for a bad shape, value or device and TypeError for a bad dtype
// (TORCH_CHECK_VALUE / TORCH_CHECK_TYPE; q_sample and repaint_blend).
enum class Raise { kRuntimeError, kValueOrTypeError };

// TORCH_CHECK under Raise::kRuntimeError, else TORCH_CHECK_<KIND> (KIND: VALUE or TYPE).
#define INPAINT_FAST_CHECK(raise, KIND, cond, ...)        \
  do {                                                    \
    if ((raise) == ::inpaint_fast::Raise::kRuntimeError) { \
      TORCH_CHECK(cond, __VA_ARGS__);                     \
    } else {                                              \
      TORCH_CHECK_##KIND(cond, __VA_ARGS__);              \
    }                                                     \
  } while (false)

// t (N, C, H, W) of a dtype the kernels take: float16, bfloat16, float32 or float64.
inline void check_image(const at::Tensor& t, const char* op, const char* name,
                        Raise raise = Raise::kRuntimeError) {
  INPAINT_FAST_CHECK(raise, VALUE, t.dim() == 4, op, ": ", name, " must be 4-D (N, C, H, W); got shape ", t.sizes());
  const auto dtype = t.scalar_type();
  INPAINT_FAST_CHECK(raise, TYPE,
                     dtype == at::kFloat || dtype == at::kDouble || dtype == at::kHalf || dtype == at::kBFloat16,
                     op, ": ", name, " must be float16, bfloat16, float32 or float64; got ", dtype);
}

// x of like's shape and dtype, on like's device.
inline void check_like(const at::Tensor& x, const at::Tensor& like, const char* op, const char* name,
                       const char* like_name, Raise raise = Raise::kRuntimeError) {
  INPAINT_FAST_CHECK(raise, VALUE, x.sizes() == like.sizes(), op, ": ", name, " shape ", x.sizes(), " must equal ",
                     like_name, " shape ", like.sizes());
  INPAINT_FAST_CHECK(raise, TYPE, x.scalar_type() == like.scalar_type(), op, ": ", name, " dtype ", x.scalar_type(),
                     " must equal ", like_name, " dtype ", like.scalar_type());
  INPAINT_FAST_CHECK(raise, VALUE, x.device() == like.device(), op, ": ", name, " must be on ", like_name,
                     "'s device ", like.device(), "; got ", x.device());
}

// mask (N|1, C|1, H, W), bool, uint8 or the images' dtype, on the images' device. ``whose`` names the
// images in the possessive: "pred's", "the images'".
inline void check_mask(const at::Tensor& mask, const at::Tensor& images, const char* op, const char* whose,
                       Raise raise = Raise::kRuntimeError) {
  INPAINT_FAST_CHECK(raise, VALUE, mask.device() == images.device(), op, ": mask must be on ", whose, " device ",
                     images.device(), "; got ", mask.device());
  const auto dtype = images.scalar_type();
  INPAINT_FAST_CHECK(raise, TYPE, is_binary_mask(mask.scalar_type()) || mask.scalar_type() == dtype, op,
                     ": mask must be bool, uint8 or ", whose, " dtype ", dtype, "; got ", mask.scalar_type());
  INPAINT_FAST_CHECK(raise, VALUE,
                     mask.dim() == 4 && (mask.size(0) == 1 || mask.size(0) == images.size(0)) &&
                         (mask.size(1) == 1 || mask.size(1) == images.size(1)) && mask.size(2) == images.size(2) &&
                         mask.size(3) == images.size(3),
                     op, ": mask shape ", mask.sizes(), " must be (N|1, C|1, H, W) for ", whose, " shape ",
                     images.sizes());
}

// A floating mask's values lie in [0, 1] (NaN does not); bool and uint8 masks are binary and always pass.
// The public losses leave this check to the fused op they call (inpaint_fast/_validation.py's
// check_mask_values is the reference path's); its message and ValueError are that function's. The mask
// is named as the user passed it: hole= when mask_is_hole, else mask=.
inline std::string mask_values_message(bool mask_is_hole) {
  return mask_is_hole ? "hole must hold values in [0, 1] (1 = missing pixel)"
                      : "mask must hold values in [0, 1] (1 = known pixel)";
}

// One reduction over the mask: a ValueError on CPU; elsewhere an asynchronous device-side assert (no
// host sync: a failure surfaces at the next synchronisation).
inline void check_mask_values(const at::Tensor& mask, bool mask_is_hole) {
  if (!mask.is_floating_point() || mask.numel() == 0) return;
  const auto [low, high] = at::aminmax(mask);
  if (mask.is_cpu()) {
    const double lo = low.item<double>(), hi = high.item<double>();
    TORCH_CHECK_VALUE(lo >= 0 && hi <= 1, mask_values_message(mask_is_hole), "; got values from ", lo, " to ", hi,
                      ". bool and uint8 masks are binary (any non-zero value is 1)");
  } else {
    at::_assert_async(at::logical_and(low >= 0, high <= 1), mask_values_message(mask_is_hole));
  }
}

// A finite value >= 0 (an eps).
inline void check_finite_nonnegative(double value, const char* op, const char* name) {
  TORCH_CHECK(std::isfinite(value) && value >= 0, op, ": ", name, " must be finite and >= 0; got ", value);
}

// normalize one of the Normalize codes; eps (the least area divided by) finite and >= 0.
inline void check_normalize(int64_t normalize, double eps, const char* op) {
  TORCH_CHECK(normalize >= kNormalizeSum && normalize <= kNormalizeAll, op,
              ": normalize must be 0 (sum), 1 (mask) or 2 (all); got ", normalize);
  check_finite_nonnegative(eps, op, "eps");
}

}  // namespace inpaint_fast
