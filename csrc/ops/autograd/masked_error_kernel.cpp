// Autograd of inpaint_fast::masked_error (schema: csrc/ops/masked_error.cpp; rules: common/saved_grad.h).
// The forward writes d loss / d pred; backward scales it by grad_output, and d loss / d target is its
// negative. The mask is not differentiated (the public API routes a mask that requires grad to the
// reference; a direct op call with one is an error).

#include <ATen/ATen.h>
#include <torch/library.h>

#include <optional>
#include <tuple>

#include "common/saved_grad.h"

namespace inpaint_fast {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

using Signature = std::tuple<at::Tensor, at::Tensor>(const at::Tensor&, const at::Tensor&,
                                                     const std::optional<at::Tensor>&, bool, int64_t, double, double,
                                                     double, int64_t, double, bool);

const c10::TypedOperatorHandle<Signature>& masked_error_op() {
  static const auto op =
      c10::Dispatcher::singleton().findSchemaOrThrow("inpaint_fast::masked_error", "").typed<Signature>();
  return op;
}

class MaskedErrorFunction : public torch::autograd::Function<MaskedErrorFunction> {
 public:
  static variable_list forward(AutogradContext* ctx, const at::Tensor& pred, const at::Tensor& target,
                               const std::optional<at::Tensor>& mask, bool mask_is_hole, int64_t loss,
                               double charbonnier_eps, double weight_hole, double weight_valid, int64_t normalize,
                               double eps, bool compute_grad) {
    saved_grad::check_no_grad(mask, "masked_error", "mask",
                              "a mask that requires grad must go through the reference implementation");
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    auto [value, grad] = masked_error_op().call(pred, target, mask, mask_is_hole, loss, charbonnier_eps, weight_hole,
                                                weight_valid, normalize, eps, compute_grad);
    ctx->mark_non_differentiable({grad});
    ctx->set_materialize_grads(false);  // no full-size zeros for the gradient output's (absent) gradient
    ctx->save_for_backward({grad});
    ctx->saved_data["compute_grad"] = compute_grad;
    ctx->saved_data["pred_dtype"] = pred.scalar_type();
    saved_grad::keep_arguments(ctx, {pred, target, mask, mask_is_hole, loss, charbonnier_eps, weight_hole, weight_valid,
                                     normalize, eps, compute_grad});
    return {value, grad};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    saved_grad::check_first_order("masked_error");
    variable_list result(11);
    const at::Tensor& grad_value = grad_outputs[0];
    if (!grad_value.defined()) return result;
    TORCH_CHECK(ctx->saved_data["compute_grad"].toBool(),
                "inpaint_fast::masked_error ran without its gradient (compute_grad=False) but a gradient is needed");
    const auto fresh = [&] {
      return std::vector<at::Tensor>{saved_grad::recompute(ctx, masked_error_op(), "masked_error")[1].toTensor()};
    };
    const at::Tensor grad_pred = saved_grad::scaled_grads(
        ctx, grad_value, [](variable_list saved) { return saved; }, fresh,
        ctx->saved_data["pred_dtype"].toScalarType())[0];
    if (ctx->needs_input_grad(0)) result[0] = grad_pred;
    if (ctx->needs_input_grad(1)) result[1] = grad_pred.neg();
    return result;
  }
};

std::tuple<at::Tensor, at::Tensor> masked_error_autograd(const at::Tensor& pred, const at::Tensor& target,
                                                         const std::optional<at::Tensor>& mask, bool mask_is_hole,
                                                         int64_t loss, double charbonnier_eps, double weight_hole,
                                                         double weight_valid, int64_t normalize, double eps,
                                                         bool compute_grad) {
  if (!saved_grad::records({pred, target, mask})) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    return masked_error_op().call(pred, target, mask, mask_is_hole, loss, charbonnier_eps, weight_hole, weight_valid,
                                  normalize, eps, compute_grad);
  }
  const auto out = MaskedErrorFunction::apply(pred, target, mask, mask_is_hole, loss, charbonnier_eps, weight_hole,
                                              weight_valid, normalize, eps, compute_grad);
  return {out[0], out[1]};
}

}  // namespace

TORCH_LIBRARY_IMPL(inpaint_fast, Autograd, m) {
  m.impl("masked_error", &masked_error_autograd);
}

}  // namespace inpaint_fast
