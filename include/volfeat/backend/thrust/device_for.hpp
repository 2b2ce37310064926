#pragma once
// The Thrust device for a requested precision (backend/device_for.hpp). float32 everywhere; tf32
// (opt-in) on CUDA, where the convs run on TF32 tensor cores (conv3d_tensor_core.hpp); a GPU or a
// build without them runs float32 with a note saying why. bf16 and streamed weights are refused.
#include <string>

#include "volfeat/backend/device_for.hpp"
#include "volfeat/backend/thrust/conv3d_tensor_core.hpp"
#include "volfeat/backend/thrust/tensor.hpp"

namespace volfeat {

template <>
struct DeviceFor<Thrust> {
  static Thrust make(const DeviceOptions& asked, std::string& note) {
    if (asked.precision == Precision::kBf16)
      fail("--precision bf16: the ", Thrust::kName, " backend runs float32", Thrust::kIsCuda ? " or tf32" : "");
    if (asked.precision == Precision::kTf32 && !Thrust::kIsCuda)
      fail("--precision tf32: TF32 is the GPU's tensor-core format (volfeat-cuda); the ", Thrust::kName,
           " backend runs float32");
    if (!asked.stream_weights.empty())
      fail("--stream-weights: the ", Thrust::kName, " backend keeps its weights in its own memory");
    Thrust d{asked.precision};
#if THRUST_DEVICE_SYSTEM == THRUST_DEVICE_SYSTEM_CUDA
    if (d.precision == Precision::kTf32) {
      thrust_detail::require_device();
      if (!thrust_detail::tensor_core::available()) {
        note = "--precision tf32: this GPU or this build (CUDA architectures below 80) has no TF32 tensor cores; "
               "running float32";
        d.precision = Precision::kFloat32;
      }
    }
#else
    (void)note;
#endif
    return d;
  }
  static Precision precision(const Thrust& d) { return d.precision; }
  static std::string stream_weights(const Thrust&) { return {}; }
  static std::string kernels(const Thrust& d) {
    return d.precision == Precision::kTf32
               ? "tf32 kernels: convs with 32-channel output tiles on tensor cores, TF32 operands, float32 sums"
               : "";
  }
};

}  // namespace volfeat
