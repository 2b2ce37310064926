#pragma once
// The per-layer choice of a conv's algorithm, made by the network (nn/network.hpp) once per conv
// after packing its weights. The default keeps the backend's direct conv; a backend specialises
// ConvAlgorithm to attach a faster one where it wins (Cpu: 3D Winograd, backend/cpu/winograd3d_select.hpp).
#include <vector>

#include "volfeat/ops/conv3d.hpp"

namespace volfeat {

template <class Backend, class T>
struct ConvAlgorithm {
  // weight: torch order (O, I, kD, kH, kW); bias: empty or O values (as given to the conv).
  template <class W>
  static void choose(Conv3d<Backend, T>& /*conv*/, const std::vector<W>& /*weight*/, const std::vector<W>& /*bias*/) {}
};

}  // namespace volfeat
