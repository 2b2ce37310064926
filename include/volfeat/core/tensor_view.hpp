#pragma once
// A non-owning view of a channels-last activation, possibly a channel slice of a wider buffer.
#include <type_traits>

#include "volfeat/core/shape.hpp"

namespace volfeat {

// `data` points at channel 0 of voxel (0,0,0,0); voxel v's channels are data[v*ld .. v*ld + c).
// ld >= c: a dense block buffer holds all of the block's channels, and each layer sees a slice of it
// (its input is the prefix [0, c_in), its output the next 32 channels) with ld = the block's width.
// For a device backend `data` is a device pointer; views never own or allocate.
template <class T>
struct TensorView {
  T* data = nullptr;
  Dims dims;
  Index ld = 0;

  TensorView() = default;
  TensorView(T* p, const Dims& x) : data(p), dims(x), ld(x.c) {}
  TensorView(T* p, const Dims& x, Index stride) : data(p), dims(x), ld(stride) {}

  // Implicit T -> const T.
  template <class U, class = std::enable_if_t<std::is_same_v<const U, T> && !std::is_same_v<U, T>>>
  TensorView(const TensorView<U>& o) : data(o.data), dims(o.dims), ld(o.ld) {}

  Index voxel_index(Index n, Index d, Index h, Index w) const {
    return ((n * dims.d + d) * dims.h + h) * dims.w + w;
  }
  T* voxel(Index n, Index d, Index h, Index w) const { return data + voxel_index(n, d, h, w) * ld; }
  T* voxel(Index v) const { return data + v * ld; }
  bool dense() const { return ld == dims.c; }

  // Channels [c0, c0 + count) of every voxel.
  TensorView channels(Index c0, Index count) const {
    Dims x = dims;
    x.c = count;
    return TensorView(data + c0, x, ld);
  }
};

}  // namespace volfeat
