#pragma once
// Write-then-rename, so a crash or an exception mid-write never leaves a half-written weights file
// or feature table where a later run would trust it. The temporary lives in the destination's
// directory because rename() is only atomic within one filesystem.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <string>
#include <utility>

#include "volfeat/core/error.hpp"

namespace volfeat {

class AtomicFile {
 public:
  explicit AtomicFile(std::string path)
      : path_(std::move(path)), temp_path_(path_ + ".tmp-" + std::to_string(::getpid())) {
    // O_TRUNC rather than O_EXCL: a stale temp from a crashed run with a recycled pid is garbage.
    fd_ = ::open(temp_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (fd_ < 0) fail(path_, ": cannot create temporary file ", temp_path_, ": ", std::strerror(errno));
  }

  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  ~AtomicFile() {
    if (committed_) return;
    if (fd_ >= 0) ::close(fd_);
    ::unlink(temp_path_.c_str());
  }

  void write(const void* data, size_t n) {
    if (fd_ < 0) fail(path_, ": write after commit");
    const auto* p = static_cast<const char*>(data);
    while (n > 0) {
      const ssize_t wrote = ::write(fd_, p, n);
      if (wrote < 0) {
        if (errno == EINTR) continue;
        fail(path_, ": write failed: ", std::strerror(errno));
      }
      p += wrote;
      n -= static_cast<size_t>(wrote);
      bytes_written_ += static_cast<size_t>(wrote);
    }
  }
  void write(const std::string& bytes) { write(bytes.data(), bytes.size()); }

  // Bytes written so far: zip writers need the current offset for their directory.
  size_t bytes_written() const { return bytes_written_; }

  // Makes the file visible under its final name. Until this returns, readers see the old file
  // (or none); after, the complete new one.
  void commit() {
    if (committed_) return;
    if (fd_ < 0) fail(path_, ": commit on a closed file");
    // fsync so that after a power loss the rename cannot survive while the data did not.
    if (::fsync(fd_) != 0 && errno != EINVAL && errno != EROFS) {
      fail(path_, ": fsync failed: ", std::strerror(errno));
    }
    const int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) fail(path_, ": close failed: ", std::strerror(errno));
    if (std::rename(temp_path_.c_str(), path_.c_str()) != 0) {
      fail(path_, ": cannot rename ", temp_path_, " into place: ", std::strerror(errno));
    }
    committed_ = true;
  }

  const std::string& path() const { return path_; }
  const std::string& temp_path() const { return temp_path_; }

 private:
  std::string path_;
  std::string temp_path_;
  int fd_ = -1;
  size_t bytes_written_ = 0;
  bool committed_ = false;
};

inline void write_file_atomic(const std::string& path, const std::string& bytes) {
  AtomicFile file(path);
  file.write(bytes);
  file.commit();
}

}  // namespace volfeat
