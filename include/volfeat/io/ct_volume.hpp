#pragma once
// The one way every command reads `--ct PATH`: a directory is a DICOM series (io/dicom_gdcm.hpp),
// anything else a NIfTI file (io/nifti.hpp). Both give HU on a Grid in volfeat's convention (NIfTI
// (i,j,k) affine, RAS), so nothing downstream knows which it was.
//
// DICOM support needs GDCM: the volfeat_dicom CMake target links it and defines
// VOLFEAT_WITH_DICOM=1; the programs' volfeat_dicom_loader target (experiments/CMakeLists.txt) also
// defines VOLFEAT_DICOM_MODULE and reads through GDCM loaded on first use (io/dicom_module.hpp: GDCM's
// dictionaries would otherwise cost every process start 35 ms). Without either a directory is refused
// with a line that says so.
#include <filesystem>
#include <string>
#include <vector>

#include "volfeat/core/error.hpp"
#include "volfeat/core/sha256.hpp"
#include "volfeat/io/dicom_series.hpp"
#include "volfeat/io/nifti.hpp"
#include "volfeat/io/volume.hpp"
#if defined(VOLFEAT_DICOM_MODULE)
#include "volfeat/io/dicom_module.hpp"
#elif defined(VOLFEAT_WITH_DICOM) && VOLFEAT_WITH_DICOM
#include "volfeat/io/dicom_gdcm.hpp"
#endif

namespace volfeat {

struct CtVolume {
  Volume<float> volume;
  std::string format;                     // "nifti" or "dicom"
  // DICOM only: the series and its files in slice order (d = 0 first), transfer syntaxes used.
  std::string series_uid, series_description;
  std::vector<std::string> files;
  std::vector<std::string> transfer_syntaxes;
};

inline constexpr bool kDicomSupport =
#if defined(VOLFEAT_WITH_DICOM) && VOLFEAT_WITH_DICOM
    true;
#else
    false;
#endif

inline bool is_ct_directory(const std::string& path) {
  std::error_code ec;
  return std::filesystem::is_directory(path, ec);
}

namespace detail::ct {
[[noreturn]] inline void no_dicom(const std::string& path) {
  fail(path, ": is a directory (a DICOM series?), but this volfeat was built without DICOM support; install GDCM "
       "(Debian: libgdcm-dev) and rebuild with -DVOLFEAT_WITH_DICOM=ON");
}
}  // namespace detail::ct

// The grid only (no voxel data decoded): NIfTI header, or the tags of every slice file.
inline Grid read_ct_grid(const std::string& path, const std::string& series_uid = "") {
  if (!is_ct_directory(path)) {
    if (!series_uid.empty()) fail("--series ", series_uid, ": ", path, " is a NIfTI file, not a DICOM directory");
    return read_nifti_header(path).grid;
  }
#if defined(VOLFEAT_WITH_DICOM) && VOLFEAT_WITH_DICOM
  return read_dicom_series_header(path, series_uid).grid;
#else
  detail::ct::no_dicom(path);
#endif
}

// HU as float. options.nan_to applies to NIfTI (DICOM pixels are integers, always finite).
inline CtVolume read_ct_volume(const std::string& path, const ReadOptions& options = {},
                               const std::string& series_uid = "") {
  CtVolume ct;
  if (!is_ct_directory(path)) {
    if (!series_uid.empty()) fail("--series ", series_uid, ": ", path, " is a NIfTI file, not a DICOM directory");
    ct.volume = read_nifti_float(path, options);
    ct.format = "nifti";
    return ct;
  }
#if defined(VOLFEAT_WITH_DICOM) && VOLFEAT_WITH_DICOM
  DicomVolume d = read_dicom_series(path, series_uid);
  ct.volume = std::move(d.volume);
  ct.format = "dicom";
  ct.series_uid = d.series.uid;
  ct.series_description = d.series.description;
  for (const DicomSlice& s : d.series.slices) ct.files.push_back(s.file);
  ct.transfer_syntaxes = std::move(d.transfer_syntaxes);
  return ct;
#else
  detail::ct::no_dicom(path);
#endif
}

// The CT's SHA-256 for run.json: the file's, or for a DICOM series that of its files' bytes
// concatenated in slice order (so renaming or shuffling the files does not change it).
inline std::string ct_sha256(const std::string& path, const CtVolume& ct) {
  if (ct.files.empty()) return sha256_file(path);
  Sha256 hasher;
  std::vector<unsigned char> chunk(1 << 16);
  for (const std::string& f : ct.files) {
    std::FILE* fp = std::fopen(f.c_str(), "rb");
    if (!fp) fail(f, ": cannot open for hashing: ", std::strerror(errno));
    size_t got = 0;
    while ((got = std::fread(chunk.data(), 1, chunk.size(), fp)) > 0) hasher.update(chunk.data(), got);
    const bool err = std::ferror(fp);
    std::fclose(fp);
    if (err) fail(f, ": read error while hashing");
  }
  return hasher.hex_digest();
}

// The series of a DICOM directory (for `volfeat info DIR`), without decoding any pixel.
inline std::vector<DicomSeriesSummary> list_ct_series(const std::string& dir) {
#if defined(VOLFEAT_WITH_DICOM) && VOLFEAT_WITH_DICOM
  return dicom_series_in(scan_dicom_directory(dir));
#else
  detail::ct::no_dicom(dir);
#endif
}

// "DICOM series UID ('description'), N slices, <transfer syntaxes>" for progress notes and info.
inline std::string describe_ct_source(const CtVolume& ct) {
  if (ct.format != "dicom") return "NIfTI";
  std::string s = "DICOM series " + ct.series_uid + " ('" + ct.series_description + "'), " +
                  std::to_string(ct.files.size()) + " slices";
#if defined(VOLFEAT_WITH_DICOM) && VOLFEAT_WITH_DICOM
  for (size_t i = 0; i < ct.transfer_syntaxes.size(); ++i) {
    const char* name = dicom_transfer_syntax_name(ct.transfer_syntaxes[i]);
    s += (i ? ", " : "; ") + std::string(name ? name : ct.transfer_syntaxes[i].c_str());
  }
#endif
  return s;
}

}  // namespace volfeat
