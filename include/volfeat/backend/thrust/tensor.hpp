#pragma once
// The Thrust backend's tag, storage and host transfers.
//
// One backend type, `Thrust`, whose device is whatever THRUST_DEVICE_SYSTEM names for the
// translation unit: CUDA under nvcc (a GPU), OpenMP with g++ and
// -DTHRUST_DEVICE_SYSTEM=THRUST_DEVICE_SYSTEM_OMP (the CPU; how it is tested where no GPU exists).
// Storage is a thrust::device_vector; views hold raw device pointers. Every kernel is a
// thrust::for_each_n over a counting iterator with a __host__ __device__ functor, so the same
// source runs on either device system. Weights are uploaded once when an op is built; after that,
// data crosses host <-> device only through from_host (the network's input), to_host (taps an
// observer copies) and RegionPool (host region weights in, C pooled values out).
//
// Do not mix device systems within one program: `Thrust` means one device per executable.
#if !__has_include(<thrust/version.h>)
#error "volfeat/backend/thrust.hpp needs Thrust headers: configure volfeat with -DVOLFEAT_WITH_THRUST_OMP=ON (g++, runs on the CPU) or -DVOLFEAT_WITH_CUDA=ON (nvcc), or add CCCL's include/cccl (or Debian's libthrust-dev) to the include path"
#endif

#include <thrust/copy.h>
#include <thrust/detail/config.h>
#include <thrust/device_ptr.h>
#include <thrust/device_vector.h>
#include <thrust/execution_policy.h>
#include <thrust/fill.h>
#include <thrust/for_each.h>
#include <thrust/iterator/counting_iterator.h>
#include <thrust/version.h>
#include <cstddef>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "volfeat/backend/backend.hpp"
#include "volfeat/core/error.hpp"
#include "volfeat/core/precision.hpp"
#include "volfeat/core/tensor_view.hpp"

#if THRUST_DEVICE_SYSTEM == THRUST_DEVICE_SYSTEM_CUDA
#include <cuda_runtime_api.h>
#endif

#if THRUST_DEVICE_SYSTEM == THRUST_DEVICE_SYSTEM_CUDA && !defined(__CUDACC__)
#error "volfeat's Thrust backend: the CUDA device system needs nvcc. To run on the CPU with g++, define THRUST_DEVICE_SYSTEM=THRUST_DEVICE_SYSTEM_OMP (CMake: -DVOLFEAT_WITH_THRUST_OMP=ON and link volfeat::thrust_omp)"
#endif

// Functors run on the host (OMP/TBB/CPP device systems) or on the GPU (CUDA).
#if defined(__CUDACC__) || defined(__HIPCC__)
#define VOLFEAT_HD __host__ __device__
#else
#define VOLFEAT_HD
#endif

namespace volfeat {

// The Thrust device. kName says which device system this executable was built for. Its state is the
// arithmetic of its networks' convs (DeviceFor<Thrust>, device_for.hpp): float32, or tf32 on CUDA's
// tensor cores. Thrust{} is the float32 device.
struct Thrust {
  Precision precision = Precision::kFloat32;
#if THRUST_DEVICE_SYSTEM == THRUST_DEVICE_SYSTEM_CUDA
  static constexpr const char* kName = "cuda";
#elif THRUST_DEVICE_SYSTEM == THRUST_DEVICE_SYSTEM_OMP
  static constexpr const char* kName = "thrust-omp";
#elif THRUST_DEVICE_SYSTEM == THRUST_DEVICE_SYSTEM_TBB
  static constexpr const char* kName = "thrust-tbb";
#else
  static constexpr const char* kName = "thrust-cpp";
#endif
  static constexpr bool kIsCuda = THRUST_DEVICE_SYSTEM == THRUST_DEVICE_SYSTEM_CUDA;
};

namespace thrust_detail {

// Called before the first device allocation of every owning object. Under CUDA it turns "no usable
// GPU" into one clear volfeat::Error instead of a bad_alloc from the first allocation; on the host
// device systems it does nothing.
inline void require_device() {
#if THRUST_DEVICE_SYSTEM == THRUST_DEVICE_SYSTEM_CUDA
  static const std::string problem = [] {
    int count = 0;
    const cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess) return std::string(cudaGetErrorString(e));
    return count > 0 ? std::string() : std::string("no CUDA device");
  }();
  if (!problem.empty())
    fail("this program was built for CUDA (volfeat's Thrust backend) and finds no usable GPU: ", problem,
         ". On a machine without one use the Cpu build (volfeat) or the Thrust-OMP build (volfeat-thrust-omp)");
#endif
}

// Runs f(i) for i in [0, n) on the device. Thrust's default `device` policy returns after the work
// is done (it synchronises), so host buffers captured by the caller stay valid throughout.
template <class F>
void for_each_index(Index n, const F& f) {
  if (n <= 0) return;
  thrust::for_each_n(thrust::device, thrust::counting_iterator<Index>(0), n, f);
}

// A TensorView as a device functor sees it: plain fields, __host__ __device__ accessors.
template <class T>
struct DeviceView {
  T* data = nullptr;
  Index n = 0, d = 0, h = 0, w = 0, c = 0, ld = 0;

  DeviceView() = default;
  explicit DeviceView(TensorView<T> v)
      : data(v.data), n(v.dims.n), d(v.dims.d), h(v.dims.h), w(v.dims.w), c(v.dims.c), ld(v.ld) {}
  VOLFEAT_HD Index voxels() const { return n * d * h * w; }
  VOLFEAT_HD T* voxel(Index v) const { return data + v * ld; }
  VOLFEAT_HD T* voxel(Index nn, Index z, Index y, Index x) const { return data + (((nn * d + z) * h + y) * w + x) * ld; }
};

// Copies a (possibly strided) view into dense channels-last storage on the device.
template <class T>
struct GatherDense {
  DeviceView<const T> src;
  T* dst;
  VOLFEAT_HD void operator()(Index i) const {
    const Index v = i / src.c, k = i - v * src.c;
    dst[i] = src.data[v * src.ld + k];
  }
};

// The window geometry in plain arrays (std::array's operator[] is not a device function).
struct DeviceWindow {
  Index k[3] = {1, 1, 1}, s[3] = {1, 1, 1}, p[3] = {0, 0, 0}, dil[3] = {1, 1, 1};
  DeviceWindow() = default;
  explicit DeviceWindow(const WindowGeometry& g) {
    for (int a = 0; a < 3; ++a) {
      k[a] = g.kernel[size_t(a)];
      s[a] = g.stride[size_t(a)];
      p[a] = g.padding[size_t(a)];
      dil[a] = g.dilation[size_t(a)];
    }
  }
};

// Moves src's storage into dst and frees dst's old storage, without device work. Thrust's
// device_vector move is not noexcept, so std::vector<DenseLayer> would copy (a device copy per
// buffer) when it grows; volfeat's device-owning types move with this instead, declared noexcept.
template <class V>
void steal(V& dst, V& src) noexcept {
  V old;
  old.swap(dst);
  dst.swap(src);
}

// dst = the n host values at first. An empty range never reaches Thrust: its vector assign runs
// thrust::copy, which dereferences `first` even when n == 0, and an empty std::vector's begin()
// (or a null host pointer) is null -- undefined behaviour that UBSan reports.
template <class T, class HostIt>
void assign_from_host(thrust::device_vector<T>& dst, HostIt first, size_t n) {
  if (n == 0) {
    dst.clear();
    return;
  }
  dst.assign(first, first + static_cast<std::ptrdiff_t>(n));
}
template <class T, class U>
void assign_from_host(thrust::device_vector<T>& dst, const std::vector<U>& src) {
  assign_from_host(dst, src.begin(), src.size());
}

template <class T>
T* raw(thrust::device_vector<T>& v) {
  return thrust::raw_pointer_cast(v.data());
}
template <class T>
const T* raw(const thrust::device_vector<T>& v) {
  return thrust::raw_pointer_cast(v.data());
}

}  // namespace thrust_detail

// Owning device storage, channels-last (N, D, H, W, C), dense (ld == C).
template <class T>
class Tensor<Thrust, T> {
 public:
  Tensor() = default;
  explicit Tensor(const Dims& x) { resize(x); }
  Tensor(const Tensor&) = default;
  Tensor& operator=(const Tensor&) = default;
  Tensor(Tensor&& o) noexcept { *this = std::move(o); }
  Tensor& operator=(Tensor&& o) noexcept {
    if (this != &o) {
      thrust_detail::steal(storage_, o.storage_);
      dims_ = o.dims_;
      o.dims_ = Dims{0, 0, 0, 0, 0};
    }
    return *this;
  }

  void resize(const Dims& x) {
    thrust_detail::require_device();
    dims_ = x;
    storage_.resize(static_cast<size_t>(x.size()));
  }
  void set_zero() { thrust::fill(storage_.begin(), storage_.end(), T(0)); }
  const Dims& dims() const { return dims_; }
  // Device pointers (host-dereferenceable only for the host-side device systems).
  T* data() { return thrust_detail::raw(storage_); }
  const T* data() const { return thrust_detail::raw(storage_); }
  TensorView<T> view() { return {data(), dims_}; }
  TensorView<const T> view() const { return {data(), dims_}; }
  thrust::device_vector<T>& storage() { return storage_; }
  const thrust::device_vector<T>& storage() const { return storage_; }

  // Fills the tensor from dense host data in one copy (no device-side initialisation first).
  void assign_host(const Dims& x, const T* host) {
    thrust_detail::require_device();
    dims_ = x;
    thrust_detail::assign_from_host(storage_, host, static_cast<size_t>(x.size()));
  }

 private:
  Dims dims_{0, 0, 0, 0, 0};
  thrust::device_vector<T> storage_;
};

// A dense host copy of a (possibly strided) device view.
template <class T>
std::vector<std::remove_const_t<T>> to_host(Thrust, TensorView<T> v) {
  using U = std::remove_const_t<T>;
  const Index size = v.dims.size();
  std::vector<U> out(static_cast<size_t>(size));
  if (size <= 0) return out;
  if (v.dense()) {
    thrust::copy_n(thrust::device_pointer_cast(static_cast<const U*>(v.data)), size, out.begin());
  } else {
    thrust::device_vector<U> dense(static_cast<size_t>(size));
    thrust_detail::for_each_index(
        size, thrust_detail::GatherDense<U>{thrust_detail::DeviceView<const U>(TensorView<const U>(v)),
                                            thrust_detail::raw(dense)});
    thrust::copy(dense.begin(), dense.end(), out.begin());
  }
  return out;
}

// A device tensor holding dense channels-last host data.
template <class T>
Tensor<Thrust, T> from_host(Thrust, const Dims& x, const T* host) {
  Tensor<Thrust, T> t;
  t.assign_host(x, host);
  return t;
}

}  // namespace volfeat
