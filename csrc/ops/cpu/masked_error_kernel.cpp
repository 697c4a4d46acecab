// CPU kernels of inpaint_fast::masked_error and masked_error_stats (schemas and semantics:
// csrc/ops/masked_error.cpp).
//
// One pass: a floating mask's [0, 1] check (common/checks.h) and a cheap pre-pass that sums the mask
// (the region areas) read the mask alone; then every element of pred and
// target is read once, its hole and valid error terms are accumulated and, when asked, its
// gradient is written (float32 for float16 images, else their dtype). Work units are fixed runs of
// elements (csrc/common/reduce.h), so the sums are bitwise the same for any thread count.
//
// Layouts, read in place: NCHW with contiguous (H, W) planes (slices along N and C included), and
// channels_last. Anything else is copied with .contiguous(). The mask (N|1, C|1, H, W) is broadcast by
// stride 0; a floating one (the image dtype, a soft weight) is read in place, a bool/uint8 one (binary:
// any non-zero value is 1) as 0/1 weights converted per work unit (run_mask_t).
// The hot loop is compiled for x86-64-v3 and for the baseline ISA and chosen at run time
// (common/cpu_dispatch.h; the x86-64-v3 variant also runs at the AVX-512 level).

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <torch/library.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <tuple>
#include <type_traits>
#include <vector>

#include "common/alloc.h"
#include "common/cpu_dispatch.h"
#include "common/layout.h"
#include "common/reduce.h"
#include "ops/masked_error.h"

namespace inpaint_fast {
namespace {

constexpr int64_t kSegment = 4096;  // elements per work unit
using namespace masked_error_host;  // Loss, the checks, prepare

struct NoMask {};  // the mask type when there is no mask: every pixel is known (v = 1)

// Per-call constants of the hot loop. v = a + b * m is the known weight (a=0, b=1 for a known
// mask; a=1, b=-1 for a hole mask; m = (mask != 0) for a bool/uint8 mask); the gradient is
// (k_hole * (1 - v) + k_valid * v) * e'(d).
template <typename acc_t>
struct RunParams {
  acc_t a, b, k_hole, k_valid, charbonnier_eps2;
};

template <typename mask_t, typename acc_t>
inline acc_t known_weight(const mask_t* m, int64_t j, const RunParams<acc_t>& rp) {
  if constexpr (std::is_same_v<mask_t, NoMask>) {
    return acc_t(1);
  } else {
    return rp.a + rp.b * mask_weight<acc_t>(m[j]);
  }
}

template <int64_t LOSS, typename acc_t>
inline void error_and_slope(acc_t d, acc_t charbonnier_eps2, acc_t& e, acc_t& de) {
  if constexpr (LOSS == kL1) {
    e = std::abs(d);
    de = static_cast<acc_t>(d > acc_t(0)) - static_cast<acc_t>(d < acc_t(0));
  } else if constexpr (LOSS == kL2) {
    e = d * d;
    de = acc_t(2) * d;
  } else {
    e = std::sqrt(d * d + charbonnier_eps2);
    de = d / e;
  }
}

// One element's terms: its hole error (1 - v) e, its valid error v e and its gradient.
template <typename acc_t>
struct Term {
  acc_t hole, valid, grad;
};

template <int64_t LOSS, typename acc_t>
inline Term<acc_t> error_term(acc_t d, acc_t v, const RunParams<acc_t>& rp) {
  acc_t e, de;
  error_and_slope<LOSS>(d, rp.charbonnier_eps2, e, de);
  return {(acc_t(1) - v) * e, v * e, (rp.k_hole * (acc_t(1) - v) + rp.k_valid * v) * de};
}

// The runs below load and store through their __restrict__ pointers in the loop body itself: a lambda
// capturing them by reference loses __restrict__, and gcc then kept the masked loops scalar (2-3x slower).

// One contiguous run: out[0] += sum (1 - v) e, out[1] += sum v e; g = gradient when GRAD.
template <typename scalar_t, typename mask_t, int64_t LOSS, bool GRAD, typename acc_t>
INPAINT_FAST_INLINE void error_run(const scalar_t* __restrict__ p, const scalar_t* __restrict__ t,
                                   const mask_t* __restrict__ m, int64_t len, const RunParams<acc_t>& rp,
                                   grad_type<scalar_t>* __restrict__ g, acc_t* out) {
  constexpr bool kHasMask = !std::is_same_v<mask_t, NoMask>;  // without one, the hole sum stays exactly 0
  acc_t s_hole[kLanes] = {};
  acc_t s_valid[kLanes] = {};
  int64_t j = 0;
  for (; j + kLanes <= len; j += kLanes) {
    for (int k = 0; k < kLanes; ++k) {
      const Term<acc_t> r = error_term<LOSS>(static_cast<acc_t>(p[j + k]) - static_cast<acc_t>(t[j + k]),
                                             known_weight(m, j + k, rp), rp);
      if constexpr (kHasMask) s_hole[k] += r.hole;
      s_valid[k] += r.valid;
      if constexpr (GRAD) g[j + k] = static_cast<grad_type<scalar_t>>(r.grad);
    }
  }
  for (int k = 0; j < len; ++j, ++k) {
    const Term<acc_t> r = error_term<LOSS>(static_cast<acc_t>(p[j]) - static_cast<acc_t>(t[j]),
                                           known_weight(m, j, rp), rp);
    if constexpr (kHasMask) s_hole[k] += r.hole;
    s_valid[k] += r.valid;
    if constexpr (GRAD) g[j] = static_cast<grad_type<scalar_t>>(r.grad);
  }
  out[0] += fold_lanes(s_hole);
  out[1] += fold_lanes(s_valid);
}

// One contiguous run of the statistics: out += [hole |d|, valid |d|, hole d^2, valid d^2].
template <typename scalar_t, typename mask_t, typename acc_t>
INPAINT_FAST_INLINE void stats_run(const scalar_t* __restrict__ p, const scalar_t* __restrict__ t,
                                   const mask_t* __restrict__ m, int64_t len, const RunParams<acc_t>& rp,
                                   acc_t* out) {
  constexpr bool kHasMask = !std::is_same_v<mask_t, NoMask>;  // without one, the hole sums stay exactly 0
  acc_t s[4][kLanes] = {};
  int64_t j = 0;
  for (; j + kLanes <= len; j += kLanes) {
    for (int k = 0; k < kLanes; ++k) {
      const acc_t d = static_cast<acc_t>(p[j + k]) - static_cast<acc_t>(t[j + k]), v = known_weight(m, j + k, rp);
      if constexpr (kHasMask) s[0][k] += (acc_t(1) - v) * std::abs(d), s[2][k] += (acc_t(1) - v) * (d * d);
      s[1][k] += v * std::abs(d);
      s[3][k] += v * (d * d);
    }
  }
  for (int k = 0; j < len; ++j, ++k) {
    const acc_t d = static_cast<acc_t>(p[j]) - static_cast<acc_t>(t[j]), v = known_weight(m, j, rp);
    if constexpr (kHasMask) s[0][k] += (acc_t(1) - v) * std::abs(d), s[2][k] += (acc_t(1) - v) * (d * d);
    s[1][k] += v * std::abs(d);
    s[3][k] += v * (d * d);
  }
  for (int i = 0; i < 4; ++i) out[i] += fold_lanes(s[i]);
}

// The two compiled variants of each run (cpu_variant chooses).
template <typename scalar_t, typename mask_t, int64_t LOSS, bool GRAD, typename acc_t>
INPAINT_FAST_V3_TARGET void error_run_v3(
    const scalar_t* p, const scalar_t* t, const mask_t* m, int64_t len, const RunParams<acc_t>& rp,
    grad_type<scalar_t>* g, acc_t* out) {
  error_run<scalar_t, mask_t, LOSS, GRAD>(p, t, m, len, rp, g, out);
}

template <typename scalar_t, typename mask_t, int64_t LOSS, bool GRAD, typename acc_t>
void error_run_base(const scalar_t* p, const scalar_t* t, const mask_t* m, int64_t len,
                    const RunParams<acc_t>& rp, grad_type<scalar_t>* g, acc_t* out) {
  error_run<scalar_t, mask_t, LOSS, GRAD>(p, t, m, len, rp, g, out);
}

template <typename scalar_t, typename mask_t, typename acc_t>
INPAINT_FAST_V3_TARGET void stats_run_v3(
    const scalar_t* p, const scalar_t* t, const mask_t* m, int64_t len, const RunParams<acc_t>& rp,
    acc_t* out) {
  stats_run<scalar_t, mask_t>(p, t, m, len, rp, out);
}

template <typename scalar_t, typename mask_t, typename acc_t>
void stats_run_base(const scalar_t* p, const scalar_t* t, const mask_t* m, int64_t len,
                    const RunParams<acc_t>& rp, acc_t* out) {
  stats_run<scalar_t, mask_t>(p, t, m, len, rp, out);
}

// ---------------------------------------------------------------------------------------------
// Geometry: how units map to memory.

struct Geometry {
  bool channels_last;
  int64_t N, C, HW;
  int64_t p_n, p_c, t_n, t_c;  // plane strides of pred/target (NCHW layout)
  int64_t m_n, m_c;            // plane strides of the mask (0 where broadcast)
  int64_t segments;            // units per (n, c) plane (NCHW) or per image (channels_last)
  int64_t positions;           // channels_last: pixel positions per unit

  int64_t units() const { return channels_last ? N * segments : N * C * segments; }
};

Geometry geometry_of(const Prepared& in) {
  const at::Tensor& pred = in.pred;
  const at::Tensor& target = in.target;
  Geometry g{};
  g.channels_last = in.channels_last;
  g.N = pred.size(0);
  g.C = pred.size(1);
  g.HW = pred.size(2) * pred.size(3);
  g.p_n = pred.stride(0);
  g.p_c = pred.stride(1);
  g.t_n = target.stride(0);
  g.t_c = target.stride(1);
  if (in.mask) {
    g.m_n = bstride(*in.mask, 0);
    g.m_c = bstride(*in.mask, 1);
  }
  if (g.channels_last) {
    g.positions = std::max<int64_t>(1, kSegment / g.C);
    g.segments = (g.HW + g.positions - 1) / g.positions;
  } else {
    g.segments = (g.HW + kSegment - 1) / kSegment;
  }
  return g;
}

// The mask type the runs read: a binary (uint8) mask as 0/1 weights of the accumulation type, converted
// per unit into a buffer (a byte -> float conversion inside the runs kept them ~2x slower); a floating
// mask as it is.
template <typename mask_t, typename acc_t>
using run_mask_t = std::conditional_t<std::is_same_v<mask_t, uint8_t>, acc_t, mask_t>;

// Calls run(p, t, m, len, g_out) for the contiguous run of unit u, m of type run_mask_t. The mask
// values are first copied into `buffer` where the run cannot read them in place: a binary mask
// (converted), or any mask in channels_last layout (gathered by (pixel, channel)).
template <typename scalar_t, typename mask_t, typename run_t, typename Run>
void for_unit(const Geometry& geo, int64_t u, const scalar_t* p, const scalar_t* t,
              const mask_t* m, grad_type<scalar_t>* g, std::vector<run_t>& buffer, const Run& run) {
  constexpr bool kHasMask = !std::is_same_v<mask_t, NoMask>;
  if (!geo.channels_last) {
    const int64_t row = u / geo.segments, n = row / geo.C, c = row % geo.C;
    const int64_t start = (u % geo.segments) * kSegment;
    const int64_t len = std::min(kSegment, geo.HW - start);
    const run_t* mr = nullptr;
    if constexpr (kHasMask) {
      const mask_t* mp = m + n * geo.m_n + c * geo.m_c + start;
      if constexpr (std::is_same_v<run_t, mask_t>) {
        mr = mp;
      } else {
        buffer.resize(static_cast<size_t>(len));
        for (int64_t i = 0; i < len; ++i) buffer[i] = mask_weight<run_t>(mp[i]);
        mr = buffer.data();
      }
    }
    run(p + n * geo.p_n + c * geo.p_c + start, t + n * geo.t_n + c * geo.t_c + start, mr,
        len, g ? g + (n * geo.C + c) * geo.HW + start : nullptr);
    return;
  }
  const int64_t n = u / geo.segments;
  const int64_t pos0 = (u % geo.segments) * geo.positions;
  const int64_t npos = std::min(geo.positions, geo.HW - pos0);
  const int64_t offset = n * geo.HW * geo.C + pos0 * geo.C;  // dense channels_last
  const run_t* mr = nullptr;
  if constexpr (kHasMask) {
    buffer.resize(static_cast<size_t>(npos * geo.C));
    const mask_t* mn = m + n * geo.m_n + pos0;
    for (int64_t i = 0; i < npos; ++i)
      for (int64_t c = 0; c < geo.C; ++c) buffer[i * geo.C + c] = mask_weight<run_t>(mn[c * geo.m_c + i]);
    mr = buffer.data();
  }
  run(p + offset, t + offset, mr, npos * geo.C, g ? g + offset : nullptr);
}

// ---------------------------------------------------------------------------------------------
// The mask pre-pass.

// Sum of the weights of mask values m[0, len), in kLanes independent chains (one chain of double adds
// is latency-bound).
template <typename mask_t>
INPAINT_FAST_INLINE double weight_sum(const mask_t* __restrict__ m, int64_t len) {
  double lanes[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= len; i += kLanes) {
    for (int k = 0; k < kLanes; ++k) lanes[k] += mask_weight<double>(m[i + k]);
  }
  for (int k = 0; i < len; ++i, ++k) lanes[k] += mask_weight<double>(m[i]);
  return fold_lanes(lanes);
}

template <typename mask_t>
INPAINT_FAST_V3_TARGET double weight_sum_v3(const mask_t* m, int64_t len) {
  return weight_sum(m, len);
}

template <typename mask_t>
double weight_sum_base(const mask_t* m, int64_t len) {
  return weight_sum(m, len);
}

// Area of the known region over the broadcast (N, C, H, W) shape: sum v with v = m or 1 - m
// (m = mask_weight of the mask).
// Each distinct (H, W) plane of the mask is summed once (in double, deterministically) and
// counted as often as it is broadcast.
template <typename mask_t>
double known_area(const at::Tensor& mask, bool mask_is_hole, int64_t N, int64_t C) {
  const int64_t planes_n = distinct_planes(mask, 0);
  const int64_t planes_c = distinct_planes(mask, 1);
  const int64_t hw = mask.size(2) * mask.size(3);
  if (N * C * hw == 0) return 0.0;  // empty images (and possibly an empty mask): no plane to read
  const int64_t segments = (hw + kSegment - 1) / kSegment;
  const mask_t* m = reinterpret_cast<const mask_t*>(mask.const_data_ptr());
  auto* sum_fn = cpu_variant(&weight_sum_base<mask_t>, &weight_sum_v3<mask_t>);
  const double s = deterministic_sum<1, double>(planes_n * planes_c * segments, [&](int64_t u, double* out) {
    const int64_t plane = u / segments, start = (u % segments) * kSegment;
    const mask_t* mp = m + (plane / planes_c) * mask.stride(0) + (plane % planes_c) * mask.stride(1);
    out[0] = sum_fn(mp + start, std::min(hw, start + kSegment) - start);
  })[0];
  const double total = static_cast<double>(N * C * hw);
  const double area = s * static_cast<double>((N / planes_n) * (C / planes_c));
  return mask_is_hole ? total - area : area;
}

// Calls fn(mask_ptr_typed) with the mask's element type: NoMask, uint8_t, or scalar_t.
template <typename scalar_t, typename Fn>
void with_mask_type(const c10::optional<at::Tensor>& mask, const Fn& fn) {
  if (!mask) {
    fn(static_cast<const NoMask*>(nullptr));
  } else if (is_binary_mask(mask->scalar_type())) {
    fn(reinterpret_cast<const uint8_t*>(mask->const_data_ptr()));
  } else {
    fn(mask->const_data_ptr<scalar_t>());
  }
}

template <typename acc_t>
RunParams<acc_t> base_params(bool mask_is_hole) {
  RunParams<acc_t> rp{};
  rp.a = mask_is_hole ? acc_t(1) : acc_t(0);
  rp.b = mask_is_hole ? acc_t(-1) : acc_t(1);
  return rp;
}

// ---------------------------------------------------------------------------------------------

std::tuple<at::Tensor, at::Tensor> masked_error_cpu(
    const at::Tensor& pred_in, const at::Tensor& target_in, const c10::optional<at::Tensor>& mask_in,
    bool mask_is_hole, int64_t loss, double charbonnier_eps, double weight_hole,
    double weight_valid, int64_t normalize, double eps, bool compute_grad) {
  const char* op = "inpaint_fast::masked_error";
  check_tensors(pred_in, target_in, mask_in, op);
  check_options(loss, charbonnier_eps, normalize, eps, op);
  if (mask_in) check_mask_values(*mask_in, mask_is_hole);
  const Prepared in = prepare(pred_in, target_in, mask_in);
  const at::Tensor& pred = in.pred;
  const Geometry geo = geometry_of(in);
  const int64_t numel = pred.numel();

  const auto grad_options = pred.options().dtype(grad_dtype(pred.scalar_type()));
  at::Tensor grad = compute_grad
      ? empty_output(pred.sizes(), grad_options,
                     geo.channels_last ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous)
      : at::empty({0}, grad_options);
  at::Tensor result;

  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, pred.scalar_type(), "masked_error_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    // Normalisers first (a pass over the mask only), so the gradient can be written in the main pass.
    double area_valid = static_cast<double>(numel), area_hole = 0.0;
    if (in.mask) {
      with_mask_type<scalar_t>(in.mask, [&](auto m) {
        using mask_t = std::remove_cv_t<std::remove_pointer_t<decltype(m)>>;
        if constexpr (!std::is_same_v<mask_t, NoMask>) area_valid = known_area<mask_t>(*in.mask, mask_is_hole, geo.N, geo.C);
      });
      area_hole = static_cast<double>(numel) - area_valid;
    }
    double k_hole = weight_hole, k_valid = weight_valid;
    if (normalize == kNormalizeMask) {
      k_hole /= std::max(area_hole, eps);
      k_valid /= std::max(area_valid, eps);
    } else if (normalize == kNormalizeAll) {
      k_hole /= std::max<double>(numel, 1);
      k_valid /= std::max<double>(numel, 1);
    }
    if (!in.mask) k_hole = 0.0;  // no hole term (not weight_hole / max(0, eps), which is NaN for eps = 0)
    RunParams<acc_t> rp = base_params<acc_t>(mask_is_hole);
    rp.k_hole = static_cast<acc_t>(k_hole);
    rp.k_valid = static_cast<acc_t>(k_valid);
    rp.charbonnier_eps2 = static_cast<acc_t>(charbonnier_eps * charbonnier_eps);

    const scalar_t* p = pred.const_data_ptr<scalar_t>();
    const scalar_t* t = in.target.const_data_ptr<scalar_t>();
    using grad_t = grad_type<scalar_t>;
    grad_t* g = compute_grad ? grad.mutable_data_ptr<grad_t>() : nullptr;
    std::array<acc_t, 2> sums{};
    with_mask_type<scalar_t>(in.mask, [&](auto m) {
      using mask_t = std::remove_cv_t<std::remove_pointer_t<decltype(m)>>;
      auto dispatch_run = [&](auto loss_tag, auto grad_tag) {
        constexpr int64_t LOSS = decltype(loss_tag)::value;
        constexpr bool GRAD = decltype(grad_tag)::value;
        using run_t = run_mask_t<mask_t, acc_t>;
        auto* run_fn = cpu_variant(&error_run_base<scalar_t, run_t, LOSS, GRAD, acc_t>,
                                   &error_run_v3<scalar_t, run_t, LOSS, GRAD, acc_t>);
        sums = deterministic_sum<2, acc_t>(geo.units(), [&](int64_t u, acc_t* out) {
          std::vector<run_t> buffer;
          for_unit(geo, u, p, t, m, g, buffer, [&](const scalar_t* pr, const scalar_t* tr, const run_t* mr,
                                                   int64_t len, grad_t* gr) { run_fn(pr, tr, mr, len, rp, gr, out); });
        });
      };
      auto with_grad = [&](auto loss_tag) {
        if (compute_grad) dispatch_run(loss_tag, std::true_type{});
        else dispatch_run(loss_tag, std::false_type{});
      };
      if (loss == kL1) with_grad(std::integral_constant<int64_t, kL1>{});
      else if (loss == kL2) with_grad(std::integral_constant<int64_t, kL2>{});
      else with_grad(std::integral_constant<int64_t, kCharbonnier>{});
    });
    // A term of weight 0 is left out: its sum may be inf or NaN (0 * inf from an inf outside its region).
    const double value = (k_hole != 0 ? k_hole * static_cast<double>(sums[0]) : 0.0) +
                         (k_valid != 0 ? k_valid * static_cast<double>(sums[1]) : 0.0);
    result = at::scalar_tensor(value, pred.options().dtype(c10::CppTypeToScalarType<acc_t>::value));
  });
  return {result, grad};
}

at::Tensor masked_error_stats_cpu(const at::Tensor& pred_in, const at::Tensor& target_in,
                                  const c10::optional<at::Tensor>& mask_in, bool mask_is_hole) {
  check_tensors(pred_in, target_in, mask_in, "inpaint_fast::masked_error_stats");
  if (mask_in) check_mask_values(*mask_in, mask_is_hole);
  const Prepared in = prepare(pred_in, target_in, mask_in);
  const Geometry geo = geometry_of(in);
  const int64_t numel = in.pred.numel();
  at::Tensor result;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, in.pred.scalar_type(), "masked_error_stats_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const RunParams<acc_t> rp = base_params<acc_t>(mask_is_hole);
    const scalar_t* p = in.pred.const_data_ptr<scalar_t>();
    const scalar_t* t = in.target.const_data_ptr<scalar_t>();
    std::array<acc_t, 4> sums{};
    double area_valid = static_cast<double>(numel);
    with_mask_type<scalar_t>(in.mask, [&](auto m) {
      using mask_t = std::remove_cv_t<std::remove_pointer_t<decltype(m)>>;
      if constexpr (!std::is_same_v<mask_t, NoMask>) area_valid = known_area<mask_t>(*in.mask, mask_is_hole, geo.N, geo.C);
      using run_t = run_mask_t<mask_t, acc_t>;
      auto* run_fn = cpu_variant(&stats_run_base<scalar_t, run_t, acc_t>, &stats_run_v3<scalar_t, run_t, acc_t>);
      sums = deterministic_sum<4, acc_t>(geo.units(), [&](int64_t u, acc_t* out) {
        std::vector<run_t> buffer;
        for_unit(geo, u, p, t, m, nullptr, buffer,
                 [&](const scalar_t* pr, const scalar_t* tr, const run_t* mr, int64_t len, grad_type<scalar_t>*) {
                   run_fn(pr, tr, mr, len, rp, out);
                 });
      });
    });
    result = at::empty({6}, in.pred.options().dtype(c10::CppTypeToScalarType<acc_t>::value));
    acc_t* r = result.mutable_data_ptr<acc_t>();
    for (int i = 0; i < 4; ++i) r[i] = sums[i];
    r[4] = static_cast<acc_t>(static_cast<double>(numel) - area_valid);
    r[5] = static_cast<acc_t>(area_valid);
  });
  return result;
}

}  // namespace

TORCH_LIBRARY_IMPL(inpaint_fast, CPU, m) {
  m.impl("masked_error", &masked_error_cpu);
  m.impl("masked_error_stats", &masked_error_stats_cpu);
}

}  // namespace inpaint_fast
