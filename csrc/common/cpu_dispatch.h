// Run-time choice of the instruction set for the CPU hot loops: the only mechanism.
//
// The extension is built for baseline x86-64. With gcc >= 12 on x86-64, a hot loop is compiled more
// than once: for the baseline ISA, through INPAINT_FAST_V3_TARGET for x86-64-v3 (AVX2, FMA, F16C) and,
// where a kernel has one, through INPAINT_FAST_V4_TARGET for x86-64-v4 (AVX-512 F/BW/CD/DQ/VL).
// cpu_level() picks the level once, at first use: the best the CPU (and OS) supports, capped by torch's
// own switch ATEN_CPU_CAPABILITY ("default": baseline, "avx2": at most x86-64-v3, "avx512": at most
// x86-64-v4; unset or any other value: no cap), which is how the tests exercise every level on one
// machine. cpu_variant() then takes a kernel's function for that level; a kernel without an AVX-512
// variant runs its AVX2 one there. Elsewhere (another compiler or architecture) only the baseline is
// built and cpu_level() is kDefault. Within one machine and setting every run takes the same path, so
// results stay bitwise reproducible; the variants of a kernel may differ in the last bit (FMA
// contraction) unless the kernel says otherwise (masked_tv: bitwise the same at every level).
// The selected level is visible from Python: torch.ops.inpaint_fast.cpu_capability() (csrc/init.cpp).
#pragma once

#include <cstdlib>
#include <cstring>

#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12 && defined(__x86_64__) && \
    !defined(INPAINT_FAST_NO_ISA_DISPATCH)
#define INPAINT_FAST_X86_VARIANTS 1
#define INPAINT_FAST_V3_TARGET __attribute__((target("arch=x86-64-v3")))
#define INPAINT_FAST_V4_TARGET __attribute__((target("arch=x86-64-v4")))
#else
#define INPAINT_FAST_X86_VARIANTS 0
#define INPAINT_FAST_V3_TARGET
#define INPAINT_FAST_V4_TARGET
#endif

// Helpers of a hot loop must be inlined into each ISA variant (gcc does not inline a function
// compiled for another target unless it is always_inline), or the variant's loop stays scalar.
// INPAINT_FAST_LAMBDA_INLINE does the same for a lambda (after its parameter list).
#if defined(__GNUC__)
#define INPAINT_FAST_INLINE inline __attribute__((always_inline))
#define INPAINT_FAST_LAMBDA_INLINE __attribute__((always_inline))
#else
#define INPAINT_FAST_INLINE inline
#define INPAINT_FAST_LAMBDA_INLINE
#endif

namespace inpaint_fast {

// The levels, ordered, named as torch names its CPU capabilities (ATEN_CPU_CAPABILITY).
enum class CpuLevel : int { kDefault = 0, kAvx2 = 1, kAvx512 = 2 };

inline const char* cpu_level_name(CpuLevel level) {
  switch (level) {
    case CpuLevel::kAvx512:
      return "avx512";
    case CpuLevel::kAvx2:
      return "avx2";
    default:
      return "default";
  }
}

// The level of the CPU hot loops, chosen once (see the top of this file).
inline CpuLevel cpu_level() {
#if INPAINT_FAST_X86_VARIANTS
  static const CpuLevel level = [] {
    __builtin_cpu_init();  // the CPU's features, and the OS's support of the AVX / AVX-512 registers
    CpuLevel best = CpuLevel::kDefault;
    if (__builtin_cpu_supports("x86-64-v4")) {
      best = CpuLevel::kAvx512;
    } else if (__builtin_cpu_supports("x86-64-v3")) {
      best = CpuLevel::kAvx2;
    }
    CpuLevel cap = CpuLevel::kAvx512;
    if (const char* forced = std::getenv("ATEN_CPU_CAPABILITY")) {
      if (std::strcmp(forced, "default") == 0) cap = CpuLevel::kDefault;
      if (std::strcmp(forced, "avx2") == 0) cap = CpuLevel::kAvx2;
    }
    return best < cap ? best : cap;
  }();
  return level;
#else
  return CpuLevel::kDefault;
#endif
}

// A kernel's variant for cpu_level(): its baseline, x86-64-v3 and x86-64-v4 functions (pointers of
// one type); a kernel with no x86-64-v4 variant passes two and runs its x86-64-v3 one at kAvx512.
template <typename Fn>
inline Fn cpu_variant(Fn baseline, Fn v3, Fn v4) {
  switch (cpu_level()) {
    case CpuLevel::kAvx512:
      return v4;
    case CpuLevel::kAvx2:
      return v3;
    default:
      return baseline;
  }
}

template <typename Fn>
inline Fn cpu_variant(Fn baseline, Fn v3) {
  return cpu_variant(baseline, v3, v3);
}

}  // namespace inpaint_fast
