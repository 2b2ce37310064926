#pragma once
// Reading a .npz's zip (io/zip.hpp says which subset of PKZIP): the central directory only, every
// offset and size checked against the buffer, output grown only as inflate produces it.
#include <zlib.h>

#include <algorithm>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "volfeat/core/error.hpp"
#include "volfeat/io/zip_format.hpp"

namespace volfeat {

// Decompressed member contents: a view into the archive for stored members (no copy), an owned
// buffer for deflated ones.
class ZipPayload {
 public:
  const unsigned char* data() const { return owned_.empty() ? view_ : owned_.data(); }
  size_t size() const { return owned_.empty() ? view_size_ : owned_.size(); }

 private:
  friend class ZipReader;
  std::vector<unsigned char> owned_;
  const unsigned char* view_ = nullptr;
  size_t view_size_ = 0;
};

class ZipReader {
 public:
  // Parses and validates the central directory; `origin` (the file name) starts every message.
  ZipReader(const unsigned char* p, size_t n, std::string origin)
      : p_(p), n_(n), origin_(std::move(origin)) {
    read_directory();
  }

  const std::vector<ZipMember>& members() const { return members_; }

  // Decompresses one member and checks its size and CRC-32 against the directory.
  ZipPayload extract(const ZipMember& m) const {
    ZipPayload out = extract_unchecked(m);
    check_crc(m, out);
    return out;
  }

  // extract() without the CRC check, for readers that look at a member's first bytes (a .npy header)
  // before deciding whether they need it; they call check_crc() before using its contents.
  ZipPayload extract_unchecked(const ZipMember& m) const {
    ZipPayload out;
    if (m.method == 0) {
      out.view_ = p_ + m.data_offset;
      out.view_size_ = static_cast<size_t>(m.uncompressed_size);
    } else {
      out.owned_ = inflate_member(m);
    }
    return out;
  }

  void check_crc(const ZipMember& m, const ZipPayload& payload) const {
    if (detail::crc32_of(payload.data(), payload.size()) != m.crc32) fail(where(m), ": CRC mismatch");
  }

 private:
  std::string where(const ZipMember& m) const {
    return origin_ + ": member " + detail::display_name(m.name);
  }

  [[noreturn]] void corrupt_directory(const char* what) const {
    fail(origin_, ": corrupt zip central directory (", what, ")");
  }

  void read_directory() {
    using namespace detail;
    // The end record sits in the last 22 bytes plus an optional comment of up to 64 KiB.
    if (n_ < kEndOfCentralDirBytes) fail(origin_, ": not a zip file (no end-of-central-directory record)");
    size_t eocd = SIZE_MAX;
    const size_t lowest = n_ - kEndOfCentralDirBytes > 0xffff ? n_ - kEndOfCentralDirBytes - 0xffff : 0;
    for (size_t pos = n_ - kEndOfCentralDirBytes + 1; pos-- > lowest;) {
      if (zip_le32(p_ + pos) == kEndOfCentralDirSig &&
          pos + kEndOfCentralDirBytes + zip_le16(p_ + pos + 20) <= n_) {
        eocd = pos;
        break;
      }
    }
    if (eocd == SIZE_MAX) {
      if (zip_le32(p_) == kLocalHeaderSig)
        fail(origin_, ": truncated zip (starts like a zip archive but has no end-of-central-directory record; "
                      "an incomplete download or copy?)");
      fail(origin_, ": not a zip file (no end-of-central-directory record)");
    }

    const unsigned char* e = p_ + eocd;
    uint32_t disk = zip_le16(e + 4), cd_disk = zip_le16(e + 6);
    uint64_t entries_on_disk = zip_le16(e + 8), entries = zip_le16(e + 10);
    uint64_t cd_size = zip_le32(e + 12), cd_offset = zip_le32(e + 16);
    size_t cd_limit = eocd;  // the directory must end before whichever end record follows it

    if (eocd >= kZip64LocatorBytes && zip_le32(e - kZip64LocatorBytes) == kZip64LocatorSig) {
      const uint64_t z64 = zip_le64(e - kZip64LocatorBytes + 8);
      if (z64 > eocd - kZip64LocatorBytes || eocd - kZip64LocatorBytes - z64 < kZip64EndBytes) {
        corrupt_directory("ZIP64 end record out of bounds");
      }
      const unsigned char* r = p_ + z64;
      if (zip_le32(r) != kZip64EndSig) corrupt_directory("bad ZIP64 end record signature");
      disk = zip_le32(r + 16);
      cd_disk = zip_le32(r + 20);
      entries_on_disk = zip_le64(r + 24);
      entries = zip_le64(r + 32);
      cd_size = zip_le64(r + 40);
      cd_offset = zip_le64(r + 48);
      cd_limit = static_cast<size_t>(z64);
    }
    if (disk != 0 || cd_disk != 0 || entries_on_disk != entries) {
      fail(origin_, ": multi-disk zip archives are not supported");
    }
    if (cd_offset > cd_limit || cd_size > cd_limit - cd_offset) {
      fail(origin_, ": truncated zip (central directory at ", cd_offset, "+", cd_size,
           " lies outside the ", cd_limit, " bytes before the end record)");
    }
    if (entries > cd_size / kCentralHeaderBytes) {
      corrupt_directory("more entries declared than fit in its size");
    }

    std::set<std::string> seen;
    const size_t cd_end = static_cast<size_t>(cd_offset + cd_size);
    size_t q = static_cast<size_t>(cd_offset);
    members_.reserve(static_cast<size_t>(entries));
    for (uint64_t i = 0; i < entries; ++i) {
      if (cd_end - q < kCentralHeaderBytes) corrupt_directory("entry runs past its end");
      const unsigned char* c = p_ + q;
      if (zip_le32(c) != kCentralHeaderSig) corrupt_directory("bad entry signature");
      const size_t name_len = zip_le16(c + 28), extra_len = zip_le16(c + 30),
                   comment_len = zip_le16(c + 32);
      if (cd_end - q - kCentralHeaderBytes < name_len + extra_len + comment_len) {
        corrupt_directory("entry runs past its end");
      }
      ZipMember m;
      m.flags = zip_le16(c + 8);
      m.method = zip_le16(c + 10);
      m.crc32 = zip_le32(c + 16);
      m.compressed_size = zip_le32(c + 20);
      m.uncompressed_size = zip_le32(c + 24);
      uint32_t start_disk = zip_le16(c + 34);
      m.local_header_offset = zip_le32(c + 42);
      m.name.assign(reinterpret_cast<const char*>(c + kCentralHeaderBytes), name_len);
      read_zip64_extra(c + kCentralHeaderBytes + name_len, extra_len, m, start_disk);
      q += kCentralHeaderBytes + name_len + extra_len + comment_len;

      if (start_disk != 0) fail(origin_, ": multi-disk zip archives are not supported");
      if (!seen.insert(m.name).second) fail(where(m), ": duplicate member name");
      validate_member(m);
      members_.push_back(std::move(m));
    }
  }

  // ZIP64 extended information: only the fields whose 32-bit slots hold 0xFFFFFFFF are present,
  // in this fixed order.
  void read_zip64_extra(const unsigned char* x, size_t len, ZipMember& m, uint32_t& start_disk) const {
    using namespace detail;
    size_t pos = 0;
    while (len - pos >= 4) {
      const uint16_t id = zip_le16(x + pos), size = zip_le16(x + pos + 2);
      pos += 4;
      if (size > len - pos) fail(where(m), ": corrupt extra field (runs past its end)");
      if (id == kZip64ExtraId) {
        const unsigned char* f = x + pos;
        size_t left = size;
        auto take64 = [&](uint64_t& field) {
          if (field != 0xffffffffu) return;
          if (left < 8) fail(where(m), ": corrupt ZIP64 extra field (too short)");
          field = zip_le64(f);
          f += 8;
          left -= 8;
        };
        take64(m.uncompressed_size);
        take64(m.compressed_size);
        take64(m.local_header_offset);
        if (start_disk == 0xffff && left >= 4) start_disk = zip_le32(f);
      }
      pos += size;
    }
  }

  void validate_member(ZipMember& m) const {
    using namespace detail;
    if (m.flags & 0x1) fail(where(m), ": encrypted members are not supported");
    if (m.method != 0 && m.method != 8) {
      fail(where(m), ": unsupported compression method ", m.method);
    }
    if (m.uncompressed_size > kMaxZipMemberBytes) {
      fail(where(m), ": declared size ", m.uncompressed_size, " bytes exceeds the ",
           kMaxZipMemberBytes >> 30, " GiB limit per member");
    }
    if (m.method == 0 && m.compressed_size != m.uncompressed_size) {
      fail(where(m), ": stored member has compressed size ", m.compressed_size,
           " but uncompressed size ", m.uncompressed_size);
    }
    if (m.local_header_offset > n_ || n_ - m.local_header_offset < kLocalHeaderBytes) {
      fail(where(m), ": truncated (local header at offset ", m.local_header_offset,
           " is past the end of the file)");
    }
    const unsigned char* h = p_ + m.local_header_offset;
    if (zip_le32(h) != kLocalHeaderSig) fail(where(m), ": bad local header signature");
    const size_t name_len = zip_le16(h + 26), extra_len = zip_le16(h + 28);
    const uint64_t header_end = m.local_header_offset + kLocalHeaderBytes + name_len + extra_len;
    if (header_end > n_) fail(where(m), ": truncated (local header runs past the end of the file)");
    // A name disagreement means the directory points at the wrong place.
    if (name_len != m.name.size() ||
        std::memcmp(h + kLocalHeaderBytes, m.name.data(), name_len) != 0) {
      fail(where(m), ": local header names a different member");
    }
    m.data_offset = header_end;
    if (m.compressed_size > n_ - header_end) {
      fail(where(m), ": truncated (expected ", m.compressed_size, " bytes of ",
           m.method == 0 ? "stored" : "compressed", " data, found ", n_ - header_end, ")");
    }
    // Checked here, once compressed_size is known to be small enough not to overflow.
    if (m.method == 8 && m.uncompressed_size / kMaxDeflateRatio > m.compressed_size + 1) {
      fail(where(m), ": declared size ", m.uncompressed_size, " bytes is impossible for ",
           m.compressed_size, " bytes of deflate data");
    }
  }

  std::vector<unsigned char> inflate_member(const ZipMember& m) const {
    using namespace detail;
    z_stream zs{};
    if (inflateInit2(&zs, -15) != Z_OK) fail(where(m), ": zlib inflateInit2 failed");
    struct End {
      z_stream* s;
      ~End() { inflateEnd(s); }
    } end{&zs};

    const unsigned char* in = p_ + m.data_offset;
    uint64_t in_left = m.compressed_size;
    const uint64_t declared = m.uncompressed_size;
    // Grow with actual output so a lying header cannot make us allocate its claim.
    std::vector<unsigned char> out(static_cast<size_t>(std::min<uint64_t>(declared, uint64_t(1) << 16)));
    uint64_t produced = 0;
    unsigned char probe = 0;
    for (;;) {
      if (zs.avail_in == 0 && in_left > 0) {
        const uInt take = static_cast<uInt>(std::min(in_left, kZlibChunk));
        zs.next_in = const_cast<Bytef*>(in);
        zs.avail_in = take;
        in += take;
        in_left -= take;
      }
      if (produced == out.size() && produced < declared) {
        out.resize(static_cast<size_t>(std::min<uint64_t>(declared, uint64_t(out.size()) * 2)));
      }
      // Once the declared size is filled, a one-byte probe catches a stream that keeps going.
      const bool probing = produced == out.size();
      zs.next_out = probing ? &probe : out.data() + produced;
      zs.avail_out = probing ? 1 : static_cast<uInt>(std::min<uint64_t>(out.size() - produced, kZlibChunk));
      const uInt out_before = zs.avail_out, in_before = zs.avail_in;
      const int ret = ::inflate(&zs, Z_NO_FLUSH);
      const uInt wrote = out_before - zs.avail_out;
      if (probing && wrote > 0) {
        fail(where(m), ": inflates to more than its declared ", declared, " bytes");
      }
      produced += wrote;
      if (ret == Z_STREAM_END) break;
      if (ret == Z_DATA_ERROR || ret == Z_NEED_DICT) {
        fail(where(m), ": corrupt deflate data (zlib: ", zs.msg ? zs.msg : "invalid stream", ")");
      }
      if (ret == Z_MEM_ERROR) fail(where(m), ": out of memory while inflating");
      if (wrote == 0 && zs.avail_in == in_before && zs.avail_in == 0 && in_left == 0) {
        fail(where(m), ": truncated (deflate stream ends early after ", produced, " of ",
             declared, " bytes)");
      }
      if (ret != Z_OK && ret != Z_BUF_ERROR) fail(where(m), ": inflate failed (zlib error ", ret, ")");
    }
    if (produced != declared) {
      fail(where(m), ": inflates to ", produced, " bytes but the directory declares ", declared);
    }
    out.resize(static_cast<size_t>(produced));
    return out;
  }

  const unsigned char* p_;
  size_t n_;
  std::string origin_;
  std::vector<ZipMember> members_;
};

}  // namespace volfeat
