#pragma once
// The data the Cpu GEMM micro-kernels share across instruction sets (gemm_kernels.hpp has the
// overview): aligned scratch, K segments, the fused epilogue, and the kernels' function types.
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdlib>
#include <new>
#include <utility>

#include "volfeat/core/shape.hpp"

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

using KernelFn = void (*)(const Segment*, int, Index, Index, float*, Index, const Epilogue&);
// y[i] = act(x[i]) for i < n, act = optional folded BN (scale, shift), optional NaN-keeping ReLU.
using ActivateFn = void (*)(const float* x, float* y, Index n, const float* scale, const float* shift, bool relu);

}  // namespace gemm
}  // namespace volfeat::cpu
