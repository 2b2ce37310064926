// A program compiled for AVX-512 (-mavx512f -mavx512bw -mavx512vl -mavx512dq, as a VOLFEAT_NATIVE=ON
// build on an AVX-512 machine is), with the check the volfeat program and Python module run first.
// On an AVX-512 CPU it runs an AVX-512 instruction and prints "ran"; on any other it must print the
// one error line and exit 1 before such an instruction runs (not die of SIGILL). ctest:
// test_cpu_baseline_error.
#include <immintrin.h>

#include <cstdio>
#include <cstdlib>

#include "volfeat/backend/cpu/isa.hpp"

VOLFEAT_TARGET_BASELINE __attribute__((constructor(101))) static void check_cpu() {
  volfeat::cpu::exit_if_below_build_baseline("volfeat");
}

int main(int argc, char**) {
  volatile float x = float(argc);
  const __m512 v = _mm512_add_ps(_mm512_set1_ps(x), _mm512_set1_ps(1.0f));
  std::printf("ran: %g\n", double(_mm512_reduce_add_ps(v)));
  return 0;
}
