// Layout rules that several ops' kernels share, CPU and CUDA alike (host code): the only copy.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>

#include "common/standard.h"

namespace inpaint_fast {

// Whether the (H, W) planes of t (N, C, H, W) are contiguous: a plane is one run of H * W elements,
// each addressed by n * stride(0) + c * stride(1) (so slices along N and C qualify). A dimension of
// size 1 may have any stride.
inline bool planes_contiguous(const at::Tensor& t) {
  return (t.size(3) == 1 || t.stride(3) == 1) && (t.size(2) == 1 || t.stride(2) == t.size(3));
}

// t itself when its planes are contiguous, else an NCHW-contiguous copy.
inline at::Tensor with_contiguous_planes(const at::Tensor& t) {
  return planes_contiguous(t) ? t : t.contiguous();
}

// The stride of dimension dim as a broadcast: 0 where the dimension has size 1 or is expanded
// (stride 0), so that one plane serves every index; else the stride.
inline int64_t bstride(const at::Tensor& t, int64_t dim) { return t.size(dim) == 1 ? 0 : t.stride(dim); }

// How many distinct planes t has along dim: 1 where it is broadcast (bstride 0), else its size.
inline int64_t distinct_planes(const at::Tensor& t, int64_t dim) { return bstride(t, dim) == 0 ? 1 : t.size(dim); }

}  // namespace inpaint_fast
