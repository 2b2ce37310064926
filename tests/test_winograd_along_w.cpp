// The Cpu conv with 1D Winograd along W (backend/cpu/winograd_along_w.hpp, DenseNet's stem) against the
// naive reference: its Toom-Cook matrices; every shape of the shared problem list it applies to (strides
// 1, 2 and 3 along W, kernels 1 to 7 wide, dilation along H, padding, a batch of 2) plus stem shapes
// (one and three channels, widths not a multiple of a tile or of a chunk, two output panels), plain and
// with the fused pre-activation, post-activation and channel slices; plane by plane with a shared ring
// of transposed planes (in order, and out of order so the ring refills), and through a row accessor; the
// rule that picks it; and DenseNet-121 with it against the same network with it off.
//
// Tolerance: max |got - want| / max |want| <= 1e-5, the direct float conv's bound (primitive_checks.hpp).
// F(4, 4)'s transforms scale by up to 8 (A^T) and 1/2^k (points 1/2), so the rounding is several times
// the direct conv's: bench/stem_winograd_error.py models the stem at 6e-8 to 1.3e-7 rms against 3.5e-8;
// the largest measured here is printed by the test (about 1e-6).
#define BOOST_TEST_MODULE winograd_along_w
#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "support/primitive_checks.hpp"
#include "support/scoped_env.hpp"
#include "volfeat/backend/cpu.hpp"
#include "volfeat/nn/architectures.hpp"
#include "volfeat/nn/memory_estimate.hpp"
#include "volfeat/nn/network.hpp"
#include "volfeat/nn/taps.hpp"
#include "volfeat/weights/inflate.hpp"

using namespace volfeat;
using namespace volfeat::test;

namespace {

constexpr double kTolerance = 1e-5;

std::vector<ConvProblem> along_w_problems() {
  std::vector<ConvProblem> ps;
  for (const auto& p : conv_problems())
    if (cpu::WinogradAlongW::applicable({p.in.c, p.out_channels, p.geometry})) ps.push_back(p);
  const auto stem = WindowGeometry::cube(7, 2, 3);
  for (const ConvProblem& p : std::vector<ConvProblem>{
           {"stem_w_not_a_tile", {1, 9, 8, 22, 1}, 64, stem, true},
           {"stem_three_channels", {1, 8, 9, 19, 3}, 20, stem, false},
           {"stem_two_panels", {1, 6, 7, 16, 1}, 80, stem, true},
           {"stem_two_chunks", {1, 3, 4, 530, 1}, 16, stem, false},  // 133 tiles: chunks of 64
           {"stem_batch2", {2, 7, 6, 13, 1}, 8, stem, true},
           {"stride1_kernel4", {1, 5, 6, 11, 2}, 9, geom({3, 3, 4}, {1, 1, 1}, {1, 1, 2}), true},
           {"tiny_input_big_pad", {1, 2, 1, 2, 1}, 5, stem, false},
       })
    ps.push_back(p);
  return ps;
}

std::vector<float> as_float(const std::vector<double>& v) { return {v.begin(), v.end()}; }

double check_along_w(const ConvProblem& p) {
  double worst = 0;
  BOOST_TEST_CONTEXT("problem " << p.name) {
    const ConvSpec spec{p.in.c, p.out_channels, p.geometry};
    const ref::Array5 x = random_array(p.in, 1);
    const auto w = random_values(size_t(spec.weight_count()), 2);
    const auto b = p.bias ? random_values(size_t(p.out_channels), 3) : std::vector<double>{};
    const auto wf = as_float(w), bf = as_float(b);
    const Conv3d<Cpu, float> conv(
        spec, std::make_shared<const cpu::WinogradAlongW>(spec, wf.data(), wf.size(), bf.data(), bf.size()));
    BOOST_TEST_REQUIRE(conv.winograd_along_w() != nullptr);
    BOOST_TEST(conv.plane_step() == 1);
    BOOST_TEST((conv.precision() == Precision::kFloat32));
    auto in = device<Cpu, float>(x);
    const Dims od = conv.output_dims(p.in);
    Tensor<Cpu, float> out(od);
    conv.forward(in.view(), out.view());
    const ref::Array5 want = ref::conv3d(x, w, b, p.out_channels, p.geometry);
    const double e1 = relative_error(host<Cpu, float>(out.view()), ref::to_channels_last<double>(want));
    BOOST_TEST(e1 <= kTolerance);

    // Fused and strided: input = channels [2, 2+C) of a wider tensor, output = channels [3, 3+O).
    const BatchNormParams bn_in = random_bn(p.in.c, 4), bn_out = random_bn(p.out_channels, 5);
    const BatchNorm3d<Cpu, float> pre(bn_in), post(bn_out);
    const ref::Array5 filler = random_array({p.in.n, p.in.d, p.in.h, p.in.w, 2}, 6);
    const ref::Array5 tail = random_array({p.in.n, p.in.d, p.in.h, p.in.w, 3}, 7);
    auto wide = device<Cpu, float>(ref::concat_channels({filler, x, tail}));
    Dims wide_out = od;
    wide_out.c = p.out_channels + 4;
    const ref::Array5 sentinel = random_array(wide_out, 8);
    auto out2 = device<Cpu, float>(sentinel);
    conv.forward(wide.view().channels(2, p.in.c), out2.view().channels(3, p.out_channels), {&pre, true}, {&post, true});
    const ref::Array5 want2 = ref::relu(
        ref::batchnorm(ref::conv3d(ref::relu(ref::batchnorm(x, bn_in)), w, b, p.out_channels, p.geometry), bn_out));
    const auto got2 = host<Cpu, float>(out2.view());
    const auto want2_cl = ref::to_channels_last<double>(want2);
    std::vector<double> got_slice, kept, untouched;
    for (Index v = 0; v < od.voxels(); ++v) {
      for (Index c = 0; c < wide_out.c; ++c) {
        const double g = got2[size_t(v * wide_out.c + c)];
        if (c >= 3 && c < 3 + p.out_channels) got_slice.push_back(g);
        else untouched.push_back(g), kept.push_back(double(float(sentinel.at(v / (od.d * od.h * od.w), c,
                                                                                 v / (od.h * od.w) % od.d,
                                                                                 v / od.w % od.h, v % od.w))));
      }
    }
    const double e2 = relative_error(got_slice, want2_cl);
    BOOST_TEST(e2 <= kTolerance);
    BOOST_TEST((untouched == kept), "channels outside the output slice were written");

    // Plane by plane with one ring of transposed planes: in order (each input plane transposed once),
    // then backwards (every plane refilled), then through a row accessor (a dense layer's ring's interface).
    const auto whole = host<Cpu, float>(out.view());
    for (bool backwards : {false, true}) {
      Conv3d<Cpu, float>::PlaneState planes;
      Tensor<Cpu, float> by_plane(od);
      for (Index n = 0; n < od.n; ++n)
        for (Index k = 0; k < od.d; ++k) {
          const Index z = backwards ? od.d - 1 - k : k;
          conv.forward_plane(in.view(), n, z, TensorView<float>(by_plane.view().voxel(n, z, 0, 0), Dims{1, 1, od.h, od.w, od.c}),
                             {}, {}, &planes);
        }
      // The same arithmetic per output row whatever the order: bit-equal.
      BOOST_TEST(relative_error(host<Cpu, float>(by_plane.view()), whole) == 0.0, (backwards ? "backwards" : "in order"));
      // The ring is what the memory estimate counts for it (winograd_along_w_layout.hpp).
      const cpu::winograd_w::Layout l = cpu::winograd_w::layout(p.geometry, p.in.c, od.h, od.w);
      BOOST_TEST(planes.bytes() == size_t(l.ring_floats()) * sizeof(float));
      BOOST_TEST(l.slots == (p.geometry.kernel[0] - 1) * p.geometry.dilation[0] + 1);
    }
    BOOST_TEST(conv.winograd_along_w()->points() == cpu::winograd_w::points(p.geometry));
    // All of an item's planes in one call (forward_planes takes any count where the conv has no groups).
    Tensor<Cpu, float> at_once(od);
    for (Index n = 0; n < od.n; ++n)
      conv.forward_planes(in.view(), n, 0, od.d, TensorView<float>(at_once.view().voxel(n, 0, 0, 0), Dims{1, od.d, od.h, od.w, od.c}));
    BOOST_TEST(relative_error(host<Cpu, float>(at_once.view()), whole) == 0.0, "all planes at once");
    BOOST_CHECK_THROW(conv.forward_planes(in.view(), 0, 1, od.d, TensorView<float>(at_once.view().data, Dims{1, od.d, od.h, od.w, od.c})),
                      Error);  // past the last plane
    struct Rows {
      TensorView<const float> in;
      Dims dims;
      Index ld;
      const float* row(Index n, Index z, Index y) const { return in.voxel(n, z, y, 0); }
    };
    const Rows rows{in.view(), p.in, in.view().ld};
    Tensor<Cpu, float> by_rows(od);
    for (Index n = 0; n < od.n; ++n)
      for (Index z = 0; z < od.d; ++z)
        conv.forward_plane_rows(rows, n, z, TensorView<float>(by_rows.view().voxel(n, z, 0, 0), Dims{1, 1, od.h, od.w, od.c}));
    BOOST_TEST(relative_error(host<Cpu, float>(by_rows.view()), whole) == 0.0);
    worst = std::max(e1, e2);
    BOOST_TEST_MESSAGE(p.name << ": relative error " << e1 << " plain, " << e2 << " fused");
  }
  return worst;
}

}  // namespace

BOOST_AUTO_TEST_CASE(toom_cook_matrices_compute_the_correlation) {
  // y = A^T ((G g) . (B^T d)) against the direct correlation y[i] = sum_t d[i + t] g[t], F(4, r) for every
  // phase length the conv uses, and the points' count.
  for (int r = 1; r <= cpu::WinogradAlongW::kMaxPhaseTaps; ++r) {
    const auto t = cpu::winograd_w::toom_cook(4, r);
    BOOST_TEST(t.n == 4 + r - 1);
    const auto d = random_values(size_t(t.n), 10 + r), g = random_values(size_t(r), 20 + r);
    std::vector<double> u(size_t(t.n)), v(size_t(t.n));
    for (int p = 0; p < t.n; ++p) {
      for (int k = 0; k < r; ++k) u[size_t(p)] += t.g[size_t(p * r + k)] * g[size_t(k)];
      for (int i = 0; i < t.n; ++i) v[size_t(p)] += t.bt[size_t(p * t.n + i)] * d[size_t(i)];
    }
    for (int i = 0; i < 4; ++i) {
      double y = 0, want = 0;
      for (int p = 0; p < t.n; ++p) y += t.at[size_t(i * t.n + p)] * u[size_t(p)] * v[size_t(p)];
      for (int k = 0; k < r; ++k) want += d[size_t(i + k)] * g[size_t(k)];
      BOOST_TEST(std::abs(y - want) <= 1e-12, "F(4, " << r << ") output " << i);
    }
  }
  BOOST_CHECK_THROW(cpu::winograd_w::toom_cook(4, 6), Error);  // 9 points: more than it has
}

BOOST_AUTO_TEST_CASE(along_w_matches_reference) {
  double worst = 0;
  size_t n = 0;
  for (const auto& p : along_w_problems()) worst = std::max(worst, check_along_w(p)), ++n;
  BOOST_TEST(n >= 15u);  // the shared list's shapes with dilation 1 along W are still there
  BOOST_TEST_MESSAGE(n << " problems, worst relative error " << worst);
}

BOOST_AUTO_TEST_CASE(the_rule_picks_float32_stems_with_3d_weights) {
  const ConvSpec stem{1, 64, WindowGeometry::cube(7, 2, 3)};
  const auto wd = random_values(size_t(stem.weight_count()), 40);
  const std::vector<float> w(wd.begin(), wd.end());
  // The same 7x7 slice at every kd: what inflating a 2D stem with i3d-mean makes (depth-factored).
  std::vector<float> inflated(w.size());
  for (size_t i = 0; i < w.size(); ++i) inflated[i] = w[(i / 343) * 343 + i % 49] / 7.f;
  auto made = [&](const std::vector<float>& weights, WinogradMode mode, Precision precision = Precision::kFloat32) {
    return ConvAlgorithm<Cpu, float>::make(stem, weights, {}, Cpu{precision}, {}, mode)->winograd_along_w() != nullptr;
  };
  BOOST_TEST(made(w, WinogradMode::kAuto) == along_w_pays());  // AVX-512 only: AVX2's direct stem is faster
  BOOST_TEST(along_w_pays() == (cpu::cpu_isa() >= cpu::CpuIsa::kAvx512));
  BOOST_TEST(made(w, WinogradMode::kAll));
  BOOST_TEST(!made(w, WinogradMode::kOff));
  BOOST_TEST(!made(inflated, WinogradMode::kAuto));  // depth-factored: 49 taps direct are cheaper
  BOOST_TEST(made(inflated, WinogradMode::kAll));
  // bf16 keeps the bf16 direct stem where the CPU runs bf16, else it is a float32 network.
  BOOST_TEST(made(w, WinogradMode::kAuto, Precision::kBf16) == (!cpu::gemm::bf16_available() && along_w_pays()));
  // Wide input channels, narrow kernels and dilation along W stay direct.
  BOOST_TEST(!stem_like({16, 64, WindowGeometry::cube(7, 2, 3)}));
  BOOST_TEST(!stem_like({1, 64, WindowGeometry::cube(3, 2, 1)}));
  BOOST_TEST(!stem_like({1, 64, WindowGeometry::cube(7, 1, 3, 2)}));
  BOOST_TEST(!cpu::WinogradAlongW::applicable({1, 8, WindowGeometry::cube(9, 1, 4)}));  // 9 taps a phase
  // A Winograd along W of another layer is refused.
  const auto other = std::make_shared<const cpu::WinogradAlongW>(ConvSpec{1, 64, WindowGeometry::cube(7, 2, 2)},
                                                                 w.data(), w.size(), nullptr, 0);
  using Conv = Conv3d<Cpu, float>;
  BOOST_CHECK_THROW(Conv(stem, other), Error);
}

BOOST_AUTO_TEST_CASE(the_memory_estimate_counts_its_ring_and_weights) {
  // DenseNet-121's stem along W at 216x512x512: its ring of transformed planes (7 of 13 points x 52 blocks x
  // 64 tiles x 16 floats, 19.4 MB) is held while the stem's step runs, which is the peak of a pass stopped
  // at pool0; its transformed weights are 13 x 7 x 7 values per channel pair instead of 343. (Where the
  // rule keeps the stem direct, AVX2 and generic kernels, `all` puts it along W.)
  StateDict sd = random_state_dict(build_graph("densenet121", 1), 3);
  const Network<Cpu, float> net = [&] {
    const ScopedEnv env("VOLFEAT_WINOGRAD", along_w_pays() ? "1" : "all");
    return Network<Cpu, float>(sd, kReleaseWeights);
  }();
  const Graph& g = net.graph();
  const int stop = g.node_of("features.pool0");
  PlanTraits with = net.plan_traits();
  const int conv0 = g.node_of("features.conv0");
  BOOST_TEST_REQUIRE(with.runs_along_w(conv0));
  PlanTraits without = with;
  without.along_w.clear();
  const std::array<Index, 3> grid{216, 512, 512};
  const double a = simulate_forward(g, grid, stop, {}, 4, 2, with).peak_bytes;
  const double b = simulate_forward(g, grid, stop, {}, 4, 2, without).peak_bytes;
  const WindowGeometry& w = g.node(conv0).window;
  const double ring = 4.0 * double(cpu::winograd_w::layout(w, 1, 256, 256).ring_floats());
  BOOST_TEST(ring > 19e6);
  BOOST_TEST(ring < 20e6);
  BOOST_TEST(a - b >= ring, "estimate " << a / 1e6 << " MB with the ring, " << b / 1e6 << " MB without");
  BOOST_TEST(a - b < ring + 8e6);  // plus the two threads' scratch (P, M) against the direct conv's rows
  const double direct = 343.0 * 64 * 4;
  BOOST_TEST(network_weight_bytes(g, with, 4, stop) - network_weight_bytes(g, without, 4, stop) ==
             13.0 * 49 * 64 * 4 - direct);
}

BOOST_AUTO_TEST_CASE(densenet_with_it_matches_the_direct_stem) {
  // DenseNet-121 (random 3D weights, so the stem is not depth-factored) with VOLFEAT_WINOGRAD unset (the
  // stem along W, fused with its BN, ReLU and max pool plane by plane; `all` where the rule keeps the stem
  // direct, AVX2 and generic kernels) against VOLFEAT_WINOGRAD=0 (every conv direct), at the torch tests'
  // 1e-4 per tap. pool0 is the stem's alone: it differs (the stem ran along W) and within that bound.
  auto build = [](const char* mode) {
    StateDict sd = random_state_dict(build_graph("densenet121", 1), 7);
    const ScopedEnv env("VOLFEAT_WINOGRAD", mode);
    return Network<Cpu, float>(sd, kReleaseWeights);
  };
  const Network<Cpu, float> along_w = build(along_w_pays() ? nullptr : "all"), direct = build("0");
  const Dims xd{1, 32, 33, 40, 1};
  const auto xv = random_values(size_t(xd.voxels()), 9);
  const std::vector<float> x(xv.begin(), xv.end());
  const TensorView<const float> in(x.data(), xd);
  const std::vector<std::string> taps{"features.pool0", "features.denseblock1", "features.transition1"};
  Recorder<Cpu, float> a(taps), b(taps);
  along_w.forward(in, a);
  direct.forward(in, b);
  for (const auto& t : taps) {
    const double e = relative_error(a.at(t).data, b.at(t).data);
    BOOST_TEST(e <= 1e-4, t);
    if (t == "features.pool0") BOOST_TEST(e > 0.0, "the stem did not run along W");
    BOOST_TEST_MESSAGE(t << ": relative difference " << e);
  }
}
