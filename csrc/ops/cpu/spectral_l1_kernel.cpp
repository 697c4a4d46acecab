// CPU kernel of inpaint_fast::spectral_l1 (schema and semantics: csrc/ops/spectral_l1.cpp).
//
// One pass over both spectra: per complex element it reads z_pred and z_target once, adds
// |log1p|z_pred| - log1p|z_target|| to the sum and, when asked, writes both gradients.
//
// Work split: the two spectra are walked as flat arrays of complex numbers (numel elements; inputs
// that are not contiguous, which rfft2 outputs always are, are copied first). Units of
// kSegment elements are the tasks of at::parallel_for; a unit is processed in blocks of kBlock
// elements; |a - b| of a block lands in kLanes interleaved accumulators of its unit, folded in a fixed
// tree, and the unit partials are summed pairwise (csrc/common/reduce.h). The grouping depends on
// the shape only: bitwise the same loss and gradients for any number of threads.
//
// Magnitudes. |z| must match torch.abs (hypot) without hypot's cost. The fast path computes
// s = re^2 + im^2 in the spectrum's own precision; for float, |z| = s * rsqrt(s) with rsqrt from the
// bit-level estimate and three Newton steps, then one correction step m += (s - m^2) * rsqrt(s) / 2,
// measured at <= 1.5 ulp from the exact |z| (a correctly rounded sqrt of the rounded s is within
// about 1 ulp too); 1/|z| for the gradient direction comes with it (<= 3 ulp). This is exact
// arithmetic only where s is a normal number far from overflow: any block holding an element with
// 0 < s < 2^-100 (float; 2^-1000 for double), s > 2^121 (2^1000) or NaN is redone element by element
// with std::hypot and std::log1p (the robust path). Image spectra essentially never take it; exact
// zeros (|z| = 0, zero gradient, as torch's abs backward) stay on the fast path.
//
// Non-finite values follow torch autograd of the formula: sign(a - b) is 0 where a - b is NaN (as
// torch.sign), and z / |z| is NaN where |z| is (only |z| = 0 gives a zero direction). So NaN in
// z_target gives a zero gradient for z_pred, and NaN in z_pred a NaN one (0 / (1 + NaN)).
//
// log1p(m), m >= 0: the fast path for float uses u = 1 + m = 2^k f, f in [sqrt(1/2), sqrt(2)),
// log1p(m) = k ln2 + log(f) + c/u (c: the rounding error of 1 + m, as in musl/FreeBSD log1pf) with
// Cephes' logf polynomial for log(f); measured <= 0.8 ulp, as glibc's log1pf. double uses std::log1p.
//
// Vectorisation: the float block loop is written branch-free (selections on integer bit patterns,
// divisions unconditional) with no libm calls, so that gcc -O3 vectorises it without -ffast-math,
// -fno-math-errno or -fno-trapping-math (-fopt-info-vec: "loop vectorized"). On x86-64 the block
// is also compiled for x86-64-v3 (AVX2 + FMA) and chosen at run time when the CPU has it
// (common/cpu_dispatch.h; it also runs at the AVX-512 level). The FMA build rounds differently in
// the last bit: results are bitwise reproducible on one machine and level (any thread count), not
// across levels. The input checks: ops/spectral_l1.h.

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <type_traits>

#include "common/alloc.h"
#include "common/cpu_dispatch.h"
#include "common/reduce.h"
#include "ops/spectral_l1.h"

namespace inpaint_fast {
namespace {

constexpr int64_t kSegment = 4096;  // complex elements per work unit; a multiple of kBlock
constexpr int64_t kBlock = 64;      // elements per fast-path block; a multiple of kLanes
static_assert(kSegment % kBlock == 0 && kBlock % kLanes == 0, "block sizes");

// ---------------------------------------------------------------- float math (fast path)

INPAINT_FAST_INLINE uint32_t bits(float x) { return std::bit_cast<uint32_t>(x); }

// cond ? a : b, on bit patterns. A float `cond ? a : b` lets gcc sink the computation of the
// unused side into a branch and then refuse to if-convert it (float arithmetic may trap under the
// default -ftrapping-math), which stops the loop from vectorising; integer masking does not.
INPAINT_FAST_INLINE float select(bool cond, float a, float b) {
  const uint32_t mask = 0u - static_cast<uint32_t>(cond);
  return std::bit_cast<float>((bits(a) & mask) | (bits(b) & ~mask));
}

// 1/sqrt(s) for a normal positive float s (<= 3 ulp measured): the bit-level estimate and three
// Newton steps. s = 0 gives a finite value (unused there).
INPAINT_FAST_INLINE float rsqrt_newton(float s) {
  float r = std::bit_cast<float>(0x5f375a86u - (std::bit_cast<uint32_t>(s) >> 1));
  const float hs = 0.5f * s;
  r = r * (1.5f - hs * r * r);  // relative error 1.8e-3
  r = r * (1.5f - hs * r * r);  // 4.7e-6
  r = r * (1.5f - hs * r * r);  // rounding only
  return r;
}

// log1p(x) for finite x >= 0 (<= 0.8 ulp measured), branch-free.
INPAINT_FAST_INLINE float log1p_nonneg(float x) {
  const float u = 1.0f + x;
  // u = 2^k * f with f in [sqrt(1/2), sqrt(2)): shift the exponent field by that of sqrt(1/2).
  const uint32_t iu = std::bit_cast<uint32_t>(u) + (0x3f800000u - 0x3f3504f3u);
  const int32_t k = static_cast<int32_t>(iu >> 23) - 0x7f;
  // c = the rounding error of 1 + x (musl's log1pf): log1p(x) = log(u) + c/u; none when k == 0
  // (then f = x exactly) or when u is so large that c/u is below log(u)'s ulp.
  const float c_big = 1.0f - (u - x), c_small = x - (u - 1.0f);
  const float c_over_u = select(k >= 2, c_big, c_small) / u;
  const float c = select(k == 0 || k >= 25, 0.0f, c_over_u);
  const float f_reduced = std::bit_cast<float>((iu & 0x007fffffu) + 0x3f3504f3u) - 1.0f;
  const float f = select(k == 0, x, f_reduced);  // log(1 + f) is what remains, f in [-0.29, 0.42)
  // Cephes logf: log(1 + f) = f - f^2/2 + f^3 P(f).
  const float z = f * f;
  float y = 7.0376836292E-2f;
  y = y * f - 1.1514610310E-1f;
  y = y * f + 1.1676998740E-1f;
  y = y * f - 1.2420140846E-1f;
  y = y * f + 1.4249322787E-1f;
  y = y * f - 1.6668057665E-1f;
  y = y * f + 2.0000714765E-1f;
  y = y * f - 2.4999993993E-1f;
  y = y * f + 3.3333331174E-1f;
  y = y * f * z;
  const float dk = static_cast<float>(k);
  y = y + (dk * -2.12194440e-4f + c);  // k * (ln2 - 0.693359375) + c
  y = y - 0.5f * z;
  return f + y + dk * 0.693359375f;
}

// ---------------------------------------------------------------- the fast and robust blocks

template <typename real_t>
struct Range;  // s = re^2 + im^2 is handled by the fast path when it is 0 or in [tiny, huge]
template <>
struct Range<float> {
  static constexpr float tiny = 0x1p-100f, huge = 0x1p121f;
};
template <>
struct Range<double> {
  static constexpr double tiny = 0x1p-1000, huge = 0x1p1000;
};

// True where the fast path cannot be trusted: s underflowed (z != 0), overflowed, or is NaN.
template <typename real_t>
inline bool needs_robust(real_t re, real_t im, real_t s) {
  const bool nonzero = (re != real_t(0)) | (im != real_t(0));
  return ((s < Range<real_t>::tiny) & nonzero) | !(s <= Range<real_t>::huge);
}

// needs_robust for float, on the bit patterns (s >= 0 or NaN): integer compares, which gcc
// if-converts and vectorises where float compares would count as trapping.
INPAINT_FAST_INLINE uint32_t needs_robust_bits(float re, float im, float s) {
  const uint32_t sb = bits(s);
  const bool nonzero = ((bits(re) | bits(im)) & 0x7fffffffu) != 0;
  return static_cast<uint32_t>((sb < bits(Range<float>::tiny)) & nonzero) |
         static_cast<uint32_t>(sb > bits(Range<float>::huge));  // unsigned: NaN of either sign too
}

// Fast path of len <= kBlock elements: absd[i] = |a - b|, gradients (when GP / GT) written.
// Returns false when some element needs the robust path (absd and gradients are then redone).
// Three loops over L1-resident scratch: de-interleave (re, im), the math on plain float arrays
// (every selection made on integer bit patterns: see select and needs_robust_bits), re-interleave
// the gradients. One fused loop with interleaved loads and stores vectorises too, but gcc then
// shuffles and spills so much that writing a gradient costs twice the whole math (measured).
template <bool GP, bool GT>
INPAINT_FAST_INLINE bool fast_block_float_body(const float* __restrict__ zp,
                                               const float* __restrict__ zt,
                                               float* __restrict__ gp, float* __restrict__ gt,
                                               int64_t len, float scale,
                                               float* __restrict__ absd) {
  alignas(64) float pr[kBlock], pi[kBlock], tr[kBlock], ti[kBlock], cp[kBlock], ct[kBlock];
  for (int64_t i = 0; i < len; ++i) {
    pr[i] = zp[2 * i];
    pi[i] = zp[2 * i + 1];
    tr[i] = zt[2 * i];
    ti[i] = zt[2 * i + 1];
  }
  uint32_t bad = 0;
  for (int64_t i = 0; i < len; ++i) {
    const float sp = pr[i] * pr[i] + pi[i] * pi[i], st = tr[i] * tr[i] + ti[i] * ti[i];
    bad |= needs_robust_bits(pr[i], pi[i], sp) | needs_robust_bits(tr[i], ti[i], st);
    const float rp = rsqrt_newton(sp), rt = rsqrt_newton(st);
    const float mp0 = sp * rp, mt0 = st * rt;
    const float mp = mp0 + (sp - mp0 * mp0) * (0.5f * rp);  // one more Newton step on |z|
    const float mt = mt0 + (st - mt0 * mt0) * (0.5f * rt);
    const float d = log1p_nonneg(mp) - log1p_nonneg(mt);
    const uint32_t d_abs = bits(d) & 0x7fffffffu;
    absd[i] = std::bit_cast<float>(d_abs);
    // scale * sign(d) (scale > 0 carries d's sign bit); 0 for d = +-0 and for NaN.
    const float sg_sign = std::bit_cast<float>(bits(scale) | (bits(d) & 0x80000000u));
    const float sg = select((d_abs == 0) | (d_abs > 0x7f800000u), 0.0f, sg_sign);
    // Zero gradient where |z| = 0 (s = +0 exactly: a sum of squares is never -0).
    if constexpr (GP) cp[i] = select(bits(sp) == 0, 0.0f, sg * rp / (1.0f + mp));
    if constexpr (GT) ct[i] = select(bits(st) == 0, 0.0f, -sg * rt / (1.0f + mt));
  }
  if constexpr (GP) {
    for (int64_t i = 0; i < len; ++i) {
      gp[2 * i] = cp[i] * pr[i];
      gp[2 * i + 1] = cp[i] * pi[i];
    }
  }
  if constexpr (GT) {
    for (int64_t i = 0; i < len; ++i) {
      gt[2 * i] = ct[i] * tr[i];
      gt[2 * i + 1] = ct[i] * ti[i];
    }
  }
  return bad == 0;
}

template <bool GP, bool GT>
bool fast_block_float(const float* __restrict__ zp, const float* __restrict__ zt,
                      float* __restrict__ gp, float* __restrict__ gt, int64_t len, float scale,
                      float* __restrict__ absd) {
  return fast_block_float_body<GP, GT>(zp, zt, gp, gt, len, scale, absd);
}

#if INPAINT_FAST_X86_VARIANTS
template <bool GP, bool GT>
INPAINT_FAST_V3_TARGET bool fast_block_float_v3(
    const float* __restrict__ zp, const float* __restrict__ zt, float* __restrict__ gp,
    float* __restrict__ gt, int64_t len, float scale, float* __restrict__ absd) {
  return fast_block_float_body<GP, GT>(zp, zt, gp, gt, len, scale, absd);
}
#endif

// The same for double: plain std::sqrt / std::log1p (complex128 is for checks, not speed).
template <bool GP, bool GT>
bool fast_block_double(const double* __restrict__ zp, const double* __restrict__ zt,
                       double* __restrict__ gp, double* __restrict__ gt, int64_t len, double scale,
                       double* __restrict__ absd) {
  bool bad = false;
  for (int64_t i = 0; i < len; ++i) {
    const double pr = zp[2 * i], pi = zp[2 * i + 1];
    const double tr = zt[2 * i], ti = zt[2 * i + 1];
    const double sp = pr * pr + pi * pi, st = tr * tr + ti * ti;
    bad |= needs_robust(pr, pi, sp) | needs_robust(tr, ti, st);
    const double mp = std::sqrt(sp), mt = std::sqrt(st);
    const double d = std::log1p(mp) - std::log1p(mt);
    absd[i] = std::abs(d);
    const double sg = d > 0.0 ? scale : (d < 0.0 ? -scale : 0.0);
    if constexpr (GP) {
      const double cp = sp == 0.0 ? 0.0 : sg / ((1.0 + mp) * mp);
      gp[2 * i] = cp * pr;
      gp[2 * i + 1] = cp * pi;
    }
    if constexpr (GT) {
      const double ct = st == 0.0 ? 0.0 : -sg / ((1.0 + mt) * mt);
      gt[2 * i] = ct * tr;
      gt[2 * i + 1] = ct * ti;
    }
  }
  return !bad;
}

template <bool GP, bool GT, bool V3>
inline bool fast_block(const float* zp, const float* zt, float* gp, float* gt, int64_t len,
                       float scale, float* absd) {
#if INPAINT_FAST_X86_VARIANTS
  if constexpr (V3) return fast_block_float_v3<GP, GT>(zp, zt, gp, gt, len, scale, absd);
#endif
  return fast_block_float<GP, GT>(zp, zt, gp, gt, len, scale, absd);
}
template <bool GP, bool GT, bool V3>
inline bool fast_block(const double* zp, const double* zt, double* gp, double* gt, int64_t len,
                       double scale, double* absd) {
  return fast_block_double<GP, GT>(zp, zt, gp, gt, len, scale, absd);
}

// Robust path, element by element: |z| = hypot(re, im) (no overflow or underflow), z/|z| formed as
// (re/|z|, im/|z|), std::log1p. NaN takes this path: sign(NaN) = 0, and z/|z| is NaN.
template <typename real_t, bool GP, bool GT>
void robust_block(const real_t* zp, const real_t* zt, real_t* gp, real_t* gt, int64_t len,
                  real_t scale, real_t* absd) {
  for (int64_t i = 0; i < len; ++i) {
    const real_t pr = zp[2 * i], pi = zp[2 * i + 1];
    const real_t tr = zt[2 * i], ti = zt[2 * i + 1];
    const real_t mp = std::hypot(pr, pi), mt = std::hypot(tr, ti);
    const real_t d = std::log1p(mp) - std::log1p(mt);
    absd[i] = std::abs(d);
    const real_t sg = d > real_t(0) ? scale : (d < real_t(0) ? -scale : real_t(0));
    if constexpr (GP) {
      const real_t cp = sg / (real_t(1) + mp);
      gp[2 * i] = mp == real_t(0) ? real_t(0) : cp * (pr / mp);
      gp[2 * i + 1] = mp == real_t(0) ? real_t(0) : cp * (pi / mp);
    }
    if constexpr (GT) {
      const real_t ct = -sg / (real_t(1) + mt);
      gt[2 * i] = mt == real_t(0) ? real_t(0) : ct * (tr / mt);
      gt[2 * i + 1] = mt == real_t(0) ? real_t(0) : ct * (ti / mt);
    }
  }
}

// One work unit: len elements from complex index `start`; returns sum |a - b| over them.
template <typename real_t, bool GP, bool GT, bool V3>
real_t unit_sum(const real_t* zp, const real_t* zt, real_t* gp, real_t* gt, int64_t start,
                int64_t len, real_t scale) {
  real_t lanes[kLanes] = {};
  real_t absd[kBlock];
  for (int64_t b = 0; b < len; b += kBlock) {
    const int64_t n = std::min(kBlock, len - b);
    const int64_t off = 2 * (start + b);  // real_t offset of the block
    real_t* gpb = GP ? gp + off : nullptr;
    real_t* gtb = GT ? gt + off : nullptr;
    if (!fast_block<GP, GT, V3>(zp + off, zt + off, gpb, gtb, n, scale, absd)) {
      robust_block<real_t, GP, GT>(zp + off, zt + off, gpb, gtb, n, scale, absd);
    }
    int64_t i = 0;
    for (; i + kLanes <= n; i += kLanes) {
      for (int k = 0; k < kLanes; ++k) lanes[k] += absd[i + k];
    }
    for (int k = 0; i < n; ++i, ++k) lanes[k] += absd[i];
  }
  return fold_lanes(lanes);
}

// Runs the units in parallel; returns scale * sum |a - b| (deterministic order).
template <typename real_t, bool GP, bool GT, bool V3>
real_t run(const real_t* zp, const real_t* zt, real_t* gp, real_t* gt, int64_t numel, real_t scale) {
  const int64_t units = (numel + kSegment - 1) / kSegment;
  const auto totals = deterministic_sum<1, real_t>(units, [&](int64_t u, real_t* out) {
    const int64_t start = u * kSegment;
    out[0] = unit_sum<real_t, GP, GT, V3>(zp, zt, gp, gt, start, std::min(kSegment, numel - start), scale);
  });
  return scale * totals[0];
}

template <typename real_t>
real_t run_dispatch(const at::Tensor& zp, const at::Tensor& zt, at::Tensor& gp, at::Tensor& gt,
                    bool grad_pred, bool grad_target, real_t scale) {
  // Complex tensors viewed as interleaved (re, im) arrays of real_t.
  const real_t* p = reinterpret_cast<const real_t*>(zp.const_data_ptr());
  const real_t* t = reinterpret_cast<const real_t*>(zt.const_data_ptr());
  real_t* g_p = grad_pred ? reinterpret_cast<real_t*>(gp.mutable_data_ptr()) : nullptr;
  real_t* g_t = grad_target ? reinterpret_cast<real_t*>(gt.mutable_data_ptr()) : nullptr;
  const int64_t n = zp.numel();
  const auto go = [&](auto v3) {
    constexpr bool V3 = decltype(v3)::value;
    if (grad_pred && grad_target) return run<real_t, true, true, V3>(p, t, g_p, g_t, n, scale);
    if (grad_pred) return run<real_t, true, false, V3>(p, t, g_p, g_t, n, scale);
    if (grad_target) return run<real_t, false, true, V3>(p, t, g_p, g_t, n, scale);
    return run<real_t, false, false, V3>(p, t, g_p, g_t, n, scale);
  };
  // Only the float block has an x86-64-v3 variant (run at the AVX2 and AVX-512 levels).
  const bool v3 = std::is_same_v<real_t, float> && cpu_level() >= CpuLevel::kAvx2;
  return v3 ? go(std::true_type{}) : go(std::false_type{});
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> spectral_l1_cpu(const at::Tensor& z_pred,
                                                               const at::Tensor& z_target,
                                                               double scale, bool grad_pred,
                                                               bool grad_target) {
  spectral_l1_host::check_inputs(z_pred, z_target);
  // rfft2 output is contiguous; any other layout is copied, and the gradients are contiguous.
  const at::Tensor zp = z_pred.contiguous();
  const at::Tensor zt = z_target.contiguous();
  const auto grad_buffer = [&](bool wanted) {
    return wanted ? empty_output(zp.sizes(), zp.options()) : at::empty({0}, zp.options());
  };
  at::Tensor gp = grad_buffer(grad_pred);
  at::Tensor gt = grad_buffer(grad_target);
  at::Tensor loss;
  if (zp.scalar_type() == at::kComplexFloat) {
    loss = at::empty({}, zp.options().dtype(at::kFloat));
    loss.mutable_data_ptr<float>()[0] =
        run_dispatch<float>(zp, zt, gp, gt, grad_pred, grad_target, static_cast<float>(scale));
  } else {
    loss = at::empty({}, zp.options().dtype(at::kDouble));
    loss.mutable_data_ptr<double>()[0] =
        run_dispatch<double>(zp, zt, gp, gt, grad_pred, grad_target, scale);
  }
  return {loss, gp, gt};
}

}  // namespace

TORCH_LIBRARY_IMPL(inpaint_fast, CPU, m) {
  m.impl("spectral_l1", &spectral_l1_cpu);
}

}  // namespace inpaint_fast
