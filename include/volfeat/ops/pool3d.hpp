#pragma once
// Pools with torch's semantics: MaxPool3d (padding acts as -inf, NaN propagates), AvgPool3d
// (count_include_pad=True by default, as torchvision's DenseNet transitions use), AdaptiveAvgPool3d.
#include <array>

#include "volfeat/backend/backend.hpp"
#include "volfeat/core/error.hpp"
#include "volfeat/core/shape.hpp"

namespace volfeat {

inline Dims pooled_dims(const WindowGeometry& g, const Dims& in, const char* op) {
  const auto s = g.out_spatial(in.spatial());
  if (s[0] <= 0 || s[1] <= 0 || s[2] <= 0)
    fail(op, ": input ", to_string(in), " is smaller than the pooling window");
  return {in.n, s[0], s[1], s[2], in.c};
}

// torch's adaptive pooling bins: output i covers input [floor(i*N/n), ceil((i+1)*N/n)).
inline Index adaptive_begin(Index i, Index in, Index out) { return (i * in) / out; }
inline Index adaptive_end(Index i, Index in, Index out) { return ((i + 1) * in + out - 1) / out; }

template <class Backend, class T>
class MaxPool3d {
  VOLFEAT_UNSUPPORTED_OP("MaxPool3d");
};

template <class Backend, class T>
class AvgPool3d {
  VOLFEAT_UNSUPPORTED_OP("AvgPool3d");
};

template <class Backend, class T>
class AdaptiveAvgPool3d {
  VOLFEAT_UNSUPPORTED_OP("AdaptiveAvgPool3d");
};

}  // namespace volfeat
