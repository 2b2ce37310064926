#pragma once
#include "volfeat/backend/thrust/tensor.hpp"
#include "volfeat/core/error.hpp"
#include "volfeat/ops/add.hpp"

namespace volfeat {

namespace thrust_detail {
template <class T>
struct AddKernel {
  DeviceView<const T> a, b;
  DeviceView<T> out;
  bool relu;
  VOLFEAT_HD void operator()(Index i) const {
    const Index v = i / a.c, k = i - v * a.c;
    const T s = a.data[v * a.ld + k] + b.data[v * b.ld + k];
    out.data[v * out.ld + k] = relu && s < T(0) ? T(0) : s;  // NaN stays NaN, as torch's relu
  }
};
}  // namespace thrust_detail

template <class T>
struct AddAct<Thrust, T> {
  static void forward(TensorView<const T> a, TensorView<const T> b, TensorView<T> out, bool relu) {
    if (a.dims != b.dims || out.dims != a.dims)
      fail("add: ", to_string(a.dims), " + ", to_string(b.dims), " into ", to_string(out.dims));
    thrust_detail::for_each_index(a.dims.size(),
                                  thrust_detail::AddKernel<T>{thrust_detail::DeviceView<const T>(a),
                                                              thrust_detail::DeviceView<const T>(b),
                                                              thrust_detail::DeviceView<T>(out), relu});
  }
};

}  // namespace volfeat
