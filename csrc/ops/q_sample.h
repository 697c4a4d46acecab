// Host-side input checks of inpaint_fast::q_sample, q_sample_backward and repaint_blend (schemas and
// semantics: q_sample.cpp); each kernel calls its op's check first, before any allocation. These ops
// raise ValueError for a bad shape, value or device and TypeError for a bad dtype
// (Raise::kValueOrTypeError). The timesteps' range is checked where t is read (the CPU kernel's
// coefficients).
#pragma once

#include <ATen/ATen.h>

#include "common/checks.h"

namespace inpaint_fast {
namespace q_sample_host {

constexpr Raise kRaise = Raise::kValueOrTypeError;

// t (N,) int64 or int32 and alphas_cumprod (T,) floating, on the device of the images (like).
inline void check_schedule(const at::Tensor& t, const at::Tensor& abar, const at::Tensor& like, const char* op) {
  TORCH_CHECK_TYPE(t.scalar_type() == at::kLong || t.scalar_type() == at::kInt, op,
                   ": t must be int64 (or int32); got ", t.scalar_type());
  TORCH_CHECK_VALUE(t.dim() == 1 && t.size(0) == like.size(0), op, ": t must have shape (N,) = (", like.size(0),
                    ",), one timestep per image; got ", t.sizes());
  TORCH_CHECK_VALUE(t.device() == like.device(), op, ": t must be on the device of the images");
  TORCH_CHECK_TYPE(at::isFloatingType(abar.scalar_type()), op, ": alphas_cumprod must be floating; got ",
                   abar.scalar_type());
  TORCH_CHECK_VALUE(abar.dim() == 1, op, ": alphas_cumprod must be 1-D (T,); got shape ", abar.sizes());
  TORCH_CHECK_VALUE(abar.device() == like.device(), op, ": alphas_cumprod must be on the device of the images");
}

inline void check_q_sample_inputs(const at::Tensor& x0, const at::Tensor& t, const at::Tensor& noise,
                                  const at::Tensor& abar) {
  const char* op = "inpaint_fast::q_sample";
  check_image(x0, op, "x0", kRaise);
  check_like(noise, x0, op, "noise", "x0", kRaise);
  check_schedule(t, abar, x0, op);
}

inline void check_q_sample_backward_inputs(const at::Tensor& grad, const at::Tensor& t, const at::Tensor& abar) {
  const char* op = "inpaint_fast::q_sample_backward";
  check_image(grad, op, "grad", kRaise);
  check_schedule(t, abar, grad, op);
}

inline void check_repaint_blend_inputs(const at::Tensor& x_known, const at::Tensor& noise, const at::Tensor& x_pred,
                                       const at::Tensor& mask, const at::Tensor& t, const at::Tensor& abar) {
  const char* op = "inpaint_fast::repaint_blend";
  check_image(x_known, op, "x_known", kRaise);
  check_like(noise, x_known, op, "noise", "x_known", kRaise);
  check_like(x_pred, x_known, op, "x_pred", "x_known", kRaise);
  check_schedule(t, abar, x_known, op);
  check_mask(mask, x_known, op, "the images'", kRaise);
}

}  // namespace q_sample_host
}  // namespace inpaint_fast
