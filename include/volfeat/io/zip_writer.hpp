#pragma once
// Writing a .npz's zip: stored or deflated members, ZIP64 where needed, into an AtomicFile.
#include <zlib.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "volfeat/core/atomic_file.hpp"
#include "volfeat/core/error.hpp"
#include "volfeat/io/zip_format.hpp"

namespace volfeat {

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
