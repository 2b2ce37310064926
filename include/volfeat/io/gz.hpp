#pragma once
// Whole-buffer gzip decoding, for reading a .nii.gz in one pass: every member of a gzip file (gzip
// allows several, concatenated; each has its own CRC-32 and length trailer) into one buffer.
//
// With libdeflate (VOLFEAT_HAVE_LIBDEFLATE, Debian libdeflate-dev) the decoding is libdeflate's, about
// 3x zlib's speed on CT data; it needs the whole compressed stream in memory (the file is mapped) and an
// output buffer large enough, which is sized from what the caller expects (the NIfTI header's extent)
// rather than from the gzip ISIZE trailer, which holds the length mod 2^32 and only for the last member.
// A buffer found too small is doubled and the member decoded again, so files past 4 GiB and streams
// longer than expected still decode. gunzip_zlib does the same with zlib (the reference of the tests,
// and the fallback where libdeflate is absent).
//
// Both return false, with `error` set, on anything but a complete, intact stream: a truncated or corrupt
// member, or a bad trailer. Bytes after the last member that do not start another member are ignored,
// as zlib's gzread does.
#include <zlib.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

// Set by volfeat's own build where libdeflate is found (VOLFEAT_WITH_LIBDEFLATE); an installed
// volfeat::io keeps to zlib, so a program built against it sees 0 here.
#ifndef VOLFEAT_HAVE_LIBDEFLATE
#define VOLFEAT_HAVE_LIBDEFLATE 0
#endif
#if VOLFEAT_HAVE_LIBDEFLATE
#include <libdeflate.h>
#endif

#include "volfeat/core/host_memory.hpp"

namespace volfeat {

inline constexpr bool kHaveLibdeflate = VOLFEAT_HAVE_LIBDEFLATE + 0 != 0;

// The decoded bytes: a huge-page buffer (a scanner-sized CT inflates to ~100 MB, which in 4 KiB pages
// costs more to first-touch here than libdeflate takes to fill), of which `size` bytes are used.
struct GzBytes {
  HostArray<unsigned char> buffer;
  size_t size = 0;
  const unsigned char* data() const { return buffer.data(); }
  unsigned char* data() { return buffer.data(); }
  // Capacity at least `capacity`, the first `size` bytes kept.
  void reserve(size_t capacity) {
    if (capacity <= buffer.size()) return;
    HostArray<unsigned char> bigger(capacity);
    std::copy(buffer.data(), buffer.data() + size, bigger.data());
    buffer = std::move(bigger);
  }
};

namespace detail::gz {
inline bool starts_member(const unsigned char* p, size_t n) { return n >= 2 && p[0] == 0x1f && p[1] == 0x8b; }
// Deflate expands at most ~1032:1; a first guess beyond what the input could hold is never allocated.
constexpr uint64_t kMaxRatio = 1032;
}  // namespace detail::gz

#if VOLFEAT_HAVE_LIBDEFLATE
inline bool gunzip_libdeflate(const unsigned char* p, size_t n, size_t expected, GzBytes& out, std::string& error) {
  struct Decompressor {
    libdeflate_decompressor* d = libdeflate_alloc_decompressor();
    ~Decompressor() {
      if (d) libdeflate_free_decompressor(d);
    }
  } dec;
  if (!dec.d) {
    error = "libdeflate: out of memory";
    return false;
  }
  if (!detail::gz::starts_member(p, n)) {
    error = "not gzip data";
    return false;
  }
  const uint64_t most = uint64_t(n) * detail::gz::kMaxRatio + 4096;
  size_t capacity = size_t(std::min<uint64_t>(std::max<size_t>(expected, 1), most));
  out.size = 0;
  out.reserve(capacity);  // grown below only when a member does not fit
  size_t in = 0, produced = 0;
  while (in < n && detail::gz::starts_member(p + in, n - in)) {
    size_t used_in = 0, got = 0;
    const libdeflate_result r =
        libdeflate_gzip_decompress_ex(dec.d, p + in, n - in, out.data() + produced, capacity - produced, &used_in, &got);
    if (r == LIBDEFLATE_INSUFFICIENT_SPACE) {
      if (capacity >= most) {
        error = "gzip data inflates to more than deflate allows for its size";
        return false;
      }
      capacity = size_t(std::min<uint64_t>(uint64_t(capacity) * 2, most));
      out.size = produced;
      out.reserve(capacity);
      continue;  // this member again, into the larger buffer
    }
    if (r != LIBDEFLATE_SUCCESS) {
      error = r == LIBDEFLATE_BAD_DATA ? "corrupt or truncated gzip data" : "gzip data ends early";
      return false;
    }
    in += used_in;
    produced += got;
  }
  out.size = produced;
  return true;
}
#endif

// The reference decoder (zlib, streaming into a growing buffer), with the same contract.
inline bool gunzip_zlib(const unsigned char* p, size_t n, size_t expected, GzBytes& out, std::string& error) {
  if (!detail::gz::starts_member(p, n)) {
    error = "not gzip data";
    return false;
  }
  z_stream zs{};
  if (inflateInit2(&zs, 15 + 16) != Z_OK) {
    error = "zlib inflateInit2 failed";
    return false;
  }
  struct End {
    z_stream* s;
    ~End() { inflateEnd(s); }
  } end{&zs};
  constexpr uint64_t kChunk = uint64_t(1) << 30;  // zlib counts in uInt
  out.size = 0;
  out.reserve(std::max<size_t>(expected, 1 << 16));
  size_t in = 0, produced = 0;
  zs.avail_in = 0;
  for (;;) {
    if (zs.avail_in == 0) {
      const size_t take = size_t(std::min<uint64_t>(n - in, kChunk));
      zs.next_in = const_cast<Bytef*>(p + in);
      zs.avail_in = uInt(take);
      in += take;
    }
    if (produced == out.buffer.size()) {
      out.size = produced;
      out.reserve(out.buffer.size() * 2);
    }
    zs.next_out = out.data() + produced;
    zs.avail_out = uInt(std::min<uint64_t>(out.buffer.size() - produced, kChunk));
    const uInt before_out = zs.avail_out, before_in = zs.avail_in;
    const int r = inflate(&zs, Z_NO_FLUSH);
    produced += before_out - zs.avail_out;
    if (r == Z_STREAM_END) {
      const size_t at = in - zs.avail_in;  // first byte after this member
      if (!detail::gz::starts_member(p + at, n - at)) break;
      inflateReset(&zs);
      continue;
    }
    if (r != Z_OK && r != Z_BUF_ERROR) {
      error = std::string("corrupt gzip data (zlib: ") + (zs.msg ? zs.msg : "error") + ")";
      return false;
    }
    if (zs.avail_in == 0 && in == n && before_out == zs.avail_out && before_in == 0) {
      error = "truncated gzip data";
      return false;
    }
  }
  out.size = produced;
  return true;
}

// libdeflate where the build has it, zlib otherwise.
inline bool gunzip(const unsigned char* p, size_t n, size_t expected, GzBytes& out, std::string& error) {
#if VOLFEAT_HAVE_LIBDEFLATE
  return gunzip_libdeflate(p, n, expected, out, error);
#else
  return gunzip_zlib(p, n, expected, out, error);
#endif
}

}  // namespace volfeat
