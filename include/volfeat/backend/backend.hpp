#pragma once
// Backends are plain tag types chosen at compile time, as Eigen's devices are (TensorDevice.h):
// every op is a class template over <Backend, Scalar>, and a backend is added by writing
// specializations only. The primary templates below are declared but never defined for a backend
// that lacks them, so using one fails to compile with a message saying what to enable.
#include <type_traits>

namespace volfeat {

template <class>
inline constexpr bool kNoSpecialization = false;

#define VOLFEAT_UNSUPPORTED_OP(op)                                                                   \
  static_assert(kNoSpecialization<Backend>,                                                          \
                "volfeat: " op " has no specialization for this Backend. Include the backend's "    \
                "header (volfeat/backend/cpu.hpp, or volfeat/backend/thrust.hpp built with "         \
                "VOLFEAT_WITH_THRUST_OMP / VOLFEAT_WITH_CUDA).")

// True for backends whose tensors live in ordinary host memory, so a host array can be handed to
// an op as a view without a copy.
template <class Backend>
inline constexpr bool kHostResident = false;

// True for backends whose device can keep a network's packed weights in a file on disk instead of
// memory (Cpu: open_weight_file() and drop_weight_pages(), core/weight_file.hpp).
template <class Backend>
inline constexpr bool kStreamsWeights = false;

// Owning activation storage, channels-last (N, D, H, W, C).
template <class Backend, class T>
class Tensor {
  VOLFEAT_UNSUPPORTED_OP("Tensor");
};

}  // namespace volfeat
