#pragma once
// Region diagnostics (Task I's check): voxel counts, volumes and HU statistics per region, and a
// picture of the regions over the CT.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <cstdio>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "volfeat/core/atomic_file.hpp"
#include "volfeat/io/png.hpp"
#include "volfeat/pipeline/regions.hpp"

namespace volfeat {

namespace detail {
// Exact per-row statistics of CT values, in two streaming passes and O(rows) memory instead of a
// sorted copy of each region (which at 216x512x512 meant 226 MB and a 4 s sort).
//
// Percentiles are numpy's default (linear) ones, so each needs the order statistics at ranks
// floor(pos) and floor(pos)+1. Pass 1 counts values per bucket of the top 16 bits of an
// order-preserving integer key; the bucket and the rank within it of each wanted order statistic
// follow from the cumulative counts. Pass 2 keeps only the values in those buckets and selects.
class RowStatistics {
 public:
  static constexpr int kBits = 16;

  static uint32_t key(float x) {  // monotone: x < y  <=>  key(x) < key(y), for non-NaN floats
    uint32_t u;
    std::memcpy(&u, &x, sizeof u);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
  }
  static uint32_t bucket(float x) { return key(x) >> (32 - kBits); }

  RowStatistics() : hist_(size_t(1) << kBits, 0), slot_(size_t(1) << kBits, -1) {}

  // Pass 1 over a run of values x[0, n) (the caller hands over whole runs of one label). Why runs
  // and four partial sums: one voxel at a time, the sum was one chain of dependent double adds and
  // the count was reloaded after every histogram store (both are 64-bit integers, which may alias);
  // at 216x512x512 the report took 0.33 s, serial, before the forward pass (AMD EPYC Zen 4).
  void add_first(const float* x, size_t n) {
    n_ += n;
    double s[4] = {0, 0, 0, 0};
    uint64_t* const hist = hist_.data();
    size_t k = 0;
    for (; k + 4 <= n; k += 4) {
      for (int l = 0; l < 4; ++l) s[l] += double(x[k + size_t(l)]);
      for (int l = 0; l < 4; ++l) ++hist[bucket(x[k + size_t(l)])];
    }
    for (; k < n; ++k) {
      s[0] += double(x[k]);
      ++hist[bucket(x[k])];
    }
    sum_ += (s[0] + s[1]) + (s[2] + s[3]);
  }
  // After pass 1: the ranks the percentiles need, and where they fall.
  void plan(const std::vector<double>& percentiles) {
    mean_ = n_ ? sum_ / double(n_) : NAN;
    for (double p : percentiles) {
      if (n_ == 0) continue;
      const double pos = p / 100.0 * double(n_ - 1);
      const uint64_t i = uint64_t(pos);
      wanted_.push_back(i);
      if (i + 1 < n_) wanted_.push_back(i + 1);
    }
    uint64_t below = 0;
    size_t w = 0;
    std::sort(wanted_.begin(), wanted_.end());
    for (uint32_t b = 0; b < hist_.size() && w < wanted_.size(); ++b) {
      while (w < wanted_.size() && wanted_[w] < below + hist_[b]) {
        if (slot_[b] < 0) {
          slot_[b] = int32_t(kept_.size());
          kept_.emplace_back();
        }
        where_[wanted_[w]] = {uint32_t(slot_[b]), wanted_[w] - below};
        ++w;
      }
      below += hist_[b];
    }
  }
  // Pass 2 over the same runs: squared deviations (four partial sums) and the wanted buckets' values.
  void add_second(const float* x, size_t n) {
    double q[4] = {0, 0, 0, 0};
    const double mean = mean_;
    size_t k = 0;
    for (; k + 4 <= n; k += 4)
      for (int l = 0; l < 4; ++l) {
        const double d = double(x[k + size_t(l)]) - mean;
        q[l] += d * d;
      }
    for (; k < n; ++k) {
      const double d = double(x[k]) - mean;
      q[0] += d * d;
    }
    sq_ += (q[0] + q[1]) + (q[2] + q[3]);
    for (k = 0; k < n; ++k) {
      const int32_t slot = slot_[bucket(x[k])];
      if (slot >= 0) kept_[size_t(slot)].push_back(x[k]);
    }
  }
  uint64_t count() const { return n_; }
  double mean() const { return mean_; }
  double sd() const { return std::sqrt(sq_ / double(n_)); }
  double percentile(double p) {
    if (n_ == 0) return NAN;
    const double pos = p / 100.0 * double(n_ - 1);
    const uint64_t i = uint64_t(pos);
    const double t = pos - double(i);
    const double lo = order_statistic(i);
    return i + 1 < n_ ? lo * (1 - t) + order_statistic(i + 1) * t : lo;
  }

 private:
  double order_statistic(uint64_t rank) {
    const auto [k, r] = where_.at(rank);
    std::vector<float>& v = kept_[k];
    std::nth_element(v.begin(), v.begin() + std::ptrdiff_t(r), v.end());
    return v[size_t(r)];
  }

  uint64_t n_ = 0;
  double sum_ = 0, sq_ = 0, mean_ = NAN;
  std::vector<uint64_t> hist_;
  std::vector<uint64_t> wanted_;
  std::vector<int32_t> slot_;                                 // bucket -> index into kept_, or -1
  std::vector<std::vector<float>> kept_;                      // the wanted buckets' values (pass 2)
  std::map<uint64_t, std::pair<uint32_t, uint64_t>> where_;  // rank -> (kept_ index, rank within it)
};
}  // namespace detail

// One row per region plus one per label value the mask holds but no region uses, so the rows
// account for every voxel of the volume.
inline std::string region_report_csv(const Volume<float>& ct, const Volume<int32_t>& mask, const std::vector<Region>& regions,
                                     const std::vector<int32_t>& unlisted) {
  std::vector<std::pair<std::string, int32_t>> rows;
  for (const Region& r : regions) rows.emplace_back(r.name, r.label);
  for (int32_t l : unlisted) rows.emplace_back("(unlisted label)", l);
  std::map<int32_t, std::vector<size_t>> rows_of;  // several regions may share a label
  for (size_t i = 0; i < rows.size(); ++i) rows_of[rows[i].second].push_back(i);
  std::vector<detail::RowStatistics> stats(rows.size());
  // Both passes go run by run of one label (label maps come in long runs), looking each run's
  // label up once.
  auto each_run = [&](auto&& f) {
    const int32_t* m = mask.data.data();
    const size_t n = mask.data.size();
    for (size_t i = 0; i < n;) {
      size_t j = i + 1;
      while (j < n && m[j] == m[i]) ++j;
      const auto it = rows_of.find(m[i]);
      if (it != rows_of.end())
        for (size_t r : it->second) f(stats[r], ct.data.data() + i, j - i);
      i = j;
    }
  };
  each_run([](detail::RowStatistics& s, const float* x, size_t n) { s.add_first(x, n); });
  for (auto& s : stats) s.plan({5, 50, 95});
  each_run([](detail::RowStatistics& s, const float* x, size_t n) { s.add_second(x, n); });

  std::ostringstream os;
  os.precision(10);
  os << "region,label,voxels,volume_mm3,fraction_of_volume,hu_mean,hu_std,hu_p5,hu_p50,hu_p95\n";
  const double voxel_mm3 = ct.grid.spacing[0] * ct.grid.spacing[1] * ct.grid.spacing[2];
  for (size_t r = 0; r < rows.size(); ++r) {
    detail::RowStatistics& s = stats[r];
    os << rows[r].first << ',' << rows[r].second << ',' << s.count() << ',' << double(s.count()) * voxel_mm3 << ','
       << double(s.count()) / double(mask.data.size()) << ',' << s.mean() << ',' << s.sd() << ',' << s.percentile(5)
       << ',' << s.percentile(50) << ',' << s.percentile(95) << '\n';
  }
  return os.str();
}

// Axial, coronal and sagittal slices through the labelled regions, the CT in a bone
// window with each region tinted in its own colour; panels resampled to the finest spacing so that
// anatomy keeps its proportions.
struct RgbImage {
  int width = 0, height = 0;
  std::vector<uint8_t> rgb;  // row-major, 3 bytes per pixel
};

inline RgbImage render_region_slices(const Volume<float>& ct, const Volume<int32_t>& mask, const std::vector<Region>& regions) {
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
  if (int64_t(total_w) * max_h > (int64_t(1) << 28))
    fail("region_slices.png: the slice picture would be ", total_w, "x", max_h, " pixels, too large");
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
  return {total_w, max_h, std::move(rgb)};
}

inline void write_region_slices_png(const std::string& path, const RgbImage& image) {
  write_png_rgb(path, image.width, image.height, image.rgb);
}

inline void write_region_slices_png(const std::string& path, const Volume<float>& ct, const Volume<int32_t>& mask,
                                    const std::vector<Region>& regions) {
  write_region_slices_png(path, render_region_slices(ct, mask, regions));
}

}  // namespace volfeat
