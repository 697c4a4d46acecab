// Output buffers that the CPU kernels fill in their single pass: the only copy.
//
// A fresh multi-megabyte buffer costs more in first-touch page faults than in writing. glibc serves
// every allocation above its mmap threshold (at most 32 MiB) with a fresh mmap and unmaps it on free,
// so a 48 MiB gradient faults in all of its 12288 pages on every training step, and on a VM whose
// freed memory goes back to the host (free page reporting) each fault is a host fault too: as costly
// as the kernel's pass, and as variable as the host. The fused CPU ops therefore take their large
// outputs (>= 1 MiB) from a cache of their own (alloc.cpp): a buffer freed by autograd or the user
// returns to the cache, still mapped and touched, and the next call of the same size reuses it.
// The tensor is an ordinary ATen CPU tensor; no value changes.
#pragma once

#include <ATen/ATen.h>
#include <ATen/EmptyTensor.h>

#include <cstdint>
#include <vector>

namespace inpaint_fast {

// The allocator of the fused CPU ops' outputs: cached blocks at and above 1 MiB, torch's CPU
// allocator below that or when the cache is off (INPAINT_FAST_OUTPUT_CACHE_MB=0).
c10::Allocator* output_allocator();

// [limit, cached (idle) bytes, bytes in tensors, hits, misses, evictions] (alloc.cpp).
std::vector<int64_t> output_cache_stats();

// Frees every idle block of that cache.
void empty_output_cache();

inline at::Tensor empty_output(at::IntArrayRef sizes, const at::TensorOptions& options,
                               at::MemoryFormat format = at::MemoryFormat::Contiguous) {
  TORCH_INTERNAL_ASSERT(options.device().is_cpu());
  return at::detail::empty_generic(sizes, output_allocator(), c10::DispatchKeySet(c10::DispatchKey::CPU),
                                   c10::typeMetaToScalarType(options.dtype()), format);
}

}  // namespace inpaint_fast
