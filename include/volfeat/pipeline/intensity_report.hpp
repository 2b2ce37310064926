#pragma once
// The CT intensity report of `volfeat preprocess` (issue #15): per region and for the whole volume,
// statistics before and after denoise+contrast, and a picture of them.
//   intensity_report.csv  one row per (stage, region): voxels, mean, population std, numpy-linear
//                         percentiles p1 p5 p25 p50 p75 p95 p99, and voxel counts per HU band
//   intensity.png         box plots, histograms, a before/after scatter and band bars (layout in
//                         the README: the picture has no text)
#include <algorithm>
#include <array>
#include <cmath>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "volfeat/io/png.hpp"
#include "volfeat/pipeline/region_report.hpp"
#include "volfeat/pipeline/regions.hpp"

namespace volfeat {

// HU bands (half-open where they meet): air < -900; fat [-150, -50); soft tissue [-50, 100];
// bone > 300. Values in none of them (-900..-150, 100..300) are counted as "other", so each row's
// bands sum to its voxels.
struct HuBand {
  const char* name;
  double lo, hi;  // lo <= x < hi, except soft tissue, which includes 100
};
inline constexpr HuBand kHuBands[] = {
    {"air", -INFINITY, -900}, {"fat", -150, -50}, {"soft_tissue", -50, 100}, {"bone", 300, INFINITY}};
inline constexpr int kHuBandCount = 4;
inline constexpr double kReportPercentiles[] = {1, 5, 25, 50, 75, 95, 99};
inline constexpr int kReportPercentileCount = 7;

inline int hu_band(double x) {
  if (x < -900) return 0;
  if (x >= -150 && x < -50) return 1;
  if (x >= -50 && x <= 100) return 2;
  if (x > 300) return 3;
  return kHuBandCount;  // other
}

struct IntensityRow {
  std::string region;  // "all" for the whole volume
  std::string label;   // "-" for the whole volume
  uint64_t voxels = 0;
  double mean = NAN, sd = NAN;
  std::array<double, kReportPercentileCount> percentile{};
  std::array<uint64_t, kHuBandCount + 1> bands{};  // the four bands, then other
};

// Rows: the whole volume, then each region (mask may be null: whole volume only).
inline std::vector<IntensityRow> intensity_rows(const Volume<float>& ct, const Volume<int32_t>* mask,
                                                const std::vector<Region>& regions) {
  std::vector<IntensityRow> rows(1);
  rows[0].region = "all", rows[0].label = "-";
  std::map<int32_t, std::vector<size_t>> rows_of;
  if (mask)
    for (const Region& r : regions) {
      rows_of[r.label].push_back(rows.size());
      rows.push_back({r.name, std::to_string(r.label), 0, NAN, NAN, {}, {}});
    }
  std::vector<detail::RowStatistics> stats(rows.size());
  // Runs of one label (label maps come in long runs), each run's rows looked up once.
  auto each = [&](auto&& f) {
    const size_t n = ct.data.size();
    f(size_t(0), ct.data.data(), n);  // row 0: the whole volume
    if (!mask) return;
    const int32_t* m = mask->data.data();
    for (size_t i = 0; i < n;) {
      size_t j = i + 1;
      while (j < n && m[j] == m[i]) ++j;
      const auto it = rows_of.find(m[i]);
      if (it != rows_of.end())
        for (size_t r : it->second) f(r, ct.data.data() + i, j - i);
      i = j;
    }
  };
  each([&](size_t r, const float* x, size_t len) {
    stats[r].add_first(x, len);
    for (size_t k = 0; k < len; ++k) ++rows[r].bands[size_t(hu_band(x[k]))];
  });
  for (auto& s : stats) s.plan({std::begin(kReportPercentiles), std::end(kReportPercentiles)});
  each([&](size_t r, const float* x, size_t len) { stats[r].add_second(x, len); });
  for (size_t r = 0; r < rows.size(); ++r) {
    rows[r].voxels = stats[r].count();
    rows[r].mean = stats[r].mean();
    rows[r].sd = stats[r].sd();
    for (int p = 0; p < kReportPercentileCount; ++p) rows[r].percentile[size_t(p)] = stats[r].percentile(kReportPercentiles[p]);
  }
  return rows;
}

inline std::string intensity_report_csv(const std::vector<IntensityRow>& before, const std::vector<IntensityRow>& after) {
  std::ostringstream os;
  os.precision(10);
  os << "stage,region,label,voxels,mean,std";
  for (double p : kReportPercentiles) os << ",p" << p;
  for (const HuBand& b : kHuBands) os << ',' << b.name;
  os << ",other\n";
  auto rows = [&](const char* stage, const std::vector<IntensityRow>& rs) {
    for (const IntensityRow& r : rs) {
      os << stage << ',' << r.region << ',' << r.label << ',' << r.voxels << ',' << r.mean << ',' << r.sd;
      for (double p : r.percentile) os << ',' << p;
      for (uint64_t c : r.bands) os << ',' << c;
      os << '\n';
    }
  };
  rows("before", before);
  rows("after", after);
  return os.str();
}

namespace detail {
// A minimal raster canvas: filled rectangles, lines, points. No text.
struct Canvas {
  int width, height;
  std::vector<uint8_t> rgb;
  Canvas(int w, int h) : width(w), height(h), rgb(size_t(w) * size_t(h) * 3, 255) {}
  void pixel(int x, int y, const std::array<uint8_t, 3>& c) {
    if (x < 0 || y < 0 || x >= width || y >= height) return;
    std::copy(c.begin(), c.end(), rgb.begin() + (std::ptrdiff_t(y) * width + x) * 3);
  }
  void rect(int x0, int y0, int x1, int y1, const std::array<uint8_t, 3>& c) {  // filled, inclusive
    for (int y = std::min(y0, y1); y <= std::max(y0, y1); ++y)
      for (int x = std::min(x0, x1); x <= std::max(x0, x1); ++x) pixel(x, y, c);
  }
  void frame(int x0, int y0, int x1, int y1, const std::array<uint8_t, 3>& c) {
    line(x0, y0, x1, y0, c), line(x1, y0, x1, y1, c), line(x1, y1, x0, y1, c), line(x0, y1, x0, y0, c);
  }
  void line(int x0, int y0, int x1, int y1, const std::array<uint8_t, 3>& c) {  // Bresenham
    const int dx = std::abs(x1 - x0), dy = -std::abs(y1 - y0), sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1;
    int err = dx + dy;
    for (;;) {
      pixel(x0, y0, c);
      if (x0 == x1 && y0 == y1) break;
      const int e2 = 2 * err;
      if (e2 >= dy) err += dy, x0 += sx;
      if (e2 <= dx) err += dx, y0 += sy;
    }
  }
};

inline const std::array<uint8_t, 3> kBlack{0, 0, 0}, kGrid{225, 225, 225}, kBefore{150, 150, 150};
inline const std::array<uint8_t, 3> kRegionColours[] = {{40, 40, 40},  {230, 60, 60}, {60, 140, 240}, {80, 200, 90},
                                                        {240, 180, 40}, {180, 90, 220}, {40, 200, 200}};
inline const std::array<uint8_t, 3>& row_colour(size_t row) { return kRegionColours[row % 7]; }

// Maps a value range onto a pixel range.
struct Axis {
  double lo, hi;
  int p0, p1;  // pixel of lo, pixel of hi
  int operator()(double v) const { return int(std::lround(p0 + (v - lo) / (hi - lo) * (p1 - p0))); }
};
}  // namespace detail

// Four panels, 2 x 2, each with a frame, a light grid line every 500 HU on HU axes and a dark line
// at 0 HU:
//   top left    box plots, one pair per row of the report (all, then each region): before in grey,
//               after in the region's colour; box p25..p75, whiskers p5..p95, a bar at p50
//   top right   whole-volume histograms over the shared HU range (log counts): before grey, after black
//   bottom left scatter of before HU (x) against after HU (y) at ~20,000 voxels taken at a fixed
//               stride, coloured by region (all-volume voxels in no region dark grey); the diagonal y = x
//   bottom right bars: fraction of each row's voxels per HU band (air, fat, soft tissue, bone, in
//               that order), pairs before (grey) / after (colour) per row
inline void write_intensity_png(const std::string& path, const Volume<float>& before, const Volume<float>& after,
                                const Volume<int32_t>* mask, const std::vector<Region>& regions,
                                const std::vector<IntensityRow>& rows_before, const std::vector<IntensityRow>& rows_after) {
  using detail::Axis;
  constexpr int kPanelW = 420, kPanelH = 300, kMargin = 20;
  detail::Canvas c(2 * kPanelW + 3 * kMargin, 2 * kPanelH + 3 * kMargin);
  float lo = INFINITY, hi = -INFINITY;
  for (const auto* v : {&before, &after})
    for (float x : v->data) lo = std::min(lo, x), hi = std::max(hi, x);
  if (!(hi > lo)) hi = lo + 1;
  auto panel = [&](int i, int j) { return std::array<int, 4>{kMargin + j * (kPanelW + kMargin), kMargin + i * (kPanelH + kMargin),
                                                             kMargin + j * (kPanelW + kMargin) + kPanelW - 1,
                                                             kMargin + i * (kPanelH + kMargin) + kPanelH - 1}; };
  auto hu_grid = [&](const Axis& a, bool vertical, const std::array<int, 4>& p) {
    for (double v = std::ceil(a.lo / 500) * 500; v <= a.hi; v += 500) {
      const int q = a(v);
      if (vertical) c.line(q, p[1], q, p[3], v == 0 ? detail::kBlack : detail::kGrid);
      else c.line(p[0], q, p[2], q, v == 0 ? detail::kBlack : detail::kGrid);
    }
  };
  const size_t nrows = rows_before.size();
  {  // box plots
    const auto p = panel(0, 0);
    const Axis y{lo, hi, p[3] - 4, p[1] + 4};
    hu_grid(y, false, p);
    const double slot = double(kPanelW - 8) / double(nrows);
    for (size_t r = 0; r < nrows; ++r)
      for (int s = 0; s < 2; ++s) {
        const IntensityRow& row = s == 0 ? rows_before[r] : rows_after[r];
        if (row.voxels == 0) continue;
        const auto& col = s == 0 ? detail::kBefore : detail::row_colour(r);
        const int x0 = p[0] + 4 + int(slot * double(r) + slot * (0.1 + 0.42 * s)), x1 = x0 + int(slot * 0.36);
        const int xm = (x0 + x1) / 2;
        c.line(xm, y(row.percentile[1]), xm, y(row.percentile[5]), detail::kBlack);  // p5..p95
        c.line(x0 + 2, y(row.percentile[1]), x1 - 2, y(row.percentile[1]), detail::kBlack);
        c.line(x0 + 2, y(row.percentile[5]), x1 - 2, y(row.percentile[5]), detail::kBlack);
        c.rect(x0, y(row.percentile[2]), x1, y(row.percentile[4]), col);  // p25..p75
        c.frame(x0, y(row.percentile[2]), x1, y(row.percentile[4]), detail::kBlack);
        c.rect(x0, y(row.percentile[3]) - 1, x1, y(row.percentile[3]) + 1, detail::kBlack);  // p50
      }
    c.frame(p[0], p[1], p[2], p[3], detail::kBlack);
  }
  {  // histograms
    const auto p = panel(0, 1);
    constexpr int kBins = 200;
    std::array<std::array<double, kBins>, 2> h{};
    for (int s = 0; s < 2; ++s)
      for (float x : (s == 0 ? before : after).data)
        ++h[size_t(s)][size_t(std::min(kBins - 1, int((double(x) - lo) / (double(hi) - lo) * kBins)))];
    double top = 1;
    for (auto& hs : h)
      for (double& v : hs) top = std::max(top, v = std::log10(1 + v));
    const Axis x{lo, hi, p[0] + 4, p[2] - 4};
    const Axis y{0, top, p[3] - 4, p[1] + 4};
    hu_grid(x, true, p);
    for (int s = 0; s < 2; ++s)
      for (int b = 0; b + 1 < kBins; ++b) {
        const double v0 = lo + (b + 0.5) * (double(hi) - lo) / kBins, v1 = v0 + (double(hi) - lo) / kBins;
        c.line(x(v0), y(h[size_t(s)][size_t(b)]), x(v1), y(h[size_t(s)][size_t(b + 1)]), s == 0 ? detail::kBefore : detail::kBlack);
      }
    c.frame(p[0], p[1], p[2], p[3], detail::kBlack);
  }
  {  // scatter, before -> after
    const auto p = panel(1, 0);
    const Axis x{lo, hi, p[0] + 4, p[2] - 4}, y{lo, hi, p[3] - 4, p[1] + 4};
    hu_grid(x, true, p), hu_grid(y, false, p);
    c.line(x(lo), y(lo), x(hi), y(hi), detail::kBefore);
    const size_t stride = std::max<size_t>(1, before.data.size() / 20000);
    for (size_t k = 0; k < before.data.size(); k += stride) {
      size_t row = 0;
      if (mask)
        for (size_t r = 0; r < regions.size(); ++r)
          if (regions[r].label == mask->data[k]) row = r + 1;
      const int px = x(before.data[k]), py = y(after.data[k]);
      c.rect(px, py, px + 1, py + 1, detail::row_colour(row));
    }
    c.frame(p[0], p[1], p[2], p[3], detail::kBlack);
  }
  {  // band bars
    const auto p = panel(1, 1);
    const Axis y{0, 1, p[3] - 4, p[1] + 4};
    for (double f = 0.25; f < 1; f += 0.25) c.line(p[0], y(f), p[2], y(f), detail::kGrid);
    const double group = double(kPanelW - 8) / kHuBandCount;
    const double bar = group * 0.8 / double(2 * nrows);
    for (int b = 0; b < kHuBandCount; ++b)
      for (size_t r = 0; r < nrows; ++r)
        for (int s = 0; s < 2; ++s) {
          const IntensityRow& row = s == 0 ? rows_before[r] : rows_after[r];
          if (row.voxels == 0) continue;
          const double f = double(row.bands[size_t(b)]) / double(row.voxels);
          const int x0 = p[0] + 4 + int(group * (b + 0.1) + bar * double(2 * r + size_t(s)));
          c.rect(x0, y(0), x0 + std::max(1, int(bar) - 1), y(f), s == 0 ? detail::kBefore : detail::row_colour(r));
        }
    c.frame(p[0], p[1], p[2], p[3], detail::kBlack);
  }
  write_png_rgb(path, c.width, c.height, c.rgb);
}

}  // namespace volfeat
