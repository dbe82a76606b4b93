// Run-time choice of the instruction-set build of the C++ CPU kernels (internal header).
//
// A kernel's hot code is plain C++ that the compiler auto-vectorises. It is compiled
// several times in the same translation unit, once per instruction set, with GCC/Clang
// target attributes:
//   baseline   the x86-64 baseline (SSE2), or the only build on other architectures
//   AVX2       AVX2 + FMA (LCNET_TARGET_AVX2): PyTorch's own "avx2" CPU capability
//   AVX-512    F, BW, VL, DQ (LCNET_TARGET_AVX512; FMA comes with F): PyTorch's "avx512"
// and select_isa() says which one to run on this CPU, so one wheel runs on any x86-64
// machine and still uses wide vectors where it can. A kernel calls select_isa() once per op
// call and runs the matching build; `switch (isa)` over the builds that exist.
//
// Every helper called from a per-ISA entry point must be inlined into it
// (LCNET_ALWAYS_INLINE): a helper compiled on its own gets the baseline instruction set.
#pragma once

#include <cstdlib>
#include <cstring>

#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__)
#define LCNET_X86_ISA_BUILDS 1
#define LCNET_TARGET_AVX2 __attribute__((target("avx2,fma")))
// the AVX-512 subset PyTorch's own avx512 CPU capability requires
#define LCNET_TARGET_AVX512 \
  __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq")))
#else
#define LCNET_X86_ISA_BUILDS 0
#endif

#if defined(__GNUC__) || defined(__clang__)
#define LCNET_ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define LCNET_ALWAYS_INLINE inline
#endif

namespace lcnet_fast {

enum class Isa { kBaseline, kAvx2, kAvx512 };

// The best build this CPU can run, capped by ATEN_CPU_CAPABILITY ("default", "avx2"),
// PyTorch's own switch for its CPU kernels, so that the slower builds can be tested and
// timed on a machine that has AVX-512; any other value (e.g. "avx512") caps nothing. Read
// on every call (a getenv) so tests can change it.
inline Isa select_isa() {
#if LCNET_X86_ISA_BUILDS
  __builtin_cpu_init();
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  const bool avx512 = avx2 && __builtin_cpu_supports("avx512f") &&
      __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
      __builtin_cpu_supports("avx512dq");
  Isa isa = avx512 ? Isa::kAvx512 : avx2 ? Isa::kAvx2 : Isa::kBaseline;
  const char* cap = std::getenv("ATEN_CPU_CAPABILITY");
  if (cap != nullptr && std::strcmp(cap, "default") == 0) {
    isa = Isa::kBaseline;
  } else if (cap != nullptr && std::strcmp(cap, "avx2") == 0 && isa == Isa::kAvx512) {
    isa = Isa::kAvx2;
  }
  return isa;
#else
  return Isa::kBaseline;
#endif
}

} // namespace lcnet_fast
