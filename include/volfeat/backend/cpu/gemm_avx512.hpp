#pragma once
// The AVX-512F micro-kernels (gemm_kernels.hpp has the overview). Compiled under
// VOLFEAT_TARGET_AVX512 whatever the build's -march, and run only when cpu_isa() is kAvx512.
//
// An R x 16*NV block: R*NV zmm accumulators, NV zmm of B per k step, A as broadcasts; the widest R
// keeps R*NV + NV + 1 <= 32 registers.
#include <array>
#include <cstddef>
#include <utility>

#include "volfeat/backend/cpu/gemm_types.hpp"
#include "volfeat/backend/cpu/isa.hpp"

#if VOLFEAT_HAVE_ISA_VARIANTS
#include <immintrin.h>

namespace volfeat::cpu::gemm::avx512 {

constexpr int max_rows(int nv) { return nv == 1 ? 14 : nv == 2 ? 14 : nv == 4 ? 6 : 3; }

// 16, 32 or 64 output channels per panel; 64 for every layer of 64 or more.
constexpr int panel_vectors(Index out_channels) { return out_channels <= 16 ? 1 : out_channels <= 32 ? 2 : 4; }

#define VOLFEAT_AVX512_BLOCK_INLINE VOLFEAT_TARGET_AVX512 inline __attribute__((always_inline))

// The pieces of an R x 16*NV block that every AVX-512 kernel shares (the fp32 kernel below, the bf16
// kernels of gemm_bf16.hpp): the lane masks of a partial last panel, the accumulators' start (zero,
// or C for a later K group), and the epilogue.
template <int NV>
VOLFEAT_AVX512_BLOCK_INLINE void panel_masks(const Epilogue& ep, __mmask16 (&mask)[NV]) {
  VOLFEAT_UNROLL(8)
  for (int j = 0; j < NV; ++j) {
    const int left = ep.cols - 16 * j;
    mask[j] = left >= 16 ? __mmask16(0xFFFF) : left <= 0 ? __mmask16(0) : __mmask16((1u << left) - 1);
  }
}

template <int R, int NV>
VOLFEAT_AVX512_BLOCK_INLINE void start_block(__m512 (&acc)[R][NV], const __mmask16 (&mask)[NV], const float* c,
                                             Index ldc, const Epilogue& ep) {
  VOLFEAT_UNROLL(16)
  for (int r = 0; r < R; ++r)
    VOLFEAT_UNROLL(8)
    for (int j = 0; j < NV; ++j)
      acc[r][j] = ep.accumulate ? _mm512_maskz_loadu_ps(mask[j], c + r * ldc + 16 * j) : _mm512_setzero_ps();
}

// v rounded to bf16 as round_to_bf16 rounds (vcvtneps2bf16's rounding: nearest, ties to even; NaN made quiet;
// zero and denormals to signed zero), in AVX-512F/BW integer ops: the fp32 kernels' target has no AVX512-BF16.
VOLFEAT_AVX512_BLOCK_INLINE __m256i round_bf16(__m512 v) {
  const __m512i u = _mm512_castps_si512(v), high = _mm512_srli_epi32(u, 16);
  const __m512i magnitude = _mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff));
  __m512i r = _mm512_add_epi32(_mm512_add_epi32(u, _mm512_set1_epi32(0x7fff)),
                               _mm512_and_si512(high, _mm512_set1_epi32(1)));
  r = _mm512_srli_epi32(r, 16);
  r = _mm512_mask_mov_epi32(r, _mm512_cmpgt_epu32_mask(magnitude, _mm512_set1_epi32(0x7f800000)),
                            _mm512_or_si512(high, _mm512_set1_epi32(0x0040)));
  r = _mm512_mask_mov_epi32(r, _mm512_testn_epi32_mask(u, _mm512_set1_epi32(0x7f800000)),
                            _mm512_and_si512(high, _mm512_set1_epi32(0x8000)));
  return _mm512_cvtepi32_epi16(r);
}

// Bias, BN, ReLU (max(0, x) keeps NaN: vmaxps returns its second operand on NaN), store. kBf16C: the bf16
// kernels', which store into ep.c16 instead where it is set (Epilogue).
template <int R, int NV, bool kBf16C = false>
VOLFEAT_AVX512_BLOCK_INLINE void finish_block(__m512 (&acc)[R][NV], const __mmask16 (&mask)[NV], float* c, Index ldc,
                                              const Epilogue& ep) {
  constexpr int PW = 16 * NV;
  const __m512 zero = _mm512_setzero_ps();
  __m512 bias[NV], scale[NV], shift[NV];
  const bool use_bias = ep.finish && ep.bias, use_bn = ep.finish && ep.scale, use_relu = ep.finish && ep.relu;
  VOLFEAT_UNROLL(8)
  for (int j = 0; j < NV; ++j) {
    bias[j] = ep.bias ? _mm512_maskz_loadu_ps(mask[j], ep.bias + 16 * j) : zero;
    scale[j] = ep.scale ? _mm512_maskz_loadu_ps(mask[j], ep.scale + 16 * j) : zero;
    shift[j] = ep.shift ? _mm512_maskz_loadu_ps(mask[j], ep.shift + 16 * j) : zero;
  }
  const bool full = ep.cols == PW;
  VOLFEAT_UNROLL(16)
  for (int r = 0; r < R; ++r) {
    VOLFEAT_UNROLL(8)
    for (int j = 0; j < NV; ++j) {
      __m512 v = acc[r][j];
      if (use_bias) v = _mm512_add_ps(v, bias[j]);
      if (use_bn) v = _mm512_fmadd_ps(v, scale[j], shift[j]);
      if (use_relu) v = _mm512_max_ps(zero, v);
      if constexpr (kBf16C) {
        if (ep.c16) {  // (c is null then)
          _mm256_mask_storeu_epi16(ep.c16 + r * ldc + 16 * j, mask[j], round_bf16(v));
          continue;
        }
      }
      float* y = c + r * ldc;
      if (full) _mm512_storeu_ps(y + 16 * j, v);
      else if (mask[j]) _mm512_mask_storeu_ps(y + 16 * j, mask[j], v);
    }
  }
}

// L > 0: every segment is exactly L long (the stem's 7 kw taps of one input row), fully unrolled.
// a_shift is added to every segment's A pointer (the row block's first row).
template <int R, int NV, int RS, int L = 0>
VOLFEAT_TARGET_AVX512 void kernel(const Segment* segs, int nseg, Index rs, Index a_shift, float* c, Index ldc,
                                  const Epilogue& ep) {
  constexpr int PW = 16 * NV;
  const Index stride = RS > 0 ? Index(RS) : rs;
  __mmask16 mask[NV];
  panel_masks<NV>(ep, mask);
  __m512 acc[R][NV];
  start_block<R, NV>(acc, mask, c, ldc, ep);
  for (int s = 0; s < nseg; ++s) {
    const float* a = segs[s].a + a_shift;
    const float* b = segs[s].b;
    const Index len = L > 0 ? Index(L) : segs[s].len;
    VOLFEAT_UNROLL(8)
    for (Index k = 0; k < len; ++k, b += PW) {
      __m512 bv[NV];
      VOLFEAT_UNROLL(8)
      for (int j = 0; j < NV; ++j) bv[j] = _mm512_load_ps(b + 16 * j);
      VOLFEAT_UNROLL(16)
      for (int r = 0; r < R; ++r) {
        const __m512 av = _mm512_set1_ps(a[r * stride + k]);
        VOLFEAT_UNROLL(8)
        for (int j = 0; j < NV; ++j) acc[r][j] = _mm512_fmadd_ps(av, bv[j], acc[r][j]);
      }
    }
  }
  finish_block<R, NV>(acc, mask, c, ldc, ep);
}

template <int NV, int RS, int L, size_t... I>
constexpr std::array<KernelFn, sizeof...(I)> kernel_table(std::index_sequence<I...>) {
  return {&kernel<int(I) + 1, NV, RS, L>...};
}

// The kernel for `rows` (1 .. max_rows(NV)) rows of a panel of NV vectors with row stride RS (0: runtime).
template <int NV, int RS, int L = 0>
inline KernelFn kernel_for(int rows) {
  static constexpr auto table = kernel_table<NV, RS, L>(std::make_index_sequence<size_t(max_rows(NV))>());
  return table[size_t(rows - 1)];
}

// The kernel of For<NV, RS>::get(rows) for a panel of nv vectors and row stride rs, RS a compile-time
// constant for DenseNet's strides (the dense layers' 128, the stems' 2), else 0 (runtime). Shared by
// the fp32 kernels below and the bf16 ones (gemm_bf16.hpp).
template <template <int, int> class For>
inline auto kernel_by_stride(int nv, Index rs, int rows) {
  switch (nv) {
    case 1:
      return rs == 128 ? For<1, 128>::get(rows) : For<1, 0>::get(rows);
    case 2:
      return rs == 128 ? For<2, 128>::get(rows) : rs == 2 ? For<2, 2>::get(rows) : For<2, 0>::get(rows);
    default:
      return rs == 128 ? For<4, 128>::get(rows) : rs == 2 ? For<4, 2>::get(rows) : For<4, 0>::get(rows);
  }
}

template <int NV, int RS>
struct KernelFor {
  static KernelFn get(int rows) { return kernel_for<NV, RS>(rows); }
};

// Dispatch on NV, the row stride and the segment length (the stem's 7-long segments fully unrolled).
inline KernelFn select_kernel(int nv, Index rs, int rows, Index seglen) {
  if (nv == 4 && rs == 2 && seglen == 7) return kernel_for<4, 2, 7>(rows);
  if (nv == 2 && rs == 2 && seglen == 7) return kernel_for<2, 2, 7>(rows);
  return kernel_by_stride<KernelFor>(nv, rs, rows);
}

VOLFEAT_TARGET_AVX512 inline __m512 activate16(__m512 v, const float* scale, const float* shift, Index at, __mmask16 m,
                                               bool relu) {
  if (scale) v = _mm512_fmadd_ps(v, _mm512_maskz_loadu_ps(m, scale + at), _mm512_maskz_loadu_ps(m, shift + at));
  if (relu) v = _mm512_max_ps(_mm512_setzero_ps(), v);
  return v;
}

VOLFEAT_TARGET_AVX512 inline void activate_row(const float* x, float* y, Index n, const float* scale, const float* shift,
                                               bool relu) {
  Index i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, activate16(_mm512_loadu_ps(x + i), scale, shift, i, 0xFFFF, relu));
  if (i < n) {
    const __mmask16 m = __mmask16((1u << (n - i)) - 1);
    _mm512_mask_storeu_ps(y + i, m, activate16(_mm512_maskz_loadu_ps(m, x + i), scale, shift, i, m, relu));
  }
}

}  // namespace volfeat::cpu::gemm::avx512

#endif  // VOLFEAT_HAVE_ISA_VARIANTS
