#pragma once
// The arithmetic a network's convolutions run in. float32 (the default) is the exact path every test
// against PyTorch holds to its tolerance. bf16 (opt-in) rounds each conv's operands (its activated
// input and its weights, or their Winograd transforms) to bfloat16 and accumulates in float32, at
// twice the multiply rate of float32 FMAs where the CPU has AVX512-BF16 (backend/cpu/gemm_bf16.hpp).
// Everything else (batchnorm, pooling, the features, the similarities) stays float32. tf32 (opt-in,
// CUDA only) rounds each conv's operands to TF32 (10-bit mantissa) on the GPU's tensor cores, where
// float32 runs them as 3xTF32 (backend/thrust/conv3d_tensor_core.hpp). README.md ("Precision") has the
// measured error and speed.
#include <string>

#include "volfeat/core/error.hpp"

namespace volfeat {

enum class Precision { kFloat32, kBf16, kTf32 };

inline const char* precision_name(Precision p) {
  return p == Precision::kBf16 ? "bf16" : p == Precision::kTf32 ? "tf32" : "float32";
}

// Parsed at the edge (--precision, the Python module's precision=).
inline Precision parse_precision(const std::string& s) {
  if (s == "float32" || s == "fp32") return Precision::kFloat32;
  if (s == "bf16" || s == "bfloat16") return Precision::kBf16;
  if (s == "tf32") return Precision::kTf32;
  fail("--precision ", s, ": expected float32 (the default), bf16 or tf32");
}

}  // namespace volfeat
