#pragma once
// Streamed weights: a network's packed weights kept in an unlinked file on disk and read through one
// mapping of it, instead of in the process's anonymous memory (`--stream-weights DIR`).
//
// Why: at the sizes where weights, not activations, set a forward's peak (ResNet-50 at 64x128x128:
// 242 MB of packed weights, 47 MB of activations), the process need not hold them all. Each conv's
// weights are written here once, as it is built; each forward pass reads them through the mapping,
// and the network drops the mapping's pages after every step that ran a conv (drop_pages), so the
// process holds one step's weights at a time. The file's pages stay in the kernel's page cache:
// clean, shared, and reclaimable under memory pressure (then read back from disk on the next pass),
// where anonymous memory could only be swapped. Re-mapping pages the cache still holds is a minor
// fault for several pages at once: about 600 faults per ResNet-50 pass (Zen 4: 17,751 minor faults
// for a process with one pass at 64x128x128, 20,813 with six). A directory on tmpfs or ramfs is refused: its pages are memory that cannot be
// reclaimed, so streaming there would only move the weights out of the process's count.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/statfs.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <mutex>
#include <string>

#include "volfeat/core/error.hpp"

namespace volfeat {

class WeightFile {
 public:
  // Address space reserved for the mapping (never committed): the largest torchvision network
  // volfeat knows inflates to about 1 GB of packed weights.
  static constexpr size_t kReservedBytes = size_t(64) << 30;

  // dir: an existing directory on a disk; the file is created there, already unlinked, so nothing is
  // left behind by a run that ends in any way.
  explicit WeightFile(const std::string& dir) : dir_(dir) {
    check_dir(dir);
#ifdef O_TMPFILE
    fd_ = ::open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
#endif
    if (fd_ < 0) {  // a file system without O_TMPFILE: a named file, unlinked at once
      std::string path = dir + "/volfeat-weights-XXXXXX";
      fd_ = ::mkstemp(path.data());
      if (fd_ >= 0) ::unlink(path.c_str());
    }
    if (fd_ < 0) fail("--stream-weights ", dir, ": cannot create a file there: ", std::strerror(errno));
    void* base = ::mmap(nullptr, kReservedBytes, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (base == MAP_FAILED) {
      ::close(fd_);
      fail("--stream-weights ", dir, ": cannot reserve address space: ", std::strerror(errno));
    }
    base_ = static_cast<char*>(base);
  }
  // Fails with one line unless dir is a directory on a file system that is not memory.
  static void check_dir(const std::string& dir) {
    struct stat st {};
    if (::stat(dir.c_str(), &st) != 0) fail("--stream-weights ", dir, ": ", std::strerror(errno));
    if (!S_ISDIR(st.st_mode)) fail("--stream-weights ", dir, ": not a directory");
    struct statfs fs {};
    if (::statfs(dir.c_str(), &fs) != 0) fail("--stream-weights ", dir, ": ", std::strerror(errno));
    constexpr long kTmpfsMagic = 0x01021994, kRamfsMagic = 0x858458f6;
    if (long(fs.f_type) == kTmpfsMagic || long(fs.f_type) == kRamfsMagic)
      fail("--stream-weights ", dir, ": a tmpfs/ramfs directory is memory, and the weights would stay in it; "
           "give a directory on a disk");
  }

  WeightFile(const WeightFile&) = delete;
  WeightFile& operator=(const WeightFile&) = delete;
  ~WeightFile() {
    ::munmap(base_, kReservedBytes);
    ::close(fd_);
  }

  // Writes `bytes` from p to the file and returns where they are mapped (read-only, page aligned).
  // Thread safe: the network packs its convs in parallel.
  const void* place(const void* p, size_t bytes) {
    if (bytes == 0) return nullptr;
    const size_t page = size_t(::sysconf(_SC_PAGESIZE));
    const size_t rounded = (bytes + page - 1) / page * page;
    size_t off;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      off = end_.load();
      if (rounded > kReservedBytes - off) fail("--stream-weights ", dir_, ": the weights exceed ", kReservedBytes >> 30, " GiB");
      end_.store(off + rounded);
    }
    const char* src = static_cast<const char*>(p);
    for (size_t done = 0; done < bytes;) {
      const ssize_t n = ::pwrite(fd_, src + done, bytes - done, off_t(off + done));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) fail("--stream-weights ", dir_, ": writing the weights: ", n < 0 ? std::strerror(errno) : "no space");
      done += size_t(n);
    }
    // The file ends inside the last page, so the whole rounded range is readable.
    void* at = ::mmap(base_ + off, rounded, PROT_READ, MAP_SHARED | MAP_FIXED, fd_, off_t(off));
    if (at == MAP_FAILED) fail("--stream-weights ", dir_, ": mapping the weights: ", std::strerror(errno));
    return at;
  }

  // Gives back the process's pages of the whole mapping; the next read of a weight maps it again from
  // the page cache (or the disk). One call covers every conv: the kernel walks only page tables that
  // exist, so it costs microseconds after a step.
  void drop_pages() const {
    const size_t used = end_.load();
    if (used) ::madvise(base_, used, MADV_DONTNEED);
  }

  size_t bytes() const { return end_.load(); }
  const void* base() const { return base_; }  // the mapping's start (tests read its residency)
  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
  int fd_ = -1;
  char* base_ = nullptr;
  std::mutex mutex_;
  std::atomic<size_t> end_{0};
};

}  // namespace volfeat
