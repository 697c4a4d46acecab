// CPU kernel of inpaint_fast::masked_tv (schema and semantics: csrc/ops/masked_tv.cpp).
//
// Two passes, the second the only one over the image:
//  1. (normalize = 'mask' only) a pre-pass over the MASK: the areas sum wv and sum wh of the pair
//     weights, over the mask's own (N|1, C|1) planes, then scaled to the broadcast (N, C) shape.
//  2. the stencil pass: work unit = (n, block of rows) over all channels. For each row i the unit
//     derives the region weights r of rows i, i+1 from the mask once (a rolling row cache: the
//     dilation's horizontal and vertical maxima are computed once per mask row) and the scaled
//     pair-weight rows gv(i) = kv wv(i), gw(i) = kh wh(i) (kv, kh: the directions' normalisers,
//     times 2 for p = 2); then, for every channel sharing that mask plane, the row kernel reads
//     image rows i and i+1 (row i+1 is re-read from cache as row i of the next row: each image
//     element comes from memory once), accumulates the loss terms of the pairs (i, i+1) and
//     (j, j+1) and writes d loss / d x(i, j), which gathers the four pairs around the pixel:
//       g = gv(i-1) s(x(i) - x(i-1)) - gv(i) s(x(i+1) - x(i))
//         + gw(j-1) s(x(j) - x(j-1)) - gw(j) s(x(j+1) - x(j))
//     with s(d) = sign(d) (p = 1, sign(0) = 0) or d (p = 2). The vertical terms of row i are kept
//     (one row per channel) as the terms of row i+1's upper pairs. The loss is
//     sum (gv e_v + gw e_h) / (1 or 2), e = |d| or d^2.
// No full-size temporary: per unit a few rows of weights.
//
// Determinism: units depend on the shape only; each writes its loss partial (double) into its own
// slot, summed in a fixed order (common/reduce.h). Inside a unit the loss terms go to the lanes of
// a 64-byte vector accumulator, folded in a fixed tree at the end. Bitwise the same for any thread
// count.
//
// Vectorisation: the row kernels are written with 64-byte GNU vectors (16 floats / 8 doubles) and,
// with the per-row weight primitives, compiled three times (IsaDefault, IsaAvx2, IsaAvx512 below:
// baseline SSE2, x86-64-v3 (AVX2), x86-64-v4 (AVX-512)); common/cpu_dispatch.h picks the level once
// per process (the CPU's best, capped by ATEN_CPU_CAPABILITY), since the extension itself is built
// for baseline x86-64. The lanes are part of the algorithm and floating-point contraction is off,
// so every variant and code path rounds the same way: bitwise the same results at every level, on
// any x86-64 machine (tests/test_cpu_isa.py compares them).
//
// Layout: NCHW images whose (H, W) planes are contiguous are read in place (planes addressed by
// n*stride(0) + c*stride(1), so slices along N/C too); so are channels_last images of 2..7
// channels when the mask is shared by the channels: a row is then one run of W*C interleaved
// elements whose horizontal neighbours are C apart, its pair weights those of the pixels repeated
// C times, and the gradient is channels_last. Any other layout is copied with .contiguous() (NCHW
// gradient). The gradient is float32 for float16 images, else their dtype. The mask is broadcast over
// N and C with stride 0, never materialised; bool and uint8 masks are read as uint8 and are binary
// (any non-zero value is 1). Indexing is int64.

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <utility>
#include <vector>

#include "common/alloc.h"
#include "common/cpu_dispatch.h"
#include "common/layout.h"
#include "common/reduce.h"
#include "ops/masked_tv.h"

// The 64-byte vector helpers are always inlined: no vector crosses a call boundary, so the ABI note
// gcc prints for such vectors in the baseline build does not apply.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wpsabi"
#endif

// No fused multiply-adds: every variant (and every code path: vector steps, one-element rows,
// channels_last rows) then rounds each product and sum the same way, so results are bitwise the
// same whichever instruction set or path computes them.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=off")
#elif defined(__clang__)
#pragma clang fp contract(off)
#endif

namespace inpaint_fast {
namespace {

using namespace masked_tv_host;  // Region, the checks, the layout rule

constexpr int64_t kUnitElements = 1 << 16;  // target image elements per work unit

// 64-byte GNU vectors (GCC/Clang vector extensions): one zmm register in the AVX-512 variant, two
// ymm in the AVX2 variant, four xmm in the baseline one.
template <typename acc_t>
struct Vec;
template <>
struct Vec<float> {
  typedef float V __attribute__((vector_size(64)));
  typedef int32_t M __attribute__((vector_size(64)));
  typedef uint32_t U __attribute__((vector_size(64)));
  static constexpr int L = 16;
  static constexpr int32_t kAbs = 0x7fffffff;
  static constexpr uint32_t kInf = 0x7f800000;
};
template <>
struct Vec<double> {
  typedef double V __attribute__((vector_size(64)));
  typedef int64_t M __attribute__((vector_size(64)));
  typedef uint64_t U __attribute__((vector_size(64)));
  static constexpr int L = 8;
  static constexpr int64_t kAbs = 0x7fffffffffffffffLL;
  static constexpr uint64_t kInf = 0x7ff0000000000000ULL;
};

template <typename acc_t, typename scalar_t>
INPAINT_FAST_INLINE typename Vec<acc_t>::V vload(const scalar_t* p) {
  typename Vec<acc_t>::V v;
  if constexpr (std::is_same_v<acc_t, scalar_t>) {
    std::memcpy(&v, p, sizeof(v));
  } else {
    acc_t t[Vec<acc_t>::L];
    for (int k = 0; k < Vec<acc_t>::L; ++k) t[k] = static_cast<acc_t>(p[k]);
    std::memcpy(&v, t, sizeof(v));
  }
  return v;
}

template <typename acc_t, typename scalar_t>
INPAINT_FAST_INLINE void vstore(scalar_t* p, typename Vec<acc_t>::V v) {
  if constexpr (std::is_same_v<acc_t, scalar_t>) {
    std::memcpy(p, &v, sizeof(v));
  } else {
    acc_t t[Vec<acc_t>::L];
    std::memcpy(t, &v, sizeof(v));
    for (int k = 0; k < Vec<acc_t>::L; ++k) p[k] = static_cast<scalar_t>(t[k]);
  }
}

// The lanes of v added in a fixed tree (halving).
template <typename acc_t>
INPAINT_FAST_INLINE acc_t vfold(typename Vec<acc_t>::V v) {
  constexpr int L = Vec<acc_t>::L;
  acc_t t[L];
  std::memcpy(t, &v, sizeof(v));
  for (int half = L / 2; half >= 1; half /= 2) {
    for (int k = 0; k < half; ++k) t[k] = t[k] + t[k + half];
  }
  return t[0];
}

// v where keep is all ones, +0 where it is 0 (lane masks: -1 or 0).
template <typename acc_t>
INPAINT_FAST_INLINE typename Vec<acc_t>::V vkeep(typename Vec<acc_t>::V v, typename Vec<acc_t>::M keep) {
  using V = typename Vec<acc_t>::V;
  using M = typename Vec<acc_t>::M;
  return reinterpret_cast<V>(reinterpret_cast<M>(v) & keep);
}

// Scalar and vector forms of the pair error e(d) = |d| (p = 1) or d^2 (p = 2) and of the pair's
// gradient term g(w, d) = w * de/dd / (1 or 2): w sign(d) (sign(0) = sign(NaN) = 0, as torch.sign)
// for p = 1, w d for p = 2 (the factor 2 of p = 2 is folded into the gradient weights w, see grad_scale).
template <int P, typename acc_t>
INPAINT_FAST_INLINE acc_t err(acc_t d) {
  if constexpr (P == 1) {
    return std::abs(d);
  } else {
    return d * d;
  }
}

template <int P, typename acc_t>
INPAINT_FAST_INLINE acc_t gterm(acc_t w, acc_t d) {
  if constexpr (P == 1) {
    return d > acc_t(0) ? w : (d < acc_t(0) ? -w : acc_t(0));
  } else {
    return w * d;
  }
}

template <int P, typename acc_t>
INPAINT_FAST_INLINE typename Vec<acc_t>::V verr(typename Vec<acc_t>::V d) {
  using V = typename Vec<acc_t>::V;
  using M = typename Vec<acc_t>::M;
  if constexpr (P == 1) {
    return reinterpret_cast<V>(reinterpret_cast<M>(d) & Vec<acc_t>::kAbs);  // clear the sign bit
  } else {
    return d * d;
  }
}

template <int P, typename acc_t>
INPAINT_FAST_INLINE typename Vec<acc_t>::V vgterm(typename Vec<acc_t>::V w, typename Vec<acc_t>::V d) {
  using V = typename Vec<acc_t>::V;
  using M = typename Vec<acc_t>::M;
  if constexpr (P == 1) {
    // w with d's sign bit xor-ed in (= w sign(d) for d != 0), zeroed where d is 0 or NaN (as gterm):
    // where |d|'s bits minus 1, unsigned, are not below inf's. One integer compare: gcc splits the
    // float compares false on NaN (<, >, ==), and a pair of compares, into one per lane.
    using U = typename Vec<acc_t>::U;
    const M flipped = reinterpret_cast<M>(w) ^ (reinterpret_cast<M>(d) & ~Vec<acc_t>::kAbs);
    const U magnitude = reinterpret_cast<U>(reinterpret_cast<M>(d) & Vec<acc_t>::kAbs);
    return reinterpret_cast<V>(flipped & (magnitude - 1u < Vec<acc_t>::kInf));
  } else {
    return w * d;
  }
}

// The gradient weights are the pair weights times grad_scale * the direction's normaliser.
template <int P>
constexpr double grad_scale() {
  return P == 1 ? 1.0 : 2.0;
}

// Image row i of `channels` channels (one mask group). Rows i-1 and i+1 of a channel are at offsets
// up and down from row i (0 at the image border, where the weights are 0 and the pairs do not exist:
// the kernel takes their differences as exactly 0, not x - x, NaN at x = inf). A row holds W elements;
// the horizontal neighbour of element j is j + hs: hs = 1 for an NCHW plane row; for a channels_last
// image one "channel" of W = (image width) * C interleaved elements and hs = C. The weights, one per
// element, are the pair weights scaled by the direction's factor kv or kh (grad_scale times the
// normaliser): gvp = kv wv(i-1), gv = kv wv(i), gw = kh wh(i) (0 for the last hs elements, which
// have no right neighbour). They weight both the gradient terms and the loss terms
// gv e(x(i+1) - x(i)) + gw e(x(j+hs) - x(j)), whose sum is grad_scale * loss.
template <typename scalar_t, typename acc_t>
struct RowArgs {
  const scalar_t* x;  // row i of the first channel
  int64_t x_cstride;  // elements between channels
  int64_t up;         // offset of row i-1 (minus the row stride, or 0 on the first row)
  int64_t down;       // offset of row i+1 (the row stride, or 0 on the last row)
  int64_t row_stride; // offset of row i+1 inside the plane
  int64_t channels;
  const acc_t* gvp;
  const acc_t* gv;
  const acc_t* gw;    // gw[-hs .. -1] must be readable and 0
  int64_t W;
  int64_t hs;         // horizontal neighbour stride, 1 <= hs < Vec<acc_t>::L
  grad_type<scalar_t>* out;  // row i of the first channel's gradient; null when no gradient is wanted
  int64_t out_cstride;
  // Vertical gradient terms gv(i) g(x(i+1) - x(i)) of each channel (rows of t_cstride), written for
  // the next row; when have_t they hold row i-1's, the terms of the pairs (i-1, i), read instead of
  // being recomputed from row i-1.
  acc_t* t;
  int64_t t_cstride;
  bool have_t;
};

// Adds the rows' loss terms to acc (Vec::L vector lanes, then one scalar slot for rows done one
// element at a time, in order) and writes their gradient. Vector steps start at multiples of L
// from the row start (aligned loads and stores when rows are); the last one may overlap the
// previous one, its overlapping lanes then add nothing.
template <typename scalar_t, typename acc_t, int P, bool kGrad>
INPAINT_FAST_INLINE void tv_rows(const RowArgs<scalar_t, acc_t>& a, acc_t* acc) {
  using V = typename Vec<acc_t>::V;
  using M = typename Vec<acc_t>::M;
  constexpr int L = Vec<acc_t>::L;
  const acc_t* __restrict__ gvp = a.gvp;
  const acc_t* __restrict__ gv = a.gv;
  const acc_t* __restrict__ gw = a.gw;
  const int64_t W = a.W;
  const int64_t hs = a.hs;
  V av = vload<acc_t>(acc);
  V ah = {};
  acc_t ls = acc[L];
  // Steps at j0 = 0, L, ... (`full` of them) while the right neighbour of their last lane is
  // inside the row; then one last step at W - L holding the last element. A row with no full
  // step other than exactly one vector long goes one element at a time.
  const int64_t full = W >= L + hs ? (W - hs) / L : 0;
  const bool vector_row = full > 0 || W == L;
  const int64_t last_j0 = W - L;
  M last_keep;  // lanes of the last step not done by the full steps
  M up_idx, down_idx;  // within one vector: the left / right neighbours (clamped at the ends)
  // A pair that leaves the image does not exist: it adds exactly 0 to the loss and the gradient,
  // never its weight 0 times a stand-in neighbour's difference (x - x is NaN for x = inf, and
  // 0 * inf is NaN). The image's last row, without pairs below, has its own copy of the steps
  // (dv = 0). The first / last step's lanes without a left / right neighbour, and the image's first
  // row (no pairs above): masks. For p = 1 the gradient terms need none (vgterm(0, d) is +-0 for any
  // d), only the loss of the last step (last_keep_h); p = 2 masks the differences (has_left,
  // has_right, keep_up). Few masks: each one live through the hot loop costs a vector register.
  M last_keep_h;  // last_keep without the lanes that have no right neighbour
  M has_left, has_right;
  for (int k = 0; k < L; ++k) {
    last_keep[k] = last_j0 + k >= full * L ? -1 : 0;
    up_idx[k] = k >= hs ? k - hs : 0;
    down_idx[k] = k + hs < L ? k + hs : L - 1;
    has_left[k] = k >= hs ? -1 : 0;
    has_right[k] = k + hs < L ? -1 : 0;
    last_keep_h[k] = last_keep[k] & has_right[k];
  }
  const bool has_down = a.down != 0, has_up = a.up != 0;
  const M keep_up = M{} + (has_up ? -1 : 0);

  for (int64_t ch = 0; ch < a.channels; ++ch) {
    const scalar_t* __restrict__ xc = a.x + ch * a.x_cstride;
    const scalar_t* __restrict__ xp = xc + a.up;
    const scalar_t* __restrict__ xn = xc + a.down;
    grad_type<scalar_t>* __restrict__ out = kGrad ? a.out + ch * a.out_cstride : nullptr;
    acc_t* __restrict__ t = kGrad ? a.t + ch * a.t_cstride : nullptr;
    const bool have_t = a.have_t;

    // Elements j0 .. j0 + L - 1. kFirst: j0 = 0, the left neighbours of the first hs lanes are
    // outside the row (their pair weights gw[-hs..-1] are 0); kLast: j0 = W - L, the right
    // neighbours of the last hs lanes are outside the row (gw is 0 there), lanes outside
    // last_keep already counted. Both take the neighbours inside the vector by a shuffle.
    auto step = [&](int64_t j0, auto first, auto last, auto down) INPAINT_FAST_LAMBDA_INLINE {
      constexpr bool kFirst = decltype(first)::value;
      constexpr bool kLast = decltype(last)::value;
      constexpr bool kDown = decltype(down)::value;  // row i+1 exists
      // Row i+2 of this channel is row i+1 of the next call: ask for it now (a row-sized stride
      // pattern across several streams that the hardware prefetchers alone keep too short).
      __builtin_prefetch(xc + 2 * a.row_stride + j0, 0, 3);
      const V c = vload<acc_t>(xc + j0);
      const V right = kLast ? __builtin_shuffle(c, down_idx) : vload<acc_t>(xc + j0 + hs);
      const V dv = kDown ? vload<acc_t>(xn + j0) - c : V{};
      V dh = right - c;
      if constexpr (kLast && P == 2) dh = vkeep<acc_t>(dh, has_right);
      const V wc = vload<acc_t>(gv + j0);
      const V wr = vload<acc_t>(gw + j0);
      V ev = wc * verr<P, acc_t>(dv);
      V eh = wr * verr<P, acc_t>(dh);
      if constexpr (kLast) {
        ev = vkeep<acc_t>(ev, last_keep);
        eh = vkeep<acc_t>(eh, P == 2 ? last_keep : last_keep_h);
      }
      av += ev;
      ah += eh;
      if constexpr (kGrad) {
        const V left = kFirst ? __builtin_shuffle(c, up_idx) : vload<acc_t>(xc + j0 - hs);
        V dhp = c - left;
        if constexpr (kFirst && P == 2) dhp = vkeep<acc_t>(dhp, has_left);
        const V tv = vgterm<P, acc_t>(wc, dv);
        // The last step may overlap the previous one, whose store replaced the overlapping lanes of
        // t: it recomputes the terms of the pairs (i-1, i). On the image's first row (gvp = 0) the
        // difference is x - x, masked to 0 for p = 2.
        V dup = c - vload<acc_t>(xp + j0);
        if constexpr (P == 2) dup = vkeep<acc_t>(dup, keep_up);
        const V tvp = have_t && !kLast ? vload<acc_t>(t + j0) : vgterm<P, acc_t>(vload<acc_t>(gvp + j0), dup);
        vstore<acc_t>(t + j0, tv);
        const V g = (tvp - tv) + (vgterm<P, acc_t>(vload<acc_t>(gw + j0 - hs), dhp) - vgterm<P, acc_t>(wr, dh));
        vstore<acc_t>(out + j0, g);  // overlapping lanes get the same value again
      }
    };
    using True = std::true_type;
    using False = std::false_type;

    // One element at a time (rows shorter than the vector steps allow, and the few elements
    // between the full steps and the last one when hs > 1), the same arithmetic as a step.
    auto element = [&](int64_t j) INPAINT_FAST_LAMBDA_INLINE {
      const acc_t c = static_cast<acc_t>(xc[j]);
      const acc_t dv = has_down ? static_cast<acc_t>(xn[j]) - c : acc_t(0);
      const acc_t dh = j + hs < W ? static_cast<acc_t>(xc[j + hs]) - c : acc_t(0);
      ls += gv[j] * err<P>(dv);
      ls += gw[j] * err<P>(dh);
      if constexpr (kGrad) {
        const acc_t dhp = j >= hs ? c - static_cast<acc_t>(xc[j - hs]) : acc_t(0);
        const acc_t tv = gterm<P>(gv[j], dv);
        const acc_t tvp = have_t ? t[j] : gterm<P>(gvp[j], has_up ? c - static_cast<acc_t>(xp[j]) : acc_t(0));
        t[j] = tv;
        const acc_t g = (tvp - tv) + (gterm<P>(gw[j - hs], dhp) - gterm<P>(gw[j], dh));
        out[j] = static_cast<grad_type<scalar_t>>(g);
      }
    };

    if (!vector_row) {
      for (int64_t j = 0; j < W; ++j) element(j);
      continue;
    }
    auto vector_steps = [&](auto down) INPAINT_FAST_LAMBDA_INLINE {
      if (full == 0) {
        step(0, True{}, True{}, down);  // W == L
        return;
      }
      step(0, True{}, False{}, down);
      for (int64_t s = 1; s < full; ++s) step(s * L, False{}, False{}, down);
      for (int64_t j = full * L; j < last_j0; ++j) element(j);  // at most hs - 1 of them
      step(last_j0, False{}, True{}, down);
    };
    if (has_down) {
      vector_steps(True{});
    } else {
      vector_steps(False{});
    }
  }
  vstore<acc_t>(acc, av + ah);
  acc[L] = ls;
}

template <typename scalar_t, typename acc_t>
using RowFn = void (*)(const RowArgs<scalar_t, acc_t>&, acc_t*);

// ------------------------------------------------------------------ per-row weight primitives
// Each runs over one row of W elements in L1; they are compiled per level like the row kernels.

// out = the mask row's weights (mask_weight: (m != 0) for a uint8 mask), or 1 - them when flip.
template <typename mask_t, typename acc_t>
INPAINT_FAST_INLINE void mask_row_impl(const mask_t* __restrict__ m, int64_t W, bool flip,
                                       acc_t* __restrict__ out) {
  // Rows are read in order: ask for the next one (harmless past the plane's end).
  constexpr int64_t kLine = 64 / sizeof(mask_t);
  for (int64_t j = 0; j < W; j += kLine) __builtin_prefetch(m + W + j, 0, 3);
  if (flip) {
    for (int64_t j = 0; j < W; ++j) out[j] = acc_t(1) - mask_weight<acc_t>(m[j]);
  } else {
    for (int64_t j = 0; j < W; ++j) out[j] = mask_weight<acc_t>(m[j]);
  }
}

// out[j] = max(h[j-1], h[j], h[j+1]) inside the row.
template <typename acc_t>
INPAINT_FAST_INLINE void hmax_row_impl(const acc_t* __restrict__ h, int64_t W, acc_t* __restrict__ out) {
  if (W == 1) {
    out[0] = h[0];
    return;
  }
  out[0] = std::max(h[0], h[1]);
  for (int64_t j = 1; j + 1 < W; ++j) out[j] = std::max(std::max(h[j - 1], h[j]), h[j + 1]);
  out[W - 1] = std::max(h[W - 2], h[W - 1]);
}

// out[j] = max(a[j], b[j], c[j]).
template <typename acc_t>
INPAINT_FAST_INLINE void vmax_row_impl(const acc_t* __restrict__ a, const acc_t* __restrict__ b,
                                       const acc_t* __restrict__ c, int64_t W, acc_t* __restrict__ out) {
  for (int64_t j = 0; j < W; ++j) out[j] = std::max(std::max(a[j], b[j]), c[j]);
}

// Scaled pair weights of row i from r(i) = rc and r(i+1) = rn (null on the last row):
// gv[j] = kv rc[j] rn[j] (0 without rn), gw[j] = kh rc[j] rc[j+1], gw[W-1] = 0.
template <typename acc_t>
INPAINT_FAST_INLINE void pair_weights_impl(const acc_t* __restrict__ rc, const acc_t* __restrict__ rn,
                                           int64_t W, acc_t kv, acc_t kh, acc_t* __restrict__ gv,
                                           acc_t* __restrict__ gw) {
  if (rn != nullptr) {
    for (int64_t j = 0; j < W; ++j) gv[j] = kv * (rc[j] * rn[j]);
  } else {
    for (int64_t j = 0; j < W; ++j) gv[j] = acc_t(0);
  }
  for (int64_t j = 0; j + 1 < W; ++j) gw[j] = kh * (rc[j] * rc[j + 1]);
  gw[W - 1] = acc_t(0);
}

// The sums of those pair weights (the pre-pass), in a fixed order: vector lanes folded, then the tail.
template <typename acc_t>
INPAINT_FAST_INLINE void pair_sums_impl(const acc_t* __restrict__ rc, const acc_t* __restrict__ rn,
                                        int64_t W, acc_t* __restrict__ sums) {
  using V = typename Vec<acc_t>::V;
  constexpr int L = Vec<acc_t>::L;
  V av = {}, ah = {};
  acc_t tv = 0, th = 0;
  int64_t j = 0;
  if (rn != nullptr) {
    for (; j + L <= W; j += L) av += vload<acc_t>(rc + j) * vload<acc_t>(rn + j);
    for (; j < W; ++j) tv += rc[j] * rn[j];
  }
  for (j = 0; j + L < W; j += L) ah += vload<acc_t>(rc + j) * vload<acc_t>(rc + j + 1);
  for (; j + 1 < W; ++j) th += rc[j] * rc[j + 1];
  sums[0] = vfold<acc_t>(av) + tv;
  sums[1] = vfold<acc_t>(ah) + th;
}

// out[w * C + c] = in[w] for c < C: per-pixel weights repeated for the channels of a channels_last row.
template <typename acc_t>
INPAINT_FAST_INLINE void repeat_row_impl(const acc_t* __restrict__ in, int64_t W, int64_t C,
                                         acc_t* __restrict__ out) {
  if (C == 3) {  // RGB: let the compiler see the pattern
    for (int64_t w = 0; w < W; ++w) out[3 * w] = out[3 * w + 1] = out[3 * w + 2] = in[w];
    return;
  }
  for (int64_t w = 0; w < W; ++w) {
    for (int64_t c = 0; c < C; ++c) out[w * C + c] = in[w];
  }
}

// ------------------------------------------------------------------ the instruction-set levels
// The functions that run per row (the row kernels and the weight primitives), each inlining its
// _impl, compiled for one level of common/cpu_dispatch.h: IsaDefault (baseline), IsaAvx2 (x86-64-v3),
// IsaAvx512 (x86-64-v4). What calls them (RegionRows, pair_areas, stencil_pass, tv_loss) is
// instantiated per level and calls them directly; masked_tv_cpu takes the level's tv_loss with
// cpu_variant.
#define INPAINT_FAST_TV_ISA(NAME, TARGET)                                                               \
  struct NAME {                                                                                     \
    template <typename scalar_t, typename acc_t, int P, bool kGrad>                                 \
    TARGET static void rows(const RowArgs<scalar_t, acc_t>& a, acc_t* acc) {                        \
      tv_rows<scalar_t, acc_t, P, kGrad>(a, acc);                                                   \
    }                                                                                               \
    template <typename mask_t, typename acc_t>                                                      \
    TARGET static void mask_row(const mask_t* m, int64_t W, bool flip, acc_t* out) {                \
      mask_row_impl<mask_t, acc_t>(m, W, flip, out);                                                \
    }                                                                                               \
    template <typename acc_t>                                                                       \
    TARGET static void hmax_row(const acc_t* h, int64_t W, acc_t* out) {                            \
      hmax_row_impl<acc_t>(h, W, out);                                                              \
    }                                                                                               \
    template <typename acc_t>                                                                       \
    TARGET static void vmax_row(const acc_t* a, const acc_t* b, const acc_t* c, int64_t W, acc_t* out) { \
      vmax_row_impl<acc_t>(a, b, c, W, out);                                                        \
    }                                                                                               \
    template <typename acc_t>                                                                       \
    TARGET static void pair_weights(const acc_t* rc, const acc_t* rn, int64_t W, acc_t kv, acc_t kh, \
                                    acc_t* gv, acc_t* gw) {                                         \
      pair_weights_impl<acc_t>(rc, rn, W, kv, kh, gv, gw);                                          \
    }                                                                                               \
    template <typename acc_t>                                                                       \
    TARGET static void pair_sums(const acc_t* rc, const acc_t* rn, int64_t W, acc_t* sums) {        \
      pair_sums_impl<acc_t>(rc, rn, W, sums);                                                       \
    }                                                                                               \
    template <typename acc_t>                                                                       \
    TARGET static void repeat_row(const acc_t* in, int64_t W, int64_t C, acc_t* out) {              \
      repeat_row_impl<acc_t>(in, W, C, out);                                                        \
    }                                                                                               \
  };

INPAINT_FAST_TV_ISA(IsaDefault, )
#if INPAINT_FAST_X86_VARIANTS
INPAINT_FAST_TV_ISA(IsaAvx2, INPAINT_FAST_V3_TARGET)
INPAINT_FAST_TV_ISA(IsaAvx512, INPAINT_FAST_V4_TARGET)
#else
using IsaAvx2 = IsaDefault;  // only the baseline is built (cpu_level() is kDefault)
using IsaAvx512 = IsaDefault;
#endif
#undef INPAINT_FAST_TV_ISA

// The row kernel of I for (p, grad).
template <typename I, typename scalar_t, typename acc_t>
RowFn<scalar_t, acc_t> row_kernel(int64_t p, bool grad) {
  using S = scalar_t;
  using A = acc_t;
  if (p == 1) return grad ? &I::template rows<S, A, 1, true> : &I::template rows<S, A, 1, false>;
  return grad ? &I::template rows<S, A, 2, true> : &I::template rows<S, A, 2, false>;
}

// Region weights r of the rows of one (H, W) mask plane, computed on demand and kept in a small
// ring (rows are visited in increasing order, each needing its neighbours): each mask row is read
// and, for the dilation, maximised horizontally once per visit of the plane. I: the level's Isa.
template <typename I, typename mask_t, typename acc_t>
class RegionRows {
 public:
  RegionRows(int64_t H, int64_t W, int64_t region, bool mask_is_hole)
      : H_(H), W_(W), region_(region), mask_is_hole_(mask_is_hole), storage_(static_cast<size_t>(9 * W)) {
    for (int s = 0; s < 4; ++s) {
      r_slot_[s] = storage_.data() + s * W;
      hm_slot_[s] = storage_.data() + (4 + s) * W;
    }
    scratch_ = storage_.data() + 8 * W;
    if (region_ == kRegionAll) std::fill(r_slot_[0], r_slot_[0] + W, acc_t(1));
  }

  void reset(const mask_t* plane) {
    plane_ = plane;
    r_tag_.fill(-1);
    hm_tag_.fill(-1);
  }

  // r of row k (0 <= k < H).
  const acc_t* r(int64_t k) {
    if (region_ == kRegionAll) return r_slot_[0];
    const int s = static_cast<int>(k & 3);
    if (r_tag_[s] == k) return r_slot_[s];
    if (region_ == kRegionHoleDilated) {
      const acc_t* mid = hm(k);
      const acc_t* up = k > 0 ? hm(k - 1) : mid;
      const acc_t* down = k + 1 < H_ ? hm(k + 1) : mid;
      I::vmax_row(up, mid, down, W_, r_slot_[s]);
    } else {
      // 'known': r = m; 'hole': r = 1 - m; the tensor holds m, or h = 1 - m when mask_is_hole.
      I::mask_row(plane_ + k * W_, W_, (region_ == kRegionHole) != mask_is_hole_, r_slot_[s]);
    }
    r_tag_[s] = k;
    return r_slot_[s];
  }

  // Pair weights and gradient weights of row i (see pair_weights).
  void pair_rows(int64_t i, acc_t kv, acc_t kh, acc_t* gv, acc_t* gw) {
    const acc_t* rc = r(i);
    const acc_t* rn = i + 1 < H_ ? r(i + 1) : nullptr;  // another ring slot: rc stays valid
    I::pair_weights(rc, rn, W_, kv, kh, gv, gw);
  }

  // (sum_j wv, sum_j ww) of row i.
  void pair_row_sums(int64_t i, acc_t* sums) {
    const acc_t* rc = r(i);
    const acc_t* rn = i + 1 < H_ ? r(i + 1) : nullptr;
    I::pair_sums(rc, rn, W_, sums);
  }

 private:
  // The hole h = 1 - m of row k maximised over j-1, j, j+1 (inside the row).
  const acc_t* hm(int64_t k) {
    const int s = static_cast<int>(k & 3);
    if (hm_tag_[s] == k) return hm_slot_[s];
    I::mask_row(plane_ + k * W_, W_, !mask_is_hole_, scratch_);
    I::hmax_row(scratch_, W_, hm_slot_[s]);
    hm_tag_[s] = k;
    return hm_slot_[s];
  }

  int64_t H_, W_, region_;
  bool mask_is_hole_;
  const mask_t* plane_ = nullptr;
  std::vector<acc_t> storage_;
  acc_t* r_slot_[4];
  acc_t* hm_slot_[4];
  acc_t* scratch_;
  std::array<int64_t, 4> r_tag_{{-1, -1, -1, -1}};
  std::array<int64_t, 4> hm_tag_{{-1, -1, -1, -1}};
};

// `rows` rows of W weights, each 64-byte aligned and preceded by Vec::L zeros (so row[-1] = 0).
template <typename acc_t>
class WeightRows {
 public:
  WeightRows(int64_t rows, int64_t W)
      : stride_((W + 2 * kPad - 1) / kPad * kPad), storage_(static_cast<size_t>(rows * stride_ + 2 * kPad), acc_t(0)) {
    const auto addr = reinterpret_cast<std::uintptr_t>(storage_.data());
    const std::uintptr_t aligned = (addr + 63) / 64 * 64;
    base_ = storage_.data() + (aligned - addr) / sizeof(acc_t) + kPad;
  }
  acc_t* row(int64_t k) { return base_ + k * stride_; }
  int64_t stride() const { return stride_; }

 private:
  static constexpr int64_t kPad = Vec<acc_t>::L;  // 64 bytes
  int64_t stride_;
  std::vector<acc_t> storage_;
  acc_t* base_;
};

struct Geometry {
  int64_t N, C, H, W;
  bool nhwc;                 // img (and the gradient) channels_last: rows of W * C interleaved elements
  int64_t img_sn, img_sc;    // element strides of img's N and C dims
  int64_t mask_n, mask_c;    // mask sizes along N and C (1 when broadcast); 1, 1 without a mask
  int64_t mask_sn, mask_sc;  // element strides of the mask's N and C dims (0 when broadcast)
};

int64_t rows_per_unit(int64_t per_row) {
  return std::max<int64_t>(1, (kUnitElements + per_row - 1) / std::max<int64_t>(per_row, 1));
}

// Pre-pass over the mask: (sum wv, sum wh) over the broadcast (N, C, ...) shape.
template <typename I, typename mask_t, typename acc_t>
std::array<double, 2> pair_areas(const Geometry& g, const mask_t* mask, int64_t region, bool mask_is_hole) {
  const int64_t H = g.H, W = g.W;
  const int64_t block = std::min(H, rows_per_unit(W));
  const int64_t blocks = (H + block - 1) / block;
  const int64_t planes = g.mask_n * g.mask_c;
  const auto totals = deterministic_sum<2, double>(planes * blocks, [&](int64_t u, double* out) {
    const int64_t plane = u / blocks, b = u % blocks;
    const int64_t i0 = b * block, i1 = std::min(H, i0 + block);
    const int64_t nm = plane / g.mask_c, cm = plane % g.mask_c;
    RegionRows<I, mask_t, acc_t> rows(H, W, region, mask_is_hole);
    rows.reset(mask + nm * g.mask_sn + cm * g.mask_sc);
    double sv = 0, sh = 0;
    for (int64_t i = i0; i < i1; ++i) {
      acc_t s[2];
      rows.pair_row_sums(i, s);
      sv += static_cast<double>(s[0]);
      sh += static_cast<double>(s[1]);
    }
    out[0] = sv;
    out[1] = sh;
  });
  const double copies = static_cast<double>(g.N / g.mask_n) * static_cast<double>(g.C / g.mask_c);
  return {totals[0] * copies, totals[1] * copies};
}

// The stencil pass: sum kv wv e_v + kh wh e_h and, when out is not null, the gradient; kv and kh
// scale the pair weights (grad_scale times the directions' normalisers).
template <typename I, typename scalar_t, typename mask_t, typename acc_t>
double stencil_pass(const Geometry& g, const scalar_t* img, const mask_t* mask, int64_t region,
                    bool mask_is_hole, acc_t kv, acc_t kh, RowFn<scalar_t, acc_t> row_fn,
                    grad_type<scalar_t>* out) {
  const int64_t N = g.N, C = g.C, H = g.H, W = g.W;
  const int64_t block = std::min(H, rows_per_unit(C * W));
  const int64_t blocks = (H + block - 1) / block;
  // NCHW: the channels sharing one mask plane are processed together, row by row, one plane row
  // each. channels_last (one mask plane): a row is one run of W * C elements, neighbours C apart,
  // its weights the pixels' repeated C times.
  const int64_t groups = g.nhwc ? 1 : g.mask_c;
  const int64_t per_group = g.nhwc ? 1 : C / groups;
  const int64_t row_len = g.nhwc ? W * C : W;  // elements of one row
  const int64_t hs = g.nhwc ? C : 1;
  return deterministic_sum<1, double>(N * blocks, [&](int64_t u, double* partial) {
    const int64_t n = u / blocks, b = u % blocks;
    const int64_t i0 = b * block, i1 = std::min(H, i0 + block);
    RegionRows<I, mask_t, acc_t> rows(H, W, region, mask_is_hole);
    WeightRows<acc_t> buf(4, row_len);
    WeightRows<acc_t> pixel_buf(g.nhwc ? 2 : 0, W);  // channels_last: the pixels' weights before repeating
    WeightRows<acc_t> tbuf(out == nullptr ? 0 : per_group, row_len);
    acc_t* gvp = buf.row(0);  // kv wv(i-1)
    acc_t* gv = buf.row(1);   // kv wv(i)
    acc_t* gw = buf.row(2);   // kh wh(i), gw[-hs..-1] = 0
    acc_t* spare = buf.row(3);
    // The weights of row k into (wv, ww), repeated per channel for channels_last.
    auto weights = [&](int64_t k, acc_t* wv, acc_t* ww) {
      if (!g.nhwc) {
        rows.pair_rows(k, kv, kh, wv, ww);
        return;
      }
      rows.pair_rows(k, kv, kh, pixel_buf.row(0), pixel_buf.row(1));
      I::repeat_row(pixel_buf.row(0), W, C, wv);
      I::repeat_row(pixel_buf.row(1), W, C, ww);
    };
    acc_t acc[Vec<acc_t>::L + 1] = {};
    for (int64_t grp = 0; grp < groups; ++grp) {
      const int64_t nm = g.mask_n == 1 ? 0 : n;
      rows.reset(mask == nullptr ? nullptr : mask + nm * g.mask_sn + grp * g.mask_sc);
      if (i0 > 0) {
        weights(i0 - 1, gvp, spare);
      } else {
        std::fill(gvp, gvp + row_len, acc_t(0));
      }
      const int64_t c0 = grp * per_group;
      for (int64_t i = i0; i < i1; ++i) {
        weights(i, gv, gw);
        // Rows are contiguous runs of row_len elements, one after the other inside a plane (NCHW)
        // or an image (channels_last); the gradient has img's layout, densely packed.
        const scalar_t* x = img + n * g.img_sn + (g.nhwc ? 0 : c0 * g.img_sc) + i * row_len;
        grad_type<scalar_t>* o =
            out == nullptr ? nullptr : out + (g.nhwc ? n * H * W * C + i * row_len : ((n * C + c0) * H + i) * W);
        RowArgs<scalar_t, acc_t> args{x, g.img_sc, i > 0 ? -row_len : 0, i + 1 < H ? row_len : 0, row_len,
                                      per_group, gvp, gv, gw, row_len, hs, o, H * W, tbuf.row(0), tbuf.stride(),
                                      i > i0};
        row_fn(args, acc);
        std::swap(gvp, gv);
      }
    }
    typename Vec<acc_t>::V lanes;
    std::memcpy(&lanes, acc, sizeof(lanes));
    const double total = static_cast<double>(vfold<acc_t>(lanes)) + static_cast<double>(acc[Vec<acc_t>::L]);
    partial[0] = total;
  })[0];
}

// The loss (and, when grad is not null, the gradient) with the level I's row functions: the
// directions' normalisers (from the mask pre-pass for normalize = 'mask'), then the stencil pass.
template <typename I, typename scalar_t, typename mask_t>
double tv_loss(const Geometry& g, const scalar_t* img, const mask_t* mask, int64_t region, bool mask_is_hole,
               int64_t p, int64_t normalize, double eps, grad_type<scalar_t>* grad) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t N = g.N, C = g.C, H = g.H, W = g.W;
  double av = 0, ah = 0;
  if (normalize == kNormalizeMask) {
    if (region == kRegionAll) {
      av = static_cast<double>(N * C * (H - 1) * W);
      ah = static_cast<double>(N * C * H * (W - 1));
    } else {
      const auto areas = pair_areas<I, mask_t, acc_t>(g, mask, region, mask_is_hole);
      av = areas[0];
      ah = areas[1];
    }
  }
  double sv = 1, sh = 1;
  if (normalize == kNormalizeMask) {
    sv = 1.0 / std::max(av, eps);
    sh = 1.0 / std::max(ah, eps);
  } else if (normalize == kNormalizeAll) {
    sv = H > 1 ? 1.0 / static_cast<double>(N * C * (H - 1) * W) : 0.0;
    sh = W > 1 ? 1.0 / static_cast<double>(N * C * H * (W - 1)) : 0.0;
  }
  if (H < 2) sv = 0;  // no vertical pairs: 0, never 1/eps * 0 rounding games
  if (W < 2) sh = 0;
  const double k = p == 1 ? grad_scale<1>() : grad_scale<2>();
  const double total = stencil_pass<I, scalar_t, mask_t, acc_t>(
      g, img, mask, region, mask_is_hole, static_cast<acc_t>(k * sv), static_cast<acc_t>(k * sh),
      row_kernel<I, scalar_t, acc_t>(p, grad != nullptr), grad);
  return total / k;
}

std::tuple<at::Tensor, at::Tensor> masked_tv_cpu(const at::Tensor& img_in, const std::optional<at::Tensor>& mask_in,
                                                 bool mask_is_hole, int64_t region, int64_t p, int64_t normalize,
                                                 double eps, bool compute_grad) {
  check_inputs(img_in, mask_in, region, p, normalize, eps);
  TORCH_CHECK(img_in.device().is_cpu(), "inpaint_fast::masked_tv: the CPU kernel got a ", img_in.device(),
              " tensor");
  if (mask_in) check_mask_values(*mask_in, mask_is_hole);
  const bool use_mask = region != kRegionAll;
  const bool nhwc = native_channels_last(img_in, use_mask ? mask_in : std::nullopt);
  const at::Tensor img = nhwc ? img_in : with_contiguous_planes(img_in);
  at::Tensor mask;
  if (use_mask) mask = with_contiguous_planes(*mask_in);

  Geometry g{};
  g.nhwc = nhwc;
  g.N = img.size(0);
  g.C = img.size(1);
  g.H = img.size(2);
  g.W = img.size(3);
  g.img_sn = img.stride(0);
  g.img_sc = img.stride(1);
  // A broadcast mask dimension (bstride 0): one plane serves all.
  g.mask_sn = use_mask ? bstride(mask, 0) : 0;
  g.mask_sc = use_mask ? bstride(mask, 1) : 0;
  g.mask_n = g.mask_sn != 0 ? g.N : 1;
  g.mask_c = g.mask_sc != 0 ? g.C : 1;

  const auto loss_dtype = img.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  at::Tensor loss = at::zeros({}, img.options().dtype(loss_dtype));
  const auto grad_format = nhwc ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
  const auto grad_options = img.options().dtype(grad_dtype(img.scalar_type()));
  at::Tensor grad = compute_grad ? empty_output(img.sizes(), grad_options, grad_format)
                                 : at::empty({0}, grad_options);
  if (img.numel() == 0) return {loss, grad};

  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, img.scalar_type(), "masked_tv_cpu", [&] {
    grad_type<scalar_t>* out = compute_grad ? grad.mutable_data_ptr<grad_type<scalar_t>>() : nullptr;
    auto run = [&](const auto* mask_ptr) {
      using mask_t = std::remove_cv_t<std::remove_pointer_t<decltype(mask_ptr)>>;
      const auto fn = cpu_variant(&tv_loss<IsaDefault, scalar_t, mask_t>, &tv_loss<IsaAvx2, scalar_t, mask_t>,
                                  &tv_loss<IsaAvx512, scalar_t, mask_t>);
      loss.fill_(fn(g, img.const_data_ptr<scalar_t>(), mask_ptr, region, mask_is_hole, p, normalize, eps, out));
    };
    if (!use_mask) {
      run(static_cast<const scalar_t*>(nullptr));
    } else if (is_binary_mask(mask.scalar_type())) {
      run(static_cast<const uint8_t*>(mask.const_data_ptr()));
    } else {
      run(mask.const_data_ptr<scalar_t>());
    }
  });
  return {loss, grad};
}

}  // namespace

TORCH_LIBRARY_IMPL(inpaint_fast, CPU, m) {
  m.impl("masked_tv", &masked_tv_cpu);
}

}  // namespace inpaint_fast
