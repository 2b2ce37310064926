#pragma once
// A region's partial-volume weight on a layer's grid: its indicator averaged into each output
// voxel's bin with torch's adaptive_avg_pool3d bins (output i covers input
// floor(i*N/n) .. ceil((i+1)*N/n)-1 per axis). Bins are boxes, so the mean is taken one axis at a
// time (W, then H, then D), in double.
//
// The first pass counts the region's voxels straight from the label mask and already shrinks W by
// the tap's stride, so no full-size indicator is ever made (at 216x512x512 a double one was 450 MB
// per region and grid).
#include <algorithm>
#include <array>
#include <cstdint>
#include <utility>
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

// The weights of the voxels labelled labels[0], labels[1], ..., from the mask itself, on one grid.
// All regions share the first pass, so the mask (at 216x512x512, 226 MB of int32) is read once per
// grid instead of once per region and grid: with 3 regions and 3 taps, 9 reads of the mask had cost
// 0.29 CPU s of a 216x512x512 extract (AMD EPYC Zen 4, perf).
inline std::vector<std::vector<double>> region_weights(const Volume<int32_t>& mask, const std::vector<int32_t>& labels,
                                                       const std::array<Index, 3>& out) {
  const auto& in = mask.grid.dims;
  const Index n = in[2], m = out[2];
  const size_t nl = labels.size();
  // Per input slice d, for every label: the first pass (W -> w) as integer counts, the same values
  // as summing the 0/1 indicator in double (every partial sum is an exact small integer) but
  // vectorisable and without a double chain; then H -> h. Slice by slice, so only (D, h, w) per
  // label is ever held, not (D, H, w). a[l]: (D, h, w) for label l.
  std::vector<std::vector<double>> a(nl, std::vector<double>(size_t(in[0] * out[1] * m)));
  const int32_t* values = mask.data.data();
#pragma omp parallel
  {
    std::vector<std::vector<double>> slice(nl, std::vector<double>(size_t(in[1] * m)));  // (H, w)
#pragma omp for schedule(static)
    for (Index d = 0; d < in[0]; ++d) {
      for (Index y = 0; y < in[1]; ++y) {
        const int32_t* row = values + (d * in[1] + y) * n;
        for (Index i = 0; i < m; ++i) {
          const Index b = adaptive_begin(i, n, m), e = adaptive_end(i, n, m);
          for (size_t l = 0; l < nl; ++l) {
            const int32_t label = labels[l];
            int64_t c = 0;
            for (Index j = b; j < e; ++j) c += row[j] == label;
            slice[l][size_t(y * m + i)] = double(c) / double(e - b);
          }
        }
      }
      for (size_t l = 0; l < nl; ++l) {
        const std::vector<double> hw = detail::adaptive_mean_pass(slice[l], 1, in[1], m, out[1]);  // (H, w) -> (h, w)
        std::copy(hw.begin(), hw.end(), a[l].begin() + std::ptrdiff_t(d * out[1] * m));
      }
    }
  }
  for (auto& w : a) w = detail::adaptive_mean_pass(w, 1, in[0], out[1] * out[2], out[0]);  // (1, D, h*w) -> (d, h, w)
  return a;
}

// The weight of the voxels labelled `label` alone.
inline std::vector<double> region_weights(const Volume<int32_t>& mask, int32_t label, const std::array<Index, 3>& out) {
  return std::move(region_weights(mask, std::vector<int32_t>{label}, out)[0]);
}

}  // namespace volfeat
