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
//   * nifti_image_write() returns void and ignores write errors — so files are written here too.
// Every failure is one volfeat::Error line: "<path>: <problem>".
#include <nifti2_io.h>
#include <zlib.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <optional>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#include "volfeat/core/atomic_file.hpp"
#include "volfeat/core/error.hpp"
#include "volfeat/core/host_memory.hpp"
#include "volfeat/io/gz.hpp"
#include "volfeat/io/mapped_file.hpp"
#include "volfeat/io/volume.hpp"

namespace volfeat {

struct ReadOptions {
  // Replace NaN and +-Inf voxels by this value instead of failing (CT exports occasionally carry
  // NaN outside the reconstruction circle).
  std::optional<float> nan_to;
};

struct NiftiInfo {
  std::string path;
  int version = 1;                 // 1 or 2 (NIfTI-1 / NIfTI-2)
  bool gzipped = false;            // content is gzip-compressed
  bool big_endian = false;         // byte order on disk
  Grid grid;                       // dims and spacing in (D,H,W), affine in (i,j,k)
  int datatype = 0;                // NIfTI DT_* code
  std::string datatype_name;       // numpy-style: "int16", "float32", ...
  int bytes_per_voxel = 0;
  double scl_slope = 0.0;          // as stored; 0 or non-finite means "no scaling"
  double scl_inter = 0.0;
  bool scaled = false;             // whether value = raw * scl_slope + scl_inter is applied
  int qform_code = 0;
  int sform_code = 0;
  std::string affine_source;       // "sform", "qform" or "pixdim" (neither code set)
  std::string orientation;         // direction each of (i,j,k) points to, e.g. "RAS", "LPS"
  int64_t vox_offset = 0;          // byte offset of the voxel data (in the decompressed stream)
};

// Header only (no voxel data is read), validated exactly as the readers below validate it.
inline NiftiInfo read_nifti_header(const std::string& path);
// Values as float with scl_slope/scl_inter applied; NaN/Inf voxels are an error unless options.nan_to.
inline Volume<float> read_nifti_float(const std::string& path, const ReadOptions& options = {});
// Integer labels (any datatype, after scaling); a non-integer or out-of-int32 voxel is an error.
inline Volume<int32_t> read_nifti_labels(const std::string& path);
// Written atomically (temporary file + rename) as float32; gzip-compressed when path ends in .gz.
inline void write_nifti(const std::string& path, const Volume<float>& volume);
// Stored as uint8 when every label is in 0..255, else int16 when it fits, else int32.
inline void write_nifti(const std::string& path, const Volume<int32_t>& labels);

// ------------------------------------------------------------------------------------------------
namespace detail::nifti {

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

inline std::string voxel_text(const Grid& g, int64_t index) {
  const int64_t w = index % g.dims[2], h = (index / g.dims[2]) % g.dims[1], d = index / (g.dims[2] * g.dims[1]);
  std::ostringstream os;
  os << "(d,h,w)=(" << d << ',' << h << ',' << w << ") (NIfTI [i,j,k]=[" << w << ',' << h << ',' << d << "])";
  return os.str();
}

inline char axis_letter(int code) {
  switch (code) {
    case NIFTI_L2R: return 'R';
    case NIFTI_R2L: return 'L';
    case NIFTI_P2A: return 'A';
    case NIFTI_A2P: return 'P';
    case NIFTI_I2S: return 'S';
    case NIFTI_S2I: return 'I';
    default: return '?';
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

struct OpenHeader {
  NiftiInfo info;
  bool swap = false;  // data (like the header) is in the other byte order
};

// The header fields we check ourselves before the library gets to "fix" them, in host order.
struct RawFields {
  int version = 0;
  bool swap = false;
  int64_t dim[8] = {};
  double pixdim[8] = {};
  int datatype = 0;
  double scl_slope = 0, scl_inter = 0;
  double vox_offset = 0;  // a float in NIfTI-1, an int64 in NIfTI-2
  int qform_code = 0, sform_code = 0;
};

inline RawFields read_raw_fields(const std::string& path, bool& gzipped) {
  GzFile f(path, "rb");
  if (!f) fail_open(path, "cannot open", errno);
  unsigned char buf[sizeof(nifti_2_header)] = {};
  const int got = gzread(f.get(), buf, sizeof buf);
  if (got < 0) fail_file(path, "corrupt gzip data (", f.error_text(), ")");
  gzipped = gzdirect(f.get()) == 0;
  if (got < 4) fail_file(path, "not a NIfTI file: only ", got, " bytes");

  int32_t sizeof_hdr = 0;
  std::memcpy(&sizeof_hdr, buf, 4);
  int32_t swapped = sizeof_hdr;
  byteswap_in_place(&swapped, 1);
  RawFields r;
  if (sizeof_hdr == 348 || sizeof_hdr == 540) {
    r.swap = false;
  } else if (swapped == 348 || swapped == 540) {
    r.swap = true;
    sizeof_hdr = swapped;
  } else {
    fail_file(path, "not a NIfTI file: header size field is ", sizeof_hdr, " (expected 348 or 540)");
  }
  if (got < sizeof_hdr)
    fail_file(path, "truncated header: ", got, " of ", sizeof_hdr, " bytes", gzipped ? " (after decompression)" : "");

  if (sizeof_hdr == 348) {
    nifti_1_header h;
    std::memcpy(&h, buf, sizeof h);
    if (std::memcmp(h.magic, "ni1", 4) == 0)
      fail_file(path, "two-file NIfTI (.hdr/.img pair) is not supported; convert it to a single .nii");
    if (std::memcmp(h.magic, "n+1", 4) != 0)
      fail_file(path, "not a NIfTI-1 file: bad magic (expected \"n+1\"; ANALYZE 7.5 is not supported)");
    if (r.swap) nifti_swap_as_nifti1(&h);
    r.version = 1;
    for (int i = 0; i < 8; ++i) r.dim[i] = h.dim[i], r.pixdim[i] = h.pixdim[i];
    r.datatype = h.datatype;
    r.scl_slope = h.scl_slope, r.scl_inter = h.scl_inter;
    r.vox_offset = h.vox_offset;
    r.qform_code = h.qform_code, r.sform_code = h.sform_code;
  } else {
    nifti_2_header h;
    std::memcpy(&h, buf, sizeof h);
    if (std::memcmp(h.magic, "ni2", 4) == 0)
      fail_file(path, "two-file NIfTI (.hdr/.img pair) is not supported; convert it to a single .nii");
    if (std::memcmp(h.magic, "n+2", 4) != 0) fail_file(path, "not a NIfTI-2 file: bad magic (expected \"n+2\")");
    // Bytes 4-7 of the magic detect text-mode transfer damage; the nifti C library itself writes
    // zeros there, so zeros are accepted too (as nibabel does).
    if (std::memcmp(h.magic + 4, "\r\n\032\n", 4) != 0 && std::memcmp(h.magic + 4, "\0\0\0\0", 4) != 0)
      fail_file(path, "damaged NIfTI-2 magic (line endings converted by a text-mode transfer?)");
    if (r.swap) nifti_swap_as_nifti2(&h);
    r.version = 2;
    for (int i = 0; i < 8; ++i) r.dim[i] = h.dim[i], r.pixdim[i] = h.pixdim[i];
    r.datatype = h.datatype;
    r.scl_slope = h.scl_slope, r.scl_inter = h.scl_inter;
    r.vox_offset = static_cast<double>(h.vox_offset);
    r.qform_code = h.qform_code, r.sform_code = h.sform_code;
  }
  return r;
}

// nibabel's fallback when neither qform nor sform is set: voxel centre of the volume at the origin,
// x flipped (the old ANALYZE radiological convention).
inline std::array<std::array<double, 4>, 4> base_affine(const int64_t dim[8], const double pixdim[8]) {
  std::array<std::array<double, 4>, 4> a{};
  const double zoom[3] = {-pixdim[1], pixdim[2], pixdim[3]};
  for (int r = 0; r < 3; ++r) {
    a[r][r] = zoom[r];
    a[r][3] = -(static_cast<double>(dim[r + 1]) - 1.0) / 2.0 * zoom[r];
  }
  a[3][3] = 1.0;
  return a;
}

// Whether the file can hold the voxel data its header declares, checked before anything is allocated
// for it: exactly for a plain file; for gzip, deflate's ~1032:1 maximum ratio bounds what a file of
// this size can decompress to, so a small file claiming gigabytes is refused without inflating it.
inline void check_data_extent(const NiftiInfo& info) {
  const std::string& path = info.path;
  std::error_code ec;
  const auto size = static_cast<int64_t>(std::filesystem::file_size(path, ec));
  if (ec) fail_file(path, "cannot stat: ", ec.message());
  const int64_t nvox = info.grid.voxels();
  const int64_t data_bytes = nvox * info.bytes_per_voxel;
  if (!info.gzipped) {
    if (info.vox_offset > size)
      fail_file(path, "invalid header: vox_offset ", info.vox_offset, " lies past the end of the file (", size,
                " bytes)");
    if (size < info.vox_offset + data_bytes)
      fail_file(path, "truncated: file has ", size, " bytes but the header needs ", info.vox_offset + data_bytes,
                " (", info.vox_offset, "-byte offset + ", nvox, " voxels x ", info.bytes_per_voxel, " bytes)");
    return;
  }
  constexpr int64_t kMaxDeflateRatio = 1032;
  const int64_t most = size * kMaxDeflateRatio + 4096;
  if (info.vox_offset + data_bytes > most)
    fail_file(path, "truncated or corrupt header: the header needs ", info.vox_offset + data_bytes, " bytes (",
              info.vox_offset, "-byte offset + ", nvox, " voxels x ", info.bytes_per_voxel, " bytes), more than a ",
              size, "-byte gzip file can hold");
}

inline OpenHeader open_header(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::exists(path, ec)) fail_as<MissingFileError>(path, ": no such file");
  if (!fs::is_regular_file(path, ec)) fail_file(path, "not a regular file");
  // The library picks a reader by extension (and would silently try "x.nii.gz" for a missing "x.nii").
  if (!has_nifti_extension(path)) fail_file(path, "not a NIfTI file name: expected a .nii or .nii.gz extension");

  OpenHeader oh;
  NiftiInfo& info = oh.info;
  info.path = path;
  const RawFields raw = read_raw_fields(path, info.gzipped);
  oh.swap = raw.swap;
  info.version = raw.version;
  if (info.gzipped && !ends_with(path, ".gz"))
    fail_file(path, "file is gzip-compressed but named .nii; rename it to .nii.gz");

  // --- dimensions: 3D, or 4D..7D whose extra axes are all 1 ---
  const int64_t ndim = raw.dim[0];
  if (ndim < 1 || ndim > 7) fail_file(path, "invalid header: dim[0] is ", ndim, " (expected 3)");
  if (ndim < 3) fail_file(path, "is ", ndim, "D (dim[0]=", ndim, "); expected a 3D volume");
  static const char* const kAxis[8] = {"", "ni", "nj", "nk", "nt", "nu", "nv", "nw"};
  for (int i = 1; i <= ndim; ++i)
    if (raw.dim[i] < 1) fail_file(path, "invalid header: dimension ", kAxis[i], " is ", raw.dim[i], " (must be >= 1)");
  for (int i = 4; i <= ndim; ++i)
    if (raw.dim[i] != 1)
      fail_file(path, "is ", ndim, "D with ", kAxis[i], "=", raw.dim[i], "; expected a single 3D volume (", kAxis[i],
                " must be 1)");
  int64_t nvox = 1;
  for (int i = 1; i <= 3; ++i) {
    if (raw.dim[i] > kMaxVoxels / nvox)
      fail_file(path, "invalid header: ", raw.dim[1], "x", raw.dim[2], "x", raw.dim[3],
                " voxels exceeds the 2^34 limit (corrupt header?)");
    nvox *= raw.dim[i];
  }
  if (nvox >= kMaxVoxels)
    fail_file(path, "invalid header: ", raw.dim[1], "x", raw.dim[2], "x", raw.dim[3],
              " voxels exceeds the 2^34 limit (corrupt header?)");

  // --- spacing ---
  for (int i = 1; i <= 3; ++i)
    if (!std::isfinite(raw.pixdim[i]) || raw.pixdim[i] <= 0)
      fail_file(path, "invalid voxel spacing: pixdim[", i, "] (", "ijk"[i - 1], " axis) is ", raw.pixdim[i],
                " mm (must be finite and > 0)");

  // --- datatype ---
  const char* dt_name = datatype_name(raw.datatype);
  if (!dt_name)
    fail_file(path, "unsupported datatype ", nifti_datatype_string(raw.datatype), " (code ", raw.datatype,
              "); supported: uint8 int8 int16 uint16 int32 uint32 int64 uint64 float32 float64");
  info.datatype = raw.datatype;
  info.datatype_name = dt_name;
  // bitpix is redundant with the datatype and ignored, as nibabel does.
  int nbyper = 0, swapsize = 0;
  nifti_datatype_sizes(raw.datatype, &nbyper, &swapsize);
  info.bytes_per_voxel = nbyper;

  // --- scaling, nibabel's rules: slope 0 or non-finite means none; a valid slope needs a valid intercept ---
  info.scl_slope = raw.scl_slope;
  info.scl_inter = raw.scl_inter;
  // NaN (like 0) is how some writers say "unset"; an infinite slope is damage, not a convention.
  if (std::isinf(raw.scl_slope))
    fail_file(path, "invalid scaling: scl_slope is ", raw.scl_slope, " (must be finite; 0 or NaN means no scaling)");
  info.scaled = std::isfinite(raw.scl_slope) && raw.scl_slope != 0.0;
  if (info.scaled && !std::isfinite(raw.scl_inter))
    fail_file(path, "invalid scaling: scl_slope is ", raw.scl_slope, " but scl_inter is ", raw.scl_inter);

  // --- data offset: the library casts the NIfTI-1 float to int and quietly moves an offset inside the
  // header to 352, so the raw value is checked here. 0 is the ANALYZE-era "right after the header".
  const int64_t header_bytes = raw.version == 1 ? 348 : 540;
  if (!std::isfinite(raw.vox_offset) || raw.vox_offset < 0 || raw.vox_offset > 9.0e15 ||
      raw.vox_offset != std::floor(raw.vox_offset))
    fail_file(path, "invalid header: vox_offset is ", raw.vox_offset, " (expected a whole number of bytes >= ",
              header_bytes, ")");
  if (raw.vox_offset > 0 && raw.vox_offset < header_bytes)
    fail_file(path, "invalid header: vox_offset ", raw.vox_offset, " lies inside the ", header_bytes, "-byte header");

  // --- let the library decode the rest (orientation, byte order, data offset) ---
  nifti_set_debug_level(0);  // its default prints "** ERROR" lines for problems we report ourselves
  NimPtr nim(nifti_image_read(path.c_str(), 0));
  if (!nim.p) fail_file(path, "the nifti library could not read the header (corrupt or unsupported file)");
  info.big_endian = nim.p->byteorder == 2;  // MSB_FIRST
  info.vox_offset = nim.p->iname_offset;
  if (info.vox_offset < header_bytes)
    fail_file(path, "invalid header: vox_offset ", info.vox_offset, " lies inside the ", header_bytes, "-byte header");
  info.qform_code = raw.qform_code;
  info.sform_code = raw.sform_code;

  Grid& g = info.grid;
  g.dims = {raw.dim[3], raw.dim[2], raw.dim[1]};
  g.spacing = {raw.pixdim[3], raw.pixdim[2], raw.pixdim[1]};
  if (raw.sform_code > 0) {
    info.affine_source = "sform";
    for (int r = 0; r < 4; ++r)
      for (int c = 0; c < 4; ++c) g.affine[r][c] = nim.p->sto_xyz.m[r][c];
  } else if (raw.qform_code > 0) {
    info.affine_source = "qform";
    for (int r = 0; r < 4; ++r)
      for (int c = 0; c < 4; ++c) g.affine[r][c] = nim.p->qto_xyz.m[r][c];
  } else {
    info.affine_source = "pixdim";
    g.affine = base_affine(raw.dim, raw.pixdim);
  }
  bool finite = true;
  for (const auto& row : g.affine)
    for (double v : row) finite = finite && std::isfinite(v);
  const auto& m = g.affine;
  const double det = m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) -
                     m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0]) +
                     m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]);
  if (!finite || !(std::fabs(det) > 0))
    fail_file(path, "invalid ", info.affine_source, " (code ", raw.sform_code > 0 ? raw.sform_code : raw.qform_code,
              "): the voxel-to-world matrix is ", finite ? "singular" : "not finite", ": ", describe(g));

  nifti_dmat44 dm;
  for (int r = 0; r < 4; ++r)
    for (int c = 0; c < 4; ++c) dm.m[r][c] = g.affine[r][c];
  int ic = 0, jc = 0, kc = 0;
  nifti_dmat44_to_orientation(dm, &ic, &jc, &kc);
  info.orientation = {axis_letter(ic), axis_letter(jc), axis_letter(kc)};
  check_data_extent(info);
  return oh;
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

// "Scanner anatomical" for both qform and sform: what ITK/SimpleITK write, so tools that trust only
// one of the two (or only code 1) still find the geometry.
constexpr int kWriteXformCode = NIFTI_XFORM_SCANNER_ANAT;

inline void check_writable_grid(const std::string& path, const Grid& g, size_t data_size) {
  if (!has_nifti_extension(path)) fail_file(path, "cannot write: expected a .nii or .nii.gz extension");
  for (int i = 0; i < 3; ++i)
    if (g.dims[i] < 1) fail_file(path, "cannot write: grid ", describe(g), " has an empty axis");
  if (g.dims[0] > kMaxVoxels / g.dims[1] / g.dims[2] || g.voxels() >= kMaxVoxels)
    fail_file(path, "cannot write: ", describe(g), " exceeds the 2^34 voxel limit");
  if (static_cast<int64_t>(data_size) != g.voxels())
    fail_file(path, "cannot write: volume holds ", data_size, " values but its grid ", describe(g), " needs ",
              g.voxels());
  for (double s : g.spacing)
    if (!std::isfinite(s) || s <= 0) fail_file(path, "cannot write: invalid spacing in ", describe(g));
  for (const auto& row : g.affine)
    for (double v : row)
      if (!std::isfinite(v)) fail_file(path, "cannot write: non-finite affine in ", describe(g));
}

// Writes header + data to a temporary file beside `path`, then renames it over `path`, so a reader
// never sees a half-written volume and a failed write leaves any previous file intact. (Not the
// library's nifti_image_write: it returns void and drops write errors, e.g. a full disk.)
template <class Disk, class Src>
void write_volume(const std::string& path, const Grid& g, int datatype, const std::vector<Src>& data) {
  check_writable_grid(path, g, data.size());
  const bool gz = ends_with(path, ".gz");

  // NIfTI-1 stores dims as int16; only bigger grids need NIfTI-2 (which older tools may not read).
  const bool v2 = std::max({g.dims[0], g.dims[1], g.dims[2]}) > 32767;
  int64_t dims[8] = {3, g.dims[2], g.dims[1], g.dims[0], 1, 1, 1, 1};
  NimPtr nim(nifti_make_new_nim(dims, datatype, 0));
  if (!nim.p) fail_file(path, "cannot write: the nifti library could not create a header");
  nifti_image* n = nim.p;
  n->nifti_type = v2 ? NIFTI_FTYPE_NIFTI2_1 : NIFTI_FTYPE_NIFTI1_1;
  n->iname_offset = v2 ? 544 : 352;  // header + 4-byte "no extensions" extender
  n->pixdim[1] = n->dx = g.spacing[2];
  n->pixdim[2] = n->dy = g.spacing[1];
  n->pixdim[3] = n->dz = g.spacing[0];
  n->xyz_units = NIFTI_UNITS_MM;
  n->time_units = NIFTI_UNITS_SEC;
  n->scl_slope = 1.0;
  n->scl_inter = 0.0;
  std::snprintf(n->descrip, sizeof n->descrip, "volfeat");
  nifti_dmat44 m;
  for (int r = 0; r < 4; ++r)
    for (int c = 0; c < 4; ++c) m.m[r][c] = g.affine[r][c];
  // The sform carries the exact matrix; the qform is the library's best rigid fit of it, written too
  // because ITK-based readers may prefer the qform.
  n->sform_code = kWriteXformCode;
  n->sto_xyz = m;
  n->sto_ijk = nifti_dmat44_inverse(m);
  double dx = 0, dy = 0, dz = 0;
  nifti_dmat44_to_quatern(m, &n->quatern_b, &n->quatern_c, &n->quatern_d, &n->qoffset_x, &n->qoffset_y, &n->qoffset_z,
                          &dx, &dy, &dz, &n->qfac);
  n->pixdim[0] = n->qfac;
  n->qform_code = kWriteXformCode;

  std::vector<unsigned char> header;
  if (v2) {
    nifti_2_header h;
    if (nifti_convert_nim2n2hdr(n, &h) != 0) fail_file(path, "cannot write: the nifti library could not encode the header");
    std::memcpy(h.magic, "n+2\0\r\n\032\n", 8);  // the library leaves the spec's EOL-check bytes zero
    header.assign(reinterpret_cast<unsigned char*>(&h), reinterpret_cast<unsigned char*>(&h) + sizeof h);
  } else {
    nifti_1_header h;
    if (nifti_convert_nim2n1hdr(n, &h) != 0) fail_file(path, "cannot write: the nifti library could not encode the header");
    header.assign(reinterpret_cast<unsigned char*>(&h), reinterpret_cast<unsigned char*>(&h) + sizeof h);
  }
  header.resize(static_cast<size_t>(n->iname_offset), 0);  // zero extender: no extensions

  // AtomicFile owns the temporary (beside path, removed on any failure, fsynced and renamed on
  // commit); zlib writes into it through its own handle, opened by name.
  AtomicFile file(path);
  // Level 1: for CT volumes it compresses nearly as well as 6 and is several times faster (nibabel's choice too).
  GzFile f(file.temp_path(), gz ? "wb1" : "wbT");
  if (!f) fail_file(path, "cannot open temporary file ", file.temp_path(), ": ", std::strerror(errno));
  auto put = [&](const void* p, size_t bytes) {
    if (bytes && gzwrite(f.get(), p, static_cast<unsigned>(bytes)) != static_cast<int>(bytes))
      fail_file(path, "write failed: ", f.error_text());
  };
  put(header.data(), header.size());
  constexpr size_t kChunk = size_t{1} << 18;
  std::vector<Disk> buf(std::min(kChunk, data.size()));
  for (size_t first = 0; first < data.size(); first += kChunk) {
    const size_t n_vals = std::min(kChunk, data.size() - first);
    for (size_t i = 0; i < n_vals; ++i) buf[i] = static_cast<Disk>(data[first + i]);
    put(buf.data(), n_vals * sizeof(Disk));
  }
  if (f.close() != Z_OK) fail_file(path, "write failed while closing ", file.temp_path(), ": ", std::strerror(errno));
  file.commit();
}

}  // namespace detail::nifti

// ------------------------------------------------------------------------------------------------

inline NiftiInfo read_nifti_header(const std::string& path) { return detail::nifti::open_header(path).info; }

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

inline void write_nifti(const std::string& path, const Volume<float>& volume) {
  detail::nifti::write_volume<float>(path, volume.grid, NIFTI_TYPE_FLOAT32, volume.data);
}

inline void write_nifti(const std::string& path, const Volume<int32_t>& labels) {
  int32_t lo = 0, hi = 0;
  if (!labels.data.empty()) {
    const auto [mn, mx] = std::minmax_element(labels.data.begin(), labels.data.end());
    lo = *mn, hi = *mx;
  }
  if (lo >= 0 && hi <= 255)
    detail::nifti::write_volume<uint8_t>(path, labels.grid, NIFTI_TYPE_UINT8, labels.data);
  else if (lo >= -32768 && hi <= 32767)
    detail::nifti::write_volume<int16_t>(path, labels.grid, NIFTI_TYPE_INT16, labels.data);
  else
    detail::nifti::write_volume<int32_t>(path, labels.grid, NIFTI_TYPE_INT32, labels.data);
}

}  // namespace volfeat
