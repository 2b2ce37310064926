#pragma once
// Depth-factored conv kernels: a 3D kernel whose kD slices are each either zero or one and the same
// 2D kernel S, w[o][i][kd][kh][kw] = m[kd] * S[o][i][kh][kw] with m[kd] in {0, 1}. That is what
// inflating a 2D network along D makes with the registry's two rules (weights/inflate.hpp): i3d-mean
// (every slice w2 / k, m all ones) and centre (only the middle slice, m one-hot), the default
// (i3d-mean, --axis D) included.
//
// Then conv(x)[z, y, x] = sum_(kh, kw) S * (sum_(kd: m[kd] = 1) act(x)[z*sD - pD + kd*dD, ...]): the
// input rows along depth are summed first (C_in values per voxel) and the conv is a 2D one, kD times
// fewer multiply-adds. The Cpu direct conv (backend/cpu/conv3d.hpp) does this where the weights allow
// it; the values differ from the 3D sum only by the order of the additions.
#include <cstdint>
#include <cstring>
#include <vector>

#include "volfeat/core/shape.hpp"
#include "volfeat/ops/conv3d.hpp"

namespace volfeat {

// Whether a Cpu direct conv may run depth-factored: kAuto where its weights are, kOff never
// (VOLFEAT_DEPTH_FACTOR=0, parsed in winograd3d_select.hpp's ConvAlgorithm; tests compare the two).
enum class DepthFactoring { kAuto, kOff };

namespace cpu {

struct DepthFactor {
  std::vector<uint8_t> mask;  // m[kd]; empty: the kernel is not depth-factored
  Index slice = -1;           // a kd with m[kd] = 1: S is that slice of the weights
  bool factored() const { return !mask.empty(); }
};

// The factoring of torch-ordered (O, I, kD, kH, kW) weights, exact or none: slices compared bit for bit
// (a kernel with kD = 1, or all zero, is left as it is).
inline DepthFactor depth_factor(const ConvSpec& spec, const float* weight) {
  const auto& k = spec.geometry.kernel;
  const Index kd_n = k[0], plane = k[1] * k[2], units = spec.out_channels * spec.in_channels;
  DepthFactor f;
  if (kd_n < 2) return f;
  std::vector<uint8_t> mask(size_t(kd_n), 0);
  for (Index u = 0; u < units; ++u)
    for (Index kd = 0; kd < kd_n; ++kd) {
      const float* s = weight + (u * kd_n + kd) * plane;
      for (Index j = 0; j < plane && !mask[size_t(kd)]; ++j) mask[size_t(kd)] = s[j] != 0.f;
    }
  Index first = -1;
  for (Index kd = 0; kd < kd_n && first < 0; ++kd)
    if (mask[size_t(kd)]) first = kd;
  if (first < 0) return f;
  for (Index u = 0; u < units; ++u) {
    const float* s0 = weight + (u * kd_n + first) * plane;
    for (Index kd = first + 1; kd < kd_n; ++kd)
      if (mask[size_t(kd)] && std::memcmp(s0, weight + (u * kd_n + kd) * plane, size_t(plane) * sizeof(float)) != 0)
        return f;
  }
  f.mask = std::move(mask);
  f.slice = first;
  return f;
}

// S: the (O, I, 1, kH, kW) weights of a factored kernel.
inline std::vector<float> depth_factor_slice(const ConvSpec& spec, const float* weight, const DepthFactor& f) {
  const auto& k = spec.geometry.kernel;
  const Index kd_n = k[0], plane = k[1] * k[2], units = spec.out_channels * spec.in_channels;
  std::vector<float> s(size_t(units * plane));
  for (Index u = 0; u < units; ++u) std::memcpy(&s[size_t(u * plane)], weight + (u * kd_n + f.slice) * plane, size_t(plane) * sizeof(float));
  return s;
}

}  // namespace cpu
}  // namespace volfeat
