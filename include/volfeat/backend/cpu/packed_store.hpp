#pragma once
// A conv's packed weights (Conv3d<Cpu, float>'s panels, Winograd3d's U): packed into aligned heap
// memory, then, when the network streams its weights (core/weight_file.hpp), moved to its file and
// read from the mapping from then on.
#include <cstddef>
#include <memory>
#include <utility>

#include "volfeat/backend/cpu/gemm_types.hpp"
#include "volfeat/core/weight_file.hpp"

namespace volfeat::cpu {

template <class T>
class PackedStore {
 public:
  PackedStore() = default;
  // A copy of heap values is a copy; a copy of mapped values reads the same mapping.
  PackedStore(const PackedStore& o) : heap_(o.heap_), n_(o.n_), file_(o.file_) {
    data_ = file_ ? o.data_ : heap_.data();
  }
  PackedStore& operator=(const PackedStore& o) {
    PackedStore t(o);
    return *this = std::move(t);
  }
  PackedStore(PackedStore&& o) noexcept { *this = std::move(o); }
  PackedStore& operator=(PackedStore&& o) noexcept {
    std::swap(heap_, o.heap_);
    std::swap(data_, o.data_);
    std::swap(n_, o.n_);
    std::swap(file_, o.file_);
    return *this;
  }

  // Uninitialised room for n values to pack into (the build's only writes).
  T* reserve(size_t n) {
    n_ = n;
    T* p = heap_.reserve(n);
    file_.reset();
    data_ = p;
    return p;
  }
  const T* data() const { return data_; }

  // The packed values go to `file` and the heap copy is freed; the file is kept alive as long as this
  // store reads from it.
  void move_to(const std::shared_ptr<WeightFile>& file) {
    if (!file || n_ == 0 || file_) return;
    data_ = static_cast<const T*>(file->place(heap_.data(), n_ * sizeof(T)));
    heap_ = AlignedArray<T>();
    file_ = file;
  }

 private:
  AlignedArray<T> heap_;
  const T* data_ = nullptr;
  size_t n_ = 0;
  std::shared_ptr<WeightFile> file_;
};

}  // namespace volfeat::cpu
