// The Cpu fast-path pieces not covered by the shared primitive list: the fused ops (conv+BN+ReLU+maxpool
// over a ring of planes; BN+ReLU+avgpool; a dense layer's two convs over a ring of bottleneck planes) against their default composition from single ops, the
// conv with the residual add and ReLU of a ResNet block in its loop; the plane-by-plane conv against the whole conv, the micro-kernels' epilogue on NaN, and the micro-kernels of
// every instruction set this CPU runs against a naive GEMM.
#define BOOST_TEST_MODULE gemm_kernels
#include <boost/mpl/list.hpp>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>

#include "support/cpu_isa_guard.hpp"
#include "support/primitive_checks.hpp"
#include "support/scoped_env.hpp"
#include "volfeat/backend/cpu.hpp"
#include "volfeat/ops/fused.hpp"

using namespace volfeat;
using namespace volfeat::test;

using Scalars = boost::mpl::list<float, double>;

namespace {

template <class T>
std::vector<double> as_double(const std::vector<T>& v) {
  return std::vector<double>(v.begin(), v.end());
}

}  // namespace

BOOST_AUTO_TEST_CASE_TEMPLATE(conv_relu_maxpool_matches_composition, T, Scalars) {
  struct Case {
    Dims in;
    Index out;
    WindowGeometry conv, pool;
  };
  const std::vector<Case> cases{
      {{1, 13, 11, 9, 1}, 64, WindowGeometry::cube(7, 2, 3), WindowGeometry::cube(3, 2, 1)},   // stem, odd
      {{2, 12, 10, 20, 1}, 16, WindowGeometry::cube(7, 2, 3), WindowGeometry::cube(3, 2, 1)},  // batch 2, even
      {{1, 9, 8, 7, 3}, 5, WindowGeometry::cube(3, 1, 1), geom({2, 3, 2}, {1, 2, 2}, {0, 1, 1})},
  };
  for (const Case& c : cases) {
    BOOST_TEST_CONTEXT("conv+maxpool on " << to_string(c.in)) {
      const ref::Array5 x = random_array(c.in, 31);
      const auto w = random_values(size_t(c.out * c.in.c * c.conv.taps()), 32);
      const Conv3d<Cpu, T> conv({c.in.c, c.out, c.conv}, w);
      const BatchNorm3d<Cpu, T> bn(random_bn(c.out, 33));
      const MaxPool3d<Cpu, T> pool(c.pool);
      auto in = device<Cpu, T>(x);
      Tensor<Cpu, T> full(conv.output_dims(c.in));
      conv.forward(in.view(), full.view(), {}, {&bn, true});
      Dims od = pool.output_dims(full.dims());
      Tensor<Cpu, T> want(od);
      pool.forward(full.view(), want.view());
      od.c += 3;  // written into a channel slice of a wider buffer, as DenseNet's block 1 buffer
      Tensor<Cpu, T> got(od);
      got.set_zero();
      ConvActMaxPool<Cpu, T>::forward(conv, {&bn, true}, pool, in.view(), got.view().channels(1, c.out));
      const auto got_slice = host<Cpu, T>(got.view().channels(1, c.out));
      const auto want_all = host<Cpu, T>(want.view());
      const auto before = host<Cpu, T>(got.view().channels(0, 1));
      BOOST_TEST(relative_error(got_slice, as_double(want_all)) == 0.0);
      BOOST_TEST((before == std::vector<T>(size_t(od.voxels()), T(0))), "channels outside the slice were written");
    }
  }
}

// The fused max pool's vector rows take a plain vector max and pool a window again by torch's rule (greater, or
// NaN) only where it holds a NaN: conv outputs with NaN (a NaN input voxel, no activation after the conv) give
// the composition's NaN at the same voxels, its values bit for bit elsewhere, on vector (64 and 16 channels) and
// scalar (5) rows, at this process's ISA (the cpu_isa variants run AVX2 and the generic code).
BOOST_AUTO_TEST_CASE(conv_maxpool_propagates_nan_as_the_composition) {
  struct Case {
    Dims in;
    Index out;
  };
  for (const Case& c : {Case{{1, 13, 11, 9, 1}, 64}, Case{{1, 12, 10, 20, 1}, 16}, Case{{1, 14, 12, 16, 1}, 5}}) {
    BOOST_TEST_CONTEXT("conv+maxpool with NaN on " << to_string(c.in) << " -> " << c.out) {
      const WindowGeometry conv_g = WindowGeometry::cube(7, 2, 3), pool_g = WindowGeometry::cube(3, 2, 1);
      ref::Array5 x = random_array(c.in, 51);
      x.at(0, 0, 3, 4, 5) = std::numeric_limits<double>::quiet_NaN();
      const auto w = random_values(size_t(c.out * c.in.c * conv_g.taps()), 52);
      const Conv3d<Cpu, float> conv({c.in.c, c.out, conv_g}, w);
      const MaxPool3d<Cpu, float> pool(pool_g);
      auto in = device<Cpu, float>(x);
      Tensor<Cpu, float> full(conv.output_dims(c.in));
      conv.forward(in.view(), full.view());
      Tensor<Cpu, float> want(pool.output_dims(full.dims())), got(want.dims());
      pool.forward(full.view(), want.view());
      ConvActMaxPool<Cpu, float>::forward(conv, {}, pool, in.view(), got.view());
      const auto g = host<Cpu, float>(got.view()), e = host<Cpu, float>(want.view());
      size_t nans = 0, same = 0;
      for (size_t i = 0; i < g.size(); ++i) {
        nans += std::isnan(e[i]);
        same += std::isnan(e[i]) ? std::isnan(g[i]) : std::memcmp(&g[i], &e[i], sizeof(float)) == 0;
      }
      BOOST_TEST(same == g.size());
      BOOST_TEST(nans >= size_t(c.out));  // the NaN voxel's pooled outputs, every channel
      BOOST_TEST(nans < g.size());
    }
  }
}

BOOST_AUTO_TEST_CASE_TEMPLATE(activated_avgpool_matches_composition, T, Scalars) {
  // ActivatedAvgPool (float: the channels a vector at a time on AVX2 / AVX-512, this process's ISA, which
  // the cpu_isa tests set; 37 channels leave vector tails) against BN/ReLU then AvgPool3d, for each
  // activation (BN+ReLU, BN, ReLU, none) and for DenseNet's 2/2 window and a padded 3/2 one, dividing by
  // the whole window and by the voxels inside it.
  struct Window {
    WindowGeometry g;
    bool include_pad;
  };
  const std::vector<Window> windows{{WindowGeometry::cube(2, 2, 0), true},
                                    {WindowGeometry::cube(3, 2, 1), true},
                                    {WindowGeometry::cube(3, 2, 1), false}};
  for (const Dims& d : {Dims{1, 8, 6, 10, 37}, Dims{2, 7, 9, 5, 16}, Dims{1, 4, 4, 4, 256}})
    for (const Window& w : windows)
      for (int mode = 0; mode < 4; ++mode) {
        const bool use_bn = mode < 2, relu = mode == 0 || mode == 2;
        BOOST_TEST_CONTEXT("activated avgpool on " << to_string(d) << ", window " << w.g.kernel[0] << "/" << w.g.stride[0]
                                                   << (w.include_pad ? "" : " (divisor: inside)") << ", mode " << mode) {
          ref::Array5 x = random_array(d, 41);
          x.v[3] = std::numeric_limits<double>::quiet_NaN();  // NaN goes through BN, ReLU and the sum
          const BatchNorm3d<Cpu, T> bn(random_bn(d.c, 42));
          const AvgPool3d<Cpu, T> pool(w.g, w.include_pad);
          auto in = device<Cpu, T>(x);
          Tensor<Cpu, T> act(d), want(pool.output_dims(d)), got(pool.output_dims(d));
          if (use_bn) bn.forward(in.view(), act.view(), relu);
          else if (relu) Relu<Cpu, T>::forward(in.view(), act.view());
          else act = device<Cpu, T>(x);
          pool.forward(act.view(), want.view());
          ActivatedAvgPool<Cpu, T>::forward({use_bn ? &bn : nullptr, relu}, pool, in.view(), got.view());
          const auto got_all = host<Cpu, T>(got.view());
          const auto want_all = host<Cpu, T>(want.view());
          std::vector<T> got_finite, want_finite;
          for (size_t i = 0; i < got_all.size(); ++i) {
            BOOST_TEST_REQUIRE(std::isnan(got_all[i]) == std::isnan(want_all[i]), "NaN at value " << i);
            if (!std::isnan(got_all[i])) got_finite.push_back(got_all[i]), want_finite.push_back(want_all[i]);
          }
          BOOST_TEST(got_finite.size() < got_all.size());  // the NaN reached an output
          BOOST_TEST(relative_error(got_finite, as_double(want_finite)) <= tolerance<T>());
        }
      }
}

BOOST_AUTO_TEST_CASE_TEMPLATE(dense_layer_convs_match_composition, T, Scalars) {
  // A dense layer's norm1-relu1-conv1(1x1x1)-norm2-relu2-conv2: the Cpu op keeps a ring of conv1
  // planes; the composition materialises the whole bottleneck. Input and output are channel slices
  // of wider buffers, as in a dense block. In float, conv2 also as Winograd F(2x4x4) (plane pairs, a
  // ring of 4) and F(4x4x4) (fours, a ring of 8, filled in fours from plane 3).
  struct Case {
    Dims in;
    Index mid, out;
    WindowGeometry conv2;
  };
  const std::vector<Case> cases{
      {{1, 7, 9, 11, 40}, 128, 32, WindowGeometry::cube(3, 1, 1)},          // DenseNet's, odd grid
      {{2, 5, 6, 4, 19}, 24, 12, WindowGeometry::cube(3, 1, 1)},            // batch 2, odd channels
      {{1, 9, 5, 6, 16}, 32, 16, geom({3, 3, 3}, {2, 1, 2}, {1, 1, 1}, {2, 1, 1})},  // stride 2, dilation 2 in D
      {{1, 1, 4, 4, 8}, 16, 16, WindowGeometry::cube(3, 1, 1)},             // one plane
  };
  // Through the ring (whole_values 0), and whole (every case's bottleneck is under kWholeBottleneckValues).
  for (const Case& c : cases) {
    for (const Index whole_values : {Index(0), kWholeBottleneckValues})
      for (const Index step : {1, 2, 4}) {
        if (step > 1 && !(std::is_same_v<T, float> && cpu::Winograd3d<float>::applicable({c.mid, c.out, c.conv2}))) continue;
        BOOST_TEST_CONTEXT("dense layer convs on " << to_string(c.in) << " -> " << c.mid << " -> " << c.out << ", plane step "
                                                   << step << (whole_values ? ", whole" : ", ring")) {
          Dims wide = c.in;
          wide.c += 5;
          const ref::Array5 x = random_array(wide, 61);
          const Conv3d<Cpu, T> conv1({c.in.c, c.mid, WindowGeometry::cube(1, 1, 0)}, random_values(size_t(c.mid * c.in.c), 62));
          const auto w2 = random_values(size_t(c.out * c.mid * c.conv2.taps()), 63);
          Conv3d<Cpu, T> conv2({c.mid, c.out, c.conv2}, w2);
          if constexpr (std::is_same_v<T, float>)
            if (step > 1)
              conv2.set_winograd(std::make_shared<const cpu::Winograd3d<float>>(
                  conv2.spec(), w2, std::vector<double>{}, Precision::kFloat32, DepthFactoring::kAuto,
                  step == 4 ? cpu::winograd::FloatTile::kF4x4x4 : cpu::winograd::FloatTile::kF2x4x4));
          BOOST_TEST(conv2.plane_step() == step);
          const BatchNorm3d<Cpu, T> norm1(random_bn(c.in.c, 64)), norm2(random_bn(c.mid, 65));
          auto in_wide = device<Cpu, T>(x);
          const auto in = in_wide.view().channels(0, c.in.c);
          const Dims md = conv1.output_dims(c.in);
          Dims od = conv2.output_dims(md);
          Tensor<Cpu, T> mid(md), want(od);
          conv1.forward(in, mid.view(), {&norm1, true}, {&norm2, true});
          conv2.forward(mid.view(), want.view());
          od.c += 3;
          Tensor<Cpu, T> got(od), scratch;
          got.set_zero();
          for (int call = 0; call < 2; ++call)  // the second call reuses the scratch ring
            DenseLayerConvs<Cpu, T>::forward(conv1, {&norm1, true}, {&norm2, true}, conv2, in, got.view().channels(2, c.out),
                                             scratch, {}, whole_values);
          const Dims sd = dense_layer_scratch(c.conv2, step, md, whole_values);
          if constexpr (std::is_same_v<T, float>)
            BOOST_TEST((scratch.dims() == sd), "scratch " << to_string(scratch.dims()));
          BOOST_TEST((sd == md) == (whole_values > 0));
          // Direct: the same kernels on the same rows, bit-identical. Winograd: its GEMM's blocking (and so
          // its rounding) depends on the number of tiles per call.
          const double e = relative_error(host<Cpu, T>(got.view().channels(2, c.out)), as_double(host<Cpu, T>(want.view())));
          if (step == 1) BOOST_TEST(e == 0.0);
          else BOOST_TEST(e <= tolerance<T>());
          BOOST_TEST((host<Cpu, T>(got.view().channels(0, 2)) == std::vector<T>(size_t(od.voxels() * 2), T(0))),
                     "channels outside the slice were written");
        }
      }
  }
}

// The shared list's bands_* problems are the ones whose float32 direct conv runs in bands of output rows
// (backend/cpu/conv_bands.hpp) by default, so that check_conv, the plane-by-plane and residual checks below
// and the depth-factored ones cover that path; the widest panels below them (DenseNet's 128 -> 32) keep
// rows. Under VOLFEAT_CONV_BANDS=all (a second run of these tests) every direct conv wider than one tap
// runs in bands, under 0 none. double keeps its Eigen path.
BOOST_AUTO_TEST_CASE(bands_run_where_the_mode_says) {
  const cpu::conv_bands::Mode mode = cpu::conv_bands::mode();
  int bands = 0;
  for (const auto& p : conv_problems()) {
    const auto w = random_values(size_t(p.out_channels * p.in.c * p.geometry.taps()), 2);
    const Conv3d<Cpu, float> conv({p.in.c, p.out_channels, p.geometry}, w);
    const bool want = mode == cpu::conv_bands::Mode::kAll   ? p.geometry.taps() > 1
                      : mode == cpu::conv_bands::Mode::kAuto ? p.name.rfind("bands_", 0) == 0
                                                             : false;
    BOOST_TEST(conv.runs_in_bands() == want, p.name << ": runs_in_bands() " << conv.runs_in_bands());
    bands += conv.runs_in_bands();
    const Conv3d<Cpu, double> exact({p.in.c, p.out_channels, p.geometry}, random_values(w.size(), 2));
    BOOST_TEST(!exact.runs_in_bands());
  }
  BOOST_TEST_MESSAGE(bands << " of " << conv_problems().size() << " shared conv problems run in bands under VOLFEAT_CONV_BANDS="
                            << (mode == cpu::conv_bands::Mode::kAll ? "all" : mode == cpu::conv_bands::Mode::kOff ? "0" : "auto"));
  if (mode == cpu::conv_bands::Mode::kAuto) BOOST_TEST(bands == 2);
  BOOST_CHECK_THROW(cpu::conv_bands::parse_mode("bands"), std::runtime_error);
  BOOST_TEST((cpu::conv_bands::parse_mode("") == cpu::conv_bands::Mode::kAuto));
  BOOST_TEST((cpu::conv_bands::parse_mode("0") == cpu::conv_bands::Mode::kOff));
  BOOST_TEST((cpu::conv_bands::parse_mode("all") == cpu::conv_bands::Mode::kAll));
}

// Bands sum the same products in the same order as rows (zeros added where rows skip a padding row), so
// over the shared shapes the same conv built both ways (VOLFEAT_CONV_BANDS=0 and all) gives equal outputs,
// fused with BN+ReLU on both sides, in channel slices, and with the residual add.
BOOST_AUTO_TEST_CASE(bands_equal_rows_bit_for_bit) {
  const ScopedEnv bands_env("VOLFEAT_CONV_BANDS", nullptr);
  int compared = 0;
  for (const auto& p : conv_problems()) {
    if (p.geometry.taps() == 1) continue;
    BOOST_TEST_CONTEXT("conv problem " << p.name) {
      const auto w = random_values(size_t(p.out_channels * p.in.c * p.geometry.taps()), 81);
      const auto b = random_values(size_t(p.out_channels), 82);
      bands_env.set("0");
      const Conv3d<Cpu, float> rows({p.in.c, p.out_channels, p.geometry}, w, b);
      bands_env.set("all");
      const Conv3d<Cpu, float> bands({p.in.c, p.out_channels, p.geometry}, w, b);
      BOOST_TEST((!rows.runs_in_bands() && bands.runs_in_bands()));
      const BatchNorm3d<Cpu, float> pre(random_bn(p.in.c, 83)), post(random_bn(p.out_channels, 84));
      Dims wide = p.in;
      wide.c += 3;
      auto in = device<Cpu, float>(random_array(wide, 85));
      const auto x = in.view().channels(1, p.in.c);
      const Dims od = rows.output_dims(p.in);
      auto residual = device<Cpu, float>(random_array(od, 86));
      std::vector<float> got[2];
      for (int k = 0; k < 2; ++k) {
        const Conv3d<Cpu, float>& conv = k == 0 ? rows : bands;
        Tensor<Cpu, float> out(od), res(od);
        conv.forward(x, out.view(), {&pre, true}, {&post, true});
        conv.forward_residual(x, residual.view(), res.view(), {&pre, true}, {}, true);
        got[k] = host<Cpu, float>(out.view());
        const auto r = host<Cpu, float>(res.view());
        got[k].insert(got[k].end(), r.begin(), r.end());
      }
      BOOST_TEST((got[0] == got[1]));
      ++compared;
    }
  }
  BOOST_TEST(compared >= 15);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(conv_plane_by_plane_matches_whole_conv, T, Scalars) {
  for (const auto& p : conv_problems()) {
    BOOST_TEST_CONTEXT("conv problem " << p.name) {
      const ref::Array5 x = random_array(p.in, 51);
      const auto w = random_values(size_t(p.out_channels * p.in.c * p.geometry.taps()), 52);
      const Conv3d<Cpu, T> conv({p.in.c, p.out_channels, p.geometry}, w);
      const BatchNorm3d<Cpu, T> pre(random_bn(p.in.c, 53)), post(random_bn(p.out_channels, 54));
      auto in = device<Cpu, T>(x);
      const Dims od = conv.output_dims(p.in);
      Tensor<Cpu, T> whole(od), plane({1, 1, od.h, od.w, od.c});
      conv.forward(in.view(), whole.view(), {&pre, true}, {&post, true});
      const auto all = host<Cpu, T>(whole.view());
      for (Index n = 0; n < od.n; ++n)
        for (Index z = 0; z < od.d; ++z) {
          conv.forward_plane(in.view(), n, z, plane.view(), {&pre, true}, {&post, true});
          const size_t size = size_t(od.h * od.w * od.c), at = size_t((n * od.d + z)) * size;
          const std::vector<T> want(all.begin() + long(at), all.begin() + long(at + size));
          // float: the same kernels on the same blocks, so bit-identical with the AVX kernels; the generic
          // ones (VOLFEAT_CPU_ISA=generic) differed by float rounding on the pointwise batch-2 problem after
          // the Winograd merge (not understood yet: see the note of 2026-11-30), so they get float's
          // tolerance. double's Eigen path may block differently.
          const auto got = host<Cpu, T>(plane.view());
          if (std::is_same_v<T, float> && cpu::gemm::kernels().isa != cpu::CpuIsa::kGeneric) BOOST_TEST((got == want));
          else BOOST_TEST(relative_error(got, as_double(want)) <= tolerance<T>(), "relative error " << relative_error(got, as_double(want)));
        }
    }
  }
}

BOOST_AUTO_TEST_CASE_TEMPLATE(conv_add_relu_matches_composition, T, Scalars) {
  // ResNet's conv -> bn -> `+ identity` -> relu (ConvAddAct): the Cpu op adds the residual per output
  // tile in the conv's loop; the composition runs the conv, then AddAct over memory. Same arithmetic,
  // so bit-identical. Over the shared shape list (the pointwise tile path, the row path of every other
  // geometry), with and without the relu and the pre-activation, output and residual as channel slices
  // of wider buffers; float's 3x3x3 stride-1 problems once more through Winograd.
  for (const auto& p : conv_problems())
    for (const bool relu : {true, false})
      for (const bool winograd : {false, true}) {
        if (winograd && !(std::is_same_v<T, float> && cpu::Winograd3d<float>::applicable({p.in.c, p.out_channels, p.geometry})))
          continue;
        BOOST_TEST_CONTEXT("conv problem " << p.name << (relu ? " + relu" : "") << (winograd ? " (winograd)" : "")) {
          const ref::Array5 x = random_array(p.in, 71);
          const auto w = random_values(size_t(p.out_channels * p.in.c * p.geometry.taps()), 72);
          const auto b = p.bias ? random_values(size_t(p.out_channels), 73) : std::vector<double>{};
          Conv3d<Cpu, T> conv({p.in.c, p.out_channels, p.geometry}, w, b);
          if constexpr (std::is_same_v<T, float>)
            if (winograd) conv.set_winograd(std::make_shared<const cpu::Winograd3d<float>>(conv.spec(), w, b));
          const BatchNorm3d<Cpu, T> pre(random_bn(p.in.c, 74)), post(random_bn(p.out_channels, 75));
          const Activation<Cpu, T> pre_act{&pre, relu}, post_act{&post, false};
          auto in = device<Cpu, T>(x);
          const Dims od = conv.output_dims(p.in);
          Dims wide = od;
          wide.c += 4;
          auto res_wide = device<Cpu, T>(random_array(wide, 76));
          const TensorView<const T> res = res_wide.view().channels(3, od.c);
          Tensor<Cpu, T> tmp(od), want(od), got(wide);
          conv.forward(in.view(), tmp.view(), pre_act, post_act);
          AddAct<Cpu, T>::forward(tmp.view(), res, want.view(), relu);
          got.set_zero();
          ConvAddAct<Cpu, T>::forward(conv, pre_act, post_act, in.view(), res, got.view().channels(1, od.c), relu);
          const auto got_slice = host<Cpu, T>(got.view().channels(1, od.c));
          const auto want_all = host<Cpu, T>(want.view());
          BOOST_TEST((got_slice == want_all));
          if (relu) BOOST_TEST(*std::min_element(got_slice.begin(), got_slice.end()) == T(0));
          BOOST_TEST((host<Cpu, T>(got.view().channels(0, 1)) == std::vector<T>(size_t(od.voxels()), T(0))),
                     "channels outside the slice were written");
          // The default composition of ops/fused.hpp (what the Thrust backend runs) gives the same.
          Tensor<Cpu, T> composed(od);
          conv_add_act_composed<Cpu, T>(conv, pre_act, post_act, in.view(), res, composed.view(), relu);
          BOOST_TEST((host<Cpu, T>(composed.view()) == want_all));
        }
      }
}

BOOST_AUTO_TEST_CASE(conv_keeps_nan_through_relu_epilogue) {
  // torch: relu(NaN) = NaN; a max(x, 0) with the operands the wrong way round would return 0.
  std::vector<float> x(2 * 3 * 40 * 5, 1.0f);
  x[7] = NAN;
  const Conv3d<Cpu, float> conv({5, 20, WindowGeometry::cube(1)}, std::vector<double>(100, 0.25));
  Tensor<Cpu, float> y({1, 2, 3, 40, 20});
  conv.forward(TensorView<const float>(x.data(), Dims{1, 2, 3, 40, 5}), y.view(), {}, {nullptr, true});
  BOOST_TEST(std::isnan(y.data()[20]));  // voxel 1 reads x[5..9], which holds the NaN
  BOOST_TEST(y.data()[0] == 1.25f);
}

namespace {

// C = sum over segments of A_s * B_s, in double, as the kernels' contract states (gemm_kernels.hpp).
struct GemmCase {
  const char* name;
  Index rs;                  // A row stride
  std::vector<Index> lens;   // segment lengths
  Index kgroup;              // 0: all of K at once; else groups accumulating into C
};

void check_kernels(cpu::CpuIsa isa) {
  namespace gemm = cpu::gemm;
  const gemm::KernelSet& ks = gemm::kernel_set(isa);
  const std::vector<GemmCase> cases{
      {"stem: row stride 2, 7-long segments", 2, {7, 7, 7}, 0},
      {"dense layer: row stride 128", 128, {128, 128, 64}, 0},
      {"odd stride and lengths", 37, {5, 37, 1, 12}, 0},
      {"K groups accumulate", 37, {40, 9, 33}, 16},
  };
  for (const int nv : {1, 2, 4})
    for (const GemmCase& gc : cases) {
      const Index pw = 16 * nv;
      const int rmax = ks.max_rows(nv);
      for (const Index rows : {Index(1), Index(rmax), Index(2 * rmax + 1)})
        for (const int cols : {int(pw), int(pw) - 5, 3}) {
          BOOST_TEST_CONTEXT(cpu::isa_name(isa) << ", nv " << nv << ", " << gc.name << ", rows " << rows << ", cols "
                                                << cols) {
            const int nseg = int(gc.lens.size());
            Index klen = 0, span = 0;
            std::vector<Index> a_off, b_off;
            for (const Index len : gc.lens) {
              a_off.push_back(span), b_off.push_back(klen);
              span += len + 3;  // segments read disjoint parts of A's rows
              klen += len;
            }
            const auto av = random_values(size_t((rows - 1) * gc.rs + span + 1), 71);
            const auto bv = random_values(size_t(klen * pw), 72);
            const auto ep_v = random_values(size_t(3 * pw), 73);
            std::vector<float> a(av.begin(), av.end());
            a[size_t(a_off[0])] = NAN;  // row 0, k 0: NaN must reach every column of row 0, through the ReLU
            cpu::AlignedFloats b_store;
            float* b = b_store.reserve(bv.size());
            std::copy(bv.begin(), bv.end(), b);
            std::vector<float> bias(ep_v.begin(), ep_v.begin() + pw), scale(ep_v.begin() + pw, ep_v.begin() + 2 * pw),
                shift(ep_v.begin() + 2 * pw, ep_v.end());
            for (float& s : scale) s += 1.5f;
            std::vector<gemm::Segment> segs;
            for (int s = 0; s < nseg; ++s) segs.push_back({a.data() + a_off[size_t(s)], b + b_off[size_t(s)] * pw, gc.lens[size_t(s)]});
            const Index ldc = pw + 7;
            std::vector<float> c(size_t(rows * ldc), 42.f);
            gemm::Epilogue ep;
            ep.bias = bias.data(), ep.scale = scale.data(), ep.shift = shift.data(), ep.relu = true, ep.cols = cols;
            gemm::gemm_rows(ks, segs.data(), nseg, gc.rs, nv, rows, c.data(), ldc, ep, gc.kgroup);
            std::vector<double> want(size_t(rows * ldc), 42.0);
            std::vector<float> got(c);
            for (Index r = 0; r < rows; ++r)
              for (Index o = 0; o < cols; ++o) {
                double sum = 0;
                for (int s = 0; s < nseg; ++s)
                  for (Index k = 0; k < gc.lens[size_t(s)]; ++k)
                    sum += double(a[size_t(a_off[size_t(s)] + r * gc.rs + k)]) * bv[size_t((b_off[size_t(s)] + k) * pw + o)];
                const double v = (sum + bias[size_t(o)]) * scale[size_t(o)] + shift[size_t(o)];
                want[size_t(r * ldc + o)] = std::isnan(v) ? v : std::max(0.0, v);
              }
            // Columns past `cols` and past the panel must keep their 42.
            BOOST_TEST(relative_error(got, want) <= 1e-5);
            BOOST_TEST(std::isnan(got[0]));
          }
        }
    }
  // activate_row: every length up to 40 (vector bodies and tails), NaN kept through the ReLU.
  for (Index n = 1; n <= 40; ++n) {
    BOOST_TEST_CONTEXT(cpu::isa_name(isa) << " activate_row n " << n) {
      const auto xv = random_values(size_t(n), 81), sv = random_values(size_t(2 * n), 82);
      std::vector<float> x(xv.begin(), xv.end()), scale(sv.begin(), sv.begin() + n), shift(sv.begin() + n, sv.end());
      x[size_t(n / 2)] = NAN;
      std::vector<float> y(size_t(n) + 3, 7.f);
      ks.activate_row(x.data(), y.data(), n, scale.data(), shift.data(), true);
      std::vector<double> want(size_t(n) + 3, 7.0);
      for (Index i = 0; i < n; ++i) {
        const double v = double(x[size_t(i)]) * scale[size_t(i)] + shift[size_t(i)];
        want[size_t(i)] = std::isnan(v) ? v : std::max(0.0, v);
      }
      BOOST_TEST(relative_error(y, want) <= 1e-6);
    }
  }
}

}  // namespace

// Every kernel set this CPU runs, in this one process, whatever VOLFEAT_CPU_ISA says; a set the CPU
// lacks is reported as skipped.
BOOST_AUTO_TEST_CASE(micro_kernels_of_every_isa_match_naive_gemm) {
  for (const cpu::CpuIsa isa : {cpu::CpuIsa::kGeneric, cpu::CpuIsa::kAvx2, cpu::CpuIsa::kAvx512}) {
    const std::string why = cpu::isa_unavailable_reason(isa);
    if (!why.empty()) {
      BOOST_TEST_MESSAGE("skipped the " << cpu::isa_name(isa) << " kernels: " << why);
      continue;
    }
    BOOST_TEST_MESSAGE("checking the " << cpu::isa_name(isa) << " kernels");
    check_kernels(isa);
  }
}

namespace {

// The bf16 GEMM on AMX tiles (gemm_amx.hpp), through the kernel set's function `rows_fn` (the real
// tiles or their software model), against sums in double of the same bf16-rounded operands: only the
// float accumulation differs, held to float's 1e-5. Row counts around the 16-row tiles and 32-row
// blocks, odd row strides, panels of 1, 2 and 4 vectors with valid columns ending inside either vector
// of a pair, a later K group accumulating into C, NaN through the ReLU.
void check_amx_gemm(cpu::gemm::Bf16RowsFn rows_fn, const char* name) {
  namespace gemm = cpu::gemm;
  struct Case {
    const char* name;
    Index rs;
    std::vector<Index> lens;
  };
  const std::vector<Case> cases{{"pointwise chunk: row stride 128", 128, {128}},
                                {"Winograd: one segment, odd stride", 97, {96}},
                                {"direct conv: three taps", 301, {64, 32, 160}}};
  for (const int nv : {1, 2, 4})
    for (const Case& gc : cases)
      for (const Index rows : {Index(1), Index(7), Index(16), Index(17), Index(32), Index(45), Index(67)})
        for (const int cols : {16 * nv, 16 * nv - 5, 3, 20})
          for (const bool accumulate : {false, true}) {
            if (cols > 16 * nv) continue;
            BOOST_TEST_CONTEXT(name << ", nv " << nv << ", " << gc.name << ", rows " << rows << ", cols " << cols
                                    << (accumulate ? ", accumulating" : "")) {
              const Index pw = 16 * nv;
              const int nseg = int(gc.lens.size());
              std::vector<Index> a_off, k_off;
              Index span = 0, klen = 0;
              for (const Index len : gc.lens) a_off.push_back(span), k_off.push_back(klen), span += len + 2, klen += len;
              span -= 2;  // segments read disjoint parts of a row, 2 apart
              BOOST_TEST_REQUIRE(span <= gc.rs);
              // A as bf16 rows; B as the packed panel (k-pair p, channel o: b[(p*pw + o)*2 + k%2]).
              const auto av = random_values(size_t((rows - 1) * gc.rs + span), 171);
              const auto bv = random_values(size_t(klen * pw), 172);
              std::vector<cpu::Bf16> a(av.size());
              for (size_t i = 0; i < av.size(); ++i) a[i] = cpu::round_to_bf16(float(av[i]));
              a[size_t(a_off[0])] = cpu::round_to_bf16(NAN);  // row 0, k 0
              cpu::AlignedArray<cpu::Bf16> b_store;
              cpu::Bf16* b = b_store.reserve(bv.size());
              for (Index k = 0; k < klen; ++k)
                for (Index o = 0; o < pw; ++o) b[((k / 2) * pw + o) * 2 + k % 2] = cpu::round_to_bf16(float(bv[size_t(k * pw + o)]));
              auto a_at = [&](Index r, int s, Index k) { return double(cpu::bf16_to_float(a[size_t(a_off[size_t(s)] + r * gc.rs + k)])); };
              auto b_at = [&](Index k, Index o) { return double(cpu::bf16_to_float(b[((k / 2) * pw + o) * 2 + k % 2])); };
              const auto ep_v = random_values(size_t(3 * pw), 173);
              std::vector<float> bias(ep_v.begin(), ep_v.begin() + pw), scale(ep_v.begin() + pw, ep_v.begin() + 2 * pw),
                  shift(ep_v.begin() + 2 * pw, ep_v.end());
              for (float& x : scale) x += 1.5f;
              std::vector<gemm::Bf16Segment> segs;
              for (int s = 0; s < nseg; ++s)
                segs.push_back({a.data() + a_off[size_t(s)], b + k_off[size_t(s)] * pw, gc.lens[size_t(s)]});
              const Index ldc = pw + 7;
              const auto cv = random_values(size_t(rows * ldc), 174);
              std::vector<float> c(size_t(rows * ldc), 42.f);
              if (accumulate) std::copy(cv.begin(), cv.end(), c.begin());
              gemm::Epilogue ep;
              ep.bias = bias.data(), ep.scale = scale.data(), ep.shift = shift.data(), ep.relu = true, ep.cols = cols;
              ep.accumulate = accumulate;
              std::vector<double> want(c.begin(), c.end());
              rows_fn(segs.data(), nseg, gc.rs, nv, rows, c.data(), ldc, ep);
              for (Index r = 0; r < rows; ++r)
                for (Index o = 0; o < cols; ++o) {
                  double sum = accumulate ? double(float(cv[size_t(r * ldc + o)])) : 0.0;
                  for (int s = 0; s < nseg; ++s)
                    for (Index k = 0; k < gc.lens[size_t(s)]; ++k) sum += a_at(r, s, k) * b_at(k_off[size_t(s)] + k, o);
                  const double v = (sum + bias[size_t(o)]) * scale[size_t(o)] + shift[size_t(o)];
                  want[size_t(r * ldc + o)] = std::isnan(v) ? v : std::max(0.0, v);
                }
              // Columns past `cols` and past the panel keep what they held.
              BOOST_TEST(relative_error(c, want) <= 1e-5);
              BOOST_TEST(std::isnan(c[0]));
            }
          }
}

}  // namespace

// The tile GEMM's code on the software model wherever the bf16 kernels run (its epilogue is AVX-512),
// and on the real tiles where the CPU has AMX; a part that cannot run says why.
BOOST_AUTO_TEST_CASE(amx_tile_gemm_matches_naive_gemm) {
  namespace gemm = cpu::gemm;
  const std::string why = gemm::bf16_unavailable_reason();
  if (!why.empty()) {
    BOOST_TEST_MESSAGE("skipped the AMX tile GEMM, real and emulated: " << why);
    return;
  }
  BOOST_TEST_MESSAGE("checking the AMX tile GEMM on the software model");
  check_amx_gemm(gemm::bf16_kernel_set()->emulated_amx_rows, "emulated tiles");
  const std::string no_amx = cpu::amx_unavailable_reason();
  if (!no_amx.empty()) {
    BOOST_TEST_MESSAGE("skipped the AMX tile GEMM on real tiles: " << no_amx);
    return;
  }
  BOOST_TEST_MESSAGE("checking the AMX tile GEMM on this CPU's tiles");
  check_amx_gemm(gemm::bf16_kernel_set()->amx_rows, "AMX tiles");
}

// Segments tiles cannot take (a length not a multiple of 32) go to the AVX512-BF16 kernels.
BOOST_AUTO_TEST_CASE(amx_takes_only_multiples_of_32) {
  const cpu::gemm::Bf16Segment ok[] = {{nullptr, nullptr, 32}, {nullptr, nullptr, 128}};
  const cpu::gemm::Bf16Segment odd[] = {{nullptr, nullptr, 64}, {nullptr, nullptr, 8}};
  BOOST_TEST(cpu::amx_takes(ok, 2));
  BOOST_TEST(!cpu::amx_takes(odd, 2));
  BOOST_TEST(cpu::amx_takes(odd, 1));
}

BOOST_AUTO_TEST_CASE(bf16_kernel_names_parse_and_unknown_ones_fail) {
  namespace gemm = cpu::gemm;
  for (const auto k : {gemm::Bf16Kernels::kAvx512Bf16, gemm::Bf16Kernels::kAmx, gemm::Bf16Kernels::kAmxEmulated})
    BOOST_TEST((gemm::parse_bf16_kernels(gemm::bf16_kernels_name(k)) == k));
  BOOST_CHECK_THROW(gemm::parse_bf16_kernels("tiles"), Error);
  // Without AMX, "auto" picks AVX512-BF16 and names the reason; with it, AMX.
  if (gemm::bf16_available() && !std::getenv("VOLFEAT_BF16_KERNELS")) {
    const bool amx = cpu::amx_unavailable_reason().empty();
    BOOST_TEST((gemm::bf16_kernels() == (amx ? gemm::Bf16Kernels::kAmx : gemm::Bf16Kernels::kAvx512Bf16)));
    BOOST_TEST_MESSAGE("bf16 here: " << gemm::bf16_kernels_description());
  }
}

BOOST_AUTO_TEST_CASE(isa_names_parse_and_unknown_ones_fail) {
  for (const cpu::CpuIsa isa : {cpu::CpuIsa::kGeneric, cpu::CpuIsa::kAvx2, cpu::CpuIsa::kAvx512})
    BOOST_TEST((cpu::parse_isa(cpu::isa_name(isa)) == isa));
  BOOST_CHECK_THROW(cpu::parse_isa("sse9"), Error);
  BOOST_TEST(cpu::isa_unavailable_reason(cpu::CpuIsa::kGeneric).empty());
  BOOST_TEST(cpu::build_baseline_missing() == nullptr, "this CPU runs the test binary itself");
}
