#pragma once
// A region's partial-volume weight on a layer's grid: its indicator averaged into each output
// voxel's bin with torch's adaptive_avg_pool3d bins (output i covers input
// floor(i*N/n) .. ceil((i+1)*N/n)-1 per axis). Bins are boxes, so the mean is taken one axis at a
// time (W, then H, then D), in double.
//
// The first pass counts the region's voxels straight from the label mask and already shrinks W by
// the tap's stride, so no full-size indicator is ever made (at 216x512x512 a double one was 450 MB
// per region and grid).
#include <array>
#include <cstdint>
#include <vector>

#include "volfeat/io/volume.hpp"
#include "volfeat/ops/pool3d.hpp"

namespace volfeat {

namespace detail {
// Pass along one axis of a (outer, n, inner) array: n -> m bins.
inline std::vector<double> adaptive_mean_pass(const std::vector<double>& src, Index outer, Index n, Index inner, Index m) {
  std::vector<double> dst(size_t(outer * m * inner), 0.0);
#pragma omp parallel for schedule(static) if (outer * n * inner > (Index(1) << 20))
  for (Index o = 0; o < outer; ++o)
    for (Index i = 0; i < m; ++i) {
      const Index b = adaptive_begin(i, n, m), e = adaptive_end(i, n, m);
      double* y = dst.data() + (o * m + i) * inner;
      for (Index j = b; j < e; ++j) {
        const Index x = (o * n + j) * inner;
        for (Index k = 0; k < inner; ++k) y[k] += src[size_t(x + k)];
      }
      for (Index k = 0; k < inner; ++k) y[k] /= double(e - b);
    }
  return dst;
}

}  // namespace detail

// The weight of the voxels labelled `label`, from the mask itself.
inline std::vector<double> region_weights(const Volume<int32_t>& mask, int32_t label, const std::array<Index, 3>& out) {
  const auto& in = mask.grid.dims;
  const Index rows = in[0] * in[1], n = in[2], m = out[2];
  // First pass (W -> w) as integer counts: the same values as summing the 0/1 indicator in double
  // (every partial sum is an exact small integer), but vectorisable and without a double chain.
  std::vector<double> a(size_t(rows * m));
  const int32_t* labels = mask.data.data();
#pragma omp parallel for schedule(static)
  for (Index r = 0; r < rows; ++r) {
    const int32_t* row = labels + r * n;
    for (Index i = 0; i < m; ++i) {
      const Index b = adaptive_begin(i, n, m), e = adaptive_end(i, n, m);
      int64_t count = 0;
      for (Index j = b; j < e; ++j) count += row[j] == label;
      a[size_t(r * m + i)] = double(count) / double(e - b);
    }
  }
  a = detail::adaptive_mean_pass(a, in[0], in[1], out[2], out[1]);          // (D, H, w) -> (D, h, w)
  return detail::adaptive_mean_pass(a, 1, in[0], out[1] * out[2], out[0]);  // (1, D, h*w) -> (d, h, w)
}

}  // namespace volfeat
