#pragma once
// Thrust pools: one work item per output (voxel, channel), the window visited in the Cpu backend's
// order, so max and average pooling give the Cpu backend's values to the bit.
#include <limits>

#include "volfeat/backend/thrust/batchnorm3d.hpp"
#include "volfeat/ops/pool3d.hpp"

namespace volfeat {

namespace thrust_detail {

// Splits an output element index into (n, z, y, x, channel).
struct OutputElement {
  Index n, z, y, x, k, v;
  template <class View>
  VOLFEAT_HD OutputElement(const View& o, Index i) {
    v = i / o.c;
    k = i - v * o.c;
    Index r = v;
    x = r % o.w;
    r /= o.w;
    y = r % o.h;
    r /= o.h;
    z = r % o.d;
    n = r / o.d;
  }
};

template <class T>
struct MaxPoolKernel {
  DeviceView<const T> in;
  DeviceView<T> out;
  DeviceWindow g;
  T lowest;  // -infinity: padding never wins
  VOLFEAT_HD void operator()(Index i) const {
    const OutputElement e(out, i);
    T m = lowest;
    for (Index kd = 0; kd < g.k[0]; ++kd) {
      const Index id = e.z * g.s[0] - g.p[0] + kd * g.dil[0];
      if (id < 0 || id >= in.d) continue;
      for (Index kh = 0; kh < g.k[1]; ++kh) {
        const Index ih = e.y * g.s[1] - g.p[1] + kh * g.dil[1];
        if (ih < 0 || ih >= in.h) continue;
        for (Index kw = 0; kw < g.k[2]; ++kw) {
          const Index iw = e.x * g.s[2] - g.p[2] + kw * g.dil[2];
          if (iw < 0 || iw >= in.w) continue;
          const T s = in.voxel(e.n, id, ih, iw)[e.k];
          if (s > m || s != s) m = s;  // torch propagates NaN through max pooling
        }
      }
    }
    out.voxel(e.v)[e.k] = m;
  }
};

// Also ActivatedAvgPool's kernel: `act` (BN, ReLU) is applied to each in-bounds value as it is read.
template <class T>
struct AvgPoolKernel {
  DeviceView<const T> in;
  DeviceView<T> out;
  DeviceWindow g;
  bool count_include_pad;
  DeviceActivation<T> act;  // default: none (x unchanged)
  VOLFEAT_HD void operator()(Index i) const {
    const OutputElement e(out, i);
    T sum = T(0);
    Index inside = 0;
    for (Index kd = 0; kd < g.k[0]; ++kd) {
      const Index id = e.z * g.s[0] - g.p[0] + kd;
      if (id < 0 || id >= in.d) continue;
      for (Index kh = 0; kh < g.k[1]; ++kh) {
        const Index ih = e.y * g.s[1] - g.p[1] + kh;
        if (ih < 0 || ih >= in.h) continue;
        for (Index kw = 0; kw < g.k[2]; ++kw) {
          const Index iw = e.x * g.s[2] - g.p[2] + kw;
          if (iw < 0 || iw >= in.w) continue;
          sum += act(in.voxel(e.n, id, ih, iw)[e.k], e.k);
          ++inside;
        }
      }
    }
    // ceil_mode=False: every window lies inside the padded input, so count_include_pad divides by
    // the full window.
    const T divisor = T(count_include_pad ? g.k[0] * g.k[1] * g.k[2] : inside);
    out.voxel(e.v)[e.k] = sum / divisor;
  }
};

template <class T>
struct AdaptiveAvgPoolKernel {
  DeviceView<const T> in;
  DeviceView<T> out;
  VOLFEAT_HD static Index begin(Index i, Index n, Index o) { return (i * n) / o; }
  VOLFEAT_HD static Index end(Index i, Index n, Index o) { return ((i + 1) * n + o - 1) / o; }
  VOLFEAT_HD void operator()(Index i) const {
    const OutputElement e(out, i);
    const Index d0 = begin(e.z, in.d, out.d), d1 = end(e.z, in.d, out.d);
    const Index h0 = begin(e.y, in.h, out.h), h1 = end(e.y, in.h, out.h);
    const Index w0 = begin(e.x, in.w, out.w), w1 = end(e.x, in.w, out.w);
    T sum = T(0);
    for (Index id = d0; id < d1; ++id)
      for (Index ih = h0; ih < h1; ++ih)
        for (Index iw = w0; iw < w1; ++iw) sum += in.voxel(e.n, id, ih, iw)[e.k];
    out.voxel(e.v)[e.k] = sum / T((d1 - d0) * (h1 - h0) * (w1 - w0));
  }
};

}  // namespace thrust_detail

template <class T>
class MaxPool3d<Thrust, T> {
 public:
  explicit MaxPool3d(const WindowGeometry& g = WindowGeometry::cube(3, 2, 1)) : g_(g) {}
  const WindowGeometry& geometry() const { return g_; }
  Dims output_dims(const Dims& in) const { return pooled_dims(g_, in, "maxpool3d"); }

  void forward(TensorView<const T> in, TensorView<T> out) const {
    if (out.dims != output_dims(in.dims)) fail("maxpool3d: output view has the wrong shape");
    thrust_detail::for_each_index(
        out.dims.size(), thrust_detail::MaxPoolKernel<T>{thrust_detail::DeviceView<const T>(in),
                                                         thrust_detail::DeviceView<T>(out), thrust_detail::DeviceWindow(g_),
                                                         -std::numeric_limits<T>::infinity()});
  }

 private:
  WindowGeometry g_;
};

template <class T>
class AvgPool3d<Thrust, T> {
 public:
  explicit AvgPool3d(const WindowGeometry& g = WindowGeometry::cube(2, 2, 0), bool count_include_pad = true)
      : g_(g), count_include_pad_(count_include_pad) {
    if (g.dilation != std::array<Index, 3>{1, 1, 1}) fail("avgpool3d: torch's AvgPool3d has no dilation");
  }
  const WindowGeometry& geometry() const { return g_; }
  bool count_include_pad() const { return count_include_pad_; }
  Dims output_dims(const Dims& in) const { return pooled_dims(g_, in, "avgpool3d"); }

  void forward(TensorView<const T> in, TensorView<T> out) const {
    if (out.dims != output_dims(in.dims)) fail("avgpool3d: output view has the wrong shape");
    thrust_detail::for_each_index(
        out.dims.size(), thrust_detail::AvgPoolKernel<T>{thrust_detail::DeviceView<const T>(in),
                                                         thrust_detail::DeviceView<T>(out),
                                                         thrust_detail::DeviceWindow(g_), count_include_pad_, {}});
  }

 private:
  WindowGeometry g_;
  bool count_include_pad_;
};

template <class T>
class AdaptiveAvgPool3d<Thrust, T> {
 public:
  explicit AdaptiveAvgPool3d(const std::array<Index, 3>& out_size) : size_(out_size) {}
  Dims output_dims(const Dims& in) const { return {in.n, size_[0], size_[1], size_[2], in.c}; }

  void forward(TensorView<const T> in, TensorView<T> out) const {
    if (out.dims != output_dims(in.dims)) fail("adaptive_avgpool3d: output view has the wrong shape");
    thrust_detail::for_each_index(out.dims.size(),
                                  thrust_detail::AdaptiveAvgPoolKernel<T>{thrust_detail::DeviceView<const T>(in),
                                                                          thrust_detail::DeviceView<T>(out)});
  }

 private:
  std::array<Index, 3> size_;
};

}  // namespace volfeat
