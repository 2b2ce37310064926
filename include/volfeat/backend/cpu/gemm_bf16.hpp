#pragma once
// The bf16 micro-kernels (Precision::kBf16; gemm_kernels.hpp has the fp32 overview). Compiled under
// VOLFEAT_TARGET_AVX512BF16 whatever the build's -march, and run only where cpu_has_avx512_bf16()
// and the process's kernels are the AVX-512 set (bf16_unavailable_reason() says why not otherwise).
//
// vdpbf16ps multiplies 16 pairs of bf16 and adds both products to 16 float accumulators: 32
// multiply-adds per instruction where vfmadd231ps does 16. So the operands come in pairs along K:
//  * B, a panel of 16*NV output channels: k-pair p holds, for output channel o, (B[2p][o], B[2p+1][o])
//    as one 32-bit lane: lanes (p, o) at b + (p*16*NV + o)*2. A panel slice starting at an even k0 is
//    at b + k0*16*NV, the fp32 layout's offset in elements (each k-pair row is 64*NV bytes, as a
//    k row of floats).
//  * A, row r of a segment: bf16 values at a + r*rs + k, k-pairs read as one 32-bit broadcast.
//  * every segment starts at an even k of its B panel. An odd-long segment ends with a single k: A's
//    value goes in as the pair (A[r][k], 0), and B's pair row holds (B[k][o], 0), so nothing is read
//    past the segment and the sum is exact. The convs pad each B unit (a tap row of kW*C_in, a tap of
//    C_in) to an even length for this. Where a tap row is odd-long (the gray stem's 7 kw taps of one
//    channel: 3 pairs and a single), a direct conv pairs its tap rows instead: A interleaves two input
//    rows, each k-pair (row 2j, row 2j + 1) of one voxel and channel, and B likewise (conv3d.hpp,
//    pair_unit_): 7 k-pairs for two rows, where each took 4.
// The accumulators are float and so is everything after: the epilogue (bias, BN, ReLU) is the fp32
// kernels' (gemm_avx512.hpp). Rounding the operands to bf16 is the only difference from float32.
//
// The conversion float -> bf16 rounds to nearest even, keeps NaN, and flushes denormals to zero, as
// vcvtneps2bf16 does; round_to_bf16 (gemm_types.hpp) is the same in plain C++ (weights are packed with
// it, on any CPU).
#include <array>
#include <cstdint>
#include <cstring>
#include <utility>

#include "volfeat/backend/cpu/gemm_avx512.hpp"
#include "volfeat/backend/cpu/gemm_types.hpp"
#include "volfeat/backend/cpu/isa.hpp"

#if VOLFEAT_HAVE_ISA_VARIANTS
namespace volfeat::cpu::gemm::avx512bf16 {

using avx512::max_rows;
using avx512::panel_vectors;

template <int R, int NV, int RS>
VOLFEAT_TARGET_AVX512BF16 void kernel(const Bf16Segment* segs, int nseg, Index rs, Index a_shift, float* c, Index ldc,
                                      const Epilogue& ep) {
  constexpr int PW = 16 * NV;
  const Index stride = RS > 0 ? Index(RS) : rs;
  __mmask16 mask[NV];
  avx512::panel_masks<NV>(ep, mask);
  __m512 acc[R][NV];
  avx512::start_block<R, NV>(acc, mask, c, ldc, ep);
  for (int s = 0; s < nseg; ++s) {
    const Bf16* a = segs[s].a + a_shift;
    const Bf16* b = segs[s].b;
    const Index len = segs[s].len;
    Index k = 0;
    VOLFEAT_UNROLL(4)
    for (; k + 1 < len; k += 2, b += 2 * PW) {
      __m512bh bv[NV];
      VOLFEAT_UNROLL(8)
      for (int j = 0; j < NV; ++j) bv[j] = (__m512bh)_mm512_load_si512(b + 32 * j);
      VOLFEAT_UNROLL(16)
      for (int r = 0; r < R; ++r) {
        std::int32_t pair;  // (A[r][k], A[r][k+1])
        std::memcpy(&pair, a + r * stride + k, sizeof pair);
        const __m512bh av = (__m512bh)_mm512_set1_epi32(pair);
        VOLFEAT_UNROLL(8)
        for (int j = 0; j < NV; ++j) acc[r][j] = _mm512_dpbf16_ps(acc[r][j], av, bv[j]);
      }
    }
    if (k < len) {  // the single last k of an odd-long segment: pairs (A[r][k], 0) . (B[k][o], 0)
      __m512bh bv[NV];
      VOLFEAT_UNROLL(8)
      for (int j = 0; j < NV; ++j) bv[j] = (__m512bh)_mm512_load_si512(b + 32 * j);
      VOLFEAT_UNROLL(16)
      for (int r = 0; r < R; ++r) {
        const __m512bh av = (__m512bh)_mm512_set1_epi32(std::int32_t(a[r * stride + k]));
        VOLFEAT_UNROLL(8)
        for (int j = 0; j < NV; ++j) acc[r][j] = _mm512_dpbf16_ps(acc[r][j], av, bv[j]);
      }
    }
  }
  avx512::finish_block<R, NV, true>(acc, mask, c, ldc, ep);
}

template <int NV, int RS, size_t... I>
constexpr std::array<Bf16KernelFn, sizeof...(I)> kernel_table(std::index_sequence<I...>) {
  return {&kernel<int(I) + 1, NV, RS>...};
}

template <int NV, int RS>
inline Bf16KernelFn kernel_for(int rows) {
  static constexpr auto table = kernel_table<NV, RS>(std::make_index_sequence<size_t(max_rows(NV))>());
  return table[size_t(rows - 1)];
}

template <int NV, int RS>
struct KernelFor {
  static Bf16KernelFn get(int rows) { return kernel_for<NV, RS>(rows); }
};

// Row strides 128 (pointwise k chunks, DenseNet's 128-channel bottlenecks) and 2 (the gray stems'
// stride-2 rows) at compile time, as the fp32 kernels.
inline Bf16KernelFn select_kernel(int nv, Index rs, int rows) { return avx512::kernel_by_stride<KernelFor>(nv, rs, rows); }

VOLFEAT_TARGET_AVX512BF16 inline void convert_row(const float* x, Bf16* y, Index n) {
  Index i = 0;
  for (; i + 16 <= n; i += 16)
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(y + i), (__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(x + i)));
  if (i < n) {
    const __mmask16 m = __mmask16((1u << (n - i)) - 1);
    _mm256_mask_storeu_epi16(y + i, m, (__m256i)_mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(m, x + i)));
  }
}

// y[i] = bf16(act(x[i])): avx512::activate_row's BN and ReLU, rounded on the way out (one pass where
// activate_row then convert_row took two: 9 % of a bf16 forward, DenseNet-121 64x128x128, Zen 4).
VOLFEAT_TARGET_AVX512BF16 inline void activate_row(const float* x, Bf16* y, Index n, const float* scale,
                                                   const float* shift, bool relu) {
  Index i = 0;
  for (; i + 16 <= n; i += 16)
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(y + i),
                        (__m256i)_mm512_cvtneps_pbh(avx512::activate16(_mm512_loadu_ps(x + i), scale, shift, i, 0xFFFF, relu)));
  if (i < n) {
    const __mmask16 m = __mmask16((1u << (n - i)) - 1);
    _mm256_mask_storeu_epi16(
        y + i, m, (__m256i)_mm512_cvtneps_pbh(avx512::activate16(_mm512_maskz_loadu_ps(m, x + i), scale, shift, i, m, relu)));
  }
}

// n bf16 values at x widened to float (exact: a bf16 is a float's upper half).
VOLFEAT_TARGET_AVX512BF16 inline __m512 widen16(const Bf16* x, __mmask16 m) {
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, x)), 16));
}

// y[i] = bf16(act(x[i])) for bf16 x: activate_row on features a bf16 network stores as bf16 (its dense
// blocks: nn/plan.hpp, Plan::bf16_buffer). Equal to activate_row on the widened values.
VOLFEAT_TARGET_AVX512BF16 inline void widen_activate_row(const Bf16* x, Bf16* y, Index n, const float* scale,
                                                         const float* shift, bool relu) {
  for (Index i = 0; i < n; i += 16) {
    const __mmask16 m = n - i >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (n - i)) - 1);
    _mm256_mask_storeu_epi16(y + i, m,
                             (__m256i)_mm512_cvtneps_pbh(avx512::activate16(widen16(x + i, m), scale, shift, i, m, relu)));
  }
}

}  // namespace volfeat::cpu::gemm::avx512bf16
#endif  // VOLFEAT_HAVE_ISA_VARIANTS
