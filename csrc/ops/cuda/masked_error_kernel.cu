// CUDA kernels of inpaint_fast::masked_error and masked_error_stats (schemas and semantics:
// csrc/ops/masked_error.cpp; the CPU kernels, which these follow: ops/cpu/masked_error_kernel.cpp).
//
// Launches, all on the current stream, none reading a value back to the host (CUDA-graph safe):
//   1. area_kernel (only with a mask, when the areas are needed: normalize=mask, or the stats):
//      sums each distinct (H, W) plane of the mask once (double), one partial per block, and asserts
//      (device-side, no sync) that a floating mask's values lie in [0, 1]. Without this pass, a floating
//      mask is checked by common/checks.h's check_mask_values (aminmax and an asynchronous assert).
//   2. finish_kernel<AREA> (one block): adds those partials in a fixed order and writes
//      [k_hole, k_valid, A_hole, A_valid] (double) to a device buffer that the main kernel reads.
//   3. main_kernel: one pass over pred/target/mask, grid-stride over vectors of VEC elements
//      (16-byte loads and stores when the pointers, the plane size and the strides allow). NCHW: a
//      work item is VEC pixels of one image for all C channels, so a mask broadcast over C is
//      loaded once per pixel vector; channels_last (dense, C > 1): VEC consecutive elements of one
//      image, the mask gathered by (pixel, channel). Each block reduces its per-thread sums with
//      warp shuffles (fixed tree) and writes one partial per sum; the gradient (float32 for float16
//      images, else their dtype) is written in the same pass when asked.
//   4. finish_kernel<LOSS|STATS> (one block): adds the partials in a fixed order (double) and writes
//      the loss or the (6,) stats.
// Determinism: the grid depends only on the device's SM count and the shape, every block writes its
// own partial slot, the partials are summed by one block in a fixed order; no atomics. Loads are
// converted to float (double stays double) and accumulated there; indices are int64. bool/uint8
// masks are binary (any non-zero value is 1), floating masks soft weights.

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdint>
#include <tuple>
#include <type_traits>

#include "ops/masked_error.h"

namespace inpaint_fast {
namespace {

constexpr int kThreads = 256;        // threads per block of the area and main kernels
constexpr int kFinishThreads = 1024;  // threads of the one-block finishing kernel
constexpr int kBlocksPerSM = 8;       // grid of the grid-stride kernels: SMs * kBlocksPerSM at most
using namespace masked_error_host;  // Loss, the checks, prepare
enum FinishMode : int { kFinishArea = 0, kFinishLoss = 1, kFinishStats = 2 };

struct NoMask {};  // the mask type without a mask: every pixel is known (v = 1)

template <typename T, int VEC>
struct alignas(sizeof(T) * VEC) Vec {
  T x[VEC];
};

template <int VEC, typename T>
__device__ __forceinline__ Vec<T, VEC> load_vec(const T* p) {
  return *reinterpret_cast<const Vec<T, VEC>*>(p);
}

// Sum over the block of K per-thread values in a fixed order (warp shuffles, then warp 0); the
// result is valid in thread 0. blockDim.x must be a multiple of 32 and at most 1024.
template <int K, typename acc_t>
__device__ void block_sum(acc_t (&v)[K]) {
  __shared__ acc_t shared[K][32];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
#pragma unroll
  for (int k = 0; k < K; ++k) {
#pragma unroll
    for (int off = 16; off > 0; off /= 2) v[k] += __shfl_down_sync(0xffffffffu, v[k], off);
  }
  if (lane == 0) {
#pragma unroll
    for (int k = 0; k < K; ++k) shared[k][warp] = v[k];
  }
  __syncthreads();
  if (warp == 0) {
#pragma unroll
    for (int k = 0; k < K; ++k) {
      v[k] = lane < warps ? shared[k][lane] : acc_t(0);
#pragma unroll
      for (int off = 16; off > 0; off /= 2) v[k] += __shfl_down_sync(0xffffffffu, v[k], off);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// 1. Mask pre-pass: partial[block] = sum of the mask weights over its distinct planes (grid-stride).

template <typename mask_t>
__global__ void __launch_bounds__(kThreads) area_kernel(const mask_t* __restrict__ m, int64_t planes_n,
                                                        int64_t planes_c, int64_t HW, int64_t m_sn,
                                                        int64_t m_sc, double* __restrict__ partials) {
  double acc[1] = {0.0};
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int64_t first = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  for (int64_t n = 0; n < planes_n; ++n) {
    for (int64_t c = 0; c < planes_c; ++c) {
      const mask_t* plane = m + n * m_sn + c * m_sc;
      for (int64_t hw = first; hw < HW; hw += stride) {
        const double x = mask_weight<double>(plane[hw]);
        if constexpr (!std::is_same_v<mask_t, uint8_t>) {  // common/checks.h's check, in this pass
          CUDA_KERNEL_ASSERT_MSG(x >= 0.0 && x <= 1.0, "inpaint_fast: a floating mask must hold values in [0, 1]");
        }
        acc[0] += x;
      }
    }
  }
  block_sum<1>(acc);
  if (threadIdx.x == 0) partials[blockIdx.x] = acc[0];
}

// ---------------------------------------------------------------------------------------------
// 2./4. One block adds rows x P partials (row-major) in a fixed order, then writes its result.

struct FinishParams {
  int64_t P;
  double scale, total, eps, weight_hole, weight_valid, k_hole, k_valid;
  bool is_hole, has_mask, coef_from_device;
};

template <int MODE, int ROWS, typename part_t, typename out_t>
__global__ void __launch_bounds__(kFinishThreads) finish_kernel(const part_t* __restrict__ partials,
                                                                double* __restrict__ coef,
                                                                out_t* __restrict__ out, FinishParams fp) {
  double s[ROWS];
#pragma unroll
  for (int r = 0; r < ROWS; ++r) {
    s[r] = 0.0;
    for (int64_t i = threadIdx.x; i < fp.P; i += blockDim.x) s[r] += static_cast<double>(partials[r * fp.P + i]);
  }
  block_sum<ROWS>(s);
  if (threadIdx.x != 0) return;
  if constexpr (MODE == kFinishArea) {
    const double sum = s[0] * fp.scale;
    const double area_valid = fp.is_hole ? fp.total - sum : sum;
    const double area_hole = fp.total - area_valid;
    coef[0] = fp.weight_hole / fmax(area_hole, fp.eps);
    coef[1] = fp.weight_valid / fmax(area_valid, fp.eps);
    coef[2] = area_hole;
    coef[3] = area_valid;
  } else if constexpr (MODE == kFinishLoss) {
    const double kh = fp.coef_from_device ? coef[0] : fp.k_hole;
    const double kv = fp.coef_from_device ? coef[1] : fp.k_valid;
    // A term of weight 0 is left out: its sum may be inf or NaN (0 * inf from an inf outside its region).
    out[0] = static_cast<out_t>((kh != 0.0 ? kh * s[0] : 0.0) + (kv != 0.0 ? kv * s[1] : 0.0));
  } else {
#pragma unroll
    for (int r = 0; r < ROWS; ++r) out[r] = static_cast<out_t>(s[r]);
    out[4] = static_cast<out_t>(fp.has_mask ? coef[2] : 0.0);
    out[5] = static_cast<out_t>(fp.has_mask ? coef[3] : fp.total);
  }
}

// ---------------------------------------------------------------------------------------------
// 3. The main pass.

struct MainParams {
  int64_t N, C, HW;
  int64_t p_sn, p_sc, t_sn, t_sc;  // pred/target strides of N and C (NCHW planes are contiguous)
  int64_t m_sn, m_sc;              // mask strides of N and C, 0 where broadcast; mask planes contiguous
  int64_t vectors;                 // work items per image
  double a, b;                     // known weight v = a + b * mask
  double k_hole, k_valid, charbonnier_eps2;
  int64_t loss;
  bool stats, mask_bcast_c, coef_from_device;
};

template <typename acc_t>
struct Consts {
  acc_t a, b, k_hole, k_valid, ceps2;
};

// Adds one element's terms to s[0..3] and returns its gradient. Loss: s = [hole e, valid e];
// stats: s = [hole |d|, valid |d|, hole d^2, valid d^2]. The loss switch is uniform over the grid.
template <bool HAS_MASK, typename acc_t>
__device__ __forceinline__ acc_t element(acc_t d, acc_t v, int64_t loss, bool stats, const Consts<acc_t>& k,
                                         acc_t (&s)[4]) {
  if (stats) {
    const acc_t a = fabs(d), q = d * d;
    // Without a mask there is no hole region: its sums stay exactly 0 (not 0 * NaN).
    if constexpr (HAS_MASK) {
      s[0] += (acc_t(1) - v) * a;
      s[2] += (acc_t(1) - v) * q;
    }
    s[1] += v * a;
    s[3] += v * q;
    return acc_t(0);
  }
  acc_t e, de;
  if (loss == kL1) {
    e = fabs(d);
    de = static_cast<acc_t>(d > acc_t(0)) - static_cast<acc_t>(d < acc_t(0));
  } else if (loss == kL2) {
    e = d * d;
    de = acc_t(2) * d;
  } else {
    e = sqrt(d * d + k.ceps2);
    de = d / e;
  }
  if constexpr (HAS_MASK) s[0] += (acc_t(1) - v) * e;
  s[1] += v * e;
  return HAS_MASK ? (k.k_hole * (acc_t(1) - v) + k.k_valid * v) * de : k.k_valid * de;
}

template <typename mask_t, typename acc_t>
__device__ __forceinline__ acc_t known_weight(mask_t m, const Consts<acc_t>& k) {
  return k.a + k.b * mask_weight<acc_t>(m);
}

// CHANNELS_LAST: pred/target/grad dense channels_last, element (n, c, hw) at n * s_n + hw * C + c;
// else NCHW with contiguous (H, W) planes, grad contiguous. VEC elements per work item.
template <typename scalar_t, typename mask_t, bool CHANNELS_LAST, int VEC>
__global__ void __launch_bounds__(kThreads) main_kernel(const scalar_t* __restrict__ p,
                                                        const scalar_t* __restrict__ t,
                                                        const mask_t* __restrict__ m,
                                                        grad_type<scalar_t>* __restrict__ g,
                                                        at::opmath_type<scalar_t>* __restrict__ partials,
                                                        const double* __restrict__ coef, MainParams mp) {
  using acc_t = at::opmath_type<scalar_t>;
  using grad_t = grad_type<scalar_t>;
  constexpr bool HAS_MASK = !std::is_same_v<mask_t, NoMask>;
  Consts<acc_t> k;
  k.a = static_cast<acc_t>(mp.a);
  k.b = static_cast<acc_t>(mp.b);
  k.k_hole = static_cast<acc_t>(mp.coef_from_device ? coef[0] : mp.k_hole);
  k.k_valid = static_cast<acc_t>(mp.coef_from_device ? coef[1] : mp.k_valid);
  k.ceps2 = static_cast<acc_t>(mp.charbonnier_eps2);
  acc_t s[4] = {acc_t(0), acc_t(0), acc_t(0), acc_t(0)};
  const int64_t items = mp.N * mp.vectors;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t w = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; w < items; w += stride) {
    const int64_t n = w / mp.vectors;
    const int64_t i0 = (w - n * mp.vectors) * VEC;  // NCHW: pixel; channels_last: element of the image
    if constexpr (CHANNELS_LAST) {
      const Vec<scalar_t, VEC> pv = load_vec<VEC>(p + n * mp.p_sn + i0);
      const Vec<scalar_t, VEC> tv = load_vec<VEC>(t + n * mp.t_sn + i0);
      Vec<grad_t, VEC> gv;
      int64_t hw = 0, c = 0;  // pixel and channel of element i0 + j (one division per work item)
      if constexpr (HAS_MASK) {
        hw = i0 / mp.C;
        c = i0 - hw * mp.C;
      }
#pragma unroll
      for (int j = 0; j < VEC; ++j) {
        acc_t v = acc_t(1);
        if constexpr (HAS_MASK) {
          v = known_weight(m[n * mp.m_sn + c * mp.m_sc + hw], k);
          if (++c == mp.C) {
            c = 0;
            ++hw;
          }
        }
        const acc_t d = static_cast<acc_t>(pv.x[j]) - static_cast<acc_t>(tv.x[j]);
        gv.x[j] = static_cast<grad_t>(element<HAS_MASK>(d, v, mp.loss, mp.stats, k, s));
      }
      if (g != nullptr) *reinterpret_cast<Vec<grad_t, VEC>*>(g + n * mp.C * mp.HW + i0) = gv;
    } else {
      acc_t v[VEC];
      if constexpr (HAS_MASK) {
        if (mp.mask_bcast_c) {
          const Vec<mask_t, VEC> mv = load_vec<VEC>(m + n * mp.m_sn + i0);
#pragma unroll
          for (int j = 0; j < VEC; ++j) v[j] = known_weight(mv.x[j], k);
        }
      } else {
#pragma unroll
        for (int j = 0; j < VEC; ++j) v[j] = acc_t(1);
      }
      for (int64_t c = 0; c < mp.C; ++c) {
        if constexpr (HAS_MASK) {
          if (!mp.mask_bcast_c) {
            const Vec<mask_t, VEC> mv = load_vec<VEC>(m + n * mp.m_sn + c * mp.m_sc + i0);
#pragma unroll
            for (int j = 0; j < VEC; ++j) v[j] = known_weight(mv.x[j], k);
          }
        }
        const Vec<scalar_t, VEC> pv = load_vec<VEC>(p + n * mp.p_sn + c * mp.p_sc + i0);
        const Vec<scalar_t, VEC> tv = load_vec<VEC>(t + n * mp.t_sn + c * mp.t_sc + i0);
        Vec<grad_t, VEC> gv;
#pragma unroll
        for (int j = 0; j < VEC; ++j) {
          const acc_t d = static_cast<acc_t>(pv.x[j]) - static_cast<acc_t>(tv.x[j]);
          gv.x[j] = static_cast<grad_t>(element<HAS_MASK>(d, v[j], mp.loss, mp.stats, k, s));
        }
        if (g != nullptr) *reinterpret_cast<Vec<grad_t, VEC>*>(g + (n * mp.C + c) * mp.HW + i0) = gv;
      }
    }
  }
  block_sum<4>(s);
  if (threadIdx.x == 0) {
    const int64_t P = gridDim.x;
    partials[blockIdx.x] = s[0];
    partials[P + blockIdx.x] = s[1];
    if (mp.stats) {
      partials[2 * P + blockIdx.x] = s[2];
      partials[3 * P + blockIdx.x] = s[3];
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Host side.

int64_t grid_for(int64_t items) {
  const int64_t sms = at::cuda::getCurrentDeviceProperties()->multiProcessorCount;
  return std::max<int64_t>(1, std::min<int64_t>((items + kThreads - 1) / kThreads, sms * kBlocksPerSM));
}

bool aligned(const void* ptr, int64_t bytes) { return reinterpret_cast<uintptr_t>(ptr) % bytes == 0; }

// [k_hole, k_valid, A_hole, A_valid] (double, on the device) from a pre-pass over the mask.
at::Tensor mask_areas(const at::Tensor& mask, bool mask_is_hole, int64_t N, int64_t C, int64_t numel,
                      double weight_hole, double weight_valid, double eps) {
  const int64_t planes_n = distinct_planes(mask, 0);
  const int64_t planes_c = distinct_planes(mask, 1);
  const int64_t HW = mask.size(2) * mask.size(3);
  const int64_t total = numel > 0 ? planes_n * planes_c * HW : 0;  // an empty batch reads no mask (its data may be null)
  const auto stream = at::cuda::getCurrentCUDAStream();
  const auto dopts = mask.options().dtype(at::kDouble);
  at::Tensor coef = at::empty({4}, dopts);
  const int64_t blocks = total > 0 ? grid_for(HW) : 0;
  at::Tensor partials = at::empty({std::max<int64_t>(blocks, 1)}, dopts);
  if (blocks > 0) {
    auto launch = [&](auto typed) {
      using mask_t = std::remove_cv_t<std::remove_pointer_t<decltype(typed)>>;
      area_kernel<mask_t><<<blocks, kThreads, 0, stream>>>(
          reinterpret_cast<const mask_t*>(mask.const_data_ptr()), planes_n, planes_c, HW, bstride(mask, 0),
          bstride(mask, 1), partials.mutable_data_ptr<double>());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    };
    if (is_binary_mask(mask.scalar_type())) {
      launch(static_cast<const uint8_t*>(nullptr));
    } else {
      AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, mask.scalar_type(), "masked_error_area_cuda",
                                      [&] { launch(static_cast<const scalar_t*>(nullptr)); });
    }
  }
  FinishParams fp{};
  fp.P = blocks;
  fp.scale = numel > 0 ? static_cast<double>((N / planes_n) * (C / planes_c)) : 0.0;
  fp.total = static_cast<double>(numel);
  fp.eps = eps;
  fp.weight_hole = weight_hole;
  fp.weight_valid = weight_valid;
  fp.is_hole = mask_is_hole;
  finish_kernel<kFinishArea, 1, double, double><<<1, kFinishThreads, 0, stream>>>(
      partials.const_data_ptr<double>(), coef.mutable_data_ptr<double>(), nullptr, fp);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return coef;
}

// Runs the main kernel; returns (partials (4 x P, acc dtype), P).
template <typename scalar_t>
std::tuple<at::Tensor, int64_t> run_main(const Prepared& in, MainParams mp, const at::Tensor* coef,
                                         at::Tensor* grad) {
  using acc_t = at::opmath_type<scalar_t>;
  const at::Tensor& pred = in.pred;
  const at::Tensor& target = in.target;
  mp.N = pred.size(0);
  mp.C = pred.size(1);
  mp.HW = pred.size(2) * pred.size(3);
  mp.p_sn = pred.stride(0);
  mp.p_sc = pred.stride(1);
  mp.t_sn = target.stride(0);
  mp.t_sc = target.stride(1);
  mp.m_sn = in.mask ? bstride(*in.mask, 0) : 0;
  mp.m_sc = in.mask ? bstride(*in.mask, 1) : 0;
  mp.mask_bcast_c = in.mask ? mp.m_sc == 0 : true;
  mp.coef_from_device = coef != nullptr;
  constexpr int kVec = 16 / sizeof(scalar_t);
  const int64_t extent = in.channels_last ? mp.C * mp.HW : mp.HW;  // elements per work-item row
  const scalar_t* p = pred.const_data_ptr<scalar_t>();
  const scalar_t* t = target.const_data_ptr<scalar_t>();
  using grad_t = grad_type<scalar_t>;
  grad_t* g = grad ? grad->mutable_data_ptr<grad_t>() : nullptr;
  bool vec = extent % kVec == 0 && aligned(p, 16) && aligned(t, 16) &&
             (g == nullptr || aligned(g, sizeof(Vec<grad_t, kVec>))) &&
             mp.p_sn % kVec == 0 && mp.t_sn % kVec == 0;
  if (!in.channels_last) {
    vec = vec && mp.p_sc % kVec == 0 && mp.t_sc % kVec == 0;
    if (in.mask) {
      const int64_t mbytes = in.mask->element_size();
      vec = vec && aligned(in.mask->const_data_ptr(), kVec * mbytes) && mp.m_sn % kVec == 0 && mp.m_sc % kVec == 0;
    }
  }
  const int V = vec ? kVec : 1;
  mp.vectors = extent / V;
  const int64_t items = mp.N * mp.vectors;
  const int64_t blocks = items > 0 ? grid_for(items) : 0;
  at::Tensor partials = at::empty({4, std::max<int64_t>(blocks, 1)},
                                  pred.options().dtype(c10::CppTypeToScalarType<acc_t>::value));
  if (blocks == 0) return {partials, 0};
  const auto stream = at::cuda::getCurrentCUDAStream();
  const double* cptr = coef ? coef->const_data_ptr<double>() : nullptr;
  acc_t* part = partials.mutable_data_ptr<acc_t>();
  auto launch = [&](auto typed) {
    using mask_t = std::remove_cv_t<std::remove_pointer_t<decltype(typed)>>;
    const mask_t* m = nullptr;
    if constexpr (!std::is_same_v<mask_t, NoMask>) m = reinterpret_cast<const mask_t*>(in.mask->const_data_ptr());
    auto go = [&](auto cl_tag, auto vec_tag) {
      constexpr bool CL = decltype(cl_tag)::value;
      constexpr int VV = decltype(vec_tag)::value;
      main_kernel<scalar_t, mask_t, CL, VV><<<blocks, kThreads, 0, stream>>>(p, t, m, g, part, cptr, mp);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    };
    auto with_vec = [&](auto cl_tag) {
      if (V == kVec) go(cl_tag, std::integral_constant<int, kVec>{});
      else go(cl_tag, std::integral_constant<int, 1>{});
    };
    if (in.channels_last) with_vec(std::true_type{});
    else with_vec(std::false_type{});
  };
  if (!in.mask) {
    launch(static_cast<const NoMask*>(nullptr));
  } else if (is_binary_mask(in.mask->scalar_type())) {
    launch(static_cast<const uint8_t*>(nullptr));
  } else {
    launch(static_cast<const scalar_t*>(nullptr));
  }
  return {partials, blocks};
}

std::tuple<at::Tensor, at::Tensor> masked_error_cuda(
    const at::Tensor& pred_in, const at::Tensor& target_in, const c10::optional<at::Tensor>& mask_in,
    bool mask_is_hole, int64_t loss, double charbonnier_eps, double weight_hole, double weight_valid,
    int64_t normalize, double eps, bool compute_grad) {
  const char* op = "inpaint_fast::masked_error";
  check_tensors(pred_in, target_in, mask_in, op);
  check_options(loss, charbonnier_eps, normalize, eps, op);
  const c10::cuda::CUDAGuard guard(pred_in.device());
  const Prepared in = prepare(pred_in, target_in, mask_in);
  const at::Tensor& pred = in.pred;
  const int64_t numel = pred.numel();
  const auto grad_options = pred.options().dtype(grad_dtype(pred.scalar_type()));
  at::Tensor grad = compute_grad
      ? at::empty(pred.sizes(), grad_options,
                  in.channels_last ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous)
      : at::empty({0}, grad_options);

  MainParams mp{};
  mp.a = mask_is_hole ? 1.0 : 0.0;
  mp.b = mask_is_hole ? -1.0 : 1.0;
  mp.loss = loss;
  mp.stats = false;
  mp.charbonnier_eps2 = charbonnier_eps * charbonnier_eps;
  double k_hole = weight_hole, k_valid = weight_valid;
  at::Tensor coef;
  if (normalize == kNormalizeMask) {
    if (in.mask) {
      coef = mask_areas(*in.mask, mask_is_hole, pred.size(0), pred.size(1), numel, weight_hole, weight_valid, eps);
    } else {  // everything known: A_valid = numel, A_hole = 0
      k_valid /= std::max(static_cast<double>(numel), eps);
    }
  } else {
    if (in.mask) check_mask_values(*in.mask, mask_is_hole);  // no area pass to check it in
    if (normalize == kNormalizeAll) {
      k_hole /= std::max<double>(numel, 1);
      k_valid /= std::max<double>(numel, 1);
    }
  }
  if (!in.mask) k_hole = 0.0;  // no hole term (not weight_hole / max(0, eps), which is NaN for eps = 0)
  mp.k_hole = k_hole;
  mp.k_valid = k_valid;
  at::Tensor result;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, pred.scalar_type(), "masked_error_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    auto [partials, P] = run_main<scalar_t>(in, mp, coef.defined() ? &coef : nullptr, compute_grad ? &grad : nullptr);
    result = at::empty({}, pred.options().dtype(c10::CppTypeToScalarType<acc_t>::value));
    FinishParams fp{};
    fp.P = P;
    fp.k_hole = k_hole;
    fp.k_valid = k_valid;
    fp.coef_from_device = coef.defined();
    finish_kernel<kFinishLoss, 2, acc_t, acc_t><<<1, kFinishThreads, 0, at::cuda::getCurrentCUDAStream()>>>(
        partials.const_data_ptr<acc_t>(), coef.defined() ? coef.mutable_data_ptr<double>() : nullptr,
        result.mutable_data_ptr<acc_t>(), fp);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return {result, grad};
}

at::Tensor masked_error_stats_cuda(const at::Tensor& pred_in, const at::Tensor& target_in,
                                   const c10::optional<at::Tensor>& mask_in, bool mask_is_hole) {
  check_tensors(pred_in, target_in, mask_in, "inpaint_fast::masked_error_stats");
  const c10::cuda::CUDAGuard guard(pred_in.device());
  const Prepared in = prepare(pred_in, target_in, mask_in);
  const at::Tensor& pred = in.pred;
  const int64_t numel = pred.numel();
  at::Tensor coef;
  if (in.mask) coef = mask_areas(*in.mask, mask_is_hole, pred.size(0), pred.size(1), numel, 0.0, 0.0, 1.0);
  MainParams mp{};
  mp.a = mask_is_hole ? 1.0 : 0.0;
  mp.b = mask_is_hole ? -1.0 : 1.0;
  mp.stats = true;
  at::Tensor result;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, pred.scalar_type(), "masked_error_stats_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    auto [partials, P] = run_main<scalar_t>(in, mp, nullptr, nullptr);
    result = at::empty({6}, pred.options().dtype(c10::CppTypeToScalarType<acc_t>::value));
    FinishParams fp{};
    fp.P = P;
    fp.total = static_cast<double>(numel);
    fp.has_mask = in.mask.has_value();
    finish_kernel<kFinishStats, 4, acc_t, acc_t><<<1, kFinishThreads, 0, at::cuda::getCurrentCUDAStream()>>>(
        partials.const_data_ptr<acc_t>(), coef.defined() ? coef.mutable_data_ptr<double>() : nullptr,
        result.mutable_data_ptr<acc_t>(), fp);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return result;
}

}  // namespace

TORCH_LIBRARY_IMPL(inpaint_fast, CUDA, m) {
  m.impl("masked_error", &masked_error_cuda);
  m.impl("masked_error_stats", &masked_error_stats_cuda);
}

}  // namespace inpaint_fast
