#pragma once
// Naive reference loops, written straight from torch's documented formulas in torch's own NCDHW
// layout with double accumulation. They share no code with any backend, so agreeing with them
// tests both the arithmetic and the channels-last indexing. Slow on purpose; tests only.
#include <cmath>
#include <limits>
#include <vector>

#include "volfeat/core/shape.hpp"
#include "volfeat/ops/batchnorm3d.hpp"
#include "volfeat/ops/pool3d.hpp"

namespace volfeat::reference {

// A dense NCDHW array (torch's layout) of doubles.
struct Array5 {
  Index n = 1, c = 1, d = 1, h = 1, w = 1;
  std::vector<double> v;

  Array5() = default;
  Array5(Index n_, Index c_, Index d_, Index h_, Index w_)
      : n(n_), c(c_), d(d_), h(h_), w(w_), v(static_cast<size_t>(n_ * c_ * d_ * h_ * w_), 0.0) {}
  double& at(Index i, Index j, Index z, Index y, Index x) { return v[idx(i, j, z, y, x)]; }
  double at(Index i, Index j, Index z, Index y, Index x) const { return v[idx(i, j, z, y, x)]; }
  size_t idx(Index i, Index j, Index z, Index y, Index x) const {
    return static_cast<size_t>((((i * c + j) * d + z) * h + y) * w + x);
  }
  Dims dims() const { return {n, d, h, w, c}; }
};

// NCDHW -> channels-last NDHWC, and back.
template <class T>
std::vector<T> to_channels_last(const Array5& a) {
  std::vector<T> out(a.v.size());
  for (Index i = 0; i < a.n; ++i)
    for (Index j = 0; j < a.c; ++j)
      for (Index z = 0; z < a.d; ++z)
        for (Index y = 0; y < a.h; ++y)
          for (Index x = 0; x < a.w; ++x)
            out[static_cast<size_t>((((i * a.d + z) * a.h + y) * a.w + x) * a.c + j)] = static_cast<T>(a.at(i, j, z, y, x));
  return out;
}
template <class T>
Array5 from_channels_last(const Dims& x, const T* data) {
  Array5 a(x.n, x.c, x.d, x.h, x.w);
  for (Index i = 0; i < x.n; ++i)
    for (Index j = 0; j < x.c; ++j)
      for (Index z = 0; z < x.d; ++z)
        for (Index y = 0; y < x.h; ++y)
          for (Index w = 0; w < x.w; ++w)
            a.at(i, j, z, y, w) = static_cast<double>(data[static_cast<size_t>((((i * x.d + z) * x.h + y) * x.w + w) * x.c + j)]);
  return a;
}

// weight: (O, I, kD, kH, kW) flattened; bias empty or O values.
inline Array5 conv3d(const Array5& x, const std::vector<double>& weight, const std::vector<double>& bias,
                     Index out_channels, const WindowGeometry& g) {
  const auto o = g.out_spatial({x.d, x.h, x.w});
  Array5 y(x.n, out_channels, o[0], o[1], o[2]);
  const Index kd = g.kernel[0], kh = g.kernel[1], kw = g.kernel[2];
  for (Index i = 0; i < x.n; ++i)
    for (Index oc = 0; oc < out_channels; ++oc)
      for (Index z = 0; z < o[0]; ++z)
        for (Index yy = 0; yy < o[1]; ++yy)
          for (Index xx = 0; xx < o[2]; ++xx) {
            double acc = bias.empty() ? 0.0 : bias[static_cast<size_t>(oc)];
            for (Index ic = 0; ic < x.c; ++ic)
              for (Index a = 0; a < kd; ++a)
                for (Index b = 0; b < kh; ++b)
                  for (Index e = 0; e < kw; ++e) {
                    const Index iz = z * g.stride[0] - g.padding[0] + a * g.dilation[0];
                    const Index iy = yy * g.stride[1] - g.padding[1] + b * g.dilation[1];
                    const Index ix = xx * g.stride[2] - g.padding[2] + e * g.dilation[2];
                    if (iz < 0 || iz >= x.d || iy < 0 || iy >= x.h || ix < 0 || ix >= x.w) continue;
                    acc += x.at(i, ic, iz, iy, ix) *
                           weight[static_cast<size_t>((((oc * x.c + ic) * kd + a) * kh + b) * kw + e)];
                  }
            y.at(i, oc, z, yy, xx) = acc;
          }
  return y;
}

inline Array5 batchnorm(const Array5& x, const BatchNormParams& p) {
  Array5 y = x;
  for (Index i = 0; i < x.n; ++i)
    for (Index j = 0; j < x.c; ++j)
      for (Index z = 0; z < x.d; ++z)
        for (Index a = 0; a < x.h; ++a)
          for (Index b = 0; b < x.w; ++b) {
            const size_t k = static_cast<size_t>(j);
            y.at(i, j, z, a, b) = (x.at(i, j, z, a, b) - p.running_mean[k]) / std::sqrt(p.running_var[k] + p.eps) *
                                      p.gamma[k] + p.beta[k];
          }
  return y;
}

inline Array5 relu(Array5 x) {
  for (double& e : x.v) e = e < 0 ? 0 : e;
  return x;
}

// ResNet's residual: a + b, element by element (same shape).
inline Array5 add(Array5 a, const Array5& b) {
  for (size_t i = 0; i < a.v.size(); ++i) a.v[i] += b.v[i];
  return a;
}

// max over the window's in-bounds taps (padding is -inf); mean over the full window when
// count_include_pad, else over in-bounds taps.
enum class PoolKind { kMax, kAvgIncludePad, kAvgExcludePad };

inline Array5 pool3d(const Array5& x, const WindowGeometry& g, PoolKind kind) {
  const auto o = g.out_spatial({x.d, x.h, x.w});
  Array5 y(x.n, x.c, o[0], o[1], o[2]);
  for (Index i = 0; i < x.n; ++i)
    for (Index j = 0; j < x.c; ++j)
      for (Index z = 0; z < o[0]; ++z)
        for (Index a = 0; a < o[1]; ++a)
          for (Index b = 0; b < o[2]; ++b) {
            double m = -std::numeric_limits<double>::infinity(), s = 0;
            Index count = 0;
            for (Index p = 0; p < g.kernel[0]; ++p)
              for (Index q = 0; q < g.kernel[1]; ++q)
                for (Index r = 0; r < g.kernel[2]; ++r) {
                  const Index iz = z * g.stride[0] - g.padding[0] + p * g.dilation[0];
                  const Index iy = a * g.stride[1] - g.padding[1] + q * g.dilation[1];
                  const Index ix = b * g.stride[2] - g.padding[2] + r * g.dilation[2];
                  if (iz < 0 || iz >= x.d || iy < 0 || iy >= x.h || ix < 0 || ix >= x.w) continue;
                  const double e = x.at(i, j, iz, iy, ix);
                  m = std::max(m, e);
                  s += e;
                  ++count;
                }
            y.at(i, j, z, a, b) = kind == PoolKind::kMax             ? m
                                  : kind == PoolKind::kAvgIncludePad ? s / double(g.taps())
                                                                     : s / double(count);
          }
  return y;
}

inline Array5 adaptive_avgpool3d(const Array5& x, const std::array<Index, 3>& size) {
  Array5 y(x.n, x.c, size[0], size[1], size[2]);
  for (Index i = 0; i < x.n; ++i)
    for (Index j = 0; j < x.c; ++j)
      for (Index z = 0; z < size[0]; ++z)
        for (Index a = 0; a < size[1]; ++a)
          for (Index b = 0; b < size[2]; ++b) {
            double s = 0;
            Index count = 0;
            for (Index p = adaptive_begin(z, x.d, size[0]); p < adaptive_end(z, x.d, size[0]); ++p)
              for (Index q = adaptive_begin(a, x.h, size[1]); q < adaptive_end(a, x.h, size[1]); ++q)
                for (Index r = adaptive_begin(b, x.w, size[2]); r < adaptive_end(b, x.w, size[2]); ++r) {
                  s += x.at(i, j, p, q, r);
                  ++count;
                }
            y.at(i, j, z, a, b) = s / double(count);
          }
  return y;
}

inline Array5 concat_channels(const std::vector<Array5>& parts) {
  Index c = 0;
  for (const auto& p : parts) c += p.c;
  const Array5& f = parts.front();
  Array5 y(f.n, c, f.d, f.h, f.w);
  Index c0 = 0;
  for (const auto& p : parts) {
    for (Index i = 0; i < p.n; ++i)
      for (Index j = 0; j < p.c; ++j)
        for (Index z = 0; z < p.d; ++z)
          for (Index a = 0; a < p.h; ++a)
            for (Index b = 0; b < p.w; ++b) y.at(i, c0 + j, z, a, b) = p.at(i, j, z, a, b);
    c0 += p.c;
  }
  return y;
}

}  // namespace volfeat::reference
