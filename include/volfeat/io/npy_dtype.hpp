#pragma once
// NumPy's dtypes as volfeat reads and writes them (io/npy.hpp): their sizes, names and descr strings, the
// C++ type of each, and the checked conversion of stored little-endian values to T in C order
// (detail::npy_values), which every reader of .npy bytes goes through.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include "volfeat/core/error.hpp"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "volfeat/io/npy.hpp and npy_dtype.hpp store and load little-endian data with memcpy; big-endian hosts need byte swapping"
#endif

namespace volfeat {

enum class DType { F32, F64, F16, I8, I16, I32, I64, U8, U16, U32, U64, Bool };

inline size_t dtype_size(DType t) {
  switch (t) {
    case DType::F64: case DType::I64: case DType::U64: return 8;
    case DType::F32: case DType::I32: case DType::U32: return 4;
    case DType::F16: case DType::I16: case DType::U16: return 2;
    case DType::I8: case DType::U8: case DType::Bool: return 1;
  }
  return 1;
}

inline std::string dtype_name(DType t) {
  switch (t) {
    case DType::F32: return "float32";
    case DType::F64: return "float64";
    case DType::F16: return "float16";
    case DType::I8: return "int8";
    case DType::I16: return "int16";
    case DType::I32: return "int32";
    case DType::I64: return "int64";
    case DType::U8: return "uint8";
    case DType::U16: return "uint16";
    case DType::U32: return "uint32";
    case DType::U64: return "uint64";
    case DType::Bool: return "bool";
  }
  return "unknown";
}

// So DTypes can go straight into fail(...) messages and test output.
inline std::ostream& operator<<(std::ostream& os, DType t) { return os << dtype_name(t); }

// The descr string numpy itself writes for the type ('|' for single bytes, where order is moot).
inline std::string dtype_descr(DType t) {
  switch (t) {
    case DType::F32: return "<f4";
    case DType::F64: return "<f8";
    case DType::F16: return "<f2";
    case DType::I8: return "|i1";
    case DType::I16: return "<i2";
    case DType::I32: return "<i4";
    case DType::I64: return "<i8";
    case DType::U8: return "|u1";
    case DType::U16: return "<u2";
    case DType::U32: return "<u4";
    case DType::U64: return "<u8";
    case DType::Bool: return "|b1";
  }
  return "";
}

template <class T> struct DTypeOf;
template <> struct DTypeOf<float> { static constexpr DType value = DType::F32; };
template <> struct DTypeOf<double> { static constexpr DType value = DType::F64; };
template <> struct DTypeOf<int8_t> { static constexpr DType value = DType::I8; };
template <> struct DTypeOf<int16_t> { static constexpr DType value = DType::I16; };
template <> struct DTypeOf<int32_t> { static constexpr DType value = DType::I32; };
template <> struct DTypeOf<int64_t> { static constexpr DType value = DType::I64; };
template <> struct DTypeOf<uint8_t> { static constexpr DType value = DType::U8; };
template <> struct DTypeOf<uint16_t> { static constexpr DType value = DType::U16; };
template <> struct DTypeOf<uint32_t> { static constexpr DType value = DType::U32; };
template <> struct DTypeOf<uint64_t> { static constexpr DType value = DType::U64; };

// Python's repr of a shape tuple: (), (5,), (3, 4). Messages use it so they read like numpy.
inline std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s = "(";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i > 0) s += ", ";
    s += std::to_string(shape[i]);
  }
  if (shape.size() == 1) s += ",";
  return s + ")";
}

namespace detail {

// numpy's own limit is 32 (64 since 2.0); anything deeper is corruption, not a volume.
constexpr size_t kMaxNpyDims = 64;

inline int64_t checked_element_count(const std::vector<int64_t>& shape, const std::string& where) {
  int64_t count = 1;
  for (int64_t d : shape) {
    if (d < 0) fail(where, ": negative dimension in shape ", shape_string(shape));
    if (d != 0 && count > std::numeric_limits<int64_t>::max() / d) {
      fail(where, ": shape ", shape_string(shape), " has too many elements");
    }
    count *= d;
  }
  return count;
}

inline float half_to_float(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000u) << 16;
  const uint32_t exponent = (h >> 10) & 0x1fu;
  const uint32_t mantissa = h & 0x3ffu;
  if (exponent == 0) {
    const float magnitude = std::ldexp(static_cast<float>(mantissa), -24);
    return sign ? -magnitude : magnitude;
  }
  uint32_t bits = exponent == 0x1f ? (sign | 0x7f800000u | (mantissa << 13))
                                   : (sign | ((exponent + 112u) << 23) | (mantissa << 13));
  float out;
  std::memcpy(&out, &bits, sizeof out);
  return out;
}

template <class Src>
Src load_le(const unsigned char* p) {
  Src v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// Float-to-integer casts of NaN or out-of-range values are undefined behaviour, so they are
// refused rather than silently producing garbage indices or labels.
template <class T, class Src>
T convert_value(Src v, const std::string& where, DType from) {
  if constexpr (std::is_integral_v<T> && std::is_floating_point_v<Src>) {
    const double x = static_cast<double>(v);
    const double upper = std::ldexp(1.0, std::numeric_limits<T>::digits);
    const bool in_range = std::is_signed_v<T> ? (x >= -upper && x < upper) : (x > -1.0 && x < upper);
    if (!std::isfinite(x) || !in_range) {
      fail(where, ": ", dtype_name(from), " value ", x, " does not fit the requested integer type");
    }
  }
  return static_cast<T>(v);
}

template <class T, class Src>
void convert_all(const unsigned char* p, std::vector<T>& out, const std::string& where, DType from) {
  for (size_t i = 0; i < out.size(); ++i) {
    out[i] = convert_value<T>(load_le<Src>(p + i * sizeof(Src)), where, from);
  }
}

// Reorders a column-major buffer into row-major, walking the C order with an odometer while
// tracking the matching Fortran offset incrementally.
template <class T>
std::vector<T> fortran_to_c(const std::vector<T>& in, const std::vector<int64_t>& shape) {
  std::vector<T> out(in.size());
  if (in.empty()) return out;
  const size_t ndim = shape.size();
  std::vector<int64_t> f_stride(ndim), index(ndim, 0);
  int64_t stride = 1;
  for (size_t k = 0; k < ndim; ++k) {
    f_stride[k] = stride;
    stride *= shape[k];
  }
  int64_t f_offset = 0;
  for (size_t c = 0; c < out.size(); ++c) {
    out[c] = in[static_cast<size_t>(f_offset)];
    for (size_t k = ndim; k-- > 0;) {
      f_offset += f_stride[k];
      if (++index[k] < shape[k]) break;
      f_offset -= f_stride[k] * shape[k];
      index[k] = 0;
    }
  }
  return out;
}

// The values of an array stored at `p` (`n` bytes, little-endian) converted to T, in C order whatever the
// storage order: NpyArray::to_vector, and readers that convert straight from a file's bytes.
template <class T>
std::vector<T> npy_values(DType dtype, const std::vector<int64_t>& shape, bool fortran_order, const unsigned char* p,
                          size_t n, const std::string& where) {
  static_assert(std::is_arithmetic_v<T> && !std::is_same_v<T, bool>,
                "to_vector needs a numeric T (use uint8_t for bool arrays)");
  const int64_t count = checked_element_count(shape, where);
  const size_t item = dtype_size(dtype);
  if (n / item < static_cast<uint64_t>(count)) {
    fail(where, ": holds ", n, " bytes but shape ", shape_string(shape), " of ", dtype_name(dtype), " needs ",
         static_cast<uint64_t>(count) * item);
  }
  std::vector<T> out(static_cast<size_t>(count));
  switch (dtype) {
    case DType::F32: convert_all<T, float>(p, out, where, dtype); break;
    case DType::F64: convert_all<T, double>(p, out, where, dtype); break;
    case DType::I8: convert_all<T, int8_t>(p, out, where, dtype); break;
    case DType::I16: convert_all<T, int16_t>(p, out, where, dtype); break;
    case DType::I32: convert_all<T, int32_t>(p, out, where, dtype); break;
    case DType::I64: convert_all<T, int64_t>(p, out, where, dtype); break;
    case DType::U8: convert_all<T, uint8_t>(p, out, where, dtype); break;
    case DType::U16: convert_all<T, uint16_t>(p, out, where, dtype); break;
    case DType::U32: convert_all<T, uint32_t>(p, out, where, dtype); break;
    case DType::U64: convert_all<T, uint64_t>(p, out, where, dtype); break;
    case DType::F16:
      for (size_t i = 0; i < out.size(); ++i) {
        const float v = half_to_float(load_le<uint16_t>(p + 2 * i));
        out[i] = convert_value<T>(v, where, dtype);
      }
      break;
    case DType::Bool:
      // Any nonzero byte is true, as in numpy; the raw byte is not trusted to be 0 or 1.
      for (size_t i = 0; i < out.size(); ++i) out[i] = static_cast<T>(p[i] != 0 ? 1 : 0);
      break;
  }
  if (fortran_order && shape.size() > 1) return fortran_to_c(out, shape);
  return out;
}

}  // namespace detail

}  // namespace volfeat
