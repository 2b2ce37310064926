#pragma once
// The Cpu device for a requested precision (backend/device_for.hpp): bf16 runs where the CPU has
// AVX512-BF16, on AMX tiles where it also has those (gemm_kernels.hpp's bf16_kernels(), which kernels()
// names in one line), and otherwise the run goes on in float32 with a note saying why, as the issue
// asked for "fp32 on other CPUs"; and
// --stream-weights's directory checked before any work (core/weight_file.hpp).
#include <string>

#include "volfeat/backend/cpu/gemm_kernels.hpp"
#include "volfeat/backend/cpu_tensor.hpp"
#include "volfeat/backend/device_for.hpp"

namespace volfeat {

template <>
struct DeviceFor<Cpu> {
  static Cpu make(const DeviceOptions& asked, std::string& note) {
    if (asked.precision == Precision::kTf32)
      fail("--precision tf32: TF32 is the GPU's tensor-core format (volfeat-cuda); the cpu backend runs float32 or bf16");
    if (!asked.stream_weights.empty()) WeightFile::check_dir(asked.stream_weights);  // before any work
    Cpu d(asked.precision, asked.stream_weights);
    if (asked.precision == Precision::kBf16 && !cpu::gemm::bf16_available()) {
      note = "--precision bf16: " + cpu::gemm::bf16_unavailable_reason() + "; running float32";
      d.precision = Precision::kFloat32;
    }
    if (d.precision == Precision::kBf16) cpu::gemm::bf16_kernels();  // VOLFEAT_BF16_KERNELS checked before any work
    return d;
  }
  static Precision precision(const Cpu& d) { return d.precision; }
  static std::string stream_weights(const Cpu& d) { return d.stream_weights; }
  static std::string kernels(const Cpu& d) {
    return d.precision == Precision::kBf16 ? "bf16 kernels: " + cpu::gemm::bf16_kernels_description() : "";
  }
};

}  // namespace volfeat
