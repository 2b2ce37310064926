#pragma once
// Optional geometry steps before the network: isotropic resampling (trilinear for CT, nearest for
// labels) and cropping to the labelled regions plus a margin. Both keep the affine exact, so the
// outputs still say where every voxel is.
#include <algorithm>
#include <cmath>
#include <set>

#include "volfeat/core/error.hpp"
#include "volfeat/core/host_memory.hpp"
#include "volfeat/io/volume.hpp"
#include "volfeat/pipeline/trilinear.hpp"

namespace volfeat {

namespace detail {
// Grid of `dims` voxels, each `factor` (per D,H,W) times the old spacing, starting at old
// continuous index `start` (per D,H,W). Affine columns are in (i,j,k) = (W,H,D) order.
inline Grid derived_grid(const Grid& g, const std::array<int64_t, 3>& dims, const std::array<double, 3>& factor,
                         const std::array<double, 3>& start) {
  Grid out = g;
  out.dims = dims;
  for (int a = 0; a < 3; ++a) out.spacing[size_t(a)] = g.spacing[size_t(a)] * factor[size_t(a)];
  for (int r = 0; r < 3; ++r) {
    double origin = g.affine[size_t(r)][3];
    for (int a = 0; a < 3; ++a) {
      const size_t col = size_t(2 - a);  // D->k, H->j, W->i
      origin += g.affine[size_t(r)][col] * start[size_t(a)];
      out.affine[size_t(r)][col] = g.affine[size_t(r)][col] * factor[size_t(a)];
    }
    out.affine[size_t(r)][3] = origin;
  }
  return out;
}
}  // namespace detail

// New spacing `mm` on every axis; dims = round(old extent / mm). Sample positions follow
// torch.nn.functional.interpolate(align_corners=False): src = (dst + 0.5) * mm/old - 0.5.
inline Grid resampled_grid(const Grid& g, double mm) {
  if (!(mm > 0) || !std::isfinite(mm)) fail("--resample ", mm, ": the spacing must be a positive number of mm");
  std::array<int64_t, 3> dims{};
  std::array<double, 3> factor{}, start{};
  for (size_t a = 0; a < 3; ++a) {
    const double extent = double(g.dims[a]) * g.spacing[a];
    dims[a] = std::max<int64_t>(1, std::llround(extent / mm));
    factor[a] = mm / g.spacing[a];
    start[a] = 0.5 * factor[a] - 0.5;
  }
  const double voxels = double(dims[0]) * double(dims[1]) * double(dims[2]);
  if (voxels > double(1LL << 31)) fail("--resample ", mm, " mm would make ", voxels, " voxels; choose a coarser spacing");
  return detail::derived_grid(g, dims, factor, start);
}

inline Volume<float> resample_linear(const Volume<float>& v, double mm) {
  Volume<float> out{resampled_grid(v.grid, mm), {}};
  out.data = huge_page_vector<float>(size_t(out.grid.voxels()));
  const auto& in = v.grid.dims;
  auto taps = [&](size_t a) {
    std::vector<LinearTap> t(size_t(out.grid.dims[a]));
    const double f = out.grid.spacing[a] / v.grid.spacing[a];
    for (size_t i = 0; i < t.size(); ++i) t[i] = clamped_tap((double(i) + 0.5) * f - 0.5, in[a]);
    return t;
  };
  const auto td = taps(0), th = taps(1), tw = taps(2);
  auto at = [&](int64_t z, int64_t y, int64_t x) { return double(v.at(z, y, x)); };
#pragma omp parallel for schedule(static)
  for (int64_t d = 0; d < out.grid.dims[0]; ++d)
    for (size_t h = 0; h < th.size(); ++h)
      for (size_t w = 0; w < tw.size(); ++w)
        out.at(d, int64_t(h), int64_t(w)) = float(trilinear(at, td[size_t(d)], th[h], tw[w]));
  return out;
}

// Nearest neighbour at the same sample positions as resample_linear.
inline Volume<int32_t> resample_nearest(const Volume<int32_t>& v, double mm) {
  Volume<int32_t> out{resampled_grid(v.grid, mm), {}};
  out.data = huge_page_vector<int32_t>(size_t(out.grid.voxels()));
  std::array<std::vector<int64_t>, 3> idx;
  for (size_t a = 0; a < 3; ++a) {
    const double f = out.grid.spacing[a] / v.grid.spacing[a];
    for (int64_t i = 0; i < out.grid.dims[a]; ++i)
      idx[a].push_back(std::clamp<int64_t>(std::llround(std::floor((double(i) + 0.5) * f)), 0, v.grid.dims[a] - 1));
  }
  for (int64_t d = 0; d < out.grid.dims[0]; ++d)
    for (int64_t h = 0; h < out.grid.dims[1]; ++h)
      for (int64_t w = 0; w < out.grid.dims[2]; ++w)
        out.at(d, h, w) = v.at(idx[0][size_t(d)], idx[1][size_t(h)], idx[2][size_t(w)]);
  return out;
}

struct Box {
  std::array<int64_t, 3> lo{}, hi{};  // inclusive-exclusive voxel ranges per (D,H,W)
  std::array<int64_t, 3> dims() const { return {hi[0] - lo[0], hi[1] - lo[1], hi[2] - lo[2]}; }
};

// Bounding box of the voxels holding any of `labels`, grown by margin_mm, clipped to the grid.
inline Box labels_box(const Volume<int32_t>& mask, const std::set<int32_t>& labels, double margin_mm) {
  if (!(margin_mm >= 0)) fail("--crop-to-labels ", margin_mm, ": the margin must be >= 0 mm");
  Box b{{mask.grid.dims[0], mask.grid.dims[1], mask.grid.dims[2]}, {-1, -1, -1}};
  for (int64_t d = 0; d < mask.grid.dims[0]; ++d)
    for (int64_t h = 0; h < mask.grid.dims[1]; ++h)
      for (int64_t w = 0; w < mask.grid.dims[2]; ++w)
        if (labels.count(mask.at(d, h, w))) {
          const std::array<int64_t, 3> p{d, h, w};
          for (size_t a = 0; a < 3; ++a) b.lo[a] = std::min(b.lo[a], p[a]), b.hi[a] = std::max(b.hi[a], p[a] + 1);
        }
  if (b.hi[0] < 0) fail("--crop-to-labels: none of the requested labels is present");
  for (size_t a = 0; a < 3; ++a) {
    const int64_t m = int64_t(std::ceil(margin_mm / mask.grid.spacing[a]));
    b.lo[a] = std::max<int64_t>(0, b.lo[a] - m);
    b.hi[a] = std::min<int64_t>(mask.grid.dims[a], b.hi[a] + m);
  }
  return b;
}

template <class T>
Volume<T> crop(const Volume<T>& v, const Box& b) {
  Volume<T> out{detail::derived_grid(v.grid, b.dims(), {1, 1, 1}, {double(b.lo[0]), double(b.lo[1]), double(b.lo[2])}), {}};
  out.data.reserve(size_t(out.grid.voxels()));
  for (int64_t d = b.lo[0]; d < b.hi[0]; ++d)
    for (int64_t h = b.lo[1]; h < b.hi[1]; ++h)
      for (int64_t w = b.lo[2]; w < b.hi[2]; ++w) out.data.push_back(v.at(d, h, w));
  return out;
}

}  // namespace volfeat
