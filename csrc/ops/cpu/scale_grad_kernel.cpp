// CPU kernel of inpaint_fast::scale_grad_ (schema and semantics: csrc/ops/scale_grad.cpp). On the
// CPU reading the scale costs nothing, so the test of scale == 1 is made here and the product is
// ATen's vectorised in-place multiplication.

#include <ATen/ATen.h>
#include <torch/library.h>

#include "ops/scale_grad.h"

namespace inpaint_fast {
namespace {

void scale_grad_cpu(const at::Tensor& grad, const at::Tensor& scale) {
  scale_grad_host::check_inputs(grad, scale);
  if (scale.item<double>() != 1.0) {
    grad.mul_(scale.reshape({}));
  }
}

}  // namespace

TORCH_LIBRARY_IMPL(inpaint_fast, CPU, m) {
  m.impl("scale_grad_", &scale_grad_cpu);
}

}  // namespace inpaint_fast
