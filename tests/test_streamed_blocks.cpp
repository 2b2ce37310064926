// VGG's blocks streamed through rings of planes (ConvPairMaxPool and SpatialConvPair,
// backend/cpu/fused.hpp): each op against the composition of its single ops over a shape list (depth odd and even, batch 2, a pool
// window that starts on odd planes, channel slices, BN or bare ReLU epilogues, Winograd plane pairs
// or F(4x4x4)'s groups of four in either conv); whole VGG networks fused against unfused; and what it buys, the memory estimate of
// VGG-19 at a scanner's 216x512x512. Also the ring's groups from an offset (DenseLayerConvs' conv1).
#define BOOST_TEST_MODULE streamed_blocks
#include <array>
#include <boost/mpl/list.hpp>

#include "support/cpu_isa_guard.hpp"
#include "support/primitive_checks.hpp"
#include "volfeat/backend/cpu.hpp"
#include "volfeat/nn/memory_estimate.hpp"
#include "volfeat/nn/network.hpp"
#include "volfeat/nn/taps.hpp"
#include "volfeat/ops/fused.hpp"
#include "volfeat/weights/load.hpp"

using namespace volfeat;
using namespace volfeat::test;

using Scalars = boost::mpl::list<float, double>;

namespace {

struct Case {
  Dims in;
  Index mid, out;
  WindowGeometry pool;
  bool bn;              // BN+ReLU epilogues (VGG-bn), else a bare ReLU (VGG)
  Index step1, step2;   // conv1 / conv2: 1 direct, 2 Winograd F(2x4x4) (plane pairs), 4 F(4x4x4) (float only)
  Index extra_channels; // the output is a channel slice of a buffer this much wider
};

const std::vector<Case>& cases() {
  static const std::vector<Case> c{
      {{1, 7, 9, 8, 3}, 8, 12, WindowGeometry::cube(2, 2, 0), false, 1, 1, 0},   // VGG's, odd depth
      {{2, 6, 5, 7, 16}, 16, 16, WindowGeometry::cube(3, 2, 1), true, 1, 1, 3},  // batch 2, odd starts
      {{1, 9, 6, 6, 16}, 16, 24, WindowGeometry::cube(2, 2, 0), true, 2, 1, 0},   // pairs in conv1
      {{1, 8, 6, 5, 16}, 24, 16, WindowGeometry::cube(2, 2, 0), false, 1, 2, 2},  // pairs in conv2
      {{1, 11, 5, 6, 16}, 16, 16, WindowGeometry::cube(3, 2, 1), true, 2, 2, 0},   // both, odd starts
      {{2, 5, 4, 4, 16}, 16, 16, WindowGeometry::cube(2, 2, 0), false, 2, 2, 0},   // both, batch 2
      {{1, 2, 5, 5, 4}, 8, 8, WindowGeometry::cube(2, 2, 0), true, 1, 1, 0},     // two planes
      {{1, 11, 5, 6, 16}, 16, 16, WindowGeometry::cube(3, 2, 1), true, 4, 4, 0},         // fours in both, odd starts
      {{1, 9, 6, 6, 16}, 16, 24, WindowGeometry::cube(2, 2, 0), true, 4, 2, 1},          // fours, then pairs
      {{2, 7, 4, 5, 16}, 16, 16, WindowGeometry::cube(3, 2, 1), false, 2, 4, 0},         // pairs, then fours, batch 2
      {{1, 3, 5, 4, 16}, 16, 16, WindowGeometry::cube(2, 2, 0), true, 1, 4, 2},          // one group, cut short
  };
  return c;
}

// Winograd with the tile whose plane step is `step` (1: none).
template <class T>
void attach_winograd(Conv3d<Cpu, T>& conv, const ConvSpec& spec, const std::vector<double>& w, Index step) {
  if constexpr (std::is_same_v<T, float>) {
    if (step == 1) return;
    const auto tile = step == 4 ? cpu::winograd::FloatTile::kF4x4x4 : cpu::winograd::FloatTile::kF2x4x4;
    conv.set_winograd(std::make_shared<const cpu::Winograd3d<T>>(spec, w, std::vector<double>{}, Precision::kFloat32,
                                                                 DepthFactoring::kAuto, tile));
  }
}

// A case's two 3x3x3 convs (Winograd attached as the case says), their epilogues and input, from seeds.
template <class T>
struct ConvPairSetup {
  ConvPairSetup(const Case& c, uint64_t seed)
      : s1{c.in.c, c.mid, WindowGeometry::cube(3, 1, 1)}, s2{c.mid, c.out, WindowGeometry::cube(3, 1, 1)},
        w1(random_values(size_t(c.mid * c.in.c * 27), seed)), w2(random_values(size_t(c.out * c.mid * 27), seed + 1)),
        conv1(s1, w1), conv2(s2, w2), bn1(random_bn(c.mid, seed + 2)), bn2(random_bn(c.out, seed + 3)),
        post1{c.bn ? &bn1 : nullptr, true}, post2{c.bn ? &bn2 : nullptr, true},
        in(device<Cpu, T>(random_array(c.in, seed + 4))) {
    attach_winograd(conv1, s1, w1, c.step1);
    attach_winograd(conv2, s2, w2, c.step2);
  }
  ConvPairSetup(const ConvPairSetup&) = delete;  // post1/post2 point at bn1/bn2
  ConvSpec s1, s2;
  std::vector<double> w1, w2;
  Conv3d<Cpu, T> conv1, conv2;
  BatchNorm3d<Cpu, T> bn1, bn2;
  Activation<Cpu, T> post1, post2;
  Tensor<Cpu, T> in;
};

}  // namespace

BOOST_AUTO_TEST_CASE_TEMPLATE(conv_pairs_match_composition, T, Scalars) {
  // Per case, the composition (both activations whole) against ConvPairMaxPool (both convs streamed, then
  // the pool) and SpatialConvPair (conv1 streamed, conv2's output whole), each written into a channel
  // slice of a wider buffer.
  int ran = 0;
  for (const Case& c : cases()) {
    if (!std::is_same_v<T, float> && (c.step1 > 1 || c.step2 > 1)) continue;  // double keeps the direct conv
    BOOST_TEST_CONTEXT("conv pair on " << to_string(c.in) << " -> " << c.mid << " -> " << c.out << ", winograd "
                                       << " plane steps " << c.step1 << "/" << c.step2) {
      const ConvPairSetup<T> p(c, 71);
      BOOST_TEST(p.conv1.plane_step() == c.step1);
      BOOST_TEST(p.conv2.plane_step() == c.step2);
      const MaxPool3d<Cpu, T> pool(c.pool);
      Tensor<Cpu, T> mid(p.conv1.output_dims(c.in));
      p.conv1.forward(p.in.view(), mid.view(), {}, p.post1);
      Tensor<Cpu, T> full(p.conv2.output_dims(mid.dims()));
      p.conv2.forward(mid.view(), full.view(), {}, p.post2);
      Tensor<Cpu, T> pooled(pool.output_dims(full.dims()));
      pool.forward(full.view(), pooled.view());
      // `run` writes the op's output into channels [0, c.out) of a zeroed buffer c.extra_channels wider.
      auto check = [&](const char* op, const Tensor<Cpu, T>& want, auto&& run) {
        Dims od = want.dims();
        od.c += c.extra_channels;
        Tensor<Cpu, T> got(od);
        got.set_zero();
        run(got.view().channels(0, c.out));
        const auto got_slice = host<Cpu, T>(got.view().channels(0, c.out));
        const auto want_all = host<Cpu, T>(want.view());
        double scale = 0;
        for (T v : want_all) scale = std::max(scale, double(std::abs(v)));
        BOOST_TEST(scale > 0, op << ": the output is all zeros, the comparison would prove nothing");
        // Same kernels per plane as per tensor: equal up to the generic kernels' row blocking (1 ulp).
        BOOST_TEST(relative_error(got_slice, std::vector<double>(want_all.begin(), want_all.end())) <= tolerance<T>(), op);
        if (c.extra_channels > 0) {
          const auto rest = host<Cpu, T>(got.view().channels(c.out, c.extra_channels));
          BOOST_TEST((rest == std::vector<T>(rest.size(), T(0))), op << ": channels outside the slice were written");
        }
      };
      check("ConvPairMaxPool", pooled, [&](TensorView<T> out) {
        ConvPairMaxPool<Cpu, T>::forward(p.conv1, p.post1, p.conv2, p.post2, pool, p.in.view(), out);
      });
      check("SpatialConvPair", full, [&](TensorView<T> out) {
        SpatialConvPair<Cpu, T>::forward(p.conv1, p.post1, p.conv2, p.post2, p.in.view(), out);
      });
      ++ran;
    }
  }
  BOOST_TEST(ran >= 3);
}

BOOST_AUTO_TEST_CASE(plane_ring_groups_start_at_their_offset) {
  // DenseLayerConvs' ring for an F(4x4x4) conv2 with padding 1: conv1 fills it in fours from plane 3
  // (offset 3 = -1 mod 4; the first group cut at plane 0), 8 slots. Each output group of four planes
  // z0 reads planes z0 - 1 .. z0 + 4, and takes one producer call; every plane reads back what its
  // call wrote.
  const Dims d{2, 10, 2, 3, 2};
  cpu::PlaneRing<float> ring(d, 8, 4, nullptr, 3);
  std::vector<std::array<Index, 3>> calls;  // n, z0, count
  auto produce = [&](Index n, Index z0, Index count, TensorView<float> planes) {
    calls.push_back({n, z0, count});
    const Index plane = d.h * d.w * d.c;
    for (Index k = 0; k < count; ++k)
      for (Index i = 0; i < plane; ++i) planes.data[k * plane + i] = float(n * 1000 + (z0 + k) * 10) + float(i % 7);
  };
  for (Index n = 0; n < d.n; ++n)
    for (Index z0 = 0; z0 < d.d; z0 += 4)
      for (Index z = std::max<Index>(z0 - 1, 0); z <= std::min<Index>(z0 + 4, d.d - 1); ++z) {
        const float* p = ring.ensure(n, z, produce);
        BOOST_TEST(p == ring.row(n, z, 0));
        for (Index y = 0; y < d.h; ++y)
          for (Index i = 0; i < d.w * d.c; ++i)
            BOOST_TEST(ring.row(n, z, y)[i] == float(n * 1000 + z * 10) + float((y * d.w * d.c + i) % 7));
      }
  const std::vector<std::array<Index, 3>> want{{0, 0, 3}, {0, 3, 4}, {0, 7, 3}, {1, 0, 3}, {1, 3, 4}, {1, 7, 3}};
  BOOST_TEST((calls == want), calls.size() << " producer calls");
  BOOST_CHECK_THROW(cpu::PlaneRing<float>(d, 8, 4, nullptr, 4), Error);  // an offset of a whole group
  BOOST_CHECK_THROW(cpu::PlaneRing<float>(d, 6, 4, nullptr, 3), Error);  // slots not whole groups
}

BOOST_AUTO_TEST_CASE(vgg19_paper_taps_fused_equals_unfused) {
  // paper-vgg's taps (conv2_2, conv4_2, conv5_4: ReLUs features.8, .22, .35) keep conv2_2, conv4_2 and
  // conv5_4 whole; the convs before each run as spatial pairs (the first streamed), the rest of the
  // blocks as conv pair + pool. Every tap equals the unfused network's.
  const Network<Cpu, float> net(seeded_random_weights("vgg19", 3));
  const Dims xd{1, 16, 16, 16, 1};  // block 5 at 1^3: features.35 comes before the fifth pool
  const std::vector<std::string> taps{"features.8", "features.22", "features.35"};
  const Graph& g = net.graph();
  std::vector<bool> want(g.nodes().size(), false);
  for (const auto& t : taps) want[size_t(g.find_module(t))] = true;
  const int stop = g.find_module("features.35");
  int spatial = 0, pooled = 0;
  for (const Step& s : make_plan(g, xd, want, stop, net.plan_traits()).steps) {
    spatial += s.kind == StepKind::kSpatialConvPair;
    pooled += s.kind == StepKind::kConvPairMaxPool;
  }
  // block 2: conv2_1 -> conv2_2; block 3: conv3_1 -> conv3_2 (then conv3_3 -> conv3_4 -> pool);
  // block 4: conv4_1 -> conv4_2 (then conv4_3 -> conv4_4 -> pool); block 5: conv5_1 -> conv5_2, conv5_3 -> conv5_4.
  BOOST_TEST(spatial == 5);
  BOOST_TEST(pooled == 3);  // block 1, and blocks 3 and 4's last two convs
  const auto xv = random_values(size_t(xd.voxels()), 83);
  const std::vector<float> x(xv.begin(), xv.end());
  const TensorView<const float> in(x.data(), xd);
  auto every = Recorder<Cpu, float>::everything();
  net.forward(in, every, stop);
  Recorder<Cpu, float> fused(taps);
  net.forward(in, fused, stop);
  for (const auto& t : taps) {
    const double e = relative_error(fused.at(t).data, every.at(t).data);
    double scale = 0;
    for (float v : every.at(t).data) scale = std::max(scale, double(std::abs(v)));
    BOOST_TEST(scale > 0, t << ": all zeros, the comparison would prove nothing");
    BOOST_TEST(e <= 1e-5, t << ": " << e);
    BOOST_TEST_MESSAGE("vgg19 " << t << ": fused vs unfused relative error " << e);
  }
}

BOOST_AUTO_TEST_CASE(vgg_fused_equals_unfused) {
  // Only the last module asked for: every block's last two convs and pool run as ConvPairMaxPool
  // (Winograd by its rule inside); every module asked for: nothing fused. VGG-11 (blocks of one and
  // of two convs) and VGG-13-bn (BN epilogues), at the smallest grid five pools allow.
  for (const auto& [arch, blocks] : {std::pair<std::string, int>{"vgg11", 3}, {"vgg13_bn", 5}}) {
    const Network<Cpu, float> net(seeded_random_weights(arch, 3));
    const Dims xd{1, 32, 32, 32, 1};
    {  // the rewrite applies to every block that ends in two convs (VGG-11's first two have one)
      const Graph& g = net.graph();
      std::vector<bool> want(g.nodes().size(), false);
      want[size_t(g.last_node())] = true;
      int pairs = 0;
      for (const Step& s : make_plan(g, xd, want, g.last_node(), plan_traits<Cpu, float>()).steps)
        pairs += s.kind == StepKind::kConvPairMaxPool;
      BOOST_TEST(pairs == blocks, arch);
    }
    const auto xv = random_values(size_t(xd.voxels()), 81);
    const std::vector<float> x(xv.begin(), xv.end());
    const TensorView<const float> in(x.data(), xd);
    auto every = Recorder<Cpu, float>::everything();
    net.forward(in, every);
    const std::string last = net.modules().back().name;
    Recorder<Cpu, float> fused({last});
    net.forward(in, fused);
    const double e = relative_error(fused.at(last).data, every.at(last).data);
    double scale = 0;
    for (float v : every.at(last).data) scale = std::max(scale, double(std::abs(v)));
    BOOST_TEST(scale > 0, arch << ": the output is all zeros, the comparison would prove nothing");
    BOOST_TEST(e <= 1e-5, arch << " " << last << ": " << e);
    BOOST_TEST_MESSAGE(arch << ": fused vs unfused " << last << " relative error " << e);
  }
}

BOOST_AUTO_TEST_CASE(vgg19_at_scanner_size_fits_in_4_gb) {
  // Without the rewrite block 1 holds conv1_1's and conv1_2's outputs, 2 x 14.5 GB at 216x512x512.
  const Graph g = build_graph("vgg19", 1);
  const auto traits = plan_traits<Cpu, float>();
  const ForwardMemory m = simulate_forward(g, {216, 512, 512}, g.last_node(), {}, 4, 2, traits);
  BOOST_TEST_MESSAGE("vgg19 at 216x512x512, no taps: estimated peak " << m.peak_bytes / 1e9 << " GB at " << m.peak_module);
  BOOST_TEST(m.peak_bytes <= 4e9);
  BOOST_TEST(m.peak_bytes >= 216.0 * 256 * 256 / 8 * 64 * 4);  // at least pool1's output (1.8 GB) is held
  // A tap on block 2's last ReLU (paper-vgg's conv2_2) keeps that 3.6 GB activation whole: the
  // estimate says so, and the guard refuses such a run where it does not fit. conv2_1 before it is
  // streamed (SpatialConvPair): without that, its 3.6 GB output would be held beside it.
  const ForwardMemory t = simulate_forward(g, {216, 512, 512}, g.last_node(), {"features.8"}, 4, 2, traits);
  BOOST_TEST_MESSAGE("  with a tap on features.8 (conv2_2's ReLU): " << t.peak_bytes / 1e9 << " GB at " << t.peak_module);
  const double pool1 = 108.0 * 256 * 256 * 64 * 4, block2 = 108.0 * 256 * 256 * 128 * 4;  // 1.8 and 3.6 GB
  BOOST_TEST(t.peak_bytes > m.peak_bytes);
  BOOST_TEST(t.peak_bytes >= pool1 + block2);        // conv2_2's input and its whole output
  BOOST_TEST(t.peak_bytes < pool1 + 1.5 * block2);   // but not conv2_1's whole output as well
}
