#pragma once
// A conv's packed weights (Conv3d<Cpu, float>'s panels, Winograd3d's U): packed into aligned host
// memory, then, when the network streams its weights (core/weight_file.hpp), moved to its file and
// read from the mapping from then on.
//
// Where the memory comes from: a store of up to PackArena::kMaxStoreBytes is cut from a shared chunk of huge
// pages (PackArena), which a store keeps alive as long as it reads from it; a larger one is a huge-page
// block of its own (AlignedArray, core/host_blocks.hpp). Why: packing first-touches every store, and in
// 4 KiB pages (the heap's) each page costs a fault, about 10 us on this project's Zen 5 VMs. DenseNet-121's
// depth-factored Winograd stores (0.6 MB each) and its 1x1 panels were the faults left in a 128^3
// extract's build after the large stores had their blocks (bench/README.md, session 23). A block of its
// own keeps its tail under 2 MiB in small pages (a huge page there would hold memory nobody asked for):
// F(4x4x4)'s U of a 128 -> 32 conv is 3.4 MiB, a huge page and 352 small ones, and those tails were
// still 54 % of a 128^3 extract's page faults (session 43, perf: 6,300 of 11,600). In the arena they
// pack end to end in whole huge pages.
#include <cstddef>
#include <memory>
#include <mutex>
#include <utility>

#include "volfeat/backend/cpu/gemm_types.hpp"
#include "volfeat/core/host_memory.hpp"
#include "volfeat/core/weight_file.hpp"

namespace volfeat::cpu {

// Chunks of kChunkBytes (whole huge pages) that small stores are cut from, 64-byte aligned, one after
// another. A chunk is freed, its pages handed back to the kernel, once no store reads from it and the
// arena has moved on to a newer one, or once its stores have all moved to a weight file; the space of a
// store freed before then is not reused (packed weights live as long as their network). So a process
// holds its live stores plus at most one chunk's worth of space no store uses (the newest chunk's: the
// untouched rest costs nothing, the stores of networks destroyed meanwhile their pages), and a streamed
// network (move_to) none of it once its stores are all moved.
class PackArena {
 public:
  static constexpr size_t kChunkBytes = size_t(32) << 20;
  // The largest store cut from a chunk: a quarter of one, so a chunk's unused end stays under 8 MiB
  // (untouched, it costs no memory).
  static constexpr size_t kMaxStoreBytes = kChunkBytes / 4;
  struct Chunk {
    HostArray<unsigned char> bytes{kChunkBytes};
    // Under retain_freed_host_memory the block stays in the process for the next of its size: not its pages.
    ~Chunk() { discard_host_pages(bytes.data(), bytes.size()); }
  };

  static PackArena& instance() {
    static PackArena* a = new PackArena;  // never destroyed: stores may outlive static destruction
    return *a;
  }

  // Room for `bytes` (at most kMaxStoreBytes) and the chunk that holds it.
  std::pair<void*, std::shared_ptr<const Chunk>> take(size_t bytes) {
    bytes = (bytes + 63) / 64 * 64;
    std::lock_guard<std::mutex> lock(mutex_);
    if (!chunk_ || used_ + bytes > kChunkBytes) {
      chunk_ = std::make_shared<Chunk>();
      used_ = 0;
    }
    void* p = chunk_->bytes.data() + used_;
    used_ += bytes;
    return {p, chunk_};
  }

  // Frees the newest chunk if no store reads from it any more (its stores moved to a weight file).
  void drop_if_unused() {
    std::lock_guard<std::mutex> lock(mutex_);
    if (chunk_ && chunk_.use_count() == 1) chunk_.reset();
  }

 private:
  std::mutex mutex_;
  std::shared_ptr<Chunk> chunk_;
  size_t used_ = 0;
};

template <class T>
class PackedStore {
 public:
  PackedStore() = default;
  // A copy of heap values is a copy; a copy of values in a shared chunk or a mapping reads the same ones
  // (they are not written after packing).
  PackedStore(const PackedStore& o) : heap_(o.heap_), chunk_(o.chunk_), n_(o.n_), file_(o.file_) {
    data_ = file_ || chunk_ ? o.data_ : heap_.data();
  }
  PackedStore& operator=(const PackedStore& o) {
    PackedStore t(o);
    return *this = std::move(t);
  }
  PackedStore(PackedStore&& o) noexcept { *this = std::move(o); }
  PackedStore& operator=(PackedStore&& o) noexcept {
    std::swap(heap_, o.heap_);
    std::swap(chunk_, o.chunk_);
    std::swap(data_, o.data_);
    std::swap(n_, o.n_);
    std::swap(file_, o.file_);
    return *this;
  }

  // Uninitialised room for n values to pack into (the build's only writes).
  T* reserve(size_t n) {
    n_ = n;
    file_.reset();
    chunk_.reset();
    T* p = nullptr;
    if (n * sizeof(T) <= PackArena::kMaxStoreBytes) {
      heap_ = AlignedArray<T>();
      auto [q, chunk] = PackArena::instance().take(n * sizeof(T));
      p = static_cast<T*>(q);
      chunk_ = std::move(chunk);
    } else {
      p = heap_.reserve(n);
    }
    data_ = p;
    return p;
  }
  const T* data() const { return data_; }

  // The packed values go to `file` and the memory they were packed into is let go; the file is kept
  // alive as long as this store reads from it.
  void move_to(const std::shared_ptr<WeightFile>& file) {
    if (!file || n_ == 0 || file_) return;
    data_ = static_cast<const T*>(file->place(data_, n_ * sizeof(T)));
    heap_ = AlignedArray<T>();
    if (chunk_) {
      chunk_.reset();
      PackArena::instance().drop_if_unused();
    }
    file_ = file;
  }

 private:
  AlignedArray<T> heap_;
  std::shared_ptr<const PackArena::Chunk> chunk_;
  const T* data_ = nullptr;
  size_t n_ = 0;
  std::shared_ptr<WeightFile> file_;
};

}  // namespace volfeat::cpu
