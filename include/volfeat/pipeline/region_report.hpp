#pragma once
// Region diagnostics (Task I's check): voxel counts, volumes and HU statistics per region, and a
// picture of the regions over the CT.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

#include "volfeat/core/atomic_file.hpp"
#include "volfeat/io/png.hpp"
#include "volfeat/pipeline/regions.hpp"

namespace volfeat {

namespace detail {
inline double percentile_sorted(const std::vector<float>& s, double p) {
  if (s.empty()) return NAN;
  const double pos = p / 100.0 * double(s.size() - 1);  // numpy's default (linear) percentile
  const size_t i = size_t(pos);
  const double t = pos - double(i);
  return i + 1 < s.size() ? s[i] * (1 - t) + s[i + 1] * t : s[i];
}
}  // namespace detail

// One row per region plus one per label value the mask holds but no region uses, so the rows
// account for every voxel of the volume.
inline std::string region_report_csv(const Volume<float>& ct, const Volume<int32_t>& mask, const std::vector<Region>& regions,
                                     const std::vector<int32_t>& unlisted) {
  std::ostringstream os;
  os.precision(10);
  os << "region,label,voxels,volume_mm3,fraction_of_volume,hu_mean,hu_std,hu_p5,hu_p50,hu_p95\n";
  const double voxel_mm3 = ct.grid.spacing[0] * ct.grid.spacing[1] * ct.grid.spacing[2];
  auto row = [&](const std::string& name, int32_t label) {
    std::vector<float> hu;
    for (size_t i = 0; i < mask.data.size(); ++i)
      if (mask.data[i] == label) hu.push_back(ct.data[i]);
    std::sort(hu.begin(), hu.end());
    double sum = 0, sq = 0;
    for (float x : hu) sum += x;
    const double mean = sum / double(hu.size());
    for (float x : hu) sq += (x - mean) * (x - mean);
    os << name << ',' << label << ',' << hu.size() << ',' << double(hu.size()) * voxel_mm3 << ','
       << double(hu.size()) / double(mask.data.size()) << ',' << mean << ',' << std::sqrt(sq / double(hu.size()))
       << ',' << detail::percentile_sorted(hu, 5) << ',' << detail::percentile_sorted(hu, 50) << ','
       << detail::percentile_sorted(hu, 95) << '\n';
  };
  for (const Region& r : regions) row(r.name, r.label);
  for (int32_t l : unlisted) row("(unlisted label)", l);
  return os.str();
}

// Axial, coronal and sagittal slices through the labelled regions, the CT in a bone
// window with each region tinted in its own colour; panels resampled to the finest spacing so that
// anatomy keeps its proportions.
inline void write_region_slices_png(const std::string& path, const Volume<float>& ct, const Volume<int32_t>& mask,
                                    const std::vector<Region>& regions) {
  static const uint8_t kPalette[][3] = {{230, 60, 60}, {60, 140, 240}, {80, 200, 90}, {240, 180, 40}, {180, 90, 220}, {40, 200, 200}};
  const auto& g = ct.grid;
  // Along each axis, the slice holding the most labelled (non-background) voxels: a centroid can
  // fall in a joint gap or between two femurs and show no bone at all.
  std::array<std::vector<int64_t>, 3> per_slice{std::vector<int64_t>(size_t(g.dims[0])), std::vector<int64_t>(size_t(g.dims[1])),
                                                std::vector<int64_t>(size_t(g.dims[2]))};
  for (int64_t d = 0; d < g.dims[0]; ++d)
    for (int64_t h = 0; h < g.dims[1]; ++h)
      for (int64_t w = 0; w < g.dims[2]; ++w) {
        const int32_t l = mask.at(d, h, w);
        if (l == 0) continue;
        for (const Region& r : regions)
          if (r.label == l) ++per_slice[0][size_t(d)], ++per_slice[1][size_t(h)], ++per_slice[2][size_t(w)];
      }
  int64_t centre[3];
  for (size_t a = 0; a < 3; ++a) {
    const auto& v = per_slice[a];
    const auto best = std::max_element(v.begin(), v.end());
    centre[a] = *best > 0 ? int64_t(best - v.begin()) : g.dims[a] / 2;
  }
  // One pixel per finest voxel spacing, finer still for coarse scans so that panels are >= 320 px.
  const double max_extent = std::max({double(g.dims[0]) * g.spacing[0], double(g.dims[1]) * g.spacing[1],
                                      double(g.dims[2]) * g.spacing[2]});
  const double px = std::min({g.spacing[0], g.spacing[1], g.spacing[2], max_extent / 320.0});
  auto colour_of = [&](int32_t label) -> const uint8_t* {
    for (size_t i = 0; i < regions.size(); ++i)
      if (regions[i].label == label && label != 0) return kPalette[i % 6];
    return nullptr;
  };
  // panel: rows along axis ra, columns along axis ca, fixed axis at centre; rows flipped for D so
  // that the last slice is at the top.
  struct Panel { int ra, ca; };
  const Panel panels[3] = {{1, 2}, {0, 2}, {0, 1}};
  int widths[3], heights[3], total_w = 0, max_h = 0;
  for (int p = 0; p < 3; ++p) {
    heights[p] = int(std::lround(double(g.dims[size_t(panels[p].ra)]) * g.spacing[size_t(panels[p].ra)] / px));
    widths[p] = int(std::lround(double(g.dims[size_t(panels[p].ca)]) * g.spacing[size_t(panels[p].ca)] / px));
    total_w += widths[p] + (p ? 4 : 0);
    max_h = std::max(max_h, heights[p]);
  }
  if (int64_t(total_w) * max_h > (int64_t(1) << 28)) fail(path, ": slice picture would be too large");
  std::vector<uint8_t> rgb(size_t(total_w) * size_t(max_h) * 3, 0);
  int x0 = 0;
  for (int p = 0; p < 3; ++p) {
    const Panel& pn = panels[p];
    const int fixed = 3 - pn.ra - pn.ca;
    for (int y = 0; y < heights[p]; ++y)
      for (int x = 0; x < widths[p]; ++x) {
        int64_t idx[3];
        idx[fixed] = centre[fixed];
        int64_t ry = std::min<int64_t>(int64_t((y + 0.5) * px / g.spacing[size_t(pn.ra)]), g.dims[size_t(pn.ra)] - 1);
        if (pn.ra == 0) ry = g.dims[0] - 1 - ry;
        idx[pn.ra] = ry;
        idx[pn.ca] = std::min<int64_t>(int64_t((x + 0.5) * px / g.spacing[size_t(pn.ca)]), g.dims[size_t(pn.ca)] - 1);
        const double hu = ct.at(idx[0], idx[1], idx[2]);
        const double gray = std::clamp((hu + 600.0) / 2000.0, 0.0, 1.0) * 255.0;
        double out[3] = {gray, gray, gray};
        if (const uint8_t* col = colour_of(mask.at(idx[0], idx[1], idx[2])))
          for (int k = 0; k < 3; ++k) out[k] = 0.55 * gray + 0.45 * col[k];
        uint8_t* dst = &rgb[(size_t(y) * size_t(total_w) + size_t(x0 + x)) * 3];
        for (int k = 0; k < 3; ++k) dst[k] = uint8_t(std::lround(out[k]));
      }
    x0 += widths[p] + 4;
  }
  write_png_rgb(path, total_w, max_h, rgb);
}

}  // namespace volfeat
