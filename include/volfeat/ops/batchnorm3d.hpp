#pragma once
// BatchNorm3d in inference mode, folded at load into a per-channel scale and shift (as dlib does):
//   y = (x - mean) / sqrt(var + eps) * gamma + beta = x * scale + shift.
#include <cmath>
#include <vector>

#include "volfeat/backend/backend.hpp"
#include "volfeat/core/error.hpp"
#include "volfeat/core/tensor_view.hpp"

namespace volfeat {

struct BatchNormParams {
  std::vector<double> gamma, beta, running_mean, running_var;
  double eps = 1e-5;  // torch's default; state_dicts do not store it

  Index channels() const { return static_cast<Index>(gamma.size()); }
  // Folded in double, so the float scale/shift are correctly rounded once.
  void fold(std::vector<double>& scale, std::vector<double>& shift) const {
    const size_t c = gamma.size();
    scale.resize(c);
    shift.resize(c);
    for (size_t i = 0; i < c; ++i) {
      scale[i] = gamma[i] / std::sqrt(running_var[i] + eps);
      shift[i] = beta[i] - running_mean[i] * scale[i];
    }
  }
};

template <class Backend, class T>
class BatchNorm3d {
  VOLFEAT_UNSUPPORTED_OP("BatchNorm3d");
};

// What a conv may apply to its input while packing it (pre-activation BN+ReLU of a DenseNet layer)
// or to its output before storing it (the stem's norm0+relu0): an optional BN, then an optional ReLU.
// Fusing saves a full read and write of the activation and, for the input side, its storage.
template <class Backend, class T>
struct Activation {
  const BatchNorm3d<Backend, T>* bn = nullptr;
  bool relu = false;
  bool active() const { return bn != nullptr || relu; }
};

}  // namespace volfeat
