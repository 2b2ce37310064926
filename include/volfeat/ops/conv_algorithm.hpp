#pragma once
// The per-layer choice of a conv's algorithm, made by the network (nn/network.hpp) once per conv as
// it builds the conv from its weights. The default builds the backend's direct conv; a backend
// specialises ConvAlgorithm to build a faster one where it wins (Cpu: 3D Winograd,
// backend/cpu/winograd3d_select.hpp).
#include <memory>
#include <vector>

#include "volfeat/ops/conv3d.hpp"

namespace volfeat {

// What the network knows of a conv's use when it builds it. output_voxels: the conv's output voxels in
// one forward at the input the caller declared (BuildUpTo::input), 0 where it declared none; output_height
// and output_width: its output planes' extents there (0: none declared). A backend may weigh a one-off
// cost (Cpu: Winograd's transformed weights) against what a forward saves, or fit its tiles to the planes
// (Cpu: F(4x6x6) where 6-wide tiles waste little).
struct ConvUse {
  Index output_voxels = 0;
  Index output_height = 0, output_width = 0;
};

template <class Backend, class T>
struct ConvAlgorithm {
  // weight: torch order (O, I, kD, kH, kW), float (a network's StateDict, read in place); bias: empty or
  // O values.
  // device: the network's (its state may choose the arithmetic: Cpu's precision).
  static std::unique_ptr<Conv3d<Backend, T>> make(const ConvSpec& spec, const std::vector<float>& weight,
                                                 const std::vector<float>& bias, const Backend& device = {},
                                                 const ConvUse& use = {}) {
    (void)device, (void)use;
    return std::make_unique<Conv3d<Backend, T>>(spec, weight.data(), weight.size(), bias.data(), bias.size());
  }
};

}  // namespace volfeat
