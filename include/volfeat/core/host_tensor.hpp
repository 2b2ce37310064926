#pragma once
#include <vector>

#include "volfeat/core/shape.hpp"

namespace volfeat {

// A dense channels-last copy on the host: what taps and results hand to user code.
template <class T>
struct HostTensor {
  Dims dims{0, 0, 0, 0, 0};
  std::vector<T> data;
  const T* voxel(Index v) const { return data.data() + v * dims.c; }
};

}  // namespace volfeat
