#pragma once
// Cpu 3D Winograd convolution F(2x2x2, 3x3x3) for 3x3x3, stride-1, dilation-1 convs (any padding):
// 64 multiplies per 2x2x2 output tile and channel pair instead of 216 (3.375x fewer). The network
// attaches one to a Conv3d<Cpu, float> where it wins (winograd3d_select.hpp); Conv3d::forward and
// forward_plane then run it.
//
// The output grid is cut into 2x2x2 tiles (partial at odd edges: the missing outputs are computed on
// zero input and dropped). Tiles are processed in blocks, each thread a whole block at a time, in
// three phases:
//   1. input transform: each tile's 4x4x4 x C_in patch is gathered (the fused pre-activation, BN and
//      ReLU, applied to in-bounds values only: torch pads the activated tensor with zeros) and
//      transformed, a vector of channels at a time (winograd3d_transforms.hpp), into V[xi][tile][c_in];
//   2. the batched GEMM: for each of the 64 points xi, M[xi] (tiles x C_out) = V[xi] * U[xi]
//      (C_in x C_out), U the transformed weights. This is the one switchable stage (point_gemm);
//   3. output transform: each tile's 64 points of M give 8 outputs, then the bias, the folded BN and
//      the ReLU of the post-activation, written through the output view's channel stride (so a dense
//      block's in-place channel slice works as for the direct conv).
//
// Accuracy: the transforms add and subtract, so the rounding error grows with them; README.md
// ("Winograd") has the measured error per layer, tests/test_winograd.cpp the bound it is held to.
#include <Eigen/Core>
#include <omp.h>
#include <algorithm>
#include <cstring>
#include <type_traits>
#include <vector>

#include "volfeat/backend/cpu/batchnorm3d.hpp"
#include "volfeat/backend/cpu/winograd3d_transforms.hpp"
#include "volfeat/ops/conv3d.hpp"

namespace volfeat::cpu {

namespace winograd {

// The batched GEMM stage, one point: m (rows x co) = v (rows x ci) * u (ci x co), all row-major and
// dense. Eigen's GEMM (AVX2+FMA with -march=native).
template <class T>
inline void point_gemm(const T* v, const T* u, T* m, Index rows, Index ci, Index co) {
  using RowMatrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  Eigen::Map<const RowMatrix> a(v, rows, ci), b(u, ci, co);
  Eigen::Map<RowMatrix> c(m, rows, co);
  c.noalias() = a * b;
}

}  // namespace winograd

template <class T>
class Winograd3d {
  static constexpr int kPoints = winograd::kPoints;

 public:
  // 3x3x3, stride 1, dilation 1: the geometry F(2x2x2, 3x3x3) computes.
  static bool applicable(const ConvSpec& s) {
    const WindowGeometry& g = s.geometry;
    return g.kernel == std::array<Index, 3>{3, 3, 3} && g.stride == std::array<Index, 3>{1, 1, 1} &&
           g.dilation == std::array<Index, 3>{1, 1, 1};
  }

  // weight: torch order (O, I, 3, 3, 3); bias: empty or O values.
  Winograd3d(const ConvSpec& spec, const std::vector<double>& weight, const std::vector<double>& bias = {})
      : spec_(spec) {
    if (!applicable(spec)) fail("winograd3d: only 3x3x3 convs with stride 1 and dilation 1");
    if (static_cast<Index>(weight.size()) != spec.weight_count())
      fail("winograd3d: ", weight.size(), " weights given, the layer needs ", spec.weight_count());
    if (!bias.empty() && static_cast<Index>(bias.size()) != spec.out_channels)
      fail("winograd3d: ", bias.size(), " biases given, the layer needs ", spec.out_channels);
    const Index ci = spec.in_channels, co = spec.out_channels;
    u_.resize(size_t(kPoints * ci * co));
    for (Index o = 0; o < co; ++o)
      for (Index i = 0; i < ci; ++i) {
        const auto u = winograd::kernel_transform(weight.data() + (o * ci + i) * 27);
        for (int xi = 0; xi < kPoints; ++xi) u_[size_t((xi * ci + i) * co + o)] = static_cast<T>(u[size_t(xi)]);
      }
    bias_.assign(bias.begin(), bias.end());
  }

  const ConvSpec& spec() const { return spec_; }
  // Bytes of the transformed weights (64/27 of the direct conv's).
  size_t weight_bytes() const { return u_.size() * sizeof(T); }

  void forward(TensorView<const T> in, TensorView<T> out, const Activation<Cpu, T>& pre = {},
               const Activation<Cpu, T>& post = {}) const {
    const Dims od = spec_.output_dims(in.dims);
    if (out.dims != od) fail("winograd3d: output view ", to_string(out.dims), " but the conv produces ", to_string(od));
    if (od.voxels() <= 0) fail("winograd3d: input ", to_string(in.dims), " is smaller than the kernel");
    run(in, od, out.data, out.ld, 0, 0, od.n, 0, od.d, pre, post);
  }

  // Output planes [z0, z0 + nz) of batch item n into `planes` (dims (1, nz, H_out, W_out, C_out), any
  // ld). A pair starting at an even z0 costs one plane of tiles; a single plane costs as much.
  void forward_planes(TensorView<const T> in, Index n, Index z0, Index nz, TensorView<T> planes,
                      const Activation<Cpu, T>& pre = {}, const Activation<Cpu, T>& post = {}) const {
    const Dims od = spec_.output_dims(in.dims);
    if (planes.dims != Dims{1, nz, od.h, od.w, od.c} || n < 0 || n >= od.n || z0 < 0 || nz < 1 || z0 + nz > od.d)
      fail("winograd3d: planes view ", to_string(planes.dims), " / planes (", n, ", ", z0, "+", nz,
           ") do not fit output ", to_string(od));
    run(in, od, planes.data, planes.ld, (n * od.d + z0) * od.h * od.w, n, n + 1, z0, z0 + nz, pre, post);
  }

 private:
  // Output voxels (n, z, y, x) with n in [n0, n1), z in [z_lo, z_hi), stored at
  // out + (((n*D + z)*H + y)*W + x - v_base) * ldo.
  void run(TensorView<const T> in, const Dims& od, T* out, Index ldo, Index v_base, Index n0, Index n1, Index z_lo,
           Index z_hi, const Activation<Cpu, T>& pre_act, const Activation<Cpu, T>& post_act) const {
    using V = winograd::Vec<T>;
    constexpr int nv = winograd::kLanes<T>;
    const Index ci = spec_.in_channels, co = spec_.out_channels;
    const Index tz0 = z_lo / 2, tz1 = (z_hi + 1) / 2;  // tile planes covering [z_lo, z_hi)
    const Index ty = (od.h + 1) / 2, tx = (od.w + 1) / 2;
    const Index per_n = (tz1 - tz0) * ty * tx, tiles = (n1 - n0) * per_n;
    // Each thread takes whole blocks of tiles (no barriers: this VM's cores are shared, and a thread
    // that waits on a descheduled one loses its turn). A block's V and M hold 64 * block * (ci + co)
    // values: at most 1M (4 MB of floats), and at least 2 blocks per thread when there are enough tiles.
    const int threads = omp_get_max_threads();
    const Index budget = std::max<Index>(8, Index(1 << 20) / (kPoints * (ci + co)));
    const Index block = std::clamp<Index>((tiles + 2 * threads - 1) / (2 * threads), std::min<Index>(tiles, 8), budget);
    const Index nblocks = (tiles + block - 1) / block;
    const winograd::LaneAct<T> pre{pre_act.bn ? pre_act.bn->scale() : nullptr, pre_act.bn ? pre_act.bn->shift() : nullptr,
                                   pre_act.relu};
    const T* post_scale = post_act.bn ? post_act.bn->scale() : nullptr;
    const T* post_shift = post_act.bn ? post_act.bn->shift() : nullptr;
    const bool post_relu = post_act.relu;
    const WindowGeometry& g = spec_.geometry;
    const Dims& id = in.dims;
    const T* bias = bias_.empty() ? nullptr : bias_.data();
    const T* u = u_.data();

#pragma omp parallel for schedule(dynamic, 1)
    for (Index b = 0; b < nblocks; ++b) {
      static thread_local std::vector<T> v_store, m_store;  // per thread, reused across blocks and layers
      if (v_store.size() < size_t(kPoints * block * ci)) v_store.resize(size_t(kPoints * block * ci));
      if (m_store.size() < size_t(kPoints * block * co)) m_store.resize(size_t(kPoints * block * co));
      T* const vbuf = v_store.data();
      T* const mbuf = m_store.data();
      const Index t0 = b * block, rows = std::min(block, tiles - t0);
      auto tile_origin = [&](Index t, Index& n, Index& z, Index& y, Index& x) {  // output origin of tile t
        n = n0 + t / per_n;
        Index r = t % per_n;
        x = 2 * (r % tx);
        r /= tx;
        y = 2 * (r % ty);
        z = 2 * (tz0 + r / ty);
      };
      // 1. input transform into V[p][r][c]
      for (Index r = 0; r < rows; ++r) {
        Index n, z, y, x;
        tile_origin(t0 + r, n, z, y, x);
        const T* src[kPoints];  // first channel of each of the 64 input voxels (null: padding)
        for (int a = 0; a < 4; ++a)
          for (int bb = 0; bb < 4; ++bb)
            for (int e = 0; e < 4; ++e) {
              const Index iz = z - g.padding[0] + a, iy = y - g.padding[1] + bb, ix = x - g.padding[2] + e;
              const bool inside = iz >= 0 && iz < id.d && iy >= 0 && iy < id.h && ix >= 0 && ix < id.w;
              src[(a * 4 + bb) * 4 + e] = inside ? in.voxel(n, iz, iy, ix) : nullptr;
            }
        for (Index c0 = 0; c0 < ci; c0 += nv)
          winograd::input_tile<T>(src, c0, int(std::min<Index>(nv, ci - c0)), pre, vbuf + r * ci + c0, rows * ci);
      }
      // 2. the 64 GEMMs
      for (int p = 0; p < kPoints; ++p)
        winograd::point_gemm<T>(vbuf + p * rows * ci, u + p * ci * co, mbuf + p * rows * co, rows, ci, co);
      // 3. output transform and epilogue
      for (Index r = 0; r < rows; ++r) {
        Index n, z, y, x;
        tile_origin(t0 + r, n, z, y, x);
        T* dst[8];
        for (int o = 0; o < 8; ++o) {
          const Index oz = z + o / 4, oy = y + (o / 2) % 2, ox = x + o % 2;
          const bool keep = oz >= z_lo && oz < z_hi && oy < od.h && ox < od.w;
          dst[o] = keep ? out + ((((n * od.d + oz) * od.h + oy) * od.w + ox) - v_base) * ldo : nullptr;
        }
        for (Index c0 = 0; c0 < co; c0 += nv) {
          const int nl = int(std::min<Index>(nv, co - c0));
          V yv[8];
          winograd::output_tile<T>(mbuf + r * co + c0, rows * co, nl, yv);
          const V bv = bias ? winograd::load(bias + c0, nl) : V{};
          V sc{}, sh{};
          if (post_scale) sc = winograd::load(post_scale + c0, nl), sh = winograd::load(post_shift + c0, nl);
          for (int o = 0; o < 8; ++o) {
            if (!dst[o]) continue;
            V v = yv[o] + bv;
            if (post_scale) v = v * sc + sh;
            if (post_relu) v = winograd::relu<T>(v);
            winograd::store(dst[o] + c0, v, nl);
          }
        }
      }
    }
  }

  ConvSpec spec_;
  std::vector<T> u_;  // transformed weights: U[xi][c_in][c_out]
  std::vector<T> bias_;
};

}  // namespace volfeat::cpu
