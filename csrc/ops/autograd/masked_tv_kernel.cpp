// Autograd of inpaint_fast::masked_tv (schema: csrc/ops/masked_tv.cpp; rules: common/saved_grad.h). The
// forward writes d loss / d img; backward scales it by grad_output. The mask is not differentiated.

#include <ATen/ATen.h>
#include <torch/library.h>

#include <optional>
#include <tuple>

#include "common/saved_grad.h"

namespace inpaint_fast {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

using Signature = std::tuple<at::Tensor, at::Tensor>(const at::Tensor&, const std::optional<at::Tensor>&, bool,
                                                     int64_t, int64_t, int64_t, double, bool);

const c10::TypedOperatorHandle<Signature>& masked_tv_op() {
  static const auto op =
      c10::Dispatcher::singleton().findSchemaOrThrow("inpaint_fast::masked_tv", "").typed<Signature>();
  return op;
}

class MaskedTVFunction : public torch::autograd::Function<MaskedTVFunction> {
 public:
  static variable_list forward(AutogradContext* ctx, const at::Tensor& img, const std::optional<at::Tensor>& mask,
                               bool mask_is_hole, int64_t region, int64_t p, int64_t normalize, double eps,
                               bool compute_grad) {
    saved_grad::check_no_grad(mask, "masked_tv", "mask",
                              "a mask that requires grad must go through the reference implementation "
                              "(inpaint_fast.reference)");
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    auto [loss, grad] = masked_tv_op().call(img, mask, mask_is_hole, region, p, normalize, eps, compute_grad);
    ctx->mark_non_differentiable({grad});
    ctx->set_materialize_grads(false);  // no full-size zeros for the gradient output's (absent) gradient
    ctx->save_for_backward({grad});
    ctx->saved_data["compute_grad"] = compute_grad;
    ctx->saved_data["img_dtype"] = img.scalar_type();
    saved_grad::keep_arguments(ctx, {img, mask, mask_is_hole, region, p, normalize, eps, compute_grad});
    return {loss, grad};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    saved_grad::check_first_order("masked_tv");
    variable_list result(8);
    if (!grad_outputs[0].defined()) return result;
    TORCH_CHECK(ctx->saved_data["compute_grad"].toBool(),
                "inpaint_fast::masked_tv was called with compute_grad=False: it has no gradient (call it "
                "through inpaint_fast.ops.masked_tv.masked_tv)");
    const auto fresh = [&] {
      return std::vector<at::Tensor>{saved_grad::recompute(ctx, masked_tv_op(), "masked_tv")[1].toTensor()};
    };
    result[0] = saved_grad::scaled_grads(
        ctx, grad_outputs[0], [](variable_list saved) { return saved; }, fresh,
        ctx->saved_data["img_dtype"].toScalarType())[0];
    return result;
  }
};

std::tuple<at::Tensor, at::Tensor> masked_tv_autograd(const at::Tensor& img, const std::optional<at::Tensor>& mask,
                                                      bool mask_is_hole, int64_t region, int64_t p, int64_t normalize,
                                                      double eps, bool compute_grad) {
  if (!saved_grad::records({img, mask})) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    return masked_tv_op().call(img, mask, mask_is_hole, region, p, normalize, eps, compute_grad);
  }
  const auto out = MaskedTVFunction::apply(img, mask, mask_is_hole, region, p, normalize, eps, compute_grad);
  return {out[0], out[1]};
}

}  // namespace

TORCH_LIBRARY_IMPL(inpaint_fast, Autograd, m) {
  m.impl("masked_tv", &masked_tv_autograd);
}

}  // namespace inpaint_fast
