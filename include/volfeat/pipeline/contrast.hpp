#pragma once
// Contrast enhancement of a CT in HU, after noise reduction and before normalisation (issue #15).
// Both methods follow scikit-image 0.19 step by step and produce a value t in [0, 1], which is
// mapped back onto the input's own HU range: out = min + t * (max - min). So --normalize window:L,W
// still selects HU-like values, and air/bone stay at the ends of the range.
//   equalize      skimage.exposure.equalize_hist(x, nbins=256) on the float32 volume x (256 bins
//                 over [min, max] as numpy.histogram, the CDF interpolated at the bin centres)
//   clahe[:CLIP]  skimage.exposure.equalize_adapthist(x01, kernel_size=None, clip_limit=CLIP,
//                 nbins=256) with x01 = (x - min) / (max - min) in float64: kernel_size = max(dim // 8, 1)
//                 on each axis, 14-bit quantisation, reflect padding, clipped tile histograms and
//                 trilinear interpolation between the tiles' mappings (default CLIP 0.01)
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "volfeat/core/error.hpp"
#include "volfeat/io/volume.hpp"

namespace volfeat {

inline constexpr int kContrastBins = 256;         // nbins of both skimage functions
inline constexpr double kDefaultClipLimit = 0.01;  // equalize_adapthist's default
inline constexpr int kClaheGrayLevels = 1 << 14;  // skimage's NR_OF_GRAY

struct Contrast {
  enum class Kind { kNone, kEqualize, kClahe } kind = Kind::kNone;
  double clip_limit = kDefaultClipLimit;
  std::string text = "none";
};

inline Contrast parse_contrast(const std::string& s) {
  Contrast c;
  c.text = s;
  if (s == "none") return c;
  if (s == "equalize") {
    c.kind = Contrast::Kind::kEqualize;
  } else if (s == "clahe") {
    c.kind = Contrast::Kind::kClahe;
  } else if (s.rfind("clahe:", 0) == 0) {
    c.kind = Contrast::Kind::kClahe;
    const std::string v = s.substr(6);
    size_t used = 0;
    try {
      c.clip_limit = std::stod(v, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || used != v.size()) fail("--contrast '", s, "': '", v, "' is not a number");
    // skimage: 0 means no clipping (plain adaptive equalisation); 1 clips nothing either.
    if (!(c.clip_limit >= 0 && c.clip_limit <= 1)) fail("--contrast '", s, "': the clip limit must be in [0, 1]");
  } else {
    fail("--contrast '", s, "': unknown method (expected none, equalize or clahe[:CLIP])");
  }
  return c;
}

namespace detail {
inline std::pair<float, float> value_range(const std::vector<float>& x, const char* what) {
  float mn = INFINITY, mx = -INFINITY;
  for (float v : x) mn = std::min(mn, v), mx = std::max(mx, v);
  if (!(mx > mn)) fail("--contrast ", what, ": the volume is constant (", mn, "), there is no contrast to enhance");
  return {mn, mx};
}
// a * b + c without a fused multiply-add, as numpy computes it (volatile keeps the rounding of a*b).
inline double mul_add_unfused(double a, double b, double c) {
  volatile double p = a * b;
  return p + c;
}
}  // namespace detail

// skimage.exposure.equalize_hist for a float32 image, then onto [min, max].
inline void equalize_histogram(std::vector<float>& x) {
  const auto [mn, mx] = detail::value_range(x, "equalize");
  constexpr int n = kContrastBins;
  // numpy.histogram(range=None): float32 edges from linspace(min, max, n + 1) computed in double.
  const double first = mn, last = mx, step = (last - first) / n;
  std::array<float, n + 1> edges{};
  for (int i = 0; i < n; ++i) edges[size_t(i)] = float(detail::mul_add_unfused(double(i), step, first));
  edges[n] = mx;
  const float f_first = float(first), f_denom = float(last - first);
  std::vector<int64_t> hist(n, 0);
#pragma omp parallel
  {
    std::vector<int64_t> local(n, 0);
#pragma omp for schedule(static)
    for (size_t i = 0; i < x.size(); ++i) {
      const float v = x[i];
      // numpy's estimate in float32, then its +-1 corrections against the edges
      int64_t b = int64_t(((v - f_first) / f_denom) * float(n));
      if (b == n) b = n - 1;
      b = std::clamp<int64_t>(b, 0, n - 1);
      if (v < edges[size_t(b)]) --b;
      if (b < n - 1 && v >= edges[size_t(b + 1)]) ++b;
      ++local[size_t(b)];
    }
#pragma omp critical
    for (int i = 0; i < n; ++i) hist[size_t(i)] += local[size_t(i)];
  }
  std::array<double, n> cdf{}, centre{};
  int64_t cum = 0;
  for (int i = 0; i < n; ++i) cdf[size_t(i)] = double(cum += hist[size_t(i)]);
  for (int i = 0; i < n; ++i) {
    cdf[size_t(i)] /= double(cum);
    centre[size_t(i)] = double(float(edges[size_t(i)] + edges[size_t(i + 1)]) / 2.0f);
  }
  std::array<double, n - 1> slope{};
  for (int i = 0; i + 1 < n; ++i) slope[size_t(i)] = (cdf[size_t(i + 1)] - cdf[size_t(i)]) / (centre[size_t(i + 1)] - centre[size_t(i)]);
  const double range = double(mx) - double(mn);
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < x.size(); ++i) {
    const double v = x[i];
    double t;  // numpy.interp(v, centre, cdf)
    if (v < centre[0]) {
      t = cdf[0];
    } else if (v >= centre[n - 1]) {
      t = cdf[n - 1];
    } else {
      const size_t j = size_t(std::upper_bound(centre.begin(), centre.end(), v) - centre.begin()) - 1;
      t = v == centre[j] ? cdf[j] : detail::mul_add_unfused(slope[j], v - centre[j], cdf[j]);
    }
    x[i] = float(double(mn) + t * range);
  }
}

namespace detail {
// skimage.exposure._adapthist.clip_histogram, line for line (including its redistribution loop).
inline void clip_histogram(std::vector<int64_t>& hist, int64_t clip_limit) {
  const int64_t size = int64_t(hist.size());
  int64_t n_excess = 0;
  for (auto& h : hist)
    if (h > clip_limit) n_excess += h - clip_limit, h = clip_limit;
  const int64_t bin_incr = n_excess / size;
  const int64_t upper = clip_limit - bin_incr;
  for (auto& h : hist)
    if (h < upper) h += bin_incr, n_excess -= bin_incr;
  for (auto& h : hist)
    if (h >= upper && h < clip_limit) n_excess += h - clip_limit, h = clip_limit;
  while (n_excess > 0) {
    const int64_t prev = n_excess;
    for (int64_t index = 0; index < size; ++index) {
      int64_t under = 0;
      for (auto h : hist) under += h < clip_limit;
      const int64_t step = std::max<int64_t>(1, under / n_excess);
      for (int64_t i = index; i < size; i += step)
        if (hist[size_t(i)] < clip_limit) ++hist[size_t(i)], --n_excess;
      if (n_excess <= 0) break;
    }
    if (prev == n_excess) break;
  }
}

// numpy.pad(mode='reflect') index: ... 2 1 | 0 1 2 ... n-1 | n-2 ...
inline int64_t reflect_index(int64_t i, int64_t n) {
  if (n == 1) return 0;
  const int64_t period = 2 * (n - 1);
  i %= period;
  if (i < 0) i += period;
  return i < n ? i : period - i;
}
}  // namespace detail

// skimage.exposure.equalize_adapthist on (x - min) / (max - min), then onto [min, max].
inline void clahe(Volume<float>& vol, double clip_limit = kDefaultClipLimit) {
  std::vector<float>& x = vol.data;
  const auto [mn, mx] = detail::value_range(x, "clahe");
  const auto& S = vol.grid.dims;
  const size_t count = x.size();
  // img_as_uint (rint(x01 * 65535)), then rescale_intensity to 14 bits (rint(q16 / 65535 * 16383)),
  // then the bin of each grey level: q14 // (1 + 16384 // nbins).
  constexpr int kBinSize = 1 + kClaheGrayLevels / kContrastBins;
  std::vector<uint16_t> bin(count);
  const double lo = mn, span = double(mx) - double(mn);
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < count; ++i) {
    const double x01 = (double(x[i]) - lo) / span;
    const double q16 = std::nearbyint(x01 * 65535.0);
    const double q14 = std::nearbyint(q16 / 65535.0 * double(kClaheGrayLevels - 1));
    bin[i] = uint16_t(int(q14) / kBinSize);
  }
  std::array<int64_t, 3> k{}, pad0{}, ns_hist{};
  int64_t tile_voxels = 1;
  for (size_t a = 0; a < 3; ++a) {
    k[a] = std::max<int64_t>(S[a] / 8, 1);
    pad0[a] = k[a] / 2;
    const int64_t padded = S[a] + pad0[a] + (k[a] - S[a] % k[a]) % k[a] + (k[a] + 1) / 2;  // a multiple of k
    ns_hist[a] = padded / k[a] - 1;
    tile_voxels *= k[a];
  }
  const int64_t clim = clip_limit > 0 ? int64_t(std::max(clip_limit * double(tile_voxels), 1.0)) : tile_voxels;
  auto source = [&](int64_t pd, int64_t ph, int64_t pw) {  // padded index -> the voxel's bin
    const int64_t d = detail::reflect_index(pd - pad0[0], S[0]), h = detail::reflect_index(ph - pad0[1], S[1]),
                  w = detail::reflect_index(pw - pad0[2], S[2]);
    return bin[(size_t(d) * size_t(S[1]) + size_t(h)) * size_t(S[2]) + size_t(w)];
  };
  // One mapping per tile (clipped histogram -> scaled CDF, truncated to int as map_histogram does).
  const int64_t tiles = ns_hist[0] * ns_hist[1] * ns_hist[2];
  std::vector<int64_t> maps(size_t(tiles) * kContrastBins);
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t t = 0; t < tiles; ++t) {
    const int64_t td = t / (ns_hist[1] * ns_hist[2]), th = t / ns_hist[2] % ns_hist[1], tw = t % ns_hist[2];
    std::vector<int64_t> hist(kContrastBins, 0);
    for (int64_t a = 0; a < k[0]; ++a)
      for (int64_t b = 0; b < k[1]; ++b)
        for (int64_t c = 0; c < k[2]; ++c)
          ++hist[source(pad0[0] + td * k[0] + a, pad0[1] + th * k[1] + b, pad0[2] + tw * k[2] + c)];
    detail::clip_histogram(hist, clim);
    const double scale = double(kClaheGrayLevels - 1) / double(tile_voxels);
    double cum = 0;
    for (int i = 0; i < kContrastBins; ++i) {
      cum += double(hist[size_t(i)]);
      maps[size_t(t) * kContrastBins + size_t(i)] = int64_t(std::min(cum * scale, double(kClaheGrayLevels - 1)));
    }
  }
  // Each voxel: the 8 neighbouring tiles' mappings, weighted by its offset within its block, summed
  // in float32 in numpy.ndindex order and truncated to an integer grey level, as skimage does.
  std::vector<uint16_t> level(count);
#pragma omp parallel for schedule(static)
  for (int64_t d = 0; d < S[0]; ++d)
    for (int64_t h = 0; h < S[1]; ++h)
      for (int64_t w = 0; w < S[2]; ++w) {
        const int64_t p[3] = {d + pad0[0], h + pad0[1], w + pad0[2]};
        int64_t blk[3];
        double c[3];
        for (int a = 0; a < 3; ++a) blk[a] = p[a] / k[size_t(a)], c[a] = double(p[a] % k[size_t(a)]) / double(k[size_t(a)]);
        const uint16_t value = bin[(size_t(d) * size_t(S[1]) + size_t(h)) * size_t(S[2]) + size_t(w)];
        float sum = 0;
        for (int e = 0; e < 8; ++e) {
          const int e0 = e >> 2, e1 = (e >> 1) & 1, e2 = e & 1;
          // map_array is the tile maps edge-padded by one: index blk + e - 1, clamped
          const int64_t t0 = std::clamp<int64_t>(blk[0] + e0 - 1, 0, ns_hist[0] - 1),
                        t1 = std::clamp<int64_t>(blk[1] + e1 - 1, 0, ns_hist[1] - 1),
                        t2 = std::clamp<int64_t>(blk[2] + e2 - 1, 0, ns_hist[2] - 1);
          const double fw = e2 ? c[2] : 1 - c[2], fh = e1 ? c[1] : 1 - c[1], fd = e0 ? c[0] : 1 - c[0];
          const double coeff = (fw * fh) * fd;
          const int64_t m = maps[size_t((t0 * ns_hist[1] + t1) * ns_hist[2] + t2) * kContrastBins + value];
          sum += float(double(m) * coeff);
        }
        level[(size_t(d) * size_t(S[1]) + size_t(h)) * size_t(S[2]) + size_t(w)] = uint16_t(sum);
      }
  // rescale_intensity(result): its own min..max onto [0, 1]; then onto the input's HU range.
  const auto [lmin, lmax] = std::minmax_element(level.begin(), level.end());
  const double l0 = *lmin, lspan = double(*lmax) - double(*lmin);
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < count; ++i) {
    const double t = lspan > 0 ? (double(level[i]) - l0) / lspan : 0.0;
    x[i] = float(lo + t * span);
  }
}

inline void enhance_contrast(Volume<float>& v, const Contrast& c) {
  switch (c.kind) {
    case Contrast::Kind::kNone: return;
    case Contrast::Kind::kEqualize: equalize_histogram(v.data); return;
    case Contrast::Kind::kClahe: clahe(v, c.clip_limit); return;
  }
}

}  // namespace volfeat
