// Deterministic CPU reductions: the only copy of the summation helpers the kernels share.
//
// Contract: the same inputs give bitwise the same sums for every thread count.
// Work is cut into fixed-size units that depend on the shape only; each unit writes K partial
// sums into its own slot; the slots are then added in a fixed pairwise order. Inside a unit,
// kLanes interleaved accumulators (folded in a fixed tree) let the compiler vectorise the loop.
#pragma once

#include <ATen/Parallel.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <vector>

namespace inpaint_fast {

constexpr int kLanes = 8;  // independent accumulators per work unit

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

// Adds the kLanes accumulators in a fixed tree.
template <typename acc_t>
inline acc_t fold_lanes(const acc_t (&v)[kLanes]) {
  static_assert(kLanes == 8, "fold_lanes is written for 8 lanes");
  return ((v[0] + v[4]) + (v[2] + v[6])) + ((v[1] + v[5]) + (v[3] + v[7]));
}

// Runs unit_fn(u, partials_of_u) for u in [0, units) in parallel, each writing K sums into its
// own slot, and returns the K totals summed in a fixed order: bitwise independent of threads.
template <int K, typename acc_t, typename UnitFn>
std::array<acc_t, K> deterministic_sum(int64_t units, const UnitFn& unit_fn) {
  std::vector<acc_t> partials(static_cast<size_t>(std::max<int64_t>(units, 1) * K), acc_t(0));
  acc_t* slots = partials.data();
  at::parallel_for(0, units, 1, [&](int64_t begin, int64_t end) {
    for (int64_t u = begin; u < end; ++u) unit_fn(u, slots + K * u);
  });
  std::array<acc_t, K> totals{};
  for (int k = 0; k < K; ++k) totals[k] = pairwise_sum(slots + k, units, K);
  return totals;
}

}  // namespace inpaint_fast
