// The whole DenseNet121-3D against PyTorch with only a few taps: the network then takes its fused
// paths (stem conv+BN+ReLU+maxpool over planes, transitions pooled before their 1x1 conv), which the
// record-everything comparison of test_densenet_torch never runs. Same references, same 1e-4.
#define BOOST_TEST_MODULE densenet_fused
#include <boost/test/unit_test.hpp>

#include "support/compare.hpp"
#include "support/torch_refs.hpp"
#include "volfeat/backend/cpu.hpp"
#include "volfeat/nn/memory_estimate.hpp"
#include "volfeat/nn/network.hpp"
#include "volfeat/weights/load.hpp"

using namespace volfeat;
using namespace volfeat::test;

namespace {

struct TorchRefs {
  TorchRefs() { require_torch_refs(); }
};
BOOST_TEST_GLOBAL_FIXTURE(TorchRefs);

// How the network is built: whole, or only up to its deepest tap (BuildUpTo, as the CLI builds it).
enum class Extent { kWhole, kUpToTaps };

Network<Cpu, float> network_for(const NpzMap& z, const std::vector<std::string>& taps, Extent extent) {
  const auto args = ref_meta(z)["args"];
  InflateOptions opt;
  opt.scheme = args["scheme"].get<std::string>();
  opt.axis = args["axis"].get<std::string>()[0];
  opt.stem = parse_stem_rule(args["stem"].get<std::string>());
  return Network<Cpu, float>(inflate_state_dict(read_state_dict(torch_ref_dir() + "/dn121_2d.npz"), opt), Cpu{},
                             extent == Extent::kUpToTaps ? BuildUpTo{taps, std::nullopt} : BuildUpTo{});
}

void check_sparse_taps(const std::string& file, const std::vector<std::string>& taps, const std::string& stop_at = "",
                       Extent extent = Extent::kWhole) {
  const NpzMap z = read_npz(torch_ref_dir() + "/" + file);
  const Network<Cpu, float> net = network_for(z, taps, extent);
  const reference::Array5 input = ref_array(z.at("input"));
  const auto x = reference::to_channels_last<float>(input);
  Recorder<Cpu, float> rec(taps);
  const int stop = stop_at.empty() ? -1 : net.node_of(stop_at);
  net.forward(TensorView<const float>(x.data(), input.dims()), rec, stop);
  for (const auto& name : taps) {
    BOOST_TEST_CONTEXT(file << " module " << name) {
      BOOST_TEST_REQUIRE(rec.has(name));
      const reference::Array5 want = ref_array(z.at("out/" + name));
      BOOST_TEST_REQUIRE((rec.at(name).dims == want.dims()));
      const double err = relative_error(rec.at(name).data, reference::to_channels_last<double>(want));
      BOOST_TEST(err <= 1e-4);
      BOOST_TEST_MESSAGE(file << " " << name << ": relative error " << err);
    }
  }
  BOOST_TEST(rec.taps().size() == taps.size());
}

const std::vector<std::string> kSparse{
    "features.pool0",           "features.denseblock1.denselayer3", "features.transition1.pool",
    "features.transition1",     "features.denseblock2",             "features.transition2",
    "features.denseblock3.denselayer24.conv2", "features.transition3", "features.denseblock4",
    "features.norm5"};

}  // namespace

BOOST_AUTO_TEST_CASE(fused_paths_match_torch_cube) { check_sparse_taps("ref_i3d_32.npz", kSparse); }
BOOST_AUTO_TEST_CASE(fused_paths_match_torch_odd_shape) { check_sparse_taps("ref_centre_odd.npz", kSparse); }
BOOST_AUTO_TEST_CASE(fused_paths_match_torch_axis_h) { check_sparse_taps("ref_i3d_axisH_mean.npz", kSparse); }
BOOST_AUTO_TEST_CASE(only_the_last_module) { check_sparse_taps("ref_centre_odd.npz", {"features.norm5"}); }
BOOST_AUTO_TEST_CASE(stop_right_after_a_fused_pool) {
  check_sparse_taps("ref_i3d_32.npz", {"features.transition2.pool"}, "features.transition2.pool");
  check_sparse_taps("ref_thin.npz", {"features.pool0"}, "features.pool0");
}

// Built only up to its deepest tap, the network gives PyTorch's outputs there (the default stop is then
// that tap's node), packs none of the convs past it (its packed weights up to transition1: 4.2 MB of
// the whole network's 53.8 MB), and running further, or naming an unknown module, is one clear error.
BOOST_AUTO_TEST_CASE(a_network_built_up_to_its_taps_matches_torch_and_stops_there) {
  const std::vector<std::string> taps{"features.pool0", "features.denseblock1.denselayer3", "features.transition1"};
  check_sparse_taps("ref_i3d_32.npz", taps, "", Extent::kUpToTaps);
  const NpzMap z = read_npz(torch_ref_dir() + "/ref_i3d_32.npz");
  const Network<Cpu, float> part = network_for(z, {"transition1", "pool0"}, Extent::kUpToTaps);
  const Network<Cpu, float> whole = network_for(z, {}, Extent::kWhole);
  BOOST_TEST(part.built_last() == part.node_of("features.transition1"));
  BOOST_TEST(whole.built_last() == whole.graph().last_node());
  const double part_bytes = network_weight_bytes(part.graph(), part.plan_traits(), sizeof(float), part.built_last());
  const double whole_bytes = network_weight_bytes(whole.graph(), whole.plan_traits(), sizeof(float));
  BOOST_TEST_MESSAGE("packed weights up to transition1: " << part_bytes / 1e6 << " MB of " << whole_bytes / 1e6 << " MB");
  BOOST_TEST(part_bytes < 0.1 * whole_bytes);
  BOOST_TEST(part_bytes > 0.0);
  const reference::Array5 input = ref_array(z.at("input"));
  const auto x = reference::to_channels_last<float>(input);
  const TensorView<const float> in(x.data(), input.dims());
  auto error_of = [](auto&& f) -> std::string {
    try {
      f();
    } catch (const std::exception& e) {
      return e.what();
    }
    return "";
  };
  BOOST_TEST(error_of([&] { part.forward(in, part.node_of("features.norm5")); }) ==
             "network: built up to features.transition1 only (BuildUpTo); it cannot run to features.norm5");
  const std::string unknown = error_of([&] { network_for(z, {"denseblok2"}, Extent::kUpToTaps); });
  BOOST_TEST(unknown.find("denseblok2") != std::string::npos, unknown);
}
