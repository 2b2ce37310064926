// The defining property of every inflation scheme, pooling and similarity in the registries.
#define BOOST_TEST_MODULE registries
#include <boost/test/unit_test.hpp>

#include "support/paths.hpp"
#include "support/compare.hpp"
#include "volfeat/backend/cpu.hpp"
#include "volfeat/pipeline/extract.hpp"

using namespace volfeat;
using namespace volfeat::test;

namespace {

// A synthetic torchvision DenseNet121 export: every tensor of the right shape, seeded values.
const StateDict& export_2d() {
  static const StateDict sd = [] {
    StateDict s;
    s.origin = "synthetic 2D export";
    Rng rng(7);
    for (const auto& p : build_graph("densenet121", 3).params(2)) {
      Param param{p.shape, std::vector<float>(size_t(element_count(p.shape)))};
      const bool var = p.key.find("running_var") != std::string::npos;
      for (float& v : param.values) v = float(var ? 0.5 + rng.uniform() : rng.normal() * 0.1);
      s.params.emplace(p.key, std::move(param));
    }
    return s;
  }();
  return sd;
}

StateDict inflate(const std::string& scheme, char axis = 'D', uint64_t seed = 0) {
  InflateOptions o;
  o.scheme = scheme;
  o.axis = axis;
  o.seed = seed;
  return inflate_state_dict(export_2d(), o);
}

const std::string kConv = "features.denseblock2.denselayer3.conv2.weight";  // (32, 128, 3, 3, 3)

// w3 at (o, i, d, h, w) for a (O, I, 3, 3, 3) kernel.
double at(const Param& w, int64_t o, int64_t i, int64_t d, int64_t h, int64_t x) {
  const int64_t k = w.shape[2];
  return w.values[size_t((((o * w.shape[1] + i) * k + d) * k + h) * k + x)];
}
double at2(const Param& w, int64_t o, int64_t i, int64_t p, int64_t q) {
  return w.values[size_t(((o * w.shape[1] + i) * w.shape[2] + p) * w.shape[3] + q)];
}

}  // namespace

BOOST_AUTO_TEST_CASE(i3d_mean_repeats_w_over_k_and_sums_back_to_the_2d_kernel) {
  const StateDict sd = inflate("i3d-mean");
  const Param& w3 = sd.at(kConv);
  const Param& w2 = export_2d().at(kConv);
  for (int64_t o : {0, 31})
    for (int64_t p = 0; p < 3; ++p)
      for (int64_t q = 0; q < 3; ++q) {
        double sum = 0;
        for (int64_t t = 0; t < 3; ++t) sum += at(w3, o, 5, t, p, q);
        // w2 / 3 in double, rounded once to the StateDict's float: each of the three is within half
        // an ulp (2^-24 relative), so their sum within 3 * 2^-24 * |w2| / 3.
        BOOST_TEST(at(w3, o, 5, 1, p, q) == double(float(at2(w2, o, 5, p, q) / 3)));
        BOOST_TEST(std::abs(sum - at2(w2, o, 5, p, q)) <= 6e-8 * std::abs(at2(w2, o, 5, p, q)));
      }
}

BOOST_AUTO_TEST_CASE(centre_puts_the_kernel_in_the_middle_slice_only) {
  const StateDict sd = inflate("centre", 'H');
  const Param& w3 = sd.at(kConv);
  const Param& w2 = export_2d().at(kConv);
  for (int64_t a = 0; a < 3; ++a)
    for (int64_t b = 0; b < 3; ++b) {
      BOOST_TEST(at(w3, 7, 9, a, 1, b) == at2(w2, 7, 9, a, b));  // the 2D axes land on D and W
      BOOST_TEST(at(w3, 7, 9, a, 0, b) == 0.0);
      BOOST_TEST(at(w3, 7, 9, a, 2, b) == 0.0);
    }
}

BOOST_AUTO_TEST_CASE(random_is_kaiming_normal_seeded_and_ignores_the_2d_values) {
  const StateDict a = inflate("random", 'D', 3), b = inflate("random", 'D', 3), c = inflate("random", 'D', 4);
  const Param& w = a.at(kConv);
  double sum = 0, sq = 0;
  for (double v : w.values) sum += v, sq += v * v;
  const double n = double(w.values.size()), mean = sum / n, sd = std::sqrt(sq / n - mean * mean);
  const double expected = std::sqrt(2.0 / (128 * 27));
  BOOST_TEST(std::abs(mean) < 0.02 * expected);
  BOOST_TEST(std::abs(sd / expected - 1) < 0.02);
  BOOST_TEST(a.at(kConv).values == b.at(kConv).values);
  BOOST_TEST(a.at(kConv).values != c.at(kConv).values);
  for (double v : a.at("features.norm5.weight").values) BOOST_TEST(v == 1.0);
  for (double v : a.at("features.norm5.running_var").values) BOOST_TEST(v == 1.0);
  for (double v : a.at("features.norm5.bias").values) BOOST_TEST(v == 0.0);
}

BOOST_AUTO_TEST_CASE(shuffled_permutes_each_i3d_tensor_and_keeps_bn) {
  const StateDict s = inflate("shuffled", 'D', 1), m = inflate("i3d-mean");
  for (const std::string& key : {kConv, std::string("features.conv0.weight"), std::string("features.transition2.conv.weight")}) {
    auto a = s.at(key).values, b = m.at(key).values;
    BOOST_TEST((a != b), key << " was not permuted");
    std::sort(a.begin(), a.end());
    std::sort(b.begin(), b.end());
    BOOST_TEST((a == b), key << " is not a permutation of the i3d-mean tensor");
  }
  BOOST_TEST(s.at("features.norm0.running_mean").values == m.at("features.norm0.running_mean").values);
  BOOST_TEST(inflate("shuffled", 'D', 1).at(kConv).values == s.at(kConv).values);
  BOOST_TEST(inflate("shuffled", 'D', 2).at(kConv).values != s.at(kConv).values);
}

BOOST_AUTO_TEST_CASE(acs_splits_output_channels_into_axial_coronal_sagittal_planes) {
  const StateDict sd = inflate("acs");
  const Param& w3 = sd.at(kConv);  // O = 32: groups 11, 11, 10
  const Param& w2 = export_2d().at(kConv);
  for (int64_t o = 0; o < 32; ++o) {
    const int group = o < 11 ? 0 : o < 22 ? 1 : 2;  // centre along D, H, W
    for (int64_t p = 0; p < 3; ++p)
      for (int64_t q = 0; q < 3; ++q) {
        const double v = at2(w2, o, 3, p, q);
        for (int64_t t = 0; t < 3; ++t) {
          const double got = group == 0 ? at(w3, o, 3, t, p, q) : group == 1 ? at(w3, o, 3, p, t, q) : at(w3, o, 3, p, q, t);
          BOOST_TEST(got == (t == 1 ? v : 0.0));
        }
      }
  }
  // 64 stem channels (7x7x7): groups 22, 21, 21; group 0 lives in the plane D = 3, group 1 in H = 3
  const Param& stem = sd.at("features.conv0.weight");
  BOOST_TEST(at(stem, 21, 0, 3, 2, 5) != 0.0);
  BOOST_TEST(at(stem, 21, 0, 2, 3, 3) == 0.0);
  BOOST_TEST(at(stem, 22, 0, 2, 3, 5) != 0.0);
  BOOST_TEST(at(stem, 22, 0, 3, 2, 5) == 0.0);
}

BOOST_AUTO_TEST_CASE(orientation_schemes_are_i3d_mean_along_one_axis) {
  for (char axis : {'D', 'H', 'W'}) {
    const StateDict o = inflate(std::string("orientation-") + axis, 'D');  // --axis is ignored
    const StateDict m = inflate("i3d-mean", axis);
    BOOST_TEST(o.at(kConv).values == m.at(kConv).values, axis);
    BOOST_TEST(o.at("features.conv0.weight").values == m.at("features.conv0.weight").values, axis);
  }
  BOOST_CHECK_THROW(inflate("orientations-mean"), Error);  // an ensemble is not one network
}

BOOST_AUTO_TEST_CASE(orientation_ensembles_concatenate_or_average_their_members) {
  // A small volume with two regions; features of conv0 (64 channels) from each member network.
  PreparedVolume v;
  v.ct.grid = make_grid({31, 30, 29}, {1, 1, 1});
  v.mask.grid = v.ct.grid;
  Rng rng(3);
  for (int64_t i = 0; i < v.ct.grid.voxels(); ++i) {
    v.ct.data.push_back(float(rng.uniform() * 2000 - 600));
    v.mask.data.push_back(i % 3 == 0 ? 1 : 0);
  }
  v.regions = parse_labels("bone=1", true);
  match_regions(v.regions, count_labels(v.mask), "mask");
  v.normalization = parse_normalization("window:400,2000");
  v.input = normalize_volume(v.ct.data, v.normalization);

  const std::string path = volfeat::test::test_data_dir() + "/registries_2d.npz";
  StateDict with_meta = export_2d();
  with_meta.meta_json = R"({"source":"seeded-init"})";
  write_state_dict(path, with_meta);
  Progress quiet(true);
  ExtractOptions o;
  o.weights = path;
  o.layers = {"conv0"};
  const auto layers = std::vector<std::string>{"features.conv0"};
  std::vector<std::vector<double>> members;
  for (char axis : {'D', 'H', 'W'}) {
    o.inflate.scheme = std::string("orientation-") + axis;
    const Network<Cpu, float> net(load_network_weights(o, 1).state);
    members.push_back(extract_features(net, v, layers, "shared", "mean", quiet).of("mean").at("bone").at(layers[0]));
  }
  for (const char* scheme : {"orientations-concat", "orientations-mean"}) {
    o.inflate.scheme = scheme;
    const Network<Cpu, float> first(load_network_weights(o, 1, 0).state);
    const RegionFeatures f = extract_scheme_features(o, first, v, layers, {"mean"}, quiet);
    BOOST_TEST(f.forward_passes == 3);
    const auto& got = f.of("mean").at("bone").at(layers[0]);
    if (std::string(scheme) == "orientations-concat") {
      BOOST_TEST_REQUIRE(got.size() == 192u);
      for (size_t m = 0; m < 3; ++m)
        BOOST_TEST(std::vector<double>(got.begin() + long(64 * m), got.begin() + long(64 * (m + 1))) == members[m]);
    } else {
      BOOST_TEST_REQUIRE(got.size() == 64u);
      for (size_t c = 0; c < 64; ++c)
        BOOST_TEST(std::abs(got[c] - (members[0][c] + members[1][c] + members[2][c]) / 3) <= 1e-12);
    }
  }
}

// The stem rule is parsed once, at the edge: every name round-trips, an unknown one is one line that
// names it; the ensembles carry their combine rule and a single network cannot be combined.
BOOST_AUTO_TEST_CASE(stem_rules_parse_at_the_edge_and_ensembles_carry_their_combine_rule) {
  for (const std::string& name : stem_rule_names()) BOOST_TEST(stem_rule_name(parse_stem_rule(name)) == name);
  BOOST_TEST(stem_channels(parse_stem_rule("rgb")) == 3);
  BOOST_TEST(stem_channels(parse_stem_rule("mean")) == 1);
  std::string error;
  try {
    parse_stem_rule("avg");
  } catch (const Error& e) {
    error = e.what();
  }
  BOOST_TEST(error == "stem 'avg': expected sum, mean or rgb");
  BOOST_TEST((inflation_scheme("orientations-concat").combine == CombineRule::kConcat));
  BOOST_TEST((inflation_scheme("orientations-mean").combine == CombineRule::kMean));
  BOOST_TEST((inflation_scheme("i3d-mean").combine == CombineRule::kNone));
  BOOST_TEST(combine_member_features("i3d-mean", {{1.0, 2.0}}) == (std::vector<double>{1.0, 2.0}));
  BOOST_CHECK_THROW(combine_member_features("i3d-mean", {{1.0}, {2.0}}), Error);
  // The mean stem: the RGB kernel's channel mean, in double, rounded once when inflated (i3d-mean, /7).
  InflateOptions o;
  o.stem = StemRule::kMean;
  const StateDict sd = inflate_state_dict(export_2d(), o);
  const Param& w3 = sd.at("features.conv0.weight");
  const Param& w2 = export_2d().at("features.conv0.weight");  // (64, 3, 7, 7)
  BOOST_TEST((w3.shape == Shape{64, 1, 7, 7, 7}));
  for (int64_t oc : {0, 63}) {
    const size_t i2 = size_t(oc * 3 * 49 + 2 * 7 + 5);
    const double mean = (double(w2.values[i2]) + double(w2.values[i2 + 49]) + double(w2.values[i2 + 98])) / 3;
    BOOST_TEST(w3.values[size_t(((oc * 7 + 4) * 7 + 2) * 7 + 5)] == float(mean / 7));
  }
}

// ---- poolings ---------------------------------------------------------------------------------

namespace {
RegionSamples samples(std::vector<std::vector<double>> rows, std::vector<double> w) {
  RegionSamples s{Index(rows[0].size()), w, {}};
  for (const auto& r : rows) s.features.insert(s.features.end(), r.begin(), r.end());
  return s;
}
std::vector<double> pool(const RegionSamples& s, const std::string& name) { return pool_samples(s, parse_pooling(name)); }
}  // namespace

BOOST_AUTO_TEST_CASE(poolings_have_their_defining_properties) {
  const RegionSamples s = samples({{1, -2}, {3, 4}, {5, 0.5}, {2, 8}}, {1, 0.5, 2, 0.25});
  const double total = 3.75;
  const auto mean = pool(s, "mean");
  BOOST_TEST(std::abs(mean[0] - (1 + 1.5 + 10 + 0.5) / total) <= 1e-15);
  BOOST_TEST(pool(s, "max") == (std::vector<double>{5, 8}));
  // GeM with p = 1 is the mean of the (positive) values; large p tends to the max
  const RegionSamples pos = samples({{1, 2}, {3, 4}, {5, 0.5}}, {1, 1, 2});
  BOOST_TEST(relative_error(pool(pos, "gem:1"), pool(pos, "mean")) <= 1e-12);
  // (sum w x^p / sum w)^(1/p) -> max * (w_max / sum w)^(1/p): within 2% at p = 100 here
  BOOST_TEST(relative_error(pool(pos, "gem:100"), pool(pos, "max")) <= 0.02);
  // mean+std: the weighted mean, then the weighted population std
  const auto ms = pool(s, "mean+std");
  BOOST_TEST_REQUIRE(ms.size() == 4u);
  double var0 = 0;
  for (auto [x, w] : std::vector<std::pair<double, double>>{{1, 1}, {3, 0.5}, {5, 2}, {2, 0.25}}) var0 += w * (x - mean[0]) * (x - mean[0]);
  BOOST_TEST(std::abs(ms[2] - std::sqrt(var0 / total)) <= 1e-12);
  // top-k with q = 1 is the mean; percentile 100 is the max, 0 the min
  BOOST_TEST(relative_error(pool(s, "topk:1"), mean) <= 1e-12);
  BOOST_TEST(pool(s, "percentile:100") == pool(s, "max"));
  BOOST_TEST(pool(s, "percentile:0") == (std::vector<double>{1, -2}));
  // top 20% of weight (0.75) in channel 0: all from the voxel holding 5 (weight 2)
  BOOST_TEST(pool(s, "topk:0.2")[0] == 5.0);
  // attention: equal feature norms -> plain weighted mean; a dominant norm with low temperature -> that voxel
  const RegionSamples equal = samples({{3, 4}, {4, 3}, {0, 5}}, {1, 2, 1});
  BOOST_TEST(relative_error(pool(equal, "attention"), pool(equal, "mean")) <= 1e-12);
  BOOST_TEST(relative_error(pool(s, "attention:0.001"), std::vector<double>{2, 8}) <= 1e-9);
  // a voxel's weight acts as a multiplicity
  const RegionSamples twice = samples({{1, -2}, {1, -2}, {3, 4}}, {1, 1, 1});
  const RegionSamples weighted = samples({{1, -2}, {3, 4}}, {2, 1});
  for (const char* p : {"mean", "max", "gem", "mean+std", "topk:0.5", "percentile:40", "attention"})
    BOOST_TEST(relative_error(pool(twice, p), pool(weighted, p)) <= 1e-12, p);
  BOOST_CHECK_THROW(parse_pooling("gem:x"), Error);
  BOOST_CHECK_THROW(parse_pooling("median"), Error);
}

// ---- similarities -----------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(similarities_have_their_defining_properties) {
  const std::vector<double> a{1, 2, 3, -1}, b{2, 1, 0.5, 4};
  std::vector<double> a_scaled(a), b_shifted(b);
  for (double& x : a_scaled) x *= 7;
  for (double& x : b_shifted) x += 10;
  const auto sim = [](const char* n, const std::vector<double>& x, const std::vector<double>& y) {
    return vector_similarity(parse_similarity(n), x, y);
  };
  BOOST_TEST(std::abs(sim("cosine", a, a) - 1) <= 1e-15);
  BOOST_TEST(std::abs(sim("cosine", a_scaled, b) - sim("cosine", a, b)) <= 1e-15);
  BOOST_TEST(std::abs(sim("pearson", a, b_shifted) - sim("pearson", a, b)) <= 1e-12);  // shift-invariant
  BOOST_TEST(std::abs(sim("cosine", a, b_shifted) - sim("cosine", a, b)) > 0.1);        // cosine is not
  // |a^ - b^|^2 = 2 - 2 cos
  BOOST_TEST(std::abs(std::pow(sim("euclidean", a, b), 2) - (2 - 2 * sim("cosine", a, b))) <= 1e-12);
  BOOST_TEST(sim("euclidean", a, a_scaled) <= 1e-7);

  // CKA: 1 for the same voxel set, symmetric, invariant to scaling the features and to the number
  // and weights of voxels when the channel covariance is the same.
  Rng rng(5);
  std::vector<double> x(200 * 6), y(150 * 6), w1(200, 1.0), w2(150, 1.0);
  for (double& v : x) v = rng.normal();
  for (double& v : y) v = rng.normal();
  const ChannelGram gx = channel_gram(x.data(), w1.data(), 200, 6), gy = channel_gram(y.data(), w2.data(), 150, 6);
  std::vector<double> x3(x);
  for (double& v : x3) v *= 3;
  BOOST_TEST(std::abs(linear_cka(gx, gx) - 1) <= 1e-12);
  BOOST_TEST(std::abs(linear_cka(gx, gy) - linear_cka(gy, gx)) <= 1e-15);
  BOOST_TEST(std::abs(linear_cka(channel_gram(x3.data(), w1.data(), 200, 6), gy) - linear_cka(gx, gy)) <= 1e-12);
  std::vector<double> xx(x);
  xx.insert(xx.end(), x.begin(), x.end());
  std::vector<double> w_half(400, 0.5);
  BOOST_TEST(std::abs(linear_cka(channel_gram(xx.data(), w_half.data(), 400, 6), gx) - 1) <= 1e-12);
  BOOST_CHECK_THROW(parse_similarity("dice"), Error);
}
