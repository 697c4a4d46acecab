// Output buffers that the CPU kernels fill in their single pass: the only copy.
//
// A fresh multi-megabyte buffer costs more in first-touch page faults than in writing (one fault
// per 4 KiB page; on this project's machines ~2 us each, i.e. ~10 ms for 48 MiB). Where the kernel
// allows transparent huge pages on request (/sys/kernel/mm/transparent_hugepage/enabled = madvise
// or always), the buffer's 2 MiB-aligned interior is marked MADV_HUGEPAGE before the kernel writes
// it: one fault per 2 MiB. This is a hint about our own freshly allocated, still untouched output;
// it changes no value and no memory ownership (the tensor is an ordinary ATen tensor).
#pragma once

#include <ATen/ATen.h>

#include <cstdint>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace inpaint_fast {

inline at::Tensor empty_output(at::IntArrayRef sizes, const at::TensorOptions& options,
                               at::MemoryFormat format = at::MemoryFormat::Contiguous) {
  at::Tensor out = at::empty(sizes, options.memory_format(format));
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  constexpr uintptr_t kHuge = uintptr_t(2) << 20;
  if (out.device().is_cpu() && out.nbytes() >= 2 * kHuge) {
    const uintptr_t begin = reinterpret_cast<uintptr_t>(out.data_ptr());
    const uintptr_t first = (begin + kHuge - 1) & ~(kHuge - 1);
    const uintptr_t last = (begin + out.nbytes()) & ~(kHuge - 1);
    if (last > first) madvise(reinterpret_cast<void*>(first), last - first, MADV_HUGEPAGE);
  }
#endif
  return out;
}

}  // namespace inpaint_fast
