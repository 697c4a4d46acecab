// CUDA kernel of inpaint_fast::masked_tv (schema and semantics: csrc/ops/masked_tv.cpp; the CPU
// kernel ops/cpu/masked_tv_kernel.cpp is the model).
//
// Launches (all on the current stream, no host sync, CUDA-graph safe):
//  1. (normalize = 'mask' with a mask region only) area_kernel: a pre-pass over the MASK alone.
//     Each block walks tiles (TILE_H rows x blockDim.x columns) of the mask's own (N|1, C|1) planes,
//     derives the region weights r and sums the pair weights wv = r(i,j) r(i+1,j), wh = r(i,j) r(i,j+1)
//     (double), block-reduces them in a fixed tree and writes its two partials.
//  2. scales_kernel (one block): sums the area partials in a fixed order and writes the two
//     normalisers sv, sh (double) to device memory: 1 / max(area * copies, eps) ('mask'), or the
//     host-computed 1 / pair count ('all') / 1 ('none'); 0 for a direction without pairs.
//  3. tv_kernel: the stencil pass. A tile is (n, c, a block of TILE_H rows, blockDim.x columns);
//     each thread owns one column and walks down the rows, keeping x(i-1), x(i), x(i+1) and
//     r(i-1), r(i), r(i+1) of its column in registers (each image row is read from memory once per
//     tile; the horizontal neighbours x(i, j +- 1) are the neighbouring threads' loads of the same
//     instruction, served by L1; r(i, j +- 1) comes by warp shuffle, the warp's edge lanes compute
//     it). The vertical halo (rows i0 - 1 and i1) is read by the tile itself. Per pixel it adds
//     sv wv e(dv) + sh wh e(dh) and writes
//       g = gv wv(i-1) s(x(i) - x(i-1)) - gv wv(i) s(x(i+1) - x(i))
//         + gh wh(j-1) s(x(j) - x(j-1)) - gh wh(j) s(x(j+1) - x(j)),
//     s(d) = sign(d) (p = 1, sign(0) = 0) or d (p = 2, gv = 2 sv, gh = 2 sh).
//     Blocks take tiles grid-stride (a fixed grid for a given device and shape); each block writes
//     one loss partial (double), block-reduced in a fixed tree.
//  4. finish_kernel (one block): sums the loss partials in a fixed order into the 0-dim loss.
// Determinism: no atomics; every sum has a fixed order for a given device and shape.
//
// Layouts: img, mask and the gradient are addressed through their strides (int64 offsets): NCHW,
// channels_last, slices and expanded (stride-0) masks are read in place, nothing is copied. The
// gradient's memory format is the CPU kernel's (and the fake kernel's): channels_last when img is
// channels_last with 2 to 7 channels and a mask shared by the channels, NCHW-contiguous otherwise;
// its dtype is float32 for float16 images, else theirs. bool masks are read as uint8; bool/uint8
// masks are binary (any non-zero value is 1). Accumulation in float (double for float64 images).

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

#include "ops/masked_tv.h"

namespace inpaint_fast {
namespace {

using namespace masked_tv_host;  // Region, the checks, the layout rule

constexpr int kThreads = 256;  // threads (= columns) of a tile
constexpr int kTileH = 16;     // rows of a tile
constexpr int kWarps = kThreads / 32;
constexpr int kFinishThreads = 512;

struct MaskView {
  int64_t H, W;
  int64_t sh, sw;  // element strides of the mask's rows and columns
  int region;
  bool flip;  // region weight = 1 - mask (known/hole) or the hole = 1 - mask (hole_dilated)
};

// The mask's weight (mask_weight) at (i, j), or 1 - it when v.flip.
template <typename mask_t, typename acc_t>
__device__ __forceinline__ acc_t mask_value(const mask_t* __restrict__ m, const MaskView& v, int64_t i, int64_t j) {
  const acc_t x = mask_weight<acc_t>(m[i * v.sh + j * v.sw]);
  return v.flip ? acc_t(1) - x : x;
}

// The region weight r(i, j) of a pixel inside the image; m is the mask plane (unused for 'all').
template <typename mask_t, typename acc_t>
__device__ __forceinline__ acc_t region_at(const mask_t* __restrict__ m, const MaskView& v, int64_t i, int64_t j) {
  if (v.region == kRegionAll) return acc_t(1);
  if (v.region != kRegionHoleDilated) return mask_value<mask_t, acc_t>(m, v, i, j);
  // hole_dilated: the max of the hole over the 3x3 neighbourhood inside the image
  const int64_t i0 = i > 0 ? i - 1 : 0, i1 = i + 1 < v.H ? i + 1 : i;
  const int64_t j0 = j > 0 ? j - 1 : 0, j1 = j + 1 < v.W ? j + 1 : j;
  acc_t r = mask_value<mask_t, acc_t>(m, v, i, j);
  for (int64_t a = i0; a <= i1; ++a) {
    for (int64_t b = j0; b <= j1; ++b) r = ::max(r, mask_value<mask_t, acc_t>(m, v, a, b));
  }
  return r;
}

template <int P, typename acc_t>
__device__ __forceinline__ acc_t err(acc_t d) {
  if constexpr (P == 1) {
    return d < acc_t(0) ? -d : d;
  } else {
    return d * d;
  }
}

template <int P, typename acc_t>
__device__ __forceinline__ acc_t slope(acc_t d) {  // d e / d d, without the factor 2 of p = 2
  if constexpr (P == 1) {
    return d > acc_t(0) ? acc_t(1) : (d < acc_t(0) ? acc_t(-1) : acc_t(0));
  } else {
    return d;
  }
}

// Sum over the block in a fixed tree (warp shuffles, then the warps' sums in order by warp 0);
// the result is valid in thread 0. `shared` holds kWarps doubles.
__device__ __forceinline__ double block_sum(double v, double* shared) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  __syncthreads();  // shared may still be read from a previous call
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  double total = 0;
  if (threadIdx.x == 0) {
    for (int w = 0; w < static_cast<int>(blockDim.x >> 5); ++w) total += shared[w];
  }
  return total;
}

struct Tiles {
  int64_t col_tiles, row_tiles, planes, total;
};

// ------------------------------------------------------------------------------- area pre-pass

template <typename mask_t, typename acc_t>
__global__ void __launch_bounds__(kThreads) area_kernel(const mask_t* __restrict__ mask, MaskView v, Tiles t,
                                                          int64_t mask_c, int64_t msn, int64_t msc,
                                                          double* __restrict__ partials) {
  __shared__ double shared[kWarps];
  double sv = 0, sh = 0;
  const int lane = threadIdx.x & 31;
  for (int64_t tile = blockIdx.x; tile < t.total; tile += gridDim.x) {
    const int64_t ct = tile % t.col_tiles;
    const int64_t rt = (tile / t.col_tiles) % t.row_tiles;
    const int64_t plane = tile / (t.col_tiles * t.row_tiles);
    const mask_t* m = mask + (plane / mask_c) * msn + (plane % mask_c) * msc;
    const int64_t j = ct * blockDim.x + threadIdx.x;
    const bool col = j < v.W;
    const int64_t i0 = rt * kTileH, i1 = ::min(v.H, i0 + kTileH);
    acc_t rc = col ? region_at<mask_t, acc_t>(m, v, i0, j) : acc_t(0);
    acc_t av = 0, ah = 0;
    for (int64_t i = i0; i < i1; ++i) {
      const acc_t rd = col && i + 1 < v.H ? region_at<mask_t, acc_t>(m, v, i + 1, j) : acc_t(0);
      acc_t rr = __shfl_down_sync(0xffffffffu, rc, 1);
      if (lane == 31) rr = col && j + 1 < v.W ? region_at<mask_t, acc_t>(m, v, i, j + 1) : acc_t(0);
      if (col && i + 1 < v.H) av += rc * rd;
      if (col && j + 1 < v.W) ah += rc * rr;
      rc = rd;
    }
    sv += static_cast<double>(av);
    sh += static_cast<double>(ah);
  }
  const double tv = block_sum(sv, shared);
  const double th = block_sum(sh, shared);
  if (threadIdx.x == 0) {
    partials[2 * blockIdx.x] = tv;
    partials[2 * blockIdx.x + 1] = th;
  }
}

// One block: the normalisers (sv, sh). With partials (normalize 'mask' with a mask region) from the
// areas, else the host's values.
__global__ void __launch_bounds__(kFinishThreads) scales_kernel(const double* __restrict__ partials, int64_t count,
                                                                double copies, double eps, double host_sv,
                                                                double host_sh, bool has_v, bool has_h,
                                                                double* __restrict__ scale) {
  __shared__ double shared[kFinishThreads / 32];
  double av = 0, ah = 0;
  if (partials != nullptr) {
    for (int64_t k = threadIdx.x; k < count; k += blockDim.x) {
      av += partials[2 * k];
      ah += partials[2 * k + 1];
    }
  }
  const double tv = block_sum(av, shared);
  const double th = block_sum(ah, shared);
  if (threadIdx.x == 0) {
    double sv = host_sv, sh = host_sh;
    if (partials != nullptr) {
      sv = 1.0 / ::max(tv * copies, eps);
      sh = 1.0 / ::max(th * copies, eps);
    }
    scale[0] = has_v ? sv : 0.0;  // a direction without pairs contributes 0 (never 0 * inf)
    scale[1] = has_h ? sh : 0.0;
  }
}

// ------------------------------------------------------------------------------- stencil pass

struct ImageView {
  int64_t C, H, W;
  int64_t xsn, xsc, xsh, xsw;  // img strides
  int64_t gsn, gsc, gsh, gsw;  // gradient strides
  int64_t msn, msc;            // mask strides of N and C (0 when broadcast)
};

template <typename scalar_t, typename mask_t, typename acc_t, int P>
__global__ void __launch_bounds__(kThreads) tv_kernel(const scalar_t* __restrict__ img, const mask_t* __restrict__ mask,
                                                        grad_type<scalar_t>* __restrict__ grad, ImageView g, MaskView v,
                                                        Tiles t,
                                                        const double* __restrict__ scale,
                                                        double* __restrict__ partials) {
  __shared__ double shared[kWarps];
  const acc_t sv = static_cast<acc_t>(scale[0]);
  const acc_t sh = static_cast<acc_t>(scale[1]);
  const acc_t gv = P == 2 ? static_cast<acc_t>(2.0 * scale[0]) : sv;
  const acc_t gh = P == 2 ? static_cast<acc_t>(2.0 * scale[1]) : sh;
  const int lane = threadIdx.x & 31;
  const int64_t H = g.H, W = g.W;
  double total = 0;
  for (int64_t tile = blockIdx.x; tile < t.total; tile += gridDim.x) {
    const int64_t ct = tile % t.col_tiles;
    const int64_t rt = (tile / t.col_tiles) % t.row_tiles;
    const int64_t plane = tile / (t.col_tiles * t.row_tiles);  // n * C + c
    const int64_t n = plane / g.C, c = plane % g.C;
    const scalar_t* x = img + n * g.xsn + c * g.xsc;
    grad_type<scalar_t>* out = grad == nullptr ? nullptr : grad + n * g.gsn + c * g.gsc;
    const mask_t* m = mask == nullptr ? nullptr : mask + n * g.msn + c * g.msc;
    const int64_t j = ct * blockDim.x + threadIdx.x;
    const bool col = j < W;
    const bool has_l = col && j > 0, has_r = col && j + 1 < W;
    const int64_t i0 = rt * kTileH, i1 = ::min(H, i0 + kTileH);
    const scalar_t* xj = x + j * g.xsw;
    // Rolling column state: rows i-1, i of x and r (zeros outside the image / the tile's column).
    acc_t xc = col ? static_cast<acc_t>(xj[i0 * g.xsh]) : acc_t(0);
    acc_t xu = col && i0 > 0 ? static_cast<acc_t>(xj[(i0 - 1) * g.xsh]) : acc_t(0);
    acc_t rc = col ? region_at<mask_t, acc_t>(m, v, i0, j) : acc_t(0);
    acc_t ru = col && i0 > 0 ? region_at<mask_t, acc_t>(m, v, i0 - 1, j) : acc_t(0);
    acc_t acc = 0;
#pragma unroll 4
    for (int64_t i = i0; i < i1; ++i) {
      const bool has_d = col && i + 1 < H;
      const acc_t xd = has_d ? static_cast<acc_t>(xj[(i + 1) * g.xsh]) : acc_t(0);
      const acc_t rd = has_d ? region_at<mask_t, acc_t>(m, v, i + 1, j) : acc_t(0);
      const acc_t xl = has_l ? static_cast<acc_t>(xj[i * g.xsh - g.xsw]) : acc_t(0);
      const acc_t xr = has_r ? static_cast<acc_t>(xj[i * g.xsh + g.xsw]) : acc_t(0);
      // r of the left / right neighbours: the neighbouring lanes' rc; the warp's edge lanes compute it.
      acc_t rl = __shfl_up_sync(0xffffffffu, rc, 1);
      acc_t rr = __shfl_down_sync(0xffffffffu, rc, 1);
      if (lane == 0) rl = has_l ? region_at<mask_t, acc_t>(m, v, i, j - 1) : acc_t(0);
      if (lane == 31) rr = has_r ? region_at<mask_t, acc_t>(m, v, i, j + 1) : acc_t(0);
      const acc_t wd = has_d ? rc * rd : acc_t(0);
      const acc_t wr = has_r ? rc * rr : acc_t(0);
      // A pair that leaves the image does not exist: its difference is exactly 0, not one against
      // the zero stand-in loaded for the missing neighbour (its weight 0 times -inf would be NaN).
      const acc_t dd = has_d ? xd - xc : acc_t(0), dr = has_r ? xr - xc : acc_t(0);
      acc += sv * (wd * err<P>(dd)) + sh * (wr * err<P>(dr));
      if (out != nullptr && col) {
        const acc_t wu = i > 0 ? ru * rc : acc_t(0);
        const acc_t wl = has_l ? rl * rc : acc_t(0);
        const acc_t du = i > 0 ? xc - xu : acc_t(0), dl = has_l ? xc - xl : acc_t(0);
        const acc_t gr = (gv * (wu * slope<P>(du)) - gv * (wd * slope<P>(dd))) +
                         (gh * (wl * slope<P>(dl)) - gh * (wr * slope<P>(dr)));
        out[i * g.gsh + j * g.gsw] = static_cast<grad_type<scalar_t>>(gr);
      }
      xu = xc;
      xc = xd;
      ru = rc;
      rc = rd;
    }
    total += static_cast<double>(acc);
  }
  const double sum = block_sum(total, shared);
  if (threadIdx.x == 0) partials[blockIdx.x] = sum;
}

template <typename out_t>
__global__ void __launch_bounds__(kFinishThreads) finish_kernel(const double* __restrict__ partials, int64_t count,
                                                                out_t* __restrict__ loss) {
  __shared__ double shared[kFinishThreads / 32];
  double s = 0;
  for (int64_t k = threadIdx.x; k < count; k += blockDim.x) s += partials[k];
  const double total = block_sum(s, shared);
  if (threadIdx.x == 0) loss[0] = static_cast<out_t>(total);
}

// ------------------------------------------------------------------------------- host side

Tiles make_tiles(int64_t planes, int64_t H, int64_t W) {
  Tiles t{};
  t.col_tiles = (W + kThreads - 1) / kThreads;
  t.row_tiles = (H + kTileH - 1) / kTileH;
  t.planes = planes;
  t.total = planes * t.col_tiles * t.row_tiles;
  return t;
}

// A fixed grid for a device and a shape: enough blocks to fill the GPU, tiles taken grid-stride.
int64_t grid_for(const Tiles& t) {
  const int sms = at::cuda::getCurrentDeviceProperties()->multiProcessorCount;
  return std::max<int64_t>(1, std::min<int64_t>(t.total, static_cast<int64_t>(sms) * 16));
}

std::tuple<at::Tensor, at::Tensor> masked_tv_cuda(const at::Tensor& img, const std::optional<at::Tensor>& mask_in,
                                                  bool mask_is_hole, int64_t region, int64_t p, int64_t normalize,
                                                  double eps, bool compute_grad) {
  check_inputs(img, mask_in, region, p, normalize, eps);
  TORCH_CHECK(img.is_cuda(), "inpaint_fast::masked_tv: the CUDA kernel got a ", img.device(), " tensor");
  const c10::cuda::CUDAGuard guard(img.device());
  if (mask_in) check_mask_values(*mask_in, mask_is_hole);  // a device-side assert, no sync
  const bool use_mask = region != kRegionAll;
  const bool nhwc = native_channels_last(img, use_mask ? mask_in : std::nullopt);

  const int64_t N = img.size(0), C = img.size(1), H = img.size(2), W = img.size(3);
  const auto loss_dtype = img.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  const auto grad_format = nhwc ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
  const auto grad_options = img.options().dtype(grad_dtype(img.scalar_type()));
  at::Tensor grad = compute_grad ? at::empty(img.sizes(), grad_options.memory_format(grad_format))
                                 : at::empty({0}, grad_options);
  if (img.numel() == 0) return {at::zeros({}, img.options().dtype(loss_dtype)), grad};
  at::Tensor loss = at::empty({}, img.options().dtype(loss_dtype));

  at::Tensor mask;
  if (use_mask) mask = mask_in->scalar_type() == at::kBool ? mask_in->view(at::kByte) : *mask_in;
  MaskView v{};
  v.H = H;
  v.W = W;
  v.sh = use_mask ? mask.stride(2) : 0;
  v.sw = use_mask ? mask.stride(3) : 0;
  v.region = static_cast<int>(region);
  // 'known': r = m; 'hole': r = 1 - m; 'hole_dilated' dilates the hole h = 1 - m. The tensor holds
  // m, or h when mask_is_hole.
  v.flip = region == kRegionHoleDilated ? !mask_is_hole : ((region == kRegionHole) != mask_is_hole);

  ImageView g{};
  g.C = C;
  g.H = H;
  g.W = W;
  g.xsn = img.stride(0);
  g.xsc = img.stride(1);
  g.xsh = img.stride(2);
  g.xsw = img.stride(3);
  if (compute_grad) {
    g.gsn = grad.stride(0);
    g.gsc = grad.stride(1);
    g.gsh = grad.stride(2);
    g.gsw = grad.stride(3);
  }
  g.msn = use_mask ? bstride(mask, 0) : 0;
  g.msc = use_mask ? bstride(mask, 1) : 0;

  const auto stream = at::cuda::getCurrentCUDAStream();
  const auto f64 = img.options().dtype(at::kDouble);
  at::Tensor scale = at::empty({2}, f64);
  const Tiles tiles = make_tiles(N * C, H, W);
  const int64_t grid = grid_for(tiles);
  at::Tensor partials = at::empty({grid}, f64);

  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, img.scalar_type(), "masked_tv_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    auto run = [&](const auto* mask_ptr) {
      using mask_t = std::remove_cv_t<std::remove_pointer_t<decltype(mask_ptr)>>;
      // The normalisers, on the device.
      double host_sv = 1, host_sh = 1;
      at::Tensor area_partials;
      int64_t area_count = 0;
      double copies = 1;
      if (normalize == kNormalizeMask && use_mask) {
        const int64_t mask_n = distinct_planes(mask, 0), mask_c = distinct_planes(mask, 1);
        const Tiles area_tiles = make_tiles(mask_n * mask_c, H, W);
        area_count = grid_for(area_tiles);
        area_partials = at::empty({area_count, 2}, f64);
        copies = static_cast<double>(N / mask_n) * static_cast<double>(C / mask_c);
        area_kernel<mask_t, acc_t><<<static_cast<unsigned>(area_count), kThreads, 0, stream>>>(
            mask_ptr, v, area_tiles, mask_c, g.msn, g.msc, area_partials.mutable_data_ptr<double>());
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      } else if (normalize != kNormalizeSum) {  // 'all', and 'mask' for region 'all' (areas = pair counts)
        const double cv = static_cast<double>(N * C * (H - 1) * W), ch = static_cast<double>(N * C * H * (W - 1));
        host_sv = H > 1 ? 1.0 / (normalize == kNormalizeMask ? std::max(cv, eps) : cv) : 0.0;
        host_sh = W > 1 ? 1.0 / (normalize == kNormalizeMask ? std::max(ch, eps) : ch) : 0.0;
      }
      scales_kernel<<<1, kFinishThreads, 0, stream>>>(
          area_count > 0 ? area_partials.const_data_ptr<double>() : nullptr, area_count, copies, eps, host_sv,
          host_sh, H > 1, W > 1, scale.mutable_data_ptr<double>());
      C10_CUDA_KERNEL_LAUNCH_CHECK();

      const scalar_t* x = img.const_data_ptr<scalar_t>();
      grad_type<scalar_t>* out = compute_grad ? grad.mutable_data_ptr<grad_type<scalar_t>>() : nullptr;
      if (p == 1) {
        tv_kernel<scalar_t, mask_t, acc_t, 1><<<static_cast<unsigned>(grid), kThreads, 0, stream>>>(
            x, mask_ptr, out, g, v, tiles, scale.const_data_ptr<double>(), partials.mutable_data_ptr<double>());
      } else {
        tv_kernel<scalar_t, mask_t, acc_t, 2><<<static_cast<unsigned>(grid), kThreads, 0, stream>>>(
            x, mask_ptr, out, g, v, tiles, scale.const_data_ptr<double>(), partials.mutable_data_ptr<double>());
      }
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    };
    if (!use_mask) {
      run(static_cast<const scalar_t*>(nullptr));
    } else if (mask.scalar_type() == at::kByte) {
      run(static_cast<const uint8_t*>(mask.const_data_ptr()));
    } else {
      run(mask.const_data_ptr<scalar_t>());
    }
  });
  if (loss_dtype == at::kDouble) {
    finish_kernel<double><<<1, kFinishThreads, 0, stream>>>(partials.const_data_ptr<double>(), grid,
                                                            loss.mutable_data_ptr<double>());
  } else {
    finish_kernel<float><<<1, kFinishThreads, 0, stream>>>(partials.const_data_ptr<double>(), grid,
                                                           loss.mutable_data_ptr<float>());
  }
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return {loss, grad};
}

}  // namespace

TORCH_LIBRARY_IMPL(inpaint_fast, CUDA, m) {
  m.impl("masked_tv", &masked_tv_cuda);
}

}  // namespace inpaint_fast
