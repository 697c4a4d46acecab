// Host-side input checks of inpaint_fast::spectral_l1 (schema and semantics: spectral_l1.cpp), called
// by its kernel first, before any allocation.
#pragma once

#include <ATen/ATen.h>

#include "common/checks.h"

namespace inpaint_fast {
namespace spectral_l1_host {

// z_pred complex64 or complex128; z_target of its shape and dtype, on its device.
inline void check_inputs(const at::Tensor& z_pred, const at::Tensor& z_target) {
  const char* op = "inpaint_fast::spectral_l1";
  const auto dtype = z_pred.scalar_type();
  TORCH_CHECK(dtype == at::kComplexFloat || dtype == at::kComplexDouble, op,
              ": z_pred must be complex64 or complex128; got ", dtype);
  check_like(z_target, z_pred, op, "z_target", "z_pred");
}

}  // namespace spectral_l1_host
}  // namespace inpaint_fast
