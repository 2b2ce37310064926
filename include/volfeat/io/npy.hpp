#pragma once
// NumPy .npy files (format versions 1.0, 2.0 and 3.0): the interchange format for weights and
// reference activations produced by the python side. The parser treats every byte as hostile
// (it is fuzzed): all lengths are checked before use and nothing is read past `n`. The dtypes and the
// conversion of stored values are io/npy_dtype.hpp.
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <ostream>
#include <string>
#include <type_traits>
#include <vector>

#include "volfeat/core/error.hpp"
#include "volfeat/io/npy_dtype.hpp"

namespace volfeat {

struct NpyArray {
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  bool fortran_order = false;
  std::vector<unsigned char> bytes;  // raw data exactly as stored, little-endian
  // Where the array came from ("w.npz: member conv.npy"), so later checks can name the source.
  std::string origin;

  int64_t size() const {
    int64_t count = 1;
    for (int64_t d : shape) count *= d;
    return count;
  }

  // Values converted to T, always in C (row-major) order whatever the storage order.
  template <class T>
  std::vector<T> to_vector() const {
    return detail::npy_values<T>(dtype, shape, fortran_order, bytes.data(), bytes.size(),
                                 origin.empty() ? std::string("array") : origin);
  }

  // A C-order array copied from `data` (shape product elements).
  template <class T>
  static NpyArray from(const std::vector<int64_t>& shape, const T* data) {
    NpyArray a;
    a.dtype = DTypeOf<T>::value;
    a.shape = shape;
    const int64_t count = detail::checked_element_count(shape, "NpyArray::from");
    a.bytes.resize(static_cast<size_t>(count) * sizeof(T));
    if (count > 0) std::memcpy(a.bytes.data(), data, a.bytes.size());
    return a;
  }
};

namespace detail {

// A cursor over the header's python dict literal. Only the subset numpy writes is accepted:
// string, True/False and tuple-of-int values.
class NpyHeaderParser {
 public:
  NpyHeaderParser(const char* begin, const char* end, const std::string& origin)
      : begin_(begin), p_(begin), end_(end), origin_(origin) {}

  void parse(NpyArray& out) {
    bool have_descr = false, have_order = false, have_shape = false;
    skip_space();
    expect('{');
    for (;;) {
      skip_space();
      if (peek() == '}') break;
      const std::string key = parse_string();
      skip_space();
      expect(':');
      skip_space();
      if (key == "descr") {
        if (peek() == '[') fail(origin_, ": structured dtypes are not supported");
        out.dtype = parse_descr(parse_string());
        have_descr = true;
      } else if (key == "fortran_order") {
        out.fortran_order = parse_bool();
        have_order = true;
      } else if (key == "shape") {
        out.shape = parse_shape();
        have_shape = true;
      } else {
        fail(origin_, ": unexpected key '", printable(key), "' in npy header");
      }
      skip_space();
      if (peek() == ',') {
        ++p_;
        continue;
      }
      if (peek() == '}') break;
      malformed("expected ',' or '}'");
    }
    expect('}');
    skip_space();
    if (p_ != end_) malformed("unexpected text after the dict");
    if (!have_descr) fail(origin_, ": npy header has no 'descr'");
    if (!have_order) fail(origin_, ": npy header has no 'fortran_order'");
    if (!have_shape) fail(origin_, ": npy header has no 'shape'");
  }

 private:
  // Header bytes may be anything; keep the message on one printable line.
  static std::string printable(const std::string& s, size_t max_len = 80) {
    std::string out;
    for (size_t i = 0; i < s.size() && i < max_len; ++i) {
      const unsigned char c = static_cast<unsigned char>(s[i]);
      out.push_back(c >= 0x20 && c < 0x7f ? static_cast<char>(c) : '?');
    }
    if (s.size() > max_len) out += "...";
    return out;
  }

  [[noreturn]] void malformed(const char* what) const {
    fail(origin_, ": malformed npy header (", what, " at offset ", p_ - begin_, "): ",
         printable(std::string(begin_, end_)));
  }

  int peek() const { return p_ < end_ ? static_cast<unsigned char>(*p_) : -1; }

  void skip_space() {
    while (p_ < end_ && (*p_ == ' ' || *p_ == '\t' || *p_ == '\n' || *p_ == '\r')) ++p_;
  }

  void expect(char c) {
    if (peek() != static_cast<unsigned char>(c)) {
      const char what[] = {'e', 'x', 'p', 'e', 'c', 't', 'e', 'd', ' ', '\'', c, '\'', '\0'};
      malformed(what);
    }
    ++p_;
  }

  std::string parse_string() {
    const int quote = peek();
    if (quote != '\'' && quote != '"') malformed("expected a quoted string");
    const char* start = ++p_;
    while (p_ < end_ && *p_ != quote) {
      if (*p_ == '\\') malformed("escape sequences are not supported");
      ++p_;
    }
    if (p_ == end_) malformed("unterminated string");
    std::string s(start, p_);
    ++p_;
    return s;
  }

  bool parse_bool() {
    auto take = [&](const char* word) {
      const size_t len = std::strlen(word);
      if (static_cast<size_t>(end_ - p_) >= len && std::memcmp(p_, word, len) == 0) {
        p_ += len;
        return true;
      }
      return false;
    };
    if (take("True")) return true;
    if (take("False")) return false;
    malformed("expected True or False");
  }

  std::vector<int64_t> parse_shape() {
    std::vector<int64_t> shape;
    expect('(');
    for (;;) {
      skip_space();
      if (peek() == ')') break;
      if (peek() == '-') fail(origin_, ": negative dimension in npy header shape");
      if (peek() < '0' || peek() > '9') malformed("expected a dimension");
      int64_t d = 0;
      while (peek() >= '0' && peek() <= '9') {
        const int digit = *p_ - '0';
        if (d > (std::numeric_limits<int64_t>::max() - digit) / 10) {
          fail(origin_, ": dimension in npy header shape is too large");
        }
        d = d * 10 + digit;
        ++p_;
      }
      if (peek() == 'L') ++p_;  // Python 2 longs, still present in old files
      shape.push_back(d);
      if (shape.size() > kMaxNpyDims) fail(origin_, ": npy shape has more than ", kMaxNpyDims, " dimensions");
      skip_space();
      if (peek() == ',') {
        ++p_;
        continue;
      }
      if (peek() != ')') malformed("expected ',' or ')' in shape");
    }
    expect(')');
    return shape;
  }

  DType parse_descr(const std::string& descr) const {
    const std::string shown = "'" + printable(descr) + "'";
    if (descr.size() < 2) fail(origin_, ": unsupported dtype ", shown);
    const char order = descr[0];
    const std::string code = descr.substr(1);
    if (code == "O") fail(origin_, ": object arrays (pickled) are not supported");
    if (order != '<' && order != '>' && order != '|' && order != '=') {
      fail(origin_, ": unsupported dtype ", shown);
    }
    struct Entry {
      const char* code;
      DType type;
    };
    static const Entry kCodes[] = {
        {"f4", DType::F32}, {"f8", DType::F64}, {"f2", DType::F16}, {"i1", DType::I8},
        {"i2", DType::I16}, {"i4", DType::I32}, {"i8", DType::I64}, {"u1", DType::U8},
        {"u2", DType::U16}, {"u4", DType::U32}, {"u8", DType::U64}, {"b1", DType::Bool},
        {"?", DType::Bool}};
    for (const Entry& e : kCodes) {
      if (code != e.code) continue;
      if (order == '>' && dtype_size(e.type) > 1) {
        fail(origin_, ": big-endian dtype ", shown, " is not supported (convert with .astype('<",
             code, "'))");
      }
      return e.type;
    }
    fail(origin_, ": unsupported dtype ", shown,
         " (supported: float16/32/64, int8/16/32/64, uint8/16/32/64, bool)");
  }

  const char* begin_;
  const char* p_;
  const char* end_;
  const std::string& origin_;
};

inline uint32_t read_le16(const unsigned char* p) { return uint32_t(p[0]) | uint32_t(p[1]) << 8; }
inline uint32_t read_le32(const unsigned char* p) {
  return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
}

inline std::vector<unsigned char> read_file_bytes(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) fail_open(path, "cannot open", errno);
  std::vector<unsigned char> data;
  // Size the buffer from stat so a large weights file is read in one pass without regrowing;
  // the extra byte lets the first fread see EOF. Pipes (size 0) fall back to growing.
  struct stat st;
  if (::fstat(::fileno(f), &st) == 0 && S_ISREG(st.st_mode)) {
    data.resize(static_cast<size_t>(st.st_size) + 1);
  }
  size_t used = 0;
  for (;;) {
    if (used == data.size()) data.resize(std::max<size_t>(1u << 20, data.size() + data.size() / 2));
    const size_t got = std::fread(data.data() + used, 1, data.size() - used, f);
    used += got;
    if (got == 0) {
      if (std::ferror(f)) {
        const int err = errno;
        std::fclose(f);
        fail(path, ": read error: ", std::strerror(err));
      }
      break;
    }
  }
  std::fclose(f);
  data.resize(used);
  return data;
}

}  // namespace detail

// An array's header and where its data lies in the buffer, checked: the data is all there.
struct NpyHeader {
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  bool fortran_order = false;
  size_t data_offset = 0;  // from the start of the .npy bytes
  size_t data_bytes = 0;   // element count x dtype size
};

inline NpyHeader parse_npy_header(const unsigned char* p, size_t n, const std::string& origin) {
  static const unsigned char kMagic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};
  if (n < sizeof kMagic || std::memcmp(p, kMagic, sizeof kMagic) != 0) {
    fail(origin, ": not a .npy file (bad magic)");
  }
  if (n < 8) fail(origin, ": truncated npy header");
  const unsigned major = p[6], minor = p[7];
  size_t header_start = 0, header_len = 0;
  if (major == 1) {
    if (n < 10) fail(origin, ": truncated npy header");
    header_start = 10;
    header_len = detail::read_le16(p + 8);
  } else if (major == 2 || major == 3) {
    if (n < 12) fail(origin, ": truncated npy header");
    header_start = 12;
    header_len = detail::read_le32(p + 8);
  } else {
    fail(origin, ": unsupported npy format version ", major, ".", minor);
  }
  if (header_len > n - header_start) {
    fail(origin, ": truncated npy header (declares ", header_len, " bytes, ", n - header_start,
         " present)");
  }

  NpyArray a;
  const char* header = reinterpret_cast<const char*>(p + header_start);
  detail::NpyHeaderParser(header, header + header_len, origin).parse(a);

  const int64_t count = detail::checked_element_count(a.shape, origin);
  const uint64_t item = dtype_size(a.dtype);
  if (static_cast<uint64_t>(count) > std::numeric_limits<uint64_t>::max() / item) {
    fail(origin, ": shape ", shape_string(a.shape), " is too large");
  }
  const uint64_t need = static_cast<uint64_t>(count) * item;
  const size_t data_start = header_start + header_len;
  const uint64_t have = n - data_start;
  if (need > have) {
    fail(origin, ": truncated (expected ", need, " bytes of data, found ", have, ")");
  }
  // Bytes past the array are ignored, as numpy does.
  return {a.dtype, std::move(a.shape), a.fortran_order, data_start, static_cast<size_t>(need)};
}

inline NpyArray parse_npy(const unsigned char* p, size_t n, const std::string& origin) {
  NpyHeader h = parse_npy_header(p, n, origin);
  NpyArray a;
  a.origin = origin;
  a.dtype = h.dtype;
  a.shape = std::move(h.shape);
  a.fortran_order = h.fortran_order;
  a.bytes.assign(p + h.data_offset, p + h.data_offset + h.data_bytes);
  return a;
}

inline NpyArray read_npy(const std::string& path) {
  const std::vector<unsigned char> data = detail::read_file_bytes(path);
  return parse_npy(data.data(), data.size(), path);
}

namespace detail {
// `where` names the array in messages (the writer knows the destination, the array may not).
inline std::string serialize_npy_as(const NpyArray& a, const std::string& where) {
  const int64_t count = detail::checked_element_count(a.shape, where);
  const uint64_t need = static_cast<uint64_t>(count) * dtype_size(a.dtype);
  if (a.bytes.size() != need) {
    fail(where, ": holds ", a.bytes.size(), " bytes but shape ", shape_string(a.shape), " of ",
         dtype_name(a.dtype), " needs ", need);
  }
  std::string header = "{'descr': '" + dtype_descr(a.dtype) + "', 'fortran_order': " +
                       (a.fortran_order ? "True" : "False") + ", 'shape': " + shape_string(a.shape) +
                       ", }";
  // numpy pads so the data starts on a 64-byte boundary (aligned loads after mmap).
  auto padded_total = [&](size_t prefix) { return (prefix + header.size() + 1 + 63) / 64 * 64; };
  const bool v1 = padded_total(10) - 10 <= 0xffff;  // version 1 stores the length in 16 bits
  const size_t prefix = v1 ? 10 : 12;
  const size_t total = padded_total(prefix);
  header.append(total - prefix - header.size() - 1, ' ');
  header.push_back('\n');

  std::string out;
  out.reserve(total + a.bytes.size());
  out.append("\x93NUMPY", 6);
  out.push_back(static_cast<char>(v1 ? 1 : 2));
  out.push_back(0);
  const size_t hl = header.size();
  out.push_back(static_cast<char>(hl & 0xff));
  out.push_back(static_cast<char>((hl >> 8) & 0xff));
  if (!v1) {
    out.push_back(static_cast<char>((hl >> 16) & 0xff));
    out.push_back(static_cast<char>((hl >> 24) & 0xff));
  }
  out += header;
  out.append(reinterpret_cast<const char*>(a.bytes.data()), a.bytes.size());
  return out;
}
}  // namespace detail

inline std::string serialize_npy(const NpyArray& a) {
  return detail::serialize_npy_as(a, a.origin.empty() ? std::string("array") : a.origin);
}

}  // namespace volfeat
