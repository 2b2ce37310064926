#pragma once
// Cpu specialisations of the fused ops of ops/fused.hpp.
#include <algorithm>
#include <limits>
#include <type_traits>
#include <vector>

#include "volfeat/backend/cpu/activated_avg_pool.hpp"
#include "volfeat/backend/cpu/batchnorm3d.hpp"
#include "volfeat/backend/cpu/conv3d.hpp"
#include "volfeat/backend/cpu/isa.hpp"
#include "volfeat/backend/cpu/parallel.hpp"
#include "volfeat/backend/cpu/plane_ring.hpp"
#include "volfeat/backend/cpu/pool3d.hpp"
#include "volfeat/ops/fused.hpp"

#if VOLFEAT_HAVE_ISA_VARIANTS
#include <immintrin.h>  // the max-pool rows' AVX2 / AVX-512 variants
#endif

namespace volfeat {

// Conv planes are computed one at a time (Conv3d::forward_plane, parallel over its rows) into a ring
// of as many planes as the pool window is deep; each pool output plane is reduced from the ring as
// soon as its window is complete. Memory: kD conv planes instead of the whole conv output.
template <class T>
struct ConvActMaxPool<Cpu, T> {
#if VOLFEAT_HAVE_ISA_VARIANTS
  // The input rows output row yo's windows read, inside the conv planes src[k], in torch's order (plane, then
  // row): their first voxels into rows[], at most kMaxWindowRows; -1 where there are more (the scalar row).
  static constexpr Index kMaxWindowRows = 64;
  static Index window_rows(const WindowGeometry& g, const Dims& cd, const float* const* src, Index planes, Index yo,
                           const float** rows) {
    Index n = 0;
    for (Index k = 0; k < planes; ++k)
      for (Index kh = 0; kh < g.kernel[1]; ++kh) {
        const Index iy = yo * g.stride[1] - g.padding[1] + kh * g.dilation[1];
        if (iy < 0 || iy >= cd.h) continue;
        if (n == kMaxWindowRows) return -1;
        rows[n++] = src[k] + iy * cd.w * cd.c;
      }
    return n;
  }
  // One output row of the max pool, channels in vector registers (c = 16*nv <= 128), rows from window_rows.
  // torch's rule, in its tap order: a value replaces the running max when it is greater or when it is NaN.
  // Without NaN that is max_ps(v, m), which returns m unless v > m (equal zeros of either sign included); a
  // window that holds a NaN (rare) is pooled again by the rule itself. One max a value on the running max's
  // dependency chain instead of two compares and a masked move: the stem's pool was 20 % of an inflated
  // bf16 stem+pool's samples and 11 % of a seeded one's (108x256x256, AMD EPYC Zen 4, 2026-12-08).
  VOLFEAT_TARGET_AVX512 static void pool_row_avx512(const WindowGeometry& g, const Dims& cd, const float* const* rows,
                                                    Index nrows, Index wo, float* row, Index ldo) {
    const Index c = cd.c, nv = c / 16;
    for (Index xo = 0; xo < wo; ++xo) {
      const Index ix0 = xo * g.stride[2] - g.padding[2];
      __m512 m[8];
      __mmask16 nan = 0;
      for (Index j = 0; j < nv; ++j) m[j] = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
      for (Index r = 0; r < nrows; ++r)
        for (Index kw = 0; kw < g.kernel[2]; ++kw) {
          const Index ix = ix0 + kw * g.dilation[2];
          if (ix < 0 || ix >= cd.w) continue;
          const float* s = rows[r] + ix * c;
          for (Index j = 0; j < nv; ++j) {
            const __m512 v = _mm512_loadu_ps(s + 16 * j);
            m[j] = _mm512_max_ps(v, m[j]);
            nan |= _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
          }
        }
      if (nan) {
        for (Index j = 0; j < nv; ++j) m[j] = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
        for (Index r = 0; r < nrows; ++r)
          for (Index kw = 0; kw < g.kernel[2]; ++kw) {
            const Index ix = ix0 + kw * g.dilation[2];
            if (ix < 0 || ix >= cd.w) continue;
            const float* s = rows[r] + ix * c;
            for (Index j = 0; j < nv; ++j) {
              const __m512 v = _mm512_loadu_ps(s + 16 * j);
              const __mmask16 take =
                  _mm512_cmp_ps_mask(v, m[j], _CMP_GT_OQ) | _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
              m[j] = _mm512_mask_mov_ps(m[j], take, v);
            }
          }
      }
      float* dst = row + xo * ldo;
      for (Index j = 0; j < nv; ++j) _mm512_storeu_ps(dst + 16 * j, m[j]);
    }
  }
  // The same with 8-float ymm vectors (c = 8*nv <= 128).
  VOLFEAT_TARGET_AVX2 static void pool_row_avx2(const WindowGeometry& g, const Dims& cd, const float* const* rows,
                                                Index nrows, Index wo, float* row, Index ldo) {
    const Index c = cd.c, nv = c / 8;
    for (Index xo = 0; xo < wo; ++xo) {
      const Index ix0 = xo * g.stride[2] - g.padding[2];
      __m256 m[16];
      __m256 nan = _mm256_setzero_ps();
      for (Index j = 0; j < nv; ++j) m[j] = _mm256_set1_ps(-std::numeric_limits<float>::infinity());
      for (Index r = 0; r < nrows; ++r)
        for (Index kw = 0; kw < g.kernel[2]; ++kw) {
          const Index ix = ix0 + kw * g.dilation[2];
          if (ix < 0 || ix >= cd.w) continue;
          const float* s = rows[r] + ix * c;
          for (Index j = 0; j < nv; ++j) {
            const __m256 v = _mm256_loadu_ps(s + 8 * j);
            m[j] = _mm256_max_ps(v, m[j]);
            nan = _mm256_or_ps(nan, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
          }
        }
      if (_mm256_movemask_ps(nan)) {
        for (Index j = 0; j < nv; ++j) m[j] = _mm256_set1_ps(-std::numeric_limits<float>::infinity());
        for (Index r = 0; r < nrows; ++r)
          for (Index kw = 0; kw < g.kernel[2]; ++kw) {
            const Index ix = ix0 + kw * g.dilation[2];
            if (ix < 0 || ix >= cd.w) continue;
            const float* s = rows[r] + ix * c;
            for (Index j = 0; j < nv; ++j) {
              const __m256 v = _mm256_loadu_ps(s + 8 * j);
              const __m256 take = _mm256_or_ps(_mm256_cmp_ps(v, m[j], _CMP_GT_OQ), _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
              m[j] = _mm256_blendv_ps(m[j], v, take);
            }
          }
      }
      float* dst = row + xo * ldo;
      for (Index j = 0; j < nv; ++j) _mm256_storeu_ps(dst + 8 * j, m[j]);
    }
  }
  // The vector row for this CPU's ISA and c channels (output row yo, wo voxels from `row`, ldo apart), or
  // false.
  static bool pool_row_vector(const WindowGeometry& g, const Dims& cd, const float* const* src, Index planes, Index yo,
                              Index wo, float* row, Index ldo) {
    const cpu::CpuIsa isa = cpu::cpu_isa();
    const bool avx512 = isa == cpu::CpuIsa::kAvx512 && cd.c % 16 == 0 && cd.c <= 128;
    if (!avx512 && !(isa >= cpu::CpuIsa::kAvx2 && cd.c % 8 == 0 && cd.c <= 128)) return false;
    const float* rows[kMaxWindowRows];
    const Index nrows = window_rows(g, cd, src, planes, yo, rows);
    if (nrows < 0) return false;
    if (avx512) pool_row_avx512(g, cd, rows, nrows, wo, row, ldo);
    else pool_row_avx2(g, cd, rows, nrows, wo, row, ldo);
    return true;
  }
#else
  static bool pool_row_vector(const WindowGeometry&, const Dims&, const float* const*, Index, Index, Index, float*,
                              Index) {
    return false;
  }
#endif

  // The max pool of the planes `ring` holds (conv output dims ring.dims), each plane computed by
  // `produce` (PlaneRing's producer) when a pool window first needs it. Memory: the ring, not the
  // conv output. out: T, or (float) bf16: each row pooled into a float row of the thread's, then rounded
  // into out (a bf16 network's dense-block features: nn/plan.hpp, Plan::bf16_buffer).
  template <class Produce, class O = T>
  static void pool_ring(cpu::PlaneRing<T>& ring, const WindowGeometry& g, TensorView<O> out, Produce&& produce) {
    constexpr bool kBf16Out = std::is_same_v<O, cpu::Bf16>;
    static_assert(std::is_same_v<O, T> || (kBf16Out && std::is_same_v<T, float>), "a max pool writes T, or bf16");
    const Dims cd = ring.dims;
    const Index c = cd.c;
    for (Index n = 0; n < out.dims.n; ++n)
      for (Index zo = 0; zo < out.dims.d; ++zo) {
        const T* src[64];
        Index planes = 0;
        for (Index kd = 0; kd < g.kernel[0]; ++kd) {
          const Index iz = zo * g.stride[0] - g.padding[0] + kd * g.dilation[0];
          if (iz < 0 || iz >= cd.d) continue;
          const T* p = ring.ensure(n, iz, produce);
          if (planes < 64) src[planes++] = p;
        }
        cpu::parallel_for(out.dims.h, [&](Index yo) {
          T* row = nullptr;  // the row's first output voxel; ldo apart
          Index ldo = out.ld;
          if constexpr (kBf16Out) {
            row = cpu::thread_scratch(7, size_t(out.dims.w * c)), ldo = c;
          } else {
            row = out.voxel(n, zo, yo, 0);
          }
          auto round_row = [&] {
            if constexpr (kBf16Out)
              for (Index xo = 0; xo < out.dims.w; ++xo) cpu::gemm::convert_row_bf16(row + xo * c, out.voxel(n, zo, yo, xo), c);
          };
          if constexpr (std::is_same_v<T, float>) {
            if (pool_row_vector(g, cd, src, planes, yo, out.dims.w, row, ldo)) return round_row();
          }
          for (Index xo = 0; xo < out.dims.w; ++xo) {
            T* dst = row + xo * ldo;
            std::fill(dst, dst + c, -std::numeric_limits<T>::infinity());
            for (Index k = 0; k < planes; ++k)
              for (Index kh = 0; kh < g.kernel[1]; ++kh) {
                const Index iy = yo * g.stride[1] - g.padding[1] + kh * g.dilation[1];
                if (iy < 0 || iy >= cd.h) continue;
                for (Index kw = 0; kw < g.kernel[2]; ++kw) {
                  const Index ix = xo * g.stride[2] - g.padding[2] + kw * g.dilation[2];
                  if (ix < 0 || ix >= cd.w) continue;
                  const T* s = src[k] + (iy * cd.w + ix) * c;
                  // torch propagates NaN through max pooling
                  for (Index i = 0; i < c; ++i) dst[i] = (s[i] > dst[i] || s[i] != s[i]) ? s[i] : dst[i];
                }
              }
          }
          round_row();
        });
      }
  }

  // out: T, or (float) bf16, each value rounded as round_to_bf16 rounds.
  template <class O>
  static void forward(const Conv3d<Cpu, T>& conv, Activation<Cpu, T> post, const MaxPool3d<Cpu, T>& pool,
                      TensorView<const T> in, TensorView<O> out) {
    const Dims cd = conv.output_dims(in.dims);
    const WindowGeometry& g = pool.geometry();
    if (out.dims != pool.output_dims(cd)) fail("conv+maxpool: output view has the wrong shape");
    const Index step = conv.plane_step();  // a Winograd conv computes its output planes in groups
    cpu::PlaneRing<T> ring(cd, conv_max_pool_ring_planes(g, step), step);
    typename Conv3d<Cpu, T>::PlaneState state;  // a stem along W: its input planes, transformed once a pass
    pool_ring(ring, g, out, [&](Index n, Index z0, Index count, TensorView<T> planes) {
      conv.forward_planes(in, n, z0, count, planes, {}, post, &state);
    });
  }
};

namespace cpu {
// conv2's output planes z0 .. z0 + count - 1 of item n (count up to conv2.plane_step(): a Winograd
// conv2's group), reading conv1's output through `mid`, whose planes produce1 (PlaneRing's producer)
// computes when first needed. conv2's plane z reads conv1 planes z*s - p + kd*dil, kd < k (+ count - 1
// for a group: stride and dilation 1 there). DenseLayerConvs, ConvPairMaxPool and SpatialConvPair all
// run conv2 this way.
template <class T, class E, class Produce, class O>
void second_conv_planes(const Conv3d<Cpu, T>& conv2, Activation<Cpu, T> post2, PlaneRing<E>& mid, Produce&& produce1,
                        Index n, Index z0, Index count, TensorView<O> planes) {
  const WindowGeometry& g2 = conv2.spec().geometry;
  for (Index kd = 0; kd < g2.kernel[0] + count - 1; ++kd) {
    const Index iz = z0 * g2.stride[0] - g2.padding[0] + kd * g2.dilation[0];
    if (iz >= 0 && iz < mid.dims.d) mid.ensure(n, iz, produce1);
  }
  conv2.forward_planes_rows(mid, n, z0, count, planes, {}, post2);
}

// conv2's whole output `out` (T, or bf16 from a Winograd conv2), plane by plane (in groups for a Winograd
// conv2), as second_conv_planes.
template <class T, class E, class Produce, class O>
void second_conv_output(const Conv3d<Cpu, T>& conv2, Activation<Cpu, T> post2, PlaneRing<E>& mid, Produce&& produce1,
                        TensorView<O> out) {
  const Index step = conv2.plane_step();
  const Dims od = out.dims;
  for (Index n = 0; n < od.n; ++n)
    for (Index z = 0; z < od.d; z += step) {
      const Index count = std::min<Index>(step, od.d - z);
      const TensorView<O> planes(out.voxel(n, z, 0, 0), Dims{1, count, od.h, od.w, od.c}, out.ld);
      second_conv_planes(conv2, post2, mid, produce1, n, z, count, planes);
    }
}

// A producer of conv's output planes for a PlaneRing: one plane, or a Winograd conv's group.
template <class T>
auto conv_plane_producer(const Conv3d<Cpu, T>& conv, Activation<Cpu, T> post, TensorView<const T> in) {
  return [&conv, post, in](Index n, Index z0, Index count, TensorView<T> planes) {
    conv.forward_planes(in, n, z0, count, planes, {}, post);
  };
}
}  // namespace cpu

// conv1 (pointwise) runs one plane at a time into a ring of conv2's window depth (3 planes of the
// 128-channel bottleneck for a 3x3x3 conv2, a PlaneRing over the caller's scratch), and conv2 computes
// output plane z as soon as the ring holds every plane it reads, through Conv3d::forward_planes_rows.
// Every output value is computed exactly as by the composition (same kernels, same k order), so the
// results are identical. A small bottleneck (ops/fused.hpp, dense_layer_scratch) takes the composition.
// In a bf16 network whose conv2 runs Winograd the ring holds bf16 (RingValues::kBf16): conv1 rounds its
// output as it stores it (Conv3d::forward_bf16_out) and conv2's input transform widens it back, so the
// result is the composition's on the bottleneck rounded to bf16, which a bf16 conv2 rounds its input to
// anyway. Half the bytes: 43 % of the F(4x4x4) block's samples had waited on its loads from the float
// ring, 30-32 % now (perf annotate, both sizes below); DenseNet-121 in bf16 at 108x256x256 1.7-2.9 %
// faster (medians of 16 alternating pairs per order), at 216x512x512 within the VM's noise (AMD EPYC
// Zen 4, bench/README.md).
template <class T>
inline constexpr bool kPlanewiseDenseLayer<Cpu, T> = Conv3d<Cpu, T>::kHasPlaneRows;
template <>
inline constexpr bool kBf16Features<Cpu, float> = true;

template <class T>
struct DenseLayerConvs<Cpu, T> {
  static void forward(const Conv3d<Cpu, T>& conv1, Activation<Cpu, T> pre1, Activation<Cpu, T> post1,
                      const Conv3d<Cpu, T>& conv2, TensorView<const T> in, TensorView<T> out, Tensor<Cpu, T>& scratch,
                      Activation<Cpu, T> post2 = {}, Index whole_values = kWholeBottleneckValues) {
    run_layer(conv1, pre1, post1, conv2, in, out, scratch, post2, whole_values);
  }
  // The same on a bf16 network's dense-block features (nn/plan.hpp, Plan::bf16_buffer): conv1 (pointwise,
  // bf16) reads bf16 input (Conv3d::forward_from_bf16) and conv2 (Winograd) rounds its output to bf16
  // as it stores it (forward_bf16_out). Each value is what the float op would compute on the widened
  // input, rounded.
  static void forward(const Conv3d<Cpu, T>& conv1, Activation<Cpu, T> pre1, Activation<Cpu, T> post1,
                      const Conv3d<Cpu, T>& conv2, TensorView<const cpu::Bf16> in, TensorView<cpu::Bf16> out,
                      Tensor<Cpu, T>& scratch, Activation<Cpu, T> post2 = {},
                      Index whole_values = kWholeBottleneckValues) {
    if constexpr (!std::is_same_v<T, float>) fail("dense layer convs: bf16 features need a float network");
    else run_layer(conv1, pre1, post1, conv2, in, out, scratch, post2, whole_values);
  }

 private:
  // in: I, out: O (T, or bf16).
  template <class I, class O>
  static void run_layer(const Conv3d<Cpu, T>& conv1, Activation<Cpu, T> pre1, Activation<Cpu, T> post1,
                        const Conv3d<Cpu, T>& conv2, TensorView<const I> in, TensorView<O> out,
                        Tensor<Cpu, T>& scratch, Activation<Cpu, T> post2, Index whole_values) {
    const Dims md = conv1.output_dims(in.dims);  // the bottleneck's dims
    const WindowGeometry& g = conv2.spec().geometry;
    // conv1 from in (I) into planes of E (T, or a bf16 ring's), conv2 from a view into out (O)
    auto conv1_into = [&](TensorView<const I> from, auto planes) {
      using E = std::remove_const_t<std::remove_pointer_t<decltype(planes.data)>>;
      if constexpr (std::is_same_v<I, cpu::Bf16>) conv1.forward_from_bf16(from, planes, pre1, post1);
      else if constexpr (std::is_same_v<E, T>) conv1.forward(from, planes, pre1, post1);
      else conv1.forward_bf16_out(from, planes, pre1, post1);
    };
    // The composition: double, no AVX-512, or a bottleneck small enough to hold whole (ops/fused.hpp,
    // dense_layer_scratch).
    auto whole = [&] {
      if (scratch.dims() != md) scratch.resize(md);
      conv1_into(in, scratch.view());
      if constexpr (std::is_same_v<O, T>) conv2.forward(scratch.view(), out, {}, post2);
      else conv2.forward_bf16_out(scratch.view(), out, {}, post2);
    };
    if constexpr (!Conv3d<Cpu, T>::kHasPlaneRows) {
      whole();
    } else {
      if (!conv1.pointwise() || out.dims != conv2.output_dims(md))
        fail("dense layer convs: conv1 must be pointwise and the output view ", to_string(out.dims), " must be ",
             to_string(conv2.output_dims(md)));
      // A Winograd conv2 computes output planes in groups of step (stride 1 along depth), from the
      // step + k - 1 conv1 planes from z0 - padding. conv1 computes them in groups of step too, starting where
      // those windows start, so that each output group takes one conv1 call (two parallel loops where
      // single planes took step + 1). DenseNet-121 in bf16 (AMD EPYC Zen 5, 2 threads): block 1 at 128^3
      // 0.159 -> 0.146 s and 0.166 -> 0.160 s CPU, libgomp's barrier spin 12.3 -> 10.3 % of the samples
      // (a busy hour), 108x256x256 2-9 % faster (4 alternating pairs).
      const Index step = conv2.plane_step();
      // A bf16 network's bottleneck feeding a Winograd conv2 is held in bf16 (ops/fused.hpp, RingValues):
      // conv2 would round its input to bf16 if it ran in bf16, and its float32 Winograd reads it exactly
      // as the composition's conv1 output rounded to bf16.
      RingValues values = RingValues::kFloat32;
      if constexpr (std::is_same_v<T, float>)
        values = dense_ring_values(conv1.precision() == Precision::kBf16, conv2.reads_bf16_rows());
      const Dims ring_dims = dense_layer_scratch(g, step, md, whole_values, values);
      if (ring_dims == md) return whole();
      if (scratch.dims() != ring_dims) scratch.resize(ring_dims);
      const Index offset = ((step - g.padding[0]) % step + step) % step;  // -padding mod step
      // The ring over the scratch's storage, of values E (T, or bf16 two to a float).
      auto run = [&](auto* storage) {
        using E = std::remove_pointer_t<decltype(storage)>;
        cpu::PlaneRing<E> ring(md, ring_dims.d, step, storage, offset);
        // conv1 on input planes z .. z + count - 1: a view of their rows (same channels and ld).
        auto produce1 = [&](Index n, Index z, Index count, TensorView<E> planes) {
          const Dims planes_dims{1, count, in.dims.h, in.dims.w, in.dims.c};
          conv1_into(TensorView<const I>(in.voxel(n, z, 0, 0), planes_dims, in.ld), planes);
        };
        cpu::second_conv_output(conv2, post2, ring, produce1, out);
      };
      if constexpr (std::is_same_v<T, float>)
        if (values == RingValues::kBf16) return run(reinterpret_cast<cpu::Bf16*>(scratch.data()));
      run(scratch.data());
    }
  }
};

// conv1's output planes go into a ring as deep as conv2's window (3 planes for a 3x3x3 conv2, 4 when
// conv2 computes plane pairs, 6 in fours, + whole groups when conv1 computes groups: ops/fused.hpp),
// conv2's into a ring as deep as the pool's window, and each pool output plane is reduced as soon as
// its window is complete. Every value is computed by the same kernels as the composition
// (Conv3d::forward_planes / forward_planes_rows, each conv's own algorithm behind them). VGG-19 at
// 216x512x512: block 1 holds 6 + 2 planes of 512x512x64 (0.5 GB) instead of two 14.5 GB activations.
template <class T>
struct ConvPairMaxPool<Cpu, T> {
  static void forward(const Conv3d<Cpu, T>& conv1, Activation<Cpu, T> post1, const Conv3d<Cpu, T>& conv2,
                      Activation<Cpu, T> post2, const MaxPool3d<Cpu, T>& pool, TensorView<const T> in,
                      TensorView<T> out) {
    if constexpr (!Conv3d<Cpu, T>::kHasPlaneRows) {
      Tensor<Cpu, T> mid(conv1.output_dims(in.dims));  // the composition (double)
      conv1.forward(in, mid.view(), {}, post1);
      ConvActMaxPool<Cpu, T>::forward(conv2, post2, pool, mid.view(), out);
    } else {
      const Dims md = conv1.output_dims(in.dims), cd = conv2.output_dims(md);
      const WindowGeometry& g = pool.geometry();
      const WindowGeometry& g2 = conv2.spec().geometry;
      if (out.dims != pool.output_dims(cd))
        fail("conv pair+maxpool: output view ", to_string(out.dims), " but the ops produce ", to_string(pool.output_dims(cd)));
      const Index step1 = conv1.plane_step(), step2 = conv2.plane_step();
      cpu::PlaneRing<T> mid(md, conv_pair_ring_planes(g2, step1, step2), step1);
      cpu::PlaneRing<T> conv_out(cd, conv_max_pool_ring_planes(g, step2), step2);
      auto produce1 = cpu::conv_plane_producer(conv1, post1, in);
      ConvActMaxPool<Cpu, T>::pool_ring(conv_out, g, out, [&](Index n, Index z0, Index count, TensorView<T> planes) {
        cpu::second_conv_planes(conv2, post2, mid, produce1, n, z0, count, planes);
      });
    }
  }
};

// conv1's output planes go through the same ring as ConvPairMaxPool's; conv2's go straight into the
// (whole) output. Every value is computed by the same kernels as the composition.
template <class T>
struct SpatialConvPair<Cpu, T> {
  static void forward(const Conv3d<Cpu, T>& conv1, Activation<Cpu, T> post1, const Conv3d<Cpu, T>& conv2,
                      Activation<Cpu, T> post2, TensorView<const T> in, TensorView<T> out) {
    const Dims md = conv1.output_dims(in.dims);
    if constexpr (!Conv3d<Cpu, T>::kHasPlaneRows) {
      Tensor<Cpu, T> mid(md);  // the composition (double)
      conv1.forward(in, mid.view(), {}, post1);
      conv2.forward(mid.view(), out, {}, post2);
    } else {
      if (out.dims != conv2.output_dims(md))
        fail("spatial conv pair: output view ", to_string(out.dims), " but the convs produce ",
             to_string(conv2.output_dims(md)));
      const Index step1 = conv1.plane_step(), step2 = conv2.plane_step();
      cpu::PlaneRing<T> mid(md, conv_pair_ring_planes(conv2.spec().geometry, step1, step2), step1);
      auto produce1 = cpu::conv_plane_producer(conv1, post1, in);
      cpu::second_conv_output(conv2, post2, mid, produce1, out);
    }
  }
};

// The residual added and the relu applied per output tile / row panel in the conv's own loop
// (Conv3d<Cpu, T>::forward_residual), while the tile is in cache.
template <class T>
struct ConvAddAct<Cpu, T> {
  static void forward(const Conv3d<Cpu, T>& conv, Activation<Cpu, T> pre, Activation<Cpu, T> post, TensorView<const T> in,
                      TensorView<const T> residual, TensorView<T> out, bool relu) {
    conv.forward_residual(in, residual, out, pre, post, relu);
  }
};

}  // namespace volfeat
