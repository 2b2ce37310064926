// The Cpu 3D Winograd conv F(2x4x4, 3x3x3) (backend/cpu/winograd3d.hpp) against the naive reference:
// every 3x3x3 stride-1 dilation-1 shape of the shared problem list plus odd ones (extents not multiples
// of 2, padding 0/1/2 and per axis, tiny volumes, channels not multiples of 16, a batch of 2), plain
// and with the fused pre-activation (BN+ReLU of the input), post-activation (bias, BN+ReLU) and
// channel slices in and out (a dense block's in-place writes), through Conv3d's hook; the output
// plane pairs of ConvActMaxPool; the per-layer choice and VOLFEAT_WINOGRAD; and whole networks
// (VGG-11, DenseNet-121) with Winograd on against the same networks with it off.
//
// Tolerance: max |got - want| / max |want| <= 3e-5 in float, 3x the direct conv's bound (1e-5), and
// 1e-12 in double. F(2x4x4, 3x3x3) (winograd3d_transforms.hpp) sums up to 2x4x4 = 32 input values per
// transformed point (B^T: 2 per axis along z, up to 4 along y and x, scaled by up to 5), scales the
// weights by up to 1/4 and sums 2 x 6 x 6 transformed products per output, weighted by up to 8 per axis
// (A^T), around a GEMM that sums only C_in products per point. Its rounding error is several times the
// direct conv's: measured here at most 9.6e-6 (float) over these shapes (F(2x2x2) before it: 6.6e-7),
// and a model of one 128-channel tile (bench/winograd_tile_error.py) gives a median of 3.8e-6 and a
// maximum of 1.2e-5 over 30 random tiles. So the bound is 3e-5. Whole networks on a CT crop
// (bench/winograd_error.cpp, README.md) are in the README. The networks below are held to the torch
// tests' 1e-4 per tap.
//
// ctest also runs it under VOLFEAT_CPU_ISA=generic, avx2 and avx512 (test_winograd_isa_*): each set has
// its own compiled transforms (winograd3d.hpp), and since session 42 AVX2 takes F(4x4x4) as AVX-512 does.
#define BOOST_TEST_MODULE winograd
#include <boost/mpl/list.hpp>
#include <algorithm>
#include <cstdlib>
#include <limits>
#include <optional>

#include "support/bf16_cases.hpp"
#include "support/cpu_isa_guard.hpp"
#include "support/primitive_checks.hpp"
#include "support/scoped_env.hpp"
#include "volfeat/backend/cpu.hpp"
#include "volfeat/nn/architectures.hpp"
#include "volfeat/nn/network.hpp"
#include "volfeat/nn/taps.hpp"

using namespace volfeat;
using namespace volfeat::test;

namespace {

template <class T>
constexpr double winograd_tolerance() {
  return std::is_same_v<T, float> ? 3e-5 : 1e-12;
}

// F(4x4x4), the float32 tile of a bf16 network's float convs (winograd3d_tile.hpp): F(4,3) along z too
// roughly triples the rounding error (one 128-channel tile, bench/winograd_tile_error.py: median 1.3e-5,
// max 4.0e-5 over 30 random tiles; F(2x4x4) 3.8e-6 and 1.2e-5), so 1e-4, 3x that maximum as the 3e-5
// above is for F(2x4x4). bf16 itself is held to 1e-2. F(4x6x6) (F(6,3) along y and x) is held to the
// same: one tile, median 2.4e-5, max 4.4e-5 (the same script and tiles).
constexpr double kDeepTileTolerance = 1e-4;
using cpu::winograd::FloatTile;

// Odd cases beyond the shared list.
std::vector<ConvProblem> winograd_problems() {
  const auto cube = [](Index p) { return WindowGeometry::cube(3, 1, p); };
  return {
      {"odd_extents_p1", {1, 5, 7, 9, 3}, 5, cube(1), true},
      {"odd_extents_p0", {1, 7, 5, 6, 17}, 19, cube(0), false},
      {"pad2", {1, 3, 4, 5, 6}, 7, cube(2), true},
      {"pad_per_axis", {1, 6, 5, 7, 9}, 10, geom({3, 3, 3}, {1, 1, 1}, {0, 1, 2}), false},
      {"tiny_1x1x1_p1", {1, 1, 1, 1, 20}, 18, cube(1), true},
      {"tiny_2x1x3_p1", {1, 2, 1, 3, 33}, 31, cube(1), false},
      {"exact_kernel_p0", {1, 3, 3, 3, 16}, 16, cube(0), true},
      {"batch2_odd", {2, 3, 5, 4, 24}, 40, cube(1), true},
      {"c64_to_32_even", {1, 4, 6, 8, 64}, 32, cube(1), false},
      {"many_tiles_c1", {1, 10, 11, 12, 1}, 3, cube(1), true},
  };
}

std::vector<ConvProblem> all_problems() {
  std::vector<ConvProblem> ps;
  for (const auto& p : conv_problems())
    if (cpu::Winograd3d<float>::applicable({p.in.c, p.out_channels, p.geometry})) ps.push_back(p);
  for (const auto& p : winograd_problems()) ps.push_back(p);
  return ps;
}

template <class T>
std::vector<double> flat_slice(const ref::Array5& a, Index c0, Index count) {
  std::vector<double> v;
  for (Index n = 0; n < a.n; ++n)
    for (Index c = c0; c < c0 + count; ++c)
      for (Index z = 0; z < a.d; ++z)
        for (Index y = 0; y < a.h; ++y)
          for (Index x = 0; x < a.w; ++x) v.push_back(a.at(n, c, z, y, x));
  return v;
}

// check_conv of primitive_checks.hpp with the Winograd conv attached to the Conv3d. `given`: weights
// to use instead of random ones; in float they are handed over as float (as a network's StateDict
// holds them), so depth-factored ones run the depth-summed 2D tiles. `tile`: the float tile of 3D
// (not depth-factored) weights; F(4x4x4) and F(4x6x6) are held to kDeepTileTolerance.
template <class T>
double check_winograd(const ConvProblem& p, const std::vector<double>* given = nullptr,
                      FloatTile tile = FloatTile::kF2x4x4) {
  double worst = 0;
  const bool deep = std::is_same_v<T, float> && given == nullptr && tile != FloatTile::kF2x4x4;
  const bool wide = deep && tile == FloatTile::kF4x6x6;
  const double tol = deep ? kDeepTileTolerance : winograd_tolerance<T>();
  BOOST_TEST_CONTEXT("winograd problem " << p.name << (wide ? " (F(4x6x6))" : deep ? " (F(4x4x4))" : "")) {
    const ref::Array5 x = random_array(p.in, 1);
    const auto w = given ? *given : random_values(static_cast<size_t>(p.out_channels * p.in.c * 27), 2);
    const auto b = p.bias ? random_values(static_cast<size_t>(p.out_channels), 3) : std::vector<double>{};
    const ConvSpec spec{p.in.c, p.out_channels, p.geometry};
    Conv3d<Cpu, T> conv(spec, w, b);
    if constexpr (std::is_same_v<T, float>) {
      conv.set_winograd(std::make_shared<const cpu::Winograd3d<T>>(spec, std::vector<float>(w.begin(), w.end()), b,
                                                                   Precision::kFloat32, DepthFactoring::kAuto, tile));
    } else {
      conv.set_winograd(std::make_shared<const cpu::Winograd3d<T>>(spec, w, b));
    }
    BOOST_TEST_REQUIRE(conv.winograd() != nullptr);
    // random weights stay 3D; given (inflated) ones are depth-factored in float
    BOOST_TEST(conv.winograd()->depth_factored() == (given != nullptr && std::is_same_v<T, float>));
    BOOST_TEST(conv.winograd()->points() ==
               (wide ? 384 : deep ? 216 : given != nullptr && std::is_same_v<T, float> ? 36 : 144));
    BOOST_TEST(conv.plane_step() == (deep ? 4 : 2));

    auto in = device<Cpu, T>(x);
    Tensor<Cpu, T> out(conv.output_dims(p.in));
    conv.forward(in.view(), out.view());
    const ref::Array5 want = ref::conv3d(x, w, b, p.out_channels, p.geometry);
    const double e1 = relative_error(host<Cpu, T>(out.view()), ref::to_channels_last<double>(want));
    BOOST_TEST(e1 <= tol);

    // Fused and strided: input = channels [2, 2+C) of a wider tensor, output = channels [3, 3+O).
    const BatchNormParams bn_in = random_bn(p.in.c, 4), bn_out = random_bn(p.out_channels, 5);
    const BatchNorm3d<Cpu, T> pre(bn_in), post(bn_out);
    const ref::Array5 filler = random_array({p.in.n, p.in.d, p.in.h, p.in.w, 2}, 6);
    const ref::Array5 tail = random_array({p.in.n, p.in.d, p.in.h, p.in.w, 3}, 7);
    auto wide = device<Cpu, T>(ref::concat_channels({filler, x, tail}));
    Dims wide_out = conv.output_dims(p.in);
    wide_out.c = p.out_channels + 4;
    const ref::Array5 sentinel = random_array(wide_out, 8);
    auto out2 = device<Cpu, T>(sentinel);
    conv.forward(wide.view().channels(2, p.in.c), out2.view().channels(3, p.out_channels), {&pre, true}, {&post, true});
    const ref::Array5 want2 = ref::relu(ref::batchnorm(
        ref::conv3d(ref::relu(ref::batchnorm(x, bn_in)), w, b, p.out_channels, p.geometry), bn_out));
    const auto got2 = ref::from_channels_last(wide_out, host<Cpu, T>(out2.view()).data());
    const double e2 = relative_error(flat_slice<T>(got2, 3, p.out_channels), flat_slice<T>(want2, 0, p.out_channels));
    BOOST_TEST(e2 <= tol);
    std::vector<double> untouched, kept;
    for (Index c : {Index(0), Index(1), Index(2), 3 + p.out_channels}) {
      const auto a = flat_slice<T>(got2, c, 1), s = flat_slice<T>(sentinel, c, 1);
      untouched.insert(untouched.end(), a.begin(), a.end());
      for (double v : s) kept.push_back(double(T(v)));
    }
    BOOST_TEST((untouched == kept), "channels outside the output slice were written");

    // Alternately a group of plane_step() planes (or what is left) and one plane (forward_plane, through
    // the hook), so that later groups start inside a tile plane and straddle two.
    const Dims od = conv.output_dims(p.in);
    const Index step = conv.plane_step();
    Tensor<Cpu, T> planes(od);
    for (Index n = 0; n < od.n; ++n)
      for (Index z = 0, k = 0; z < od.d; ++k) {
        const Index nz = k % 2 == 1 ? 1 : std::min(step, od.d - z);
        TensorView<T> pv(planes.view().voxel(n, z, 0, 0), Dims{1, nz, od.h, od.w, od.c});
        if (nz == 1) conv.forward_plane(in.view(), n, z, pv);
        else conv.winograd()->forward_planes(in.view(), n, z, nz, pv);
        z += nz;
      }
    // Not bit-equal: the GEMM's blocking (and so its rounding) depends on the number of tiles.
    BOOST_TEST(relative_error(host<Cpu, T>(planes.view()), host<Cpu, T>(out.view())) <= tol);
    if constexpr (Conv3d<Cpu, T>::kHasPlaneRows) {
      // forward_plane_rows (a dense layer's ring) runs Winograd too: set_winograd released the direct weights.
      struct Rows {
        TensorView<const T> in;
        Dims dims;
        Index ld;
        const T* row(Index n, Index z, Index y) const { return in.voxel(n, z, y, 0); }
      };
      const Rows rows{in.view(), p.in, in.view().ld};
      Tensor<Cpu, T> by_rows(od);
      for (Index n = 0; n < od.n; ++n)
        for (Index z = 0; z < od.d; ++z)
          conv.forward_plane_rows(rows, n, z, TensorView<T>(by_rows.view().voxel(n, z, 0, 0), Dims{1, 1, od.h, od.w, od.c}));
      BOOST_TEST(relative_error(host<Cpu, T>(by_rows.view()), host<Cpu, T>(out.view())) <= tol);
    }
    worst = std::max(e1, e2);
    BOOST_TEST_MESSAGE(p.name << ": relative error " << e1 << " plain, " << e2 << " fused");
  }
  return worst;
}

using Scalars = boost::mpl::list<float, double>;

enum class Rule { kMean, kCentre };

// 3x3x3 weights inflated from random 3x3 ones along D, rounded to float as a StateDict holds them:
// i3d-mean (every slice w2 / 3) or centre (the middle slice w2, the others zero).
std::vector<double> inflated(const ConvProblem& p, Rule rule, uint64_t seed = 2) {
  const auto w2 = random_values(size_t(p.out_channels * p.in.c * 9), seed);
  std::vector<double> w(size_t(p.out_channels * p.in.c * 27));
  for (Index u = 0; u < p.out_channels * p.in.c; ++u)
    for (Index kd = 0; kd < 3; ++kd)
      for (Index j = 0; j < 9; ++j)
        w[size_t((u * 3 + kd) * 9 + j)] = rule == Rule::kMean ? double(float(w2[size_t(u * 9 + j)] / 3.0))
                                                              : (kd == 1 ? double(float(w2[size_t(u * 9 + j)])) : 0.0);
  return w;
}

}  // namespace

// The bf16 tile's V store (winograd3d_transforms.hpp, store_bf16: the input transform rounds as it
// stores) rounds as round_to_bf16 (vcvtneps2bf16's rounding, tested against the instruction in
// test_bf16) in every vector width of the block loop and every tail length, and writes nothing past it.
template <int B>
void check_store_bf16(const std::vector<float>& x) {
  using V = cpu::winograd::Vec<float, B>;
  constexpr int kLanes = cpu::winograd::kLanes<float, B>;
  for (size_t i0 = 0; i0 + kLanes <= x.size(); i0 += kLanes)
    for (int nl = 1; nl <= kLanes; ++nl) {
      V v;
      cpu::winograd::load<float, B>(v, x.data() + i0, kLanes);
      cpu::Bf16 got[kLanes + 1];
      std::fill(std::begin(got), std::end(got), cpu::Bf16(0xdead));
      cpu::winograd::store_bf16<B>(got, v, nl);
      for (int l = 0; l < nl; ++l)
        BOOST_TEST(got[l] == cpu::round_to_bf16(x[i0 + size_t(l)]), "x = " << x[i0 + size_t(l)] << ", " << B << " bytes");
      for (int l = nl; l <= kLanes; ++l) BOOST_TEST(got[l] == cpu::Bf16(0xdead), "written past " << nl << " lanes");
    }
}

BOOST_AUTO_TEST_CASE(the_bf16_tile_rounds_v_as_the_instruction) {
  std::vector<float> x = bf16_rounding_cases(256, 93);
  while (x.size() % 16) x.push_back(float(x.size()) * 0.37f);
  check_store_bf16<64>(x);
  check_store_bf16<32>(x);
  check_store_bf16<16>(x);
}

BOOST_AUTO_TEST_CASE(kernel_transform_of_a_delta_is_separable) {
  // g = delta at (1,1,1): G's column 1 is (0, 1/2, -1/2, 0) along z (F(2,3)) and
  // (0, -1/6, 1/6, 1/12, -1/12, 0) along y and x (F(4,3)), so u = the product of those.
  double g[27] = {};
  g[13] = 1.0;
  const auto u = cpu::winograd::kernel_transform<cpu::winograd::TileF32>(g);
  const double z[4] = {0, 0.5, -0.5, 0}, yx[6] = {0, -1.0 / 6, 1.0 / 6, 1.0 / 12, -1.0 / 12, 0};
  for (int a = 0; a < 4; ++a)
    for (int b = 0; b < 6; ++b)
      for (int e = 0; e < 6; ++e)
        BOOST_TEST(std::abs(u[size_t((a * 6 + b) * 6 + e)] - z[a] * yx[b] * yx[e]) <= 1e-15);
  // bf16's F(2x2x2): (0, 1/2, -1/2, 0) along every axis.
  const auto u2 = cpu::winograd::kernel_transform<cpu::winograd::TileBf16>(g);
  for (int a = 0; a < 4; ++a)
    for (int b = 0; b < 4; ++b)
      for (int e = 0; e < 4; ++e) BOOST_TEST(u2[size_t((a * 4 + b) * 4 + e)] == z[a] * z[b] * z[e]);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(winograd_matches_reference, T, Scalars) {
  double worst = 0;
  size_t n = 0;
  for (const auto& p : all_problems()) worst = std::max(worst, check_winograd<T>(p)), ++n;
  BOOST_TEST(n >= 15u);  // the shared list's 3x3x3 stride-1 shapes are still there
  BOOST_TEST_MESSAGE(n << " problems, worst relative error " << worst);
}

BOOST_AUTO_TEST_CASE(deep_float_tile_matches_reference) {
  // F(4x4x4) (a bf16 network's float32 tile, and an AVX-512 CPU's) and F(4x6x6) (a bf16 network's on
  // planes that suit it): every shape of the list, plain, fused, sliced, plane by plane and in groups of
  // four from aligned and unaligned starts, at kDeepTileTolerance.
  for (FloatTile tile : {FloatTile::kF4x4x4, FloatTile::kF4x6x6}) {
    double worst = 0;
    size_t n = 0;
    for (const auto& p : all_problems()) worst = std::max(worst, check_winograd<float>(p, nullptr, tile)), ++n;
    BOOST_TEST(n >= 15u);
    BOOST_TEST_MESSAGE(n << " problems in " << (tile == FloatTile::kF4x6x6 ? "F(4x6x6)" : "F(4x4x4)")
                         << ", worst relative error " << worst);
  }
  // Inflated weights keep their depth-summed 2D tile, bf16 its own; a double conv ignores the request.
  const ConvProblem p{"c24_to_40", {1, 6, 7, 9, 24}, 40, WindowGeometry::cube(3, 1, 1), true};
  const ConvSpec spec{p.in.c, p.out_channels, p.geometry};
  const auto wd = inflated(p, Rule::kMean);
  const std::vector<float> w(wd.begin(), wd.end()), b(size_t(p.out_channels), 0.25f);
  BOOST_TEST(cpu::Winograd3d<float>(spec, w, b, Precision::kFloat32, DepthFactoring::kAuto, FloatTile::kF4x4x4).points() == 36);
  const auto w3 = random_values(size_t(spec.weight_count()), 9);
  const std::vector<float> w3f(w3.begin(), w3.end());
  BOOST_TEST(cpu::Winograd3d<float>(spec, w3f, b, Precision::kFloat32, DepthFactoring::kOff, FloatTile::kF4x4x4).points() == 216);
  BOOST_TEST(cpu::Winograd3d<float>(spec, w3f, b, Precision::kFloat32, DepthFactoring::kOff, FloatTile::kF4x6x6).points() == 384);
  BOOST_TEST(cpu::Winograd3d<float>(spec, w, b, Precision::kFloat32, DepthFactoring::kAuto, FloatTile::kF4x6x6).points() == 36);
  BOOST_TEST(cpu::Winograd3d<double>(spec, w3, {}, Precision::kFloat32, DepthFactoring::kOff, FloatTile::kF4x6x6).points() == 144);
  BOOST_TEST(cpu::Winograd3d<float>(spec, w3f, b, Precision::kBf16, DepthFactoring::kOff, FloatTile::kF4x4x4).points() ==
             (cpu::gemm::bf16_available() ? 64 : 216));
  BOOST_TEST(cpu::Winograd3d<double>(spec, w3, {}, Precision::kFloat32, DepthFactoring::kOff, FloatTile::kF4x4x4).points() == 144);
  // The network's choice: F(4x4x4) for the float convs of a bf16 network that runs bf16 (DenseNet's
  // 128 -> 32) and of a float32 one on AVX-512 or AVX2, F(2x4x4) on the generic kernels.
  const bool vector = cpu::cpu_isa() >= cpu::CpuIsa::kAvx2;
  BOOST_TEST((winograd_float_tile(Precision::kFloat32) == (vector ? FloatTile::kF4x4x4 : FloatTile::kF2x4x4)));
  BOOST_TEST((winograd_float_tile(Precision::kBf16) ==
              (cpu::gemm::bf16_available() || vector ? FloatTile::kF4x4x4 : FloatTile::kF2x4x4)));
  const auto wn = random_values(size_t(128 * 32 * 27), 10);  // random: equal slices would be depth-factored
  const auto made = ConvAlgorithm<Cpu, float>::make({128, 32, WindowGeometry::cube(3, 1, 1)},
                                                    std::vector<float>(wn.begin(), wn.end()), {},
                                                    Cpu{Precision::kBf16}, {}, WinogradMode::kAuto);
  BOOST_TEST_REQUIRE(made->winograd() != nullptr);
  BOOST_TEST(made->winograd()->points() ==
             (cpu::gemm::bf16_gemms_on_tiles() ? 64 : cpu::gemm::bf16_available() || vector ? 216 : 144));
  // Where the network knows the output planes (ConvUse), F(4x6x6) on those whose 6-wide tiles need at
  // most 0.9 of F(4x4x4)'s transformed points: 64 x 64 (0.84), 24 x 24 and 48 x 36 (0.79); not 32 x 32
  // or 16 x 16 (1), 8 x 8 (1.78), 64 x 8 (1.18), nor unknown planes.
  BOOST_TEST(kWideTileMaxPoints == 0.9);
  for (const auto& [h, w] : {std::pair<Index, Index>{64, 64}, {24, 24}, {48, 36}, {128, 128}, {12, 60}})
    BOOST_TEST(wide_tile_wins(h, w), h << " x " << w);
  for (const auto& [h, w] : {std::pair<Index, Index>{32, 32}, {16, 16}, {8, 8}, {64, 8}, {0, 64}, {64, 0}})
    BOOST_TEST(!wide_tile_wins(h, w), h << " x " << w);
  // Only a bf16 network takes it (a float32 one keeps F(4x4x4): memory, winograd3d_select.hpp).
  const ConvUse planes64{27 * 64 * 64, 64, 64}, planes32{32 * 32 * 32, 32, 32};
  const bool bf16 = cpu::gemm::bf16_available();
  BOOST_TEST((winograd_float_tile(Precision::kFloat32, planes64) ==
              (vector ? FloatTile::kF4x4x4 : FloatTile::kF2x4x4)));
  // ... unless VOLFEAT_WINOGRAD=wide trades the memory for the speed
  BOOST_TEST((winograd_float_tile(Precision::kFloat32, planes64, WinogradMode::kWide) ==
              (vector ? FloatTile::kF4x6x6 : FloatTile::kF2x4x4)));
  BOOST_TEST((winograd_float_tile(Precision::kFloat32, planes32, WinogradMode::kWide) ==
              (vector ? FloatTile::kF4x4x4 : FloatTile::kF2x4x4)));
  BOOST_TEST((winograd_float_tile(Precision::kBf16, planes64) ==
              (bf16 ? FloatTile::kF4x6x6 : vector ? FloatTile::kF4x4x4 : FloatTile::kF2x4x4)));
  BOOST_TEST((winograd_float_tile(Precision::kBf16, planes32) ==
              (bf16 || vector ? FloatTile::kF4x4x4 : FloatTile::kF2x4x4)));
  const auto made64 = ConvAlgorithm<Cpu, float>::make({128, 32, WindowGeometry::cube(3, 1, 1)},
                                                      std::vector<float>(wn.begin(), wn.end()), {},
                                                      Cpu{Precision::kBf16}, planes64, WinogradMode::kAuto);
  BOOST_TEST_REQUIRE(made64->winograd() != nullptr);
  BOOST_TEST(made64->winograd()->points() == (cpu::gemm::bf16_gemms_on_tiles() ? 64 : bf16 ? 384 : vector ? 216 : 144));
  BOOST_TEST(made64->plane_step() == (cpu::gemm::bf16_gemms_on_tiles() ? 2 : bf16 || vector ? 4 : 2));
}

BOOST_AUTO_TEST_CASE(depth_factored_weights_run_2d_tiles) {
  // Weights inflated along D (i3d-mean, centre: depth_factor.hpp) run F(4x4, 3x3) on depth-summed input:
  // every shape above, plain, fused, sliced, plane by plane and in pairs, against the naive reference
  // on the 3D kernel, at the same bound as the 3D tiles (3e-5).
  double worst = 0;
  size_t n = 0;
  for (const auto& p : all_problems())
    for (Rule rule : {Rule::kMean, Rule::kCentre}) {
      BOOST_TEST_CONTEXT((rule == Rule::kMean ? "i3d-mean" : "centre")) {
        const auto w = inflated(p, rule);
        worst = std::max(worst, check_winograd<float>(p, &w)), ++n;
      }
    }
  BOOST_TEST(n >= 30u);
  BOOST_TEST_MESSAGE(n << " depth-factored problems, worst relative error " << worst);

  // Factoring is exact or not at all; VOLFEAT_DEPTH_FACTOR=0's kOff keeps the 3D tiles, with the same values.
  const ConvProblem p{"c24_to_40", {1, 6, 7, 9, 24}, 40, WindowGeometry::cube(3, 1, 1), true};
  const ConvSpec spec{p.in.c, p.out_channels, p.geometry};
  const auto wd = inflated(p, Rule::kMean);
  std::vector<float> w(wd.begin(), wd.end());
  const std::vector<float> b(size_t(p.out_channels), 0.25f);
  BOOST_TEST(cpu::Winograd3d<float>(spec, w, b).depth_factored());
  BOOST_TEST(cpu::Winograd3d<float>(spec, w, b).points() == 36);
  const cpu::Winograd3d<float> off(spec, w, b, Precision::kFloat32, DepthFactoring::kOff);
  BOOST_TEST(!off.depth_factored());
  BOOST_TEST(off.points() == 144);
  BOOST_TEST(!cpu::Winograd3d<double>(spec, wd, std::vector<double>(b.begin(), b.end())).depth_factored());
  auto nudged = w;
  nudged[5 * 27 + 9 + 4] = std::nextafter(nudged[5 * 27 + 9 + 4], 1.f);  // one weight of one middle slice, one ulp
  BOOST_TEST(!cpu::Winograd3d<float>(spec, nudged, b).depth_factored());
  const ref::Array5 x = random_array(p.in, 41);
  auto in = device<Cpu, float>(x);
  const Dims od = spec.output_dims(p.in);
  auto run = [&](const cpu::Winograd3d<float>& c) {
    Tensor<Cpu, float> y(od);
    c.forward(in.view(), y.view());
    return host<Cpu, float>(y.view());
  };
  BOOST_TEST(relative_error(run(cpu::Winograd3d<float>(spec, w, b)), run(off)) <= winograd_tolerance<float>());
  // ConvAlgorithm::make (the network's path) factors them too
  BOOST_TEST((ConvAlgorithm<Cpu, float>::make(spec, w, b, Cpu{}, {}, WinogradMode::kAll)->depth_factored()));

  // bf16 asked for: the depth-factored conv runs F(4x4) in float32 all the same (faster than bf16's
  // F(2x2), and F(2x4) in bf16 was 1.7e-2 off: winograd3d.hpp), so bit for bit the float32 conv.
  const cpu::Winograd3d<float> c16(spec, w, b, Precision::kBf16);
  BOOST_TEST(c16.depth_factored());
  BOOST_TEST((c16.precision() == Precision::kFloat32));
  BOOST_TEST((run(c16) == run(cpu::Winograd3d<float>(spec, w, b))));
  // not factored, bf16 stays bf16 where the CPU has it
  BOOST_TEST((cpu::Winograd3d<float>(spec, nudged, b, Precision::kBf16).precision() ==
              (cpu::gemm::bf16_available() ? Precision::kBf16 : Precision::kFloat32)));
}

BOOST_AUTO_TEST_CASE(conv_maxpool_uses_plane_pairs) {
  // ConvActMaxPool with Winograd: VGG's 2/2 pool (window on even planes) and a 3/2/1 pool (odd
  // starts, the ring of span + 2 planes), on odd depths.
  for (const auto& pg : {WindowGeometry::cube(2, 2, 0), WindowGeometry::cube(3, 2, 1)}) {
    const Dims xd{1, 7, 6, 5, 8};
    const ref::Array5 x = random_array(xd, 21);
    const auto w = random_values(size_t(12 * 8 * 27), 22), b = random_values(12, 23);
    const ConvSpec spec{8, 12, WindowGeometry::cube(3, 1, 1)};
    Conv3d<Cpu, float> direct(spec, w, b), wino(spec, w, b);
    wino.set_winograd(std::make_shared<const cpu::Winograd3d<float>>(spec, w, b));
    const BatchNorm3d<Cpu, float> bn(random_bn(12, 24));
    const MaxPool3d<Cpu, float> pool(pg);
    auto in = device<Cpu, float>(x);
    const Dims pd = pool.output_dims(direct.output_dims(xd));
    Tensor<Cpu, float> y1(pd), y2(pd);
    ConvActMaxPool<Cpu, float>::forward(direct, {&bn, true}, pool, in.view(), y1.view());
    ConvActMaxPool<Cpu, float>::forward(wino, {&bn, true}, pool, in.view(), y2.view());
    BOOST_TEST(relative_error(host<Cpu, float>(y2.view()), host<Cpu, float>(y1.view())) <= winograd_tolerance<float>());
  }
}

BOOST_AUTO_TEST_CASE(the_rule_and_the_environment_choose_per_layer) {
  const auto w = [](Index ci, Index co, const WindowGeometry& g) {
    return std::vector<float>(size_t(ci * co * g.taps()), 0.01f);
  };
  auto chosen = [&](Index ci, Index co, WindowGeometry g, WinogradMode mode) {
    return ConvAlgorithm<Cpu, float>::make({ci, co, g}, w(ci, co, g), {}, Cpu{}, {}, mode)->winograd() != nullptr;
  };
  const auto k3 = WindowGeometry::cube(3, 1, 1);
  BOOST_TEST(chosen(128, 32, k3, WinogradMode::kAuto));   // DenseNet's conv2
  BOOST_TEST(chosen(64, 64, k3, WinogradMode::kAuto));    // VGG's conv1_2
  BOOST_TEST(!chosen(3, 64, k3, WinogradMode::kAuto));    // VGG's conv1_1: too few input channels
  BOOST_TEST(!chosen(512, 512, k3, WinogradMode::kAuto)); // 64 MB of transformed weights
  BOOST_TEST(chosen(512, 512, k3, WinogradMode::kAll));
  BOOST_TEST(chosen(512, 512, k3, WinogradMode::kWide));  // the rule without the cap
  BOOST_TEST(!chosen(3, 64, k3, WinogradMode::kWide));
  BOOST_TEST(!chosen(64, 64, k3, WinogradMode::kOff));
  BOOST_TEST(!chosen(64, 64, WindowGeometry::cube(3, 2, 1), WinogradMode::kAll));   // stride 2
  BOOST_TEST(!chosen(64, 64, WindowGeometry::cube(3, 1, 2, 2), WinogradMode::kAll)); // dilation 2
  BOOST_TEST(!chosen(64, 64, WindowGeometry::cube(1), WinogradMode::kAll));
  // Where the network knows a conv's output size (BuildUpTo::input): Winograd from 16^3 outputs up;
  // unknown (0) keeps the channel rule; "all" takes every applicable conv whatever its size.
  auto chosen_for = [&](Index voxels, WinogradMode mode) {
    return ConvAlgorithm<Cpu, float>::make({128, 32, k3}, w(128, 32, k3), {}, Cpu{}, ConvUse{voxels}, mode)->winograd() != nullptr;
  };
  BOOST_TEST(kMinWinogradOutputVoxels == 4096);
  BOOST_TEST(chosen_for(4096, WinogradMode::kAuto));
  BOOST_TEST(!chosen_for(4095, WinogradMode::kAuto));
  BOOST_TEST(!chosen_for(512, WinogradMode::kWide));
  BOOST_TEST(chosen_for(0, WinogradMode::kAuto));
  BOOST_TEST(chosen_for(1, WinogradMode::kAll));
  // double keeps the direct conv.
  const auto d = ConvAlgorithm<Cpu, double>::make({64, 64, k3}, w(64, 64, k3), {}, Cpu{}, {}, WinogradMode::kAll);
  BOOST_TEST(d->winograd() == nullptr);

  const ScopedEnv env("VOLFEAT_WINOGRAD", "0");
  BOOST_TEST((winograd_mode_from_env() == WinogradMode::kOff));
  env.set("all");
  BOOST_TEST((winograd_mode_from_env() == WinogradMode::kAll));
  env.set("wide");
  BOOST_TEST((winograd_mode_from_env() == WinogradMode::kWide));
  env.set("yes please");
  BOOST_CHECK_THROW(winograd_mode_from_env(), Error);
  env.set(nullptr);
  BOOST_TEST((winograd_mode_from_env() == WinogradMode::kAuto));
}

BOOST_AUTO_TEST_CASE(make_builds_the_chosen_algorithm_from_the_start) {
  // The network's path (ConvAlgorithm::make: Winograd built without packing the direct weights) equals
  // the conv built direct and switched to Winograd afterwards (set_winograd), and make's direct conv
  // equals Conv3d's; odd extents, a bias, a fused BN+ReLU pre-activation.
  const ConvSpec spec{16, 20, WindowGeometry::cube(3, 1, 1)};
  const Dims xd{1, 5, 7, 6, 16};
  const ref::Array5 x = random_array(xd, 31);
  const auto wd = random_values(size_t(spec.weight_count()), 32), bd = random_values(20, 33);
  const std::vector<float> w(wd.begin(), wd.end()), b(bd.begin(), bd.end());
  const BatchNorm3d<Cpu, float> bn(random_bn(16, 34));
  auto in = device<Cpu, float>(x);
  const Dims od = spec.output_dims(xd);
  auto run = [&](const Conv3d<Cpu, float>& c) {
    Tensor<Cpu, float> y(od);
    c.forward(in.view(), y.view(), {&bn, true});
    return host<Cpu, float>(y.view());
  };
  for (WinogradMode mode : {WinogradMode::kAll, WinogradMode::kOff}) {
    const bool wino = mode == WinogradMode::kAll;
    const auto made = ConvAlgorithm<Cpu, float>::make(spec, w, b, Cpu{}, {}, mode);
    Conv3d<Cpu, float> direct(spec, w.data(), w.size(), b.data(), b.size());
    if (wino)  // with the network's float32 tile (winograd_float_tile)
      direct.set_winograd(std::make_shared<const cpu::Winograd3d<float>>(spec, w, b, Precision::kFloat32, DepthFactoring::kAuto,
                                                                         winograd_float_tile(Precision::kFloat32)));
    BOOST_TEST((made->winograd() != nullptr) == wino);
    BOOST_TEST(relative_error(run(*made), run(direct)) == 0.0);
  }
  // A Winograd conv of another layer is refused.
  const auto other = std::make_shared<const cpu::Winograd3d<float>>(ConvSpec{16, 20, WindowGeometry::cube(3, 1, 0)}, w, b);
  using WinogradConv = Conv3d<Cpu, float>;
  BOOST_CHECK_THROW(WinogradConv(spec, other), Error);
}

namespace {

// A network with random weights, built with VOLFEAT_WINOGRAD=mode (for `input`, where given).
Network<Cpu, float> network(const std::string& arch, const char* mode, std::optional<Dims> input = std::nullopt,
                            Precision precision = Precision::kFloat32) {
  const Graph g = build_graph(arch, 1);
  StateDict sd;
  sd.origin = arch + " (random)";
  uint64_t seed = 100;
  for (const auto& p : g.params(3)) {
    Index count = 1;
    for (Index s : p.shape) count *= s;
    auto v = random_values(size_t(count), seed++);
    const auto ends_with = [&](const std::string& s) {
      return p.key.size() >= s.size() && p.key.compare(p.key.size() - s.size(), s.size(), s) == 0;
    };
    const bool var = ends_with(".running_var");
    const bool weight_1d = p.shape.size() == 1 && ends_with(".weight");
    // He-like scaling keeps activations O(1) through the depth; BN variances positive, gammas near 1.
    const double fan_in = p.shape.size() == 5 ? double(count / p.shape[0]) : 1.0;
    for (auto& x : v) {
      if (var) x = 0.5 + 0.5 * std::abs(x);
      else if (weight_1d) x = 1.0 + 0.2 * x;
      else if (p.shape.size() == 5) x *= std::sqrt(6.0 / fan_in);
      else x *= 0.1;
    }
    sd.params[p.key] = Param{p.shape, std::vector<float>(v.begin(), v.end())};  // the float network rounds them anyway
  }
  const ScopedEnv env("VOLFEAT_WINOGRAD", mode);
  return Network<Cpu, float>(sd, kReleaseWeights, Cpu{precision}, BuildUpTo{{}, input});
}

}  // namespace

BOOST_AUTO_TEST_CASE(networks_with_winograd_match_the_direct_convs) {
  // Every tap of VGG-11 and DenseNet-121 (everything recorded, nothing fused), then only the last
  // module (everything fused: ConvActMaxPool's plane pairs, the dense layers' composition), Winograd
  // on every applicable conv ("all") against the direct convs ("0"), at the tolerance of the tests
  // against torch (1e-4 relative per tap).
  for (const std::string arch : {"vgg11", "densenet121"}) {
    const auto on = network(arch, "all"), off = network(arch, "0");
    const Dims xd{1, 32, 32, 32, 1};
    const auto xv = random_values(size_t(xd.voxels()), 31);
    const std::vector<float> x(xv.begin(), xv.end());
    const TensorView<const float> in(x.data(), xd);
    auto r_on = Recorder<Cpu, float>::everything(), r_off = Recorder<Cpu, float>::everything();
    on.forward(in, r_on);
    off.forward(in, r_off);
    double worst = 0;
    std::string worst_name;
    for (const auto& m : on.modules()) {
      BOOST_TEST_REQUIRE(r_on.has(m.name));
      for (float v : r_off.at(m.name).data) BOOST_TEST_REQUIRE(std::isfinite(v), arch << " " << m.name << " not finite");
      const double e = relative_error(r_on.at(m.name).data, r_off.at(m.name).data);
      BOOST_TEST(e <= 1e-4, arch << " " << m.name << ": " << e);
      if (e > worst) worst = e, worst_name = m.name;
    }
    const std::string last = on.modules().back().name;
    Recorder<Cpu, float> f_on({last}), f_off({last});
    on.forward(in, f_on);
    off.forward(in, f_off);
    const double ef = relative_error(f_on.at(last).data, f_off.at(last).data);
    BOOST_TEST(ef <= 1e-4);
    BOOST_TEST_MESSAGE(arch << ": worst tap " << worst_name << " " << worst << ", fused " << last << " " << ef);
  }
}

BOOST_AUTO_TEST_CASE(a_network_built_for_its_input_leaves_small_convs_direct) {
  // DenseNet-121 built for 64^3 (BuildUpTo::input): its dense layers' 3x3x3 convs have 16^3 outputs in
  // block 1 (Winograd), 8^3, 4^3 and 2^3 in blocks 2-4 (direct); built for no input, all 58 are
  // Winograd. The mixed network matches the direct one at 64^3 within the tests' 1e-4.
  const Dims xd{1, 64, 64, 64, 1};
  const auto sized = network("densenet121", "1", xd), unsized = network("densenet121", "1"), off = network("densenet121", "0");
  auto winograd_convs = [](const Network<Cpu, float>& net, const std::string& block) {
    const PlanTraits t = net.plan_traits();
    int n = 0;
    for (size_t i = 0; i < t.winograd_points.size(); ++i)
      if (t.winograd_points[i] > 0 && net.graph().node(int(i)).name.rfind("features." + block + ".", 0) == 0) ++n;
    return n;
  };
  const int layers[] = {6, 12, 24, 16};
  for (int b = 0; b < 4; ++b) {
    const std::string block = "denseblock" + std::to_string(b + 1);
    BOOST_TEST(winograd_convs(unsized, block) == layers[b], block);
    BOOST_TEST(winograd_convs(sized, block) == (b == 0 ? layers[b] : 0), block);
  }
  const auto xv = random_values(size_t(xd.voxels()), 41);
  const std::vector<float> x(xv.begin(), xv.end());
  const TensorView<const float> in(x.data(), xd);
  const std::string last = sized.modules().back().name;
  Recorder<Cpu, float> r_sized({last}), r_off({last});
  sized.forward(in, r_sized);
  off.forward(in, r_off);
  const double e = relative_error(r_sized.at(last).data, r_off.at(last).data);
  BOOST_TEST(e > 0.0);  // block 1 did run Winograd
  BOOST_TEST(e <= 1e-4);
}

BOOST_AUTO_TEST_CASE(a_network_built_for_its_input_fits_its_tiles_to_the_planes) {
  // DenseNet-121 built for 32x96x96: block 1's 3x3x3 convs have 8x24x24 outputs, planes that 6-wide tiles
  // cover exactly (wide_tile_wins); blocks 2-4 run direct. A float32 network runs them in F(4x4x4) on
  // AVX-512 and AVX2 (216 points; F(2x4x4) on the generic kernels), in F(4x6x6) under
  // VOLFEAT_WINOGRAD=wide, its taps within the tests' 1e-4 of the direct network; a bf16 one with
  // AVX512-BF16 in F(4x6x6) (384; on AMX tiles the bf16 tile, 64), its taps within bf16's 1e-2 of the
  // float32 direct network.
  const Dims xd{1, 32, 96, 96, 1};
  const bool vector = cpu::cpu_isa() >= cpu::CpuIsa::kAvx2;
  const bool bf16 = cpu::gemm::bf16_available();
  auto block1_points = [](const Network<Cpu, float>& net) {
    std::vector<int> points;
    const PlanTraits t = net.plan_traits();
    for (size_t i = 0; i < t.winograd_points.size(); ++i)
      if (t.winograd_points[i] > 0) {
        BOOST_TEST(net.graph().node(int(i)).name.rfind("features.denseblock1.", 0) == 0u);
        points.push_back(t.winograd_points[i]);
      }
    return points;
  };
  const auto float32 = network("densenet121", "1", xd), wide = network("densenet121", "wide", xd);
  const auto off = network("densenet121", "0", xd);
  BOOST_TEST((block1_points(float32) == std::vector<int>(6, vector ? 216 : 144)));
  BOOST_TEST((block1_points(wide) == std::vector<int>(6, vector ? 384 : 144)));
  const auto xv = random_values(size_t(xd.voxels()), 42);
  const std::vector<float> x(xv.begin(), xv.end());
  const TensorView<const float> in(x.data(), xd);
  const std::vector<std::string> taps{"features.denseblock1", "features.transition1.pool", off.modules().back().name};
  Recorder<Cpu, float> r_wide(taps), r_off(taps);
  wide.forward(in, r_wide);
  off.forward(in, r_off);
  for (const std::string& tap : taps) {
    const double e = relative_error(r_wide.at(tap).data, r_off.at(tap).data);
    BOOST_TEST(e > 0.0, tap);  // block 1 did run Winograd
    BOOST_TEST(e <= 1e-4, tap);
    BOOST_TEST_MESSAGE("float32 network with F(4x6x6), " << tap << ": " << e);
  }
  if (!bf16) {
    BOOST_TEST_MESSAGE("bf16 half skipped: " << cpu::gemm::bf16_unavailable_reason());
    return;
  }
  const auto net16 = network("densenet121", "1", xd, Precision::kBf16);
  BOOST_TEST((block1_points(net16) == std::vector<int>(6, cpu::gemm::bf16_gemms_on_tiles() ? 64 : 384)));
  Recorder<Cpu, float> r16(taps);
  net16.forward(in, r16);
  for (const std::string& tap : taps) {
    const double e = relative_error(r16.at(tap).data, r_off.at(tap).data);
    BOOST_TEST(e <= 1e-2, tap);
    BOOST_TEST_MESSAGE("bf16 network with F(4x6x6), " << tap << ": " << e << " from float32");
  }
}
