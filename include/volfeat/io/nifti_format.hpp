#pragma once
// What reading and writing NIfTI share (io/nifti_header.hpp, io/nifti.hpp, io/nifti_write.hpp): the voxel
// limit, the file-name rule, a zlib file handle, byte order, the ten datatypes and the owner of the C
// library's nifti_image.
#include <nifti2_io.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <string>
#include <type_traits>

#include "volfeat/core/error.hpp"

namespace volfeat::detail::nifti {

// Anything bigger is a corrupt header long before it is a real CT (2^34 float voxels = 64 GiB).
constexpr int64_t kMaxVoxels = int64_t{1} << 34;

template <class... Parts>
[[noreturn]] void fail_file(const std::string& path, const Parts&... parts) {
  fail(path, ": ", parts...);
}

inline bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

inline bool has_nifti_extension(const std::string& path) {
  const std::string name = std::filesystem::path(path).filename().string();
  return (ends_with(name, ".nii") && name.size() > 4) || (ends_with(name, ".nii.gz") && name.size() > 7);
}

class GzFile {
 public:
  GzFile(const std::string& path, const char* mode) : path_(path), f_(gzopen(path.c_str(), mode)) {}
  ~GzFile() {
    if (f_) gzclose(f_);
  }
  GzFile(const GzFile&) = delete;
  GzFile& operator=(const GzFile&) = delete;
  gzFile get() const { return f_; }
  explicit operator bool() const { return f_ != nullptr; }
  // Closing is where a gzip writer flushes, so its result matters; after this the handle is gone.
  int close() {
    const int rc = gzclose(f_);
    f_ = nullptr;
    return rc;
  }
  std::string error_text() const {
    int errnum = Z_OK;
    const char* msg = f_ ? gzerror(f_, &errnum) : nullptr;
    if (errnum == Z_ERRNO) return std::strerror(errno);
    std::string text = msg && *msg ? msg : "unknown zlib error";
    // zlib prefixes "<path>: "; our messages already start with the path.
    if (text.compare(0, path_.size() + 2, path_ + ": ") == 0) text.erase(0, path_.size() + 2);
    return text;
  }

 private:
  std::string path_;
  gzFile f_;
};

template <class T>
void byteswap_in_place(T* p, int64_t n) {
  static_assert(std::is_trivially_copyable_v<T>);
  for (int64_t i = 0; i < n; ++i) {
    unsigned char b[sizeof(T)];
    std::memcpy(b, p + i, sizeof(T));
    std::reverse(b, b + sizeof(T));
    std::memcpy(p + i, b, sizeof(T));
  }
}

inline const char* datatype_name(int dt) {
  switch (dt) {
    case NIFTI_TYPE_UINT8: return "uint8";
    case NIFTI_TYPE_INT8: return "int8";
    case NIFTI_TYPE_INT16: return "int16";
    case NIFTI_TYPE_UINT16: return "uint16";
    case NIFTI_TYPE_INT32: return "int32";
    case NIFTI_TYPE_UINT32: return "uint32";
    case NIFTI_TYPE_INT64: return "int64";
    case NIFTI_TYPE_UINT64: return "uint64";
    case NIFTI_TYPE_FLOAT32: return "float32";
    case NIFTI_TYPE_FLOAT64: return "float64";
    default: return nullptr;
  }
}

// Calls f(T{}) with T the C++ type of NIfTI datatype dt (one of the ten supported ones).
template <class F>
void dispatch_datatype(int dt, F&& f) {
  switch (dt) {
    case NIFTI_TYPE_UINT8: f(uint8_t{}); break;
    case NIFTI_TYPE_INT8: f(int8_t{}); break;
    case NIFTI_TYPE_INT16: f(int16_t{}); break;
    case NIFTI_TYPE_UINT16: f(uint16_t{}); break;
    case NIFTI_TYPE_INT32: f(int32_t{}); break;
    case NIFTI_TYPE_UINT32: f(uint32_t{}); break;
    case NIFTI_TYPE_INT64: f(int64_t{}); break;
    case NIFTI_TYPE_UINT64: f(uint64_t{}); break;
    case NIFTI_TYPE_FLOAT32: f(float{}); break;
    case NIFTI_TYPE_FLOAT64: f(double{}); break;
    default: break;  // rejected when the header is opened
  }
}

// Owns a nifti_image from the C library.
struct NimPtr {
  nifti_image* p = nullptr;
  explicit NimPtr(nifti_image* q) : p(q) {}
  ~NimPtr() {
    if (p) nifti_image_free(p);
  }
  NimPtr(const NimPtr&) = delete;
  NimPtr& operator=(const NimPtr&) = delete;
};

}  // namespace volfeat::detail::nifti
