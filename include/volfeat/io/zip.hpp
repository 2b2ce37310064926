#pragma once
// The subset of PKZIP that .npz files use: stored or deflated members, optional ZIP64 fields,
// one disk, no encryption. The reader trusts only the central directory (as numpy's zipfile
// does) and checks every offset and size against the buffer before touching it, because .npz
// input is untrusted and fuzzed. Declared sizes are never allocated up front: output grows as
// inflate actually produces it, and stops the moment it exceeds what the directory declared.
#include <zlib.h>
#if defined(VOLFEAT_HAVE_LIBDEFLATE) && VOLFEAT_HAVE_LIBDEFLATE
#include <libdeflate.h>
#endif

#include <algorithm>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "volfeat/core/atomic_file.hpp"
#include "volfeat/core/error.hpp"

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

// Streams members into an AtomicFile. Timestamps are fixed (1980-01-01) so identical inputs give
// byte-identical archives, which keeps sha256 pins of generated files stable.
class ZipWriter {
 public:
  // force_zip64 writes ZIP64 fields even for small members (as numpy does for its local headers);
  // it exists so the ZIP64 path can be tested without 4 GiB files.
  explicit ZipWriter(AtomicFile& file, bool force_zip64 = false) : file_(file), force_zip64_(force_zip64) {}

  void add(const std::string& name, const void* data, size_t n, bool compress) {
    if (finished_) fail(file_.path(), ": zip member added after finish()");
    if (name.size() > 0xffff) fail(file_.path(), ": member name longer than 65535 bytes");
    const auto* bytes = static_cast<const unsigned char*>(data);
    Entry e;
    e.name = name;
    e.method = compress ? 8 : 0;
    e.crc = detail::crc32_of(bytes, n);
    e.usize = n;
    e.offset = offset_;
    e.flags = 0;
    for (unsigned char ch : name) {
      if (ch >= 0x80) e.flags |= 0x0800;  // names are UTF-8
    }
    std::vector<unsigned char> packed;
    if (compress) packed = deflate_raw(bytes, n, name);
    e.csize = compress ? packed.size() : n;
    e.zip64_sizes = force_zip64_ || e.usize >= 0xffffffffu || e.csize >= 0xffffffffu;

    std::string h;
    put32(h, detail::kLocalHeaderSig);
    put16(h, e.zip64_sizes ? 45 : 20);
    put16(h, e.flags);
    put16(h, e.method);
    put16(h, 0);       // time 00:00
    put16(h, 0x0021);  // date 1980-01-01
    put32(h, e.crc);
    put32(h, e.zip64_sizes ? 0xffffffffu : static_cast<uint32_t>(e.csize));
    put32(h, e.zip64_sizes ? 0xffffffffu : static_cast<uint32_t>(e.usize));
    put16(h, static_cast<uint16_t>(name.size()));
    put16(h, e.zip64_sizes ? 20 : 0);
    h += name;
    if (e.zip64_sizes) {
      put16(h, detail::kZip64ExtraId);
      put16(h, 16);
      put64(h, e.usize);
      put64(h, e.csize);
    }
    emit(h.data(), h.size());
    if (compress) {
      emit(packed.data(), packed.size());
    } else {
      emit(bytes, n);
    }
    entries_.push_back(std::move(e));
  }

  void add(const std::string& name, const std::string& bytes, bool compress) {
    add(name, bytes.data(), bytes.size(), compress);
  }

  // Writes the central directory and end records. The caller still commits the AtomicFile.
  void finish() {
    if (finished_) return;
    finished_ = true;
    const uint64_t cd_offset = offset_;
    for (const Entry& e : entries_) {
      const bool big_usize = force_zip64_ || e.usize >= 0xffffffffu;
      const bool big_csize = force_zip64_ || e.csize >= 0xffffffffu;
      const bool big_offset = force_zip64_ || e.offset >= 0xffffffffu;
      std::string extra;
      if (big_usize) put64(extra, e.usize);
      if (big_csize) put64(extra, e.csize);
      if (big_offset) put64(extra, e.offset);
      const bool zip64 = !extra.empty();

      std::string c;
      put32(c, detail::kCentralHeaderSig);
      put16(c, (3 << 8) | 45);  // made by: unix, spec 4.5
      put16(c, (zip64 || e.zip64_sizes) ? 45 : 20);
      put16(c, e.flags);
      put16(c, e.method);
      put16(c, 0);
      put16(c, 0x0021);
      put32(c, e.crc);
      put32(c, big_csize ? 0xffffffffu : static_cast<uint32_t>(e.csize));
      put32(c, big_usize ? 0xffffffffu : static_cast<uint32_t>(e.usize));
      put16(c, static_cast<uint16_t>(e.name.size()));
      put16(c, zip64 ? static_cast<uint16_t>(4 + extra.size()) : 0);
      put16(c, 0);                 // comment
      put16(c, 0);                 // start disk
      put16(c, 0);                 // internal attributes
      put32(c, 0100644u << 16);    // regular file, rw-r--r--
      put32(c, big_offset ? 0xffffffffu : static_cast<uint32_t>(e.offset));
      c += e.name;
      if (zip64) {
        put16(c, detail::kZip64ExtraId);
        put16(c, static_cast<uint16_t>(extra.size()));
        c += extra;
      }
      emit(c.data(), c.size());
    }
    const uint64_t cd_size = offset_ - cd_offset;
    const uint64_t count = entries_.size();
    const bool zip64_end = force_zip64_ || count >= 0xffff || cd_size >= 0xffffffffu ||
                           cd_offset >= 0xffffffffu;
    std::string t;
    if (zip64_end) {
      const uint64_t record_offset = offset_;
      put32(t, detail::kZip64EndSig);
      put64(t, detail::kZip64EndBytes - 12);  // size of the rest of the record
      put16(t, (3 << 8) | 45);
      put16(t, 45);
      put32(t, 0);
      put32(t, 0);
      put64(t, count);
      put64(t, count);
      put64(t, cd_size);
      put64(t, cd_offset);
      put32(t, detail::kZip64LocatorSig);
      put32(t, 0);
      put64(t, record_offset);
      put32(t, 1);
    }
    put32(t, detail::kEndOfCentralDirSig);
    put16(t, 0);
    put16(t, 0);
    put16(t, zip64_end ? 0xffff : static_cast<uint16_t>(count));
    put16(t, zip64_end ? 0xffff : static_cast<uint16_t>(count));
    put32(t, zip64_end ? 0xffffffffu : static_cast<uint32_t>(cd_size));
    put32(t, zip64_end ? 0xffffffffu : static_cast<uint32_t>(cd_offset));
    put16(t, 0);
    emit(t.data(), t.size());
  }

 private:
  struct Entry {
    std::string name;
    uint16_t method = 0;
    uint16_t flags = 0;
    uint32_t crc = 0;
    uint64_t csize = 0;
    uint64_t usize = 0;
    uint64_t offset = 0;
    bool zip64_sizes = false;
  };

  static void put16(std::string& s, uint32_t v) {
    s.push_back(static_cast<char>(v & 0xff));
    s.push_back(static_cast<char>((v >> 8) & 0xff));
  }
  static void put32(std::string& s, uint32_t v) {
    put16(s, v & 0xffff);
    put16(s, v >> 16);
  }
  static void put64(std::string& s, uint64_t v) {
    put32(s, static_cast<uint32_t>(v));
    put32(s, static_cast<uint32_t>(v >> 32));
  }

  void emit(const void* data, size_t n) {
    file_.write(data, n);
    offset_ += n;
  }

  std::vector<unsigned char> deflate_raw(const unsigned char* data, size_t n, const std::string& name) {
    z_stream zs{};
    if (deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
      fail(file_.path(), ": member ", detail::display_name(name), ": zlib deflateInit2 failed");
    }
    struct End {
      z_stream* s;
      ~End() { deflateEnd(s); }
    } end{&zs};
    std::vector<unsigned char> out(static_cast<size_t>(deflateBound(&zs, static_cast<uLong>(n))));
    size_t produced = 0;
    uint64_t in_left = n;
    const unsigned char* in = data;
    for (;;) {
      if (zs.avail_in == 0 && in_left > 0) {
        const uInt take = static_cast<uInt>(std::min<uint64_t>(in_left, detail::kZlibChunk));
        zs.next_in = const_cast<Bytef*>(in);
        zs.avail_in = take;
        in += take;
        in_left -= take;
      }
      if (produced == out.size()) out.resize(out.size() * 2 + 64);
      zs.next_out = out.data() + produced;
      zs.avail_out = static_cast<uInt>(std::min<uint64_t>(out.size() - produced, detail::kZlibChunk));
      const uInt before = zs.avail_out;
      const int ret = ::deflate(&zs, in_left == 0 ? Z_FINISH : Z_NO_FLUSH);
      produced += before - zs.avail_out;
      if (ret == Z_STREAM_END) break;
      if (ret != Z_OK && ret != Z_BUF_ERROR) {
        fail(file_.path(), ": member ", detail::display_name(name), ": deflate failed (zlib error ", ret, ")");
      }
    }
    out.resize(produced);
    return out;
  }

  AtomicFile& file_;
  bool force_zip64_;
  bool finished_ = false;
  uint64_t offset_ = 0;
  std::vector<Entry> entries_;
};

}  // namespace volfeat
