#pragma once
// ActivatedAvgPool<Cpu>: out = AvgPool(act(in)), a DenseNet transition's norm -> relu -> pool, run
// before its 1x1 conv (ops/fused.hpp says why that order). Each output voxel sums the activated
// values of the input voxels its window covers, in window order, and divides by the window's count.
//
// float on AVX2 / AVX-512 takes the channels a vector at a time (AVX-512: the GEMMs' activate16), the
// window's taps summed in registers, and the next output voxel's taps prefetched. Why:
// transition1 of a bf16 DenseNet-121 forward at 128^3 (32^3 x 256 channels in, 8.4 M values) took
// 10.6 ms of 0.16 s in the scalar loop below (each tap added into dst in memory), 8.3-9.8 ms in
// vectors, 6.4-7.0 ms with the prefetch, and 2.3 ms once its output stopped faulting in every pass
// (core/host_blocks.hpp, kHostBlockSlackBytes); run again at once on the same input, 1.0-1.4 ms (AMD
// EPYC Zen 5, 2 threads, one pass each). The vector form's BN is one FMA (scale * x + shift), where the
// scalar loop rounds the product and the sum apart: the two differ in the last bit.
#include <algorithm>
#include <cmath>
#include <type_traits>

#include "volfeat/backend/cpu/batchnorm3d.hpp"
#include "volfeat/backend/cpu/gemm_avx512.hpp"
#include "volfeat/backend/cpu/isa.hpp"
#include "volfeat/backend/cpu/parallel.hpp"
#include "volfeat/backend/cpu/pool3d.hpp"
#include "volfeat/core/error.hpp"
#include "volfeat/ops/fused.hpp"
#include "volfeat/ops/relu.hpp"

#if VOLFEAT_HAVE_ISA_VARIANTS
#include <immintrin.h>
#endif

namespace volfeat {

namespace cpu::avg_pool {

// The window of one output voxel: its input voxels (first channel of each), in window order. E: the
// input's values, float or (a bf16 network's dense-block features) bf16.
template <class E = float>
struct Taps {
  static constexpr int kMax = 64;  // 4x4x4; larger windows take the scalar loop
  const E* at[kMax];
  int count = 0;
};

// An input value as float (a bf16 widened exactly).
inline float value_of(float x) { return x; }
inline float value_of(Bf16 x) { return bf16_to_float(x); }

#if VOLFEAT_HAVE_ISA_VARIANTS
// The lanes m of 16 values at p, as float.
VOLFEAT_TARGET_AVX512 inline __m512 load16(const float* p, __mmask16 m) { return _mm512_maskz_loadu_ps(m, p); }
VOLFEAT_TARGET_AVX512 inline __m512 load16(const Bf16* p, __mmask16 m) {
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, p)), 16));
}

// dst[i] = sum over taps of act(tap[i]) / divisor, c channels, 16 at a time; next's taps prefetched.
template <class E>
VOLFEAT_TARGET_AVX512 inline void voxel_avx512(const Taps<E>& t, const Taps<E>& next, Index c, const float* scale,
                                               const float* shift, bool relu, float divisor, float* dst) {
  const __m512 zero = _mm512_setzero_ps(), div = _mm512_set1_ps(divisor);
  // a prefetch per cache line: every vector of float channels, every other of bf16
  constexpr Index kPrefetchStep = 64 / Index(sizeof(E));
  for (Index i = 0; i < c; i += 16) {
    if (i % kPrefetchStep == 0)
      for (int k = 0; k < next.count; ++k) _mm_prefetch(reinterpret_cast<const char*>(next.at[k] + i), _MM_HINT_T0);
    const __mmask16 m = c - i >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (c - i)) - 1);
    __m512 acc = zero;
    for (int k = 0; k < t.count; ++k)  // the GEMMs' BN+ReLU (NaN stays NaN)
      acc = _mm512_add_ps(acc, gemm::avx512::activate16(load16(t.at[k] + i, m), scale, shift, i, m, relu));
    _mm512_mask_storeu_ps(dst + i, m, _mm512_div_ps(acc, div));
  }
}

// The same, 8 channels at a time.
VOLFEAT_TARGET_AVX2 inline void voxel_avx2(const Taps<float>& t, Index c, const float* scale, const float* shift, bool relu,
                                           float divisor, float* dst) {
  const __m256 zero = _mm256_setzero_ps(), div = _mm256_set1_ps(divisor);
  Index i = 0;
  for (; i + 8 <= c; i += 8) {
    const __m256 a = scale ? _mm256_loadu_ps(scale + i) : zero;
    const __m256 b = scale ? _mm256_loadu_ps(shift + i) : zero;
    __m256 acc = zero;
    for (int k = 0; k < t.count; ++k) {
      __m256 v = _mm256_loadu_ps(t.at[k] + i);
      if (scale) v = _mm256_fmadd_ps(v, a, b);
      if (relu) v = _mm256_max_ps(zero, v);
      acc = _mm256_add_ps(acc, v);
    }
    _mm256_storeu_ps(dst + i, _mm256_div_ps(acc, div));
  }
  for (; i < c; ++i) {  // the last c % 8 channels
    float acc = 0;
    for (int k = 0; k < t.count; ++k) {
      float v = t.at[k][i];
      if (scale) v = std::fma(v, scale[i], shift[i]);
      if (relu) v = relu_scalar(v);
      acc += v;
    }
    dst[i] = acc / divisor;
  }
}
#endif

}  // namespace cpu::avg_pool

template <class T>
struct ActivatedAvgPool<Cpu, T> {
  static void forward(Activation<Cpu, T> act, const AvgPool3d<Cpu, T>& pool, TensorView<const T> in,
                      TensorView<T> out) {
    run(act, pool, in, out);
  }
  // The same from bf16 input (a bf16 network's dense-block features: nn/plan.hpp, Plan::bf16_buffer),
  // each value widened exactly: out is forward's on the widened input.
  static void forward(Activation<Cpu, T> act, const AvgPool3d<Cpu, T>& pool, TensorView<const cpu::Bf16> in,
                      TensorView<T> out) {
    if constexpr (!std::is_same_v<T, float>) fail("activated avgpool: bf16 input needs a float network");
    else run(act, pool, in, out);
  }

 private:
  template <class E>
  static void run(Activation<Cpu, T> act, const AvgPool3d<Cpu, T>& pool, TensorView<const E> in, TensorView<T> out) {
    if (out.dims != pool.output_dims(in.dims)) fail("activated avgpool: output view has the wrong shape");
    const WindowGeometry& g = pool.geometry();
    const Index c = in.dims.c;
    const T* scale = act.bn ? act.bn->scale() : nullptr;
    const T* shift = act.bn ? act.bn->shift() : nullptr;
    const bool relu = act.relu;
    auto divisor = [&](Index inside) { return T(pool.count_include_pad() ? g.taps() : inside); };
    if constexpr (std::is_same_v<T, float>) {
#if VOLFEAT_HAVE_ISA_VARIANTS
      const cpu::CpuIsa isa = cpu::cpu_isa();
      constexpr bool kBf16In = std::is_same_v<E, cpu::Bf16>;  // AVX-512 only (bf16 needs AVX512-BF16)
      if ((kBf16In ? isa == cpu::CpuIsa::kAvx512 : isa >= cpu::CpuIsa::kAvx2) &&
          g.taps() <= cpu::avg_pool::Taps<E>::kMax) {
        const Dims& o = out.dims;  // one output row per iteration, the next voxel's taps prefetched
        cpu::parallel_for(o.n * o.d * o.h, [&](Index row) {
          const Index y = row % o.h, z = (row / o.h) % o.d, n = row / (o.h * o.d);
          cpu::avg_pool::Taps<E> t[2];
          auto taps = [&](Index x, cpu::avg_pool::Taps<E>& tp) {
            tp.count = 0;
            if (x < o.w)
              cpu::for_avg_window(g, in.dims, z, y, x,
                         [&](Index id, Index ih, Index iw) { tp.at[tp.count++] = in.voxel(n, id, ih, iw); });
          };
          taps(0, t[0]);
          for (Index x = 0; x < o.w; ++x) {
            const cpu::avg_pool::Taps<E>& cur = t[x % 2];
            cpu::avg_pool::Taps<E>& next = t[(x + 1) % 2];
            taps(x + 1, next);
            T* dst = out.voxel(n, z, y, x);
            const float div = divisor(cur.count);
            if (isa == cpu::CpuIsa::kAvx512) cpu::avg_pool::voxel_avx512(cur, next, c, scale, shift, relu, div, dst);
            else if constexpr (!kBf16In) cpu::avg_pool::voxel_avx2(cur, c, scale, shift, relu, div, dst);
          }
        });
        return;
      }
#endif
    }
    cpu::for_each_output_voxel(out, [&](Index n, Index z, Index y, Index x, T* dst) {
      std::fill(dst, dst + c, T(0));
      Index inside = 0;
      cpu::for_avg_window(g, in.dims, z, y, x, [&](Index id, Index ih, Index iw) {
        const E* s = in.voxel(n, id, ih, iw);
        auto x = [&](Index i) -> T {
          if constexpr (std::is_same_v<E, T>) return s[i];
          else return cpu::avg_pool::value_of(s[i]);
        };
        if (scale && relu) {
          for (Index i = 0; i < c; ++i) dst[i] += relu_scalar(x(i) * scale[i] + shift[i]);
        } else if (scale) {
          for (Index i = 0; i < c; ++i) dst[i] += x(i) * scale[i] + shift[i];
        } else if (relu) {
          for (Index i = 0; i < c; ++i) dst[i] += relu_scalar(x(i));
        } else {
          for (Index i = 0; i < c; ++i) dst[i] += x(i);
        }
        ++inside;
      });
      const T d = divisor(inside);
      for (Index i = 0; i < c; ++i) dst[i] /= d;
    });
  }
};

}  // namespace volfeat
