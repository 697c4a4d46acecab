// Host-side input checks of inpaint_fast::scale_grad_, shared by its CPU and CUDA kernels (schema and
// semantics: scale_grad.cpp).
#pragma once

#include <ATen/ATen.h>

#include "common/standard.h"

namespace inpaint_fast {
namespace scale_grad_host {

inline void check_inputs(const at::Tensor& grad, const at::Tensor& scale) {
  TORCH_CHECK(grad.is_floating_point(), "scale_grad_: grad must be floating; got ", grad.scalar_type());
  TORCH_CHECK(scale.numel() == 1, "scale_grad_: scale must have one element; got shape ", scale.sizes());
  TORCH_CHECK(scale.device() == grad.device(), "scale_grad_: scale is on ", scale.device(), ", grad on ",
              grad.device());
  TORCH_CHECK(grad.is_non_overlapping_and_dense(), "scale_grad_: grad must be dense (strides ", grad.strides(),
              ")");
}

}  // namespace scale_grad_host
}  // namespace inpaint_fast
