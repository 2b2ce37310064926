#pragma once
// Just enough of CUDA on the host to run the tensor-core conv kernel's source
// (backend/thrust/conv3d_tensor_core_kernel.hpp) in CI, where no GPU exists: each CUDA thread of a
// block is a std::thread, __syncthreads a barrier, __shared__ a static (one block runs at a time), and
// a WMMA fragment holds its whole tile in every thread, so load/store/mma need no warp exchange and
// element-wise fragment loops touch every element once. mma_sync sums in float, k ascending.
// __float_to_tf32 rounds as cvt.rna.tf32.f32 (nearest, ties away from zero; finite inputs).
// What this proves: the kernel's indexing (tiles, taps, padding, strides, prefetch, epilogue) and
// its arithmetic recipe (the 3xTF32 split). What it cannot: the hardware's fragment layouts, timing,
// and races between warps that the barrier would hide.
// Include it after the Thrust backend's headers (they include Thrust, which must not see these
// macros) and before conv3d_tensor_core_kernel.hpp, in a translation unit built for Thrust's OpenMP
// system.
#define VOLFEAT_WMMA_EMULATION 1

#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <mutex>
#include <cstring>
#include <functional>
#include <thread>
#include <type_traits>
#include <vector>

struct float4 {
  float x, y, z, w;
};
inline float4 make_float4(float a, float b, float c, float d) { return {a, b, c, d}; }

namespace volfeat::test::wmma_emulation {
struct Index3 {
  unsigned x = 0;
};
inline thread_local Index3 thread_index;
inline thread_local Index3 block_index;

// __syncthreads: every thread of the block waits until all have arrived (C++17 has no std::barrier).
class Barrier {
 public:
  explicit Barrier(unsigned n) : n_(n) {}
  void arrive_and_wait() {
    std::unique_lock<std::mutex> lock(m_);
    const unsigned gen = generation_;
    if (++arrived_ == n_) {
      arrived_ = 0;
      ++generation_;
      cv_.notify_all();
    } else {
      cv_.wait(lock, [&] { return generation_ != gen; });
    }
  }

 private:
  std::mutex m_;
  std::condition_variable cv_;
  unsigned n_, arrived_ = 0, generation_ = 0;
};
inline Barrier* block_barrier = nullptr;

// Runs kernel() as a grid of `blocks` blocks of `threads` threads: one std::thread per CUDA thread,
// the blocks in turn, a barrier between blocks (their __shared__ statics are reused).
inline void launch(unsigned blocks, unsigned threads, const std::function<void()>& kernel) {
  Barrier bar(threads);
  block_barrier = &bar;
  std::vector<std::thread> pool;
  for (unsigned t = 0; t < threads; ++t)
    pool.emplace_back([&, t] {
      thread_index.x = t;
      for (unsigned b = 0; b < blocks; ++b) {
        block_index.x = b;
        kernel();
        bar.arrive_and_wait();
      }
    });
  for (auto& th : pool) th.join();
  block_barrier = nullptr;
}
}  // namespace volfeat::test::wmma_emulation

#define threadIdx (::volfeat::test::wmma_emulation::thread_index)
#define blockIdx (::volfeat::test::wmma_emulation::block_index)
#define __syncthreads() ::volfeat::test::wmma_emulation::block_barrier->arrive_and_wait()
#define __global__
#define __device__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static
#define __align__(n) __attribute__((aligned(n)))
#define __trap() std::abort()

template <class T>
T __ldg(const T* p) {
  return *p;
}

namespace nvcuda::wmma {
struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
namespace precision {
struct tf32 {};
}  // namespace precision
enum layout_t { mem_row_major, mem_col_major };

template <class Use, int M, int N, int K, class T = void, class Layout = void>
struct fragment {
  static_assert(std::is_same_v<Layout, row_major> || std::is_same_v<Use, accumulator>,
                "the emulation models row-major operand fragments only");
  static constexpr int rows = std::is_same_v<Use, matrix_b> ? K : M;
  static constexpr int cols = std::is_same_v<Use, matrix_a> ? K : N;
  static constexpr int num_elements = rows * cols;
  float x[num_elements];
};

template <class F>
void load_matrix_sync(F& f, const float* p, unsigned ldm) {
  for (int r = 0; r < F::rows; ++r)
    for (int c = 0; c < F::cols; ++c) f.x[r * F::cols + c] = p[size_t(r) * ldm + size_t(c)];
}
template <class F>
void fill_fragment(F& f, float v) {
  for (float& e : f.x) e = v;
}
template <class F>
void store_matrix_sync(float* p, const F& f, unsigned ldm, layout_t layout) {
  if (layout != mem_row_major) std::abort();
  for (int r = 0; r < F::rows; ++r)
    for (int c = 0; c < F::cols; ++c) p[size_t(r) * ldm + size_t(c)] = f.x[r * F::cols + c];
}
template <class D, class A, class B, class C>
void mma_sync(D& d, const A& a, const B& b, const C& c) {
  float out[D::num_elements];
  for (int i = 0; i < D::rows; ++i)
    for (int j = 0; j < D::cols; ++j) {
      float s = c.x[i * C::cols + j];
      for (int k = 0; k < A::cols; ++k) s += a.x[i * A::cols + k] * b.x[k * B::cols + j];
      out[i * D::cols + j] = s;
    }
  std::memcpy(d.x, out, sizeof out);
}
inline float __float_to_tf32(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  u = (u + 0x1000u) & ~0x1fffu;  // 13 of float's 23 mantissa bits dropped, rounded half away from zero
  std::memcpy(&f, &u, sizeof f);
  return f;
}
}  // namespace nvcuda::wmma
