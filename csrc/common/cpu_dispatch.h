// Run-time choice of the instruction set for the CPU hot loops: the only copy.
//
// With gcc >= 12 on x86-64, a hot loop is compiled twice: for the baseline ISA and, through
// INPAINT_FAST_V3_TARGET, for x86-64-v3 (AVX2, FMA, F16C); use_x86_v3() picks the second when the
// CPU has it. ATEN_CPU_CAPABILITY=default (torch's own switch) forces the baseline, which is how the
// tests exercise it on an AVX2 machine. Elsewhere only the baseline is built. Within one machine and
// setting every run takes the same path, so results stay bitwise reproducible; the two builds may
// differ in the last bit (FMA contraction).
#pragma once

#include <cstdlib>
#include <cstring>

#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12 && defined(__x86_64__) && \
    !defined(INPAINT_FAST_NO_ISA_DISPATCH)
#define INPAINT_FAST_X86_V3 1
#define INPAINT_FAST_V3_TARGET __attribute__((target("arch=x86-64-v3")))
#else
#define INPAINT_FAST_X86_V3 0
#define INPAINT_FAST_V3_TARGET
#endif

// Helpers of a hot loop must be inlined into each ISA variant (gcc does not inline a function
// compiled for another target unless it is always_inline), or the variant's loop stays scalar.
#if defined(__GNUC__)
#define INPAINT_FAST_INLINE inline __attribute__((always_inline))
#else
#define INPAINT_FAST_INLINE inline
#endif

namespace inpaint_fast {

inline bool use_x86_v3() {
#if INPAINT_FAST_X86_V3
  static const bool use = [] {
    const char* forced = std::getenv("ATEN_CPU_CAPABILITY");
    if (forced != nullptr && std::strcmp(forced, "default") == 0) return false;
    __builtin_cpu_init();
    return __builtin_cpu_supports("x86-64-v3") != 0;
  }();
  return use;
#else
  return false;
#endif
}

}  // namespace inpaint_fast
