// Autograd of inpaint_fast::q_sample, q_sample_backward and repaint_blend (schemas: csrc/ops/q_sample.cpp).
// q_sample and q_sample_backward are adjoint: each one's backward is the other (through the
// dispatcher, so higher-order gradients work). No gradient flows to t (integer) or alphas_cumprod (a
// fixed schedule). repaint_blend is a sampling step: its backward raises.

#include <ATen/ATen.h>
#include <torch/library.h>

#include <tuple>

#include "common/saved_grad.h"

namespace inpaint_fast {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

using QSampleSignature = at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&);
using QSampleBackwardSignature = std::tuple<at::Tensor, at::Tensor>(const at::Tensor&, const at::Tensor&,
                                                                    const at::Tensor&, bool, bool);
using RepaintBlendSignature = at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                         bool, const at::Tensor&, const at::Tensor&);

const c10::TypedOperatorHandle<QSampleSignature>& q_sample_op() {
  static const auto op =
      c10::Dispatcher::singleton().findSchemaOrThrow("inpaint_fast::q_sample", "").typed<QSampleSignature>();
  return op;
}

const c10::TypedOperatorHandle<QSampleBackwardSignature>& q_sample_backward_op() {
  static const auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow("inpaint_fast::q_sample_backward", "")
                             .typed<QSampleBackwardSignature>();
  return op;
}

const c10::TypedOperatorHandle<RepaintBlendSignature>& repaint_blend_op() {
  static const auto op =
      c10::Dispatcher::singleton().findSchemaOrThrow("inpaint_fast::repaint_blend", "").typed<RepaintBlendSignature>();
  return op;
}

class QSampleFunction : public torch::autograd::Function<QSampleFunction> {
 public:
  static variable_list forward(AutogradContext* ctx, const at::Tensor& x0, const at::Tensor& t,
                               const at::Tensor& noise, const at::Tensor& alphas_cumprod) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    ctx->save_for_backward({t, alphas_cumprod});
    return {q_sample_op().call(x0, t, noise, alphas_cumprod)};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    variable_list result(4);
    const bool need_x0 = ctx->needs_input_grad(0), need_noise = ctx->needs_input_grad(2);
    if (!grad_outputs[0].defined() || !(need_x0 || need_noise)) return result;
    const variable_list saved = ctx->get_saved_variables();
    auto [grad_x0, grad_noise] = q_sample_backward_op().call(grad_outputs[0], saved[0], saved[1], need_x0, need_noise);
    if (need_x0) result[0] = grad_x0;
    if (need_noise) result[2] = grad_noise;
    return result;
  }
};

class QSampleBackwardFunction : public torch::autograd::Function<QSampleBackwardFunction> {
 public:
  static variable_list forward(AutogradContext* ctx, const at::Tensor& grad, const at::Tensor& t,
                               const at::Tensor& alphas_cumprod, bool x0_grad, bool noise_grad) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    ctx->set_materialize_grads(false);
    ctx->save_for_backward({t, alphas_cumprod});
    auto [grad_x0, grad_noise] = q_sample_backward_op().call(grad, t, alphas_cumprod, x0_grad, noise_grad);
    return {grad_x0, grad_noise};
  }

  // The adjoint of q_sample_backward w.r.t. grad is q_sample.
  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    variable_list result(5);
    at::Tensor gg_x0 = grad_outputs[0], gg_noise = grad_outputs[1];
    if (gg_x0.defined() && gg_x0.sym_numel() == 0) gg_x0 = at::Tensor();  // an output that was not asked for
    if (gg_noise.defined() && gg_noise.sym_numel() == 0) gg_noise = at::Tensor();
    if (!ctx->needs_input_grad(0) || (!gg_x0.defined() && !gg_noise.defined())) return result;
    if (!gg_x0.defined()) gg_x0 = at::zeros_like(gg_noise);
    if (!gg_noise.defined()) gg_noise = at::zeros_like(gg_x0);
    const variable_list saved = ctx->get_saved_variables();
    result[0] = q_sample_op().call(gg_x0, saved[0], gg_noise, saved[1]);
    return result;
  }
};

class RepaintBlendFunction : public torch::autograd::Function<RepaintBlendFunction> {
 public:
  static variable_list forward(AutogradContext*, const at::Tensor& x_known, const at::Tensor& noise,
                               const at::Tensor& x_pred, const at::Tensor& mask, bool mask_is_hole, const at::Tensor& t,
                               const at::Tensor& alphas_cumprod) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    return {repaint_blend_op().call(x_known, noise, x_pred, mask, mask_is_hole, t, alphas_cumprod)};
  }

  static variable_list backward(AutogradContext*, variable_list) {
    TORCH_CHECK(false,
                "inpaint_fast::repaint_blend has no backward (it is a sampling step); call "
                "inpaint_fast.ops.q_sample.repaint_blend_fused, which routes inputs that require grad through a "
                "differentiable composite");
  }
};

at::Tensor q_sample_autograd(const at::Tensor& x0, const at::Tensor& t, const at::Tensor& noise,
                             const at::Tensor& alphas_cumprod) {
  if (!saved_grad::records({x0, t, noise, alphas_cumprod})) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    return q_sample_op().call(x0, t, noise, alphas_cumprod);
  }
  return QSampleFunction::apply(x0, t, noise, alphas_cumprod)[0];
}

std::tuple<at::Tensor, at::Tensor> q_sample_backward_autograd(const at::Tensor& grad, const at::Tensor& t,
                                                              const at::Tensor& alphas_cumprod, bool x0_grad,
                                                              bool noise_grad) {
  if (!saved_grad::records({grad, t, alphas_cumprod})) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    return q_sample_backward_op().call(grad, t, alphas_cumprod, x0_grad, noise_grad);
  }
  const auto out = QSampleBackwardFunction::apply(grad, t, alphas_cumprod, x0_grad, noise_grad);
  return {out[0], out[1]};
}

at::Tensor repaint_blend_autograd(const at::Tensor& x_known, const at::Tensor& noise, const at::Tensor& x_pred,
                                  const at::Tensor& mask, bool mask_is_hole, const at::Tensor& t,
                                  const at::Tensor& alphas_cumprod) {
  if (!saved_grad::records({x_known, noise, x_pred, mask, t, alphas_cumprod})) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    return repaint_blend_op().call(x_known, noise, x_pred, mask, mask_is_hole, t, alphas_cumprod);
  }
  return RepaintBlendFunction::apply(x_known, noise, x_pred, mask, mask_is_hole, t, alphas_cumprod)[0];
}

}  // namespace

TORCH_LIBRARY_IMPL(inpaint_fast, Autograd, m) {
  m.impl("q_sample", &q_sample_autograd);
  m.impl("q_sample_backward", &q_sample_backward_autograd);
  m.impl("repaint_blend", &repaint_blend_autograd);
}

}  // namespace inpaint_fast
