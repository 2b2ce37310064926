#pragma once
#include <vector>

#include "volfeat/backend/cpu/parallel.hpp"
#include "volfeat/backend/cpu_tensor.hpp"
#include "volfeat/ops/batchnorm3d.hpp"
#include "volfeat/ops/relu.hpp"

namespace volfeat {

template <class T>
class BatchNorm3d<Cpu, T> {
 public:
  BatchNorm3d() = default;
  explicit BatchNorm3d(const BatchNormParams& p) {
    std::vector<double> s, b;
    p.fold(s, b);
    scale_.assign(s.begin(), s.end());
    shift_.assign(b.begin(), b.end());
  }
  Index channels() const { return static_cast<Index>(scale_.size()); }
  const T* scale() const { return scale_.data(); }
  const T* shift() const { return shift_.data(); }

  // out = BN(in), then ReLU if asked. in and out may be the same view.
  void forward(TensorView<const T> in, TensorView<T> out, bool relu = false) const {
    if (in.dims.c != channels() || out.dims != in.dims)
      fail("batchnorm3d: input ", to_string(in.dims), " / output ", to_string(out.dims),
           " do not match ", channels(), " channels");
    cpu::parallel_for(in.dims.voxels(), [&](Index v) { apply(in.voxel(v), out.voxel(v), relu); });
  }

  // One voxel's channels; also the packing step of a conv with a fused pre-activation.
  void apply(const T* x, T* y, bool relu) const {
    const Index c = channels();
    const T* s = scale_.data();
    const T* b = shift_.data();
    if (relu) {
      for (Index i = 0; i < c; ++i) y[i] = relu_scalar(x[i] * s[i] + b[i]);
    } else {
      for (Index i = 0; i < c; ++i) y[i] = x[i] * s[i] + b[i];
    }
  }

 private:
  std::vector<T> scale_, shift_;
};

template <class T>
struct Relu<Cpu, T> {
  static void forward(TensorView<const T> in, TensorView<T> out) {
    if (out.dims != in.dims) fail("relu: output ", to_string(out.dims), " != input ", to_string(in.dims));
    const Index c = in.dims.c;
    cpu::parallel_for(in.dims.voxels(), [&](Index v) {
      const T* x = in.voxel(v);
      T* y = out.voxel(v);
      for (Index i = 0; i < c; ++i) y[i] = relu_scalar(x[i]);
    });
  }
};

// Applies an Activation to one voxel's channels (x may equal y).
template <class T>
inline void apply_activation(const Activation<Cpu, T>& a, const T* x, T* y, Index c) {
  if (a.bn) {
    a.bn->apply(x, y, a.relu);
  } else if (a.relu) {
    for (Index i = 0; i < c; ++i) y[i] = relu_scalar(x[i]);
  } else if (x != y) {
    for (Index i = 0; i < c; ++i) y[i] = x[i];
  }
}

}  // namespace volfeat
