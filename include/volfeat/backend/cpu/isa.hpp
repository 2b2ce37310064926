#pragma once
// The instruction set the Cpu backend's compute kernels use, chosen once per process at run time.
//
// One binary holds every variant (the kernels carry GCC/Clang target attributes, see
// gemm_kernels.hpp), so a build without -march=native runs the AVX-512 kernels on an AVX-512 CPU, the
// AVX2+FMA kernels on an AVX2 CPU and plain C++ elsewhere. VOLFEAT_CPU_ISA=avx512|avx2|generic forces
// a path (tests run the lower paths with it); asking for one the CPU lacks is an error, never SIGILL.
//
// Separately, the compiler may have been told to assume more than x86-64 (VOLFEAT_NATIVE=ON builds
// with -march=native): build_baseline_problem() says, before any such instruction runs, that this
// CPU is below what the binary was compiled for.
#include <cstdlib>
#include <string>

#include "volfeat/core/error.hpp"

#if defined(__x86_64__) || defined(__i386__)
#define VOLFEAT_X86 1
#else
#define VOLFEAT_X86 0
#endif

#if VOLFEAT_X86 && (defined(__GNUC__) || defined(__clang__))
// The attributes the kernel variants are compiled under (the instructions inside may exceed the
// build's -march; they only run when cpu_isa() chose that variant).
#define VOLFEAT_TARGET_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma")))
#define VOLFEAT_TARGET_AVX2 __attribute__((target("avx2,fma")))
#define VOLFEAT_HAVE_ISA_VARIANTS 1
#else
#define VOLFEAT_TARGET_AVX512
#define VOLFEAT_TARGET_AVX2
#define VOLFEAT_HAVE_ISA_VARIANTS 0
#endif

namespace volfeat::cpu {

// Ordered: a higher value runs everything a lower one does.
enum class CpuIsa { kGeneric = 0, kAvx2 = 1, kAvx512 = 2 };

inline const char* isa_name(CpuIsa isa) {
  switch (isa) {
    case CpuIsa::kAvx512: return "avx512";
    case CpuIsa::kAvx2: return "avx2";
    case CpuIsa::kGeneric: break;
  }
  return "generic";
}

// What the kernels of each level need from the CPU (and the OS: __builtin_cpu_supports checks that
// the OS saves the wider registers).
inline bool cpu_has_avx2_fma() {
#if VOLFEAT_HAVE_ISA_VARIANTS
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
  return false;
#endif
}
inline bool cpu_has_avx512() {
#if VOLFEAT_HAVE_ISA_VARIANTS
  __builtin_cpu_init();
  return cpu_has_avx2_fma() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
#else
  return false;
#endif
}

// The best level this CPU runs.
inline CpuIsa best_cpu_isa() {
  if (cpu_has_avx512()) return CpuIsa::kAvx512;
  if (cpu_has_avx2_fma()) return CpuIsa::kAvx2;
  return CpuIsa::kGeneric;
}

// Why `isa` cannot run here, or "" when it can.
inline std::string isa_unavailable_reason(CpuIsa isa) {
  if (isa <= best_cpu_isa()) return "";
  if (isa == CpuIsa::kAvx512) return "this CPU lacks AVX-512 (F, BW, VL, DQ)";
  return "this CPU lacks AVX2+FMA";
}

inline CpuIsa parse_isa(const std::string& s) {
  if (s == "avx512") return CpuIsa::kAvx512;
  if (s == "avx2") return CpuIsa::kAvx2;
  if (s == "generic") return CpuIsa::kGeneric;
  fail("VOLFEAT_CPU_ISA=", s, " is not one of avx512, avx2, generic (or unset/auto for the best this CPU has)");
}

// The level asked for by VOLFEAT_CPU_ISA (unset, empty or "auto": the best the CPU has). A level
// above the CPU's is an error.
inline CpuIsa requested_isa() {
  const char* env = std::getenv("VOLFEAT_CPU_ISA");
  const std::string s = env ? env : "";
  if (s.empty() || s == "auto") return best_cpu_isa();
  const CpuIsa isa = parse_isa(s);
  const std::string why = isa_unavailable_reason(isa);
  if (!why.empty()) fail("VOLFEAT_CPU_ISA=", s, " but ", why, " (best here: ", isa_name(best_cpu_isa()), ")");
  return isa;
}

// The level the kernels use, chosen on first use and fixed for the process (packed weights depend on it).
inline CpuIsa cpu_isa() {
  static const CpuIsa isa = requested_isa();
  return isa;
}

// One line naming the first instruction-set extension the compiler was allowed to assume that this
// CPU lacks, or "" if the CPU runs the whole binary. Call it before anything compiled with those
// assumptions runs (main's first line; the Python module's init).
inline std::string build_baseline_problem() {
#if VOLFEAT_HAVE_ISA_VARIANTS
  __builtin_cpu_init();
  struct Need {
    bool assumed;
    const char* name;
  };
  const Need needs[] = {
#ifdef __SSE4_2__
      {!__builtin_cpu_supports("sse4.2"), "sse4.2"},
#endif
#ifdef __AVX__
      {!__builtin_cpu_supports("avx"), "avx"},
#endif
#ifdef __AVX2__
      {!__builtin_cpu_supports("avx2"), "avx2"},
#endif
#ifdef __FMA__
      {!__builtin_cpu_supports("fma"), "fma"},
#endif
#ifdef __AVX512F__
      {!__builtin_cpu_supports("avx512f"), "avx512f"},
#endif
#ifdef __AVX512BW__
      {!__builtin_cpu_supports("avx512bw"), "avx512bw"},
#endif
#ifdef __AVX512VL__
      {!__builtin_cpu_supports("avx512vl"), "avx512vl"},
#endif
      {false, ""},
  };
  for (const Need& n : needs)
    if (n.assumed)
      return std::string("this binary was compiled for CPUs with ") + n.name +
             " (VOLFEAT_NATIVE=ON builds for the build machine's CPU) and this CPU lacks it; rebuild with "
             "-DVOLFEAT_NATIVE=OFF, the portable default, which picks its kernels at run time";
#endif
  return "";
}

}  // namespace volfeat::cpu
