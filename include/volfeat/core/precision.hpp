#pragma once
// The arithmetic a network's convolutions run in. float32 (the default) is the exact path every test
// against PyTorch holds to its tolerance. bf16 (opt-in) rounds each conv's operands (its activated
// input and its weights, or their Winograd transforms) to bfloat16 and accumulates in float32, at
// twice the multiply rate of float32 FMAs where the CPU has AVX512-BF16 (backend/cpu/gemm_bf16.hpp).
// Everything else (batchnorm, pooling, the features, the similarities) stays float32. README.md
// ("Precision") has the measured error and speed.
#include <string>

#include "volfeat/core/error.hpp"

namespace volfeat {

enum class Precision { kFloat32, kBf16 };

inline const char* precision_name(Precision p) { return p == Precision::kBf16 ? "bf16" : "float32"; }

// Parsed at the edge (--precision, the Python module's precision=).
inline Precision parse_precision(const std::string& s) {
  if (s == "float32" || s == "fp32") return Precision::kFloat32;
  if (s == "bf16" || s == "bfloat16") return Precision::kBf16;
  fail("--precision ", s, ": expected float32 (the default) or bf16");
}

}  // namespace volfeat
