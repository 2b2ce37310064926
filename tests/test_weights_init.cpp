// volfeat's seeded random networks (weights/seeded_normal.hpp, random_state_dict): the normals follow
// N(0, 1) (moments and the CDF at points in the body, the wedges and beyond the ziggurat's base edge);
// every conv of DenseNet-121, ResNet-18 and VGG-11 has the kaiming std of its family's fan; value i is
// float(std * normal i), the same for 1, 2 and 3 threads; seeds and tensors draw different values. And
// Conv3d's float constructor packs exactly what its double one does. And the CLI's weights reader skips
// the head tensors it never uses. And deferred conv kernels (TensorValues::kOnUse: seeded, inflated, read
// in place from a mapped export) are the kernels computed up front, bit for bit.
#define BOOST_TEST_MODULE weights_init
#include <omp.h>

#include <algorithm>
#include <boost/test/unit_test.hpp>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "support/paths.hpp"
#include "support/sanitized.hpp"
#include "volfeat/backend/cpu.hpp"
#include "volfeat/nn/network.hpp"
#include "volfeat/nn/taps.hpp"
#include "volfeat/weights/inflate.hpp"
#include "volfeat/weights/load.hpp"
#include "volfeat/weights/seeded_normal.hpp"

using namespace volfeat;

namespace {

double phi(double x) { return 0.5 * std::erfc(-x / std::sqrt(2.0)); }

// A synthetic 2D torchvision export of `arch` (RGB stem): 0.1 x seeded normals, running variances
// 0.5 + |normal| (so that a network built from it gives finite outputs).
StateDict synthetic_export(const std::string& arch, uint64_t seed) {
  StateDict sd;
  sd.origin = "synthetic " + arch + " export";
  const SeededNormals g(seed, "export");
  uint64_t at = 0;
  for (const ParamSpec& p : build_graph(arch, 3).params(2)) {
    Param param{p.shape, std::vector<float>(size_t(element_count(p.shape)))};
    const bool variance = p.key.size() > 12 && p.key.compare(p.key.size() - 12, 12, ".running_var") == 0;
    for (float& v : param.values) v = float(variance ? 0.5 + std::fabs(g.normal(at++)) : 0.1 * g.normal(at++));
    sd.params.emplace(p.key, std::move(param));
  }
  return sd;
}

struct ThreadCount {
  int saved = omp_get_max_threads();
  explicit ThreadCount(int n) { omp_set_num_threads(n); }
  ~ThreadCount() { omp_set_num_threads(saved); }
};

}  // namespace

BOOST_AUTO_TEST_CASE(normals_have_the_standard_normal_moments_and_cdf) {
  const SeededNormals g(5, "test stream");
  constexpr size_t kN = size_t(1) << 22;
  const std::vector<double> points{-4.0, -3.7, -3.0, -2.0, -1.0, -0.3, 0.0, 0.5, 1.5, 2.5, 3.66, 4.0};
  std::vector<double> below(points.size(), 0);
  double sum = 0, sq = 0, quad = 0;
  for (size_t i = 0; i < kN; ++i) {
    const double x = g.normal(i);
    sum += x, sq += x * x, quad += x * x * x * x;
    for (size_t k = 0; k < points.size(); ++k) below[k] += x < points[k] ? 1 : 0;
  }
  const double n = double(kN), mean = sum / n, var = sq / n - mean * mean;
  // 5 standard errors: a correct generator fails one of these about once in a million runs.
  BOOST_TEST(std::abs(mean) < 5 / std::sqrt(n));
  BOOST_TEST(std::abs(var - 1) < 5 * std::sqrt(2 / n));
  BOOST_TEST(std::abs(quad / n - 3) < 5 * std::sqrt(96 / n));  // var(x^4) = 105 - 9
  for (size_t k = 0; k < points.size(); ++k) {
    const double p = phi(points[k]), f = below[k] / n;
    BOOST_TEST(std::abs(f - p) < 5 * std::sqrt(p * (1 - p) / n) + 1.0 / n, "P(x < " << points[k] << ") = " << f << ", expected " << p);
  }
}

BOOST_AUTO_TEST_CASE(a_value_depends_only_on_seed_stream_and_index) {
  const SeededNormals a(1, "features.conv0.weight"), b(1, "features.conv0.weight"), c(2, "features.conv0.weight"),
      d(1, "features.conv1.weight");
  int same_c = 0, same_d = 0;
  for (uint64_t i = 0; i < 1000; ++i) {
    BOOST_TEST(a.normal(i) == b.normal(i));
    same_c += a.normal(i) == c.normal(i);
    same_d += a.normal(i) == d.normal(i);
  }
  BOOST_TEST(same_c == 0);
  BOOST_TEST(same_d == 0);
  // Out of order equals in order.
  BOOST_TEST(a.normal(999) == b.normal(999));
}

BOOST_AUTO_TEST_CASE(random_networks_are_the_same_for_any_thread_count) {
  for (const std::string arch : {"densenet121", "resnet18"}) {
    StateDict one, two, three;
    {
      const ThreadCount t(1);
      one = random_state_dict(arch, 11);
    }
    {
      const ThreadCount t(2);
      two = random_state_dict(arch, 11);
    }
    {
      const ThreadCount t(3);
      three = random_state_dict(arch, 11);
    }
    BOOST_TEST(one.params.size() == two.params.size());
    bool equal = true;
    for (const auto& [key, p] : one.params) equal = equal && p.values == two.at(key).values && p.values == three.at(key).values;
    BOOST_TEST(equal, arch << ": values differ between 1, 2 and 3 threads");
    const StateDict other = random_state_dict(arch, 12);
    const std::string stem = arch == "densenet121" ? "features.conv0.weight" : "conv1.weight";
    BOOST_TEST((other.at(stem).values != one.at(stem).values), arch << ": seeds 11 and 12 gave the same stem");
  }
}

BOOST_AUTO_TEST_CASE(every_conv_has_the_kaiming_std_of_its_family) {
  for (const std::string arch : {"densenet121", "resnet18", "vgg11"}) {
    const Graph g = build_graph(arch, 1);
    const StateDict sd = random_state_dict(g, 3);
    int convs = 0;
    for (const ParamSpec& spec : g.params(3)) {
      const Param& p = sd.at(spec.key);
      BOOST_REQUIRE(p.shape == spec.shape);
      BOOST_REQUIRE(p.values.size() == size_t(element_count(p.shape)));
      const auto leaf = spec.key.substr(spec.key.rfind('.') + 1);
      if (spec.shape.size() != 5) {
        const double fill = (leaf == "weight" || leaf == "running_var") ? 1.0 : 0.0;
        bool ok = true;
        for (double v : p.values) ok = ok && v == fill;
        BOOST_TEST(ok, spec.key << " is not all " << fill);
        continue;
      }
      ++convs;
      const int64_t fan = element_count(spec.shape) / (g.conv_init() == ConvInit::kFanIn ? spec.shape[0] : spec.shape[1]);
      const double expected = std::sqrt(2.0 / double(fan));
      double sum = 0, sq = 0;
      for (double v : p.values) sum += v, sq += v * v;
      const double n = double(p.values.size()), mean = sum / n, sd_ = std::sqrt(sq / n - mean * mean);
      // Value i is the documented formula, std * normal i of the stream (seed, key), rounded once to float.
      const SeededNormals stream(3, spec.key);
      for (size_t i : {size_t(0), p.values.size() / 2, p.values.size() - 1})
        BOOST_TEST(p.values[i] == float(expected * stream.normal(i)), spec.key << " value " << i);
      // 5 standard errors of the mean and of the std (sqrt(1/(2n)) relative), plus float rounding.
      BOOST_TEST(std::abs(mean) < 5 * expected / std::sqrt(n), spec.key << ": mean " << mean);
      BOOST_TEST(std::abs(sd_ / expected - 1) < 5 * std::sqrt(0.5 / n) + 1e-6,
                 spec.key << ": std " << sd_ << ", kaiming " << expected << " (fan " << fan << ")");
    }
    BOOST_TEST(convs > 7, arch);
  }
}

BOOST_AUTO_TEST_CASE(conv3d_packs_float_data_as_it_packs_double) {
  const std::vector<ConvSpec> specs{{5, 7, WindowGeometry::cube(1)},
                                    {6, 33, WindowGeometry::cube(3, 1, 1)},
                                    {1, 9, WindowGeometry::cube(7, 2, 3)}};
  const SeededNormals g(0, "conv");
  for (const ConvSpec& spec : specs) {
    std::vector<float> wf(size_t(spec.weight_count())), bf(size_t(spec.out_channels));
    for (size_t i = 0; i < wf.size(); ++i) wf[i] = float(0.2 * g.normal(i));
    for (size_t i = 0; i < bf.size(); ++i) bf[i] = float(0.1 * g.normal(1000000 + i));
    const std::vector<double> wd(wf.begin(), wf.end()), bd(bf.begin(), bf.end());
    const Conv3d<Cpu, float> from_double(spec, wd, bd), from_float(spec, wf.data(), wf.size(), bf.data(), bf.size());
    const Dims in{1, 9, 10, 11, spec.in_channels};
    std::vector<float> x(size_t(in.voxels() * in.c));
    for (size_t i = 0; i < x.size(); ++i) x[i] = float(g.normal(2000000 + i));
    const Dims od = from_double.output_dims(in);
    std::vector<float> a(size_t(od.voxels() * od.c)), b(a.size());
    from_double.forward(TensorView<const float>{x.data(), in}, TensorView<float>{a.data(), od});
    from_float.forward(TensorView<const float>{x.data(), in}, TensorView<float>{b.data(), od});
    BOOST_TEST(a == b, "outputs differ for " << spec.in_channels << "->" << spec.out_channels);
  }
  BOOST_CHECK_THROW((Conv3d<Cpu, float>(specs[0], std::vector<float>(3).data(), 3)), Error);
}

// The CLI's weights reader: the head (classifier) of a torchvision export is never read, so a damaged
// head goes unnoticed where a full read reports its CRC; the rest equals the full read, and the result
// equals load_weights with the file's SHA-256 beside it.
BOOST_AUTO_TEST_CASE(the_weights_reader_skips_the_head_and_hashes_once) {
  const std::string dir = volfeat::test::test_data_dir() + "/weights_init_scratch";
  std::filesystem::create_directories(dir);
  const std::string path = dir + "/vgg11_2d.npz";
  StateDict sd = synthetic_export("vgg11", 9);
  const SeededNormals g(9, "head");
  uint64_t at = 0;
  auto add = [&](const std::string& key, const Shape& shape) {
    Param p{shape, std::vector<float>(size_t(element_count(shape)))};
    for (float& v : p.values) v = float(0.1 * g.normal(at++));
    sd.params.emplace(key, std::move(p));
  };
  add("classifier.0.weight", {16, 8});
  add("classifier.0.bias", {16});
  write_state_dict(path, sd);

  const StateDict full = read_state_dict(path), lean = read_state_dict(path, true);
  BOOST_TEST(full.at("classifier.0.weight").values == sd.at("classifier.0.weight").values);
  BOOST_TEST(lean.at("classifier.0.weight").shape == (Shape{16, 8}));
  BOOST_TEST(lean.at("classifier.0.weight").values.empty());
  for (const auto& [key, p] : sd.params)
    if (key.rfind("classifier", 0) != 0) BOOST_TEST(lean.at(key).values == p.values, key);

  // Damage one byte of the classifier's data.
  std::vector<unsigned char> bytes;
  {
    std::ifstream f(path, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(f), {});
  }
  const ZipReader zip(bytes.data(), bytes.size(), path);
  for (const ZipMember& m : zip.members())
    if (m.name == "classifier.0.weight.npy") bytes[size_t(m.data_offset + m.uncompressed_size - 3)] ^= 0x5a;
  const std::string damaged = dir + "/vgg11_2d_damaged_head.npz";
  {
    std::ofstream f(damaged, std::ios::binary | std::ios::trunc);
    f.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
  }
  BOOST_CHECK_NO_THROW(read_state_dict(damaged, true));
  std::string error;
  try {
    read_state_dict(damaged);
  } catch (const std::exception& e) {
    error = e.what();
  }
  BOOST_TEST(error == damaged + ": member classifier.0.weight.npy: CRC mismatch");

  InflateOptions opt;
  opt.stem = StemRule::kRgb;
  const WeightsFile w = read_weights_file(damaged, opt);
  BOOST_TEST(w.file_dims == 2);
  BOOST_TEST(w.sha256 == sha256_file(damaged));
  const StateDict reference = inflate_state_dict(full, opt);
  BOOST_TEST(w.state.params.size() == reference.params.size());
  for (const auto& [key, p] : reference.params) BOOST_TEST(w.state.at(key).values == p.values, key);
  BOOST_TEST(state_dict_meta(w.state)["source_sha256"].get<std::string>() == w.sha256);
}

// Deferred conv kernels (TensorValues::kOnUse): seeded and inflated kernels computed when the network
// packs them are the kernels computed up front, bit for bit, for every inflation scheme and stem rule; a
// network built from them gives the same outputs; and its build lets go of what they were computed from.
BOOST_AUTO_TEST_CASE(deferred_kernels_are_the_kernels_computed_up_front) {
  auto expect_same = [](const StateDict& now, StateDict later, const std::string& what) {
    BOOST_TEST(now.params.size() == later.params.size(), what);
    int deferred = 0;
    for (const auto& [key, p] : later.params)
      if (p.deferred()) {
        ++deferred;
        BOOST_TEST(p.values.empty(), what << " " << key);
        BOOST_TEST(p.shape.size() == 5u, what << " " << key);  // only conv kernels wait
      }
    materialize(later);
    BOOST_TEST(!later.source, what);
    for (const auto& [key, p] : now.params) {
      BOOST_TEST(!later.at(key).deferred(), what << " " << key);
      BOOST_TEST(later.at(key).shape == p.shape, what << " " << key);
      BOOST_TEST((later.at(key).values == p.values), what << " " << key);
    }
    return deferred;
  };
  for (const std::string arch : {"densenet121", "resnet18", "vgg11_bn"}) {
    const int deferred = expect_same(random_state_dict(arch, 7), random_state_dict(arch, 7, 1, TensorValues::kOnUse),
                                     "seeded " + arch);
    int convs = 0;
    const Graph graph = build_graph(arch);
    for (const Node& n : graph.nodes()) convs += n.kind == OpKind::kConv;
    BOOST_TEST(deferred == convs, arch);
  }

  // A synthetic 2D export of ResNet-18 (RGB stem), inflated by every single-network scheme and stem rule.
  // Under the sanitizers each scheme takes one stem rule, the three in turn (with all of them this case took
  // 43 s of the program's 53 s there, alone, Zen 5, 2026-12-07): each pair runs the same code as the others.
  const auto sd2 = std::make_shared<StateDict>(synthetic_export("resnet18", 4));
  if (volfeat::test::kSanitized)
    std::cout << "SKIP two of the three stem rules per inflation scheme under the sanitizers (normal suite only): "
                 "each scheme runs one, the rules in turn\n";
  int scheme_index = 0;
  for (const auto& [scheme, s] : inflation_schemes()) {
    if (!s.members.empty()) continue;
    const int index = scheme_index++;
    for (const StemRule stem : {StemRule::kSum, StemRule::kMean, StemRule::kRgb}) {
      if (volfeat::test::kSanitized && int(stem) != index % 3) continue;
      InflateOptions opt;
      opt.scheme = scheme;
      opt.stem = stem;
      opt.axis = 'H';
      opt.seed = 5;
      const std::string what = scheme + " stem " + stem_rule_name(stem);
      StateDict later = inflate_state_dict(sd2, opt, TensorValues::kOnUse);
      // A shuffle draws across kernels in key order: computed up front, never deferred.
      if (s.shuffle) BOOST_TEST(!later.source, what);
      if (s.rule && !s.shuffle) BOOST_TEST(later.source.get() == sd2.get(), what);
      expect_same(inflate_state_dict(*sd2, opt), std::move(later), what);
    }
  }

  // From a file, as the CLI reads it: a stored float32 export's 2D kernels stay in the mapped file (in
  // place), a deflated one's are copied out; either way the kernels are the ones computed up front.
  const std::string dir = volfeat::test::test_data_dir() + "/weights_init_scratch";
  std::filesystem::create_directories(dir);
  for (const bool compress : {false, true}) {
    const std::string path = dir + (compress ? "/resnet18_2d_deflated.npz" : "/resnet18_2d.npz");
    NpzMap arrays;
    for (const auto& [key, p] : sd2->params) arrays.emplace(key, NpyArray::from(p.shape, p.values.data()));
    write_npz(path, arrays, compress);
    InflateOptions opt;
    opt.stem = StemRule::kMean;
    const WeightsFile now = read_weights_file(path, opt);
    const WeightsFile later = read_weights_file(path, opt, true, TensorValues::kOnUse);
    BOOST_TEST(later.sha256 == now.sha256);
    BOOST_REQUIRE(later.state.source);
    int in_place = 0;
    for (const auto& [key, p] : later.state.source->params) {
      in_place += p.in_place ? 1 : 0;
      if (p.in_place) BOOST_TEST(p.values.empty(), key);
      BOOST_TEST(p.size() == size_t(element_count(p.shape)), key);
    }
    BOOST_TEST(in_place == (compress ? 0 : 20), path);  // ResNet-18's 20 convs (3 of them 1x1 shortcuts)
    expect_same(now.state, later.state, path);
  }

  // A network packs deferred kernels as it would packed ones: same outputs, bit for bit. With
  // kReleaseWeights its build drops the 2D export the kernels came from.
  InflateOptions opt;
  opt.stem = StemRule::kSum;
  StateDict later = inflate_state_dict(sd2, opt, TensorValues::kOnUse);
  const long holders = sd2.use_count();
  const Network<Cpu, float> a(inflate_state_dict(*sd2, opt)), b(later, kReleaseWeights);
  BOOST_TEST(!later.source);
  BOOST_TEST(sd2.use_count() == holders - 1);
  for (const auto& [key, p] : later.params) BOOST_TEST(!p.deferred(), key);
  const Dims in{1, 32, 32, 32, 1};
  std::vector<float> x(size_t(in.voxels()));
  const SeededNormals g(4, "input");
  for (size_t i = 0; i < x.size(); ++i) x[i] = float(g.normal(i));
  Recorder<Cpu, float> ra({"layer2"}), rb({"layer2"});
  a.forward(TensorView<const float>{x.data(), in}, ra);
  b.forward(TensorView<const float>{x.data(), in}, rb);
  const std::vector<float>& ya = ra.at("layer2").data;
  BOOST_TEST(!ya.empty());
  BOOST_TEST((ya == rb.at("layer2").data));
  BOOST_TEST(std::all_of(ya.begin(), ya.end(), [](float v) { return std::isfinite(v); }));
}
