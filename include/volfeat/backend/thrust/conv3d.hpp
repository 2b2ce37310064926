#pragma once
// Thrust Conv3d: a direct implicit GEMM. One work item computes a tile of P output voxels x B output
// channels in registers: for every kernel tap it reads the P input voxels' C_in channels (applying
// the fused pre-activation to in-bounds values; padding stays zero, as torch pads the activated
// tensor), and accumulates them against the packed weights W (K x C_out_padded, rows ordered
// (tap, c_in) as the Cpu backend's, columns padded with zeros to a multiple of B). Bias and the
// fused post-activation are applied before the (possibly strided) store.
//
// Speed, honestly: there is no shared-memory tiling and no tensor cores. On the OpenMP device
// system it is a register-blocked loop nest, several times slower than the Cpu backend's Eigen
// GEMM; on a GPU each thread owns one voxel x 32 channels, which is correct and parallel but far
// from cuDNN. It is the portable baseline the tests prove correct. On a GPU with TF32 tensor cores
// (sm_80+, in a build for it) float convs with 32-channel output tiles run the implicit GEMM of
// conv3d_tensor_core.hpp instead: 3xTF32 for float32, or TF32 when the device asks for it.
#include <algorithm>
#include <limits>
#include <memory>
#include <type_traits>
#include <vector>

#include "volfeat/backend/thrust/batchnorm3d.hpp"
#include "volfeat/backend/thrust/conv3d_tensor_core.hpp"
#include "volfeat/core/precision.hpp"
#include "volfeat/ops/conv3d.hpp"
#include "volfeat/ops/conv_algorithm.hpp"

namespace volfeat {

namespace thrust_detail {

// Voxels per work item: several on the CPU (each weight load feeds P FMAs), one on a GPU (threads
// are cheap, registers are not).
inline constexpr int kConvVoxelTile = Thrust::kIsCuda ? 1 : 4;

template <class T, int B, int P, PreAct Pre>
struct ConvKernel {
  DeviceView<const T> in;
  DeviceView<T> out;
  DeviceWindow g;
  Index ci = 0, co = 0, co_padded = 0, chunks = 0;
  const T* weight = nullptr;  // (taps * ci) x co_padded
  const T* bias = nullptr;    // co values or null
  const T* pre_scale = nullptr;
  const T* pre_shift = nullptr;
  DeviceActivation<T> post;

  VOLFEAT_HD T activate(T x, Index k) const {
    if (Pre == PreAct::kBn || Pre == PreAct::kBnRelu) x = x * pre_scale[k] + pre_shift[k];
    if (Pre == PreAct::kBnRelu || Pre == PreAct::kRelu) x = relu(x);
    return x;
  }

  VOLFEAT_HD void operator()(Index item) const {
    const Index chunk = item % chunks;
    const Index v0 = (item / chunks) * P;
    const Index o0 = chunk * B;
    const Index voxels = out.voxels();

    // Output coordinates of the tile's voxels; voxels past the end are computed as padding and
    // never stored.
    Index on[P], oz[P], oy[P], ox[P];
    bool live[P];
    for (int p = 0; p < P; ++p) {
      Index v = v0 + p;
      live[p] = v < voxels;
      if (!live[p]) v = 0;
      ox[p] = v % out.w;
      v /= out.w;
      oy[p] = v % out.h;
      v /= out.h;
      oz[p] = v % out.d;
      on[p] = v / out.d;
    }

    T acc[P][B];
    for (int p = 0; p < P; ++p)
      for (int b = 0; b < B; ++b) acc[p][b] = T(0);

    const T* wtap = weight + o0;
    for (Index kd = 0; kd < g.k[0]; ++kd)
      for (Index kh = 0; kh < g.k[1]; ++kh)
        for (Index kw = 0; kw < g.k[2]; ++kw, wtap += ci * co_padded) {
          const T* src[P];
          bool ok[P];
          bool any = false;
          for (int p = 0; p < P; ++p) {
            const Index id = oz[p] * g.s[0] - g.p[0] + kd * g.dil[0];
            const Index ih = oy[p] * g.s[1] - g.p[1] + kh * g.dil[1];
            const Index iw = ox[p] * g.s[2] - g.p[2] + kw * g.dil[2];
            ok[p] = live[p] && id >= 0 && id < in.d && ih >= 0 && ih < in.h && iw >= 0 && iw < in.w;
            src[p] = ok[p] ? in.voxel(on[p], id, ih, iw) : in.data;
            any = any || ok[p];
          }
          if (!any) continue;
          const T* wrow = wtap;
          for (Index c = 0; c < ci; ++c, wrow += co_padded) {
            T x[P];
            for (int p = 0; p < P; ++p) x[p] = ok[p] ? activate(src[p][c], c) : T(0);
            for (int p = 0; p < P; ++p)
              for (int b = 0; b < B; ++b) acc[p][b] += x[p] * wrow[b];
          }
        }

    const Index bn = co - o0 < B ? co - o0 : B;
    for (int p = 0; p < P; ++p) {
      if (!live[p]) continue;
      T* dst = out.voxel(v0 + p) + o0;
      for (Index b = 0; b < bn; ++b) {
        T y = acc[p][b];
        if (bias) y += bias[o0 + b];
        dst[b] = post(y, o0 + b);
      }
    }
  }
};

}  // namespace thrust_detail

template <class T>
class Conv3d<Thrust, T> {
 public:
  Conv3d() = default;
  Conv3d(const Conv3d&) = default;
  Conv3d& operator=(const Conv3d&) = default;
  Conv3d(Conv3d&& o) noexcept { *this = std::move(o); }
  Conv3d& operator=(Conv3d&& o) noexcept {
    if (this != &o) {
      spec_ = o.spec_;
      precision_ = o.precision_;
      block_ = o.block_;
      co_padded_ = o.co_padded_;
      thrust_detail::steal(packed_, o.packed_);
      thrust_detail::steal(bias_, o.bias_);
    }
    return *this;
  }
  // weight: torch order (O, I, kD, kH, kW); bias: empty or O values.
  Conv3d(const ConvSpec& spec, const std::vector<double>& weight, const std::vector<double>& bias = {})
      : spec_(spec) {
    pack(weight.data(), weight.size(), bias.data(), bias.size());
  }
  // The same from float data (the StateDict's): identical packing. precision: kTf32 rounds the
  // tensor-core path's operands to TF32 (Cuda only); float32 keeps float32 accuracy everywhere.
  Conv3d(const ConvSpec& spec, const float* weight, size_t weight_count, const float* bias = nullptr,
         size_t bias_count = 0, Precision precision = Precision::kFloat32)
      : spec_(spec), precision_(precision) {
    pack(weight, weight_count, bias, bias_count);
  }

 private:
  template <class W>
  void pack(const W* weight, size_t weight_count, const W* bias, size_t bias_count) {
    const ConvSpec& spec = spec_;
    thrust_detail::require_device();
    if (static_cast<Index>(weight_count) != spec.weight_count())
      fail("conv3d: ", weight_count, " weights given, the layer needs ", spec.weight_count());
    if (bias_count != 0 && static_cast<Index>(bias_count) != spec.out_channels)
      fail("conv3d: ", bias_count, " biases given, the layer needs ", spec.out_channels);
    const Index ci = spec.in_channels, co = spec.out_channels, taps = spec.geometry.taps();
    block_ = co <= 8 ? 8 : co <= 16 ? 16 : 32;
    co_padded_ = (co + block_ - 1) / block_ * block_;
    std::vector<T> packed(static_cast<size_t>(ci * taps * co_padded_), T(0));
    for (Index o = 0; o < co; ++o)
      for (Index i = 0; i < ci; ++i)
        for (Index t = 0; t < taps; ++t)
          packed[size_t((t * ci + i) * co_padded_ + o)] = static_cast<T>(weight[size_t((o * ci + i) * taps + t)]);
    thrust_detail::assign_from_host(packed_, packed);
    thrust_detail::assign_from_host(bias_, std::vector<T>(bias, bias + bias_count));  // empty: no bias
  }

 public:
  const ConvSpec& spec() const { return spec_; }
  Precision precision() const { return precision_; }
  // Whether forward runs the tensor-core implicit GEMM (conv3d_tensor_core.hpp) on this GPU.
  bool tensor_cores() const {
#if THRUST_DEVICE_SYSTEM == THRUST_DEVICE_SYSTEM_CUDA
    if constexpr (std::is_same_v<T, float>)
      return thrust_detail::tensor_core::fits(int(co_padded_)) && thrust_detail::tensor_core::available();
#endif
    return false;
  }
  Dims output_dims(const Dims& in) const { return spec_.output_dims(in); }

  void forward(TensorView<const T> in, TensorView<T> out, Activation<Thrust, T> pre = {},
               Activation<Thrust, T> post = {}) const {
    const Dims want = output_dims(in.dims);
    if (out.dims != want)
      fail("conv3d: output view ", to_string(out.dims), " but the conv produces ", to_string(want));
    if (want.voxels() <= 0) fail("conv3d: input ", to_string(in.dims), " is smaller than the kernel");
    if (pre.bn && pre.bn->channels() != spec_.in_channels)
      fail("conv3d: the fused input batchnorm has ", pre.bn->channels(), " channels, the conv reads ", spec_.in_channels);
    if (post.bn && post.bn->channels() != spec_.out_channels)
      fail("conv3d: the fused output batchnorm has ", post.bn->channels(), " channels, the conv writes ",
           spec_.out_channels);
    using thrust_detail::PreAct;
    const PreAct mode = pre.bn ? (pre.relu ? PreAct::kBnRelu : PreAct::kBn) : (pre.relu ? PreAct::kRelu : PreAct::kNone);
#if THRUST_DEVICE_SYSTEM == THRUST_DEVICE_SYSTEM_CUDA
    if constexpr (std::is_same_v<T, float>)
      if (tensor_cores()) return run_tensor_core(mode, in, out, pre, post);
#endif
    switch (block_) {
      case 8: return dispatch_pre<8>(mode, in, out, pre, post);
      case 16: return dispatch_pre<16>(mode, in, out, pre, post);
      default: return dispatch_pre<32>(mode, in, out, pre, post);
    }
  }

 private:
  template <int B>
  void dispatch_pre(thrust_detail::PreAct mode, TensorView<const T> in, TensorView<T> out,
                    const Activation<Thrust, T>& pre, const Activation<Thrust, T>& post) const {
    using thrust_detail::PreAct;
    switch (mode) {
      case PreAct::kNone: return run<B, PreAct::kNone>(in, out, pre, post);
      case PreAct::kBn: return run<B, PreAct::kBn>(in, out, pre, post);
      case PreAct::kBnRelu: return run<B, PreAct::kBnRelu>(in, out, pre, post);
      case PreAct::kRelu: return run<B, PreAct::kRelu>(in, out, pre, post);
    }
  }

  template <int B, thrust_detail::PreAct Pre>
  void run(TensorView<const T> in, TensorView<T> out, const Activation<Thrust, T>& pre,
           const Activation<Thrust, T>& post) const {
    constexpr int P = thrust_detail::kConvVoxelTile;
    thrust_detail::ConvKernel<T, B, P, Pre> k;
    k.in = thrust_detail::DeviceView<const T>(in);
    k.out = thrust_detail::DeviceView<T>(out);
    k.g = thrust_detail::DeviceWindow(spec_.geometry);
    k.ci = spec_.in_channels;
    k.co = spec_.out_channels;
    k.co_padded = co_padded_;
    k.chunks = co_padded_ / B;
    k.weight = thrust_detail::raw(packed_);
    k.bias = bias_.empty() ? nullptr : thrust_detail::raw(bias_);
    if (pre.bn) {
      k.pre_scale = pre.bn->scale();
      k.pre_shift = pre.bn->shift();
    }
    k.post = thrust_detail::device_activation(post);
    const Index tiles = (out.dims.voxels() + P - 1) / P;
    thrust_detail::for_each_index(tiles * k.chunks, k);
  }

#if THRUST_DEVICE_SYSTEM == THRUST_DEVICE_SYSTEM_CUDA
  void run_tensor_core(thrust_detail::PreAct mode, TensorView<const T> in, TensorView<T> out,
                       const Activation<Thrust, T>& pre, const Activation<Thrust, T>& post) const {
    namespace tc = thrust_detail::tensor_core;
    tc::Problem p;
    p.in = thrust_detail::DeviceView<const float>(in);
    p.out = thrust_detail::DeviceView<float>(out);
    p.g = thrust_detail::DeviceWindow(spec_.geometry);
    p.ci = int(spec_.in_channels);
    p.co = int(spec_.out_channels);
    p.co_padded = int(co_padded_);
    p.k_total = int(spec_.geometry.taps() * spec_.in_channels);
    p.n_tiles = int(co_padded_ / tc::kBN);
    p.weight = thrust_detail::raw(packed_);
    p.bias = bias_.empty() ? nullptr : thrust_detail::raw(bias_);
    if (pre.bn) {
      p.pre_scale = pre.bn->scale();
      p.pre_shift = pre.bn->shift();
    }
    p.post = thrust_detail::device_activation(post);
    const bool vec = tc::vector_loads(p.in, p.ci);
    if (precision_ == Precision::kTf32) tc::launch<tc::Math::kTf32>(p, mode, vec);
    else tc::launch<tc::Math::kTf32x3>(p, mode, vec);
  }
#endif

  ConvSpec spec_;
  Precision precision_ = Precision::kFloat32;
  int block_ = 32;
  Index co_padded_ = 0;
  thrust::device_vector<T> packed_;  // (taps * C_in) x co_padded_, rows ordered (tap, c_in)
  thrust::device_vector<T> bias_;
};

// The network's convs take the device's precision (Thrust::precision: float32, or tf32 on CUDA).
template <class T>
struct ConvAlgorithm<Thrust, T> {
  static std::unique_ptr<Conv3d<Thrust, T>> make(const ConvSpec& spec, const std::vector<float>& weight,
                                                 const std::vector<float>& bias, const Thrust& device = {},
                                                 const ConvUse& use = {}) {
    (void)use;
    return std::make_unique<Conv3d<Thrust, T>>(spec, weight.data(), weight.size(), bias.data(), bias.size(),
                                               device.precision);
  }
};

}  // namespace volfeat
