// The C++ autograd of the fused ops (csrc/ops/autograd/<op>_kernel.cpp): a torch::autograd::Function
// registered for the Autograd key, as torchvision's csrc/ops/autograd/ does, so that a call records its
// graph node without running Python. The Triton twins (Python custom ops) keep the Python autograd of
// inpaint_fast/ops/scale_grad.py, whose rules these helpers follow:
//
// A fused forward writes d loss / d input for grad_output == 1 into a buffer it saves. The backward
// returns buffer * grad_output without a host sync:
// - the first backward through a graph scales the saved buffer in place (inpaint_fast::scale_grad_,
//   which leaves it untouched when grad_output is 1, tested where grad_output lives) and hands it over;
// - a later backward (retain_graph=True, gradcheck) recomputes a fresh buffer from the inputs the
//   forward kept (an input changed in place since then is an error, as in autograd);
// - traced (torch.compile's fake or functional tensors, a dispatch mode, functorch), the product is
//   taken out of place, where the compiler can fuse it.
#pragma once

#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <c10/core/impl/TorchDispatchModeTLS.h>
#include <torch/csrc/autograd/custom_function.h>

#include <optional>
#include <vector>

namespace inpaint_fast {
namespace saved_grad {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

inline constexpr const char* kDoubleBackward =
    " does not support double backward (differentiating its gradient, e.g. create_graph=True); use "
    "inpaint_fast.use_backend('reference') for higher-order gradients";

// The backward of a fused op returns a constant gradient: refuse create_graph=True rather than
// return silently wrong second derivatives.
inline void check_first_order(const char* op) {
  TORCH_CHECK(!at::GradMode::is_enabled(), "inpaint_fast::", op, kDoubleBackward);
}

// Whether a call records a graph node: grad mode is on and a tensor input requires grad. When it does
// not, the autograd kernels call the op directly (no node, no context).
inline bool records(std::initializer_list<std::optional<at::Tensor>> inputs) {
  if (!at::GradMode::is_enabled()) return false;
  for (const auto& t : inputs) {
    if (t && t->defined() && t->requires_grad()) return true;
  }
  return false;
}

// An input of an op that is not differentiated must not require grad.
inline void check_no_grad(const std::optional<at::Tensor>& t, const char* op, const char* name,
                          const char* why) {
  TORCH_CHECK(!(t && t->defined() && t->requires_grad()), "inpaint_fast::", op, " does not differentiate its ",
              name, "; ", why);
}

// An ordinary eager tensor: not a fake or functional tensor (Python key), not wrapped by functorch,
// and no Python dispatch mode active.
inline bool eager(const at::Tensor& t) {
  static const c10::DispatchKeySet traced({c10::DispatchKey::Python, c10::DispatchKey::PythonTLSSnapshot,
                                           c10::DispatchKey::Functionalize, c10::DispatchKey::FuncTorchGradWrapper,
                                           c10::DispatchKey::FuncTorchBatched});
  return (t.key_set() & traced).empty() && !c10::impl::dispatch_mode_enabled();
}

// In forward: keep the op's arguments (tensors by reference, not copied) and the tensors' versions
// for a recompute.
inline void keep_arguments(AutogradContext* ctx, std::vector<c10::IValue> arguments) {
  std::vector<int64_t> versions;
  for (const c10::IValue& a : arguments) {
    const bool tracked = a.isTensor() && a.toTensor().defined() && !a.toTensor().is_inference();
    versions.push_back(tracked ? static_cast<int64_t>(a.toTensor()._version()) : -1);
  }
  ctx->saved_data["arguments"] = c10::ivalue::Tuple::create(std::move(arguments));
  ctx->saved_data["versions"] = versions;
  ctx->saved_data["handed_out"] = false;
}

// The op run again (below autograd) on the arguments keep_arguments kept, checked to be unchanged
// since the forward; returns its outputs.
inline std::vector<c10::IValue> recompute(AutogradContext* ctx, const c10::OperatorHandle& op, const char* name) {
  const auto arguments = ctx->saved_data["arguments"].toTuple();
  const auto versions = ctx->saved_data["versions"].toIntVector();
  torch::jit::Stack stack;
  for (size_t i = 0; i < arguments->elements().size(); ++i) {
    const c10::IValue& a = arguments->elements()[i];
    TORCH_CHECK(versions[i] < 0 || static_cast<int64_t>(a.toTensor()._version()) == versions[i], "inpaint_fast::",
                name, ": an input was modified in place after the forward pass; a second backward through the graph "
                "needs it unchanged");
    stack.push_back(a);
  }
  at::AutoDispatchBelowADInplaceOrView below_autograd;
  op.callBoxed(&stack);
  return stack;
}

inline at::Tensor real_view(const at::Tensor& g) { return g.is_complex() ? at::view_as_real(g) : g; }

inline at::Tensor scaled_copy(const at::Tensor& g, const at::Tensor& grad_output) {
  return g.is_complex() ? at::view_as_complex(at::view_as_real(g) * grad_output) : g * grad_output;
}

// g *= grad_output in place (skipped by the kernel when grad_output is 1), below autograd: the saved
// buffer's version does not change.
inline at::Tensor scale_in_place(const at::Tensor& g, const at::Tensor& grad_output) {
  static const auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow("inpaint_fast::scale_grad_", "")
                             .typed<void(const at::Tensor&, const at::Tensor&)>();
  if (g.sym_numel() == 0) return scaled_copy(g, grad_output);
  at::AutoDispatchBelowADInplaceOrView guard;
  op.call(real_view(g), grad_output);
  return g;
}

// buffer * grad_output for each buffer the forward wrote (see the file comment). ``buffers(saved)``
// picks the buffers among the saved tensors; ``fresh()`` picks the same buffers among the outputs of
// recompute(). ``dtype``, when given, is the gradients' dtype (the buffer
// is float32 for float16 inputs), cast after the scaling.
template <typename Pick, typename Fresh>
std::vector<at::Tensor> scaled_grads(AutogradContext* ctx, const at::Tensor& grad_output, const Pick& buffers,
                                     const Fresh& fresh,
                                     std::optional<at::ScalarType> dtype = std::nullopt) {
  std::vector<at::Tensor> grads;
  auto& handed_out = ctx->saved_data["handed_out"];
  if (handed_out.toBool()) {
    for (const at::Tensor& g : fresh()) grads.push_back(scaled_copy(g, grad_output));
  } else {
    handed_out = true;
    const std::vector<at::Tensor> saved = buffers(ctx->get_saved_variables());
    bool in_place = eager(grad_output);
    for (const at::Tensor& g : saved) in_place = in_place && eager(g);
    for (const at::Tensor& g : saved) {
      grads.push_back(in_place ? scale_in_place(g, grad_output) : scaled_copy(g, grad_output));
    }
  }
  if (dtype) {
    for (at::Tensor& g : grads) {
      if (g.scalar_type() != *dtype) g = g.to(*dtype);
    }
  }
  return grads;
}

}  // namespace saved_grad
}  // namespace inpaint_fast
