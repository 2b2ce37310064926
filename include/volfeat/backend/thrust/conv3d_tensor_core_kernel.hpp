#pragma once
// The tensor-core conv kernel of Conv3d<Thrust, float> (the launcher and the design are in
// conv3d_tensor_core.hpp). Device code, written against CUDA's names (threadIdx, __syncthreads,
// float4, __ldg, nvcuda::wmma). nvcc compiles it for the GPU (CUDA device system); the test
// test_tensor_core_emulated compiles the same source on the host under tests/support/wmma_emulation.hpp
// (VOLFEAT_WMMA_EMULATION: a fiber per CUDA thread, a switch per __syncthreads, exact fragments), so
// its indexing is proven in CI, where no GPU exists.
#include <cstdint>

#include "volfeat/backend/thrust/batchnorm3d.hpp"

namespace volfeat::thrust_detail {

// How the input is activated while it is read: none, BN, BN+ReLU, ReLU (a compile-time choice so
// that the inner loop carries no branch). Shared with the FMA kernel (conv3d.hpp).
enum class PreAct { kNone, kBn, kBnRelu, kRelu };

}  // namespace volfeat::thrust_detail

#if THRUST_DEVICE_SYSTEM == THRUST_DEVICE_SYSTEM_CUDA || defined(VOLFEAT_WMMA_EMULATION)
#if !defined(VOLFEAT_WMMA_EMULATION)
#include <cuda_runtime.h>
#include <mma.h>
#endif

namespace volfeat::thrust_detail::tensor_core {

enum class Math { kTf32x3, kTf32 };

inline constexpr int kBM = 128;          // output voxels per block
inline constexpr int kBN = 32;           // output channels per block
inline constexpr int kBK = 32;           // K per tile
inline constexpr int kWarps = 8;         // each multiplies kWarpRows rows x 32 channels
inline constexpr int kThreads = 32 * kWarps;
inline constexpr int kWarpRows = kBM / kWarps;         // 16: one row of fragments per warp
inline constexpr int kFragM = kWarpRows / 16;
inline constexpr int kRowSplit = kThreads / kBM;       // threads loading one A row (one voxel)
inline constexpr int kRowPart = kBK / kRowSplit;       // floats of the row each of them loads
inline constexpr int kBLoads = kBK * kBN / 4 / kThreads;  // float4's of the B tile per thread
inline constexpr int kLd = kBK + 4;      // shared row stride in floats: 16-byte rows, no bank conflicts
                                         // for the row-wise float4 stores; WMMA needs ldm % 4 == 0
static_assert(kThreads % kBM == 0 && kRowPart % 4 == 0 && kBLoads >= 1 && kWarpRows % 16 == 0);

struct Problem {
  DeviceView<const float> in;
  DeviceView<float> out;
  DeviceWindow g;
  int ci = 0, co = 0, co_padded = 0, k_total = 0, n_tiles = 0;
  const float* weight = nullptr;  // k_total x co_padded, row-major
  const float* bias = nullptr;    // co values or null
  const float* pre_scale = nullptr;
  const float* pre_shift = nullptr;
  DeviceActivation<float> post;
};

template <PreAct Pre>
__device__ __forceinline__ float activate(const Problem& p, float x, int c) {
  if constexpr (Pre == PreAct::kBn || Pre == PreAct::kBnRelu) x = x * __ldg(p.pre_scale + c) + __ldg(p.pre_shift + c);
  if constexpr (Pre == PreAct::kBnRelu || Pre == PreAct::kRelu) x = x < 0.f ? 0.f : x;
  return x;
}

// kVec: C_in % 32 == 0 and the input's voxels are 16-byte aligned, so a K tile lies within one tap
// and a thread's part of a row is kRowPart / 4 float4 loads. Otherwise each k is decoded (stem convs:
// C_in 1-3).
template <Math M, PreAct Pre, bool kVec>
__global__ void __launch_bounds__(kThreads) conv_kernel(const Problem p) {
#if (defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800) || defined(VOLFEAT_WMMA_EMULATION)
  using namespace nvcuda;
  __shared__ __align__(128) float smem[kBM * kLd + kBK * kLd];
  float* const as = smem;              // A tile: kBM rows (voxels) x kBK (k), stride kLd
  float* const bs = smem + kBM * kLd;  // B tile: kBK rows (k) x kBN (channels), stride kLd
  float* const cs = smem;              // the epilogue's C tile, over A's space

  const int t = threadIdx.x, warp = t >> 5, lane = t & 31;
  const int row = t / kRowSplit, col0 = (t % kRowSplit) * kRowPart;  // this thread's part of the A tile
  const Index tile = Index(blockIdx.x);
  const int n0 = int(tile % p.n_tiles) * kBN;
  const Index m0 = (tile / p.n_tiles) * kBM;
  const Index voxels = p.out.voxels();

  // This thread's row of every A tile: output voxel m, and the input corner its window starts at.
  const Index m = m0 + row;
  const bool live = m < voxels;
  Index v = live ? m : 0;
  const Index ox = v % p.out.w;
  v /= p.out.w;
  const Index oy = v % p.out.h;
  v /= p.out.h;
  const Index oz = v % p.out.d;
  const Index on = v / p.out.d;
  const Index z0 = oz * p.g.s[0] - p.g.p[0], y0 = oy * p.g.s[1] - p.g.p[1], x0 = ox * p.g.s[2] - p.g.p[2];
  const int kh_kw = int(p.g.k[1] * p.g.k[2]);

  float a_next[kRowPart];
  float4 b_next[kBLoads];

  auto load_a = [&](int k0) {
    k0 += col0;
    int tap = k0 / p.ci, c = k0 - tap * p.ci;
    int kd = tap / kh_kw, r = tap - kd * kh_kw;
    int kh = r / int(p.g.k[2]), kw = r - kh * int(p.g.k[2]);
    if constexpr (kVec) {  // one tap, kRowPart consecutive channels
      const Index iz = z0 + kd * p.g.dil[0], iy = y0 + kh * p.g.dil[1], ix = x0 + kw * p.g.dil[2];
      const bool ok = live && iz >= 0 && iz < p.in.d && iy >= 0 && iy < p.in.h && ix >= 0 && ix < p.in.w;
      if (ok) {
        const float4* src = reinterpret_cast<const float4*>(p.in.voxel(on, iz, iy, ix) + c);
#pragma unroll
        for (int j = 0; j < kRowPart / 4; ++j) {
          const float4 q = __ldg(src + j);
          a_next[4 * j + 0] = activate<Pre>(p, q.x, c + 4 * j + 0);
          a_next[4 * j + 1] = activate<Pre>(p, q.y, c + 4 * j + 1);
          a_next[4 * j + 2] = activate<Pre>(p, q.z, c + 4 * j + 2);
          a_next[4 * j + 3] = activate<Pre>(p, q.w, c + 4 * j + 3);
        }
      } else {
#pragma unroll
        for (int j = 0; j < kRowPart; ++j) a_next[j] = 0.f;
      }
    } else {  // k by k: (tap, c) advanced incrementally, no division per element
#pragma unroll
      for (int j = 0; j < kRowPart; ++j) {
        float x = 0.f;
        if (live && k0 + j < p.k_total) {
          const Index iz = z0 + kd * p.g.dil[0], iy = y0 + kh * p.g.dil[1], ix = x0 + kw * p.g.dil[2];
          if (iz >= 0 && iz < p.in.d && iy >= 0 && iy < p.in.h && ix >= 0 && ix < p.in.w)
            x = activate<Pre>(p, __ldg(p.in.voxel(on, iz, iy, ix) + c), c);
        }
        a_next[j] = x;
        if (++c == p.ci) {
          c = 0;
          if (++kw == int(p.g.k[2])) {
            kw = 0;
            if (++kh == int(p.g.k[1])) kh = 0, ++kd;
          }
        }
      }
    }
  };
  auto load_b = [&](int k0) {
#pragma unroll
    for (int i = 0; i < kBLoads; ++i) {
      const int idx = t + kThreads * i, r = idx >> 3, col = (idx & 7) * 4;
      b_next[i] = k0 + r < p.k_total
                      ? __ldg(reinterpret_cast<const float4*>(p.weight + Index(k0 + r) * p.co_padded + n0 + col))
                      : make_float4(0.f, 0.f, 0.f, 0.f);
    }
  };
  // kTf32 rounds once here; kTf32x3 keeps float32 for its split.
  auto to_operand = [](float x) { return M == Math::kTf32 ? wmma::__float_to_tf32(x) : x; };
  auto store_tiles = [&]() {
    float4* arow = reinterpret_cast<float4*>(as + row * kLd + col0);
#pragma unroll
    for (int j = 0; j < kRowPart / 4; ++j)
      arow[j] = make_float4(to_operand(a_next[4 * j]), to_operand(a_next[4 * j + 1]), to_operand(a_next[4 * j + 2]),
                            to_operand(a_next[4 * j + 3]));
#pragma unroll
    for (int i = 0; i < kBLoads; ++i) {
      const int idx = t + kThreads * i, r = idx >> 3, col = (idx & 7) * 4;
      const float4 q = b_next[i];
      *reinterpret_cast<float4*>(bs + r * kLd + col) = make_float4(to_operand(q.x), to_operand(q.y), to_operand(q.z), to_operand(q.w));
    }
  };

  using FragA = wmma::fragment<wmma::matrix_a, 16, 16, 8, wmma::precision::tf32, wmma::row_major>;
  using FragB = wmma::fragment<wmma::matrix_b, 16, 16, 8, wmma::precision::tf32, wmma::row_major>;
  // acc: the sums over K. 3xTF32 sums each K tile into `part` and adds it to acc with float adds:
  // the tensor cores' adder truncates, and over a 3x3x3 conv's 108 tiles (K = 3456) chained mma's
  // drifted to 5e-5 relative on the H200 against 4e-6 with the per-tile fold (test_primitives_cuda).
  using FragC = wmma::fragment<wmma::accumulator, 16, 16, 8, float>;
  FragC acc[kFragM][2], part[kFragM][2];
#pragma unroll
  for (int i = 0; i < kFragM; ++i)
#pragma unroll
    for (int j = 0; j < 2; ++j) wmma::fill_fragment(acc[i][j], 0.f);

  load_a(0);
  load_b(0);
  for (int k0 = 0; k0 < p.k_total; k0 += kBK) {
    store_tiles();
    __syncthreads();
    if (k0 + kBK < p.k_total) {  // in flight while this tile is multiplied
      load_a(k0 + kBK);
      load_b(k0 + kBK);
    }
    if constexpr (M == Math::kTf32x3) {
#pragma unroll
      for (int i = 0; i < kFragM; ++i)
#pragma unroll
        for (int j = 0; j < 2; ++j) wmma::fill_fragment(part[i][j], 0.f);
    }
#pragma unroll
    for (int kk = 0; kk < kBK; kk += 8) {
      FragA a[kFragM], a_small[kFragM];
      FragB b[2], b_small[2];
#pragma unroll
      for (int i = 0; i < kFragM; ++i) wmma::load_matrix_sync(a[i], as + (warp * kWarpRows + i * 16) * kLd + kk, kLd);
#pragma unroll
      for (int j = 0; j < 2; ++j) wmma::load_matrix_sync(b[j], bs + kk * kLd + j * 16, kLd);
      if constexpr (M == Math::kTf32x3) {
#pragma unroll
        for (int i = 0; i < kFragM; ++i)
#pragma unroll
          for (int e = 0; e < a[i].num_elements; ++e) {
            const float x = a[i].x[e], big = wmma::__float_to_tf32(x);
            a_small[i].x[e] = wmma::__float_to_tf32(x - big);
            a[i].x[e] = big;
          }
#pragma unroll
        for (int j = 0; j < 2; ++j)
#pragma unroll
          for (int e = 0; e < b[j].num_elements; ++e) {
            const float x = b[j].x[e], big = wmma::__float_to_tf32(x);
            b_small[j].x[e] = wmma::__float_to_tf32(x - big);
            b[j].x[e] = big;
          }
      }
#pragma unroll
      for (int i = 0; i < kFragM; ++i)
#pragma unroll
        for (int j = 0; j < 2; ++j) {
          if constexpr (M == Math::kTf32x3) {  // small terms first: they round away less
            wmma::mma_sync(part[i][j], a_small[i], b[j], part[i][j]);
            wmma::mma_sync(part[i][j], a[i], b_small[j], part[i][j]);
            wmma::mma_sync(part[i][j], a[i], b[j], part[i][j]);
          } else {
            wmma::mma_sync(acc[i][j], a[i], b[j], acc[i][j]);
          }
        }
    }
    if constexpr (M == Math::kTf32x3) {  // fragments of one shape share their element layout
#pragma unroll
      for (int i = 0; i < kFragM; ++i)
#pragma unroll
        for (int j = 0; j < 2; ++j)
#pragma unroll
          for (int e = 0; e < acc[i][j].num_elements; ++e) acc[i][j].x[e] += part[i][j].x[e];
    }
    __syncthreads();
  }

  // Epilogue: C through shared memory, then each warp stores whole rows (one voxel's 32 channels,
  // 128 contiguous bytes) with bias and the post-activation.
#pragma unroll
  for (int i = 0; i < kFragM; ++i)
#pragma unroll
    for (int j = 0; j < 2; ++j)
      wmma::store_matrix_sync(cs + (warp * kWarpRows + i * 16) * kLd + j * 16, acc[i][j], kLd, wmma::mem_row_major);
  __syncthreads();
  const int n = n0 + lane;
  if (n < p.co) {
    const float b = p.bias ? __ldg(p.bias + n) : 0.f;
    for (int r = warp; r < kBM; r += kWarps) {
      const Index mr = m0 + r;
      if (mr >= voxels) break;
      p.out.voxel(mr)[n] = p.post(cs[r * kLd + lane] + b, n);
    }
  }
#else
  __trap();  // compiled for an architecture without TF32 tensor cores: available() keeps it unlaunched
#endif
}

// The vector path's preconditions: a K tile within one tap (C_in % 32), 16-byte aligned voxels.
inline bool vector_loads(const DeviceView<const float>& in, int ci) {
  return ci % kBK == 0 && in.ld % 4 == 0 && reinterpret_cast<std::uintptr_t>(in.data) % 16 == 0;
}

}  // namespace volfeat::thrust_detail::tensor_core

#endif  // CUDA device system, or the host emulation
