#pragma once
// Shapes of channels-last activations and the geometry of sliding-window ops.
#include <array>
#include <cstdint>
#include <string>

namespace volfeat {

using Index = std::int64_t;

// Dims of an activation in volfeat's one layout, channels-last (N, D, H, W, C).
// Why channels-last: a 1x1x1 conv is then one GEMM over the voxels, and a dense layer can append its
// 32 new channels into a preallocated block buffer in place (the channel slice of every voxel).
struct Dims {
  Index n = 1, d = 1, h = 1, w = 1, c = 1;
  Index voxels() const { return n * d * h * w; }
  Index size() const { return voxels() * c; }
  std::array<Index, 3> spatial() const { return {d, h, w}; }
  friend bool operator==(const Dims& a, const Dims& b) {
    return a.n == b.n && a.d == b.d && a.h == b.h && a.w == b.w && a.c == b.c;
  }
  friend bool operator!=(const Dims& a, const Dims& b) { return !(a == b); }
};

inline std::string to_string(const Dims& x) {
  return "(N=" + std::to_string(x.n) + ", D=" + std::to_string(x.d) + ", H=" + std::to_string(x.h) +
         ", W=" + std::to_string(x.w) + ", C=" + std::to_string(x.c) + ")";
}

// Kernel, stride, padding and dilation per spatial axis (D, H, W), with PyTorch's semantics.
struct WindowGeometry {
  std::array<Index, 3> kernel{1, 1, 1};
  std::array<Index, 3> stride{1, 1, 1};
  std::array<Index, 3> padding{0, 0, 0};
  std::array<Index, 3> dilation{1, 1, 1};

  static WindowGeometry cube(Index k, Index s = 1, Index p = 0, Index dil = 1) {
    return {{k, k, k}, {s, s, s}, {p, p, p}, {dil, dil, dil}};
  }
  Index taps() const { return kernel[0] * kernel[1] * kernel[2]; }
  friend bool operator==(const WindowGeometry& a, const WindowGeometry& b) {
    return a.kernel == b.kernel && a.stride == b.stride && a.padding == b.padding && a.dilation == b.dilation;
  }
  // floor((n + 2p - dil*(k-1) - 1) / s) + 1, as torch.nn.Conv3d / MaxPool3d with ceil_mode=False.
  // Returns <= 0 when the window does not fit: callers turn that into a size error.
  Index out_extent(int axis, Index n) const {
    const Index span = dilation[axis] * (kernel[axis] - 1) + 1;
    const Index padded = n + 2 * padding[axis];
    if (padded < span) return 0;
    return (padded - span) / stride[axis] + 1;
  }
  std::array<Index, 3> out_spatial(const std::array<Index, 3>& in) const {
    return {out_extent(0, in[0]), out_extent(1, in[1]), out_extent(2, in[2])};
  }
};

}  // namespace volfeat
