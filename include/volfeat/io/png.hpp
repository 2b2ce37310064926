#pragma once
// 8-bit RGB PNG output via libpng (link the volfeat_png CMake target), for slice previews and
// feature-map snapshots.
#include <png.h>

#include <cerrno>
#include <csetjmp>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "volfeat/core/atomic_file.hpp"
#include "volfeat/core/error.hpp"

namespace volfeat {

// rgb holds height rows of width pixels, 3 bytes (R,G,B) each, top row first. Written atomically
// (AtomicFile): a temporary beside path is renamed over it only once libpng has finished.
inline void write_png_rgb(const std::string& path, int width, int height, const std::vector<uint8_t>& rgb);

namespace detail::png {

constexpr size_t kMessageSize = 256;

inline void on_error(png_structp png, png_const_charp msg) {
  std::snprintf(static_cast<char*>(png_get_error_ptr(png)), kMessageSize, "%s", msg ? msg : "unknown libpng error");
  png_longjmp(png, 1);
}

// A warning on an image we construct ourselves carries no information for the user.
inline void on_warning(png_structp, png_const_charp) {}

// libpng reports errors by longjmp, which must not jump over C++ objects with destructors; so this
// function holds only trivially destructible locals and returns false with the reason in `err`.
inline bool encode(FILE* fp, int width, int height, const uint8_t* rgb, char* err) {
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, err, on_error, on_warning);
  if (!png) {
    std::snprintf(err, kMessageSize, "libpng could not allocate its writer");
    return false;
  }
  png_infop info = png_create_info_struct(png);
  if (!info) {
    png_destroy_write_struct(&png, nullptr);
    std::snprintf(err, kMessageSize, "libpng could not allocate its header");
    return false;
  }
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    return false;
  }
  png_init_io(png, fp);
  png_set_IHDR(png, info, static_cast<png_uint_32>(width), static_cast<png_uint_32>(height), 8, PNG_COLOR_TYPE_RGB,
               PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  for (int y = 0; y < height; ++y) png_write_row(png, rgb + static_cast<size_t>(y) * static_cast<size_t>(width) * 3);
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  return true;
}

}  // namespace detail::png

inline void write_png_rgb(const std::string& path, int width, int height, const std::vector<uint8_t>& rgb) {
  if (width < 1 || height < 1) fail(path, ": cannot write a ", width, "x", height, " PNG");
  const size_t need = static_cast<size_t>(width) * static_cast<size_t>(height) * 3;
  if (rgb.size() != need)
    fail(path, ": PNG pixel buffer holds ", rgb.size(), " bytes but ", width, "x", height, " RGB needs ", need);

  AtomicFile file(path);  // temporary beside path; removed unless commit() renames it into place
  FILE* fp = std::fopen(file.temp_path().c_str(), "wb");
  if (!fp) fail(path, ": cannot open temporary file ", file.temp_path(), ": ", std::strerror(errno));
  char err[detail::png::kMessageSize] = {};
  const bool encoded = detail::png::encode(fp, width, height, rgb.data(), err);
  const bool flushed = std::fflush(fp) == 0 && !std::ferror(fp);
  const int flush_errno = errno;
  const bool closed = std::fclose(fp) == 0;
  if (!encoded) fail(path, ": PNG encoding failed: ", err);
  if (!flushed || !closed) fail(path, ": write failed: ", std::strerror(flushed ? errno : flush_errno));
  file.commit();
}

}  // namespace volfeat
