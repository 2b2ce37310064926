#pragma once
// The generic micro-kernels (gemm_kernels.hpp has the overview): plain C++ with the same contract
// and panel layout, for CPUs without AVX2+FMA (and VOLFEAT_CPU_ISA=generic). The compiler
// vectorises the column loops for the build's baseline (SSE2 on x86-64). Products and sums are
// rounded separately (no FMA), so results differ from the AVX kernels in the last bits.
#include <array>
#include <cstddef>
#include <utility>

#include "volfeat/backend/cpu/gemm_types.hpp"

namespace volfeat::cpu::gemm::generic {

constexpr int max_rows(int) { return 4; }
constexpr int panel_vectors(Index out_channels) { return out_channels <= 16 ? 1 : 2; }

// max(0, v) that keeps NaN (and -0), as vmaxps(0, v) does.
inline float relu_keep_nan(float v) { return v < 0.f ? 0.f : v; }

template <int R, int NV>
void kernel(const Segment* segs, int nseg, Index rs, Index a_shift, float* c, Index ldc, const Epilogue& ep) {
  constexpr int PW = 16 * NV;
  const int cols = ep.cols;
  alignas(64) float acc[R][PW];
  for (int r = 0; r < R; ++r)
    for (int j = 0; j < PW; ++j) acc[r][j] = ep.accumulate && j < cols ? c[r * ldc + j] : 0.f;
  for (int s = 0; s < nseg; ++s) {
    const float* a = segs[s].a + a_shift;
    const float* b = segs[s].b;
    for (Index k = 0; k < segs[s].len; ++k, b += PW)
      for (int r = 0; r < R; ++r) {
        const float av = a[r * rs + k];
        for (int j = 0; j < PW; ++j) acc[r][j] += av * b[j];
      }
  }
  for (int r = 0; r < R; ++r) {
    float* y = c + r * ldc;
    for (int j = 0; j < cols; ++j) {
      float v = acc[r][j];
      if (ep.finish) {
        if (ep.bias) v += ep.bias[j];
        if (ep.scale) v = v * ep.scale[j] + ep.shift[j];
        if (ep.relu) v = relu_keep_nan(v);
      }
      y[j] = v;
    }
  }
}

template <int NV, size_t... I>
constexpr std::array<KernelFn, sizeof...(I)> kernel_table(std::index_sequence<I...>) {
  return {&kernel<int(I) + 1, NV>...};
}

template <int NV>
inline KernelFn kernel_for(int rows) {
  static constexpr auto table = kernel_table<NV>(std::make_index_sequence<size_t(max_rows(NV))>());
  return table[size_t(rows - 1)];
}

inline KernelFn select_kernel(int nv, Index, int rows, Index) {
  return nv == 1 ? kernel_for<1>(rows) : nv == 2 ? kernel_for<2>(rows) : kernel_for<4>(rows);
}

inline void activate_row(const float* x, float* y, Index n, const float* scale, const float* shift, bool relu) {
  for (Index i = 0; i < n; ++i) {
    float v = x[i];
    if (scale) v = v * scale[i] + shift[i];
    if (relu) v = relu_keep_nan(v);
    y[i] = v;
  }
}

}  // namespace volfeat::cpu::gemm::generic
