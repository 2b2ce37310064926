#pragma once
// Noise reduction of a CT in HU, before contrast enhancement and normalisation (issue #15).
//   gaussian:SIGMA_MM      scipy.ndimage.gaussian_filter(mode='nearest', truncate=4.0) with
//                          sigma_vox = SIGMA_MM / spacing on each axis (D, H, W)
//   median:RADIUS_VOX      scipy.ndimage.median_filter(size=2r+1, mode='nearest'): a (2r+1)^3 cube
//   bilateral:SIGMA_MM,SIGMA_HU
//       out(p) = sum_q ws(q-p) wr(I(q)-I(p)) I(q) / sum_q ws(q-p) wr(I(q)-I(p)) over the cube
//       |q_a - p_a| <= R_a = ceil(2 * SIGMA_MM / spacing_a) voxels, neighbours outside the volume
//       clamped to the nearest voxel (mode 'nearest'), ws = exp(-|q-p|_mm^2 / (2 SIGMA_MM^2)) with
//       |q-p|_mm the Euclidean offset in mm, wr = exp(-(I(q)-I(p))^2 / (2 SIGMA_HU^2)); sums in double.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "volfeat/backend/cpu/isa.hpp"
#include "volfeat/core/error.hpp"
#include "volfeat/io/volume.hpp"

namespace volfeat {

inline constexpr double kGaussianTruncate = 4.0;  // scipy.ndimage's default

struct Denoise {
  enum class Kind { kNone, kGaussian, kMedian, kBilateral } kind = Kind::kNone;
  double sigma_mm = 0;  // gaussian; bilateral's spatial sigma
  int radius_vox = 0;   // median
  double sigma_hu = 0;  // bilateral's range sigma
  std::string text = "none";  // as given, for run.json
};

namespace detail {
inline double parse_positive(const std::string& what, const std::string& text, const std::string& value) {
  double x = 0;
  size_t used = 0;
  try {
    x = std::stod(value, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != value.size()) fail(what, " '", text, "': '", value, "' is not a number");
  if (!(x > 0) || !std::isfinite(x)) fail(what, " '", text, "': ", value, " must be a finite number > 0");
  return x;
}
}  // namespace detail

inline Denoise parse_denoise(const std::string& s) {
  Denoise d;
  d.text = s;
  const std::string kWhat = "--denoise";
  const size_t colon = s.find(':');
  const std::string name = s.substr(0, colon), args = colon == std::string::npos ? "" : s.substr(colon + 1);
  if (s == "none") return d;
  if (colon == std::string::npos && (name == "gaussian" || name == "median" || name == "bilateral"))
    fail(kWhat, " '", s, "': expected gaussian:SIGMA_MM, median:RADIUS_VOX or bilateral:SIGMA_MM,SIGMA_HU");
  if (name == "gaussian") {
    d.kind = Denoise::Kind::kGaussian;
    d.sigma_mm = detail::parse_positive(kWhat, s, args);
  } else if (name == "median") {
    d.kind = Denoise::Kind::kMedian;
    const double r = detail::parse_positive(kWhat, s, args);
    if (r != std::floor(r) || r > 64) fail(kWhat, " '", s, "': the radius is a whole number of voxels, 1..64");
    d.radius_vox = int(r);
  } else if (name == "bilateral") {
    d.kind = Denoise::Kind::kBilateral;
    const size_t comma = args.find(',');
    if (comma == std::string::npos) fail(kWhat, " '", s, "': expected bilateral:SIGMA_MM,SIGMA_HU, e.g. bilateral:1,50");
    d.sigma_mm = detail::parse_positive(kWhat, s, args.substr(0, comma));
    d.sigma_hu = detail::parse_positive(kWhat, s, args.substr(comma + 1));
  } else {
    fail(kWhat, " '", s, "': unknown denoiser (expected none, gaussian:SIGMA_MM, median:RADIUS_VOX or "
         "bilateral:SIGMA_MM,SIGMA_HU)");
  }
  return d;
}

// scipy.ndimage._gaussian_kernel1d: radius int(truncate * sigma + 0.5), normalised to sum 1.
inline std::vector<float> gaussian_kernel(double sigma_vox, double truncate = kGaussianTruncate) {
  const int radius = int(truncate * sigma_vox + 0.5);
  std::vector<double> k(size_t(2 * radius + 1));
  double sum = 0;
  for (int x = -radius; x <= radius; ++x) sum += k[size_t(x + radius)] = std::exp(-0.5 / (sigma_vox * sigma_vox) * x * x);
  std::vector<float> out(k.size());
  for (size_t i = 0; i < k.size(); ++i) out[i] = float(k[i] / sum);
  return out;
}

// Separable Gaussian, in place, one pass per axis with sigma > 0. Each pass reads rows of W
// contiguous floats and accumulates whole rows, so the inner loop is a vectorised axpy; the D pass
// works on one H index at a time (D x W floats, a few hundred KB) to stay in cache.
inline void gaussian_filter(Volume<float>& v, const std::array<double, 3>& sigma_vox) {
  const int64_t D = v.grid.dims[0], H = v.grid.dims[1], W = v.grid.dims[2];
  float* data = v.data.data();
  const size_t row = size_t(W);
  // along W
  if (sigma_vox[2] > 1e-15) {
    const auto k = gaussian_kernel(sigma_vox[2]);
    const int64_t r = int64_t(k.size() / 2);
#pragma omp parallel
    {
      std::vector<float> pad(row + 2 * size_t(r)), acc(row);
#pragma omp for schedule(static)
      for (int64_t dh = 0; dh < D * H; ++dh) {
        float* x = data + size_t(dh) * row;
        for (int64_t i = 0; i < W + 2 * r; ++i) pad[size_t(i)] = x[std::clamp<int64_t>(i - r, 0, W - 1)];
        std::fill(acc.begin(), acc.end(), 0.0f);
        for (size_t t = 0; t < k.size(); ++t) {
          const float kt = k[t];
          const float* p = pad.data() + t;
#pragma omp simd
          for (size_t i = 0; i < row; ++i) acc[i] += kt * p[i];
        }
        std::copy(acc.begin(), acc.end(), x);
      }
    }
  }
  // along H (within each plane) and along D (within each H index): rows of W floats
  auto rows_pass = [&](int axis) {
    const auto k = gaussian_kernel(sigma_vox[size_t(axis)]);
    const int64_t r = int64_t(k.size() / 2);
    const int64_t n = axis == 1 ? H : D, outer = axis == 1 ? D : H;
    // row j of a line: at data + line_offset + j * stride
    const size_t stride = axis == 1 ? row : row * size_t(H);
#pragma omp parallel
    {
      std::vector<float> line(size_t(n) * row), acc(row);
#pragma omp for schedule(static)
      for (int64_t o = 0; o < outer; ++o) {
        float* base = data + (axis == 1 ? size_t(o) * size_t(H) * row : size_t(o) * row);
        for (int64_t j = 0; j < n; ++j) std::copy_n(base + size_t(j) * stride, row, line.data() + size_t(j) * row);
        for (int64_t j = 0; j < n; ++j) {
          std::fill(acc.begin(), acc.end(), 0.0f);
          for (int64_t t = -r; t <= r; ++t) {
            const float kt = k[size_t(t + r)];
            const float* p = line.data() + size_t(std::clamp<int64_t>(j + t, 0, n - 1)) * row;
#pragma omp simd
            for (size_t i = 0; i < row; ++i) acc[i] += kt * p[i];
          }
          std::copy(acc.begin(), acc.end(), base + size_t(j) * stride);
        }
      }
    }
  };
  if (sigma_vox[1] > 1e-15) rows_pass(1);
  if (sigma_vox[0] > 1e-15) rows_pass(0);
}

namespace detail {
// Voxels of a row at once, one vector register's worth each (GCC/Clang vector extension): 16 with
// AVX-512, 8 with AVX2, 4 otherwise (SSE2), chosen at run time (backend/cpu/isa.hpp). Wider than a
// register spills the set. The helpers are always inlined, so they compile under their caller's target.
template <int L>
struct MedianLanes {
  typedef float type __attribute__((vector_size(L * sizeof(float))));
};
#define VOLFEAT_MEDIAN_INLINE inline __attribute__((always_inline))

template <class V>
VOLFEAT_MEDIAN_INLINE void compare_exchange(V& a, V& b) {  // a <- min, b <- max, lane by lane
  const V lo = a < b ? a : b, hi = a < b ? b : a;
  a = lo, b = hi;
}

// One round of forgetful selection (Paeth) on the set s[0..M-1]: the min goes to s[0] and the max
// to s[M-1]; neither can be the median of what is left, so s[0] takes the next value in and the set
// becomes s[0..M-2]. M is a template argument so that every index is a constant and the set lives
// in registers.
template <int M, class V>
VOLFEAT_MEDIAN_INLINE void forget_round(V* s, const V& incoming) {
  for (int i = 1; i < M; ++i) compare_exchange(s[0], s[i]);
  for (int i = 1; i < M - 1; ++i) compare_exchange(s[i], s[M - 1]);
  s[0] = incoming;
}

// The median of 27 values per lane: of the first 15, the min and max cannot be the 14th of 27, so
// both are dropped and the next value taken in; after 12 rounds the median of the 3 left is the
// answer. About 450 branchless min/max per 16 voxels, against ~150 ns per voxel for nth_element.
template <class V>
VOLFEAT_MEDIAN_INLINE void median27(const V* v, V& out) {
  V s[15];
  for (int i = 0; i < 15; ++i) s[i] = v[i];
  forget_round<15>(s, v[15]), forget_round<14>(s, v[16]), forget_round<13>(s, v[17]), forget_round<12>(s, v[18]);
  forget_round<11>(s, v[19]), forget_round<10>(s, v[20]), forget_round<9>(s, v[21]), forget_round<8>(s, v[22]);
  forget_round<7>(s, v[23]), forget_round<6>(s, v[24]), forget_round<5>(s, v[25]), forget_round<4>(s, v[26]);
  const V lo = s[0] < s[1] ? s[0] : s[1], hi = s[0] < s[1] ? s[1] : s[0];
  const V m = hi < s[2] ? hi : s[2];
  out = lo < m ? m : lo;  // max(min(a, b), min(max(a, b), c))
}

// One output row of the 3x3x3 median: pad holds the 9 neighbour rows (stride pw), each edge-padded
// by 1 on the left and by at least kL on the right.
template <int L>
VOLFEAT_MEDIAN_INLINE void median_row(const float* pad, size_t pw, int64_t W, float* out) {
  using V = typename MedianLanes<L>::type;
  V vals[27];
  for (int64_t x0 = 0; x0 < W; x0 += L) {
    for (int j = 0; j < 9; ++j)
      for (int t = 0; t < 3; ++t) std::memcpy(&vals[3 * j + t], pad + size_t(j) * pw + size_t(x0 + t), sizeof(V));
    V m;
    median27(vals, m);
    float med[L];
    std::memcpy(med, &m, sizeof med);
    std::copy_n(med, std::min<int64_t>(L, W - x0), out + x0);
  }
}
#undef VOLFEAT_MEDIAN_INLINE

inline constexpr int kMedianMaxLanes = 16;  // the right padding the widest variant needs
#if VOLFEAT_HAVE_ISA_VARIANTS
VOLFEAT_TARGET_AVX512 inline void median_row_avx512(const float* pad, size_t pw, int64_t W, float* out) {
  median_row<16>(pad, pw, W, out);
}
VOLFEAT_TARGET_AVX2 inline void median_row_avx2(const float* pad, size_t pw, int64_t W, float* out) {
  median_row<8>(pad, pw, W, out);
}
#endif
inline void median_row_generic(const float* pad, size_t pw, int64_t W, float* out) { median_row<4>(pad, pw, W, out); }

using MedianRowFn = void (*)(const float*, size_t, int64_t, float*);
inline MedianRowFn median_row_for_cpu() {
#if VOLFEAT_HAVE_ISA_VARIANTS
  switch (cpu::cpu_isa()) {
    case cpu::CpuIsa::kAvx512: return &median_row_avx512;
    case cpu::CpuIsa::kAvx2: return &median_row_avx2;
    case cpu::CpuIsa::kGeneric: break;
  }
#endif
  return &median_row_generic;
}
}  // namespace detail

// scipy.ndimage.median_filter(size=2r+1, mode='nearest'). Exact: the median is one of the inputs.
inline Volume<float> median_filter(const Volume<float>& v, int radius) {
  if (radius < 1) fail("median filter: radius ", radius, " must be >= 1");
  const int64_t D = v.grid.dims[0], H = v.grid.dims[1], W = v.grid.dims[2];
  Volume<float> out{v.grid, std::vector<float>(v.data.size())};
  const float* in = v.data.data();
  auto at = [&](int64_t d, int64_t h, int64_t w) {
    return in[(size_t(std::clamp<int64_t>(d, 0, D - 1)) * size_t(H) + size_t(std::clamp<int64_t>(h, 0, H - 1))) * size_t(W) +
              size_t(std::clamp<int64_t>(w, 0, W - 1))];
  };
  if (radius == 1) {
    constexpr int kL = detail::kMedianMaxLanes;
    const detail::MedianRowFn median_row = detail::median_row_for_cpu();
#pragma omp parallel
    {
      // the 9 neighbour rows, edge-padded by 1 on the left and up to kL on the right
      std::vector<float> pad(9 * size_t(W + 2 + kL));
#pragma omp for schedule(static)
      for (int64_t dh = 0; dh < D * H; ++dh) {
        const int64_t d = dh / H, h = dh % H;
        const size_t pw = size_t(W + 2 + kL);
        for (int j = 0; j < 9; ++j) {
          float* p = pad.data() + size_t(j) * pw;
          const float* src = in + (size_t(std::clamp<int64_t>(d + j / 3 - 1, 0, D - 1)) * size_t(H) +
                                   size_t(std::clamp<int64_t>(h + j % 3 - 1, 0, H - 1))) * size_t(W);
          p[0] = src[0];
          std::copy_n(src, W, p + 1);
          std::fill(p + 1 + W, p + pw, src[W - 1]);
        }
        median_row(pad.data(), pw, W, out.data.data() + size_t(dh) * size_t(W));
      }
    }
    return out;
  }
  const int64_t side = 2 * radius + 1;
#pragma omp parallel
  {
    std::vector<float> window(size_t(side * side * side));
#pragma omp for schedule(static)
    for (int64_t d = 0; d < D; ++d)
      for (int64_t h = 0; h < H; ++h)
        for (int64_t w = 0; w < W; ++w) {
          size_t n = 0;
          for (int64_t a = -radius; a <= radius; ++a)
            for (int64_t b = -radius; b <= radius; ++b)
              for (int64_t c = -radius; c <= radius; ++c) window[n++] = at(d + a, h + b, w + c);
          std::nth_element(window.begin(), window.begin() + std::ptrdiff_t(n / 2), window.end());
          out.data[(size_t(d) * size_t(H) + size_t(h)) * size_t(W) + size_t(w)] = window[n / 2];
        }
  }
  return out;
}

// The bilateral filter defined at the top of this file.
inline Volume<float> bilateral_filter(const Volume<float>& v, double sigma_mm, double sigma_hu) {
  const int64_t D = v.grid.dims[0], H = v.grid.dims[1], W = v.grid.dims[2];
  std::array<int64_t, 3> r{};
  for (size_t a = 0; a < 3; ++a) r[a] = int64_t(std::ceil(2.0 * sigma_mm / v.grid.spacing[a]));
  struct Offset { int64_t d, h, w; double ws; };
  std::vector<Offset> offsets;
  for (int64_t a = -r[0]; a <= r[0]; ++a)
    for (int64_t b = -r[1]; b <= r[1]; ++b)
      for (int64_t c = -r[2]; c <= r[2]; ++c) {
        const double dd = double(a) * v.grid.spacing[0], dh = double(b) * v.grid.spacing[1], dw = double(c) * v.grid.spacing[2];
        offsets.push_back({a, b, c, std::exp(-(dd * dd + dh * dh + dw * dw) / (2 * sigma_mm * sigma_mm))});
      }
  const double range = -1.0 / (2 * sigma_hu * sigma_hu);
  Volume<float> out{v.grid, std::vector<float>(v.data.size())};
  const float* in = v.data.data();
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t d = 0; d < D; ++d)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t w = 0; w < W; ++w) {
        const double centre = in[(size_t(d) * size_t(H) + size_t(h)) * size_t(W) + size_t(w)];
        double num = 0, den = 0;
        for (const Offset& o : offsets) {
          const double q = in[(size_t(std::clamp<int64_t>(d + o.d, 0, D - 1)) * size_t(H) +
                               size_t(std::clamp<int64_t>(h + o.h, 0, H - 1))) * size_t(W) +
                              size_t(std::clamp<int64_t>(w + o.w, 0, W - 1))];
          const double wt = o.ws * std::exp(range * (q - centre) * (q - centre));
          num += wt * q, den += wt;
        }
        out.data[(size_t(d) * size_t(H) + size_t(h)) * size_t(W) + size_t(w)] = float(num / den);
      }
  return out;
}

// Applies d to v in place (HU in, HU out).
inline void denoise_volume(Volume<float>& v, const Denoise& d) {
  switch (d.kind) {
    case Denoise::Kind::kNone: return;
    case Denoise::Kind::kGaussian: {
      std::array<double, 3> s{};
      for (size_t a = 0; a < 3; ++a) s[a] = d.sigma_mm / v.grid.spacing[a];
      gaussian_filter(v, s);
      return;
    }
    case Denoise::Kind::kMedian: v = median_filter(v, d.radius_vox); return;
    case Denoise::Kind::kBilateral: v = bilateral_filter(v, d.sigma_mm, d.sigma_hu); return;
  }
}

}  // namespace volfeat
