#pragma once
// Backend-generic checks of every primitive against the naive reference. A backend's test file
// instantiates these for its <Backend, T> over the shared problem list.
#include <boost/test/unit_test.hpp>

#include "support/compare.hpp"
#include "support/problem_shapes.hpp"
#include "volfeat/ops/add.hpp"
#include "volfeat/ops/batchnorm3d.hpp"
#include "volfeat/ops/concat.hpp"
#include "volfeat/ops/conv3d.hpp"
#include "volfeat/ops/pool3d.hpp"
#include "volfeat/ops/relu.hpp"
#include "volfeat/reference/naive.hpp"

namespace volfeat::test {

namespace ref = volfeat::reference;

inline ref::Array5 random_array(const Dims& x, uint64_t seed) {
  ref::Array5 a(x.n, x.c, x.d, x.h, x.w);
  a.v = random_values(a.v.size(), seed);
  return a;
}

inline BatchNormParams random_bn(Index c, uint64_t seed) {
  const auto r = random_values(static_cast<size_t>(4 * c), seed);
  BatchNormParams p;
  for (Index i = 0; i < c; ++i) {
    p.gamma.push_back(1.0 + 0.5 * r[i]);
    p.beta.push_back(0.3 * r[c + i]);
    p.running_mean.push_back(0.2 * r[2 * c + i]);
    p.running_var.push_back(0.6 + 0.5 * r[3 * c + i]);
  }
  return p;
}

template <class Backend, class T>
std::vector<T> host(TensorView<const T> v) {
  return to_host(Backend{}, v);
}

template <class Backend, class T>
Tensor<Backend, T> device(const ref::Array5& a) {
  const auto cl = ref::to_channels_last<T>(a);
  return from_host(Backend{}, a.dims(), cl.data());
}

template <class T>
constexpr double tolerance() {
  return std::is_same_v<T, float> ? 1e-5 : 1e-12;
}

// Plain conv, then the same conv with fused pre-activation (BN+ReLU of the input) and
// post-activation (BN+ReLU of the output), reading a channel slice of a wider input and writing a
// channel slice of a wider output, as a dense block does.
template <class Backend, class T>
void check_conv(const ConvProblem& p) {
  BOOST_TEST_CONTEXT("conv problem " << p.name) {
    const ref::Array5 x = random_array(p.in, 1);
    const auto w = random_values(static_cast<size_t>(p.out_channels * p.in.c * p.geometry.taps()), 2);
    const auto b = p.bias ? random_values(static_cast<size_t>(p.out_channels), 3) : std::vector<double>{};
    const ConvSpec spec{p.in.c, p.out_channels, p.geometry};
    const Conv3d<Backend, T> conv(spec, w, b);

    auto in = device<Backend, T>(x);
    Tensor<Backend, T> out(conv.output_dims(p.in));
    conv.forward(in.view(), out.view());
    const ref::Array5 want = ref::conv3d(x, w, b, p.out_channels, p.geometry);
    BOOST_TEST(relative_error(host<Backend, T>(out.view()), ref::to_channels_last<double>(want)) <= tolerance<T>());

    // Fused and strided: input = channels [2, 2+C) of a wider tensor, output = channels [3, 3+O).
    const BatchNormParams bn_in = random_bn(p.in.c, 4), bn_out = random_bn(p.out_channels, 5);
    const BatchNorm3d<Backend, T> pre(bn_in), post(bn_out);
    const ref::Array5 filler = random_array({p.in.n, p.in.d, p.in.h, p.in.w, 2}, 6);
    const ref::Array5 tail = random_array({p.in.n, p.in.d, p.in.h, p.in.w, 3}, 7);
    auto wide = device<Backend, T>(ref::concat_channels({filler, x, tail}));
    Dims wide_out = conv.output_dims(p.in);
    wide_out.c = p.out_channels + 4;
    Tensor<Backend, T> out2(wide_out);
    const ref::Array5 sentinel = random_array(wide_out, 8);
    out2 = device<Backend, T>(sentinel);
    conv.forward(wide.view().channels(2, p.in.c), out2.view().channels(3, p.out_channels),
                 {&pre, true}, {&post, true});
    const ref::Array5 want2 = ref::relu(ref::batchnorm(
        ref::conv3d(ref::relu(ref::batchnorm(x, bn_in)), w, b, p.out_channels, p.geometry), bn_out));
    const auto got2 = ref::from_channels_last(wide_out, host<Backend, T>(out2.view()).data());
    std::vector<double> got_slice, untouched, sentinel_slice;
    for (Index n = 0; n < wide_out.n; ++n)
      for (Index c = 0; c < wide_out.c; ++c)
        for (Index z = 0; z < wide_out.d; ++z)
          for (Index y = 0; y < wide_out.h; ++y)
            for (Index v = 0; v < wide_out.w; ++v) {
              if (c >= 3 && c < 3 + p.out_channels) {
                got_slice.push_back(got2.at(n, c, z, y, v));
              } else {
                untouched.push_back(got2.at(n, c, z, y, v));
                sentinel_slice.push_back(double(T(sentinel.at(n, c, z, y, v))));
              }
            }
    std::vector<double> want_slice;
    for (Index n = 0; n < want2.n; ++n)
      for (Index c = 0; c < want2.c; ++c)
        for (Index z = 0; z < want2.d; ++z)
          for (Index y = 0; y < want2.h; ++y)
            for (Index v = 0; v < want2.w; ++v) want_slice.push_back(want2.at(n, c, z, y, v));
    BOOST_TEST(relative_error(got_slice, want_slice) <= tolerance<T>());
    BOOST_TEST(untouched == sentinel_slice, "channels outside the output slice were written");
  }
}

template <class Backend, class T>
void check_batchnorm_relu(const Dims& shape) {
  BOOST_TEST_CONTEXT("batchnorm/relu on " << to_string(shape)) {
    const ref::Array5 x = random_array(shape, 11);
    const BatchNormParams p = random_bn(shape.c, 12);
    const BatchNorm3d<Backend, T> bn(p);
    auto t = device<Backend, T>(x);
    Tensor<Backend, T> y(shape);
    bn.forward(t.view(), y.view());
    BOOST_TEST(relative_error(host<Backend, T>(y.view()), ref::to_channels_last<double>(ref::batchnorm(x, p))) <=
               tolerance<T>());
    bn.forward(t.view(), t.view(), true);  // in place, fused ReLU
    BOOST_TEST(relative_error(host<Backend, T>(t.view()),
                              ref::to_channels_last<double>(ref::relu(ref::batchnorm(x, p)))) <= tolerance<T>());
    auto r = device<Backend, T>(x);
    Relu<Backend, T>::forward(r.view(), r.view());
    BOOST_TEST(relative_error(host<Backend, T>(r.view()), ref::to_channels_last<double>(ref::relu(x))) == 0.0);
  }
}

// a + b into a new tensor; relu(a + b) in place into a; and into a channel slice of a wider buffer
// (a node that lives in a concatenation), reading a slice of another.
template <class Backend, class T>
void check_add(const Dims& shape) {
  BOOST_TEST_CONTEXT("add on " << to_string(shape)) {
    const ref::Array5 a = random_array(shape, 13), b = random_array(shape, 14);
    auto ta = device<Backend, T>(a);
    const auto tb = device<Backend, T>(b);
    Tensor<Backend, T> y(shape);
    AddAct<Backend, T>::forward(ta.view(), tb.view(), y.view(), false);
    BOOST_TEST(relative_error(host<Backend, T>(y.view()), ref::to_channels_last<double>(ref::add(a, b))) <=
               tolerance<T>());
    AddAct<Backend, T>::forward(ta.view(), tb.view(), ta.view(), true);
    const auto want = ref::to_channels_last<double>(ref::relu(ref::add(a, b)));
    BOOST_TEST(relative_error(host<Backend, T>(ta.view()), want) <= tolerance<T>());
    Dims wide = shape;
    wide.c = shape.c + 3;
    const ref::Array5 aw = random_array(wide, 15);
    const auto taw = device<Backend, T>(aw);
    Tensor<Backend, T> out(wide);
    AddAct<Backend, T>::forward(taw.view().channels(2, shape.c), tb.view(), out.view().channels(1, shape.c), true);
    const auto got = host<Backend, T>(TensorView<const T>(out.view().channels(1, shape.c)));
    const auto awl = ref::to_channels_last<double>(aw);
    const auto bl = ref::to_channels_last<double>(b);
    std::vector<double> expect(size_t(shape.size()));
    for (Index v = 0; v < shape.voxels(); ++v)
      for (Index k = 0; k < shape.c; ++k)
        expect[size_t(v * shape.c + k)] = std::max(0.0, awl[size_t(v * wide.c + 2 + k)] + bl[size_t(v * shape.c + k)]);
    BOOST_TEST(relative_error(got, expect) <= tolerance<T>());
  }
}

template <class Backend, class T>
void check_maxpool(const PoolProblem& p) {
  BOOST_TEST_CONTEXT("maxpool problem " << p.name) {
    const ref::Array5 x = random_array(p.in, 21);
    const MaxPool3d<Backend, T> pool(p.geometry);
    auto t = device<Backend, T>(x);
    Tensor<Backend, T> y(pool.output_dims(p.in));
    pool.forward(t.view(), y.view());
    BOOST_TEST(relative_error(host<Backend, T>(y.view()),
                              ref::to_channels_last<double>(ref::pool3d(x, p.geometry, ref::PoolKind::kMax))) == 0.0);
  }
}

template <class Backend, class T>
void check_avgpool(const PoolProblem& p) {
  BOOST_TEST_CONTEXT("avgpool problem " << p.name) {
    const ref::Array5 x = random_array(p.in, 31);
    auto t = device<Backend, T>(x);
    for (bool include_pad : {true, false}) {
      const AvgPool3d<Backend, T> pool(p.geometry, include_pad);
      Tensor<Backend, T> y(pool.output_dims(p.in));
      pool.forward(t.view(), y.view());
      const auto kind = include_pad ? ref::PoolKind::kAvgIncludePad : ref::PoolKind::kAvgExcludePad;
      BOOST_TEST(relative_error(host<Backend, T>(y.view()), ref::to_channels_last<double>(ref::pool3d(x, p.geometry, kind))) <=
                     tolerance<T>(),
                 "count_include_pad=" << include_pad);
    }
  }
}

template <class Backend, class T>
void check_adaptive(const AdaptiveProblem& p) {
  BOOST_TEST_CONTEXT("adaptive avgpool problem " << p.name) {
    const ref::Array5 x = random_array(p.in, 41);
    const AdaptiveAvgPool3d<Backend, T> pool(p.out);
    auto t = device<Backend, T>(x);
    Tensor<Backend, T> y(pool.output_dims(p.in));
    pool.forward(t.view(), y.view());
    BOOST_TEST(relative_error(host<Backend, T>(y.view()), ref::to_channels_last<double>(ref::adaptive_avgpool3d(x, p.out))) <=
               tolerance<T>());
  }
}

template <class Backend, class T>
void check_concat() {
  const Dims a{2, 3, 4, 5, 3}, b{2, 3, 4, 5, 7};
  const ref::Array5 xa = random_array(a, 51), xb = random_array(b, 52);
  auto ta = device<Backend, T>(xa);
  auto tb = device<Backend, T>(xb);
  Tensor<Backend, T> y({2, 3, 4, 5, 10});
  ConcatChannels<Backend, T>::forward({ta.view(), tb.view()}, y.view());
  BOOST_TEST(relative_error(host<Backend, T>(y.view()), ref::to_channels_last<double>(ref::concat_channels({xa, xb}))) == 0.0);
}

}  // namespace volfeat::test
