#pragma once
// A whole file's bytes, read-only: mapped when it is a regular file (no copy out of the page cache, and
// pages nobody reads are never touched: a VGG export's 0.5 GB classifier stays on disk), read into
// memory otherwise (pipes, and systems where mmap fails).
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "volfeat/core/error.hpp"
#include "volfeat/io/npy.hpp"

namespace volfeat {

class MappedFile {
 public:
  explicit MappedFile(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) fail_open(path, "cannot open", errno);
    struct stat st;
    if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0) {
      void* p = ::mmap(nullptr, size_t(st.st_size), PROT_READ, MAP_PRIVATE, fd, 0);
      if (p != MAP_FAILED) {
        map_ = p;
        size_ = size_t(st.st_size);
      }
    }
    ::close(fd);
    if (!map_) bytes_ = detail::read_file_bytes(path);
  }
  ~MappedFile() {
    if (map_) ::munmap(map_, size_);
  }
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const unsigned char* data() const { return map_ ? static_cast<const unsigned char*>(map_) : bytes_.data(); }
  size_t size() const { return map_ ? size_ : bytes_.size(); }

 private:
  void* map_ = nullptr;
  size_t size_ = 0;
  std::vector<unsigned char> bytes_;
};

}  // namespace volfeat
