// CPU kernels of inpaint_fast::gram, gram_backward and style_distance
// (schemas and semantics: csrc/ops/style_distance.cpp).
//
// The work is three GEMM-shaped phases; the GEMMs themselves are ATen's (at::cpu::addmm_out on
// views: MKL sgemm/dgemm in the x86 wheels), everything around them is fused here.
//
// 1. Gram panels. G_n is symmetric, so only its upper triangle is computed: the rows are cut into
//    panels of T rows (T = 32 for C <= 128, else 64) and panel I computes the T x (C - I*T) block
//    G_n[I*T : I*T+T, I*T : C] = (scale_n * w_n * F_n)[panel rows] F_n[I*T : C]^T in one GEMM
//    (about (nt+1)/(2 nt) of the full product's FLOPs for nt panels: 62% for C = 256).
//    A work item is (sample, which feature, panel pair {p, nt-1-p}): the pairs cost the same, so
//    the items balance between threads. Operands are the feature maps themselves (views, any of
//    NCHW or channels_last) when they can be: float32/float64 without a weight, the scale then
//    being the GEMM's alpha. Otherwise HW is cut into chunks and each chunk of an operand is
//    repacked into a per-thread buffer (float16/bfloat16 converted to float32, the left operand
//    multiplied by scale_n * w_n, so the scale is applied before accumulating); the chunks'
//    products are accumulated by the GEMM (beta = 1) in a fixed order. With fewer than 4 items
//    (one image, few channels) HW is split as well, into ranges of >= 2048 positions whose
//    partial Grams are added in a fixed order afterwards, so that every thread has work.
//    float16 is converted with ATen's copy_ (vectorised for the CPU at run time; this file is
//    compiled for the baseline ISA, where the conversion would be done in software).
// 2. Epilogue, per sample, over the upper triangles: |G_p - G_t| summed (off-diagonal entries
//    twice) into a per-sample float64 partial, and the symmetric matrix
//    A_n = sign(G_p - G_t) * 2 / (N C C) (times scale_n when there is no weight) for the gradient.
//    For gram_backward, A_n = (gG_n + gG_n^T) (times scale_n without a weight).
// 3. Gradient. dF_n = A_n F_n, multiplied column by column by scale_n * w_n when weighted: one
//    GEMM per (sample, chunk of HW) work item, written straight into the gradient (float32/64) or
//    through a per-thread buffer (float16/bfloat16 read and written with conversion).
//    style_distance's gradient is float32 for float16 features (see csrc/ops/style_distance.cpp).
//
// Determinism: the work items depend on the shape only, every item writes its own outputs, the
// per-sample loss partials are added in a fixed order, and every GEMM runs on one thread: called
// inside an OpenMP parallel region MKL runs sequentially, and the item loops also set MKL's
// thread-local thread count to 1 (mkl_set_num_threads_local, looked up as a weak symbol: no link
// dependency, a no-op without MKL) so that an item run outside a parallel region (one item, or
// one thread) takes the same single-threaded code path. Results are therefore bitwise the same
// for any number of threads. Indexing is int64.

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <ATen/ops/addmm_cpu_dispatch.h>
#include <c10/core/impl/LocalDispatchKeySet.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <type_traits>
#include <vector>

#include "common/alloc.h"
#include "common/reduce.h"
#include "ops/style_distance.h"

#if defined(__GNUC__) && defined(__ELF__)
// MKL's service function mkl_set_num_threads_local (mkl_service.h maps that C name to
// MKL_Set_Num_Threads_Local; the lower-case symbols are the Fortran interface, taking int*),
// exported by libtorch_cpu in MKL builds of torch. Weak: it resolves to null where torch has no
// MKL, and the extension gains no link dependency.
extern "C" int MKL_Set_Num_Threads_Local(int nthreads) __attribute__((weak));
#define INPAINT_FAST_HAVE_MKL_LOCAL 1
#endif

namespace inpaint_fast {
namespace {

using style_distance_host::check_gram_backward_inputs;
using style_distance_host::check_gram_inputs;
using style_distance_host::check_style_inputs;

// ------------------------------------------------------------------------------------ settings

// Rows per Gram panel.
int64_t panel_rows(int64_t C) { return C <= 128 ? 32 : 64; }

int64_t round_chunk(int64_t k, int64_t HW) {
  k = std::max<int64_t>(256, std::min<int64_t>(k, 8192));
  k = (k / 64) * 64;  // whole cache lines
  return std::max<int64_t>(1, std::min(k, HW));
}

// The Gram phase wants at least this many work items; below it, HW is split too, into ranges
// of at least kMinSplitColumns positions.
constexpr int64_t kMinGramItems = 4;
constexpr int64_t kMinSplitColumns = 2048;

// HW chunk of a repacked Gram operand: the right operand (up to C rows) stays about 1 MiB.
int64_t gram_chunk(int64_t C, int64_t HW) { return round_chunk((int64_t{1} << 18) / std::max<int64_t>(C, 1), HW); }

// HW chunk of a gradient work item (C x chunk of the output): about 512 KiB.
int64_t grad_chunk(int64_t C, int64_t HW) { return round_chunk((int64_t{1} << 17) / std::max<int64_t>(C, 1), HW); }

// ------------------------------------------------------------------------------------ helpers

// Runs the GEMMs of a work-item loop on the calling thread only (see the file comment).
class SequentialBlas {
 public:
  SequentialBlas() {
#ifdef INPAINT_FAST_HAVE_MKL_LOCAL
    if (MKL_Set_Num_Threads_Local != nullptr) previous_ = MKL_Set_Num_Threads_Local(1);
#endif
  }
  ~SequentialBlas() {
#ifdef INPAINT_FAST_HAVE_MKL_LOCAL
    if (MKL_Set_Num_Threads_Local != nullptr) MKL_Set_Num_Threads_Local(previous_);
#endif
  }
  SequentialBlas(const SequentialBlas&) = delete;
  SequentialBlas& operator=(const SequentialBlas&) = delete;

 private:
  int previous_ = 0;  // 0: MKL's global setting
};

// Per-sample (C x HW) matrices of a (N, C, H, W) tensor, by element strides.
struct Layout {
  int64_t sn, sc, sk;   // sample, channel (row), position (column) strides
  bool channels_last;   // sc == 1 (columns are C-vectors) rather than sk == 1
};

// The tensor to read (feat itself when NCHW- or channels_last-contiguous, else an NCHW copy).
at::Tensor matrices_of(const at::Tensor& feat, Layout* layout) {
  const int64_t C = feat.size(1), HW = feat.size(2) * feat.size(3);
  if (feat.is_contiguous()) {
    *layout = {C * HW, HW, 1, false};
    return feat;
  }
  if (feat.is_contiguous(at::MemoryFormat::ChannelsLast)) {
    *layout = {C * HW, 1, C, true};
    return feat;
  }
  *layout = {C * HW, HW, 1, false};
  return feat.contiguous();
}

at::Tensor empty_like_layout(const at::Tensor& feat, const Layout& layout,
                             std::optional<at::ScalarType> dtype = std::nullopt) {
  return empty_output(feat.sizes(), feat.options().dtype(dtype.value_or(feat.scalar_type())),
                      layout.channels_last ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous);
}

// A non-owning rows x cols matrix view (no autograd metadata: safe on any thread).
at::Tensor mat(const void* data, int64_t rows, int64_t cols, int64_t rs, int64_t cs,
               at::ScalarType dtype) {
  return at::from_blob(const_cast<void*>(data), {rows, cols}, {rs, cs},
                       at::TensorOptions().dtype(dtype).device(at::kCPU));
}

// out = alpha * a @ b + beta * out (beta == 0: out is not read).
void gemm(at::Tensor& out, const at::Tensor& a, const at::Tensor& b, double alpha, double beta) {
  at::cpu::addmm_out(out, out, a, b, beta, alpha);
}

// Strides of a packed rows x kn buffer in the orientation of a source with column stride cs:
// row-major when cs == 1, column-major (ld = rows) otherwise.
inline int64_t packed_rs(int64_t cs, int64_t kn) { return cs == 1 ? kn : 1; }
inline int64_t packed_cs(int64_t cs, int64_t rows) { return cs == 1 ? 1 : rows; }

// x (rows x kn, strides rs/cs) *= mult[k] (or scalar when mult is null).
template <typename acc_t>
void scale_columns(acc_t* x, int64_t rs, int64_t cs, int64_t rows, int64_t kn,
                   const acc_t* __restrict__ mult, acc_t scalar) {
  if (mult == nullptr && scalar == acc_t(1)) return;
  if (cs == 1) {
    for (int64_t r = 0; r < rows; ++r) {
      acc_t* __restrict__ d = x + r * rs;
      if (mult != nullptr) {
        for (int64_t k = 0; k < kn; ++k) d[k] *= mult[k];
      } else {
        for (int64_t k = 0; k < kn; ++k) d[k] *= scalar;
      }
    }
  } else {
    for (int64_t k = 0; k < kn; ++k) {
      acc_t* __restrict__ d = x + k * cs;
      const acc_t m = mult != nullptr ? mult[k] : scalar;
      for (int64_t r = 0; r < rows; ++r) d[r * rs] *= m;
    }
  }
}

// dst (rows x kn, acc_t, packed in src's orientation) = src (rows x kn, strides rs/cs) * mult[k]
// (or * scalar when mult is null).
template <typename src_t, typename acc_t>
void pack(const src_t* __restrict__ src, int64_t rs, int64_t cs, int64_t rows, int64_t kn,
          const acc_t* __restrict__ mult, acc_t scalar, acc_t* __restrict__ dst) {
  if constexpr (std::is_same_v<src_t, at::Half>) {
    // float16 -> float32 through ATen's copy_ (vectorised, dispatched to the CPU's AVX2/AVX-512
    // code at run time); the plain loop below would convert in software, 4x slower overall.
    const int64_t drs = packed_rs(cs, kn), dcs = packed_cs(cs, rows);
    mat(dst, rows, kn, drs, dcs, c10::CppTypeToScalarType<acc_t>::value)
        .copy_(mat(src, rows, kn, rs, cs, at::kHalf));
    scale_columns<acc_t>(dst, drs, dcs, rows, kn, mult, scalar);
    return;
  }
  if (cs == 1) {
    for (int64_t r = 0; r < rows; ++r) {
      const src_t* __restrict__ s = src + r * rs;
      acc_t* __restrict__ d = dst + r * kn;
      if (mult != nullptr) {
        for (int64_t k = 0; k < kn; ++k) d[k] = static_cast<acc_t>(s[k]) * mult[k];
      } else {
        for (int64_t k = 0; k < kn; ++k) d[k] = static_cast<acc_t>(s[k]) * scalar;
      }
    }
  } else {
    for (int64_t k = 0; k < kn; ++k) {
      const src_t* __restrict__ s = src + k * cs;
      acc_t* __restrict__ d = dst + k * rows;
      const acc_t m = mult != nullptr ? mult[k] : scalar;
      for (int64_t r = 0; r < rows; ++r) d[r] = static_cast<acc_t>(s[r * rs]) * m;
    }
  }
}

// dst (rows x kn, strides rs/cs, out_t) = src (acc_t, strides src_rs/src_cs in dst's
// orientation; src may be dst itself when out_t == acc_t) * mult[k] (when mult is not null).
// src is scratch: for float16 output it is scaled in place before the conversion.
template <typename acc_t, typename out_t>
void store_columns(acc_t* src, int64_t src_rs, int64_t src_cs, out_t* dst, int64_t rs,
                   int64_t cs, int64_t rows, int64_t kn, const acc_t* __restrict__ mult) {
  if constexpr (std::is_same_v<out_t, at::Half>) {
    scale_columns<acc_t>(src, src_rs, src_cs, rows, kn, mult, acc_t(1));
    mat(dst, rows, kn, rs, cs, at::kHalf)
        .copy_(mat(src, rows, kn, src_rs, src_cs, c10::CppTypeToScalarType<acc_t>::value));
    return;
  }
  if (cs == 1) {
    for (int64_t r = 0; r < rows; ++r) {
      const acc_t* s = src + r * src_rs;
      out_t* d = dst + r * rs;
      if (mult != nullptr) {
        for (int64_t k = 0; k < kn; ++k) d[k] = static_cast<out_t>(s[k] * mult[k]);
      } else {
        for (int64_t k = 0; k < kn; ++k) d[k] = static_cast<out_t>(s[k]);
      }
    }
  } else {
    for (int64_t k = 0; k < kn; ++k) {
      const acc_t* s = src + k * src_cs;
      out_t* d = dst + k * cs;
      if (mult != nullptr) {
        const acc_t m = mult[k];
        for (int64_t r = 0; r < rows; ++r) d[r * rs] = static_cast<out_t>(s[r * src_rs] * m);
      } else {
        for (int64_t r = 0; r < rows; ++r) d[r * rs] = static_cast<out_t>(s[r * src_rs]);
      }
    }
  }
}

// Per-sample weights: ws (Nw, HW) = w * scale_n and scale (N) in acc_t; no weight: ws empty and
// scale_n = 1 / (C * HW).
template <typename scalar_t, typename acc_t>
struct Weights {
  std::vector<acc_t> ws;     // (Nw, HW), row n of sample n (or row 0 for every sample)
  std::vector<acc_t> scale;  // (N)
  int64_t nw = 0;            // rows of ws; 0 without a weight

  const acc_t* row(int64_t n) const {
    return nw == 0 ? nullptr : ws.data() + (nw == 1 ? 0 : n) * (static_cast<int64_t>(ws.size()) / nw);
  }
};

template <typename scalar_t, typename acc_t>
Weights<scalar_t, acc_t> weights_of(const std::optional<at::Tensor>& weight, int64_t N, int64_t C,
                                    int64_t HW, double eps) {
  Weights<scalar_t, acc_t> out;
  out.scale.assign(static_cast<size_t>(N), acc_t(0));
  if (!weight.has_value()) {
    const double s = 1.0 / (static_cast<double>(C) * static_cast<double>(HW));
    std::fill(out.scale.begin(), out.scale.end(), static_cast<acc_t>(s));
    return out;
  }
  const at::Tensor w = weight->reshape({weight->size(0), HW}).contiguous();
  const int64_t nw = w.size(0);
  out.nw = nw;
  out.ws.resize(static_cast<size_t>(nw * HW));
  const scalar_t* wp = w.const_data_ptr<scalar_t>();
  std::vector<acc_t> row_scale(static_cast<size_t>(nw));
  for (int64_t r = 0; r < nw; ++r) {
    double area = 0;  // sum in float64, in order: exact enough and deterministic
    for (int64_t k = 0; k < HW; ++k) area += static_cast<double>(static_cast<acc_t>(wp[r * HW + k]));
    const double s = 1.0 / (static_cast<double>(C) * std::max(area, eps));
    row_scale[r] = static_cast<acc_t>(s);
    for (int64_t k = 0; k < HW; ++k) {
      out.ws[r * HW + k] = static_cast<acc_t>(wp[r * HW + k]) * row_scale[r];
    }
  }
  for (int64_t n = 0; n < N; ++n) out.scale[n] = row_scale[nw == 1 ? 0 : n];
  return out;
}

// ------------------------------------------------------------------------------------ phase 1

// The per-sample matrices of one feature tensor.
template <typename scalar_t>
struct Mats {
  const scalar_t* data;
  Layout layout;
};

// Upper triangles (panel blocks, see the file comment) of the Grams of the features in `feats`
// into G (feats.size() x N x C x C, acc_t, row-major); entries strictly below the diagonal are
// not all written.
template <typename scalar_t, typename acc_t>
void gram_panels(const std::vector<Mats<scalar_t>>& feats, int64_t N, int64_t C, int64_t HW,
                 const Weights<scalar_t, acc_t>& W, acc_t* G) {
  constexpr bool kConvert = !std::is_same_v<scalar_t, acc_t>;
  const auto acc_type = c10::CppTypeToScalarType<acc_t>::value;
  const bool weighted = W.nw > 0;
  const bool repack = weighted || kConvert;
  const int64_t T = std::min(panel_rows(C), C);
  const int64_t nt = (C + T - 1) / T;
  const int64_t pairs = (nt + 1) / 2;
  const int64_t n_feats = static_cast<int64_t>(feats.size());
  const int64_t CC = C * C;
  // Few (feature, sample, pair) items (a single image, few channels): HW is also split into
  // `parts` ranges whose partial Grams are added afterwards in a fixed order, so that every
  // thread has work. The split depends on the shape only.
  const int64_t base_items = n_feats * N * pairs;
  const int64_t parts = base_items >= kMinGramItems
                            ? 1
                            : std::max<int64_t>(1, std::min((kMinGramItems + base_items - 1) / base_items,
                                                            HW / kMinSplitColumns));
  const int64_t part_len = (HW + parts - 1) / parts;
  const int64_t kc = repack ? gram_chunk(C, HW) : HW;
  std::vector<acc_t> partial(parts > 1 ? static_cast<size_t>(parts * n_feats * N * CC) : 0);

  at::parallel_for(0, base_items * parts, 1, [&](int64_t begin, int64_t end) {
    SequentialBlas sequential;
    c10::impl::ExcludeDispatchKeyGuard no_autograd(c10::autograd_dispatch_keyset_with_ADInplaceOrView);
    std::vector<acc_t> left, right;
    if (repack) {
      left.resize(static_cast<size_t>(T * std::min(kc, part_len)));
      if (kConvert) right.resize(static_cast<size_t>(C * std::min(kc, part_len)));
    }
    for (int64_t item = begin; item < end; ++item) {
      const int64_t part = item % parts;
      const int64_t p = (item / parts) % pairs;
      const int64_t n = (item / (parts * pairs)) % N;
      const int64_t f = item / (parts * pairs * N);
      const int64_t k_begin = part * part_len;
      const int64_t k_end = std::min(HW, k_begin + part_len);
      if (k_begin >= k_end) continue;  // (not reached: parts <= HW / kMinSplitColumns)
      const Layout& L = feats[f].layout;
      const scalar_t* F = feats[f].data + n * L.sn;
      acc_t* Gn = parts > 1 ? partial.data() + ((part * n_feats + f) * N + n) * CC
                            : G + (f * N + n) * CC;
      const acc_t* ws = W.row(n);
      const int64_t panels[2] = {p, nt - 1 - p};
      for (int q = 0; q < (panels[0] == panels[1] ? 1 : 2); ++q) {
        const int64_t i0 = panels[q] * T;
        const int64_t rows = std::min(T, C - i0);
        const int64_t cols = C - i0;
        at::Tensor out = mat(Gn + i0 * C + i0, rows, cols, C, 1, acc_type);
        if (!repack) {
          const scalar_t* src = F + i0 * L.sc + k_begin * L.sk;
          const int64_t kn = k_end - k_begin;
          gemm(out, mat(src, rows, kn, L.sc, L.sk, acc_type), mat(src, cols, kn, L.sc, L.sk, acc_type).t(),
               static_cast<double>(W.scale[n]), 0.0);
          continue;
        }
        for (int64_t k0 = k_begin; k0 < k_end; k0 += kc) {
          const int64_t kn = std::min(kc, k_end - k0);
          const scalar_t* src = F + i0 * L.sc + k0 * L.sk;
          // Left: the panel's rows times scale_n * w (or scale_n): scaled before accumulating.
          pack<scalar_t, acc_t>(src, L.sc, L.sk, rows, kn, ws != nullptr ? ws + k0 : nullptr,
                                W.scale[n], left.data());
          at::Tensor a = mat(left.data(), rows, kn, packed_rs(L.sk, kn), packed_cs(L.sk, rows), acc_type);
          at::Tensor b;
          if constexpr (kConvert) {
            pack<scalar_t, acc_t>(src, L.sc, L.sk, cols, kn, nullptr, acc_t(1), right.data());
            b = mat(right.data(), cols, kn, packed_rs(L.sk, kn), packed_cs(L.sk, cols), acc_type);
          } else {
            b = mat(src, cols, kn, L.sc, L.sk, acc_type);
          }
          gemm(out, a, b.t(), 1.0, k0 == k_begin ? 0.0 : 1.0);
        }
      }
    }
  });
  if (parts == 1) return;
  // G = sum of the parts' upper triangles, added in part order.
  at::parallel_for(0, n_feats * N * C, 1, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {  // r = (f * N + n) * C + i: row i of one Gram
      const int64_t i = r % C;
      acc_t* g = G + r * C;
      for (int64_t j = i; j < C; ++j) {
        acc_t sum = partial[r * C + j];
        for (int64_t part = 1; part < parts; ++part) sum += partial[(part * n_feats * N * C + r) * C + j];
        g[j] = sum;
      }
    }
  });
}

// ------------------------------------------------------------------------------------ phase 3

// grad_n = A_n F_n (times ws_n column by column when weighted) for every sample; A is
// (N, C, C) acc_t, symmetric; grad has layout L and dtype out_t (feat's dtype, or float32).
template <typename scalar_t, typename acc_t, typename out_t>
void apply_gradient(const scalar_t* feat, const Layout& L, int64_t N, int64_t C, int64_t HW,
                    const Weights<scalar_t, acc_t>& W, const acc_t* A, out_t* grad) {
  constexpr bool kConvertIn = !std::is_same_v<scalar_t, acc_t>;
  constexpr bool kDirectOut = std::is_same_v<out_t, acc_t>;
  const auto acc_type = c10::CppTypeToScalarType<acc_t>::value;
  const int64_t kc = grad_chunk(C, HW);
  const int64_t chunks = (HW + kc - 1) / kc;

  at::parallel_for(0, N * chunks, 1, [&](int64_t begin, int64_t end) {
    SequentialBlas sequential;
    c10::impl::ExcludeDispatchKeyGuard no_autograd(c10::autograd_dispatch_keyset_with_ADInplaceOrView);
    std::vector<acc_t> in_buf(kConvertIn ? static_cast<size_t>(C * kc) : 0);
    std::vector<acc_t> out_buf(kDirectOut ? 0 : static_cast<size_t>(C * kc));
    for (int64_t item = begin; item < end; ++item) {
      const int64_t n = item / chunks;
      const int64_t k0 = (item % chunks) * kc;
      const int64_t kn = std::min(kc, HW - k0);
      const acc_t* ws = W.row(n) != nullptr ? W.row(n) + k0 : nullptr;
      const at::Tensor a = mat(A + n * C * C, C, C, C, 1, acc_type);
      const scalar_t* src = feat + n * L.sn + k0 * L.sk;
      out_t* dst = grad + n * L.sn + k0 * L.sk;
      // Packed buffers keep the source's orientation (see pack).
      const int64_t rs = packed_rs(L.sk, kn), cs = packed_cs(L.sk, C);
      at::Tensor b;
      if constexpr (kConvertIn) {
        pack<scalar_t, acc_t>(src, L.sc, L.sk, C, kn, nullptr, acc_t(1), in_buf.data());
        b = mat(in_buf.data(), C, kn, rs, cs, acc_type);
      } else {
        b = mat(src, C, kn, L.sc, L.sk, acc_type);
      }
      if constexpr (kDirectOut) {
        at::Tensor out = mat(dst, C, kn, L.sc, L.sk, acc_type);
        gemm(out, a, b, 1.0, 0.0);
        scale_columns<acc_t>(dst, L.sc, L.sk, C, kn, ws, acc_t(1));
      } else {
        at::Tensor out = mat(out_buf.data(), C, kn, rs, cs, acc_type);
        gemm(out, a, b, 1.0, 0.0);
        store_columns<acc_t, out_t>(out_buf.data(), rs, cs, dst, L.sc, L.sk, C, kn, ws);
      }
    }
  });
}

// ------------------------------------------------------------------------------------ checks

// ------------------------------------------------------------------------------------ gram

at::Tensor gram_cpu(const at::Tensor& feat_in, const std::optional<at::Tensor>& weight, double eps) {
  check_gram_inputs(feat_in, weight, eps, at::kCPU);
  const int64_t N = feat_in.size(0), C = feat_in.size(1), HW = feat_in.size(2) * feat_in.size(3);
  at::Tensor out = at::empty({N, C, C}, feat_in.options().memory_format(at::MemoryFormat::Contiguous));
  if (N * C == 0) return out;
  Layout L;
  const at::Tensor feat = matrices_of(feat_in, &L);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, feat.scalar_type(), "gram_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    if (HW == 0) {  // no position: a zero Gram (as the reference's F F^T / max(C H W, 1))
      out.zero_();
      return;
    }
    const auto W = weights_of<scalar_t, acc_t>(weight, N, C, HW, eps);
    at::Tensor g = std::is_same_v<scalar_t, acc_t>
                       ? out
                       : at::empty({N, C, C}, out.options().dtype(c10::CppTypeToScalarType<acc_t>::value));
    acc_t* G = g.mutable_data_ptr<acc_t>();
    gram_panels<scalar_t, acc_t>({{feat.const_data_ptr<scalar_t>(), L}}, N, C, HW, W, G);
    scalar_t* o = out.mutable_data_ptr<scalar_t>();
    // Mirror the upper triangle (and cast); for float32/float64 in place.
    at::parallel_for(0, N, 1, [&](int64_t begin, int64_t end) {
      for (int64_t n = begin; n < end; ++n) {
        const acc_t* Gn = G + n * C * C;
        scalar_t* On = o + n * C * C;
        for (int64_t i = 0; i < C; ++i) {
          for (int64_t j = i; j < C; ++j) {
            const scalar_t v = static_cast<scalar_t>(Gn[i * C + j]);
            On[i * C + j] = v;
            On[j * C + i] = v;
          }
        }
      }
    });
  });
  return out;
}

at::Tensor gram_backward_cpu(const at::Tensor& grad_in, const at::Tensor& feat_in,
                             const std::optional<at::Tensor>& weight, double eps) {
  check_gram_backward_inputs(grad_in, feat_in, weight, eps, at::kCPU);
  const int64_t N = feat_in.size(0), C = feat_in.size(1), HW = feat_in.size(2) * feat_in.size(3);
  Layout L;
  const at::Tensor feat = matrices_of(feat_in, &L);
  at::Tensor grad_feat = empty_like_layout(feat, L);
  if (grad_feat.numel() == 0) return grad_feat;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, feat.scalar_type(), "gram_backward_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const auto W = weights_of<scalar_t, acc_t>(weight, N, C, HW, eps);
    const at::Tensor g = grad_in.to(c10::CppTypeToScalarType<acc_t>::value).contiguous();
    const acc_t* gp = g.const_data_ptr<acc_t>();
    std::vector<acc_t> A(static_cast<size_t>(N * C * C));
    for (int64_t n = 0; n < N; ++n) {
      // Without a weight the scale goes into A; with one it is in ws (applied per column).
      const acc_t s = W.nw > 0 ? acc_t(1) : W.scale[n];
      const acc_t* gn = gp + n * C * C;
      acc_t* An = A.data() + n * C * C;
      for (int64_t i = 0; i < C; ++i) {
        for (int64_t j = 0; j < C; ++j) An[i * C + j] = (gn[i * C + j] + gn[j * C + i]) * s;
      }
    }
    apply_gradient<scalar_t, acc_t, scalar_t>(feat.const_data_ptr<scalar_t>(), L, N, C, HW, W,
                                              A.data(), grad_feat.mutable_data_ptr<scalar_t>());
  });
  return grad_feat;
}

// ------------------------------------------------------------------------------------ style

std::tuple<at::Tensor, at::Tensor> style_distance_cpu(const at::Tensor& pred_in,
                                                      const at::Tensor& target_in,
                                                      const std::optional<at::Tensor>& weight,
                                                      double eps, bool compute_grad) {
  check_style_inputs(pred_in, target_in, weight, eps, at::kCPU);
  const int64_t N = pred_in.size(0), C = pred_in.size(1), HW = pred_in.size(2) * pred_in.size(3);
  const auto loss_type = pred_in.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;

  Layout L, Lt;
  const at::Tensor pred = matrices_of(pred_in, &L);
  const at::Tensor target = matrices_of(target_in, &Lt);
  // float16 features get a float32 gradient: it is computed here, before the backward multiplies
  // it by grad_output (e.g. a GradScaler's 2^16), and is usually below float16's range before
  // that (2 scale / (N C C) ~ 1e-10). bfloat16 has float32's range and keeps its dtype.
  const auto grad_type = grad_dtype(pred_in.scalar_type());
  at::Tensor grad = compute_grad ? empty_like_layout(pred, L, grad_type)
                                 : at::empty({0}, pred.options().dtype(grad_type));
  at::Tensor loss = at::empty({}, pred.options().dtype(loss_type));

  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, pred.scalar_type(), "style_distance_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    if (N * C == 0 || HW == 0) {
      // the mean of an empty set of Gram entries is 0 (as the reference's masked mean); HW == 0
      // gives zero Grams, so 0 too.
      *loss.mutable_data_ptr<acc_t>() = acc_t(0);
      if (compute_grad) grad.zero_();
      return;
    }
    const auto W = weights_of<scalar_t, acc_t>(weight, N, C, HW, eps);
    const int64_t CC = C * C;
    std::vector<acc_t> G(static_cast<size_t>(2 * N * CC));
    gram_panels<scalar_t, acc_t>({{pred.const_data_ptr<scalar_t>(), L}, {target.const_data_ptr<scalar_t>(), Lt}},
                                 N, C, HW, W, G.data());
    // Epilogue: per-sample sum |G_p - G_t| over the full matrix (off-diagonal pairs twice), and
    // A_n = sign(G_p - G_t) * 2 / (N C C) (* scale_n without a weight).
    std::vector<double> partial(static_cast<size_t>(N), 0.0);
    std::vector<acc_t> A(compute_grad ? static_cast<size_t>(N * CC) : 0);
    const double denom = static_cast<double>(N) * static_cast<double>(CC);
    at::parallel_for(0, N, 1, [&](int64_t begin, int64_t end) {
      for (int64_t n = begin; n < end; ++n) {
        const acc_t* Gp = G.data() + n * CC;
        const acc_t* Gt = G.data() + (N + n) * CC;
        const acc_t c = static_cast<acc_t>(2.0 / denom) * (W.nw > 0 ? acc_t(1) : W.scale[n]);
        acc_t* An = compute_grad ? A.data() + n * CC : nullptr;
        double total = 0;
        for (int64_t i = 0; i < C; ++i) {
          const acc_t* p = Gp + i * C;
          const acc_t* t = Gt + i * C;
          double off = 0;  // the row's strictly-upper entries
          for (int64_t j = i + 1; j < C; ++j) off += static_cast<double>(std::abs(p[j] - t[j]));
          total += static_cast<double>(std::abs(p[i] - t[i])) + 2.0 * off;
          if (An != nullptr) {
            for (int64_t j = i; j < C; ++j) {
              const acc_t d = p[j] - t[j];
              const acc_t s = static_cast<acc_t>((d > acc_t(0)) - (d < acc_t(0))) * c;
              An[i * C + j] = s;
              An[j * C + i] = s;
            }
          }
        }
        partial[n] = total;
      }
    });
    const double sum = pairwise_sum(partial.data(), N, 1);
    *loss.mutable_data_ptr<acc_t>() = static_cast<acc_t>(sum / denom);
    if (compute_grad) {
      using grad_t = std::conditional_t<std::is_same_v<scalar_t, at::Half>, float, scalar_t>;
      apply_gradient<scalar_t, acc_t, grad_t>(pred.const_data_ptr<scalar_t>(), L, N, C, HW, W,
                                              A.data(), grad.mutable_data_ptr<grad_t>());
    }
  });
  return {loss, grad};
}

}  // namespace

TORCH_LIBRARY_IMPL(inpaint_fast, CPU, m) {
  m.impl("gram", &gram_cpu);
  m.impl("gram_backward", &gram_backward_cpu);
  m.impl("style_distance", &style_distance_cpu);
}

}  // namespace inpaint_fast
