#pragma once
// Thrust BatchNorm3d (folded scale/shift on the device), ReLU, and the device form of an
// Activation (the BN+ReLU a conv applies while reading its input or before storing its output).
#include <vector>

#include "volfeat/backend/thrust/tensor.hpp"
#include "volfeat/ops/batchnorm3d.hpp"
#include "volfeat/ops/relu.hpp"

namespace volfeat {

namespace thrust_detail {

// torch's ReLU: NaN stays NaN (as relu_scalar, usable on the device).
template <class T>
VOLFEAT_HD inline T relu(T x) {
  return x < T(0) ? T(0) : x;
}

// An Activation's device pointers: y = x * scale[k] + shift[k] when scale is set, then ReLU if asked.
template <class T>
struct DeviceActivation {
  const T* scale = nullptr;
  const T* shift = nullptr;
  bool relu = false;
  VOLFEAT_HD T operator()(T x, Index k) const {
    if (scale) x = x * scale[k] + shift[k];
    return relu ? thrust_detail::relu(x) : x;
  }
};

template <class T>
struct BatchNormKernel {
  DeviceView<const T> in;
  DeviceView<T> out;
  DeviceActivation<T> act;
  VOLFEAT_HD void operator()(Index i) const {
    const Index v = i / in.c, k = i - v * in.c;
    out.data[v * out.ld + k] = act(in.data[v * in.ld + k], k);
  }
};

}  // namespace thrust_detail

template <class T>
class BatchNorm3d<Thrust, T> {
 public:
  BatchNorm3d() = default;
  BatchNorm3d(const BatchNorm3d&) = default;
  BatchNorm3d& operator=(const BatchNorm3d&) = default;
  BatchNorm3d(BatchNorm3d&& o) noexcept { *this = std::move(o); }
  BatchNorm3d& operator=(BatchNorm3d&& o) noexcept {
    if (this != &o) {
      thrust_detail::steal(scale_, o.scale_);
      thrust_detail::steal(shift_, o.shift_);
    }
    return *this;
  }
  explicit BatchNorm3d(const BatchNormParams& p) {
    thrust_detail::require_device();
    std::vector<double> s, b;
    p.fold(s, b);
    const std::vector<T> st(s.begin(), s.end()), bt(b.begin(), b.end());
    thrust_detail::assign_from_host(scale_, st);
    thrust_detail::assign_from_host(shift_, bt);
  }
  Index channels() const { return static_cast<Index>(scale_.size()); }
  // Device pointers.
  const T* scale() const { return thrust_detail::raw(scale_); }
  const T* shift() const { return thrust_detail::raw(shift_); }

  // out = BN(in), then ReLU if asked. in and out may be the same view.
  void forward(TensorView<const T> in, TensorView<T> out, bool relu = false) const {
    if (in.dims.c != channels() || out.dims != in.dims)
      fail("batchnorm3d: input ", to_string(in.dims), " / output ", to_string(out.dims), " do not match ", channels(),
           " channels");
    thrust_detail::for_each_index(
        in.dims.size(), thrust_detail::BatchNormKernel<T>{thrust_detail::DeviceView<const T>(in),
                                                          thrust_detail::DeviceView<T>(out), device(relu)});
  }

  thrust_detail::DeviceActivation<T> device(bool relu) const { return {scale(), shift(), relu}; }

 private:
  thrust::device_vector<T> scale_, shift_;
};

template <class T>
struct Relu<Thrust, T> {
  static void forward(TensorView<const T> in, TensorView<T> out) {
    if (out.dims != in.dims) fail("relu: output ", to_string(out.dims), " != input ", to_string(in.dims));
    thrust_detail::for_each_index(in.dims.size(),
                                  thrust_detail::BatchNormKernel<T>{thrust_detail::DeviceView<const T>(in),
                                                                    thrust_detail::DeviceView<T>(out),
                                                                    {nullptr, nullptr, true}});
  }
};

namespace thrust_detail {
template <class T>
DeviceActivation<T> device_activation(const Activation<Thrust, T>& a) {
  if (a.bn) return a.bn->device(a.relu);
  return {nullptr, nullptr, a.relu};
}
}  // namespace thrust_detail

}  // namespace volfeat
