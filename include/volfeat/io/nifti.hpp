#pragma once
// NIfTI-1/NIfTI-2 (.nii, .nii.gz) reading and writing on top of Debian's nifti C library (libnifti2).
//
// Link: the volfeat_nifti CMake target (libnifti2 + zlib; headers in <prefix>/include/nifti).
//
// What the library does for us: header decoding and byte swapping, the qform quaternion and sform
// to (i,j,k)->world matrices, orientation codes, and header encoding (quaternion fit) on write.
//
// What we deliberately do not leave to it, because it "fixes" inputs silently or only complains on
// stderr (checked against libnifti2 3.0.1):
//   * pixdim <= 0 is replaced by 1, a missing/garbled magic is read as ANALYZE 7.5, scl_slope NaN
//     becomes 0 — so the raw header bytes are checked first;
//   * nifti_image_load() replaces NaN/Inf floats by 0 without telling anyone, and accepts a .nii.gz
//     whose gzip trailer is missing — so voxel data is streamed here with zlib, which also lets us
//     convert chunk by chunk instead of holding the raw and the converted copy at once;
//   * nifti_image_write() returns void and ignores write errors — so files are written by our code too
//     (io/nifti_write.hpp).
// Every failure is one volfeat::Error line: "<path>: <problem>".
//
// The header (NiftiInfo, read_nifti_header) is io/nifti_header.hpp, writing io/nifti_write.hpp, what both
// share io/nifti_format.hpp; this file reads the voxels.
#include <nifti2_io.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <optional>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#include "volfeat/core/error.hpp"
#include "volfeat/core/host_memory.hpp"
#include "volfeat/io/gz.hpp"
#include "volfeat/io/mapped_file.hpp"
#include "volfeat/io/nifti_format.hpp"
#include "volfeat/io/nifti_header.hpp"
#include "volfeat/io/nifti_write.hpp"
#include "volfeat/io/volume.hpp"

namespace volfeat {

struct ReadOptions {
  // Replace NaN and +-Inf voxels by this value instead of failing (CT exports occasionally carry
  // NaN outside the reconstruction circle).
  std::optional<float> nan_to;
};

// Values as float with scl_slope/scl_inter applied; NaN/Inf voxels are an error unless options.nan_to.
inline Volume<float> read_nifti_float(const std::string& path, const ReadOptions& options = {});
// Integer labels (any datatype, after scaling); a non-integer or out-of-int32 voxel is an error.
inline Volume<int32_t> read_nifti_labels(const std::string& path);

namespace detail::nifti {

inline std::string voxel_text(const Grid& g, int64_t index) {
  const int64_t w = index % g.dims[2], h = (index / g.dims[2]) % g.dims[1], d = index / (g.dims[2] * g.dims[1]);
  std::ostringstream os;
  os << "(d,h,w)=(" << d << ',' << h << ',' << w << ") (NIfTI [i,j,k]=[" << w << ',' << h << ',' << d << "])";
  return os.str();
}

// The fast path of stream_voxels for a .nii.gz: the file mapped, all of it inflated in one pass by
// libdeflate (io/gz.hpp), the voxels handed to the sink in one call. False when the stream is anything
// but intact and long enough: the zlib path then reads it again and names the problem (truncated where,
// corrupt how) as it always has. 216x512x512 int16 (64 MB gzipped) on this project's Zen 3 VM: see
// bench/README.md ("prepare").
template <class Sink>
bool stream_voxels_whole(const OpenHeader& oh, Sink& sink) {
  const NiftiInfo& info = oh.info;
  const int64_t nvox = info.grid.voxels();
  const size_t need = size_t(info.vox_offset + nvox * info.bytes_per_voxel);
  GzBytes raw;
  {
    const MappedFile file(info.path);
    std::string error;
    if (!gunzip(file.data(), file.size(), need, raw, error) || raw.size < need) return false;
  }
  dispatch_datatype(info.datatype, [&](auto tag) {
    using T = decltype(tag);
    unsigned char* at = raw.data() + info.vox_offset;
    // vox_offset is a multiple of 16 in every writer we know; an odd one gets an aligned copy.
    HostArray<T> aligned;
    T* values = reinterpret_cast<T*>(at);
    if (reinterpret_cast<uintptr_t>(at) % alignof(T) != 0) {
      aligned = HostArray<T>(size_t(nvox));
      std::memcpy(aligned.data(), at, size_t(nvox) * sizeof(T));
      values = aligned.data();
    }
    if (oh.swap && sizeof(T) > 1) byteswap_in_place(values, nvox);
    sink(static_cast<const T*>(values), int64_t{0}, nvox);
  });
  return true;
}

// Streams the voxel data of an opened header chunk by chunk, in host byte order, calling
// sink(const T* values, int64_t first_index, int64_t count) with T the on-disk C++ type.
template <class Sink>
void stream_voxels(const OpenHeader& oh, Sink&& sink) {
  const NiftiInfo& info = oh.info;
  const std::string& path = info.path;
  const int64_t nvox = info.grid.voxels();
  const int64_t data_bytes = nvox * info.bytes_per_voxel;
  check_data_extent(info);  // again: the file may have changed since the header was read
  if (info.gzipped && kHaveLibdeflate && stream_voxels_whole(oh, sink)) return;
  GzFile f(path, "rb");
  if (!f) fail_open(path, "cannot open", errno);
  gzbuffer(f.get(), 1 << 18);
  // Skip to the data by reading, so a gzip stream that ends before vox_offset is named as such
  // (gzseek would quietly position past the end).
  {
    char skip[4096];
    int64_t left = info.vox_offset;
    while (left > 0) {
      const int got = gzread(f.get(), skip, static_cast<unsigned>(std::min<int64_t>(left, sizeof skip)));
      if (got < 0) fail_file(path, "corrupt gzip data before the voxel data (", f.error_text(), ")");
      if (got == 0)
        fail_file(path, "invalid header: vox_offset ", info.vox_offset, " lies past the end of the ",
                  info.gzipped ? "decompressed data (" : "file (", info.vox_offset - left, " bytes)");
      left -= got;
    }
  }

  dispatch_datatype(info.datatype, [&](auto tag) {
    using T = decltype(tag);
    constexpr int64_t kChunk = int64_t{1} << 18;  // voxels; bounded so a huge volume is never held twice
    std::vector<T> buf(static_cast<size_t>(std::min(kChunk, nvox)));
    for (int64_t first = 0; first < nvox;) {
      const int64_t n = std::min(kChunk, nvox - first);
      const auto want = static_cast<unsigned>(n * static_cast<int64_t>(sizeof(T)));
      const int got = gzread(f.get(), buf.data(), want);
      if (got < 0) fail_file(path, "corrupt gzip data in the voxel data (", f.error_text(), ")");
      if (static_cast<unsigned>(got) != want)
        fail_file(path, "truncated: voxel data ends after ", first * static_cast<int64_t>(sizeof(T)) + got, " of ",
                  data_bytes, " bytes", info.gzipped ? " (after decompression)" : "");
      if (oh.swap && sizeof(T) > 1) byteswap_in_place(buf.data(), n);
      sink(static_cast<const T*>(buf.data()), first, n);
      first += n;
    }
  });

  if (info.gzipped) {
    // zlib verifies the CRC and length only when it reaches the gzip trailer, so read on to the end:
    // a cut-off or corrupted .nii.gz can otherwise deliver every voxel and still be damaged.
    char sink_buf[4096];
    int got = 0;
    while ((got = gzread(f.get(), sink_buf, sizeof sink_buf)) > 0) {
    }
    int errnum = Z_OK;
    gzerror(f.get(), &errnum);
    if (got < 0 || errnum != Z_OK)
      fail_file(path, "damaged gzip stream after the voxel data (", f.error_text(), "); the file is truncated or corrupt");
  }
}

}  // namespace detail::nifti

inline Volume<float> read_nifti_float(const std::string& path, const ReadOptions& options) {
  using namespace detail::nifti;
  const OpenHeader oh = open_header(path);
  Volume<float> vol;
  vol.grid = oh.info.grid;
  vol.data = huge_page_vector<float>(static_cast<size_t>(vol.grid.voxels()));
  const bool scaled = oh.info.scaled;
  const double slope = oh.info.scl_slope, inter = oh.info.scl_inter;
  int64_t bad = 0, first_bad = std::numeric_limits<int64_t>::max();
  float* out = vol.data.data();
  const float replacement = options.nan_to ? *options.nan_to : std::numeric_limits<float>::quiet_NaN();
  stream_voxels(oh, [&](const auto* src, int64_t first, int64_t n) {
    // The whole volume comes in one call on the libdeflate path: converted on every thread.
    int64_t chunk_bad = 0, chunk_first = std::numeric_limits<int64_t>::max();
#pragma omp parallel for schedule(static) reduction(+ : chunk_bad) reduction(min : chunk_first) if (n > (int64_t{1} << 20))
    for (int64_t i = 0; i < n; ++i) {
      double v = static_cast<double>(src[i]);
      if (scaled) v = v * slope + inter;
      float x;
      if (std::fabs(v) <= FLT_MAX) {
        x = static_cast<float>(v);
      } else {  // NaN, Inf, or a finite double that overflows float
        ++chunk_bad;
        chunk_first = std::min(chunk_first, first + i);
        x = replacement;
      }
      out[first + i] = x;
    }
    bad += chunk_bad;
    first_bad = std::min(first_bad, chunk_first);
  });
  if (bad && !options.nan_to)
    fail_file(path, bad, " voxel", bad == 1 ? " is" : "s are", " NaN or infinite (first at ",
              voxel_text(vol.grid, first_bad), "); --nan-to VALUE replaces them");
  return vol;
}

inline Volume<int32_t> read_nifti_labels(const std::string& path) {
  using namespace detail::nifti;
  const OpenHeader oh = open_header(path);
  Volume<int32_t> vol;
  vol.grid = oh.info.grid;
  vol.data = huge_page_vector<int32_t>(static_cast<size_t>(vol.grid.voxels()));
  const bool scaled = oh.info.scaled;
  const double slope = oh.info.scl_slope, inter = oh.info.scl_inter;
  int32_t* out = vol.data.data();
  stream_voxels(oh, [&](const auto* src, int64_t first, int64_t n) {
    using S = std::remove_cv_t<std::remove_pointer_t<decltype(src)>>;
    // Unscaled integers that int32 holds (label maps are mostly uint8 or int16) need no checks: a
    // plain widening loop. The checked loop below, in double, took 0.22 CPU s for a 216x512x512 uint8
    // map (AMD EPYC Zen 4, perf).
    if constexpr (std::is_integral_v<S> && (sizeof(S) < 4 || std::is_same_v<S, int32_t>)) {
      if (!scaled || (slope == 1.0 && inter == 0.0)) {
        std::copy(src, src + n, out + first);
        return;
      }
    }
    for (int64_t i = 0; i < n; ++i) {
      double v = static_cast<double>(src[i]);
      if (scaled) v = v * slope + inter;
      if (!(v == std::floor(v)))  // also catches NaN and Inf
        fail_file(path, "not a label map: voxel ", voxel_text(vol.grid, first + i), " is ", v, ", not an integer");
      if (v < std::numeric_limits<int32_t>::min() || v > std::numeric_limits<int32_t>::max())
        fail_file(path, "not a label map: voxel ", voxel_text(vol.grid, first + i), " is ", v,
                  ", outside the int32 label range");
      out[first + i] = static_cast<int32_t>(v);
    }
  });
  return vol;
}

}  // namespace volfeat
