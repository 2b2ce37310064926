#pragma once
// 1 on x86 under GCC or Clang: the compilers whose per-function target attributes and
// __builtin_cpu_supports let one binary carry code for instruction sets beyond its -march and pick it
// at run time. backend/cpu/isa.hpp's kernel variants and core/sha256.hpp's SHA-NI kernel use it.
#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#define VOLFEAT_X86_TARGETS 1
#else
#define VOLFEAT_X86_TARGETS 0
#endif
