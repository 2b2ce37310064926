#pragma once
// NIfTI writing: atomically (temporary file + rename), header encoded by libnifti2, data by zlib, so a
// write error (a full disk) is an error and never a half-written file.
#include <nifti2_io.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "volfeat/core/atomic_file.hpp"
#include "volfeat/core/error.hpp"
#include "volfeat/io/nifti_format.hpp"
#include "volfeat/io/volume.hpp"

namespace volfeat {

// Written atomically (temporary file + rename) as float32; gzip-compressed when path ends in .gz.
inline void write_nifti(const std::string& path, const Volume<float>& volume);
// Stored as uint8 when every label is in 0..255, else int16 when it fits, else int32.
inline void write_nifti(const std::string& path, const Volume<int32_t>& labels);

namespace detail::nifti {

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
