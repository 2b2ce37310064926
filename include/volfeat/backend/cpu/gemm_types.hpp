#pragma once
// The data the Cpu GEMM micro-kernels share across instruction sets (gemm_kernels.hpp has the
// overview): aligned scratch, K segments, the fused epilogue, and the kernels' function types.
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <utility>

#include "volfeat/core/host_memory.hpp"
#include "volfeat/core/shape.hpp"

namespace volfeat::cpu {

// 64-byte aligned, uninitialised storage of trivially copyable T that only grows (one per use per
// thread: an arena reused across layers and passes instead of a malloc per layer; and a conv's packed
// weights, PackedStore). From 2 MiB it is a block with huge pages (allocate_host_bytes,
// core/host_memory.hpp): packing first-touches it, and in 4 KiB pages that was most of a build.
template <class T>
class AlignedArray {
 public:
  AlignedArray() = default;
  AlignedArray(const AlignedArray& o) {
    if (o.n_) std::copy(o.p_, o.p_ + o.n_, reserve(o.n_));
  }
  AlignedArray& operator=(const AlignedArray& o) {
    AlignedArray t(o);
    return *this = std::move(t);
  }
  AlignedArray(AlignedArray&& o) noexcept
      : p_(std::exchange(o.p_, nullptr)), n_(std::exchange(o.n_, 0)), block_(std::exchange(o.block_, 0)) {}
  AlignedArray& operator=(AlignedArray&& o) noexcept {
    std::swap(p_, o.p_);
    std::swap(n_, o.n_);
    std::swap(block_, o.block_);
    return *this;
  }
  ~AlignedArray() { release(); }
  T* reserve(size_t n) {
    if (n > n_) {
      release();
      const auto [p, block] = allocate_host_bytes(n * sizeof(T));
      p_ = static_cast<T*>(p), n_ = n, block_ = block;
    }
    return p_;
  }
  T* data() const { return p_; }
  size_t size() const { return n_; }

 private:
  void release() {
    if (p_) FreeHostBytes{block_}(p_);
    p_ = nullptr, n_ = 0, block_ = 0;
  }

  T* p_ = nullptr;
  size_t n_ = 0;
  size_t block_ = 0;  // a large block's bytes (FreeHostBytes), or 0: from the heap
};
using AlignedFloats = AlignedArray<float>;

// bfloat16 as its bits: the upper half of a float (8 exponent bits, 7 mantissa bits). The bf16 GEMM
// (gemm_bf16.hpp) reads its operands in this form; arithmetic is never done on it.
using Bf16 = std::uint16_t;

// vcvtneps2bf16's rounding in plain C++.
inline Bf16 round_to_bf16(float f) {
  std::uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  if ((u & 0x7f800000u) == 0) return Bf16((u >> 16) & 0x8000u);              // zero, denormal: signed zero
  if ((u & 0x7fffffffu) > 0x7f800000u) return Bf16((u >> 16) | 0x0040u);     // NaN, made quiet
  u += 0x7fffu + ((u >> 16) & 1u);                                            // nearest, ties to even
  return Bf16(u >> 16);
}

inline float bf16_to_float(Bf16 h) {
  const std::uint32_t u = std::uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

// Per-thread scratch slots (OpenMP threads persist, so these live across layers and forward passes):
// 0 a pointwise tile (or a band's outputs: Conv3d's bands_fast), 1 a row path's rows (or a band's
// slab), 2 and 3 Winograd's V and M, 4 its depth sums, 5 and 6 the Winograd along W's transposed plane
// and M (winograd_along_w.hpp), 7 a max pool's row before it is rounded to bf16 (fused.hpp,
// ConvActMaxPool).
inline float* thread_scratch(int slot, size_t n) {
  thread_local std::array<AlignedFloats, 8> slots;
  return slots[size_t(slot)].reserve(n);
}
// The same for bf16 operands (gemm_bf16.hpp): slot 0 a pointwise tile, 1 a row path's rows, 2 Winograd's V
// rounded.
inline Bf16* thread_scratch_bf16(int slot, size_t n) {
  thread_local std::array<AlignedArray<Bf16>, 3> slots;
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
  // The bf16 kernels only (AVX512-BF16 rows, not AMX tiles: gemm_rows_bf16): C is this bf16 block instead (ldc
  // in its values; never with accumulate), each value rounded as round_to_bf16 rounds as it is stored.
  Bf16* c16 = nullptr;
};

using KernelFn = void (*)(const Segment*, int, Index, Index, float*, Index, const Epilogue&);

// A K segment of the bf16 GEMM: A and B as bf16 pairs (gemm_bf16.hpp); len even.
struct Bf16Segment {
  const Bf16* a;
  const Bf16* b;
  Index len;
};
using Bf16KernelFn = void (*)(const Bf16Segment*, int, Index, Index, float*, Index, const Epilogue&);
// y[i] = bf16(x[i]) for i < n, rounded to nearest even (NaN kept, denormals flushed to zero).
using Bf16ConvertFn = void (*)(const float* x, Bf16* y, Index n);
// y[i] = bf16(act(x[i])), act as ActivateFn's.
using Bf16ActivateFn = void (*)(const float* x, Bf16* y, Index n, const float* scale, const float* shift, bool relu);
// The same from bf16 values (a bf16 network's dense-block features), widened exactly as loaded.
using Bf16WidenActivateFn = void (*)(const Bf16* x, Bf16* y, Index n, const float* scale, const float* shift,
                                     bool relu);
// y[i] = act(x[i]) for i < n, act = optional folded BN (scale, shift), optional NaN-keeping ReLU.
using ActivateFn = void (*)(const float* x, float* y, Index n, const float* scale, const float* shift, bool relu);

}  // namespace gemm
}  // namespace volfeat::cpu
