// Autograd of inpaint_fast::gram, gram_backward and style_distance (schemas: csrc/ops/style_distance.cpp;
// rules: common/saved_grad.h).
// - gram: backward is the op gram_backward (through the dispatcher, so a create_graph=True backward
//   records gram_backward's node, whose own backward raises: no double backward).
// - style_distance: the forward writes d loss / d feat_pred; backward scales it by grad_output. The
//   target's features are a constant (the notebook detaches them) and the weight is not differentiated:
//   either requiring grad is an error.

#include <ATen/ATen.h>
#include <torch/library.h>

#include <optional>
#include <tuple>

#include "common/saved_grad.h"

namespace inpaint_fast {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

constexpr const char* kWeightNoGrad =
    "a weight that requires grad must go through the reference implementation "
    "(inpaint_fast.use_backend('reference'))";

using GramBackwardSignature = at::Tensor(const at::Tensor&, const at::Tensor&, const std::optional<at::Tensor>&,
                                         double);
using StyleSignature = std::tuple<at::Tensor, at::Tensor>(const at::Tensor&, const at::Tensor&,
                                                          const std::optional<at::Tensor>&, double, bool);

const c10::TypedOperatorHandle<at::Tensor(const at::Tensor&, const std::optional<at::Tensor>&, double)>& gram_op() {
  static const auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow("inpaint_fast::gram", "")
                             .typed<at::Tensor(const at::Tensor&, const std::optional<at::Tensor>&, double)>();
  return op;
}

const c10::TypedOperatorHandle<GramBackwardSignature>& gram_backward_op() {
  static const auto op =
      c10::Dispatcher::singleton().findSchemaOrThrow("inpaint_fast::gram_backward", "").typed<GramBackwardSignature>();
  return op;
}

const c10::TypedOperatorHandle<StyleSignature>& style_distance_op() {
  static const auto op =
      c10::Dispatcher::singleton().findSchemaOrThrow("inpaint_fast::style_distance", "").typed<StyleSignature>();
  return op;
}

class GramFunction : public torch::autograd::Function<GramFunction> {
 public:
  static variable_list forward(AutogradContext* ctx, const at::Tensor& feat, const std::optional<at::Tensor>& weight,
                               double eps) {
    saved_grad::check_no_grad(weight, "gram", "weight", kWeightNoGrad);
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    at::Tensor gram = gram_op().call(feat, weight, eps);
    ctx->save_for_backward({feat, weight.value_or(at::Tensor())});
    ctx->saved_data["eps"] = eps;
    return {gram};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    variable_list result(3);
    if (!grad_outputs[0].defined() || !ctx->needs_input_grad(0)) return result;
    const variable_list saved = ctx->get_saved_variables();
    const std::optional<at::Tensor> weight = saved[1].defined() ? std::optional<at::Tensor>(saved[1]) : std::nullopt;
    result[0] = gram_backward_op().call(grad_outputs[0], saved[0], weight, ctx->saved_data["eps"].toDouble());
    return result;
  }
};

class GramBackwardFunction : public torch::autograd::Function<GramBackwardFunction> {
 public:
  static variable_list forward(AutogradContext* ctx, const at::Tensor& grad, const at::Tensor& feat,
                               const std::optional<at::Tensor>& weight, double eps) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    return {gram_backward_op().call(grad, feat, weight, eps)};
  }

  static variable_list backward(AutogradContext*, variable_list) {
    TORCH_CHECK(false, "inpaint_fast::gram", saved_grad::kDoubleBackward);
  }
};

class StyleDistanceFunction : public torch::autograd::Function<StyleDistanceFunction> {
 public:
  static variable_list forward(AutogradContext* ctx, const at::Tensor& feat_pred, const at::Tensor& feat_target,
                               const std::optional<at::Tensor>& weight, double eps, bool compute_grad) {
    saved_grad::check_no_grad(weight, "style_distance", "weight", kWeightNoGrad);
    TORCH_CHECK(!feat_target.requires_grad(),
                "inpaint_fast::style_distance treats feat_target as a constant (the style loss detaches the "
                "target's features) and computes no gradient for it; pass feat_target.detach(), or use "
                "inpaint_fast.use_backend('reference') to differentiate both sides");
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    auto [loss, grad] = style_distance_op().call(feat_pred, feat_target, weight, eps, compute_grad);
    ctx->mark_non_differentiable({grad});
    ctx->set_materialize_grads(false);  // no full-size zeros for the gradient output's (absent) gradient
    ctx->save_for_backward({grad});
    ctx->saved_data["compute_grad"] = compute_grad;
    ctx->saved_data["feat_dtype"] = feat_pred.scalar_type();
    saved_grad::keep_arguments(ctx, {feat_pred, feat_target, weight, eps, compute_grad});
    return {loss, grad};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    saved_grad::check_first_order("style_distance");
    variable_list result(5);
    if (!grad_outputs[0].defined() || !ctx->needs_input_grad(0)) return result;
    TORCH_CHECK(ctx->saved_data["compute_grad"].toBool(),
                "inpaint_fast::style_distance was called with compute_grad=False, so it has no gradient; call it "
                "with compute_grad=True when feat_pred requires grad (inpaint_fast.ops.style_distance.style_distance "
                "does)");
    const auto fresh = [&] {
      return std::vector<at::Tensor>{saved_grad::recompute(ctx, style_distance_op(), "style_distance")[1].toTensor()};
    };
    result[0] = saved_grad::scaled_grads(
        ctx, grad_outputs[0], [](variable_list saved) { return saved; }, fresh,
        ctx->saved_data["feat_dtype"].toScalarType())[0];
    return result;
  }
};

at::Tensor gram_autograd(const at::Tensor& feat, const std::optional<at::Tensor>& weight, double eps) {
  if (!saved_grad::records({feat, weight})) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    return gram_op().call(feat, weight, eps);
  }
  return GramFunction::apply(feat, weight, eps)[0];
}

at::Tensor gram_backward_autograd(const at::Tensor& grad, const at::Tensor& feat,
                                  const std::optional<at::Tensor>& weight, double eps) {
  if (!saved_grad::records({grad, feat, weight})) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    return gram_backward_op().call(grad, feat, weight, eps);
  }
  return GramBackwardFunction::apply(grad, feat, weight, eps)[0];
}

std::tuple<at::Tensor, at::Tensor> style_distance_autograd(const at::Tensor& feat_pred, const at::Tensor& feat_target,
                                                           const std::optional<at::Tensor>& weight, double eps,
                                                           bool compute_grad) {
  if (!saved_grad::records({feat_pred, feat_target, weight})) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    return style_distance_op().call(feat_pred, feat_target, weight, eps, compute_grad);
  }
  const auto out = StyleDistanceFunction::apply(feat_pred, feat_target, weight, eps, compute_grad);
  return {out[0], out[1]};
}

}  // namespace

TORCH_LIBRARY_IMPL(inpaint_fast, Autograd, m) {
  m.impl("gram", &gram_autograd);
  m.impl("gram_backward", &gram_backward_autograd);
  m.impl("style_distance", &style_distance_autograd);
}

}  // namespace inpaint_fast
