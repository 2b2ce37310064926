// The bf16 path (Precision::kBf16): the conversion against vcvtneps2bf16, the direct conv over the shared
// problem list against the naive reference on bf16-rounded operands (so the only difference left is
// float accumulation, held to float's tolerance), the bf16 Winograd conv against the float reference
// within its stated bound, the Winograd tile a network picks for bf16, and the convs that stay float32. A CPU without AVX512-BF16 skips the
// whole program, saying why.
#define BOOST_TEST_MODULE bf16
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <limits>

#include "support/bf16_cases.hpp"
#include "support/cpu_isa_guard.hpp"
#include "support/plane_state_checks.hpp"
#include "support/primitive_checks.hpp"
#include "support/small_networks.hpp"
#include "volfeat/backend/cpu.hpp"
#include "volfeat/nn/memory_estimate.hpp"
#include "volfeat/nn/network.hpp"
#include "volfeat/nn/taps.hpp"
#include "volfeat/ops/fused.hpp"
#include "volfeat/weights/load.hpp"

using namespace volfeat;
using namespace volfeat::test;

namespace {

struct Bf16Guard {
  Bf16Guard() {
    const std::string why = cpu::gemm::bf16_unavailable_reason();
    if (!why.empty()) {
      std::cout << "skipped: the bf16 kernels cannot run here: " << why << "\n";
      std::exit(77);
    }
    try {
      const std::string kernels = cpu::gemm::bf16_kernels_description();
      std::cout << "bf16 kernels: " << kernels << "\n";
    } catch (const Error& e) {  // VOLFEAT_BF16_KERNELS asks for what cannot run
      std::cout << "error: " << e.what() << "\n";
      std::exit(1);
    }
  }
};

// x as the bf16 kernels see it: float, then rounded to bf16.
double bf16_of(double x) { return cpu::bf16_to_float(cpu::round_to_bf16(float(x))); }

std::vector<double> bf16_of(std::vector<double> v) {
  for (double& x : v) x = bf16_of(x);
  return v;
}

ref::Array5 bf16_of(ref::Array5 a) {
  a.v = bf16_of(std::move(a.v));
  return a;
}

}  // namespace

BOOST_TEST_GLOBAL_FIXTURE(Bf16Guard);

BOOST_AUTO_TEST_CASE(round_to_bf16_is_the_instruction) {
  const std::vector<float> x = bf16_rounding_cases(4096, 91);
  for (int tail = 0; tail < 16; ++tail) {  // every length of the masked tail
    const Index n = Index(x.size()) - tail;
    std::vector<cpu::Bf16> got(x.size(), cpu::Bf16(0xdead));
    cpu::gemm::convert_row_bf16(x.data(), got.data(), n);
    for (Index i = 0; i < n; ++i)
      BOOST_TEST(got[size_t(i)] == cpu::round_to_bf16(x[size_t(i)]), "x = " << x[size_t(i)] << " at " << i);
    for (size_t i = size_t(n); i < x.size(); ++i) BOOST_TEST(got[i] == cpu::Bf16(0xdead), "written past n at " << i);
  }
  BOOST_TEST(cpu::round_to_bf16(1.00390625f) == cpu::round_to_bf16(1.f));
  BOOST_TEST(cpu::bf16_to_float(cpu::round_to_bf16(std::nextafter(1.00390625f, 2.f))) == 1.0078125f);
  BOOST_TEST(cpu::bf16_to_float(cpu::round_to_bf16(1.01171875f)) == 1.015625f);
  BOOST_TEST(cpu::bf16_to_float(cpu::round_to_bf16(3.3895314e38f)) == 3.3895314e38f);
  BOOST_TEST(std::isinf(cpu::bf16_to_float(cpu::round_to_bf16(std::numeric_limits<float>::max()))));
  BOOST_TEST(std::isnan(cpu::bf16_to_float(cpu::round_to_bf16(std::numeric_limits<float>::signaling_NaN()))));
  BOOST_TEST(cpu::bf16_to_float(cpu::round_to_bf16(std::numeric_limits<float>::denorm_min())) == 0.f);
}

// Every shape of the shared list, plain and with the fused pre/post BN+ReLU: bf16, equal to the reference
// on bf16-rounded input (after the pre-activation) and weights. An odd C_in (the stems, 3 or 5 channels)
// makes odd-long tap rows (kW * C_in values): those convs interleave their tap rows in pairs (k-pairs across
// two rows, a row in the padding as zeros: stem_7_s2_p3_odd's borders; pad_larger_than_needed's corner
// outputs, whose only live tap row is the odd last one) and pad the odd last tap row's unit of B to an even
// length (a single last k), so those shapes check both paths.
BOOST_AUTO_TEST_CASE(direct_conv_is_the_reference_on_bf16_operands) {
  int odd = 0;
  for (const ConvProblem& p : conv_problems()) {
    BOOST_TEST_CONTEXT("conv problem " << p.name) {
      const ref::Array5 x = random_array(p.in, 1);
      const auto w = random_values(size_t(p.out_channels * p.in.c * p.geometry.taps()), 2);
      const auto b = p.bias ? random_values(size_t(p.out_channels), 3) : std::vector<double>{};
      const ConvSpec spec{p.in.c, p.out_channels, p.geometry};
      const Conv3d<Cpu, float> conv(spec, w, b, Precision::kBf16);
      BOOST_TEST((conv.precision() == Precision::kBf16));
      odd += p.in.c % 2;
      const auto wq = bf16_of(w);

      auto in = device<Cpu, float>(x);
      Tensor<Cpu, float> out(conv.output_dims(p.in));
      conv.forward(in.view(), out.view());
      const ref::Array5 want = ref::conv3d(bf16_of(x), wq, b, p.out_channels, p.geometry);
      BOOST_TEST(relative_error(host<Cpu, float>(out.view()), ref::to_channels_last<double>(want)) <= 1e-5);

      // Fused: the pre-activation is computed in float and then rounded, so the reference rounds
      // float(relu(bn(x))); a value within a float ulp of a bf16 tie may round the other way, hence 1e-4.
      const BatchNormParams bn_in = random_bn(p.in.c, 4), bn_out = random_bn(p.out_channels, 5);
      const BatchNorm3d<Cpu, float> pre(bn_in), post(bn_out);
      Tensor<Cpu, float> out2(conv.output_dims(p.in));
      conv.forward(in.view(), out2.view(), {&pre, true}, {&post, true});
      ref::Array5 act = ref::relu(ref::batchnorm(x, bn_in));
      for (double& v : act.v) v = double(float(v));
      const ref::Array5 want2 =
          ref::relu(ref::batchnorm(ref::conv3d(bf16_of(act), wq, b, p.out_channels, p.geometry), bn_out));
      BOOST_TEST(relative_error(host<Cpu, float>(out2.view()), ref::to_channels_last<double>(want2)) <= 1e-4);
    }
  }
  BOOST_TEST(odd >= 5);  // the list's odd C_in shapes: stems, stride 2, anisotropic
}

// The same convs plane by plane with a pass's PlaneState (what ConvActMaxPool hands the stem): where stride_h
// is even, the tap-row pairs come from a ring of input planes made once a pass (paired_tap_rows.hpp) instead of
// per output row, and every output is the per-row path's, bit for bit, with and without the fused
// activations; the ring is the size the memory estimate counts.
BOOST_AUTO_TEST_CASE(paired_planes_are_the_per_row_copies) {
  int tabled = 0;
  for (const ConvProblem& p : conv_problems()) {
    const ConvSpec spec{p.in.c, p.out_channels, p.geometry};
    if (p.in.c % 2 == 0 || !cpu::paired_rows::applies(p.geometry)) continue;
    BOOST_TEST_CONTEXT("conv problem " << p.name) {
      const auto w = random_values(size_t(p.out_channels * p.in.c * p.geometry.taps()), 12);
      const Conv3d<Cpu, float> conv(spec, w, {}, Precision::kBf16);
      BOOST_TEST_REQUIRE(conv.paired_plane_slots() == cpu::paired_rows::ring_slots(p.geometry, false));
      const Dims od = conv.output_dims(p.in);
      const cpu::paired_rows::Layout l = cpu::paired_rows::layout(p.geometry, p.in.c, p.in.w, od.h, od.w, false);
      check_planes_match_forward(conv, random_array(p.in, 11), 13, size_t(l.ring_values()) * sizeof(cpu::Bf16));
      ++tabled;
    }
  }
  BOOST_TEST(tabled >= 2);  // the list's odd-channel stride-2 stems
}

BOOST_AUTO_TEST_CASE(the_memory_estimate_counts_the_paired_planes) {
  // A bf16 DenseNet-121's direct stem at 216x512x512 holds a ring of 7 input planes while the stem's step runs
  // (the peak of a pass stopped at pool0): per plane 258 interleaved pairs and 256 single rows of 528 values.
  // With the stem's weights depth-factored (every kd slice the same, as i3d-mean inflates them) it holds one
  // plane of depth-summed rows, the same size.
  StateDict sd = random_state_dict(build_graph("densenet121", 1), 3);
  for (bool factored : {false, true}) {
    BOOST_TEST_CONTEXT("depth-factored stem " << factored) {
      if (factored) {  // (64, 1, 7, 7, 7): slice kd = 0 of each unit into the others
        std::vector<float>& w = sd.params.at("features.conv0.weight").values;
        for (size_t u = 0; u < 64; ++u)
          for (size_t kd = 1; kd < 7; ++kd) std::copy_n(&w[u * 343], 49, &w[u * 343 + kd * 49]);
      }
      const Network<Cpu, float> net(sd, Cpu(Precision::kBf16));
      const Graph& g = net.graph();
      const int stop = g.node_of("features.pool0"), conv0 = g.node_of("features.conv0");
      PlanTraits with = net.plan_traits();
      const Index slots = factored ? 1 : 7;
      BOOST_TEST_REQUIRE(with.paired_plane_slots(conv0) == slots);
      PlanTraits without = with;
      without.paired_planes.clear();
      const std::array<Index, 3> grid{216, 512, 512};
      const double a = simulate_forward(g, grid, stop, {}, 4, 2, with).peak_bytes;
      const double b = simulate_forward(g, grid, stop, {}, 4, 2, without).peak_bytes;
      const double ring = 2.0 * double(slots) * (2 * 258 + 256) * 528;
      BOOST_TEST(2.0 * double(cpu::paired_rows::layout(g.node(conv0).window, 1, 512, 256, 256, factored).ring_values()) ==
                 ring);
      BOOST_TEST(a - b == ring, "estimate " << a / 1e6 << " MB with the ring, " << b / 1e6 << " MB without");
    }
  }
}

// Winograd in bf16 rounds the transformed input and weights, not the operands themselves, so it is held
// to the float reference: within 1e-2 of the output's scale (measured: README.md, "Precision").
BOOST_AUTO_TEST_CASE(winograd_bf16_is_within_its_bound) {
  std::vector<ConvProblem> problems = conv_problems();
  // an odd C_in: U's last k-pair is (U[16][o], 0)
  problems.push_back({"winograd_odd_c_in", {1, 5, 6, 7, 17}, 19, WindowGeometry::cube(3, 1, 1), true});
  int ran = 0;
  for (const ConvProblem& p : problems) {
    const ConvSpec spec{p.in.c, p.out_channels, p.geometry};
    if (!cpu::Winograd3d<float>::applicable(spec)) continue;
    ++ran;
    BOOST_TEST_CONTEXT("conv problem " << p.name) {
      const ref::Array5 x = random_array(p.in, 11);
      const auto w = random_values(size_t(p.out_channels * p.in.c * 27), 12);
      const auto b = p.bias ? random_values(size_t(p.out_channels), 13) : std::vector<double>{};
      const BatchNormParams bn_in = random_bn(p.in.c, 14);
      const BatchNorm3d<Cpu, float> pre(bn_in);
      const cpu::Winograd3d<float> wino(spec, w, b, Precision::kBf16);
      BOOST_TEST((wino.precision() == Precision::kBf16));
      const Conv3d<Cpu, float> direct(spec, w, b, Precision::kBf16);
      auto in = device<Cpu, float>(x);
      const Dims od = spec.output_dims(p.in);
      Tensor<Cpu, float> got(od), got_direct(od);
      wino.forward(in.view(), got.view(), {&pre, true});
      direct.forward(in.view(), got_direct.view(), {&pre, true});
      const auto want = ref::to_channels_last<double>(
          ref::conv3d(ref::relu(ref::batchnorm(x, bn_in)), w, b, p.out_channels, p.geometry));
      const double e_wino = relative_error(host<Cpu, float>(got.view()), want);
      const double e_direct = relative_error(host<Cpu, float>(got_direct.view()), want);
      BOOST_TEST_MESSAGE(p.name << ": bf16 error against float, Winograd " << e_wino << ", direct " << e_direct);
      BOOST_TEST(e_wino <= 1e-2);
      BOOST_TEST(e_direct <= 1e-2);
      BOOST_TEST(e_wino > 0.0);  // it did round
    }
  }
  BOOST_TEST(ran >= 6);
}

// A network's 3D Winograd conv asked for bf16 (ConvAlgorithm::make, winograd3d_select.hpp) takes the bf16
// tile F(2x2x2) where the bf16 GEMMs run on AMX tiles (or their software model: ctest's
// test_bf16_amx_emulated runs this program so) or both channel counts are at least 128, else a float32
// tile (faster on AVX512-BF16 alone): F(4x4x4) where the CPU runs bf16 (winograd3d_tile.hpp) or has
// AVX-512, F(2x4x4) where bf16 falls back to float32 without it; within 1e-2 of float32, and a bf16 tile
// did round.
// The direct conv beside it stays bf16.
// A bf16 network's dense layer holds its bottleneck in bf16 where conv2 runs Winograd (DenseLayerConvs'
// bf16 ring, ops/fused.hpp's RingValues): conv1's output is rounded as it is stored (forward_bf16_out: bit
// for bit the float forward rounded), and conv2 reads the ring as the composition does that rounded
// bottleneck (Winograd's GEMM blocks depend on the tiles per call, hence float's tolerance, not 0). Every
// Winograd conv2: F(4x4x4), F(4x6x6), F(2x4x4), the bf16 tile, depth-factored 2D tiles; odd channels,
// batch 2.
BOOST_AUTO_TEST_CASE(a_dense_layer_in_bf16_holds_its_bottleneck_in_bf16) {
  using cpu::winograd::FloatTile;
  struct Case {
    Dims in;
    Index mid, out;
    FloatTile tile;
    Precision conv2;
    bool depth_factored;
  };
  const std::vector<Case> cases{
      {{1, 9, 10, 11, 40}, 128, 32, FloatTile::kF4x4x4, Precision::kFloat32, false},  // DenseNet's, in fours
      {{1, 6, 13, 14, 40}, 128, 32, FloatTile::kF4x6x6, Precision::kFloat32, false},  // F(4x6x6), partial tiles
      {{2, 6, 7, 5, 19}, 33, 12, FloatTile::kF2x4x4, Precision::kFloat32, false},     // batch 2, odd channels
      {{1, 5, 6, 9, 16}, 32, 16, FloatTile::kF2x4x4, Precision::kBf16, false},        // the bf16 tile
      {{1, 7, 9, 8, 24}, 48, 16, FloatTile::kF4x4x4, Precision::kFloat32, true},      // inflated: 2D tiles
  };
  const WindowGeometry g = WindowGeometry::cube(3, 1, 1);
  for (const Case& c : cases) {
    BOOST_TEST_CONTEXT("dense layer " << to_string(c.in) << " -> " << c.mid << " -> " << c.out << ", case "
                                      << (&c - cases.data())) {
      const ref::Array5 x = random_array(c.in, 71);
      const Conv3d<Cpu, float> conv1({c.in.c, c.mid, WindowGeometry::cube(1, 1, 0)}, random_values(size_t(c.mid * c.in.c), 72),
                                     {}, Precision::kBf16);
      const std::vector<double> w = random_values(size_t(c.out * c.mid * 27), 73);
      std::vector<float> w2(w.begin(), w.end());  // float: depth factoring reads float weights
      if (c.depth_factored)  // each kd slice the same 3x3 kernel, as inflation makes them
        for (size_t i = 0; i < w2.size(); ++i) w2[i] = w2[i / 27 * 27 + i % 9];
      const ConvSpec spec2{c.mid, c.out, g};
      const Conv3d<Cpu, float> conv2(
          spec2, std::make_shared<const cpu::Winograd3d<float>>(spec2, w2, std::vector<float>{}, c.conv2,
                                                                DepthFactoring::kAuto, c.tile));
      BOOST_TEST(conv2.reads_bf16_rows());
      BOOST_TEST(conv2.depth_factored() == c.depth_factored);
      BOOST_TEST((conv2.precision() == c.conv2));
      const BatchNorm3d<Cpu, float> norm1(random_bn(c.in.c, 74)), norm2(random_bn(c.mid, 75));
      auto in = device<Cpu, float>(x);
      const Dims md = conv1.output_dims(c.in), od = conv2.output_dims(md);

      // conv1's bf16 output is its float output rounded
      Tensor<Cpu, float> mid(md);
      conv1.forward(in.view(), mid.view(), {&norm1, true}, {&norm2, true});
      std::vector<float> rounded = host<Cpu, float>(mid.view());
      std::vector<cpu::Bf16> want16(rounded.size()), got16(rounded.size());
      for (size_t i = 0; i < rounded.size(); ++i) want16[i] = cpu::round_to_bf16(rounded[i]);
      conv1.forward_bf16_out(in.view(), TensorView<cpu::Bf16>(got16.data(), md), {&norm1, true}, {&norm2, true});
      BOOST_TEST((got16 == want16));

      // the composition on the rounded bottleneck
      for (size_t i = 0; i < rounded.size(); ++i) rounded[i] = cpu::bf16_to_float(want16[i]);
      Tensor<Cpu, float> mid16(md), want(od);
      std::copy(rounded.begin(), rounded.end(), mid16.data());
      conv2.forward(mid16.view(), want.view());

      Dims wide = od;
      wide.c += 3;
      Tensor<Cpu, float> got(wide), scratch;
      got.set_zero();
      for (int call = 0; call < 2; ++call)  // the second call reuses the scratch ring
        DenseLayerConvs<Cpu, float>::forward(conv1, {&norm1, true}, {&norm2, true}, conv2, in.view(),
                                             got.view().channels(2, c.out), scratch, {}, 0);
      const Dims sd = dense_layer_scratch(g, conv2.plane_step(), md, 0, RingValues::kBf16);
      BOOST_TEST((scratch.dims() == sd), "scratch " << to_string(scratch.dims()));
      BOOST_TEST(sd.c == (c.mid + 1) / 2);
      const auto got_out = host<Cpu, float>(got.view().channels(2, c.out));
      const auto want_out = host<Cpu, float>(want.view());
      const double e = relative_error(got_out, std::vector<double>(want_out.begin(), want_out.end()));
      BOOST_TEST(e <= tolerance<float>(), "relative error " << e);
      // and it is bf16's rounding that it reads: the composition on the float bottleneck differs
      Tensor<Cpu, float> want32(od);
      conv2.forward(mid.view(), want32.view());
      const auto w32 = host<Cpu, float>(want32.view());
      BOOST_TEST(relative_error(got_out, std::vector<double>(w32.begin(), w32.end())) > 10 * tolerance<float>());
      BOOST_TEST((host<Cpu, float>(got.view().channels(0, 2)) == std::vector<float>(size_t(od.voxels() * 2), 0.0f)),
                 "channels outside the slice were written");
    }
  }
}

// The AVX512-BF16 kernels' bf16 C (Epilogue::c16: a bf16 conv's bf16 output) rounds as round_to_bf16: zero
// operands, so each value is its column's bias (then BN) exactly, chosen for the rounding's cases (ties both
// ways, NaN, infinities, denormals, overflow to infinity); every row count, panel width and partial panel,
// and nothing written past the panel's columns.
BOOST_AUTO_TEST_CASE(the_bf16_epilogue_rounds_as_round_to_bf16) {
  const std::vector<std::uint32_t> bits{0x3f808000u, 0x3f818000u, 0x3f80c000u, 0x7fc00001u, 0x7f800001u, 0xff800000u,
                                        0x7f800000u, 0x00000001u, 0x807fffffu, 0x7f7fffffu, 0xff7fffffu, 0x80000000u,
                                        0x3f7fffffu, 0x42280000u, 0xc2c4c000u, 0x0f0f8000u};
  std::vector<float> special(64);
  for (size_t i = 0; i < special.size(); ++i) {
    const std::uint32_t u = bits[i % bits.size()] ^ std::uint32_t(i / bits.size() << 20);  // varied exponents too
    std::memcpy(&special[i], &u, sizeof u);
  }
  const BatchNorm3d<Cpu, float> norm(random_bn(64, 7));
  int checked = 0;
  for (const int nv : {1, 2, 4})  // the panel widths (avx512::panel_vectors)
    for (int rows = 1; rows <= 2 * cpu::gemm::max_rows(nv) + 1; ++rows)
      for (const int cols : {16 * nv, 16 * nv - 5})
        for (const bool bn : {false, true}) {
          const Index len = 4, ldc = 16 * nv + 3;
          std::vector<cpu::Bf16> a(size_t(rows * len), 0);
          cpu::AlignedArray<cpu::Bf16> b_store;  // the kernels load B's vectors aligned
          cpu::Bf16* b = b_store.reserve(size_t(len * 16 * nv));
          std::fill(b, b + len * 16 * nv, cpu::Bf16(0));
          const cpu::gemm::Bf16Segment seg{a.data(), b, len};
          std::vector<cpu::Bf16> c(size_t(rows * ldc), 0x5555);
          cpu::gemm::Epilogue ep;
          ep.bias = special.data();
          if (bn) ep.scale = norm.scale(), ep.shift = norm.shift();
          ep.cols = cols;
          ep.c16 = c.data();
          cpu::gemm::gemm_rows_bf16(cpu::gemm::Bf16Kernels::kAvx512Bf16, &seg, 1, len, nv, rows, nullptr, ldc, ep);
          for (Index r = 0; r < rows; ++r)
            for (Index j = 0; j < ldc; ++j) {
              float v = 0;  // column j's value: the accumulator plus the bias (-0 becomes +0), then BN
              if (j < cols) {
                v = 0.0f + special[size_t(j)];
                if (bn) v = std::fma(v, norm.scale()[j], norm.shift()[j]);
              }
              const cpu::Bf16 want = j < cols ? cpu::round_to_bf16(v) : cpu::Bf16(0x5555);
              if (c[size_t(r * ldc + j)] != want) {
                BOOST_TEST(c[size_t(r * ldc + j)] == want, "got " << c[size_t(r * ldc + j)] << " want " << want << " of " << v << ", nv " << nv << " rows " << rows << " cols " << cols << " bn "
                                                                 << bn << ": row " << r << " column " << j);
                return;
              }
              ++checked;
            }
        }
  BOOST_TEST(checked > 10000);
}

// The ops on a bf16 network's dense-block features (Plan::bf16_buffer) are the float ops on the widened
// values, rounded where they write bf16: bit for bit, since widening is exact and each op runs the same
// kernels in the same order (the pre-activation widens as it loads, the epilogue rounds as it stores).
namespace {
// x rounded to bf16, and the same widened back to float.
struct Features16 {
  std::vector<cpu::Bf16> h;
  std::vector<float> f;
  Features16(const Dims& d, uint64_t seed) {
    const auto v = random_values(size_t(d.voxels() * d.c), seed);
    for (double x : v) h.push_back(cpu::round_to_bf16(float(x)));
    for (cpu::Bf16 x : h) f.push_back(cpu::bf16_to_float(x));
  }
};
std::vector<cpu::Bf16> rounded(const std::vector<float>& v) {
  std::vector<cpu::Bf16> r(v.size());
  for (size_t i = 0; i < v.size(); ++i) r[i] = cpu::round_to_bf16(v[i]);
  return r;
}
// The channels [c0, c0 + count) of every voxel of a buffer of ld values per voxel.
template <class E>
std::vector<E> slice(const std::vector<E>& buf, Index voxels, Index ld, Index c0, Index count) {
  std::vector<E> r;
  for (Index v = 0; v < voxels; ++v) r.insert(r.end(), buf.begin() + v * ld + c0, buf.begin() + v * ld + c0 + count);
  return r;
}
}  // namespace

BOOST_AUTO_TEST_CASE(the_ops_on_bf16_features_are_the_float_ops_rounded) {
  // the widened activation, every tail length, with and without BN and ReLU
  for (const Index n : {1, 5, 15, 16, 17, 31, 40, 128, 131}) {
    const Features16 x({1, 1, 1, 1, n}, 40 + uint64_t(n));
    const BatchNormParams bp = random_bn(n, 41);
    const BatchNorm3d<Cpu, float> norm(bp);
    for (const bool bn : {false, true})
      for (const bool relu : {false, true}) {
        const float* scale = bn ? norm.scale() : nullptr;
        const float* shift = bn ? norm.shift() : nullptr;
        std::vector<cpu::Bf16> got(size_t(n) + 1, 0xABCD), want(size_t(n) + 1, 0xABCD);
        cpu::gemm::activate_row_bf16(x.h.data(), got.data(), n, scale, shift, relu);
        cpu::gemm::activate_row_bf16(x.f.data(), want.data(), n, scale, shift, relu);
        BOOST_TEST((got == want), "n " << n << " bn " << bn << " relu " << relu);
      }
  }

  // a dense layer (pointwise bf16 conv1, Winograd conv2) and a transition (activated avg pool, pointwise conv)
  // on a block buffer of 5 + c_in + 3 channels, the layer reading [5, 5 + c_in) and writing after it
  using cpu::winograd::FloatTile;
  struct Case {
    Dims in;  // the layer's input
    Index mid, out;
    FloatTile tile;
    Precision conv2;
    bool depth_factored;
    Index whole_values;
  };
  const std::vector<Case> cases{
      {{1, 9, 10, 11, 40}, 128, 32, FloatTile::kF4x4x4, Precision::kFloat32, false, 0},  // DenseNet's, a ring
      {{1, 9, 10, 11, 40}, 128, 32, FloatTile::kF4x4x4, Precision::kFloat32, false, kWholeBottleneckValues},  // whole
      {{1, 6, 13, 14, 40}, 128, 32, FloatTile::kF4x6x6, Precision::kFloat32, false, 0},  // F(4x6x6), partial tiles
      {{2, 6, 7, 5, 19}, 33, 12, FloatTile::kF2x4x4, Precision::kFloat32, false, 0},     // batch 2, odd channels
      {{1, 5, 6, 9, 16}, 32, 16, FloatTile::kF2x4x4, Precision::kBf16, false, 0},        // the bf16 tile
      {{1, 7, 9, 8, 24}, 48, 16, FloatTile::kF4x4x4, Precision::kFloat32, true, 0},      // inflated: 2D tiles
  };
  const WindowGeometry g = WindowGeometry::cube(3, 1, 1);
  for (const Case& c : cases) {
    BOOST_TEST_CONTEXT("bf16 features " << to_string(c.in) << " -> " << c.mid << " -> " << c.out << ", case "
                                        << (&c - cases.data())) {
      const Index lead = 5, ld = lead + c.in.c + c.out + 3, voxels = c.in.voxels();
      const Dims buf_dims{c.in.n, c.in.d, c.in.h, c.in.w, ld};
      const Features16 buf(buf_dims, 81);
      const Conv3d<Cpu, float> conv1({c.in.c, c.mid, WindowGeometry::cube(1, 1, 0)},
                                     random_values(size_t(c.mid * c.in.c), 82), {}, Precision::kBf16);
      const std::vector<double> w = random_values(size_t(c.out * c.mid * 27), 83);
      std::vector<float> w2(w.begin(), w.end());
      if (c.depth_factored)
        for (size_t i = 0; i < w2.size(); ++i) w2[i] = w2[i / 27 * 27 + i % 9];
      const ConvSpec spec2{c.mid, c.out, g};
      const Conv3d<Cpu, float> conv2(
          spec2, std::make_shared<const cpu::Winograd3d<float>>(spec2, w2, std::vector<float>{}, c.conv2,
                                                                DepthFactoring::kAuto, c.tile));
      BOOST_TEST(conv2.depth_factored() == c.depth_factored);
      const BatchNorm3d<Cpu, float> norm1(random_bn(c.in.c, 84)), norm2(random_bn(c.mid, 85));
      const Dims od = conv2.output_dims(conv1.output_dims(c.in));
      BOOST_TEST_REQUIRE((od.spatial() == c.in.spatial()));

      // the float op on the widened buffer, and the bf16 op on the bf16 buffer
      std::vector<float> f = buf.f;
      std::vector<cpu::Bf16> h = buf.h;
      const TensorView<float> fv(f.data(), buf_dims);
      const TensorView<cpu::Bf16> hv(h.data(), buf_dims);
      Tensor<Cpu, float> scratch_f, scratch_h;
      DenseLayerConvs<Cpu, float>::forward(conv1, {&norm1, true}, {&norm2, true}, conv2,
                                           TensorView<const float>(fv.channels(lead, c.in.c)),
                                           fv.channels(lead + c.in.c, c.out), scratch_f, {}, c.whole_values);
      DenseLayerConvs<Cpu, float>::forward(conv1, {&norm1, true}, {&norm2, true}, conv2,
                                           TensorView<const cpu::Bf16>(hv.channels(lead, c.in.c)),
                                           hv.channels(lead + c.in.c, c.out), scratch_h, {}, c.whole_values);
      BOOST_TEST((scratch_h.dims() == scratch_f.dims()));
      const auto want = rounded(slice(f, voxels, ld, lead + c.in.c, c.out));
      const auto got = slice(h, voxels, ld, lead + c.in.c, c.out);
      BOOST_TEST((got == want), "the dense layer's bf16 output is not its float output rounded");
      BOOST_TEST((slice(h, voxels, ld, 0, lead + c.in.c) == slice(buf.h, voxels, ld, 0, lead + c.in.c)),
                 "channels before the layer's output were written");
      BOOST_TEST((slice(h, voxels, ld, ld - 3, 3) == slice(buf.h, voxels, ld, ld - 3, 3)),
                 "channels after the layer's output were written");

      // conv1 alone from bf16, into float and into bf16
      const Dims md = conv1.output_dims(c.in);
      Tensor<Cpu, float> m_f(md), m_h(md);
      std::vector<cpu::Bf16> m16(size_t(md.voxels() * md.c)), m16_want(m16.size());
      conv1.forward(TensorView<const float>(fv.channels(lead, c.in.c)), m_f.view(), {&norm1, true}, {&norm2, true});
      conv1.forward_from_bf16(TensorView<const cpu::Bf16>(hv.channels(lead, c.in.c)), m_h.view(), {&norm1, true},
                              {&norm2, true});
      BOOST_TEST((host<Cpu, float>(m_h.view()) == host<Cpu, float>(m_f.view())));
      conv1.forward_from_bf16(TensorView<const cpu::Bf16>(hv.channels(lead, c.in.c)),
                              TensorView<cpu::Bf16>(m16.data(), md), {&norm1, true}, {&norm2, true});
      BOOST_TEST((m16 == rounded(host<Cpu, float>(m_f.view()))));
      // conv2 alone into bf16 (a dense layer's whole path)
      Tensor<Cpu, float> o_f(od);
      std::vector<cpu::Bf16> o16(size_t(od.voxels() * od.c));
      conv2.forward(m_f.view(), o_f.view(), {}, {&norm2, false});
      conv2.forward_bf16_out(m_f.view(), TensorView<cpu::Bf16>(o16.data(), od), {}, {&norm2, false});
      BOOST_TEST((o16 == rounded(host<Cpu, float>(o_f.view()))));

      // a transition: BN + ReLU + 2x2x2 avg pool from bf16, then its pointwise conv into bf16
      const AvgPool3d<Cpu, float> pool(WindowGeometry::cube(2, 2, 0));
      const Dims pd = pool.output_dims(buf_dims);
      if (pd.voxels() > 0) {
        const BatchNorm3d<Cpu, float> norm_t(random_bn(ld, 86));
        Tensor<Cpu, float> p_f(pd), p_h(pd);
        // (the buffer as it was: the layer above wrote float and bf16 values that differ)
        ActivatedAvgPool<Cpu, float>::forward({&norm_t, true}, pool, TensorView<const float>(buf.f.data(), buf_dims),
                                              p_f.view());
        ActivatedAvgPool<Cpu, float>::forward({&norm_t, true}, pool,
                                              TensorView<const cpu::Bf16>(buf.h.data(), buf_dims), p_h.view());
        BOOST_TEST((host<Cpu, float>(p_h.view()) == host<Cpu, float>(p_f.view())));
        const Conv3d<Cpu, float> conv_t({ld, 16, WindowGeometry::cube(1, 1, 0)}, random_values(size_t(16 * ld), 87), {},
                                        Precision::kBf16);
        Tensor<Cpu, float> t_f(conv_t.output_dims(pd));
        const Dims wide{pd.n, pd.d, pd.h, pd.w, 20};
        std::vector<cpu::Bf16> t16(size_t(wide.voxels() * wide.c), 0x1234);
        conv_t.forward(p_f.view(), t_f.view());
        conv_t.forward_bf16_out(p_f.view(), TensorView<cpu::Bf16>(t16.data(), wide).channels(0, 16));
        BOOST_TEST((slice(t16, pd.voxels(), 20, 0, 16) == rounded(host<Cpu, float>(t_f.view()))));
        BOOST_TEST((slice(t16, pd.voxels(), 20, 16, 4) == std::vector<cpu::Bf16>(size_t(pd.voxels() * 4), 0x1234)));
      }
    }
  }

  // the stem's conv + max pool into bf16 (pool0 into block 1)
  for (const Index c_out : {16, 64, 24}) {  // 24: no vector row (the scalar loop)
    const Dims in{1, 12, 13, 14, 1};
    const ConvSpec spec{1, c_out, WindowGeometry::cube(7, 2, 3)};
    const Conv3d<Cpu, float> conv(spec, random_values(size_t(spec.weight_count()), 88), {}, Precision::kBf16);
    const BatchNorm3d<Cpu, float> norm(random_bn(c_out, 89));
    const MaxPool3d<Cpu, float> pool(WindowGeometry::cube(3, 2, 1));
    auto x = device<Cpu, float>(random_array(in, 90));
    const Dims pd = pool.output_dims(conv.output_dims(in));
    Tensor<Cpu, float> want(pd);
    std::vector<cpu::Bf16> got(size_t(pd.voxels() * (c_out + 8)), 0x4321);
    const TensorView<cpu::Bf16> wide(got.data(), Dims{pd.n, pd.d, pd.h, pd.w, c_out + 8});
    ConvActMaxPool<Cpu, float>::forward(conv, {&norm, true}, pool, TensorView<const float>(x.view()), want.view());
    ConvActMaxPool<Cpu, float>::forward(conv, {&norm, true}, pool, TensorView<const float>(x.view()),
                                        wide.channels(4, c_out));
    BOOST_TEST((slice(got, pd.voxels(), c_out + 8, 4, c_out) == rounded(host<Cpu, float>(want.view()))),
               "pool0 into bf16, " << c_out << " channels");
    BOOST_TEST((slice(got, pd.voxels(), c_out + 8, 0, 4) == std::vector<cpu::Bf16>(size_t(pd.voxels() * 4), 0x4321)));
  }
}

// The plan (and so the memory estimate) sizes each dense layer's scratch as the op does: in a bf16 network
// whose conv2 runs Winograd, a ring of bf16 planes, half a float ring's values.
BOOST_AUTO_TEST_CASE(a_bf16_networks_plan_sizes_its_dense_rings_in_bf16) {
  const Network<Cpu, float> b16(seeded_random_weights("densenet121", 3), Cpu{Precision::kBf16});
  const Graph& g = b16.graph();
  const Dims input{1, 128, 128, 128, 1};
  const int stop = g.node_of("features.denseblock1");
  const std::vector<bool> wanted(g.nodes().size(), false);
  // The same network's plan as if no conv ran bf16 (the same Winograd tiles, so the same ring depths).
  PlanTraits float_rings = b16.plan_traits();
  float_rings.bf16.clear();
  const Plan a = make_plan(g, input, wanted, stop, float_rings);
  const Plan b = make_plan(g, input, wanted, stop, b16.plan_traits());
  BOOST_TEST_REQUIRE(a.steps.size() == b.steps.size());
  int rings = 0;
  for (size_t i = 0; i < a.steps.size(); ++i) {
    if (a.steps[i].kind != StepKind::kConvPair) continue;
    const Step& s = b.steps[i];
    BOOST_TEST_REQUIRE(b16.plan_traits().uses_winograd(s.conv2));
    Dims half = a.steps[i].scratch;
    half.c = (half.c + 1) / 2;
    BOOST_TEST((s.scratch == half), "step " << i << ": " << to_string(s.scratch) << " for " << to_string(a.steps[i].scratch));
    BOOST_TEST(s.scratch.d < 32);  // a ring, not the 32^3 x 128 bottleneck
    ++rings;
  }
  BOOST_TEST(rings == 6);  // denseblock1's layers
  // and the scratch estimate counts the float tile a bf16 conv1 computes its outputs into before rounding
  // them into the ring on AMX tiles: 512 voxels x 128 channels (conv3d_impl.hpp, forward_pointwise); the
  // AVX512-BF16 kernels round in their epilogue and need none
  const double with = float_conv_scratch_bytes(g, b, b16.plan_traits(), 2);
  const double without = float_conv_scratch_bytes(g, a, float_rings, 2);
  BOOST_TEST(b16.plan_traits().bf16_staging == cpu::gemm::bf16_gemms_on_tiles());
  BOOST_TEST(with - without == (cpu::gemm::bf16_gemms_on_tiles() ? 4.0 * 512 * 128 : 0.0));
}

// A bf16 DenseNet holds the blocks no observer sees in bf16 (Plan::bf16_buffer): here blocks 1 and 2, not
// block 3 (tapped and the stop), nor any buffer of the float network. The tap stays within 1e-2 of float32,
// and the memory estimate counts the bf16 blocks at half a float block's bytes.
BOOST_AUTO_TEST_CASE(a_bf16_densenet_holds_its_unseen_blocks_in_bf16) {
  const Network<Cpu, float> f32(seeded_random_weights("densenet121", 5));
  const Network<Cpu, float> b16(seeded_random_weights("densenet121", 5), Cpu{Precision::kBf16});
  const Graph& g = b16.graph();
  const Dims input{1, 17, 20, 19, 1};
  const std::string tap = "features.denseblock3";
  const int stop = g.node_of(tap);
  std::vector<bool> wanted(g.nodes().size(), false);
  wanted[size_t(stop)] = true;
  const Plan p16 = make_plan(g, input, wanted, stop, b16.plan_traits());
  const Plan p32 = make_plan(g, input, wanted, stop, f32.plan_traits());
  std::vector<std::string> held16;
  for (size_t b = 0; b < p16.buffers.size(); ++b)
    if (p16.bf16_buffer[b])
      for (int i = 1; i <= stop; ++i)
        if (p16.place[size_t(i)].buffer == int(b) && g.node(i).kind == OpKind::kConcat && g.modules_of(i).size() &&
            g.modules_of(i).front()->name.find("denseblock") != std::string::npos)
          held16.push_back(g.modules_of(i).front()->name);
  BOOST_TEST((held16 == std::vector<std::string>{"features.denseblock1", "features.denseblock2"}));
  BOOST_TEST(std::count(p16.bf16_buffer.begin(), p16.bf16_buffer.end(), true) == 2);
  BOOST_TEST(std::count(p32.bf16_buffer.begin(), p32.bf16_buffer.end(), true) == 0);
  // seen by an observer: every block stays float
  std::vector<bool> all(g.nodes().size(), false);
  for (const char* m : {"features.denseblock1", "features.denseblock2", "features.denseblock3"}) all[size_t(g.node_of(m))] = true;
  const Plan seen = make_plan(g, input, all, stop, b16.plan_traits());
  BOOST_TEST(std::count(seen.bf16_buffer.begin(), seen.bf16_buffer.end(), true) == 0);

  const auto xv = random_values(size_t(input.voxels()), 97);
  const std::vector<float> x(xv.begin(), xv.end());
  const TensorView<const float> in(x.data(), input);
  Recorder<Cpu, float> want({tap}), got({tap});
  f32.forward(in, want, stop);
  b16.forward(in, got, stop);
  const double e = relative_error(got.at(tap).data, want.at(tap).data);
  BOOST_TEST_MESSAGE("densenet121 " << tap << " with bf16 blocks 1 and 2: bf16 against float32 " << e);
  BOOST_TEST(e > 0.0);
  BOOST_TEST(e <= 1e-2);

  // the estimate at 128^3, where block 1 (32^3 x 256 channels: 32 MiB in float) makes the peak: half of it
  // less with block 1 in bf16 (test_memory_estimate holds the estimate to the measured peak RSS)
  const std::array<Index, 3> grid{128, 128, 128};
  const ForwardMemory m16 = simulate_forward(g, grid, stop, {tap}, 4, 1, b16.plan_traits());
  PlanTraits no_features = b16.plan_traits();
  no_features.bf16_features = false;
  const ForwardMemory m32 = simulate_forward(g, grid, stop, {tap}, 4, 1, no_features);
  BOOST_TEST_MESSAGE("estimated peak at 128^3: " << m32.peak_bytes << " B with float blocks (at " << m32.peak_module
                                                 << "), " << m16.peak_bytes << " with bf16 (at " << m16.peak_module << ")");
  BOOST_TEST(m32.peak_module == "features.transition1.pool");  // block 1 and its pooled copy
  BOOST_TEST(m32.peak_bytes - m16.peak_bytes >= 0.5 * 32.0 * 32 * 32 * 256 * 4);
}

BOOST_AUTO_TEST_CASE(a_networks_winograd_tile_in_bf16_follows_the_kernels_and_channels) {
  for (const auto [c_in, c_out] : std::vector<std::array<Index, 2>>{{40, 24}, {128, 24}, {40, 128}, {128, 128}})
    BOOST_TEST_CONTEXT(c_in << " -> " << c_out) {
      const Dims in_dims{1, 6, 7, 9, c_in};
      const ConvSpec spec{in_dims.c, c_out, WindowGeometry::cube(3, 1, 1)};
      const auto wd = random_values(size_t(spec.weight_count()), 31);
      const std::vector<float> w(wd.begin(), wd.end());
      const auto b = random_values(size_t(spec.out_channels), 32);
      const std::vector<float> bf(b.begin(), b.end());
      const auto conv = ConvAlgorithm<Cpu, float>::make(spec, w, bf, Cpu{Precision::kBf16}, {}, WinogradMode::kAll);
      BOOST_TEST_REQUIRE(conv->winograd() != nullptr);
      const bool tiles = cpu::gemm::bf16_gemms_on_tiles() || (c_in >= 128 && c_out >= 128);
      BOOST_TEST_MESSAGE(c_in << " -> " << c_out << ": bf16 GEMMs on AMX tiles " << cpu::gemm::bf16_gemms_on_tiles()
                              << ", Winograd points " << conv->winograd()->points());
      BOOST_TEST(!conv->winograd()->depth_factored());
      const bool deep = !tiles && (cpu::gemm::bf16_available() || cpu::cpu_isa() >= cpu::CpuIsa::kAvx2);
      BOOST_TEST(conv->winograd()->points() == (tiles ? 64 : deep ? 216 : 144));
      BOOST_TEST(conv->plane_step() == (deep ? 4 : 2));
      BOOST_TEST((conv->winograd()->precision() == (tiles ? Precision::kBf16 : Precision::kFloat32)));
      const auto direct = ConvAlgorithm<Cpu, float>::make(spec, w, bf, Cpu{Precision::kBf16}, {}, WinogradMode::kOff);
      BOOST_TEST(direct->winograd() == nullptr);
      BOOST_TEST((direct->precision() == Precision::kBf16));

      const ref::Array5 x = random_array(in_dims, 33);
      auto in = device<Cpu, float>(x);
      Tensor<Cpu, float> got(conv->output_dims(in_dims));
      conv->forward(in.view(), got.view());
      const auto want = ref::to_channels_last<double>(ref::conv3d(x, wd, b, spec.out_channels, spec.geometry));
      const double e = relative_error(host<Cpu, float>(got.view()), want);
      BOOST_TEST_MESSAGE("error against the float reference " << e);
      BOOST_TEST(e <= (tiles ? 1e-2 : deep ? 1e-4 : 3e-5));  // F(4x4x4)'s and F(2x4x4)'s float bounds (test_winograd)
      if (tiles) BOOST_TEST(e > 1e-5);         // it did round to bf16
    }
}

// Whole networks, each of their fused steps in bf16 (support/small_networks.hpp): every tap within 1e-2 of
// float32, relative to its largest value. Small inputs, so that the sanitizer suite runs them too
// (tests/cli/test_precision.py has the full-size runs).
BOOST_AUTO_TEST_CASE(networks_in_bf16_are_within_1e_2_of_float32) {
  for (const SmallNetworkCase& c : small_network_cases()) {
    BOOST_TEST_CONTEXT(c.arch << " on " << to_string(c.x)) {
      const Network<Cpu, float> f32(seeded_random_weights(c.arch, 5));
      const Network<Cpu, float> b16(seeded_random_weights(c.arch, 5), Cpu{Precision::kBf16});
      const auto xv = random_values(size_t(c.x.voxels()), 97);
      const std::vector<float> x(xv.begin(), xv.end());
      const TensorView<const float> in(x.data(), c.x);
      Recorder<Cpu, float> want(c.taps), got(c.taps);
      const int stop = f32.node_of(c.taps.back());  // the pass stops there: the inputs are small
      f32.forward(in, want, stop);
      b16.forward(in, got, stop);
      for (const auto& t : c.taps) {
        const double e = relative_error(got.at(t).data, want.at(t).data);
        BOOST_TEST_MESSAGE(c.arch << " " << t << ": bf16 against float32 " << e);
        BOOST_TEST(e > 0.0, t << ": bf16 equals float32, so it did not run");
        BOOST_TEST(e <= 1e-2, t << ": " << e);
      }
    }
  }
}
