// CPU kernels of inpaint_fast::masked_error_sums and masked_error_sums_backward
// (schemas and semantics: csrc/ops/masked_error_sums.cpp).
//
// Work split: row r = n*C + c of the (N, C, H*W) view is cut into segments of kSegment elements;
// each (row, segment) unit is one task of at::parallel_for. A unit sums its elements in kLanes
// interleaved accumulators (a fixed order the compiler can vectorise), folds them in a fixed tree
// and stores its three partial sums in its own slot; the partials are then added in a fixed
// pairwise order. How the sums are grouped depends only on the shape, never on the thread count,
// so results are bitwise reproducible for any number of threads.
//
// Strides: each (H, W) plane must be contiguous (stride(3) == 1, stride(2) == W); other inputs
// (channels_last, transposed H/W) are copied with .contiguous(). Planes are addressed by per-row
// base offsets n*stride(0) + c*stride(1), so slices along N and C are read in place and a weight of
// shape (1|N, 1|C, H, W) is broadcast with stride 0 and never materialised. Indexing is int64.

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace inpaint_fast {
namespace {

constexpr int64_t kSegment = 4096;  // elements per work unit; a multiple of kLanes
constexpr int kLanes = 8;           // independent accumulators per unit
static_assert(kSegment % kLanes == 0, "kSegment must be a multiple of kLanes");

// Last line of defence: the Python API (inpaint_fast._validation) checks inputs first.
void check_inputs(const at::Tensor& pred, const at::Tensor& target, const at::Tensor& weight,
                  const char* op) {
  TORCH_CHECK(pred.dim() == 4, op, ": pred must be 4-D (N, C, H, W); got shape ", pred.sizes());
  TORCH_CHECK(target.sizes() == pred.sizes(), op, ": target shape ", target.sizes(),
              " must equal pred shape ", pred.sizes());
  const auto dtype = pred.scalar_type();
  TORCH_CHECK(dtype == at::kFloat || dtype == at::kDouble || dtype == at::kHalf ||
                  dtype == at::kBFloat16,
              op, ": pred must be float16, bfloat16, float32 or float64; got ", dtype);
  TORCH_CHECK(target.scalar_type() == dtype, op, ": target dtype ", target.scalar_type(),
              " must equal pred dtype ", dtype);
  TORCH_CHECK(weight.scalar_type() == dtype, op, ": weight dtype ", weight.scalar_type(),
              " must equal pred dtype ", dtype);
  TORCH_CHECK(target.device() == pred.device() && weight.device() == pred.device(), op,
              ": pred, target and weight must be on one device; got ", pred.device(), ", ",
              target.device(), ", ", weight.device());
  TORCH_CHECK(weight.dim() == 4 && (weight.size(0) == 1 || weight.size(0) == pred.size(0)) &&
                  (weight.size(1) == 1 || weight.size(1) == pred.size(1)) &&
                  weight.size(2) == pred.size(2) && weight.size(3) == pred.size(3),
              op, ": weight shape ", weight.sizes(), " must be (N|1, C|1, H, W) for pred shape ",
              pred.sizes());
}

// True when every (H, W) plane of t is one contiguous run of H*W elements.
bool planes_contiguous(const at::Tensor& t) {
  return (t.size(3) == 1 || t.stride(3) == 1) && (t.size(2) == 1 || t.stride(2) == t.size(3));
}

at::Tensor with_contiguous_planes(const at::Tensor& t) {
  return planes_contiguous(t) ? t : t.contiguous();
}

// Row strides (elements) of dims 0 and 1; 0 where the tensor is broadcast (size 1).
struct Planes {
  int64_t stride_n;
  int64_t stride_c;
};

Planes planes_of(const at::Tensor& t) {
  return {t.size(0) == 1 ? 0 : t.stride(0), t.size(1) == 1 ? 0 : t.stride(1)};
}

// Sum of x[0], x[stride], ..., x[(n-1)*stride] in a fixed pairwise order.
template <typename acc_t>
acc_t pairwise_sum(const acc_t* x, int64_t n, int64_t stride) {
  if (n <= 8) {
    acc_t s = 0;
    for (int64_t i = 0; i < n; ++i) s += x[i * stride];
    return s;
  }
  const int64_t half = n / 2;
  return pairwise_sum(x, half, stride) + pairwise_sum(x + half * stride, n - half, stride);
}

template <typename acc_t>
inline acc_t fold_lanes(const acc_t (&v)[kLanes]) {
  static_assert(kLanes == 8, "fold_lanes is written for 8 lanes");
  return ((v[0] + v[4]) + (v[2] + v[6])) + ((v[1] + v[5]) + (v[3] + v[7]));
}

// The three sums of one unit: out = [sum w*|d|, sum w*d*d, sum w] over len elements.
template <typename scalar_t, typename acc_t>
inline void sum_unit(const scalar_t* __restrict__ p, const scalar_t* __restrict__ t,
                     const scalar_t* __restrict__ w, int64_t len, acc_t* __restrict__ out) {
  acc_t s_abs[kLanes] = {};
  acc_t s_sq[kLanes] = {};
  acc_t s_w[kLanes] = {};
  int64_t j = 0;
  for (; j + kLanes <= len; j += kLanes) {
    for (int k = 0; k < kLanes; ++k) {
      const acc_t d = static_cast<acc_t>(p[j + k]) - static_cast<acc_t>(t[j + k]);
      const acc_t wk = static_cast<acc_t>(w[j + k]);
      s_abs[k] += wk * std::abs(d);
      s_sq[k] += wk * (d * d);
      s_w[k] += wk;
    }
  }
  for (int k = 0; j < len; ++j, ++k) {
    const acc_t d = static_cast<acc_t>(p[j]) - static_cast<acc_t>(t[j]);
    const acc_t wk = static_cast<acc_t>(w[j]);
    s_abs[k] += wk * std::abs(d);
    s_sq[k] += wk * (d * d);
    s_w[k] += wk;
  }
  out[0] = fold_lanes(s_abs);
  out[1] = fold_lanes(s_sq);
  out[2] = fold_lanes(s_w);
}

// Units are (row, segment) pairs; fn(row, n, c, start, len) handles one.
template <typename Fn>
void for_each_unit(int64_t N, int64_t C, int64_t HW, const Fn& fn) {
  const int64_t segments = (HW + kSegment - 1) / kSegment;
  const int64_t units = N * C * segments;
  const int64_t grain = std::max<int64_t>(1, at::internal::GRAIN_SIZE / kSegment);
  at::parallel_for(0, units, grain, [&](int64_t begin, int64_t end) {
    for (int64_t u = begin; u < end; ++u) {
      const int64_t row = u / segments;
      const int64_t start = (u % segments) * kSegment;
      fn(u, row / C, row % C, start, std::min(kSegment, HW - start));
    }
  });
}

at::Tensor masked_error_sums_cpu(const at::Tensor& pred_in, const at::Tensor& target_in,
                                 const at::Tensor& weight_in) {
  check_inputs(pred_in, target_in, weight_in, "inpaint_fast::masked_error_sums");
  const at::Tensor pred = with_contiguous_planes(pred_in);
  const at::Tensor target = with_contiguous_planes(target_in);
  const at::Tensor weight = with_contiguous_planes(weight_in);
  const int64_t N = pred.size(0), C = pred.size(1), HW = pred.size(2) * pred.size(3);
  const Planes pp = planes_of(pred), tp = planes_of(target), wp = planes_of(weight);

  at::Tensor result;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, pred.scalar_type(),
                                  "masked_error_sums_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const int64_t segments = (HW + kSegment - 1) / kSegment;
    std::vector<acc_t> partials(static_cast<size_t>(N * C * segments * 3), acc_t(0));
    const scalar_t* p = pred.const_data_ptr<scalar_t>();
    const scalar_t* t = target.const_data_ptr<scalar_t>();
    const scalar_t* w = weight.const_data_ptr<scalar_t>();
    acc_t* part = partials.data();
    for_each_unit(N, C, HW, [&](int64_t u, int64_t n, int64_t c, int64_t start, int64_t len) {
      sum_unit<scalar_t, acc_t>(p + n * pp.stride_n + c * pp.stride_c + start,
                                t + n * tp.stride_n + c * tp.stride_c + start,
                                w + n * wp.stride_n + c * wp.stride_c + start, len,
                                part + 3 * u);
    });
    const int64_t units = N * C * segments;
    result = at::empty({3}, pred.options().dtype(c10::CppTypeToScalarType<acc_t>::value));
    acc_t* r = result.mutable_data_ptr<acc_t>();
    for (int i = 0; i < 3; ++i) r[i] = pairwise_sum(part + i, units, 3);
  });
  return result;
}

at::Tensor masked_error_sums_backward_cpu(const at::Tensor& grad, const at::Tensor& pred_in,
                                          const at::Tensor& target_in,
                                          const at::Tensor& weight_in) {
  const char* op = "inpaint_fast::masked_error_sums_backward";
  check_inputs(pred_in, target_in, weight_in, op);
  TORCH_CHECK(grad.dim() == 1 && grad.size(0) == 3, op,
              ": grad must have shape (3,); got ", grad.sizes());
  TORCH_CHECK(at::isFloatingType(grad.scalar_type()), op, ": grad must be floating; got ",
              grad.scalar_type());
  TORCH_CHECK(grad.device() == pred_in.device(), op, ": grad must be on pred's device ",
              pred_in.device(), "; got ", grad.device());
  const at::Tensor pred = with_contiguous_planes(pred_in);
  const at::Tensor target = with_contiguous_planes(target_in);
  const at::Tensor weight = with_contiguous_planes(weight_in);
  const int64_t N = pred.size(0), C = pred.size(1), HW = pred.size(2) * pred.size(3);
  const Planes pp = planes_of(pred), tp = planes_of(target), wp = planes_of(weight);
  at::Tensor grad_pred = at::empty(pred.sizes(), pred.options().memory_format(at::MemoryFormat::Contiguous));

  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, pred.scalar_type(),
                                  "masked_error_sums_backward_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    // grad is read as a tensor (it may be a stride-0 expansion of a scalar): no host round trip
    // through Python. On CPU this is a plain memory read.
    const at::Tensor g = grad.to(c10::CppTypeToScalarType<acc_t>::value).contiguous();
    const acc_t g_abs = g.const_data_ptr<acc_t>()[0];
    const acc_t g_sq2 = acc_t(2) * g.const_data_ptr<acc_t>()[1];
    const scalar_t* p = pred.const_data_ptr<scalar_t>();
    const scalar_t* t = target.const_data_ptr<scalar_t>();
    const scalar_t* w = weight.const_data_ptr<scalar_t>();
    scalar_t* out = grad_pred.mutable_data_ptr<scalar_t>();
    for_each_unit(N, C, HW, [&](int64_t, int64_t n, int64_t c, int64_t start, int64_t len) {
      const scalar_t* __restrict__ pr = p + n * pp.stride_n + c * pp.stride_c + start;
      const scalar_t* __restrict__ tr = t + n * tp.stride_n + c * tp.stride_c + start;
      const scalar_t* __restrict__ wr = w + n * wp.stride_n + c * wp.stride_c + start;
      scalar_t* __restrict__ o = out + (n * C + c) * HW + start;
      for (int64_t j = 0; j < len; ++j) {
        const acc_t d = static_cast<acc_t>(pr[j]) - static_cast<acc_t>(tr[j]);
        const acc_t sign = static_cast<acc_t>(d > acc_t(0)) - static_cast<acc_t>(d < acc_t(0));
        o[j] = static_cast<scalar_t>(static_cast<acc_t>(wr[j]) * (g_abs * sign + g_sq2 * d));
      }
    });
  });
  return grad_pred;
}

}  // namespace

TORCH_LIBRARY_IMPL(inpaint_fast, CPU, m) {
  m.impl("masked_error_sums", &masked_error_sums_cpu);
  m.impl("masked_error_sums_backward", &masked_error_sums_backward_cpu);
}

}  // namespace inpaint_fast
