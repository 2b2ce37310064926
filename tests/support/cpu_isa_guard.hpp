#pragma once
// For the tests of the Cpu kernels: states which instruction set this process's kernels use, and
// skips the whole test program (exit 77, with the reason) when VOLFEAT_CPU_ISA asks for one this
// CPU lacks, as the ctest entries *_isa_avx512 do on an AVX2 machine. Any other bad value fails.
#include <boost/test/unit_test.hpp>
#include <cstdlib>
#include <iostream>

#include "volfeat/backend/cpu/isa.hpp"

namespace volfeat::test {

struct CpuIsaGuard {
  CpuIsaGuard() {
    const char* env = std::getenv("VOLFEAT_CPU_ISA");
    const std::string asked = env ? env : "";
    if (!asked.empty() && asked != "auto") {
      const std::string why = cpu::isa_unavailable_reason(cpu::parse_isa(asked));
      if (!why.empty()) {
        std::cout << "skipped: VOLFEAT_CPU_ISA=" << asked << " but " << why << "\n";
        std::exit(77);
      }
    }
    std::cout << "Cpu kernels: " << cpu::isa_name(cpu::cpu_isa()) << " (best on this CPU: "
              << cpu::isa_name(cpu::best_cpu_isa()) << ")\n";
  }
};

}  // namespace volfeat::test

using VolfeatCpuIsaGuard = volfeat::test::CpuIsaGuard;
BOOST_TEST_GLOBAL_FIXTURE(VolfeatCpuIsaGuard);
