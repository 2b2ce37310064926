#pragma once
// A NIfTI-1/NIfTI-2 header, read and checked (io/nifti.hpp says what we check ourselves rather than leave
// to libnifti2): NiftiInfo, and the OpenHeader the voxel readers start from.
#include <nifti2_io.h>

#include <array>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>

#include "volfeat/core/error.hpp"
#include "volfeat/io/nifti_format.hpp"
#include "volfeat/io/volume.hpp"

namespace volfeat {

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


// Header only (no voxel data is read), validated exactly as the readers validate it.
inline NiftiInfo read_nifti_header(const std::string& path);

namespace detail::nifti {

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

  // The fields we check, from either version's struct (same names, wider types in NIfTI-2).
  auto take = [&r](const auto& h, int version) {
    r.version = version;
    for (int i = 0; i < 8; ++i) r.dim[i] = h.dim[i], r.pixdim[i] = h.pixdim[i];
    r.datatype = h.datatype;
    r.scl_slope = h.scl_slope, r.scl_inter = h.scl_inter;
    r.vox_offset = static_cast<double>(h.vox_offset);  // a float in NIfTI-1, an int64 in NIfTI-2
    r.qform_code = h.qform_code, r.sform_code = h.sform_code;
  };
  if (sizeof_hdr == 348) {
    nifti_1_header h;
    std::memcpy(&h, buf, sizeof h);
    if (std::memcmp(h.magic, "ni1", 4) == 0)
      fail_file(path, "two-file NIfTI (.hdr/.img pair) is not supported; convert it to a single .nii");
    if (std::memcmp(h.magic, "n+1", 4) != 0)
      fail_file(path, "not a NIfTI-1 file: bad magic (expected \"n+1\"; ANALYZE 7.5 is not supported)");
    if (r.swap) nifti_swap_as_nifti1(&h);
    take(h, 1);
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
    take(h, 2);
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

}  // namespace detail::nifti

inline NiftiInfo read_nifti_header(const std::string& path) { return detail::nifti::open_header(path).info; }

}  // namespace volfeat
