#pragma once
// Just enough of CUDA on the host to run the tensor-core conv kernel's source
// (backend/thrust/conv3d_tensor_core_kernel.hpp) in CI, where no GPU exists: each CUDA thread of a
// block is a fiber (ucontext) on the calling thread, __syncthreads a switch to the next fiber until
// all have arrived, __shared__ a static (one block runs at a time), and a WMMA fragment holds its
// whole tile in every thread, so load/store/mma need no warp exchange and element-wise fragment loops
// touch every element once. mma_sync sums in float, k ascending.
// __float_to_tf32 rounds as cvt.rna.tf32.f32 (nearest, ties away from zero; finite inputs).
// What this proves: the kernel's indexing (tiles, taps, padding, strides, prefetch, epilogue) and
// its arithmetic recipe (the 3xTF32 split). What it cannot: the hardware's fragment layouts, timing,
// and races between warps (the fibers run in a fixed order, one at a time).
// Why fibers: with a std::thread per CUDA thread and a mutex/condition-variable barrier, a
// __syncthreads of 128 threads cost about 1 ms on 2 cores, and test_tensor_core_emulated took 90 s
// alone (of its 124 CPU s, 83 in the OS kernel) and 139 s under CI's ctest -j2; with fibers, 9.7 s
// alone (AMD EPYC Zen 5, 2026-12-07). Fibers switch in user space, in a fixed order, so a run is also
// deterministic.
// Include it after the Thrust backend's headers (they include Thrust, which must not see these
// macros) and before conv3d_tensor_core_kernel.hpp, in a translation unit built for Thrust's OpenMP
// system.
#define VOLFEAT_WMMA_EMULATION 1

#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <type_traits>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/common_interface_defs.h>
#endif

struct float4 {
  float x, y, z, w;
};
inline float4 make_float4(float a, float b, float c, float d) { return {a, b, c, d}; }

namespace volfeat::test::wmma_emulation {
struct Index3 {
  unsigned x = 0;
};
inline Index3 thread_index;  // of the fiber now running
inline Index3 block_index;

// One block's CUDA threads as fibers, run in turn on the calling thread: fiber t runs until it reaches
// __syncthreads or returns, then fiber t + 1 runs; after the last, either all are at the barrier (the
// next round starts) or all have returned (the block is done). Any mix is a __syncthreads some
// threads skip, undefined on a GPU: it aborts with a message.
class Block {
 public:
  // 256 KiB of stack per fiber (the kernel needs a few KiB; ASan's redzones more), each above a
  // PROT_NONE guard page, so an overflow faults instead of writing into the next fiber's stack.
  static constexpr size_t kStack = size_t(256) << 10;

  explicit Block(unsigned threads) : fibers_(threads) {
    page_ = size_t(sysconf(_SC_PAGESIZE));
    const size_t bytes = size_t(threads) * (page_ + kStack);
    void* m = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) fail("mmap of the fiber stacks failed");
    memory_ = static_cast<char*>(m);
    bytes_ = bytes;
    for (unsigned t = 0; t < threads; ++t) {
      char* guard = memory_ + size_t(t) * (page_ + kStack);
      if (mprotect(guard, page_, PROT_NONE) != 0) fail("mprotect of a guard page failed");
      fibers_[t].stack = guard + page_;
    }
  }
  ~Block() { munmap(memory_, bytes_); }
  Block(const Block&) = delete;
  Block& operator=(const Block&) = delete;

  // Runs kernel() once per thread of the block, to completion.
  void run(const std::function<void()>& kernel) {
    kernel_ = &kernel;
    current_ = this;
    for (Fiber& f : fibers_) start(f);
    for (;;) {
      unsigned at_barrier = 0, done = 0;
      for (unsigned t = 0; t < fibers_.size(); ++t) {
        thread_index.x = t;  // the running fiber
        switch_to(fibers_[t]);
        (fibers_[t].state == State::kAtBarrier ? at_barrier : done) += 1;
      }
      if (done == fibers_.size()) break;
      if (at_barrier != fibers_.size()) fail("__syncthreads reached by some threads of a block and not others");
      for (Fiber& f : fibers_) f.state = State::kRunnable;
    }
    current_ = nullptr;
  }

  // __syncthreads, called on a fiber: back to run(), which resumes this fiber once all have arrived.
  static void sync() {
    Block& b = *current_;
    Fiber& f = b.fibers_[thread_index.x];
    f.state = State::kAtBarrier;
    b.switch_back(f, /*dying=*/false);
  }

 private:
  enum class State { kRunnable, kAtBarrier, kDone };
  struct Fiber {
    ucontext_t context;
    char* stack = nullptr;
    State state = State::kRunnable;
  };

  // Its own function: getcontext returns twice, and GCC warns of the caller's locals (-Wclobbered).
  static void start(Fiber& f) {
    f.state = State::kRunnable;
    if (getcontext(&f.context) != 0) fail("getcontext failed");
    f.context.uc_stack.ss_sp = f.stack;
    f.context.uc_stack.ss_size = kStack;
    f.context.uc_link = nullptr;  // entry() never returns: it switches back itself
    makecontext(&f.context, &Block::entry, 0);
  }

  [[noreturn]] static void fail(const char* what) {
    std::fprintf(stderr, "wmma_emulation: %s\n", what);
    std::abort();
  }

  static void entry() {
    Block& b = *current_;
#if defined(__SANITIZE_ADDRESS__)
    __sanitizer_finish_switch_fiber(nullptr, &b.main_bottom_, &b.main_size_);
#endif
    (*b.kernel_)();
    Fiber& f = b.fibers_[thread_index.x];
    f.state = State::kDone;
    b.switch_back(f, /*dying=*/true);
  }

  // run() -> fiber. ASan is told of each stack switch, so it checks the fiber's frames against the
  // fiber's stack (the sanitizer suite runs this test).
  void switch_to(Fiber& f) {
#if defined(__SANITIZE_ADDRESS__)
    void* fake = nullptr;
    __sanitizer_start_switch_fiber(&fake, f.stack, kStack);
#endif
    if (swapcontext(&main_, &f.context) != 0) fail("swapcontext failed");
#if defined(__SANITIZE_ADDRESS__)
    __sanitizer_finish_switch_fiber(fake, nullptr, nullptr);
#endif
  }

  // fiber -> run(); a returned (dying) fiber's frames are never resumed.
  void switch_back(Fiber& f, bool dying) {
#if defined(__SANITIZE_ADDRESS__)
    void* fake = nullptr;
    __sanitizer_start_switch_fiber(dying ? nullptr : &fake, main_bottom_, main_size_);
#else
    (void)dying;
#endif
    if (swapcontext(&f.context, &main_) != 0) fail("swapcontext failed");
#if defined(__SANITIZE_ADDRESS__)
    __sanitizer_finish_switch_fiber(fake, &main_bottom_, &main_size_);
#endif
  }

  std::vector<Fiber> fibers_;
  char* memory_ = nullptr;
  size_t bytes_ = 0, page_ = 0;
  ucontext_t main_;
  const std::function<void()>* kernel_ = nullptr;
  const void* main_bottom_ = nullptr;
  size_t main_size_ = 0;
  static inline Block* current_ = nullptr;
};

// Runs kernel() as a grid of `blocks` blocks of `threads` threads, the blocks in turn (their
// __shared__ statics are reused), each as fibers on the calling thread.
inline void launch(unsigned blocks, unsigned threads, const std::function<void()>& kernel) {
  Block block(threads);
  for (unsigned b = 0; b < blocks; ++b) {
    block_index.x = b;
    block.run(kernel);
  }
}
}  // namespace volfeat::test::wmma_emulation

#define threadIdx (::volfeat::test::wmma_emulation::thread_index)
#define blockIdx (::volfeat::test::wmma_emulation::block_index)
#define __syncthreads() ::volfeat::test::wmma_emulation::Block::sync()
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
// Not instrumented by the sanitizers: it reads and writes fragments only (the kernel's locals, whole
// tiles), never the kernel's global or shared memory, and it was 76 % of this test's time under ASan
// (32 lanes of a warp each compute the whole tile).
template <class D, class A, class B, class C>
__attribute__((no_sanitize("address", "undefined"))) void mma_sync(D& d, const A& a, const B& b, const C& c) {
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
