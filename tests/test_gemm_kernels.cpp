// The Cpu fast-path pieces not covered by the shared primitive list: the fused ops (conv+BN+ReLU+maxpool
// over a ring of planes; BN+ReLU+avgpool; a dense layer's two convs over a ring of bottleneck planes) against their default composition from single ops, the
// plane-by-plane conv against the whole conv, and the micro-kernels' epilogue on NaN.
#define BOOST_TEST_MODULE gemm_kernels
#include <boost/mpl/list.hpp>

#include "support/primitive_checks.hpp"
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

BOOST_AUTO_TEST_CASE_TEMPLATE(activated_avgpool_matches_composition, T, Scalars) {
  for (const Dims& d : {Dims{1, 8, 6, 10, 37}, Dims{2, 7, 9, 5, 16}, Dims{1, 4, 4, 4, 256}}) {
    BOOST_TEST_CONTEXT("bn+relu+avgpool on " << to_string(d)) {
      const ref::Array5 x = random_array(d, 41);
      const BatchNorm3d<Cpu, T> bn(random_bn(d.c, 42));
      const AvgPool3d<Cpu, T> pool(WindowGeometry::cube(2, 2, 0), true);
      auto in = device<Cpu, T>(x);
      Tensor<Cpu, T> act(d), want(pool.output_dims(d)), got(pool.output_dims(d));
      bn.forward(in.view(), act.view(), true);
      pool.forward(act.view(), want.view());
      ActivatedAvgPool<Cpu, T>::forward({&bn, true}, pool, in.view(), got.view());
      const auto got_all = host<Cpu, T>(got.view());
      const auto want_all = host<Cpu, T>(want.view());
      BOOST_TEST(relative_error(got_all, as_double(want_all)) <= tolerance<T>());
    }
  }
}

BOOST_AUTO_TEST_CASE_TEMPLATE(dense_layer_convs_match_composition, T, Scalars) {
  // A dense layer's norm1-relu1-conv1(1x1x1)-norm2-relu2-conv2: the Cpu op keeps a ring of conv1
  // planes; the composition materialises the whole bottleneck. Input and output are channel slices
  // of wider buffers, as in a dense block.
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
  for (const Case& c : cases) {
    BOOST_TEST_CONTEXT("dense layer convs on " << to_string(c.in) << " -> " << c.mid << " -> " << c.out) {
      Dims wide = c.in;
      wide.c += 5;
      const ref::Array5 x = random_array(wide, 61);
      const Conv3d<Cpu, T> conv1({c.in.c, c.mid, WindowGeometry::cube(1, 1, 0)}, random_values(size_t(c.mid * c.in.c), 62));
      const Conv3d<Cpu, T> conv2({c.mid, c.out, c.conv2}, random_values(size_t(c.out * c.mid * c.conv2.taps()), 63));
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
                                         scratch);
      BOOST_TEST(relative_error(host<Cpu, T>(got.view().channels(2, c.out)), as_double(host<Cpu, T>(want.view()))) == 0.0);
      BOOST_TEST((host<Cpu, T>(got.view().channels(0, 2)) == std::vector<T>(size_t(od.voxels() * 2), T(0))),
                 "channels outside the slice were written");
    }
  }
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
          // float with AVX-512: the same blocks, so bit-identical; the Eigen path may block differently.
          const auto got = host<Cpu, T>(plane.view());
          if (std::is_same_v<T, float> && VOLFEAT_HAVE_AVX512) BOOST_TEST((got == want));
          else BOOST_TEST(relative_error(got, as_double(want)) <= tolerance<T>());
        }
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
