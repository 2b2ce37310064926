#pragma once
// What the .npz zip reader (io/zip_reader.hpp) and writer (io/zip_writer.hpp) share: a member's directory
// entry, the PKZIP signatures and sizes, little-endian fields, printable member names and the CRC-32.
#include <zlib.h>
#if defined(VOLFEAT_HAVE_LIBDEFLATE) && VOLFEAT_HAVE_LIBDEFLATE
#include <libdeflate.h>
#endif

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>

namespace volfeat {

struct ZipMember {
  std::string name;
  uint16_t method = 0;  // 0 stored, 8 deflated
  uint16_t flags = 0;
  uint32_t crc32 = 0;
  uint64_t compressed_size = 0;
  uint64_t uncompressed_size = 0;
  uint64_t local_header_offset = 0;
  uint64_t data_offset = 0;  // resolved from the local header
};

namespace detail {

// No single member of a feature toolkit's archive is legitimately this large; a header claiming
// more is corrupt or hostile.
constexpr uint64_t kMaxZipMemberBytes = uint64_t(16) << 30;
// Deflate cannot expand data by more than ~1032:1 (258-byte matches coded in 2 bits).
constexpr uint64_t kMaxDeflateRatio = 1032;
// zlib counts in uInt; feed it pieces so members past 4 GiB still work.
constexpr uint64_t kZlibChunk = uint64_t(1) << 30;

constexpr uint32_t kLocalHeaderSig = 0x04034b50;
constexpr uint32_t kCentralHeaderSig = 0x02014b50;
constexpr uint32_t kEndOfCentralDirSig = 0x06054b50;
constexpr uint32_t kZip64EndSig = 0x06064b50;
constexpr uint32_t kZip64LocatorSig = 0x07064b50;
constexpr size_t kLocalHeaderBytes = 30;
constexpr size_t kCentralHeaderBytes = 46;
constexpr size_t kEndOfCentralDirBytes = 22;
constexpr size_t kZip64EndBytes = 56;
constexpr size_t kZip64LocatorBytes = 20;
constexpr uint16_t kZip64ExtraId = 0x0001;

inline uint16_t zip_le16(const unsigned char* p) { return uint16_t(p[0] | (p[1] << 8)); }
inline uint32_t zip_le32(const unsigned char* p) {
  return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
}
inline uint64_t zip_le64(const unsigned char* p) {
  return uint64_t(zip_le32(p)) | uint64_t(zip_le32(p + 4)) << 32;
}

// Member names come from the file; keep messages on one printable line.
inline std::string display_name(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size() && i < 200; ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    out.push_back(c >= 0x20 && c != 0x7f ? static_cast<char>(c) : '?');
  }
  if (s.size() > 200) out += "...";
  return out;
}

// With libdeflate (volfeat's own programs: VOLFEAT_HAVE_LIBDEFLATE, io/gz.hpp) its CRC-32, 3x zlib's
// speed here: 32 MB (DenseNet-121's export, checked on every load) in 3.4-4.2 ms against 10.8-14.3 ms
// (Zen 3). The same checksum either way.
inline uint32_t crc32_of(const unsigned char* p, uint64_t n) {
#if defined(VOLFEAT_HAVE_LIBDEFLATE) && VOLFEAT_HAVE_LIBDEFLATE
  return libdeflate_crc32(0, p, size_t(n));
#else
  uLong crc = ::crc32(0L, Z_NULL, 0);
  while (n > 0) {
    const uInt take = static_cast<uInt>(std::min<uint64_t>(n, kZlibChunk));
    crc = ::crc32(crc, p, take);
    p += take;
    n -= take;
  }
  return static_cast<uint32_t>(crc);
#endif
}

}  // namespace detail

}  // namespace volfeat
