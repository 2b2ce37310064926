#pragma once
// The Cpu backend's storage: channels-last host arrays (C contiguous), viewable as a row-major
// Eigen::Tensor.
#include <algorithm>
#include <memory>
#include <string>
#include <utility>
#include <unsupported/Eigen/CXX11/Tensor>
#include <vector>

#include "volfeat/core/precision.hpp"
#include "volfeat/backend/backend.hpp"
#include "volfeat/core/host_memory.hpp"
#include "volfeat/core/tensor_view.hpp"
#include "volfeat/core/weight_file.hpp"

namespace volfeat {

// Host CPU: huge-page host arrays, OpenMP parallel loops, Eigen GEMM and AVX-512 kernels.
// The Cpu device: its state is the arithmetic its convs run in (as a cuBLAS handle carries its math
// mode) and where a network keeps its packed weights (as an Eigen device carries its allocator).
// bf16 is what is asked for; each conv runs it where it can (Conv3d<Cpu, float>::runs_bf16) and
// stays float32 elsewhere.
struct Cpu {
  static constexpr const char* kName = "cpu";
  Cpu() = default;
  explicit Cpu(Precision p, std::string stream = {}) : precision(p), stream_weights(std::move(stream)) {}

  Precision precision = Precision::kFloat32;
  // Streamed weights (core/weight_file.hpp): a directory on a disk, or empty to keep them in memory.
  std::string stream_weights;
  // The file a network streams its weights from, opened by the network's build in stream_weights
  // (each network its own; copies of the network share it).
  std::shared_ptr<WeightFile> weight_file;

  // For the network's build: opens weight_file when streaming was asked for and none is open yet.
  void open_weight_file() {
    if (!stream_weights.empty() && !weight_file) weight_file = std::make_shared<WeightFile>(stream_weights);
  }
  // For the network's pass, after a step that ran convs: their weights' pages leave the process.
  void drop_weight_pages() const {
    if (weight_file) weight_file->drop_pages();
  }
};

template <>
inline constexpr bool kHostResident<Cpu> = true;
template <>
inline constexpr bool kStreamsWeights<Cpu> = true;

template <class T>
class Tensor<Cpu, T> {
 public:
  Tensor() = default;
  explicit Tensor(const Dims& x) { resize(x); }

  void resize(const Dims& x) {
    dims_ = x;
    storage_ = HostArray<T>(size_t(x.size()));
  }
  void set_zero() { std::fill(data(), data() + dims_.size(), T(0)); }
  const Dims& dims() const { return dims_; }
  T* data() { return storage_.data(); }
  const T* data() const { return storage_.data(); }
  TensorView<T> view() { return {data(), dims_}; }
  TensorView<const T> view() const { return {data(), dims_}; }
  // Eigen's view of the storage: dims (N, D, H, W, C), row-major, so C varies fastest.
  Eigen::TensorMap<Eigen::Tensor<T, 5, Eigen::RowMajor>> eigen() {
    return {data(), dims_.n, dims_.d, dims_.h, dims_.w, dims_.c};
  }

 private:
  Dims dims_{0, 0, 0, 0, 0};
  HostArray<T> storage_;  // huge-page backed when large: see core/host_memory.hpp
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
