// CPU kernels of inpaint_fast::q_sample, q_sample_backward and repaint_blend (schemas and semantics:
// csrc/ops/q_sample.cpp).
//
// One pass each: a pre-pass over t (N entries) checks every timestep and takes the sample's two
// coefficients sqrt(abar), sqrt(1 - abar) in float64; then every element of the images is read once
// and its output written once. Elementwise, so every thread count gives bitwise the same result;
// the work units are fixed runs of elements that depend on the shape only, so every element is
// also computed by the same code path (vector body or tail) whatever the thread count.
//
// Layouts, read in place:
// - flat channels_last: every image channels_last-dense (any batch stride, C > 1, H * W > 1): one
//   run of H * W * C elements per sample; the output is channels_last. A mask (N|1, C|1, H, W) is
//   gathered per unit, repeated per channel, into a small buffer (as masked_error does).
// - flat NCHW (no mask): every image dense in C, H, W (any batch stride): one run of C * H * W.
// - planes: every image has contiguous (H, W) planes (slices along N and C, crops along H): one
//   run per (n, c) plane; the mask's plane is read directly. The output is contiguous.
// An image that fits none of these is copied with .contiguous() (then planes). The hot loops are
// compiled for x86-64-v3 and for the baseline ISA and chosen at run time (common/cpu_dispatch.h; the
// x86-64-v3 variant also runs at the AVX-512 level). The input checks: ops/q_sample.h.

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <c10/util/Exception.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <tuple>
#include <type_traits>
#include <vector>

#include "common/alloc.h"
#include "common/cpu_dispatch.h"
#include "common/layout.h"
#include "ops/q_sample.h"

#if INPAINT_FAST_X86_VARIANTS
#include <immintrin.h>
#endif

namespace inpaint_fast {
namespace {

constexpr int64_t kSegment = 16384;  // elements per work unit

// ---------------------------------------------------------------------------------------------
// Hot loops: one contiguous run of one sample, whose coefficients are a = sqrt(abar), b = sqrt(1 - abar).

template <typename scalar_t, typename acc_t>
INPAINT_FAST_INLINE void q_run(const scalar_t* __restrict__ x, const scalar_t* __restrict__ z,
                               scalar_t* __restrict__ out, int64_t len, acc_t a, acc_t b) {
  for (int64_t j = 0; j < len; ++j) {
    out[j] = static_cast<scalar_t>(a * static_cast<acc_t>(x[j]) + b * static_cast<acc_t>(z[j]));
  }
}

template <typename scalar_t, typename acc_t, bool GX, bool GZ>
INPAINT_FAST_INLINE void back_run(const scalar_t* __restrict__ g, scalar_t* __restrict__ gx,
                                  scalar_t* __restrict__ gz, int64_t len, acc_t a, acc_t b) {
  for (int64_t j = 0; j < len; ++j) {
    const acc_t v = static_cast<acc_t>(g[j]);
    if constexpr (GX) gx[j] = static_cast<scalar_t>(a * v);
    if constexpr (GZ) gz[j] = static_cast<scalar_t>(b * v);
  }
}

// known ? q : p as a bitwise select: a branch-free form that gcc vectorises (it does not if-convert the
// conditional expression on floats), and exact: the chosen value's bits, whatever the other holds.
template <typename scalar_t>
INPAINT_FAST_INLINE scalar_t pick(bool known, scalar_t q, scalar_t p) {
  using bits_t = std::conditional_t<sizeof(scalar_t) == 8, uint64_t,
                                    std::conditional_t<sizeof(scalar_t) == 4, uint32_t, uint16_t>>;
  static_assert(sizeof(bits_t) == sizeof(scalar_t), "pick: unexpected element size");
  bits_t qb, pb;
  std::memcpy(&qb, &q, sizeof(scalar_t));
  std::memcpy(&pb, &p, sizeof(scalar_t));
  const bits_t sel = static_cast<bits_t>(bits_t(0) - static_cast<bits_t>(known));
  const bits_t r = static_cast<bits_t>((qb & sel) | (pb & static_cast<bits_t>(~sel)));
  scalar_t out;
  std::memcpy(&out, &r, sizeof(scalar_t));
  return out;
}

// Binary mask (uint8_t, bool read as uint8): the known pixels (m != 0, or m == 0 for a hole mask)
// take q, the others x_pred bitwise. Soft mask (scalar_t): v = lo + slope * m, x = v q + (1 - v) p.
template <typename scalar_t, typename mask_t, typename acc_t>
INPAINT_FAST_INLINE void blend_run(const scalar_t* __restrict__ x, const scalar_t* __restrict__ z,
                                   const scalar_t* __restrict__ p, const mask_t* __restrict__ m,
                                   scalar_t* __restrict__ out, int64_t len, acc_t a, acc_t b, bool hole) {
  if constexpr (std::is_same_v<mask_t, uint8_t>) {
    const uint8_t flip = hole ? 1 : 0;
    for (int64_t j = 0; j < len; ++j) {
      const scalar_t q = static_cast<scalar_t>(a * static_cast<acc_t>(x[j]) + b * static_cast<acc_t>(z[j]));
      const bool known = (static_cast<uint8_t>(m[j] != 0) ^ flip) != 0;
      out[j] = pick(known, q, p[j]);
    }
  } else {
    const acc_t lo = hole ? acc_t(1) : acc_t(0);
    const acc_t slope = hole ? acc_t(-1) : acc_t(1);
    for (int64_t j = 0; j < len; ++j) {
      const acc_t q = a * static_cast<acc_t>(x[j]) + b * static_cast<acc_t>(z[j]);
      const acc_t v = lo + slope * static_cast<acc_t>(m[j]);
      out[j] = static_cast<scalar_t>(v * q + (acc_t(1) - v) * static_cast<acc_t>(p[j]));
    }
  }
}

// The two compiled variants of each loop. float16 in the x86-64-v3 variant: without F16C in the
// whole translation unit, c10::Half's conversions stay scalar (~10x slower than float32), so runs of
// float16 are staged through float32 buffers of kChunk elements, converted with the F16C
// instructions (round to nearest even, as c10::Half), and computed by the float32 loop.
#if INPAINT_FAST_X86_VARIANTS
constexpr int64_t kChunk = 512;

INPAINT_FAST_V3_TARGET INPAINT_FAST_INLINE void half_to_float_v3(const c10::Half* src, float* dst, int64_t n) {
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) {
    _mm256_storeu_ps(dst + j, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + j))));
  }
  for (; j < n; ++j) dst[j] = static_cast<float>(src[j]);
}

INPAINT_FAST_V3_TARGET INPAINT_FAST_INLINE void float_to_half_v3(const float* src, c10::Half* dst, int64_t n) {
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + j),
                     _mm256_cvtps_ph(_mm256_loadu_ps(src + j), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  }
  for (; j < n; ++j) dst[j] = static_cast<c10::Half>(src[j]);
}
#endif

template <typename scalar_t, typename acc_t>
INPAINT_FAST_V3_TARGET void q_run_v3(const scalar_t* x, const scalar_t* z, scalar_t* out, int64_t len, acc_t a,
                                     acc_t b) {
#if INPAINT_FAST_X86_VARIANTS
  if constexpr (std::is_same_v<scalar_t, c10::Half>) {
    alignas(32) float xb[kChunk], zb[kChunk], ob[kChunk];
    for (int64_t s = 0; s < len; s += kChunk) {
      const int64_t n = std::min(kChunk, len - s);
      half_to_float_v3(x + s, xb, n);
      half_to_float_v3(z + s, zb, n);
      q_run<float, float>(xb, zb, ob, n, a, b);
      float_to_half_v3(ob, out + s, n);
    }
    return;
  }
#endif
  q_run<scalar_t, acc_t>(x, z, out, len, a, b);
}
template <typename scalar_t, typename acc_t>
void q_run_base(const scalar_t* x, const scalar_t* z, scalar_t* out, int64_t len, acc_t a, acc_t b) {
  q_run<scalar_t, acc_t>(x, z, out, len, a, b);
}

template <typename scalar_t, typename acc_t, bool GX, bool GZ>
INPAINT_FAST_V3_TARGET void back_run_v3(const scalar_t* g, scalar_t* gx, scalar_t* gz, int64_t len, acc_t a,
                                        acc_t b) {
#if INPAINT_FAST_X86_VARIANTS
  if constexpr (std::is_same_v<scalar_t, c10::Half>) {
    alignas(32) float gb[kChunk], xb[kChunk], zb[kChunk];
    for (int64_t s = 0; s < len; s += kChunk) {
      const int64_t n = std::min(kChunk, len - s);
      half_to_float_v3(g + s, gb, n);
      back_run<float, float, GX, GZ>(gb, xb, zb, n, a, b);
      if constexpr (GX) float_to_half_v3(xb, gx + s, n);
      if constexpr (GZ) float_to_half_v3(zb, gz + s, n);
    }
    return;
  }
#endif
  back_run<scalar_t, acc_t, GX, GZ>(g, gx, gz, len, a, b);
}
template <typename scalar_t, typename acc_t, bool GX, bool GZ>
void back_run_base(const scalar_t* g, scalar_t* gx, scalar_t* gz, int64_t len, acc_t a, acc_t b) {
  back_run<scalar_t, acc_t, GX, GZ>(g, gx, gz, len, a, b);
}

template <typename scalar_t, typename mask_t, typename acc_t>
INPAINT_FAST_V3_TARGET void blend_run_v3(const scalar_t* x, const scalar_t* z, const scalar_t* p, const mask_t* m,
                                         scalar_t* out, int64_t len, acc_t a, acc_t b, bool hole) {
#if INPAINT_FAST_X86_VARIANTS
  if constexpr (std::is_same_v<scalar_t, c10::Half>) {
    alignas(32) float xb[kChunk], zb[kChunk], pb[kChunk], ob[kChunk], mb[kChunk];
    for (int64_t s = 0; s < len; s += kChunk) {
      const int64_t n = std::min(kChunk, len - s);
      half_to_float_v3(x + s, xb, n);
      half_to_float_v3(z + s, zb, n);
      half_to_float_v3(p + s, pb, n);
      if constexpr (std::is_same_v<mask_t, uint8_t>) {
        blend_run<float, uint8_t, float>(xb, zb, pb, m + s, ob, n, a, b, hole);
      } else {
        half_to_float_v3(m + s, mb, n);
        blend_run<float, float, float>(xb, zb, pb, mb, ob, n, a, b, hole);
      }
      float_to_half_v3(ob, out + s, n);
    }
    return;
  }
#endif
  blend_run<scalar_t, mask_t, acc_t>(x, z, p, m, out, len, a, b, hole);
}
template <typename scalar_t, typename mask_t, typename acc_t>
void blend_run_base(const scalar_t* x, const scalar_t* z, const scalar_t* p, const mask_t* m, scalar_t* out,
                    int64_t len, acc_t a, acc_t b, bool hole) {
  blend_run<scalar_t, mask_t, acc_t>(x, z, p, m, out, len, a, b, hole);
}

// ---------------------------------------------------------------------------------------------
// Coefficients.

// Per sample: a[n] = sqrt(abar[t[n]]), b[n] = sqrt(1 - abar[t[n]]), taken in float64. Checks t.
template <typename acc_t>
void coefficients(const at::Tensor& t_in, const at::Tensor& abar_in, const char* op, std::vector<acc_t>& a,
                  std::vector<acc_t>& b) {
  const at::Tensor t = t_in.scalar_type() == at::kLong ? t_in : t_in.to(at::kLong);
  const at::Tensor abar = abar_in.scalar_type() == at::kDouble ? abar_in : abar_in.to(at::kDouble);
  const int64_t N = t.size(0), T = abar.size(0), ts = t.stride(0), as = abar.stride(0);
  const int64_t* tp = t.const_data_ptr<int64_t>();
  const double* ap = abar.const_data_ptr<double>();
  a.resize(static_cast<size_t>(N));
  b.resize(static_cast<size_t>(N));
  for (int64_t n = 0; n < N; ++n) {
    const int64_t k = tp[n * ts];
    TORCH_CHECK_VALUE(k >= 0 && k < T, op, ": t[", n, "] = ", k, " is out of range [0, ", T,
                      ") of alphas_cumprod");
    const double ab = ap[k * as];
    a[n] = static_cast<acc_t>(std::sqrt(ab));
    b[n] = static_cast<acc_t>(std::sqrt(1.0 - ab));
  }
}

// ---------------------------------------------------------------------------------------------
// Geometry: how work units map to memory.

// A dimension of size 1 may have any stride.
bool stride_is(const at::Tensor& x, int dim, int64_t expected) {
  return x.size(dim) == 1 || x.stride(dim) == expected;
}

bool nchw_dense(const at::Tensor& x) {
  return planes_contiguous(x) && stride_is(x, 1, x.size(2) * x.size(3));
}

bool channels_last_dense(const at::Tensor& x) {
  const int64_t C = x.size(1), W = x.size(3);
  return stride_is(x, 1, 1) && stride_is(x, 3, C) && stride_is(x, 2, W * C);
}

enum class Layout { kPlanes, kFlatNCHW, kFlatChannelsLast };

// Picks the layout for the images (all of one shape) and copies those that fit none.
Layout prepare(std::vector<at::Tensor>& images, bool has_mask) {
  const at::Tensor& x = images[0];
  const bool multi = x.size(1) > 1 && x.size(2) * x.size(3) > 1;
  if (multi && std::all_of(images.begin(), images.end(), channels_last_dense)) return Layout::kFlatChannelsLast;
  if (!has_mask && std::all_of(images.begin(), images.end(), nchw_dense)) return Layout::kFlatNCHW;
  for (at::Tensor& im : images) im = with_contiguous_planes(im);
  if (!has_mask && std::all_of(images.begin(), images.end(), nchw_dense)) return Layout::kFlatNCHW;
  return Layout::kPlanes;
}

struct Unit {
  int64_t row, n, c, start, len;
};

struct Geometry {
  Layout layout;
  int64_t C, HW;
  int64_t rows, per_n, row_len, seg_len, segs;

  int64_t units() const { return rows * segs; }
  // Units per parallel task: at least kSegment elements.
  int64_t grain() const { return std::max<int64_t>(1, kSegment / std::max<int64_t>(1, std::min(row_len, seg_len))); }
  at::MemoryFormat format() const {
    return layout == Layout::kFlatChannelsLast ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
  }
  Unit unit(int64_t u) const {
    Unit s;
    s.row = u / segs;
    s.n = s.row / per_n;
    s.c = s.row % per_n;
    s.start = (u % segs) * seg_len;
    s.len = std::min(seg_len, row_len - s.start);
    return s;
  }
};

Geometry geometry_of(const at::Tensor& x, Layout layout) {
  Geometry g{};
  g.layout = layout;
  const int64_t N = x.size(0);
  g.C = x.size(1);
  g.HW = x.size(2) * x.size(3);
  if (layout == Layout::kPlanes) {
    g.rows = N * g.C;
    g.per_n = g.C;
    g.row_len = g.HW;
    g.seg_len = kSegment;
  } else {
    g.rows = N;
    g.per_n = 1;
    g.row_len = g.C * g.HW;
    g.seg_len = layout == Layout::kFlatChannelsLast ? std::max<int64_t>(1, kSegment / g.C) * g.C : kSegment;
  }
  g.segs = g.row_len == 0 ? 0 : (g.row_len + g.seg_len - 1) / g.seg_len;
  return g;
}

// Start of unit s's run in image x (its own batch and channel strides).
template <typename scalar_t>
INPAINT_FAST_INLINE const scalar_t* run_of(const scalar_t* base, const at::Tensor& x, const Unit& s) {
  return base + s.n * x.stride(0) + s.c * x.stride(1) + s.start;
}

template <typename Fn>
void for_units(const Geometry& geo, const Fn& fn) {
  at::parallel_for(0, geo.units(), geo.grain(), [&](int64_t begin, int64_t end) { fn(begin, end); });
}

// ---------------------------------------------------------------------------------------------

at::Tensor q_sample_cpu(const at::Tensor& x0, const at::Tensor& t, const at::Tensor& noise,
                        const at::Tensor& alphas_cumprod) {
  const char* op = "inpaint_fast::q_sample";
  q_sample_host::check_q_sample_inputs(x0, t, noise, alphas_cumprod);
  std::vector<at::Tensor> images{x0, noise};
  const Layout layout = prepare(images, false);
  const Geometry geo = geometry_of(images[0], layout);
  at::Tensor out = empty_output(x0.sizes(), x0.options(), geo.format());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x0.scalar_type(), "q_sample_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    std::vector<acc_t> a, b;
    coefficients<acc_t>(t, alphas_cumprod, op, a, b);
    const scalar_t* x = images[0].const_data_ptr<scalar_t>();
    const scalar_t* z = images[1].const_data_ptr<scalar_t>();
    scalar_t* o = out.mutable_data_ptr<scalar_t>();
    auto* run = cpu_variant(&q_run_base<scalar_t, acc_t>, &q_run_v3<scalar_t, acc_t>);
    for_units(geo, [&](int64_t begin, int64_t end) {
      for (int64_t u = begin; u < end; ++u) {
        const Unit s = geo.unit(u);
        run(run_of(x, images[0], s), run_of(z, images[1], s), o + s.row * geo.row_len + s.start, s.len, a[s.n],
            b[s.n]);
      }
    });
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor> q_sample_backward_cpu(const at::Tensor& grad, const at::Tensor& t,
                                                         const at::Tensor& alphas_cumprod, bool x0_grad,
                                                         bool noise_grad) {
  const char* op = "inpaint_fast::q_sample_backward";
  q_sample_host::check_q_sample_backward_inputs(grad, t, alphas_cumprod);
  std::vector<at::Tensor> images{grad};
  const Layout layout = prepare(images, false);
  const Geometry geo = geometry_of(images[0], layout);
  auto make = [&](bool wanted) {
    return wanted ? empty_output(grad.sizes(), grad.options(), geo.format()) : at::empty({0}, grad.options());
  };
  at::Tensor gx = make(x0_grad), gz = make(noise_grad);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, grad.scalar_type(), "q_sample_backward_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    std::vector<acc_t> a, b;
    coefficients<acc_t>(t, alphas_cumprod, op, a, b);
    if (!x0_grad && !noise_grad) return;
    const scalar_t* g = images[0].const_data_ptr<scalar_t>();
    scalar_t* ox = x0_grad ? gx.mutable_data_ptr<scalar_t>() : nullptr;
    scalar_t* oz = noise_grad ? gz.mutable_data_ptr<scalar_t>() : nullptr;
    auto go = [&](auto gx_tag, auto gz_tag) {
      constexpr bool GX = decltype(gx_tag)::value, GZ = decltype(gz_tag)::value;
      auto* run = cpu_variant(&back_run_base<scalar_t, acc_t, GX, GZ>, &back_run_v3<scalar_t, acc_t, GX, GZ>);
      for_units(geo, [&](int64_t begin, int64_t end) {
        for (int64_t u = begin; u < end; ++u) {
          const Unit s = geo.unit(u);
          const int64_t off = s.row * geo.row_len + s.start;
          run(run_of(g, images[0], s), GX ? ox + off : nullptr, GZ ? oz + off : nullptr, s.len, a[s.n], b[s.n]);
        }
      });
    };
    if (x0_grad && noise_grad) go(std::true_type{}, std::true_type{});
    else if (x0_grad) go(std::true_type{}, std::false_type{});
    else go(std::false_type{}, std::true_type{});
  });
  return {gx, gz};
}

at::Tensor repaint_blend_cpu(const at::Tensor& x_known, const at::Tensor& noise, const at::Tensor& x_pred,
                             const at::Tensor& mask_in, bool mask_is_hole, const at::Tensor& t,
                             const at::Tensor& alphas_cumprod) {
  const char* op = "inpaint_fast::repaint_blend";
  q_sample_host::check_repaint_blend_inputs(x_known, noise, x_pred, mask_in, t, alphas_cumprod);
  const at::Tensor mask = with_contiguous_planes(mask_in);
  const int64_t m_n = bstride(mask, 0), m_c = bstride(mask, 1);
  std::vector<at::Tensor> images{x_known, noise, x_pred};
  const Layout layout = prepare(images, true);
  const Geometry geo = geometry_of(images[0], layout);
  at::Tensor out = empty_output(x_known.sizes(), x_known.options(), geo.format());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x_known.scalar_type(), "repaint_blend_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    std::vector<acc_t> a, b;
    coefficients<acc_t>(t, alphas_cumprod, op, a, b);
    const scalar_t* x = images[0].const_data_ptr<scalar_t>();
    const scalar_t* z = images[1].const_data_ptr<scalar_t>();
    const scalar_t* p = images[2].const_data_ptr<scalar_t>();
    scalar_t* o = out.mutable_data_ptr<scalar_t>();
    auto go = [&](auto* m) {
      using mask_t = std::remove_cv_t<std::remove_pointer_t<decltype(m)>>;
      auto* run = cpu_variant(&blend_run_base<scalar_t, mask_t, acc_t>, &blend_run_v3<scalar_t, mask_t, acc_t>);
      const int64_t C = geo.C;
      for_units(geo, [&](int64_t begin, int64_t end) {
        std::vector<mask_t> buffer;
        for (int64_t u = begin; u < end; ++u) {
          const Unit s = geo.unit(u);
          const mask_t* mr;
          if (geo.layout == Layout::kPlanes) {
            mr = m + s.n * m_n + s.c * m_c + s.start;
          } else {  // channels_last: the unit's pixels' mask values, repeated per channel
            const int64_t pos0 = s.start / C, npos = s.len / C;
            const mask_t* mn = m + s.n * m_n + pos0;
            buffer.resize(static_cast<size_t>(s.len));
            for (int64_t i = 0; i < npos; ++i)
              for (int64_t c = 0; c < C; ++c) buffer[i * C + c] = mn[c * m_c + i];
            mr = buffer.data();
          }
          run(run_of(x, images[0], s), run_of(z, images[1], s), run_of(p, images[2], s), mr,
              o + s.row * geo.row_len + s.start, s.len, a[s.n], b[s.n], mask_is_hole);
        }
      });
    };
    if (is_binary_mask(mask.scalar_type())) {
      go(reinterpret_cast<const uint8_t*>(mask.const_data_ptr()));
    } else {
      go(mask.const_data_ptr<scalar_t>());
    }
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(inpaint_fast, CPU, m) {
  m.impl("q_sample", &q_sample_cpu);
  m.impl("q_sample_backward", &q_sample_backward_cpu);
  m.impl("repaint_blend", &repaint_blend_cpu);
}

}  // namespace inpaint_fast
