#pragma once
// The tensor-core kernel for stride-1 convs over 32-channel multiples (DenseNet's 3x3x3 growth convs:
// two thirds of the network's FLOPs). The implicit GEMM of conv3d_tensor_core_kernel.hpp reads every
// input voxel once per tap (27 times for a 3x3x3 conv) from L1/L2; this one stages a block's input
// halo in shared memory 32 channels at a time, activated once, and reads every tap's A fragment
// from it.
//
// Shapes, and what each dimension means:
//   output tile of a block: 1 x 8 x 16 voxels (z, y, x) x 32 channels; row r of the tile's GEMM is
//     (y, x) = (r / 16, r % 16); warp w owns rows 32w..32w+31, i.e. y = 2w and 2w + 1;
//   halo: kd x (8 + kh - 1) x (16 + kw - 1) input voxels (dilation 1) x 32 channels, each voxel's
//     channels at a stride of kHaloLd floats (160 bytes: every voxel 32-byte aligned, as WMMA's
//     loads require);
//   A fragment of tap (dz, dy, dx), k-step kk, rows y: halo voxel (dz, y + dy, dx + 0..15), channels
//     kk..kk+7: 16 rows one voxel (kHaloLd floats) apart, loaded in place;
//   B fragment: 8 x 16 of the packed weights (rows tap * C_in + c, C_out padded to 32), straight from
//     global memory (every block reads the same few KB: L1/L2).
// Device code under the same two compilers as conv3d_tensor_core_kernel.hpp (nvcc, and the host
// emulation of tests/support/wmma_emulation.hpp).
#include "volfeat/backend/thrust/conv3d_tensor_core_kernel.hpp"

#if THRUST_DEVICE_SYSTEM == THRUST_DEVICE_SYSTEM_CUDA || defined(VOLFEAT_WMMA_EMULATION)

#if defined(VOLFEAT_WMMA_EMULATION)
#define VOLFEAT_DYNAMIC_SHARED(name) float* const name = ::volfeat::test::wmma_emulation::dynamic_shared()
#else
#define VOLFEAT_DYNAMIC_SHARED(name) extern __shared__ __align__(128) float name[]
#endif

namespace volfeat::thrust_detail::tensor_core {

inline constexpr int kHaloTileY = 8, kHaloTileX = 16;  // output voxels per block: 1 x 8 x 16 = kBM
inline constexpr int kHaloLd = kBK + 8;                 // floats per halo voxel: 32 channels + 8 pad
static_assert(kHaloTileY * kHaloTileX == kBM, "one output voxel per row of the block's GEMM");

// The halo's extent and the grid's tiling, computed on the host (halo_shape).
struct HaloShape {
  int hz = 0, hy = 0, hx = 0;   // halo voxels along z, y, x
  Index tiles_y = 0, tiles_x = 0;
  size_t bytes() const { return size_t(hz) * size_t(hy) * size_t(hx) * kHaloLd * sizeof(float); }
};

inline HaloShape halo_shape(const Problem& p) {
  HaloShape h;
  h.hz = int(p.g.k[0]);
  h.hy = kHaloTileY + int(p.g.k[1]) - 1;
  h.hx = kHaloTileX + int(p.g.k[2]) - 1;
  h.tiles_y = (p.out.h + kHaloTileY - 1) / kHaloTileY;
  h.tiles_x = (p.out.w + kHaloTileX - 1) / kHaloTileX;
  return h;
}

// Whether the halo kernel runs this conv: stride 1, dilation 1, more than one tap, 32-channel input
// chunks with 16-byte aligned voxels, and a halo that leaves room for two blocks per SM.
inline bool halo_fits(const Problem& p) {
  for (int a = 0; a < 3; ++a)
    if (p.g.s[a] != 1 || p.g.dil[a] != 1) return false;
  return p.g.k[0] * p.g.k[1] * p.g.k[2] > 1 && vector_loads(p.in, p.ci) && halo_shape(p).bytes() <= 100 * 1024;
}

template <Math M, PreAct Pre>
__global__ void __launch_bounds__(kThreads) conv_halo_kernel(const Problem p, const HaloShape h) {
#if (defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800) || defined(VOLFEAT_WMMA_EMULATION)
  using namespace nvcuda;
  VOLFEAT_DYNAMIC_SHARED(halo);
  float* const cs = halo;  // the epilogue's C tile (kBM x kLd floats), over the halo's space

  const int t = threadIdx.x, warp = t >> 5, lane = t & 31;
  Index tile = Index(blockIdx.x);
  const int n0 = int(tile % p.n_tiles) * kBN;
  tile /= p.n_tiles;
  const Index x0 = (tile % h.tiles_x) * kHaloTileX;
  tile /= h.tiles_x;
  const Index y0 = (tile % h.tiles_y) * kHaloTileY;
  tile /= h.tiles_y;
  const Index oz = tile % p.out.d, on = tile / p.out.d;
  // The halo's corner in the input (stride 1: output voxel o reads o - pad + tap).
  const Index iz0 = oz - p.g.p[0], iy0 = y0 - p.g.p[1], ix0 = x0 - p.g.p[2];
  const int halo_voxels = h.hz * h.hy * h.hx;
  const int kw_taps = int(p.g.k[2]), kh_taps = int(p.g.k[1]);

  auto to_operand = [](float x) { return M == Math::kTf32 ? wmma::__float_to_tf32(x) : x; };
  using FragA = wmma::fragment<wmma::matrix_a, 16, 16, 8, wmma::precision::tf32, wmma::row_major>;
  using FragB = wmma::fragment<wmma::matrix_b, 16, 16, 8, wmma::precision::tf32, wmma::row_major>;
  using FragC = wmma::fragment<wmma::accumulator, 16, 16, 8, float>;
  FragC acc[2][2], part[2][2];  // part: one tap's sums, folded into acc with float adds (3xTF32)
#pragma unroll
  for (int i = 0; i < 2; ++i)
#pragma unroll
    for (int j = 0; j < 2; ++j) wmma::fill_fragment(acc[i][j], 0.f);

  for (int c0 = 0; c0 < p.ci; c0 += kBK) {
    // The halo's 32 channels from c0, activated (zero outside the input), 8 float4 per voxel.
    for (int idx = t; idx < halo_voxels * (kBK / 4); idx += kThreads) {
      const int vox = idx >> 3, q = idx & 7;
      const int hx_i = vox % h.hx, rest = vox / h.hx;
      const int hy_i = rest % h.hy, hz_i = rest / h.hy;
      const Index iz = iz0 + hz_i, iy = iy0 + hy_i, ix = ix0 + hx_i;
      float4 v = make_float4(0.f, 0.f, 0.f, 0.f);
      if (iz >= 0 && iz < p.in.d && iy >= 0 && iy < p.in.h && ix >= 0 && ix < p.in.w) {
        const int c = c0 + 4 * q;
        v = __ldg(reinterpret_cast<const float4*>(p.in.voxel(on, iz, iy, ix) + c));
        v = make_float4(to_operand(activate<Pre>(p, v.x, c)), to_operand(activate<Pre>(p, v.y, c + 1)),
                        to_operand(activate<Pre>(p, v.z, c + 2)), to_operand(activate<Pre>(p, v.w, c + 3)));
      }
      *reinterpret_cast<float4*>(halo + vox * kHaloLd + 4 * q) = v;
    }
    __syncthreads();

    int tap = 0;
    for (int dz = 0; dz < h.hz; ++dz)
      for (int dy = 0; dy < kh_taps; ++dy)
        for (int dx = 0; dx < kw_taps; ++dx, ++tap) {
          if constexpr (M == Math::kTf32x3) {
#pragma unroll
            for (int i = 0; i < 2; ++i)
#pragma unroll
              for (int j = 0; j < 2; ++j) wmma::fill_fragment(part[i][j], 0.f);
          }
          const float* wrow = p.weight + (Index(tap) * p.ci + c0) * p.co_padded + n0;
#pragma unroll
          for (int kk = 0; kk < kBK; kk += 8) {
            FragA a[2], a_small[2];
            FragB b[2], b_small[2];
#pragma unroll
            for (int i = 0; i < 2; ++i)  // rows y = 2 warp + i, x = 0..15, shifted by the tap
              wmma::load_matrix_sync(a[i], halo + ((dz * h.hy + 2 * warp + i + dy) * h.hx + dx) * kHaloLd + kk, kHaloLd);
#pragma unroll
            for (int j = 0; j < 2; ++j) {
              wmma::load_matrix_sync(b[j], wrow + Index(kk) * p.co_padded + j * 16, unsigned(p.co_padded));
#pragma unroll
              for (int e = 0; e < b[j].num_elements; ++e) {  // weights come unrounded from global memory
                const float x = b[j].x[e], big = wmma::__float_to_tf32(x);
                if constexpr (M == Math::kTf32x3) b_small[j].x[e] = wmma::__float_to_tf32(x - big);
                b[j].x[e] = big;
              }
            }
            if constexpr (M == Math::kTf32x3) {
#pragma unroll
              for (int i = 0; i < 2; ++i)
#pragma unroll
                for (int e = 0; e < a[i].num_elements; ++e) {
                  const float x = a[i].x[e], big = wmma::__float_to_tf32(x);
                  a_small[i].x[e] = wmma::__float_to_tf32(x - big);
                  a[i].x[e] = big;
                }
            }
#pragma unroll
            for (int i = 0; i < 2; ++i)
#pragma unroll
              for (int j = 0; j < 2; ++j) {
                if constexpr (M == Math::kTf32x3) {
                  wmma::mma_sync(part[i][j], a_small[i], b[j], part[i][j]);
                  wmma::mma_sync(part[i][j], a[i], b_small[j], part[i][j]);
                  wmma::mma_sync(part[i][j], a[i], b[j], part[i][j]);
                } else {
                  wmma::mma_sync(acc[i][j], a[i], b[j], acc[i][j]);
                }
              }
          }
          if constexpr (M == Math::kTf32x3) {
#pragma unroll
            for (int i = 0; i < 2; ++i)
#pragma unroll
              for (int j = 0; j < 2; ++j)
#pragma unroll
                for (int e = 0; e < acc[i][j].num_elements; ++e) acc[i][j].x[e] += part[i][j].x[e];
          }
        }
    __syncthreads();  // the halo is refilled (or becomes the C tile) only after every warp is done
  }

  // Epilogue, as the implicit GEMM's: C through shared memory, whole rows per warp store.
#pragma unroll
  for (int i = 0; i < 2; ++i)
#pragma unroll
    for (int j = 0; j < 2; ++j)
      wmma::store_matrix_sync(cs + (warp * 32 + i * 16) * kLd + j * 16, acc[i][j], kLd, wmma::mem_row_major);
  __syncthreads();
  const int n = n0 + lane;
  if (n < p.co) {
    const float b = p.bias ? __ldg(p.bias + n) : 0.f;
    for (int r = warp; r < kBM; r += kThreads / 32) {
      const Index y = y0 + r / kHaloTileX, x = x0 + r % kHaloTileX;
      if (y < p.out.h && x < p.out.w) p.out.voxel(on, oz, y, x)[n] = p.post(cs[r * kLd + lane] + b, n);
    }
  }
#else
  __trap();
#endif
}

}  // namespace volfeat::thrust_detail::tensor_core

#endif  // CUDA device system, or the host emulation
