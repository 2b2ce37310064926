// The whole DenseNet121-3D against PyTorch 1.13 on the same weights and inputs: every named
// module's output within 1e-4 relative (max abs error / max abs value) in float.
#define BOOST_TEST_MODULE densenet_torch
#include <boost/test/unit_test.hpp>

#include "support/paths.hpp"
#include "support/compare.hpp"
#include "support/torch_refs.hpp"
#include "volfeat/backend/cpu.hpp"
#include "volfeat/nn/network.hpp"
#include "volfeat/weights/load.hpp"

using namespace volfeat;
using namespace volfeat::test;

namespace {

constexpr double kTolerance = 1e-4;

struct TorchRefs {
  TorchRefs() { require_torch_refs(); }
};
BOOST_TEST_GLOBAL_FIXTURE(TorchRefs);

const StateDict& weights_2d() {
  static const StateDict sd = read_state_dict(torch_ref_dir() + "/dn121_2d.npz");
  return sd;
}

// Runs our network on the reference's input and compares every module torch recorded.
void check_against_torch(const std::string& file) {
  const NpzMap z = read_npz(torch_ref_dir() + "/" + file);
  const auto meta = ref_meta(z);
  const auto& args = meta["args"];
  InflateOptions opt;
  opt.scheme = args["scheme"].get<std::string>();
  opt.axis = args["axis"].get<std::string>()[0];
  opt.stem = parse_stem_rule(args["stem"].get<std::string>());
  const Network<Cpu, float> net(inflate_state_dict(weights_2d(), opt));

  const reference::Array5 input = ref_array(z.at("input"));
  const auto x = reference::to_channels_last<float>(input);
  const int stop = args["stop_after"].is_null() ? -1 : net.node_of(args["stop_after"].get<std::string>());
  auto rec = Recorder<Cpu, float>::everything();
  net.forward(TensorView<const float>(x.data(), input.dims()), rec, stop);

  const auto [compared, worst, worst_name] = compare_with_torch(z, rec, file, kTolerance);
  // Every module up to the stop was produced and compared: none silently missing from either side
  // (torch's reference records the children of `features`, not `features` itself).
  size_t expected = 0, taps = 0;
  for (const ModuleInfo& m : net.modules())
    if (stop < 0 || m.node <= stop) ++taps, expected += m.name != "features";
  BOOST_TEST(compared == expected);
  BOOST_TEST(rec.taps().size() == taps);
  BOOST_TEST_MESSAGE(file << ": " << compared << " modules match torch; worst relative error " << worst << " at "
                          << worst_name);
}

}  // namespace

BOOST_AUTO_TEST_CASE(i3d_mean_cube_matches_torch) { check_against_torch("ref_i3d_32.npz"); }
BOOST_AUTO_TEST_CASE(centre_odd_shape_matches_torch) { check_against_torch("ref_centre_odd.npz"); }
BOOST_AUTO_TEST_CASE(axis_h_stem_mean_matches_torch) { check_against_torch("ref_i3d_axisH_mean.npz"); }
BOOST_AUTO_TEST_CASE(thin_volume_stops_early_and_matches_torch) { check_against_torch("ref_thin.npz"); }
// ACS against ACSConv's own formulation (thin kernels, per-axis padding): tests/torch/acs_reference.py
BOOST_AUTO_TEST_CASE(acs_matches_acsconv_thin_kernels) { check_against_torch("ref_acs_odd.npz"); }

BOOST_AUTO_TEST_CASE(thin_volume_cannot_reach_the_end) {
  const Network<Cpu, float> net(inflate_state_dict(weights_2d(), {}));
  std::vector<float> x(19 * 32 * 27, 0.5f);
  try {
    net.forward(TensorView<const float>(x.data(), Dims{1, 19, 32, 27, 1}));
    BOOST_FAIL("a 19-slice volume went through all of DenseNet121");
  } catch (const Error& e) {
    const std::string msg = e.what();
    BOOST_TEST_MESSAGE(msg);
    BOOST_TEST(msg.find("features.norm5") != std::string::npos);
    BOOST_TEST(msg.find("D>=29") != std::string::npos);
  }
  // conv0 (7, s2, p3) then pool0 (3, s2, p1) then transition1's pool (2, s2): 5 -> 3 -> 2 -> 1.
  const int block2 = net.node_of("features.denseblock2");
  BOOST_TEST(net.min_input_size(block2)[0] == 5);
  BOOST_TEST(net.graph().infer_dims(Dims{1, 4, 5, 5, 1})[size_t(block2)].d == 0);
  BOOST_TEST(net.graph().infer_dims(Dims{1, 5, 5, 5, 1})[size_t(block2)].d == 1);
}

// i3d-mean on a volume constant along D gives torchvision's 2D activations on every slice whose
// receptive field along D never touches padding.
BOOST_AUTO_TEST_CASE(i3d_mean_on_constant_volume_reproduces_2d_network) {
  const NpzMap z = read_npz(torch_ref_dir() + "/ref_2d_invariance.npz");
  const Network<Cpu, float> net(inflate_state_dict(weights_2d(), {}));
  const reference::Array5 gray = ref_array(z.at("input"));  // (1, 1, 1, H, W)
  const Index depth = 64;
  std::vector<float> vol;
  for (Index d = 0; d < depth; ++d)
    for (double v : gray.v) vol.push_back(float(v));
  auto rec = Recorder<Cpu, float>::everything();
  const int stop = net.node_of("features.transition2");
  net.forward(TensorView<const float>(vol.data(), Dims{1, depth, gray.h, gray.w, 1}), rec, stop);

  // The interval of D slices untouched by padding, carried through each module's window along D.
  Index lo = 0, hi = depth - 1;
  auto through = [&](Index k, Index s, Index p) {
    lo = (lo + p + s - 1) / s;
    hi = (hi + p - (k - 1)) >= 0 ? (hi + p - (k - 1)) / s : -1;
  };
  size_t compared = 0;
  std::string last;
  for (const ModuleInfo& m : net.modules()) {
    if (m.node > stop) break;
    const Node& node = net.graph().node(m.node);
    const bool windowed = node.kind == OpKind::kConv || node.kind == OpKind::kMaxPool || node.kind == OpKind::kAvgPool;
    if (windowed && m.kind != ModuleKind::kContainer)
      through(node.window.kernel[0], node.window.stride[0], node.window.padding[0]);
    if (lo > hi) break;
    const reference::Array5 want = ref_array(z.at("out/" + m.name));  // (1, C, 1, h, w)
    const auto& tap = rec.at(m.name);
    BOOST_TEST_CONTEXT("module " << m.name << " slices " << lo << ".." << hi) {
      const auto want_cl = reference::to_channels_last<double>(want);
      for (Index d = lo; d <= hi; ++d) {
        const size_t plane = size_t(tap.dims.h * tap.dims.w * tap.dims.c);
        std::vector<float> slice(tap.data.begin() + d * plane, tap.data.begin() + (d + 1) * plane);
        BOOST_TEST(relative_error(slice, want_cl) <= kTolerance);
      }
    }
    ++compared;
    last = m.name;
  }
  BOOST_TEST_MESSAGE("constant-along-D invariance checked on " << compared << " modules, through " << last);
  BOOST_TEST(compared >= 50);  // the stem and all of denseblock1 at least
}

// Converting to a 3D file and loading it gives bit-identical outputs to inflating on load.
BOOST_AUTO_TEST_CASE(convert_then_load_is_bit_identical_to_inflate_on_load) {
  const std::string src = torch_ref_dir() + "/dn121_2d.npz";
  const std::string out = volfeat::test::test_data_dir() + "/dn121_3d_centre_W.npz";
  InflateOptions opt;
  opt.scheme = "centre";
  opt.axis = 'W';
  opt.stem = StemRule::kMean;
  write_state_dict(out, inflate_with_meta(read_state_dict(src), opt, sha256_file(src)));
  const StateDict converted = load_weights(out, InflateOptions{});  // options ignored: already 3D
  const auto meta = state_dict_meta(converted);
  BOOST_TEST(meta["scheme"] == "centre");
  BOOST_TEST(meta["axis"] == "W");
  BOOST_TEST(meta["stem"] == "mean");
  BOOST_TEST(meta["source_sha256"] == sha256_file(src));
  BOOST_TEST(meta["weights_kind"] == "seeded-init");

  const Network<Cpu, float> a(load_weights(src, opt)), b(converted);
  const auto x = random_values(33 * 31 * 35, 9);
  const std::vector<float> xf(x.begin(), x.end());
  auto ra = Recorder<Cpu, float>({"features.norm5", "features.denseblock2"});
  auto rb = Recorder<Cpu, float>({"features.norm5", "features.denseblock2"});
  a.forward(TensorView<const float>(xf.data(), Dims{1, 33, 31, 35, 1}), ra);
  b.forward(TensorView<const float>(xf.data(), Dims{1, 33, 31, 35, 1}), rb);
  for (const char* name : {"features.norm5", "features.denseblock2"}) {
    BOOST_TEST(ra.at(name).data == rb.at(name).data, name << " differs between converted and inflated-on-load");
  }
}
