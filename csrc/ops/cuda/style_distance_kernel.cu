// CUDA kernels of inpaint_fast::gram, gram_backward and style_distance
// (schemas and semantics: csrc/ops/style_distance.cpp; the CPU kernels, the model for this file:
// csrc/ops/cpu/style_distance_kernel.cpp).
//
// The GEMMs are cuBLAS's through ATen (at::baddbmm_out with beta = 0 and alpha = the scale, on the
// current stream); everything around them is custom kernels here:
//
// 1. Weights (only with a weight): area_n = sum(w_n) in float64 (ATen's deterministic reduction),
//    scale_n = 1 / (C * max(area_n, eps)), ws = w * scale (Nw x HW, float32/float64): no host sync.
// 2. Gram, upper triangle only: rows are cut into panels of T = 128 rows (one panel for C <= 128);
//    panel p computes G[:, pT : pT+T, pT : C] with one batched GEMM (62% of the full product's FLOPs
//    for C = 256... 3/4 with two panels). Operands:
//    - no weight: the features themselves (views of NCHW or channels_last memory, no copy), the
//      scale 1 / (C H W) as the GEMM's alpha; float16/bfloat16 through the out_dtype = float32
//      GEMM (tensor cores, float32 accumulation and output: no float16 overflow);
//    - with a weight: the left operand is F * ws (the custom `scale_columns` kernel, float32 /
//      float64 output, so the scale is applied before accumulating), the right one F (converted
//      to float32 for float16/bfloat16).
//    gram writes G and its mirror image from the upper triangle (`mirror_kernel`): exactly
//    symmetric.
// 3. Style epilogue (`style_epilogue_kernel`): per sample, a fixed grid of blocks walks the upper
//    triangle: |G_p - G_t| (off-diagonal entries twice) summed per thread in float64, then a
//    warp-shuffle block reduction into one partial per block; S = sign(G_p - G_t) written to both
//    (i, j) and (j, i) (symmetric) in the GEMM dtype of the gradient (+-1/0 is exact in float16 /
//    bfloat16). `finish_loss_kernel` (one block) adds the partials in a fixed order: the loss is
//    bitwise deterministic, no atomics.
// 4. Gradient: dF = alpha * (A F) [* ws per column]: style A = S, alpha = 2 / (N C C) (* scale_n
//    without a weight); gram_backward A = gG + gG^T (float32/float64), alpha = scale_n without a
//    weight. One batched GEMM written straight into the gradient when no column scaling or cast is
//    needed, else into a float32/float64 buffer in the gradient's layout that `scale_columns`
//    multiplies by ws and casts (in place when the gradient is float32/float64).
//
// Indexing is int64; grid-stride loops. The grids of the reductions depend on the shape only.

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <type_traits>

#include "ops/style_distance.h"

namespace inpaint_fast {
namespace {

using style_distance_host::check_gram_backward_inputs;
using style_distance_host::check_gram_inputs;
using style_distance_host::check_style_inputs;

constexpr int kThreads = 256;
constexpr int64_t kPanelRows = 128;
constexpr int kEpilogueBlocks = 32;  // per sample, at most (fixed for a shape)

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Blocks of an elementwise grid-stride kernel: enough to fill the GPU, no more.
int64_t elementwise_blocks(int64_t total) {
  const int64_t sms = at::cuda::getCurrentDeviceProperties()->multiProcessorCount;
  return std::max<int64_t>(1, std::min<int64_t>(ceil_div(total, kThreads), sms * 16));
}

bool is_half(at::ScalarType t) { return t == at::kHalf || t == at::kBFloat16; }

at::ScalarType acc_type_of(at::ScalarType t) { return t == at::kDouble ? at::kDouble : at::kFloat; }

// ------------------------------------------------------------------------------------ reductions

template <typename T>
__device__ __forceinline__ T warp_sum(T v) {
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_down_sync(0xffffffffu, v, offset);
  return v;
}

// Sum over the block (blockDim.x a multiple of 32, <= 1024) in a fixed order; the result is valid
// in thread 0.
template <typename T>
__device__ T block_sum(T v) {
  __shared__ T warp_partials[32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  v = warp_sum(v);
  if (lane == 0) warp_partials[warp] = v;
  __syncthreads();
  const int warps = blockDim.x >> 5;
  v = (threadIdx.x < warps) ? warp_partials[threadIdx.x] : T(0);
  if (warp == 0) v = warp_sum(v);
  return v;
}

// ------------------------------------------------------------------------------------ kernels

template <typename T, int kVec>
struct alignas(sizeof(T) * kVec) Vec {
  T v[kVec];
};

// out[i] = out_t(acc_t(in[i]) * ws[n * ws_sn + k]) (ws null: a cast) for the N x C x HW elements of
// two tensors of the same layout (NCHW- or channels_last-contiguous); in may be out. kVec elements
// per step (16-byte or 8-byte accesses): the caller guarantees that total, the row length (HW, or
// C for channels_last) and both pointers are multiples of kVec elements, so that the kVec elements
// of a step share one ws (channels_last) or read kVec consecutive ws (NCHW).
template <typename in_t, typename acc_t, typename out_t, int kVec>
__global__ void scale_columns_kernel(const in_t* in, const acc_t* __restrict__ ws, out_t* out,
                                     int64_t total, int64_t C, int64_t HW, int64_t ws_sn,
                                     bool channels_last) {
  const int64_t CHW = C * HW;
  const int64_t steps = total / kVec;
  for (int64_t s = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; s < steps;
       s += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t i = s * kVec;
    const Vec<in_t, kVec> x = reinterpret_cast<const Vec<in_t, kVec>*>(in)[s];
    Vec<out_t, kVec> y;
    if (ws != nullptr) {
      const int64_t n = i / CHW;
      const int64_t k = channels_last ? (i / C) % HW : i % HW;
      const acc_t* w = ws + n * ws_sn + k;
#pragma unroll
      for (int e = 0; e < kVec; ++e) {
        y.v[e] = static_cast<out_t>(static_cast<acc_t>(x.v[e]) * w[channels_last ? 0 : e]);
      }
    } else {
#pragma unroll
      for (int e = 0; e < kVec; ++e) y.v[e] = static_cast<out_t>(static_cast<acc_t>(x.v[e]));
    }
    reinterpret_cast<Vec<out_t, kVec>*>(out)[s] = y;
  }
}

// out[n, i, j] = G[n, min(i, j), max(i, j)] (the upper triangle and its mirror image).
template <typename acc_t, typename out_t>
__global__ void mirror_kernel(const acc_t* __restrict__ G, out_t* __restrict__ out, int64_t N, int64_t C) {
  const int64_t CC = C * C, total = N * CC;
  for (int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < total;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t n = idx / CC, r = idx - n * CC;
    const int64_t i = r / C, j = r - i * C;
    const int64_t src = n * CC + (i <= j ? i * C + j : j * C + i);
    out[idx] = static_cast<out_t>(G[src]);
  }
}

// Work item nb = n * blocks + b (taken grid-stride: N * blocks may exceed the grid's x limit):
// partial[nb] = sum over its share of the upper triangle of sample n of |Gp - Gt| (twice off the
// diagonal); S (when not null) = sign(Gp - Gt), symmetric. The partials do not depend on the grid.
template <typename acc_t, typename s_t>
__global__ void style_epilogue_kernel(const acc_t* __restrict__ Gp, const acc_t* __restrict__ Gt,
                                      s_t* __restrict__ S, double* __restrict__ partial, int64_t N, int64_t C,
                                      int64_t blocks) {
  const int64_t CC = C * C;
  for (int64_t nb = blockIdx.x; nb < N * blocks; nb += gridDim.x) {
    const int64_t n = nb / blocks, b = nb - n * blocks;
    const acc_t* p = Gp + n * CC;
    const acc_t* t = Gt + n * CC;
    double sum = 0;
    for (int64_t idx = b * blockDim.x + threadIdx.x; idx < CC; idx += blocks * blockDim.x) {
      const int64_t i = idx / C, j = idx - i * C;
      if (j < i) continue;
      const acc_t d = p[idx] - t[idx];
      const double a = static_cast<double>(d < acc_t(0) ? -d : d);
      sum += (i == j) ? a : 2.0 * a;
      if (S != nullptr) {
        const s_t s = static_cast<s_t>(static_cast<float>((d > acc_t(0)) - (d < acc_t(0))));
        S[n * CC + i * C + j] = s;
        S[n * CC + j * C + i] = s;
      }
    }
    sum = block_sum(sum);
    if (threadIdx.x == 0) partial[nb] = sum;
    __syncthreads();  // block_sum's shared partials are rewritten by the next work item
  }
}

// One block: loss = (sum of the partials, in a fixed order) / denom.
template <typename acc_t>
__global__ void finish_loss_kernel(const double* __restrict__ partial, int64_t count, double denom,
                                   acc_t* __restrict__ loss) {
  double sum = 0;
  for (int64_t i = threadIdx.x; i < count; i += blockDim.x) sum += partial[i];
  sum = block_sum(sum);
  if (threadIdx.x == 0) *loss = static_cast<acc_t>(sum / denom);
}

// ------------------------------------------------------------------------------------ helpers

// The tensor to read (feat itself when NCHW- or channels_last-contiguous, else an NCHW copy).
at::Tensor matrices_of(const at::Tensor& feat, bool* channels_last) {
  if (feat.is_contiguous()) {
    *channels_last = false;
    return feat;
  }
  if (feat.is_contiguous(at::MemoryFormat::ChannelsLast)) {
    *channels_last = true;
    return feat;
  }
  *channels_last = false;
  return feat.contiguous();
}

// (N, C, HW) matrix view of a (N, C, H, W) tensor laid out NCHW or channels_last (no copy).
at::Tensor as_matrices(const at::Tensor& t, bool channels_last) {
  const int64_t N = t.size(0), C = t.size(1), HW = t.size(2) * t.size(3);
  if (!channels_last) return t.view({N, C, HW});
  return t.permute({0, 2, 3, 1}).reshape({N, HW, C}).transpose(1, 2);
}

at::Tensor empty_in_layout(const at::Tensor& like, bool channels_last, at::ScalarType dtype) {
  return at::empty(like.sizes(), like.options().dtype(dtype).memory_format(
                                     channels_last ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous));
}

// out = alpha * a @ b (beta = 0: out is not read). float16/bfloat16 operands with a float32 out
// go through the out_dtype GEMM (float32 accumulation and output).
void gemm(at::Tensor& out, const at::Tensor& a, const at::Tensor& b, double alpha) {
  if (a.scalar_type() != out.scalar_type()) {
    at::baddbmm_out(out, out, a, b, out.scalar_type(), 0.0, alpha);
  } else {
    at::baddbmm_out(out, out, a, b, 0.0, alpha);
  }
}

struct Weights {
  at::Tensor ws;        // (Nw, HW) in the accumulation dtype; undefined without a weight
  int64_t ws_sn = 0;    // row stride of ws per sample: HW, or 0 for one row shared by all samples
  double scale = 0;     // without a weight: 1 / (C H W)
  bool weighted() const { return ws.defined(); }
};

Weights weights_of(const std::optional<at::Tensor>& weight, int64_t C, int64_t HW, double eps,
                   at::ScalarType acc_type) {
  Weights W;
  if (!weight.has_value()) {
    W.scale = 1.0 / (static_cast<double>(C) * static_cast<double>(HW));
    return W;
  }
  const at::Tensor w = weight->reshape({weight->size(0), HW});
  const at::Tensor area = w.to(at::kDouble).sum(1);  // float64, ATen's fixed-order reduction
  const at::Tensor row_scale = area.clamp_min(eps).mul(static_cast<double>(C)).reciprocal().to(acc_type);
  W.ws = (w.to(acc_type) * row_scale.unsqueeze(1)).contiguous();
  W.ws_sn = weight->size(0) == 1 ? 0 : HW;
  return W;
}

// out (same layout as in, NCHW- or channels_last-contiguous) = in * ws per column (or a cast).
void scale_columns(const at::Tensor& in, const Weights& W, bool channels_last, at::Tensor& out) {
  const int64_t total = in.numel();
  if (total == 0) return;
  const int64_t C = in.size(1), HW = in.size(2) * in.size(3);
  const auto acc_type = acc_type_of(in.scalar_type() == at::kDouble || out.scalar_type() == at::kDouble
                                        ? at::kDouble : at::kFloat);
  TORCH_INTERNAL_ASSERT(!W.weighted() || W.ws.scalar_type() == acc_type);
  const auto stream = at::cuda::getCurrentCUDAStream();
  // 4 elements per step when the sizes and the pointers allow it (the row length: HW for NCHW, C for
  // channels_last), else 1.
  const int64_t row = channels_last ? C : HW;
  const auto aligned = [](const void* p, int64_t bytes) {
    return reinterpret_cast<uintptr_t>(p) % static_cast<uintptr_t>(bytes) == 0;
  };
  const bool vec4 = total % 4 == 0 && row % 4 == 0 && aligned(in.const_data_ptr(), 4 * in.element_size()) &&
                    aligned(out.const_data_ptr(), 4 * out.element_size());
  const int64_t blocks = elementwise_blocks(vec4 ? total / 4 : total);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, in.scalar_type(), "scale_columns_in", [&] {
    using in_t = scalar_t;
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, out.scalar_type(), "scale_columns_out", [&] {
      using out_t = scalar_t;
      const auto launch = [&](auto acc_tag) {
        using acc_t = decltype(acc_tag);
        const acc_t* ws = W.weighted() ? W.ws.const_data_ptr<acc_t>() : nullptr;
        if (vec4) {
          scale_columns_kernel<in_t, acc_t, out_t, 4><<<blocks, kThreads, 0, stream>>>(
              in.const_data_ptr<in_t>(), ws, out.mutable_data_ptr<out_t>(), total, C, HW, W.ws_sn, channels_last);
        } else {
          scale_columns_kernel<in_t, acc_t, out_t, 1><<<blocks, kThreads, 0, stream>>>(
              in.const_data_ptr<in_t>(), ws, out.mutable_data_ptr<out_t>(), total, C, HW, W.ws_sn, channels_last);
        }
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      };
      if (acc_type == at::kDouble) {
        launch(double{});
      } else {
        launch(float{});
      }
    });
  });
}

// Upper-triangle panels of the Grams of feat (NCHW- or channels_last-contiguous) into G
// (N, C, C, accumulation dtype); entries below the diagonal are not all written.
void gram_upper(const at::Tensor& feat, bool channels_last, const Weights& W, at::Tensor& G) {
  const int64_t C = feat.size(1);
  const auto acc_type = G.scalar_type();
  at::Tensor a_src = feat, b_src = feat;
  double alpha = W.scale;
  if (W.weighted()) {  // scale before accumulating: A = F * ws, B = F in the accumulation dtype
    a_src = empty_in_layout(feat, channels_last, acc_type);
    scale_columns(feat, W, channels_last, a_src);
    b_src = feat.scalar_type() == acc_type ? feat : feat.to(acc_type);  // keeps the layout
    alpha = 1.0;
  }
  const at::Tensor A = as_matrices(a_src, channels_last), B = as_matrices(b_src, channels_last);
  const int64_t T = std::min(C, kPanelRows);
  for (int64_t r0 = 0; r0 < C; r0 += T) {
    const int64_t rows = std::min(T, C - r0), cols = C - r0;
    at::Tensor out = G.narrow(1, r0, rows).narrow(2, r0, cols);
    gemm(out, A.narrow(1, r0, rows), B.narrow(1, r0, cols).transpose(1, 2), alpha);
  }
}

// grad (N, C, H, W; NCHW or channels_last as `channels_last`) = alpha * (A F) [* ws per column].
// A (N, C, C) holds the GEMM dtype: F is converted to it when they differ.
void apply_gradient(const at::Tensor& A, const at::Tensor& feat, bool channels_last, const Weights& W,
                    double alpha, at::Tensor& grad) {
  const auto gemm_type = A.scalar_type();
  const auto acc_type = acc_type_of(gemm_type);
  const at::Tensor f = feat.scalar_type() == gemm_type ? feat : feat.to(gemm_type);
  const at::Tensor F = as_matrices(f, channels_last);
  const auto out_type = grad.scalar_type();
  const bool direct_out = out_type == gemm_type || (out_type == at::kFloat && is_half(gemm_type));
  if (!W.weighted() && direct_out) {
    at::Tensor out = as_matrices(grad, channels_last);
    gemm(out, A, F, alpha);
    return;
  }
  at::Tensor tmp = out_type == acc_type ? grad : empty_in_layout(grad, channels_last, acc_type);
  at::Tensor out = as_matrices(tmp, channels_last);
  gemm(out, A, F, alpha);
  scale_columns(tmp, W, channels_last, grad);  // in place when tmp is grad
}

// ------------------------------------------------------------------------------------ checks

// cuBLAS takes 32-bit sizes and leading dimensions (H*W for the GEMMs here) and batch counts: larger
// features are rejected before anything is allocated (the CPU and Triton kernels take them).
void check_blas_sizes(const at::Tensor& feat, const char* op) {
  const int64_t N = feat.size(0), HW = feat.size(2) * feat.size(3);
  constexpr int64_t kMax = std::numeric_limits<int32_t>::max();
  TORCH_CHECK(HW <= kMax && N <= kMax, op, ": the CUDA kernel (cuBLAS) takes N and H*W up to 2^31 - 1; got N = ", N,
              ", H*W = ", HW, " (inpaint_fast.use_backend('triton') runs this shape)");
}

// ------------------------------------------------------------------------------------ ops

at::Tensor gram_cuda(const at::Tensor& feat_in, const std::optional<at::Tensor>& weight, double eps) {
  check_gram_inputs(feat_in, weight, eps, at::kCUDA);
  check_blas_sizes(feat_in, "inpaint_fast::gram");
  const c10::cuda::CUDAGuard guard(feat_in.device());
  const int64_t N = feat_in.size(0), C = feat_in.size(1), HW = feat_in.size(2) * feat_in.size(3);
  at::Tensor out = at::empty({N, C, C}, feat_in.options().memory_format(at::MemoryFormat::Contiguous));
  if (N * C == 0) return out;
  if (HW == 0) {  // no position: a zero Gram (as the reference's F F^T / max(C H W, 1))
    out.zero_();
    return out;
  }
  bool cl = false;
  const at::Tensor feat = matrices_of(feat_in, &cl);
  const auto acc_type = acc_type_of(feat.scalar_type());
  const Weights W = weights_of(weight, C, HW, eps, acc_type);
  at::Tensor G = at::empty({N, C, C}, feat.options().dtype(acc_type));
  gram_upper(feat, cl, W, G);
  const auto stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, feat.scalar_type(), "gram_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    mirror_kernel<acc_t, scalar_t><<<elementwise_blocks(N * C * C), kThreads, 0, stream>>>(
        G.const_data_ptr<acc_t>(), out.mutable_data_ptr<scalar_t>(), N, C);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out;
}

at::Tensor gram_backward_cuda(const at::Tensor& grad_in, const at::Tensor& feat_in,
                              const std::optional<at::Tensor>& weight, double eps) {
  check_gram_backward_inputs(grad_in, feat_in, weight, eps, at::kCUDA);
  check_blas_sizes(feat_in, "inpaint_fast::gram_backward");
  const int64_t N = feat_in.size(0), C = feat_in.size(1), HW = feat_in.size(2) * feat_in.size(3);
  const c10::cuda::CUDAGuard guard(feat_in.device());
  bool cl = false;
  const at::Tensor feat = matrices_of(feat_in, &cl);
  at::Tensor grad_feat = empty_in_layout(feat, cl, feat.scalar_type());
  if (grad_feat.numel() == 0) return grad_feat;
  const auto acc_type = acc_type_of(feat.scalar_type());
  const Weights W = weights_of(weight, C, HW, eps, acc_type);
  const at::Tensor g = grad_in.to(acc_type);
  const at::Tensor A = (g + g.transpose(1, 2)).contiguous();  // float32/float64 (any gG)
  apply_gradient(A, feat, cl, W, W.weighted() ? 1.0 : W.scale, grad_feat);
  return grad_feat;
}

std::tuple<at::Tensor, at::Tensor> style_distance_cuda(const at::Tensor& pred_in, const at::Tensor& target_in,
                                                       const std::optional<at::Tensor>& weight, double eps,
                                                       bool compute_grad) {
  check_style_inputs(pred_in, target_in, weight, eps, at::kCUDA);
  check_blas_sizes(pred_in, "inpaint_fast::style_distance");
  const c10::cuda::CUDAGuard guard(pred_in.device());
  const int64_t N = pred_in.size(0), C = pred_in.size(1), HW = pred_in.size(2) * pred_in.size(3);
  const auto dtype = pred_in.scalar_type();
  const auto acc_type = acc_type_of(dtype);

  bool cl = false, cl_t = false;
  const at::Tensor pred = matrices_of(pred_in, &cl);
  const at::Tensor target = matrices_of(target_in, &cl_t);
  // float16 features get a float32 gradient (see csrc/ops/style_distance.cpp).
  const auto grad_type = grad_dtype(dtype);
  at::Tensor grad = compute_grad ? empty_in_layout(pred, cl, grad_type) : at::empty({0}, pred.options().dtype(grad_type));
  at::Tensor loss = at::empty({}, pred.options().dtype(acc_type));
  if (N * C == 0 || HW == 0) {
    // the mean of an empty set is 0; HW == 0 gives zero Grams, so 0 too
    loss.zero_();
    if (compute_grad) grad.zero_();
    return {loss, grad};
  }
  const Weights W = weights_of(weight, C, HW, eps, acc_type);
  at::Tensor G = at::empty({2, N, C, C}, pred.options().dtype(acc_type));
  at::Tensor Gp = G.select(0, 0), Gt = G.select(0, 1);
  gram_upper(pred, cl, W, Gp);
  gram_upper(target, cl_t, W, Gt);

  // S in the gradient GEMM's dtype: the features' own (exact +-1/0) for float16/bfloat16.
  const auto s_type = is_half(dtype) ? dtype : acc_type;
  at::Tensor S = compute_grad ? at::empty({N, C, C}, pred.options().dtype(s_type)) : at::Tensor();
  const int64_t blocks = std::min<int64_t>(kEpilogueBlocks, ceil_div(C * C, kThreads));
  at::Tensor partial = at::empty({N * blocks}, pred.options().dtype(at::kDouble));
  const double denom = static_cast<double>(N) * static_cast<double>(C) * static_cast<double>(C);
  const auto stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, dtype, "style_distance_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    using s_t = std::conditional_t<std::is_same_v<acc_t, double>, double,
                                   std::conditional_t<std::is_same_v<scalar_t, float>, float, scalar_t>>;
    // One block per work item, up to the grid's x limit (2^31 - 1; N * blocks reaches it for N >= 2^31
    // when C <= 16).
    const int64_t grid = std::min<int64_t>(N * blocks, std::numeric_limits<int32_t>::max());
    style_epilogue_kernel<acc_t, s_t><<<static_cast<unsigned>(grid), kThreads, 0, stream>>>(
        Gp.const_data_ptr<acc_t>(), Gt.const_data_ptr<acc_t>(),
        compute_grad ? S.mutable_data_ptr<s_t>() : nullptr, partial.mutable_data_ptr<double>(), N, C, blocks);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    finish_loss_kernel<acc_t><<<1, kThreads, 0, stream>>>(partial.const_data_ptr<double>(), N * blocks, denom,
                                                          loss.mutable_data_ptr<acc_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  if (compute_grad) {
    const double alpha = 2.0 / denom * (W.weighted() ? 1.0 : W.scale);
    apply_gradient(S, pred, cl, W, alpha, grad);
  }
  return {loss, grad};
}

}  // namespace

TORCH_LIBRARY_IMPL(inpaint_fast, CUDA, m) {
  m.impl("gram", &gram_cuda);
  m.impl("gram_backward", &gram_backward_cuda);
  m.impl("style_distance", &style_distance_cuda);
}

}  // namespace inpaint_fast
