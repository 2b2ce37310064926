#pragma once
#include <cmath>
#include <limits>

#include "volfeat/backend/cpu/parallel.hpp"
#include "volfeat/backend/cpu_tensor.hpp"
#include "volfeat/ops/pool3d.hpp"

namespace volfeat {

namespace cpu {
// Runs f(n, z, y, x, out_voxel) for every output voxel, parallel over output voxels.
template <class T, class F>
void for_each_output_voxel(TensorView<T> out, F&& f) {
  const Dims& o = out.dims;
  parallel_for(o.voxels(), [&](Index v) {
    const Index x = v % o.w, y = (v / o.w) % o.h, z = (v / (o.w * o.h)) % o.d, n = v / (o.w * o.h * o.d);
    f(n, z, y, x, out.voxel(v));
  });
}
}  // namespace cpu

template <class T>
class MaxPool3d<Cpu, T> {
 public:
  explicit MaxPool3d(const WindowGeometry& g = WindowGeometry::cube(3, 2, 1)) : g_(g) {}
  const WindowGeometry& geometry() const { return g_; }
  Dims output_dims(const Dims& in) const { return pooled_dims(g_, in, "maxpool3d"); }

  void forward(TensorView<const T> in, TensorView<T> out) const {
    if (out.dims != output_dims(in.dims)) fail("maxpool3d: output view has the wrong shape");
    const Index c = in.dims.c;
    cpu::for_each_output_voxel(out, [&](Index n, Index z, Index y, Index x, T* dst) {
      std::fill(dst, dst + c, -std::numeric_limits<T>::infinity());
      for (Index kd = 0; kd < g_.kernel[0]; ++kd) {
        const Index id = z * g_.stride[0] - g_.padding[0] + kd * g_.dilation[0];
        if (id < 0 || id >= in.dims.d) continue;
        for (Index kh = 0; kh < g_.kernel[1]; ++kh) {
          const Index ih = y * g_.stride[1] - g_.padding[1] + kh * g_.dilation[1];
          if (ih < 0 || ih >= in.dims.h) continue;
          for (Index kw = 0; kw < g_.kernel[2]; ++kw) {
            const Index iw = x * g_.stride[2] - g_.padding[2] + kw * g_.dilation[2];
            if (iw < 0 || iw >= in.dims.w) continue;
            const T* src = in.voxel(n, id, ih, iw);
            // torch propagates NaN through max pooling
            for (Index i = 0; i < c; ++i)
              if (src[i] > dst[i] || std::isnan(src[i])) dst[i] = src[i];
          }
        }
      }
    });
  }

 private:
  WindowGeometry g_;
};

namespace cpu {
// f(id, ih, iw) for each input voxel inside average-pool window g of output (z, y, x), in window order
// (average pools have no dilation); AvgPool3d and ActivatedAvgPool walk their windows with it.
template <class F>
void for_avg_window(const WindowGeometry& g, const Dims& in, Index z, Index y, Index x, F&& f) {
  for (Index kd = 0; kd < g.kernel[0]; ++kd) {
    const Index id = z * g.stride[0] - g.padding[0] + kd;
    if (id < 0 || id >= in.d) continue;
    for (Index kh = 0; kh < g.kernel[1]; ++kh) {
      const Index ih = y * g.stride[1] - g.padding[1] + kh;
      if (ih < 0 || ih >= in.h) continue;
      for (Index kw = 0; kw < g.kernel[2]; ++kw) {
        const Index iw = x * g.stride[2] - g.padding[2] + kw;
        if (iw < 0 || iw >= in.w) continue;
        f(id, ih, iw);
      }
    }
  }
}
}  // namespace cpu

template <class T>
class AvgPool3d<Cpu, T> {
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
    const Index c = in.dims.c;
    cpu::for_each_output_voxel(out, [&](Index n, Index z, Index y, Index x, T* dst) {
      std::fill(dst, dst + c, T(0));
      Index inside = 0;
      cpu::for_avg_window(g_, in.dims, z, y, x, [&](Index id, Index ih, Index iw) {
        const T* src = in.voxel(n, id, ih, iw);
        for (Index i = 0; i < c; ++i) dst[i] += src[i];
        ++inside;
      });
      // With ceil_mode=False every window lies inside the padded input, so the
      // count_include_pad divisor is the full window.
      const T divisor = T(count_include_pad_ ? g_.taps() : inside);
      for (Index i = 0; i < c; ++i) dst[i] /= divisor;
    });
  }

 private:
  WindowGeometry g_;
  bool count_include_pad_;
};

template <class T>
class AdaptiveAvgPool3d<Cpu, T> {
 public:
  explicit AdaptiveAvgPool3d(const std::array<Index, 3>& out_size) : size_(out_size) {}
  Dims output_dims(const Dims& in) const { return {in.n, size_[0], size_[1], size_[2], in.c}; }

  void forward(TensorView<const T> in, TensorView<T> out) const {
    if (out.dims != output_dims(in.dims)) fail("adaptive_avgpool3d: output view has the wrong shape");
    const Dims& i = in.dims;
    const Index c = i.c;
    cpu::for_each_output_voxel(out, [&](Index n, Index z, Index y, Index x, T* dst) {
      const Index d0 = adaptive_begin(z, i.d, size_[0]), d1 = adaptive_end(z, i.d, size_[0]);
      const Index h0 = adaptive_begin(y, i.h, size_[1]), h1 = adaptive_end(y, i.h, size_[1]);
      const Index w0 = adaptive_begin(x, i.w, size_[2]), w1 = adaptive_end(x, i.w, size_[2]);
      std::fill(dst, dst + c, T(0));
      for (Index id = d0; id < d1; ++id)
        for (Index ih = h0; ih < h1; ++ih)
          for (Index iw = w0; iw < w1; ++iw) {
            const T* src = in.voxel(n, id, ih, iw);
            for (Index k = 0; k < c; ++k) dst[k] += src[k];
          }
      const T count = T((d1 - d0) * (h1 - h0) * (w1 - w0));
      for (Index k = 0; k < c; ++k) dst[k] /= count;
    });
  }

 private:
  std::array<Index, 3> size_;
};

}  // namespace volfeat
