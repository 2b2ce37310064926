#pragma once
// The AVX2+FMA micro-kernels (gemm_kernels.hpp has the overview): the AVX-512 kernels' contract on
// the same panel layout (16*NV floats per B row), with a 16-float vector split into two ymm. Compiled
// under VOLFEAT_TARGET_AVX2 whatever the build's -march, run only when cpu_isa() is kAvx2.
//
// 16 ymm registers: an R x 16*NV block holds R*2NV accumulators. With NV = 1 the 2 B vectors of a k
// step stay in registers and each row's A value is broadcast in turn (R = 6: 12 + 2 + 1 = 15, the
// classic 6x16 fp32 block of BLIS on Haswell/Zen); with NV = 2 the R broadcasts stay and the 4 B
// vectors stream through one register (R = 3: 12 + 3 + 1 = 16).
#include <array>
#include <cstddef>
#include <utility>

#include "volfeat/backend/cpu/gemm_types.hpp"
#include "volfeat/backend/cpu/isa.hpp"

#if VOLFEAT_HAVE_ISA_VARIANTS
#include <immintrin.h>

namespace volfeat::cpu::gemm::avx2 {

constexpr int max_rows(int nv) { return nv == 1 ? 6 : nv == 2 ? 3 : 1; }

// Panels of 16 output channels: the 6x16 block does 12 FMAs per 8 loads, 3x32 12 per 7 but with row
// blocks half as tall. Measured on Zen 3, 1 thread, CPU time (volfeat_bench): 3x3x3 128->32 at 16^3
// 11.6 ms (NV=1) vs 11.8 (NV=2), 1x1 224->128 at 32^3 29.8 vs 27.1, the 7^3 stem 392 vs 429: a wash.
constexpr int panel_vectors(Index) { return 1; }

// Lanes 0..7 enabled where lane < left.
VOLFEAT_TARGET_AVX2 inline __m256i lane_mask(int left) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(left), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

template <int R, int NV, int RS, int L = 0>
VOLFEAT_TARGET_AVX2 void kernel(const Segment* segs, int nseg, Index rs, Index a_shift, float* c, Index ldc,
                                const Epilogue& ep) {
  constexpr int V = 2 * NV;  // ymm per row
  constexpr int PW = 16 * NV;
  constexpr bool kHoldB = R * V + V + 1 <= 16;
  const Index stride = RS > 0 ? Index(RS) : rs;
  const bool full = ep.cols == PW;
  __m256i mask[V];
  VOLFEAT_UNROLL(8)
  for (int j = 0; j < V; ++j) mask[j] = lane_mask(ep.cols - 8 * j);
  __m256 acc[R][V];
  VOLFEAT_UNROLL(16)
  for (int r = 0; r < R; ++r)
    VOLFEAT_UNROLL(8)
    for (int j = 0; j < V; ++j)
      acc[r][j] = !ep.accumulate ? _mm256_setzero_ps()
                  : full         ? _mm256_loadu_ps(c + r * ldc + 8 * j)
                                 : _mm256_maskload_ps(c + r * ldc + 8 * j, mask[j]);
  for (int s = 0; s < nseg; ++s) {
    const float* a = segs[s].a + a_shift;
    const float* b = segs[s].b;
    const Index len = L > 0 ? Index(L) : segs[s].len;
    VOLFEAT_UNROLL(4)
    for (Index k = 0; k < len; ++k, b += PW) {
      if constexpr (kHoldB) {
        __m256 bv[V];
        VOLFEAT_UNROLL(8)
        for (int j = 0; j < V; ++j) bv[j] = _mm256_load_ps(b + 8 * j);
        VOLFEAT_UNROLL(16)
        for (int r = 0; r < R; ++r) {
          const __m256 av = _mm256_broadcast_ss(a + r * stride + k);
          VOLFEAT_UNROLL(8)
          for (int j = 0; j < V; ++j) acc[r][j] = _mm256_fmadd_ps(av, bv[j], acc[r][j]);
        }
      } else {
        __m256 av[R];
        VOLFEAT_UNROLL(16)
        for (int r = 0; r < R; ++r) av[r] = _mm256_broadcast_ss(a + r * stride + k);
        VOLFEAT_UNROLL(8)
        for (int j = 0; j < V; ++j) {
          const __m256 bj = _mm256_load_ps(b + 8 * j);
          VOLFEAT_UNROLL(16)
          for (int r = 0; r < R; ++r) acc[r][j] = _mm256_fmadd_ps(av[r], bj, acc[r][j]);
        }
      }
    }
  }
  // Epilogue: bias, BN, ReLU (max(0, x) keeps NaN: vmaxps returns its second operand on NaN), store.
  const __m256 zero = _mm256_setzero_ps();
  const bool use_bias = ep.finish && ep.bias, use_bn = ep.finish && ep.scale, use_relu = ep.finish && ep.relu;
  __m256 bias[V], scale[V], shift[V];
  VOLFEAT_UNROLL(8)
  for (int j = 0; j < V; ++j) {
    bias[j] = use_bias ? _mm256_maskload_ps(ep.bias + 8 * j, mask[j]) : zero;
    scale[j] = use_bn ? _mm256_maskload_ps(ep.scale + 8 * j, mask[j]) : zero;
    shift[j] = use_bn ? _mm256_maskload_ps(ep.shift + 8 * j, mask[j]) : zero;
  }
  VOLFEAT_UNROLL(16)
  for (int r = 0; r < R; ++r) {
    float* y = c + r * ldc;
    VOLFEAT_UNROLL(8)
    for (int j = 0; j < V; ++j) {
      __m256 v = acc[r][j];
      if (use_bias) v = _mm256_add_ps(v, bias[j]);
      if (use_bn) v = _mm256_fmadd_ps(v, scale[j], shift[j]);
      if (use_relu) v = _mm256_max_ps(zero, v);
      if (full) _mm256_storeu_ps(y + 8 * j, v);
      else _mm256_maskstore_ps(y + 8 * j, mask[j], v);
    }
  }
}

template <int NV, int RS, int L, size_t... I>
constexpr std::array<KernelFn, sizeof...(I)> kernel_table(std::index_sequence<I...>) {
  return {&kernel<int(I) + 1, NV, RS, L>...};
}

template <int NV, int RS, int L = 0>
inline KernelFn kernel_for(int rows) {
  static constexpr auto table = kernel_table<NV, RS, L>(std::make_index_sequence<size_t(max_rows(NV))>());
  return table[size_t(rows - 1)];
}

// As avx512::select_kernel: compile-time row strides for DenseNet's dense layers (128) and the
// stem (2, with 7-long segments).
inline KernelFn select_kernel(int nv, Index rs, int rows, Index seglen) {
  if (nv == 1 && rs == 2 && seglen == 7) return kernel_for<1, 2, 7>(rows);
  if (nv == 2 && rs == 2 && seglen == 7) return kernel_for<2, 2, 7>(rows);
  switch (nv) {
    case 1:
      return rs == 128 ? kernel_for<1, 128>(rows) : rs == 2 ? kernel_for<1, 2>(rows) : kernel_for<1, 0>(rows);
    case 2:
      return rs == 128 ? kernel_for<2, 128>(rows) : rs == 2 ? kernel_for<2, 2>(rows) : kernel_for<2, 0>(rows);
    default:
      return kernel_for<4, 0>(rows);
  }
}

VOLFEAT_TARGET_AVX2 inline void activate_row(const float* x, float* y, Index n, const float* scale, const float* shift,
                                             bool relu) {
  const __m256 zero = _mm256_setzero_ps();
  Index i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 v = _mm256_loadu_ps(x + i);
    if (scale) v = _mm256_fmadd_ps(v, _mm256_loadu_ps(scale + i), _mm256_loadu_ps(shift + i));
    if (relu) v = _mm256_max_ps(zero, v);
    _mm256_storeu_ps(y + i, v);
  }
  if (i < n) {
    const __m256i m = lane_mask(int(n - i));
    __m256 v = _mm256_maskload_ps(x + i, m);
    if (scale) v = _mm256_fmadd_ps(v, _mm256_maskload_ps(scale + i, m), _mm256_maskload_ps(shift + i, m));
    if (relu) v = _mm256_max_ps(zero, v);
    _mm256_maskstore_ps(y + i, m, v);
  }
}

}  // namespace volfeat::cpu::gemm::avx2

#endif  // VOLFEAT_HAVE_ISA_VARIANTS
