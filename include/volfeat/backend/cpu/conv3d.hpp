#pragma once
// Cpu Conv3d: implicit GEMM over tiles of output voxels.
//
// For a tile of P output voxels the input patches are packed into A (P x K), K = kD*kH*kW*C_in,
// ordered (tap, c_in) with tap = (kd*kH + kh)*kW + kw; the weights are packed once into
// W (K x C_out), so the tile's output rows are A*W, written straight into the (possibly strided)
// output view. Only one tile of A per thread ever exists, so no full im2col buffer is allocated.
// A pointwise conv (1x1x1, stride 1, no padding) without a fused pre-activation reads its input
// view in place as A.
#include <Eigen/Core>
#include <algorithm>
#include <vector>

#include "volfeat/backend/cpu/batchnorm3d.hpp"
#include "volfeat/ops/conv3d.hpp"

namespace volfeat {

template <class T>
class Conv3d<Cpu, T> {
  using RowMatrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  using StridedMap = Eigen::Map<RowMatrix, Eigen::Unaligned, Eigen::OuterStride<>>;
  using ConstStridedMap = Eigen::Map<const RowMatrix, Eigen::Unaligned, Eigen::OuterStride<>>;

 public:
  Conv3d() = default;
  // weight: torch order (O, I, kD, kH, kW); bias: empty or O values.
  Conv3d(const ConvSpec& spec, const std::vector<double>& weight, const std::vector<double>& bias = {})
      : spec_(spec) {
    if (static_cast<Index>(weight.size()) != spec.weight_count())
      fail("conv3d: ", weight.size(), " weights given, the layer needs ", spec.weight_count());
    if (!bias.empty() && static_cast<Index>(bias.size()) != spec.out_channels)
      fail("conv3d: ", bias.size(), " biases given, the layer needs ", spec.out_channels);
    const Index ci = spec.in_channels, co = spec.out_channels, taps = spec.geometry.taps();
    packed_.resize(ci * taps, co);
    for (Index o = 0; o < co; ++o)
      for (Index i = 0; i < ci; ++i)
        for (Index t = 0; t < taps; ++t)
          packed_(t * ci + i, o) = static_cast<T>(weight[static_cast<size_t>((o * ci + i) * taps + t)]);
    bias_.assign(bias.begin(), bias.end());
  }

  const ConvSpec& spec() const { return spec_; }
  Dims output_dims(const Dims& in) const { return spec_.output_dims(in); }

  void forward(TensorView<const T> in, TensorView<T> out, Activation<Cpu, T> pre = {},
               Activation<Cpu, T> post = {}) const {
    const Dims want = output_dims(in.dims);
    if (out.dims != want)
      fail("conv3d: output view ", to_string(out.dims), " but the conv produces ", to_string(want));
    if (want.voxels() <= 0) fail("conv3d: input ", to_string(in.dims), " is smaller than the kernel");
    const WindowGeometry& g = spec_.geometry;
    const Index ci = spec_.in_channels, co = spec_.out_channels;
    const Index k = ci * g.taps();
    const bool pointwise = g.taps() == 1 && g.stride == std::array<Index, 3>{1, 1, 1} &&
                           g.padding == std::array<Index, 3>{0, 0, 0};
    const bool in_place_a = pointwise && !pre.active();
    const Index voxels = want.voxels();
    // ~256 KiB of A per tile: stays in L2 next to the packed weights.
    const Index tile = std::clamp<Index>(Index(65536 / sizeof(T)) / k, 16, 512);
    const Index tiles = (voxels + tile - 1) / tile;

#pragma omp parallel
    {
      RowMatrix a_tile(in_place_a ? 0 : tile, in_place_a ? 0 : k);
#pragma omp for schedule(static)
      for (Index t = 0; t < tiles; ++t) {
        const Index v0 = t * tile;
        const Index rows = std::min(tile, voxels - v0);
        const T* a = nullptr;
        Index lda = k;
        if (in_place_a) {
          a = in.voxel(v0);
          lda = in.ld;
        } else {
          pack(in, want, v0, rows, pre, a_tile.data());
          a = a_tile.data();
        }
        ConstStridedMap am(a, rows, k, Eigen::OuterStride<>(lda));
        StridedMap om(out.voxel(v0), rows, co, Eigen::OuterStride<>(out.ld));
        om.noalias() = am * packed_;
        if (!bias_.empty() || post.active()) {
          for (Index r = 0; r < rows; ++r) {
            T* y = out.voxel(v0 + r);
            for (Index o = 0; o < Index(bias_.size()); ++o) y[o] += bias_[o];
            apply_activation(post, y, y, co);
          }
        }
      }
    }
  }

 private:
  // Rows [v0, v0+rows) of A: output voxel v's receptive field, padding as zeros. A fused
  // pre-activation applies only to in-bounds values: torch pads the activated tensor with zeros.
  void pack(const TensorView<const T>& in, const Dims& od, Index v0, Index rows,
            const Activation<Cpu, T>& pre, T* a) const {
    const WindowGeometry& g = spec_.geometry;
    const Index ci = spec_.in_channels, k = ci * g.taps();
    for (Index r = 0; r < rows; ++r) {
      // v = ((n*Do + z)*Ho + y)*Wo + x over the output grid
      Index v = v0 + r;
      const Index x = v % od.w;
      v /= od.w;
      const Index y = v % od.h;
      v /= od.h;
      const Index z = v % od.d;
      const Index n = v / od.d;
      T* row = a + r * k;
      for (Index kd = 0; kd < g.kernel[0]; ++kd) {
        const Index id = z * g.stride[0] - g.padding[0] + kd * g.dilation[0];
        for (Index kh = 0; kh < g.kernel[1]; ++kh) {
          const Index ih = y * g.stride[1] - g.padding[1] + kh * g.dilation[1];
          for (Index kw = 0; kw < g.kernel[2]; ++kw, row += ci) {
            const Index iw = x * g.stride[2] - g.padding[2] + kw * g.dilation[2];
            if (id < 0 || id >= in.dims.d || ih < 0 || ih >= in.dims.h || iw < 0 || iw >= in.dims.w) {
              std::fill(row, row + ci, T(0));
            } else {
              apply_activation(pre, in.voxel(n, id, ih, iw), row, ci);
            }
          }
        }
      }
    }
  }

  ConvSpec spec_;
  RowMatrix packed_;  // (K, C_out), rows ordered (tap, c_in)
  std::vector<T> bias_;
};

}  // namespace volfeat
