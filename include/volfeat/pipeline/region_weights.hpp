#pragma once
// A region's partial-volume weight on a layer's grid: its indicator averaged into each output
// voxel's bin with torch's adaptive_avg_pool3d bins (output i covers input
// floor(i*N/n) .. ceil((i+1)*N/n)-1 per axis). Bins are boxes, so the mean is taken one axis at a
// time (W, then H, then D), in double.
#include <array>
#include <vector>

#include "volfeat/ops/pool3d.hpp"

namespace volfeat {

inline std::vector<double> region_weights(const std::vector<float>& indicator, const std::array<Index, 3>& in,
                                          const std::array<Index, 3>& out) {
  // Pass along one axis of a (outer, n, inner) array: n -> m bins.
  auto pass = [](const std::vector<double>& src, Index outer, Index n, Index inner, Index m) {
    std::vector<double> dst(size_t(outer * m * inner), 0.0);
    for (Index o = 0; o < outer; ++o)
      for (Index i = 0; i < m; ++i) {
        const Index b = adaptive_begin(i, n, m), e = adaptive_end(i, n, m);
        double* y = dst.data() + (o * m + i) * inner;
        for (Index j = b; j < e; ++j) {
          const double* x = src.data() + (o * n + j) * inner;
          for (Index k = 0; k < inner; ++k) y[k] += x[k];
        }
        for (Index k = 0; k < inner; ++k) y[k] /= double(e - b);
      }
    return dst;
  };
  std::vector<double> a(indicator.begin(), indicator.end());
  a = pass(a, in[0] * in[1], in[2], 1, out[2]);        // (D*H, W, 1) -> (D*H, w)
  a = pass(a, in[0], in[1], out[2], out[1]);           // (D, H, w) -> (D, h, w)
  return pass(a, 1, in[0], out[1] * out[2], out[0]);   // (1, D, h*w) -> (d, h, w)
}

}  // namespace volfeat
