// Every architecture of the registry against torchvision (tests/torch/arch_reference.py):
//  * structure: volfeat's graph has exactly torchvision's modules, in the order their hooks first fire,
//    exactly its parameters and shapes, and the architecture is detected from those keys alone;
//  * exactness: VGG-19, VGG-11-bn, ResNet-18 and ResNet-50 (test_arch_torch), and every other architecture
//    (deep_architectures_match_torch, run as the ctest test_arch_torch_deep on its own fixture), inflated
//    from plain torchvision state_dicts (no volfeat metadata), against the same networks inflated in
//    PyTorch: every module's output within 1e-4 relative (max abs error / max abs value), with every tap
//    recorded (nothing fused) and with only the deepest module asked for (everything fused that can be).
//    Together the two lists hold every architecture of the registry (checked below). VGG-19 also with
//    3D Winograd on every 3x3x3 conv and on none (VOLFEAT_WINOGRAD=all / 0).
#define BOOST_TEST_MODULE arch_torch
#include <boost/test/unit_test.hpp>
#include <filesystem>
#include <fstream>
#include <set>
#include <tuple>

#include "support/paths.hpp"
#include "support/compare.hpp"
#include "support/torch_refs.hpp"
#include "support/scoped_env.hpp"
#include "volfeat/backend/cpu.hpp"
#include "volfeat/nn/network.hpp"
#include "volfeat/nn/plan.hpp"
#include "volfeat/nn/selectors.hpp"
#include "volfeat/weights/load.hpp"

using namespace volfeat;
using namespace volfeat::test;

namespace {

constexpr double kTolerance = 1e-4;

std::string ref_dir() { return volfeat::test::test_data_dir() + "/arch"; }
std::string deep_dir() { return volfeat::test::test_data_dir() + "/arch_deep"; }

nlohmann::json read_json(const std::string& path) {
  std::ifstream f(path);
  BOOST_TEST_REQUIRE(bool(f), path << " is missing");
  return nlohmann::json::parse(f);
}

struct ArchRefs {
  ArchRefs() {
    if (!std::filesystem::exists(ref_dir() + "/structure.json")) {
      std::cout << "SKIP: " << ref_dir() << "/structure.json is missing: the arch_reference step did not run or was "
                << "skipped (needs /usr/bin/python3 with python3-torch and python3-torchvision)" << std::endl;
      std::exit(77);
    }
  }
};
BOOST_TEST_GLOBAL_FIXTURE(ArchRefs);

const nlohmann::json& structures() {
  static const nlohmann::json j = [] {
    std::ifstream f(ref_dir() + "/structure.json");
    return nlohmann::json::parse(f);
  }();
  return j;
}

void check_against_torch(const std::string& arch, const std::string& dir = ref_dir()) {
  const StateDict sd2 = read_state_dict(dir + "/" + arch + "_2d.npz");
  BOOST_TEST(sd2.meta_json.empty());  // a plain torchvision export
  BOOST_TEST(detect_arch(sd2) == arch);
  InflateOptions opt;  // i3d-mean along D, stem sum: what the reference did
  const Network<Cpu, float> net(inflate_state_dict(sd2, opt));
  BOOST_TEST(net.arch() == arch);

  const NpzMap z = read_npz(dir + "/" + arch + "_ref.npz");
  const reference::Array5 input = ref_array(z.at("input"));
  const auto x = reference::to_channels_last<float>(input);
  const TensorView<const float> xv(x.data(), input.dims());

  // Every module recorded: nothing fused.
  auto rec = Recorder<Cpu, float>::everything();
  net.forward(xv, rec);
  const auto [compared, worst, worst_name] = compare_with_torch(z, rec, arch, kTolerance);
  BOOST_TEST(compared == net.modules().size());
  BOOST_TEST(rec.taps().size() == net.modules().size());
  BOOST_TEST_MESSAGE(arch << ": " << compared << " modules match torch (all taps); worst relative error " << worst
                          << " at " << worst_name);

  // Only a few deep modules asked for: every rewrite of nn/plan.hpp that applies runs.
  const std::vector<std::string> deep{resolve_layer(net.graph(), "conv[-1]"), net.modules().back().name};
  Recorder<Cpu, float> fused(deep);
  net.forward(xv, fused);
  for (const auto& name : deep) {
    BOOST_TEST_CONTEXT(arch << " fused, module " << name) {
      BOOST_TEST_REQUIRE(fused.has(name));
      const double err =
          relative_error(fused.at(name).data, reference::to_channels_last<double>(ref_array(z.at("out/" + name))));
      BOOST_TEST(err <= kTolerance);
      BOOST_TEST_MESSAGE(arch << " fused: " << name << " relative error " << err);
    }
  }
}

}  // namespace

BOOST_AUTO_TEST_CASE(every_architecture_has_torchvisions_modules_and_parameters) {
  size_t archs = 0;
  for (const auto& family : arch_families())
    for (const auto& arch : family.archs) {
      BOOST_TEST_CONTEXT(arch) {
        BOOST_TEST_REQUIRE(structures().contains(arch));
        const auto& want = structures()[arch];
        const Graph g = build_graph(arch, 3);
        std::vector<std::string> names;
        for (const auto& m : g.modules()) names.push_back(m.name);
        BOOST_TEST(names == want["modules"].get<std::vector<std::string>>(), boost::test_tools::per_element());
        std::map<std::string, Shape> params;
        for (const auto& p : g.params(2)) params[p.key] = p.shape;
        std::map<std::string, Shape> torch_params;
        for (const auto& [k, v] : want["params"].items()) torch_params[k] = v.get<Shape>();
        BOOST_TEST((params == torch_params));
        // Detected from the keys and shapes alone (values play no part).
        StateDict sd;
        sd.origin = arch + " keys";
        for (const auto& [k, s] : torch_params) sd.params[k] = Param{s, {}};
        BOOST_TEST(detect_arch(sd) == arch);
        ++archs;
      }
    }
  BOOST_TEST(archs == 19u);
}

BOOST_AUTO_TEST_CASE(vgg19_matches_torch) { check_against_torch("vgg19"); }
// The cases here run with the default per-layer choice (3D Winograd on VGG's 64-256-channel 3x3x3 convs and
// ResNet's stride-1 3x3x3 convs of up to 256 channels); VGG-19 once more with Winograd on every 3x3x3 conv
// (VOLFEAT_WINOGRAD=all: the 512-channel ones too) and once with none (=0), at the same 1e-4.
BOOST_AUTO_TEST_CASE(vgg19_matches_torch_with_winograd_on_every_conv_and_on_none) {
  for (const char* mode : {"all", "0"}) {
    BOOST_TEST_CONTEXT("VOLFEAT_WINOGRAD=" << mode) {
      const volfeat::test::ScopedEnv winograd("VOLFEAT_WINOGRAD", mode);
      check_against_torch("vgg19");
    }
  }
}
BOOST_AUTO_TEST_CASE(vgg11_bn_matches_torch) { check_against_torch("vgg11_bn"); }
BOOST_AUTO_TEST_CASE(resnet18_matches_torch) { check_against_torch("resnet18"); }
BOOST_AUTO_TEST_CASE(resnet50_matches_torch) { check_against_torch("resnet50"); }

// ResNet's residual add (and the block's relu) runs in the epilogue of conv3 (Bottleneck) / conv2
// (BasicBlock) when no observer sees the nodes it hides (nn/plan.hpp): once per block with no taps, not
// for a block whose bn3/bn2 is tapped (unless its downsample conv can take the add instead), still with
// the block's output or its downsample tapped. With
// taps on hidden nodes of some blocks (those blocks unfused, the rest fused), every tap equals torch.
BOOST_AUTO_TEST_CASE(resnet_residual_add_fuses_into_the_conv_unless_observed) {
  for (const auto& [arch, blocks, last_bn] : {std::tuple<std::string, size_t, std::string>{"resnet18", 8, "bn2"},
                                              std::tuple<std::string, size_t, std::string>{"resnet50", 16, "bn3"}}) {
    BOOST_TEST_CONTEXT(arch) {
      const Graph g = build_graph(arch);
      auto fused_adds = [&](const std::vector<std::string>& taps) {
        std::vector<bool> wanted(g.nodes().size(), false);
        for (const auto& t : taps) wanted[size_t(g.node_of(t))] = true;
        const Plan p = make_plan(g, Dims{1, 32, 32, 32, 1}, wanted, g.last_node(), PlanTraits{});
        return size_t(std::count_if(p.steps.begin(), p.steps.end(), [](const Step& s) { return s.kind == StepKind::kConvAdd; }));
      };
      BOOST_TEST(fused_adds({}) == blocks);
      BOOST_TEST(fused_adds({"layer1.1." + last_bn}) == blocks - 1);
      BOOST_TEST(fused_adds({"layer2.1." + last_bn, "layer3.1." + last_bn}) == blocks - 2);
      // A block with a downsample branch whose bn is tapped: the add goes into the downsample conv instead.
      BOOST_TEST(fused_adds({"layer3.0." + last_bn}) == blocks);
      BOOST_TEST(fused_adds({"layer3.0." + last_bn, "layer3.0.downsample.1"}) == blocks - 1);
      BOOST_TEST(fused_adds({"layer1.0.relu", "layer2.0.downsample.1", "layer3"}) == blocks);
    }
  }
  const std::string dir = ref_dir();
  const NpzMap z = read_npz(dir + "/resnet50_ref.npz");
  const Network<Cpu, float> net(inflate_state_dict(read_state_dict(dir + "/resnet50_2d.npz"), InflateOptions{}));
  const reference::Array5 input = ref_array(z.at("input"));
  const auto x = reference::to_channels_last<float>(input);
  const std::vector<std::string> taps{"layer1.0.bn3", "layer1.1.relu", "layer2.0.downsample.1", "layer2.2.conv3",
                                      "layer3.1.bn3", "layer4"};
  Recorder<Cpu, float> rec(taps);
  net.forward(TensorView<const float>(x.data(), input.dims()), rec);
  for (const auto& name : taps) {
    BOOST_TEST_CONTEXT("resnet50 partly fused, module " << name) {
      BOOST_TEST_REQUIRE(rec.has(name));
      const double err = relative_error(rec.at(name).data, reference::to_channels_last<double>(ref_array(z.at("out/" + name))));
      BOOST_TEST(err <= kTolerance);
    }
  }
}

// Every architecture the four above leave out (test_arch_torch_deep, on tests/torch/arch_reference.py --deep).
// Together with the four above, that is each architecture of the registry.
BOOST_AUTO_TEST_CASE(deep_architectures_match_torch) {
  const auto stamp = read_json(deep_dir() + "/arch_reference.json");
  std::set<std::string> numeric;
  for (const auto& st : {read_json(ref_dir() + "/arch_reference.json"), stamp})
    for (const auto& c : st["numeric"]) numeric.insert(c["arch"].get<std::string>());
  for (const auto& family : arch_families())
    for (const auto& arch : family.archs) BOOST_TEST(numeric.count(arch) == 1u, arch << " has no numeric torch test");
  for (const auto& c : stamp["numeric"]) {
    const auto arch = c["arch"].get<std::string>();
    BOOST_TEST_CONTEXT(arch) { check_against_torch(arch, deep_dir()); }
  }
}

BOOST_AUTO_TEST_CASE(paper_aliases_name_the_relu_after_the_conv) {
  const Graph g = build_graph("vgg19");
  BOOST_TEST(resolve_layer(g, "conv5_4") == "features.35");   // features.34 is the conv, 35 its ReLU
  BOOST_TEST(resolve_layer(g, "block2_conv2") == "features.8");
  BOOST_TEST(resolve_layer(g, "34") == "features.34");
  const Graph bn = build_graph("vgg19_bn");
  BOOST_TEST(resolve_layer(bn, "conv5_4") == "features.51");  // conv 49, bn 50, relu 51
  const Graph r = build_graph("resnet50");
  BOOST_TEST(resolve_layer(r, "layer3.5.conv2") == "layer3.5.conv2");
  BOOST_TEST(resolve_layer(r, "conv[-1]") == "layer4.2.conv3");
  BOOST_CHECK_THROW(resolve_layer(r, "layer5"), Error);
  // convB_last and the paper's preset at the same depth in every VGG (VGG-19: conv2_2, conv4_2, conv5_4).
  BOOST_TEST(resolve_layer(g, "conv5_last") == resolve_layer(g, "conv5_4"));
  BOOST_TEST(resolve_layer(g, "conv2_last") == resolve_layer(g, "conv2_2"));
  for (const auto& [arch, shallow, deep] : {std::tuple{"vgg11", "conv2_1", "conv5_2"}, {"vgg13", "conv2_2", "conv5_2"},
                                            {"vgg16_bn", "conv2_2", "conv5_3"}, {"vgg19", "conv2_2", "conv5_4"}}) {
    const Graph v = build_graph(arch);
    std::vector<std::string> preset;
    for (const auto& sel : layer_preset(arch, "paper-vgg")) preset.push_back(resolve_layer(v, sel));
    const std::vector<std::string> want{resolve_layer(v, shallow), resolve_layer(v, "conv4_2"), resolve_layer(v, deep)};
    BOOST_TEST(preset == want, arch);
  }
}
