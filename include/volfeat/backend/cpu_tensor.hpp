#pragma once
// The Cpu backend's storage: an Eigen::Tensor, row-major so that C (the last index) is contiguous.
#include <unsupported/Eigen/CXX11/Tensor>
#include <vector>

#include "volfeat/backend/backend.hpp"
#include "volfeat/core/tensor_view.hpp"

namespace volfeat {

// Host CPU: Eigen storage, OpenMP parallel loops, Eigen GEMM.
struct Cpu {
  static constexpr const char* kName = "cpu";
};

template <class T>
class Tensor<Cpu, T> {
 public:
  Tensor() = default;
  explicit Tensor(const Dims& x) { resize(x); }

  void resize(const Dims& x) {
    dims_ = x;
    // Eigen dims (N, D, H, W, C), row-major: C varies fastest.
    storage_.resize(x.n, x.d, x.h, x.w, x.c);
  }
  void set_zero() { storage_.setZero(); }
  const Dims& dims() const { return dims_; }
  T* data() { return storage_.data(); }
  const T* data() const { return storage_.data(); }
  TensorView<T> view() { return {storage_.data(), dims_}; }
  TensorView<const T> view() const { return {storage_.data(), dims_}; }
  Eigen::Tensor<T, 5, Eigen::RowMajor>& eigen() { return storage_; }

 private:
  Dims dims_{0, 0, 0, 0, 0};
  Eigen::Tensor<T, 5, Eigen::RowMajor> storage_;
};

// Backend-neutral host transfer: a dense host copy of a view, and a device tensor from host data.
template <class T>
std::vector<std::remove_const_t<T>> to_host(Cpu, TensorView<T> v) {
  std::vector<std::remove_const_t<T>> out(static_cast<size_t>(v.dims.size()));
  const Index c = v.dims.c;
  for (Index i = 0; i < v.dims.voxels(); ++i) std::copy(v.voxel(i), v.voxel(i) + c, out.data() + i * c);
  return out;
}

template <class T>
Tensor<Cpu, T> from_host(Cpu, const Dims& x, const T* host) {
  Tensor<Cpu, T> t(x);
  std::copy(host, host + x.size(), t.data());
  return t;
}

}  // namespace volfeat
