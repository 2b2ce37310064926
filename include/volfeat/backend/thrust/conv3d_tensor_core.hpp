#pragma once
// Conv3d<Thrust, float> on the GPU's tensor cores (sm_80 and newer; CUDA device system only): an
// implicit GEMM over channels-last views, with the conv's fused pre-activation (BN and/or ReLU of the
// input, applied as the input tile is read) and post-activation (bias, BN and/or ReLU, applied as
// the output is stored into a possibly strided channel slice: the dense block's buffer, in place).
//
// The GEMM, and what each dimension means:
//   M = output voxels (n, z, y, x), flattened in the output view's order;
//   N = output channels, padded to a multiple of 32 (the packed weights' columns, zeros past C_out);
//   K = taps x C_in, ordered (tap, c_in): the packed weights' rows (Conv3d<Thrust>'s packing).
//   A[m][k] = activate(in[voxel m shifted by tap(k)][c_in(k)]), zero outside the input (torch pads
//   the activated tensor); B[k][n] = packed weight; C[m][n] = out[m][n] before the epilogue.
// One block of 256 threads (8 warps) computes a 128 x 32 tile of C: threads 2r and 2r+1 load the
// two halves of row r of each 128 x 32 A tile (one output voxel), warp w multiplies rows
// 16w..16w+15 with 1 x 2 WMMA fragments of 16 x 16 x 8 (TF32 in, float accumulators). The next K
// tile is read into registers while the current one is multiplied. Blocks are numbered N-tile
// fastest, so the blocks that read the same input rows run together and share them through L2.
// (H200, 2026-12-04: 6-10 % faster than 4 warps of 32 rows, whose 180-188 registers allowed two
// blocks per SM; bench/README.md has the measurements and Nsight Compute's view.)
//
// Math:
//   kTf32x3  float32 (the default, --precision float32): each operand x split as big = tf32(x),
//            small = tf32(x - big); a_small*b_big + a_big*b_small + a_big*b_big summed per K tile
//            and the tile's sum added to the running one in float32 (the tensor cores' adder
//            truncates). The dropped a_small*b_small term is below float32 rounding (3xTF32, as
//            CUTLASS's), so the tests hold this path to the same 1e-5 as the float FMA kernel.
//   kTf32    --precision tf32 (opt-in): operands rounded to TF32 (10-bit mantissa) once.
// The kernel is conv3d_tensor_core_kernel.hpp; this header decides where it runs and launches it.
#include <cstdint>

#include "volfeat/backend/thrust/conv3d_tensor_core_kernel.hpp"

#if THRUST_DEVICE_SYSTEM == THRUST_DEVICE_SYSTEM_CUDA

namespace volfeat::thrust_detail::tensor_core {

// True where the tensor-core kernels were compiled for this GPU (sm_80+ machine code or PTX) and
// the GPU has TF32 tensor cores. A build for older targets (CI's compile check: sm_75) runs the FMA
// kernel instead.
inline bool available() {
  static const bool ok = [] {
    int dev = 0;
    cudaDeviceProp prop{};
    cudaFuncAttributes attr{};
    if (cudaGetDevice(&dev) != cudaSuccess || cudaGetDeviceProperties(&prop, dev) != cudaSuccess) return false;
    if (cudaFuncGetAttributes(&attr, conv_kernel<Math::kTf32, PreAct::kNone, true>) != cudaSuccess) return false;
    return prop.major >= 8 && attr.ptxVersion >= 80 && attr.binaryVersion >= 80;
  }();
  return ok;
}

// Whether a conv with these views can run here: 32-channel output tiles of the packed weights.
inline bool fits(int co_padded) { return co_padded % kBN == 0; }

template <Math M, PreAct Pre>
void launch(const Problem& p, bool vec) {
  const Index blocks = (p.out.voxels() + kBM - 1) / kBM * p.n_tiles;
  if (blocks > Index(INT32_MAX)) fail("conv3d: ", p.out.voxels(), " output voxels are too many for one launch");
  if (vec) conv_kernel<M, Pre, true><<<unsigned(blocks), kThreads>>>(p);
  else conv_kernel<M, Pre, false><<<unsigned(blocks), kThreads>>>(p);
  if (const cudaError_t e = cudaGetLastError(); e != cudaSuccess)
    fail("conv3d (tensor cores): launch failed: ", cudaGetErrorString(e));
}

template <Math M>
void launch(const Problem& p, PreAct pre, bool vec) {
  switch (pre) {
    case PreAct::kNone: return launch<M, PreAct::kNone>(p, vec);
    case PreAct::kBn: return launch<M, PreAct::kBn>(p, vec);
    case PreAct::kBnRelu: return launch<M, PreAct::kBnRelu>(p, vec);
    case PreAct::kRelu: return launch<M, PreAct::kRelu>(p, vec);
  }
}

}  // namespace volfeat::thrust_detail::tensor_core

#endif  // THRUST_DEVICE_SYSTEM == THRUST_DEVICE_SYSTEM_CUDA
