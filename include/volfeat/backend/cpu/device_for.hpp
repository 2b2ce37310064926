#pragma once
// The Cpu device for a requested precision (backend/device_for.hpp): bf16 runs where the CPU has
// AVX512-BF16 (the AMX machines have it too; AMX tiles themselves are not used), and otherwise the
// run goes on in float32 with a note saying why, as the issue asked for "fp32 on other CPUs".
#include <string>

#include "volfeat/backend/cpu/gemm_kernels.hpp"
#include "volfeat/backend/cpu_tensor.hpp"
#include "volfeat/backend/device_for.hpp"

namespace volfeat {

template <>
struct DeviceFor<Cpu> {
  static Cpu make(Precision requested, std::string& note) {
    if (requested == Precision::kBf16 && !cpu::gemm::bf16_available()) {
      note = "--precision bf16: " + cpu::gemm::bf16_unavailable_reason() + "; running float32";
      return Cpu{Precision::kFloat32};
    }
    return Cpu{requested};
  }
  static Precision precision(const Cpu& d) { return d.precision; }
};

}  // namespace volfeat
