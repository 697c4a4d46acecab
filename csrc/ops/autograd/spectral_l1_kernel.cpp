// Autograd of inpaint_fast::spectral_l1 (schema: csrc/ops/spectral_l1.cpp; rules: common/saved_grad.h).
// The forward writes the gradients w.r.t. the complex spectra it was asked for; backward scales the
// needed ones by grad_output.

#include <ATen/ATen.h>
#include <torch/library.h>

#include <tuple>

#include "common/saved_grad.h"

namespace inpaint_fast {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

using Signature = std::tuple<at::Tensor, at::Tensor, at::Tensor>(const at::Tensor&, const at::Tensor&, double, bool,
                                                                 bool);

const c10::TypedOperatorHandle<Signature>& spectral_l1_op() {
  static const auto op =
      c10::Dispatcher::singleton().findSchemaOrThrow("inpaint_fast::spectral_l1", "").typed<Signature>();
  return op;
}

class SpectralL1Function : public torch::autograd::Function<SpectralL1Function> {
 public:
  static variable_list forward(AutogradContext* ctx, const at::Tensor& z_pred, const at::Tensor& z_target,
                               double scale, bool compute_grad_pred, bool compute_grad_target) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    auto [loss, grad_pred, grad_target] =
        spectral_l1_op().call(z_pred, z_target, scale, compute_grad_pred, compute_grad_target);
    ctx->mark_non_differentiable({grad_pred, grad_target});
    ctx->set_materialize_grads(false);  // no zeros for the gradient outputs' (absent) gradients
    ctx->save_for_backward({grad_pred, grad_target});
    ctx->saved_data["computed"] = std::vector<bool>{compute_grad_pred, compute_grad_target};
    saved_grad::keep_arguments(ctx, {z_pred, z_target, scale, compute_grad_pred, compute_grad_target});
    return {loss, grad_pred, grad_target};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    saved_grad::check_first_order("spectral_l1");
    variable_list result(5);
    if (!grad_outputs[0].defined()) return result;
    const bool need[2] = {ctx->needs_input_grad(0), ctx->needs_input_grad(1)};
    const auto computed = ctx->saved_data["computed"].toBoolList();
    const char* names[2] = {"pred", "target"};
    for (int i = 0; i < 2; ++i) {
      TORCH_CHECK(!need[i] || computed[i], "inpaint_fast::spectral_l1: a gradient w.r.t. z_", names[i],
                  " is needed but the op was called with compute_grad_", names[i], "=False");
    }
    const auto pick = [&](const variable_list& buffers) {
      std::vector<at::Tensor> picked;
      for (int i = 0; i < 2; ++i) {
        if (need[i]) picked.push_back(buffers[i]);
      }
      return picked;
    };
    const auto fresh = [&] {
      const auto outputs = saved_grad::recompute(ctx, spectral_l1_op(), "spectral_l1");
      return pick({outputs[1].toTensor(), outputs[2].toTensor()});
    };
    const auto grads = saved_grad::scaled_grads(ctx, grad_outputs[0], pick, fresh);
    size_t next = 0;
    for (int i = 0; i < 2; ++i) {
      if (need[i]) result[i] = grads[next++];
    }
    return result;
  }
};

std::tuple<at::Tensor, at::Tensor, at::Tensor> spectral_l1_autograd(const at::Tensor& z_pred,
                                                                    const at::Tensor& z_target, double scale,
                                                                    bool compute_grad_pred, bool compute_grad_target) {
  if (!saved_grad::records({z_pred, z_target})) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    return spectral_l1_op().call(z_pred, z_target, scale, compute_grad_pred, compute_grad_target);
  }
  const auto out = SpectralL1Function::apply(z_pred, z_target, scale, compute_grad_pred, compute_grad_target);
  return {out[0], out[1], out[2]};
}

}  // namespace

TORCH_LIBRARY_IMPL(inpaint_fast, Autograd, m) {
  m.impl("spectral_l1", &spectral_l1_autograd);
}

}  // namespace inpaint_fast
