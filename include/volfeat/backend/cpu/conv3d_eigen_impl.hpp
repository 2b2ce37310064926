#pragma once
// Conv3d<Cpu, double>'s path (the exact reference the float paths are held to): A packed per tile of
// output voxels (im2col, the pre-activation applied on the way), times the (K, C_out) weight matrix by
// Eigen's GEMM, then bias, post-activation and residual. Included by conv3d.hpp; not meant to be included
// alone.
#include <omp.h>

#include <algorithm>

#include "volfeat/backend/cpu/conv3d.hpp"

namespace volfeat {

// Output voxels [first, last) of the grid `want`; voxel v is stored at out + (v - v_base)*ldo.
template <class T>
void Conv3d<Cpu, T>::forward_eigen_range(TensorView<const T> in, const Dims& want, T* out, Index ldo, Index v_base,
                                         const Activation<Cpu, T>& pre, const Activation<Cpu, T>& post, Index first,
                                         Index last, const Residual* res) const {
  const Index ci = spec_.in_channels, co = spec_.out_channels;
  const Index k = ci * spec_.geometry.taps();
  const bool in_place_a = pointwise() && !pre.active();
  const Index voxels = last - first;
  // A tile of at least 128 rows, so that Eigen's packing of the weights is amortised.
  const Index tile = std::clamp<Index>(Index(262144 / sizeof(T)) / k, 128, 512);
  const Index tiles = (voxels + tile - 1) / tile;

#pragma omp parallel
  {
    RowMatrix a_tile(in_place_a ? 0 : tile, in_place_a ? 0 : k);
#pragma omp for schedule(static)
    for (Index t = 0; t < tiles; ++t) {
      const Index v0 = first + t * tile;
      const Index rows = std::min(tile, last - v0);
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
      StridedMap om(out + (v0 - v_base) * ldo, rows, co, Eigen::OuterStride<>(ldo));
      om.noalias() = am * packed_;
      if (!bias_.empty() || post.active()) {
        for (Index r = 0; r < rows; ++r) {
          T* y = out + (v0 + r - v_base) * ldo;
          for (Index o = 0; o < Index(bias_.size()); ++o) y[o] += bias_[o];
          apply_activation(post, y, y, co);
        }
      }
      if (res)
        for (Index r = 0; r < rows; ++r)
          add_residual(out + (v0 + r - v_base) * ldo, res->view.voxel(v0 + r), co, res->relu);
    }
  }
}

// Rows [v0, v0+rows) of A: output voxel v's receptive field, padding as zeros. A fused
// pre-activation applies only to in-bounds values: torch pads the activated tensor with zeros.
template <class T>
void Conv3d<Cpu, T>::pack(const TensorView<const T>& in, const Dims& od, Index v0, Index rows,
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

}  // namespace volfeat
