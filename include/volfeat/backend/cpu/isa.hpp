#pragma once
// The instruction set the Cpu backend's compute kernels use, chosen once per process at run time.
//
// One binary holds every variant (the kernels carry GCC/Clang target attributes, see
// gemm_kernels.hpp), so a build without -march=native runs the AVX-512 kernels on an AVX-512 CPU, the
// AVX2+FMA kernels on an AVX2 CPU and plain C++ elsewhere. VOLFEAT_CPU_ISA=avx512|avx2|generic forces
// a path (tests run the lower paths with it); asking for one the CPU lacks is an error, never SIGILL.
//
// Separately, the compiler may have been told to assume more than x86-64 (VOLFEAT_NATIVE=ON builds
// with -march=native): exit_if_below_build_baseline() says, before any such instruction runs, that
// this CPU is below what the binary was compiled for.
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "volfeat/core/error.hpp"
#include "volfeat/core/x86.hpp"

#if VOLFEAT_X86_TARGETS
// The attributes the kernel variants are compiled under (the instructions inside may exceed the
// build's -march; they only run when cpu_isa() chose that variant).
#define VOLFEAT_TARGET_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma")))
#define VOLFEAT_TARGET_AVX2 __attribute__((target("avx2,fma")))
#define VOLFEAT_TARGET_AVX512BF16 \
  __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,avx2,fma")))
// Plain x86-64 whatever -march says: the CPU check runs under it.
#define VOLFEAT_TARGET_BASELINE __attribute__((target("arch=x86-64")))
#define VOLFEAT_HAVE_ISA_VARIANTS 1
#else
#define VOLFEAT_TARGET_AVX512
#define VOLFEAT_TARGET_AVX2
#define VOLFEAT_TARGET_AVX512BF16
#define VOLFEAT_TARGET_BASELINE
#define VOLFEAT_HAVE_ISA_VARIANTS 0
#endif

// `#pragma GCC unroll n` before a loop, as a macro: nvcc's front end does not know the pragma and warned on
// every one a CUDA program's host code includes (#1675-D, 78 lines of CI's CUDA build), so there it is nothing.
#define VOLFEAT_PRAGMA(x) _Pragma(#x)
#if defined(__CUDACC__)
#define VOLFEAT_UNROLL(n)
#else
#define VOLFEAT_UNROLL(n) VOLFEAT_PRAGMA(GCC unroll n)
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

// AVX512-BF16 (vdpbf16ps, vcvtneps2bf16), beside AVX-512: Zen 4 and later, Intel from Cooper Lake
// (the AMX machines have it too).
inline bool cpu_has_avx512_bf16() {
#if VOLFEAT_HAVE_ISA_VARIANTS
  __builtin_cpu_init();
  return cpu_has_avx512() && __builtin_cpu_supports("avx512bf16");
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

// The first instruction-set extension the compiler was allowed to assume (VOLFEAT_NATIVE=ON:
// -march=native) that this CPU lacks, or nullptr if the CPU runs the whole binary. Compiled for
// plain x86-64 whatever the build's flags, and free of library calls, so that it runs anywhere;
// tests/cpu_baseline_probe.cpp checks that on a lesser CPU it prints instead of dying of SIGILL.
VOLFEAT_TARGET_BASELINE inline const char* build_baseline_missing() {
#if VOLFEAT_HAVE_ISA_VARIANTS
  __builtin_cpu_init();
#ifdef __SSE4_2__
  if (!__builtin_cpu_supports("sse4.2")) return "sse4.2";
#endif
#ifdef __AVX__
  if (!__builtin_cpu_supports("avx")) return "avx";
#endif
#ifdef __AVX2__
  if (!__builtin_cpu_supports("avx2")) return "avx2";
#endif
#ifdef __FMA__
  if (!__builtin_cpu_supports("fma")) return "fma";
#endif
#ifdef __AVX512F__
  if (!__builtin_cpu_supports("avx512f")) return "avx512f";
#endif
#ifdef __AVX512BW__
  if (!__builtin_cpu_supports("avx512bw")) return "avx512bw";
#endif
#ifdef __AVX512VL__
  if (!__builtin_cpu_supports("avx512vl")) return "avx512vl";
#endif
#ifdef __AVX512DQ__
  if (!__builtin_cpu_supports("avx512dq")) return "avx512dq";
#endif
#endif
  return nullptr;
}

// The message about build_baseline_missing(), written into buf (snprintf: no code of this build's
// ISA runs); false when nothing is missing.
VOLFEAT_TARGET_BASELINE inline bool build_baseline_message(char* buf, size_t size) {
  const char* missing = build_baseline_missing();
  if (!missing) return false;
  std::snprintf(buf, size,
                "this binary was compiled for CPUs with %s (VOLFEAT_NATIVE=ON builds for the build machine's CPU) "
                "and this CPU lacks it; rebuild with -DVOLFEAT_NATIVE=OFF, the portable default, which picks its "
                "kernels at run time",
                missing);
  return true;
}

// For a program's first code (a constructor(101) function, before static initialisers that may use
// the build's instructions): "PROGRAM: error: <message>" on stderr and exit 1 when this CPU is below
// the build's baseline.
VOLFEAT_TARGET_BASELINE inline void exit_if_below_build_baseline(const char* program) {
  char buf[512];
  if (!build_baseline_message(buf, sizeof buf)) return;
  std::fputs(program, stderr);
  std::fputs(": error: ", stderr);
  std::fputs(buf, stderr);
  std::fputs("\n", stderr);
  std::_Exit(1);
}

// For a program's entry, after exit_if_below_build_baseline: "" when VOLFEAT_CPU_ISA is valid here
// (the kernels' level is then fixed for the process), else the one line to print.
inline std::string cpu_isa_problem() {
  return error_line_of([] { cpu_isa(); });
}

}  // namespace volfeat::cpu
