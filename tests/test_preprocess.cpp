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
  o.inflate.stem = "sum";
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
