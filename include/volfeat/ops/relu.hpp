#pragma once
#include "volfeat/backend/backend.hpp"

namespace volfeat {

// ReLU with torch's NaN behaviour: NaN stays NaN (x < 0 ? 0 : x, never std::max(0, x)).
template <class T>
inline T relu_scalar(T x) {
  return x < T(0) ? T(0) : x;
}

template <class Backend, class T>
struct Relu {
  VOLFEAT_UNSUPPORTED_OP("Relu");
};

}  // namespace volfeat
