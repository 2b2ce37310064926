#pragma once
// Uninitialised, 64-byte aligned host arrays; large ones (from 2 MiB) are 2 MiB aligned blocks of their
// own, their whole 2 MiB pages advised as transparent huge pages (core/host_blocks.hpp).
//
// Why: activations at scanner resolution are hundreds of MB each and every forward pass touches
// them fresh. Measured on this project's machines (a VM, THP in "madvise" mode): first-touching
// 1 GiB of 4 KiB pages costs 0.33-0.94 s (a fault and a page clear per 4 KiB), of 2 MiB pages
// 0.05 s. A 216x512x512 DenseNet121 forward first-touches about 3 GiB.
#include <sys/mman.h>
#include <unistd.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <memory>
#include <new>
#include <type_traits>
#include <utility>
#include <vector>

#include "volfeat/core/host_blocks.hpp"

namespace volfeat {

// Small arrays come from the heap, 64-byte aligned; large ones are blocks of their own
// (core/host_blocks.hpp). Returns the array and, for a large one, its block's bytes (else 0).
inline std::pair<void*, size_t> allocate_host_bytes(size_t bytes) {
  if (bytes == 0) return {nullptr, 0};
  if (bytes >= kHugePageThresholdBytes) {
    const size_t block = host_block_bytes(bytes);
    return {take_host_block(block), block};
  }
  void* p = std::aligned_alloc(64, (bytes + 63) / 64 * 64);  // aligned_alloc wants a multiple
  if (!p) throw std::bad_alloc();
  return {p, 0};
}

// Keeps freed host memory in the process for the next allocation instead of returning it to the
// kernel: large blocks kept by size (core/host_blocks.hpp, at most the peak in use), and glibc's
// heap for the rest (no mmap of its own, no trimming). Why: a
// forward pass frees and reallocates the same activations every time, and memory handed back comes
// back through a fault and a page clear per page, which on this project's VM (AMD EPYC Zen 3, free
// pages reported to the host) costs far more than the huge-page figures above: VGG-19 at 64x128x128,
// 1 thread, 2 forwards, its conv1_1 stage (a fresh 268 MB output) 2.68 -> 0.11 CPU s, the process's
// system time 9.0 -> 0.6 s, peak RSS unchanged (773 MB: glibc reused the freed blocks then). The
// price: the process holds its peak until it exits. Process-wide, so the programs call it
// (the CLI, the benches), not the library on its own (the Python module leaves its host's malloc be).
inline void retain_freed_host_memory() {
  detail::HostBlockCache::instance().retain();  // the large blocks, kept by exact size
#if defined(__GLIBC__)
  mallopt(M_MMAP_MAX, 0);
  mallopt(M_TRIM_THRESHOLD, std::numeric_limits<int>::max());
#endif
}

// Gives the whole pages inside [p, p + bytes) back to the kernel now; their contents are lost. For a
// block about to be freed whose memory the process will not ask for again soon (a network build
// releasing its StateDict: Network's ReleaseWeights): under retain_freed_host_memory() the heap
// would keep those pages resident until the process ends. Only this block's pages go, not the rest
// of the heap's free memory (malloc_trim would return that too, and the allocations that follow
// would fault it back in: DenseNet-121's loaded build 40 % slower). The first 64 bytes stay: the allocator
// links a freed chunk into its lists through them.
inline void discard_host_pages(void* p, size_t bytes) {
  const uintptr_t page = uintptr_t(::sysconf(_SC_PAGESIZE));
  const uintptr_t begin = (reinterpret_cast<uintptr_t>(p) + 64 + page - 1) / page * page;
  const uintptr_t end = (reinterpret_cast<uintptr_t>(p) + bytes) / page * page;
  if (end > begin) ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
}

// Hands every free page inside the heap back to the kernel (glibc: malloc_trim, which also releases
// pages in the middle of the heap). For the end of a phase that freed much of what it allocated and will
// not allocate it again: Network's releasing build, whose smaller released tensors the packing reused only
// in part (DenseNet-121: 17 MB left resident beside 80 MB of packed weights, Zen 3).
inline void release_free_host_memory() {
#if defined(__GLIBC__)
  malloc_trim(0);
#endif
}

// n value-initialised T in a std::vector whose storage, when large, was advised huge before the zero
// fill first touched it. For whole volumes kept in std::vector (Volume<T>::data): the programs'
// heap (retain_freed_host_memory: no mmap of glibc's own) grows in 4 KiB pages, and a 216x512x512
// volume's 226 MB then took 55 K faults per copy: read_nifti_float 0.98 s and normalize_volume
// 0.61 s against 0.21 s to inflate the gzip stream (volfeat_fixed_cost, AMD EPYC Zen 5, 2026-12-04).
template <class T>
std::vector<T> huge_page_vector(size_t n) {
  std::vector<T> v;
  if (n * sizeof(T) >= kHugePageThresholdBytes) {
    v.reserve(n);
    advise_huge_pages(v.data(), n * sizeof(T));
  }
  v.resize(n);
  return v;
}

struct FreeHostBytes {
  size_t block = 0;  // a large block's bytes, or 0: from the heap
  void operator()(void* p) const noexcept {
    if (block) give_host_block(p, block);
    else std::free(p);
  }
};

// A fixed-size array of trivially copyable T, contents uninitialised.
template <class T>
class HostArray {
  static_assert(std::is_trivially_copyable_v<T>, "HostArray holds raw numbers");

 public:
  HostArray() = default;
  explicit HostArray(size_t n) : n_(n) {
    const auto [p, block] = allocate_host_bytes(n * sizeof(T));
    p_ = std::unique_ptr<T, FreeHostBytes>(static_cast<T*>(p), FreeHostBytes{block});
  }
  HostArray(const HostArray& o) : HostArray(o.n_) { std::copy(o.data(), o.data() + o.n_, data()); }
  HostArray& operator=(const HostArray& o) { return *this = HostArray(o); }
  HostArray(HostArray&& o) noexcept : p_(std::move(o.p_)), n_(std::exchange(o.n_, 0)) {}
  HostArray& operator=(HostArray&& o) noexcept {
    p_ = std::move(o.p_);
    n_ = std::exchange(o.n_, 0);
    return *this;
  }
  T* data() { return p_.get(); }
  const T* data() const { return p_.get(); }
  size_t size() const { return n_; }

 private:
  std::unique_ptr<T, FreeHostBytes> p_;
  size_t n_ = 0;
};

}  // namespace volfeat
