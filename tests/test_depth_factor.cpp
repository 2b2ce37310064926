// The Cpu direct conv on depth-factored kernels (backend/cpu/depth_factor.hpp: slices along kD each
// zero or one and the same 2D kernel, as inflating along D with i3d-mean or centre makes them) against
// the naive reference on the full 3D kernel: every shape of the shared problem list with kD > 1 plus
// odd ones, both rules, plain and with the fused pre-activation (BN+ReLU of the input), bias and
// post-activation (BN+ReLU) and channel slices in and out, whole and one output plane at a time
// (forward_plane: the stem's ConvActMaxPool); kernels that are not factored stay 3D; the same values
// as the 3D packing within the direct conv's bound; and bf16 against a reference on bf16-rounded sums
// and weights.
//
// Tolerance: 1e-5 in float, the direct conv's (primitive_checks.hpp). Summing the rows along depth
// before the GEMM only reorders the additions.
#define BOOST_TEST_MODULE depth_factor
#include "support/plane_state_checks.hpp"
#include "support/primitive_checks.hpp"
#include "volfeat/backend/cpu.hpp"

using namespace volfeat;
using namespace volfeat::test;

namespace {

enum class Rule { kMean, kCentre };

// Odd cases beyond the shared list: kD 2 and 5, dilation along D, padding only along D, a
// strided 5-deep kernel, a depth of 1 (every kd but one in the padding).
std::vector<ConvProblem> extra_problems() {
  return {
      {"kd2_even", {1, 6, 5, 7, 4}, 6, geom({2, 3, 3}, {1, 1, 1}, {0, 1, 1}), true},
      {"kd5_s2_pad_d_only", {1, 11, 6, 9, 3}, 5, geom({5, 3, 3}, {2, 1, 2}, {2, 0, 1}), false},
      {"dilated_d", {1, 9, 6, 8, 5}, 7, geom({3, 3, 3}, {1, 1, 1}, {2, 1, 1}, {2, 1, 1}), true},
      {"depth_1_input", {1, 1, 7, 9, 2}, 4, WindowGeometry::cube(3, 1, 1), true},
  };
}

std::vector<ConvProblem> depth_problems() {
  std::vector<ConvProblem> ps;
  for (const auto& p : conv_problems())
    if (p.geometry.kernel[0] > 1) ps.push_back(p);
  for (const auto& p : extra_problems()) ps.push_back(p);
  return ps;
}

// (O, I, kD, kH, kW) from random (O, I, kH, kW) by the rule, in float as a StateDict holds it.
std::vector<float> inflated(const ConvProblem& p, Rule rule) {
  const Index kd_n = p.geometry.kernel[0], plane = p.geometry.kernel[1] * p.geometry.kernel[2];
  const auto w2 = random_values(size_t(p.out_channels * p.in.c * plane), 2);
  std::vector<float> w(size_t(p.out_channels * p.in.c * kd_n * plane));
  for (Index u = 0; u < p.out_channels * p.in.c; ++u)
    for (Index kd = 0; kd < kd_n; ++kd)
      for (Index j = 0; j < plane; ++j)
        w[size_t((u * kd_n + kd) * plane + j)] =
            rule == Rule::kMean ? float(w2[size_t(u * plane + j)] / double(kd_n))
                                : (kd == kd_n / 2 ? float(w2[size_t(u * plane + j)]) : 0.f);
  return w;
}

std::vector<double> as_double(const std::vector<float>& v) { return {v.begin(), v.end()}; }

}  // namespace

void check_factored(const ConvProblem& p, Rule rule) {
  BOOST_TEST_CONTEXT("problem " << p.name << ", rule " << (rule == Rule::kMean ? "i3d-mean" : "centre")) {
    const ref::Array5 x = random_array(p.in, 1);
    const std::vector<float> w = inflated(p, rule);
    const auto wd = as_double(w);
    const auto b = p.bias ? random_values(static_cast<size_t>(p.out_channels), 3) : std::vector<double>{};
    const std::vector<float> bf(b.begin(), b.end());
    const ConvSpec spec{p.in.c, p.out_channels, p.geometry};
    const Conv3d<Cpu, float> conv(spec, w.data(), w.size(), bf.data(), bf.size());
    const Conv3d<Cpu, float> full(spec, w.data(), w.size(), bf.data(), bf.size(), Precision::kFloat32,
                                  DepthFactoring::kOff);
    BOOST_TEST(conv.depth_factored());
    BOOST_TEST(!full.depth_factored());

    auto in = device<Cpu, float>(x);
    Tensor<Cpu, float> out(conv.output_dims(p.in)), out_full(conv.output_dims(p.in));
    conv.forward(in.view(), out.view());
    full.forward(in.view(), out_full.view());
    const ref::Array5 want = ref::conv3d(x, wd, b, p.out_channels, p.geometry);
    BOOST_TEST(relative_error(host<Cpu, float>(out.view()), ref::to_channels_last<double>(want)) <= 1e-5);
    BOOST_TEST(relative_error(host<Cpu, float>(out.view()), host<Cpu, float>(out_full.view())) <= 1e-5);

    // Fused and strided: input = channels [2, 2+C) of a wider tensor, output = channels [3, 3+O).
    const BatchNormParams bn_in = random_bn(p.in.c, 4), bn_out = random_bn(p.out_channels, 5);
    const BatchNorm3d<Cpu, float> pre(bn_in), post(bn_out);
    const ref::Array5 filler = random_array({p.in.n, p.in.d, p.in.h, p.in.w, 2}, 6);
    const ref::Array5 tail = random_array({p.in.n, p.in.d, p.in.h, p.in.w, 3}, 7);
    auto wide = device<Cpu, float>(ref::concat_channels({filler, x, tail}));
    Dims wide_out = conv.output_dims(p.in);
    wide_out.c = p.out_channels + 4;
    auto out2 = device<Cpu, float>(random_array(wide_out, 8));
    conv.forward(wide.view().channels(2, p.in.c), out2.view().channels(3, p.out_channels), {&pre, true}, {&post, true});
    const ref::Array5 want2 = ref::relu(ref::batchnorm(
        ref::conv3d(ref::relu(ref::batchnorm(x, bn_in)), wd, b, p.out_channels, p.geometry), bn_out));
    const Dims od = conv.output_dims(p.in);
    // The output slice, copied out voxel by voxel (channels 3 .. 3+O of the wide output).
    const auto wide_host = host<Cpu, float>(out2.view());
    std::vector<float> slice(size_t(od.voxels() * od.c));
    for (Index v = 0; v < od.voxels(); ++v)
      for (Index c = 0; c < od.c; ++c) slice[size_t(v * od.c + c)] = wide_host[size_t(v * wide_out.c + 3 + c)];
    BOOST_TEST(relative_error(slice, ref::to_channels_last<double>(want2)) <= 1e-5);

    // Fused on a contiguous input: the pre-activation applied voxel by voxel (its scale is per channel).
    Tensor<Cpu, float> out3(od);
    conv.forward(in.view(), out3.view(), {&pre, true}, {&post, true});
    BOOST_TEST(relative_error(host<Cpu, float>(out3.view()), ref::to_channels_last<double>(want2)) <= 1e-5);

    // One output plane at a time, as ConvActMaxPool computes the stem.
    Tensor<Cpu, float> planes(od);
    for (Index n = 0; n < od.n; ++n)
      for (Index z = 0; z < od.d; ++z)
        conv.forward_plane(in.view(), n, z, TensorView<float>(planes.view().voxel(n, z, 0, 0), Dims{1, 1, od.h, od.w, od.c}));
    BOOST_TEST((host<Cpu, float>(planes.view()) == host<Cpu, float>(out.view())), "forward_plane differs from forward");

    if (cpu::gemm::bf16_available()) {
      const Conv3d<Cpu, float> c16(spec, w.data(), w.size(), bf.data(), bf.size(), Precision::kBf16);
      BOOST_TEST(c16.depth_factored());
      BOOST_TEST((c16.precision() == Precision::kBf16));
      Tensor<Cpu, float> o16(od);
      c16.forward(in.view(), o16.view());
      // Exactly: the rows summed along depth in float (kd ascending, as the conv adds them) and rounded
      // to bf16, the 2D slice rounded to bf16, then a (1, kH, kW) conv in double: the conv's float
      // accumulation is all that differs (test_bf16's 1e-5).
      const WindowGeometry& g = p.geometry;
      const Index kd_n = g.kernel[0], plane = g.kernel[1] * g.kernel[2];
      ref::Array5 sum16(p.in.n, p.in.c, od.d, p.in.h, p.in.w);
      for (Index n = 0; n < p.in.n; ++n)
        for (Index c = 0; c < p.in.c; ++c)
          for (Index z = 0; z < od.d; ++z)
            for (Index y = 0; y < p.in.h; ++y)
              for (Index v = 0; v < p.in.w; ++v) {
                float acc = 0.f;
                for (Index kd = 0; kd < kd_n; ++kd) {
                  const Index iz = z * g.stride[0] - g.padding[0] + kd * g.dilation[0];
                  if ((rule == Rule::kCentre && kd != kd_n / 2) || iz < 0 || iz >= p.in.d) continue;
                  acc += float(x.at(n, c, iz, y, v));
                }
                sum16.at(n, c, z, y, v) = cpu::bf16_to_float(cpu::round_to_bf16(acc));
              }
      std::vector<double> s16(size_t(p.out_channels * p.in.c * plane));
      for (Index u = 0; u < p.out_channels * p.in.c; ++u)
        for (Index j = 0; j < plane; ++j)
          s16[size_t(u * plane + j)] =
              cpu::bf16_to_float(cpu::round_to_bf16(w[size_t((u * kd_n + (rule == Rule::kCentre ? kd_n / 2 : 0)) * plane + j)]));
      const WindowGeometry g2 = geom({1, g.kernel[1], g.kernel[2]}, {1, g.stride[1], g.stride[2]}, {0, g.padding[1], g.padding[2]},
                                     {1, g.dilation[1], g.dilation[2]});
      const ref::Array5 want16 = ref::conv3d(sum16, s16, b, p.out_channels, g2);
      BOOST_TEST(relative_error(host<Cpu, float>(o16.view()), ref::to_channels_last<double>(want16)) <= 1e-5);
      // And against float32's exact values: 1.7e-3-3.9e-3 on these shapes, 1.1e-2 on the single output voxel
      // of kernel_equals_input_no_pad (its 3D bf16 conv: 7.1e-3), so 2e-2 here; whole networks are held
      // to issue #17's 1e-2 by tests/cli/test_precision.py.
      BOOST_TEST(relative_error(host<Cpu, float>(o16.view()), ref::to_channels_last<double>(want)) <= 2e-2);
    }
  }
}

// bf16 plane by plane with a pass's PlaneState (ConvActMaxPool's stem): where stride_h is even and the merged
// tap row odd-long, the depth-summed rows come paired from one table per output plane (paired_tap_rows.hpp)
// instead of being summed per output row, and every output is the per-row path's, bit for bit, with and without
// the fused activations; the table is one plane of the ring's layout.
BOOST_AUTO_TEST_CASE(depth_summed_tables_are_the_per_row_sums) {
  if (!cpu::gemm::bf16_available()) {
    BOOST_TEST_MESSAGE("skipped: " << cpu::gemm::bf16_unavailable_reason());
    return;
  }
  int tabled = 0;
  for (const ConvProblem& p : depth_problems())
    for (Rule rule : {Rule::kMean, Rule::kCentre}) {
      if (p.in.c % 2 == 0 || !cpu::paired_rows::applies(p.geometry)) continue;
      BOOST_TEST_CONTEXT("problem " << p.name << ", rule " << (rule == Rule::kMean ? "i3d-mean" : "centre")) {
        const std::vector<float> w = inflated(p, rule);
        const ConvSpec spec{p.in.c, p.out_channels, p.geometry};
        const Conv3d<Cpu, float> conv(spec, w.data(), w.size(), nullptr, 0, Precision::kBf16);
        BOOST_TEST_REQUIRE(conv.depth_factored());
        BOOST_TEST_REQUIRE(conv.paired_plane_slots() == 1);
        const Dims od = conv.output_dims(p.in);
        const cpu::paired_rows::Layout l = cpu::paired_rows::layout(p.geometry, p.in.c, p.in.w, od.h, od.w, true);
        BOOST_TEST(l.slots == 1);
        check_planes_match_forward(conv, random_array(p.in, 21), 22, size_t(l.plane_values()) * sizeof(cpu::Bf16));
        ++tabled;
      }
    }
  BOOST_TEST(tabled >= 4);  // the list's odd-channel stride-2 stems, both rules
}

BOOST_AUTO_TEST_CASE(factored_conv_matches_reference) {
  if (!cpu::gemm::bf16_available()) BOOST_TEST_MESSAGE("bf16 checks skipped: " << cpu::gemm::bf16_unavailable_reason());
  for (const ConvProblem& p : depth_problems())
    for (Rule rule : {Rule::kMean, Rule::kCentre}) check_factored(p, rule);
}

BOOST_AUTO_TEST_CASE(kernels_that_are_not_depth_factored_stay_3d) {
  const ConvSpec spec{3, 4, WindowGeometry::cube(3, 1, 1)};
  const ConvProblem p{"x", {1, 5, 5, 5, 3}, 4, spec.geometry, false};
  std::vector<float> w = inflated(p, Rule::kMean);
  const auto factored = [&](const std::vector<float>& v) { return Conv3d<Cpu, float>(spec, v.data(), v.size()).depth_factored(); };
  BOOST_TEST(factored(w));
  w[5] += 1e-3f;  // one value of one slice
  BOOST_TEST(!factored(w));
  const auto r = random_values(w.size(), 9);
  BOOST_TEST(!factored(std::vector<float>(r.begin(), r.end())));
  BOOST_TEST(!factored(std::vector<float>(w.size(), 0.f)));
  // Two slices kept, one zero: still factored (mask 1, 0, 1).
  std::vector<float> two = inflated(p, Rule::kMean);
  for (Index u = 0; u < 12; ++u)
    for (Index j = 0; j < 9; ++j) two[size_t((u * 3 + 1) * 9 + j)] = 0.f;
  const auto f = cpu::depth_factor(spec, two.data());
  BOOST_TEST(f.factored());
  BOOST_TEST((f.mask == std::vector<uint8_t>{1, 0, 1}));
  // 1x1x1 and kD = 1 kernels are left alone.
  const ConvSpec flat{3, 4, geom({1, 3, 3}, {1, 1, 1}, {0, 1, 1})};
  const std::vector<float> wf(size_t(3 * 4 * 9), 0.5f);
  BOOST_TEST(!cpu::depth_factor(flat, wf.data()).factored());
}
