// Preprocessing before the network: normalisations (ImageNet's per-channel one included), cropping
// and resampling that keep the affine exact, and the RGB stem that ImageNet normalisation needs.
#define BOOST_TEST_MODULE preprocess
#include <boost/test/unit_test.hpp>

#include "volfeat/backend/cpu.hpp"
#include "volfeat/pipeline/extract.hpp"

using namespace volfeat;

namespace {
// world (x, y, z) of voxel (d, h, w): affine columns are (i, j, k) = (w, h, d)
std::array<double, 3> world(const Grid& g, double d, double h, double w) {
  std::array<double, 3> p{};
  for (int r = 0; r < 3; ++r) p[size_t(r)] = g.affine[size_t(r)][0] * w + g.affine[size_t(r)][1] * h + g.affine[size_t(r)][2] * d + g.affine[size_t(r)][3];
  return p;
}
}  // namespace

BOOST_AUTO_TEST_CASE(window_and_imagenet_normalisation_follow_their_formulas) {
  const std::vector<float> hu{-1000, -600, 0, 400, 1400, 3000};
  const auto w = normalize_volume(hu, parse_normalization("window:400,2000"));
  BOOST_TEST(w == (std::vector<float>{0, 0, 0.3f, 0.5f, 1, 1}), boost::test_tools::per_element());
  const Normalization in = parse_normalization("imagenet");
  BOOST_TEST(in.channels() == 3);
  const auto rgb = normalize_volume(hu, in);
  BOOST_TEST_REQUIRE(rgb.size() == 18u);
  for (size_t i = 0; i < hu.size(); ++i)
    for (size_t c = 0; c < 3; ++c)
      BOOST_TEST(std::abs(rgb[i * 3 + c] - (double(w[i]) - kImageNetMean[c]) / kImageNetStd[c]) < 1e-6);
  const auto z = normalize_volume(hu, parse_normalization("zscore"));
  double mean = 0;
  for (float v : z) mean += v;
  BOOST_TEST(std::abs(mean) < 1e-6);
  BOOST_TEST(normalize_volume(hu, parse_normalization("minmax")).back() == 1.0f);
  BOOST_CHECK_THROW(parse_normalization("window:400"), Error);
  BOOST_CHECK_THROW(parse_normalization("window:400,0"), Error);
}

BOOST_AUTO_TEST_CASE(imagenet_runs_an_rgb_stem_and_refuses_a_gray_one) {
  ExtractOptions o;
  o.normalize = "imagenet";
  const NetworkWeights w = load_network_weights(o, 3);
  BOOST_TEST(w.state.at("features.conv0.weight").shape[1] == 3);
  const Network<Cpu, float> net(w.state);
  BOOST_TEST(net.input_channels() == 3);
  std::vector<float> x(3 * 9 * 9 * 9, 0.25f);
  net.forward(TensorView<const float>(x.data(), Dims{1, 9, 9, 9, 3}), net.node_of("features.pool0"));
  o.stem_given = true;
  o.inflate.stem = StemRule::kSum;
  BOOST_CHECK_THROW(load_network_weights(o, 3), Error);
}

BOOST_AUTO_TEST_CASE(crop_and_resample_keep_every_voxel_where_it_was) {
  Volume<int32_t> mask{make_grid({20, 18, 16}, {2.0, 1.5, 1.0}, {-10, 5, 7}), {}};
  mask.data.assign(size_t(mask.grid.voxels()), 0);
  mask.at(8, 9, 5) = 1;
  mask.at(11, 12, 9) = 2;
  const Box box = labels_box(mask, {1, 2}, 3.0);  // 3 mm: 2 voxels along D, 2 along H, 3 along W
  BOOST_TEST((box.lo == std::array<int64_t, 3>{6, 7, 2}));
  BOOST_TEST((box.hi == std::array<int64_t, 3>{14, 15, 13}));
  const Volume<int32_t> c = crop(mask, box);
  BOOST_TEST(c.at(2, 2, 3) == 1);
  BOOST_TEST((world(c.grid, 2, 2, 3) == world(mask.grid, 8, 9, 5)));

  Volume<float> ct{mask.grid, std::vector<float>(size_t(mask.grid.voxels()))};
  for (int64_t d = 0; d < 20; ++d)
    for (int64_t h = 0; h < 18; ++h)
      for (int64_t w = 0; w < 16; ++w) ct.at(d, h, w) = float(3 * d + 2 * h + w);  // linear: trilinear is exact
  const Volume<float> r = resample_linear(ct, 1.0);
  BOOST_TEST((r.grid.dims == std::array<int64_t, 3>{40, 27, 16}));
  // An interior resampled voxel holds the linear function at its own world position.
  const auto p = world(r.grid, 11, 7, 4);
  const auto p0 = world(ct.grid, 0, 0, 0);
  const double d = (p[2] - p0[2]) / 2.0, h = (p[1] - p0[1]) / 1.5, w = (p[0] - p0[0]) / 1.0;
  BOOST_TEST(std::abs(r.at(11, 7, 4) - (3 * d + 2 * h + w)) < 1e-4);
  const Volume<int32_t> n = resample_nearest(mask, 1.0);
  int64_t ones = 0;
  for (int32_t v : n.data) ones += v == 1;
  // the 2 x 1.5 x 1 mm voxel (8, 9, 5) spans D [16, 18) mm, H [13.5, 15) mm, W [5, 6) mm: new 1 mm voxels
  // whose centres fall inside are D 16-17, H 13-14 (centres 13.5, 14.5), W 5
  BOOST_TEST(ones == 2 * 2 * 1);
  BOOST_TEST(n.at(16, 13, 5) == 1);
  BOOST_TEST(n.at(17, 14, 5) == 1);
}

// ---- issue #15: denoise and contrast filters against naive loops on small random volumes ----------
#include <random>

#include "volfeat/pipeline/preprocessing.hpp"

namespace {
Volume<float> random_volume(std::array<int64_t, 3> dims, std::array<double, 3> spacing, uint32_t seed, bool integral) {
  Volume<float> v{make_grid(dims, spacing, {0, 0, 0}), std::vector<float>(size_t(dims[0] * dims[1] * dims[2]))};
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1000.0f, 2000.0f);
  for (float& x : v.data) x = integral ? std::round(u(rng)) : u(rng);
  return v;
}
float clamped(const Volume<float>& v, int64_t d, int64_t h, int64_t w) {
  const auto& g = v.grid.dims;
  return v.at(std::clamp<int64_t>(d, 0, g[0] - 1), std::clamp<int64_t>(h, 0, g[1] - 1), std::clamp<int64_t>(w, 0, g[2] - 1));
}
const std::vector<std::array<int64_t, 3>> kFilterDims{{7, 9, 11}, {5, 6, 37}, {1, 4, 70}, {3, 1, 1}, {12, 10, 64}};
}  // namespace

BOOST_AUTO_TEST_CASE(gaussian_equals_a_direct_3d_convolution_with_nearest_borders) {
  for (const auto& dims : kFilterDims) {
    const Volume<float> v = random_volume(dims, {2.0, 0.8, 0.6}, 1, false);
    const double sigma_mm = 1.1;
    std::array<std::vector<double>, 3> k;
    for (size_t a = 0; a < 3; ++a) {  // scipy's kernel, written out again
      const double s = sigma_mm / v.grid.spacing[a];
      const int r = int(4.0 * s + 0.5);
      double sum = 0;
      for (int x = -r; x <= r; ++x) k[a].push_back(std::exp(-0.5 * x * x / (s * s))), sum += k[a].back();
      for (double& x : k[a]) x /= sum;
    }
    Volume<float> f = v;
    denoise_volume(f, parse_denoise("gaussian:1.1"));
    double worst = 0;
    const int r0 = int(k[0].size() / 2), r1 = int(k[1].size() / 2), r2 = int(k[2].size() / 2);
    for (int64_t d = 0; d < dims[0]; ++d)
      for (int64_t h = 0; h < dims[1]; ++h)
        for (int64_t w = 0; w < dims[2]; ++w) {
          double acc = 0;
          for (int a = -r0; a <= r0; ++a)
            for (int b = -r1; b <= r1; ++b)
              for (int c = -r2; c <= r2; ++c)
                acc += k[0][size_t(a + r0)] * k[1][size_t(b + r1)] * k[2][size_t(c + r2)] * clamped(v, d + a, h + b, w + c);
          worst = std::max(worst, std::abs(acc - f.at(d, h, w)));
        }
    BOOST_TEST_MESSAGE("gaussian " << dims[0] << "x" << dims[1] << "x" << dims[2] << ": worst |error| " << worst << " HU");
    BOOST_TEST(worst < 2e-3);  // float accumulation of values up to 2000 HU
  }
}

BOOST_AUTO_TEST_CASE(median_is_exactly_the_middle_of_the_sorted_cube) {
  for (int radius : {1, 2})
    for (const auto& dims : kFilterDims) {
      const Volume<float> v = random_volume(dims, {1, 1, 1}, 2, radius == 1);
      const Volume<float> f = median_filter(v, radius);
      int64_t wrong = 0;
      for (int64_t d = 0; d < dims[0]; ++d)
        for (int64_t h = 0; h < dims[1]; ++h)
          for (int64_t w = 0; w < dims[2]; ++w) {
            std::vector<float> cube;
            for (int a = -radius; a <= radius; ++a)
              for (int b = -radius; b <= radius; ++b)
                for (int c = -radius; c <= radius; ++c) cube.push_back(clamped(v, d + a, h + b, w + c));
            std::sort(cube.begin(), cube.end());
            wrong += cube[cube.size() / 2] != f.at(d, h, w);
          }
      BOOST_TEST(wrong == 0, "radius " << radius << ": " << wrong << " voxels differ");
    }
}

BOOST_AUTO_TEST_CASE(bilateral_follows_its_definition) {
  const Volume<float> v = random_volume({6, 7, 9}, {2.0, 1.0, 0.7}, 3, false);
  const double ss = 1.5, sr = 300;
  const Volume<float> f = bilateral_filter(v, ss, sr);
  double worst = 0;
  const int64_t r[3] = {2, 3, 5};  // ceil(2 * 1.5 / spacing): 1.5 -> 2, 3, 4.29 -> 5
  for (int64_t d = 0; d < 6; ++d)
    for (int64_t h = 0; h < 7; ++h)
      for (int64_t w = 0; w < 9; ++w) {
        double num = 0, den = 0;
        for (int64_t a = -r[0]; a <= r[0]; ++a)
          for (int64_t b = -r[1]; b <= r[1]; ++b)
            for (int64_t c = -r[2]; c <= r[2]; ++c) {
              const double mm2 = std::pow(a * 2.0, 2) + std::pow(b * 1.0, 2) + std::pow(c * 0.7, 2);
              const double q = clamped(v, d + a, h + b, w + c), p = v.at(d, h, w);
              const double wt = std::exp(-mm2 / (2 * ss * ss)) * std::exp(-(q - p) * (q - p) / (2 * sr * sr));
              num += wt * q, den += wt;
            }
        worst = std::max(worst, std::abs(num / den - f.at(d, h, w)));
      }
  BOOST_TEST(worst < 1e-3);
}

BOOST_AUTO_TEST_CASE(equalize_and_clahe_keep_order_and_the_hu_range) {
  Volume<float> v = random_volume({16, 24, 20}, {1, 1, 1}, 4, true);
  for (const char* method : {"equalize", "clahe", "clahe:0.05", "clahe:0"}) {
    Volume<float> e = v;
    enhance_contrast(e, parse_contrast(method));
    const auto [mn, mx] = std::minmax_element(v.data.begin(), v.data.end());
    const auto [emn, emx] = std::minmax_element(e.data.begin(), e.data.end());
    // back onto the input's HU range: the max is reached (CDF 1); CLAHE rescales its result, so
    // its min is reached too, while equalize maps the min to the first bin's CDF, above 0
    BOOST_TEST(std::abs(*emx - *mx) < 1e-2, method);
    if (std::string(method) == "equalize") BOOST_TEST((*emn > *mn && *emn < *mn + 0.05 * (*mx - *mn)), method);
    else BOOST_TEST(std::abs(*emn - *mn) < 1e-2, method);
    if (std::string(method) == "equalize") {
      // global: a monotone map of the values, the CDF at the max is 1
      std::vector<size_t> order(v.data.size());
      for (size_t i = 0; i < order.size(); ++i) order[i] = i;
      std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return v.data[a] < v.data[b]; });
      size_t inversions = 0;
      for (size_t i = 1; i < order.size(); ++i) inversions += e.data[order[i]] < e.data[order[i - 1]];
      BOOST_TEST(inversions == 0u);
      // a uniform distribution stays roughly uniform: the median maps near the middle of the range
      std::vector<float> sorted(e.data);
      std::nth_element(sorted.begin(), sorted.begin() + std::ptrdiff_t(sorted.size() / 2), sorted.end());
      BOOST_TEST(std::abs(sorted[sorted.size() / 2] - (*mn + *mx) / 2) < 60);
    }
  }
  Volume<float> flat{v.grid, std::vector<float>(v.data.size(), 40.0f)};
  BOOST_CHECK_THROW(enhance_contrast(flat, parse_contrast("clahe")), Error);
}

BOOST_AUTO_TEST_CASE(clahe_clip_histogram_redistributes_as_skimage) {
  // 161 counts, clip 20 over 8 bins: skimage's steps (excess 110, +13 to bins under 7, then every
  // bin in [7, 20) set to 20) leave every bin at 20; the one count that cannot fit is dropped.
  std::vector<int64_t> h{0, 50, 3, 7, 100, 0, 0, 1};
  detail::clip_histogram(h, 20);
  BOOST_TEST(h == std::vector<int64_t>(8, 20), boost::test_tools::per_element());
  // Excess 5: +1 to the three bins under 19, then the remaining 2 given by one strided sweep that
  // reaches all three bins under the limit (skimage overshoots by one here, and so do we).
  std::vector<int64_t> g{5, 25, 5, 5};
  detail::clip_histogram(g, 20);
  BOOST_TEST(g == (std::vector<int64_t>{7, 20, 7, 7}), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(preprocessing_options_fail_with_one_clear_message) {
  BOOST_CHECK_THROW(parse_denoise("gaussian:-1"), Error);
  BOOST_CHECK_THROW(parse_denoise("gaussian:0"), Error);
  BOOST_CHECK_THROW(parse_denoise("gaussian"), Error);
  BOOST_CHECK_THROW(parse_denoise("median:1.5"), Error);
  BOOST_CHECK_THROW(parse_denoise("bilateral:1"), Error);
  BOOST_CHECK_THROW(parse_denoise("wiener:2"), Error);
  BOOST_CHECK_THROW(parse_contrast("clahe:2"), Error);
  BOOST_CHECK_THROW(parse_contrast("gamma"), Error);
  const Denoise b = parse_denoise("bilateral:1.5,40");
  BOOST_TEST((b.kind == Denoise::Kind::kBilateral && b.sigma_mm == 1.5 && b.sigma_hu == 40));
  BOOST_TEST(parse_denoise("median:2").radius_vox == 2);
  BOOST_TEST(parse_contrast("clahe:0.03").clip_limit == 0.03);
  try {
    parse_denoise("gaussian:-1");
  } catch (const Error& e) {
    BOOST_TEST(std::string(e.what()) == "--denoise 'gaussian:-1': -1 must be a finite number > 0");
  }
}
