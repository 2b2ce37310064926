#pragma once
// Register-blocked fp32 GEMM micro-kernels for the Cpu convolutions (AVX-512F).
//
// A kernel computes an R x (16*NV) block of C (R output voxels, 16*NV output channels) over a list of
// K segments: segment s contributes sum_k A_s[r][k] * B_s[k][:] for k < len, where row r of A_s is at
// a + r*RS (RS: the row stride, a compile-time constant when it is known, else runtime) and B_s is a
// panel slice: len rows of exactly 16*NV contiguous, 64-byte aligned floats. The R*NV accumulators
// stay in zmm registers over all segments; A values arrive as embedded broadcasts. Segments let the
// convolutions feed taps straight from (padded, activated) input rows, so no im2col matrix exists.
// The epilogue adds a bias, applies a folded BatchNorm and a NaN-preserving ReLU, and stores with a
// mask for a partial last panel. Everything here needs __AVX512F__; conv3d.hpp falls back to Eigen
// without it (VOLFEAT_NATIVE=OFF), and tests/test_gemm_kernels.cpp checks both against references.
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <memory>
#include <new>
#include <utility>

#include "volfeat/core/shape.hpp"

#if defined(__AVX512F__)
#include <immintrin.h>
#define VOLFEAT_HAVE_AVX512 1
#else
#define VOLFEAT_HAVE_AVX512 0
#endif

namespace volfeat::cpu {

// 64-byte aligned, uninitialised float storage that only grows (one per use per thread: an arena
// reused across layers and passes instead of a malloc per layer).
class AlignedFloats {
 public:
  AlignedFloats() = default;
  AlignedFloats(const AlignedFloats& o) {
    if (o.n_) std::copy(o.p_, o.p_ + o.n_, reserve(o.n_));
  }
  AlignedFloats& operator=(const AlignedFloats& o) {
    AlignedFloats t(o);
    return *this = std::move(t);
  }
  AlignedFloats(AlignedFloats&& o) noexcept : p_(std::exchange(o.p_, nullptr)), n_(std::exchange(o.n_, 0)) {}
  AlignedFloats& operator=(AlignedFloats&& o) noexcept {
    std::swap(p_, o.p_);
    std::swap(n_, o.n_);
    return *this;
  }
  ~AlignedFloats() { std::free(p_); }
  float* reserve(size_t n) {
    if (n > n_) {
      std::free(p_);
      const size_t bytes = ((n * sizeof(float) + 63) / 64) * 64;
      p_ = static_cast<float*>(std::aligned_alloc(64, bytes));
      if (!p_) throw std::bad_alloc();
      n_ = n;
    }
    return p_;
  }
  float* data() const { return p_; }
  size_t size() const { return n_; }

 private:
  float* p_ = nullptr;
  size_t n_ = 0;
};

// Per-thread scratch slots (OpenMP threads persist, so these live across layers and forward passes).
inline float* thread_scratch(int slot, size_t n) {
  thread_local std::array<AlignedFloats, 4> slots;
  return slots[size_t(slot)].reserve(n);
}

namespace gemm {

struct Segment {
  const float* a;  // row 0 of this segment's A
  const float* b;  // first row of this segment's B panel slice
  Index len;       // k steps
};

struct Epilogue {
  const float* bias = nullptr;   // per output column of this panel, or null
  const float* scale = nullptr;  // folded BN of the output, or null
  const float* shift = nullptr;
  bool relu = false;
  int cols = 0;                  // valid columns in this panel (1 .. 16*NV)
  bool accumulate = false;       // start from the values in C (a later K group) instead of zero
  bool finish = true;            // the last K group: apply bias/BN/ReLU before storing
};

// Widest R for a panel of NV vectors: R*NV accumulators + NV B vectors + 1 broadcast <= 32 zmm.
constexpr int max_rows(int nv) { return nv == 1 ? 14 : nv == 2 ? 14 : nv == 4 ? 6 : 3; }

// Splits n rows into the fewest blocks of at most rmax rows, as even as possible (no 1-row tails).
inline int row_blocks(Index n, int rmax) { return int((n + rmax - 1) / rmax); }
inline Index row_block_begin(Index n, int blocks, int b) { return (n * b) / blocks; }

#if VOLFEAT_HAVE_AVX512

// L > 0: every segment is exactly L long (the stem's 7 kw taps of one input row), fully unrolled.
// a_shift is added to every segment's A pointer (the row block's first row).
template <int R, int NV, int RS, int L = 0>
void kernel(const Segment* segs, int nseg, Index rs, Index a_shift, float* c, Index ldc, const Epilogue& ep) {
  constexpr int PW = 16 * NV;
  const Index stride = RS > 0 ? Index(RS) : rs;
  __mmask16 mask[NV];
#pragma GCC unroll 8
  for (int j = 0; j < NV; ++j) {
    const int left = ep.cols - 16 * j;
    mask[j] = left >= 16 ? __mmask16(0xFFFF) : left <= 0 ? __mmask16(0) : __mmask16((1u << left) - 1);
  }
  __m512 acc[R][NV];
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
    for (int j = 0; j < NV; ++j)
      acc[r][j] = ep.accumulate ? _mm512_maskz_loadu_ps(mask[j], c + r * ldc + 16 * j) : _mm512_setzero_ps();
  for (int s = 0; s < nseg; ++s) {
    const float* a = segs[s].a + a_shift;
    const float* b = segs[s].b;
    const Index len = L > 0 ? Index(L) : segs[s].len;
#pragma GCC unroll 8
    for (Index k = 0; k < len; ++k, b += PW) {
      __m512 bv[NV];
#pragma GCC unroll 8
      for (int j = 0; j < NV; ++j) bv[j] = _mm512_load_ps(b + 16 * j);
#pragma GCC unroll 16
      for (int r = 0; r < R; ++r) {
        const __m512 av = _mm512_set1_ps(a[r * stride + k]);
#pragma GCC unroll 8
        for (int j = 0; j < NV; ++j) acc[r][j] = _mm512_fmadd_ps(av, bv[j], acc[r][j]);
      }
    }
  }
  // Epilogue: bias, BN, ReLU (max(0, x) keeps NaN: vmaxps returns its second operand on NaN), store.
  const __m512 zero = _mm512_setzero_ps();
  __m512 bias[NV], scale[NV], shift[NV];
  const bool use_bias = ep.finish && ep.bias, use_bn = ep.finish && ep.scale, use_relu = ep.finish && ep.relu;
#pragma GCC unroll 8
  for (int j = 0; j < NV; ++j) {
    bias[j] = ep.bias ? _mm512_maskz_loadu_ps(mask[j], ep.bias + 16 * j) : zero;
    scale[j] = ep.scale ? _mm512_maskz_loadu_ps(mask[j], ep.scale + 16 * j) : zero;
    shift[j] = ep.shift ? _mm512_maskz_loadu_ps(mask[j], ep.shift + 16 * j) : zero;
  }
  const bool full = ep.cols == PW;
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) {
    float* y = c + r * ldc;
#pragma GCC unroll 8
    for (int j = 0; j < NV; ++j) {
      __m512 v = acc[r][j];
      if (use_bias) v = _mm512_add_ps(v, bias[j]);
      if (use_bn) v = _mm512_fmadd_ps(v, scale[j], shift[j]);
      if (use_relu) v = _mm512_max_ps(zero, v);
      if (full) _mm512_storeu_ps(y + 16 * j, v);
      else if (mask[j]) _mm512_mask_storeu_ps(y + 16 * j, mask[j], v);
    }
  }
}

using KernelFn = void (*)(const Segment*, int, Index, Index, float*, Index, const Epilogue&);

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

// Dispatch on NV, the row stride and the segment length (compile-time for DenseNet's shapes: the
// dense layers' row stride 128, the stem's row stride 2 with 7-long segments).
inline KernelFn select_kernel(int nv, Index rs, int rows, Index seglen = 0) {
  if (nv == 4 && rs == 2 && seglen == 7) return kernel_for<4, 2, 7>(rows);
  if (nv == 2 && rs == 2 && seglen == 7) return kernel_for<2, 2, 7>(rows);
  switch (nv) {
    case 1:
      return rs == 128 ? kernel_for<1, 128>(rows) : kernel_for<1, 0>(rows);
    case 2:
      return rs == 128 ? kernel_for<2, 128>(rows) : rs == 2 ? kernel_for<2, 2>(rows) : kernel_for<2, 0>(rows);
    default:
      return rs == 128 ? kernel_for<4, 128>(rows) : rs == 2 ? kernel_for<4, 2>(rows) : kernel_for<4, 0>(rows);
  }
}

// C (rows x 16*nv, row r at c + r*ldc) = sum over segments, then the epilogue. Segment pointers
// `a` are for row 0; row r reads a + r*rs. Rows go in near-equal blocks of at most max_rows(nv).
// K is cut into groups of at most `kgroup` steps (segments longer than that are split; shorter
// ones never are, so a uniform length stays uniform): each group's slice of B is small enough to
// stay in L1 while every row block passes over it, and later groups accumulate into C.
inline void gemm_rows(const Segment* segs, int nseg, Index rs, int nv, Index rows, float* c, Index ldc, Epilogue ep,
                      Index kgroup) {
  if (kgroup <= 0) kgroup = std::numeric_limits<Index>::max() / 2;
  constexpr int kMaxGroup = 128;
  Segment group[kMaxGroup];
  const int rmax = max_rows(nv);
  const int blocks = row_blocks(rows, rmax);
  const Index pw = 16 * nv;
  int s = 0;
  Index done_in_seg = 0;  // k steps of segs[s] already issued
  bool first = true;
  while (first || s < nseg) {
    // Collect the next group.
    int ng = 0;
    Index k = 0;
    while (s < nseg && ng < kMaxGroup && k < kgroup) {
      const Index left = segs[s].len - done_in_seg;
      if (ng > 0 && k + left > kgroup && left <= kgroup) break;  // whole segment into the next group
      const Index take = std::min(left, kgroup - k);
      group[ng++] = {segs[s].a + done_in_seg, segs[s].b + done_in_seg * pw, take};
      k += take;
      done_in_seg += take;
      if (done_in_seg == segs[s].len) ++s, done_in_seg = 0;
    }
    Index uniform = ng > 0 ? group[0].len : 0;
    for (int i = 1; i < ng; ++i)
      if (group[i].len != uniform) uniform = 0;
    Epilogue e = ep;
    e.accumulate = !first;
    e.finish = s >= nseg;
    for (int b = 0; b < blocks; ++b) {
      const Index r0 = row_block_begin(rows, blocks, b), r1 = row_block_begin(rows, blocks, b + 1);
      select_kernel(nv, rs, int(r1 - r0), uniform)(group, ng, rs, r0 * rs, c + r0 * ldc, ldc, e);
    }
    first = false;
  }
}

// y[i] = act(x[i]) for i < n with act = optional folded BN, optional ReLU (NaN kept), vectorised.
inline void activate_row(const float* x, float* y, Index n, const float* scale, const float* shift, bool relu) {
  const __m512 zero = _mm512_setzero_ps();
  Index i = 0;
  auto one = [&](__m512 v, Index at, __mmask16 m) {
    if (scale) v = _mm512_fmadd_ps(v, _mm512_maskz_loadu_ps(m, scale + at), _mm512_maskz_loadu_ps(m, shift + at));
    if (relu) v = _mm512_max_ps(zero, v);
    return v;
  };
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, one(_mm512_loadu_ps(x + i), i, 0xFFFF));
  if (i < n) {
    const __mmask16 m = __mmask16((1u << (n - i)) - 1);
    _mm512_mask_storeu_ps(y + i, m, one(_mm512_maskz_loadu_ps(m, x + i), i, m));
  }
}

#endif  // VOLFEAT_HAVE_AVX512

}  // namespace gemm
}  // namespace volfeat::cpu
