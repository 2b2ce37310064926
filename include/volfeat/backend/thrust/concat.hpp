#pragma once
// Thrust torch.cat along channels: each part is copied into its channel slice of the output.
#include <vector>

#include "volfeat/backend/thrust/tensor.hpp"
#include "volfeat/ops/concat.hpp"

namespace volfeat {

namespace thrust_detail {
template <class T>
struct CopyChannels {
  DeviceView<const T> src;
  DeviceView<T> dst;  // already offset to the part's first output channel
  VOLFEAT_HD void operator()(Index i) const {
    const Index v = i / src.c, k = i - v * src.c;
    dst.data[v * dst.ld + k] = src.data[v * src.ld + k];
  }
};
}  // namespace thrust_detail

template <class T>
struct ConcatChannels<Thrust, T> {
  static void forward(const std::vector<TensorView<const T>>& parts, TensorView<T> out) {
    Index c = 0;
    for (const auto& p : parts) {
      if (p.dims.n != out.dims.n || p.dims.d != out.dims.d || p.dims.h != out.dims.h || p.dims.w != out.dims.w)
        fail("concat: part ", to_string(p.dims), " does not match output grid ", to_string(out.dims));
      c += p.dims.c;
    }
    if (c != out.dims.c) fail("concat: parts hold ", c, " channels, output has ", out.dims.c);
    Index offset = 0;
    for (const auto& p : parts) {
      thrust_detail::for_each_index(
          p.dims.size(), thrust_detail::CopyChannels<T>{thrust_detail::DeviceView<const T>(p),
                                                        thrust_detail::DeviceView<T>(out.channels(offset, p.dims.c))});
      offset += p.dims.c;
    }
  }
};

}  // namespace volfeat
