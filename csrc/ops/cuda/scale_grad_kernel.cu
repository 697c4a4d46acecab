// CUDA kernel of inpaint_fast::scale_grad_ (schema and semantics: csrc/ops/scale_grad.cpp).
//
// Every block reads the scale from device memory and returns at once when it is 1, so the host
// never reads it (no sync) and loss.backward() costs one launch of do-nothing blocks. Otherwise a
// grid-stride loop multiplies the dense block of grad in place, in the opmath type (float for
// half/bfloat16/float, double for double), on the current stream.

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "ops/scale_grad.h"

namespace inpaint_fast {
namespace {

constexpr int kThreads = 256;

template <typename scalar_t, typename opmath_t>
__global__ void scale_unless_one_kernel(scalar_t* __restrict__ data, const opmath_t* __restrict__ scale,
                                        int64_t n) {
  const opmath_t s = *scale;
  if (s == opmath_t(1)) {
    return;
  }
  const int64_t stride = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    data[i] = static_cast<scalar_t>(static_cast<opmath_t>(data[i]) * s);
  }
}

void scale_grad_cuda(const at::Tensor& grad, const at::Tensor& scale) {
  scale_grad_host::check_inputs(grad, scale);
  const int64_t n = grad.numel();
  if (n == 0) {
    return;
  }
  const c10::cuda::CUDAGuard guard(grad.device());
  const auto stream = at::cuda::getCurrentCUDAStream();
  const int64_t sms = at::cuda::getCurrentDeviceProperties()->multiProcessorCount;
  const int64_t blocks = std::min<int64_t>((n + kThreads - 1) / kThreads, sms * 8);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, grad.scalar_type(), "scale_grad_cuda", [&] {
    using opmath_t = at::opmath_type<scalar_t>;
    // A dense tensor's elements fill [data_ptr, data_ptr + numel) in some dimension order; the
    // scale is converted on the device (an asynchronous copy, not a read by the host).
    const at::Tensor s = scale.reshape({1}).to(c10::CppTypeToScalarType<opmath_t>::value);
    scale_unless_one_kernel<scalar_t, opmath_t><<<blocks, kThreads, 0, stream>>>(
        grad.data_ptr<scalar_t>(), s.data_ptr<opmath_t>(), n);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
}

}  // namespace

TORCH_LIBRARY_IMPL(inpaint_fast, CUDA, m) {
  m.impl("scale_grad_", &scale_grad_cuda);
}

}  // namespace inpaint_fast
