#pragma once
// Assembling one CT volume from the slice files of a DICOM series: the pure logic, with no DICOM
// library in sight. io/dicom_gdcm.hpp reads the tags of each file with GDCM and decodes the pixels;
// everything decided from the tags (which series, slice order, spacing, geometry, and every refusal)
// lives here, so it is unit-tested on synthetic headers and fuzzed (tests/fuzz/fuzz_dicom_series.cpp).
//
// Geometry (README, "DICOM input"):
//   * slices are ordered by ImagePositionPatient projected on the slice normal n = row x col, the
//     cross product of ImageOrientationPatient's row and column cosines, ascending;
//   * the slice spacing comes from those positions, never from SliceThickness or SpacingBetweenSlices;
//   * DICOM world coordinates are LPS and volfeat's (NIfTI's) RAS, so x and y are negated:
//       affine column i = F row * PixelSpacing[1]     (along a row: increasing column index)
//       affine column j = F col * PixelSpacing[0]     (down a column: increasing row index)
//       affine column k = F (P_last - P_first) / (n - 1)
//       translation     = F P_first,            F = diag(-1, -1, 1)
//     which is the affine a NIfTI file holding the same voxels (pixel (row j, column i) of slice k at
//     [i,j,k]) declares, so the volume is voxel for voxel the one read from that file.
// Every refusal is one volfeat::Error line naming the file (or the directory) and the problem.
#include <algorithm>
#include <array>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "volfeat/core/error.hpp"
#include "volfeat/io/volume.hpp"

namespace volfeat {

// The tags volfeat reads from one file, as text (binary VRs such as Rows rendered as decimal), so that
// this code sees the same input whatever read the file. Empty means absent.
struct DicomSliceTags {
  std::string file;                  // path, for messages
  std::string transfer_syntax;       // (0002,0010) UID
  std::string sop_class;             // (0008,0016)
  std::string modality;              // (0008,0060)
  std::string series_uid;            // (0020,000E)
  std::string series_description;    // (0008,103E)
  std::string image_position;        // (0020,0032) "x\y\z", mm, LPS
  std::string image_orientation;     // (0020,0037) row then column direction cosines, LPS
  std::string pixel_spacing;         // (0028,0030) "between rows\between columns", mm
  std::string rows, columns;         // (0028,0010), (0028,0011)
  std::string number_of_frames;      // (0028,0008)
  std::string samples_per_pixel;     // (0028,0002)
  std::string bits_allocated;        // (0028,0100)
  std::string rescale_slope;         // (0028,1053)
  std::string rescale_intercept;     // (0028,1052)
  std::string gantry_tilt;           // (0018,1120) degrees
  bool has_pixel_data = true;        // (7FE0,0010) present; a header-only scan cannot tell and leaves it true
};

// One slice, parsed and checked.
struct DicomSlice {
  std::string file;
  std::string transfer_syntax;
  std::array<double, 3> position{};     // LPS mm
  std::array<double, 6> orientation{};  // unit row cosine, unit column cosine (normalised)
  std::array<double, 2> pixel_spacing{};
  int64_t rows = 0, columns = 0;
  double slope = 1.0, intercept = 0.0;
  double along_normal = 0.0;            // position . normal
};

struct DicomSeriesSummary {
  std::string uid, description, modality;
  size_t files = 0;
};

// A series ready to read: its slices in volume order (d = 0 first) and the grid they span.
struct DicomSeries {
  std::string uid, description;
  std::vector<DicomSlice> slices;
  Grid grid;
};

// A decoded series (io/dicom_gdcm.hpp's read_dicom_series).
struct DicomVolume {
  Volume<float> volume;                 // HU (RescaleSlope/Intercept applied), (D,H,W) = (slice, row, column)
  DicomSeries series;                   // slices in volume order, with their files
  std::vector<std::string> transfer_syntaxes;  // distinct, in slice order
};

namespace detail::dicom {

// Anything bigger is a corrupt header long before it is a real CT (the NIfTI reader's limit too).
constexpr int64_t kMaxVoxels = int64_t{1} << 34;
// ImageOrientationPatient: unit length and orthogonality, and agreement between slices. DS values
// carry at most 16 characters, far more precise than this.
constexpr double kCosineTol = 1e-3;
constexpr double kSameOrientationTol = 1e-4;
constexpr double kSameSpacingTolMm = 1e-4;
// No coordinate or spacing of a real scan comes near a kilometre; beyond it, products overflow.
constexpr double kMaxMm = 1e6;
// Two slices closer than this along the normal are the same slice twice.
constexpr double kDuplicateTolMm = 1e-3;
// Slice positions: scanners round ImagePositionPatient (often to 0.01 mm or less), so steps may
// differ by that much; a shifted, missing or tilted slice is well beyond it.
constexpr double kStepTolMm = 0.01;
constexpr double kStepTolRelative = 0.01;

inline std::string trim(const std::string& s) {
  const size_t a = s.find_first_not_of(" \t\r\n\0");
  if (a == std::string::npos) return "";
  const size_t b = s.find_last_not_of(" \t\r\n\0");
  return s.substr(a, b - a + 1);
}

inline std::vector<std::string> split_values(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  for (;;) {
    const size_t end = s.find('\\', start);
    out.push_back(trim(s.substr(start, end == std::string::npos ? std::string::npos : end - start)));
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return out;
}

// A decimal string (DS) as a finite double; anything else is an error naming the tag.
inline double parse_number(const std::string& text, const std::string& file, const char* tag) {
  const std::string s = trim(text);
  if (s.empty() || s.size() > 64) fail(file, ": invalid ", tag, " '", text.substr(0, 64), "' (expected a number)");
  char* end = nullptr;
  errno = 0;
  const double v = std::strtod(s.c_str(), &end);
  if (end != s.c_str() + s.size() || errno == ERANGE || !std::isfinite(v))
    fail(file, ": invalid ", tag, " '", s, "' (expected a finite number)");
  return v;
}

template <size_t N>
std::array<double, N> parse_numbers(const std::string& text, const std::string& file, const char* tag) {
  const std::vector<std::string> parts = split_values(text);
  if (parts.size() != N) fail(file, ": invalid ", tag, " '", text.substr(0, 128), "' (expected ", N, " values)");
  std::array<double, N> out{};
  for (size_t i = 0; i < N; ++i) out[i] = parse_number(parts[i], file, tag);
  return out;
}

inline int64_t parse_count(const std::string& text, const std::string& file, const char* tag, int64_t lo, int64_t hi) {
  const double v = parse_number(text, file, tag);
  if (v != std::floor(v) || v < double(lo) || v > double(hi))
    fail(file, ": invalid ", tag, " ", trim(text), " (expected a whole number in ", lo, "..", hi, ")");
  return int64_t(v);
}

inline std::array<double, 3> cross(const std::array<double, 3>& a, const std::array<double, 3>& b) {
  return {a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]};
}
inline double dot(const std::array<double, 3>& a, const std::array<double, 3>& b) {
  return a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
}
inline double norm(const std::array<double, 3>& a) { return std::sqrt(dot(a, a)); }
inline std::array<double, 3> row_cosine(const DicomSlice& s) { return {s.orientation[0], s.orientation[1], s.orientation[2]}; }
inline std::array<double, 3> col_cosine(const DicomSlice& s) { return {s.orientation[3], s.orientation[4], s.orientation[5]}; }

inline std::string mm(double v) {
  std::ostringstream os;
  os.precision(6);
  os << v;
  return os.str();
}

}  // namespace detail::dicom

// The transfer syntaxes volfeat reads (GDCM decodes each of them), with their names. Anything else
// (MPEG/HEVC video, JPIP references, private syntaxes) is refused before any pixel is decoded.
inline const char* dicom_transfer_syntax_name(const std::string& uid) {
  static const std::map<std::string, const char*> kNames = {
      {"1.2.840.10008.1.2", "Implicit VR Little Endian"},
      {"1.2.840.10008.1.2.1", "Explicit VR Little Endian"},
      {"1.2.840.10008.1.2.1.99", "Deflated Explicit VR Little Endian"},
      {"1.2.840.10008.1.2.2", "Explicit VR Big Endian"},
      {"1.2.840.10008.1.2.4.50", "JPEG Baseline (lossy)"},
      {"1.2.840.10008.1.2.4.51", "JPEG Extended (lossy)"},
      {"1.2.840.10008.1.2.4.57", "JPEG Lossless"},
      {"1.2.840.10008.1.2.4.70", "JPEG Lossless SV1"},
      {"1.2.840.10008.1.2.4.80", "JPEG-LS Lossless"},
      {"1.2.840.10008.1.2.4.81", "JPEG-LS Near-Lossless"},
      {"1.2.840.10008.1.2.4.90", "JPEG 2000 Lossless"},
      {"1.2.840.10008.1.2.4.91", "JPEG 2000"},
      {"1.2.840.10008.1.2.5", "RLE Lossless"},
  };
  const auto it = kNames.find(detail::dicom::trim(uid));
  return it == kNames.end() ? nullptr : it->second;
}

// Parses and checks the tags of one file (everything that concerns the file alone).
inline DicomSlice parse_dicom_slice(const DicomSliceTags& t) {
  using namespace detail::dicom;
  const std::string& f = t.file;
  DicomSlice s;
  s.file = f;
  s.transfer_syntax = trim(t.transfer_syntax);
  const bool image = !trim(t.rows).empty() && !trim(t.columns).empty();
  if (!image && !t.has_pixel_data)
    fail(f, ": not an image (SOP class ", trim(t.sop_class).empty() ? "unknown" : trim(t.sop_class),
         ", Modality ", trim(t.modality).empty() ? "unknown" : trim(t.modality),
         ", no pixel data); a CT series directory must hold only the series' image files");
  if (trim(t.modality) != "CT")
    fail(f, ": Modality is ", trim(t.modality).empty() ? "missing" : "'" + trim(t.modality) + "'",
         ", not CT; volfeat reads CT series only");
  if (!image) fail(f, ": missing Rows/Columns (0028,0010/0011): not an image");
  if (!t.has_pixel_data) fail(f, ": missing pixel data (7FE0,0010)");
  if (s.transfer_syntax.empty()) fail(f, ": missing transfer syntax (0002,0010) in the file meta information");
  if (!dicom_transfer_syntax_name(s.transfer_syntax))
    fail(f, ": unsupported transfer syntax ", s.transfer_syntax,
         "; volfeat reads uncompressed, deflated, JPEG, JPEG-LS, JPEG 2000 and RLE");
  if (!trim(t.number_of_frames).empty() && parse_count(t.number_of_frames, f, "NumberOfFrames", 0, 1 << 30) > 1)
    fail(f, ": multi-frame object (NumberOfFrames ", trim(t.number_of_frames),
         "); volfeat reads one slice per file (enhanced multi-frame CT is not supported)");
  if (!trim(t.samples_per_pixel).empty() && parse_count(t.samples_per_pixel, f, "SamplesPerPixel", 0, 4) != 1)
    fail(f, ": SamplesPerPixel is ", trim(t.samples_per_pixel), "; a CT slice has 1 (grayscale)");
  if (!trim(t.bits_allocated).empty()) {
    const int64_t bits = parse_count(t.bits_allocated, f, "BitsAllocated", 0, 64);
    if (bits != 8 && bits != 16 && bits != 32)
      fail(f, ": BitsAllocated is ", bits, "; volfeat reads 8-, 16- and 32-bit integer pixels");
  }
  s.rows = parse_count(t.rows, f, "Rows", 1, 65535);
  s.columns = parse_count(t.columns, f, "Columns", 1, 65535);
  if (trim(t.image_position).empty()) fail(f, ": missing ImagePositionPatient (0020,0032)");
  if (trim(t.image_orientation).empty()) fail(f, ": missing ImageOrientationPatient (0020,0037)");
  if (trim(t.pixel_spacing).empty()) fail(f, ": missing PixelSpacing (0028,0030)");
  s.position = parse_numbers<3>(t.image_position, f, "ImagePositionPatient");
  s.orientation = parse_numbers<6>(t.image_orientation, f, "ImageOrientationPatient");
  s.pixel_spacing = parse_numbers<2>(t.pixel_spacing, f, "PixelSpacing");
  for (double v : s.pixel_spacing)
    if (!(v > 0) || v > kMaxMm) fail(f, ": invalid PixelSpacing '", trim(t.pixel_spacing), "' (must be > 0 and <= 1e6 mm)");
  // Found by fuzzing: a position near DBL_MAX made the slice step's length overflow to an infinite spacing.
  for (double v : s.position)
    if (std::fabs(v) > kMaxMm) fail(f, ": invalid ImagePositionPatient '", trim(t.image_position), "' (beyond 1e6 mm)");
  std::array<double, 3> r = row_cosine(s), c = col_cosine(s);
  const double nr = norm(r), nc = norm(c);
  if (std::fabs(nr - 1) > kCosineTol || std::fabs(nc - 1) > kCosineTol || std::fabs(dot(r, c)) > kCosineTol * nr * nc)
    fail(f, ": invalid ImageOrientationPatient '", trim(t.image_orientation),
         "' (the row and column cosines must be orthogonal unit vectors)");
  for (int a = 0; a < 3; ++a) s.orientation[a] = r[a] / nr, s.orientation[3 + a] = c[a] / nc;
  if (!trim(t.rescale_slope).empty()) s.slope = parse_number(t.rescale_slope, f, "RescaleSlope");
  if (!trim(t.rescale_intercept).empty()) s.intercept = parse_number(t.rescale_intercept, f, "RescaleIntercept");
  if (s.slope == 0) fail(f, ": RescaleSlope is 0 (every voxel would be the intercept)");
  s.along_normal = dot(s.position, cross(row_cosine(s), col_cosine(s)));
  return s;
}

// The series in a directory's files, in order of first appearance (files sorted by name).
inline std::vector<DicomSeriesSummary> dicom_series_in(const std::vector<DicomSliceTags>& files) {
  std::vector<DicomSeriesSummary> out;
  for (const DicomSliceTags& t : files) {
    const std::string uid = detail::dicom::trim(t.series_uid);
    auto it = std::find_if(out.begin(), out.end(), [&](const DicomSeriesSummary& s) { return s.uid == uid; });
    if (it == out.end()) {
      out.push_back({uid, detail::dicom::trim(t.series_description), detail::dicom::trim(t.modality), 0});
      it = out.end() - 1;
    }
    ++it->files;
  }
  return out;
}

// "UID (description, modality, N files)" lines for an error message.
inline std::string describe_series(const std::vector<DicomSeriesSummary>& series) {
  std::string s;
  for (const auto& x : series)
    s += (s.empty() ? "" : "; ") + (x.uid.empty() ? std::string("<no SeriesInstanceUID>") : x.uid) + " ('" +
         x.description + "', " + (x.modality.empty() ? "no modality" : x.modality) + ", " + std::to_string(x.files) +
         (x.files == 1 ? " file)" : " files)");
  return s;
}

// The files of the series asked for (series_uid), or of the only series. Several series and no
// choice is an error that lists them.
inline std::vector<DicomSliceTags> select_dicom_series(const std::string& dir, const std::vector<DicomSliceTags>& files,
                                                       const std::string& series_uid) {
  if (files.empty()) fail(dir, ": no DICOM files in the directory");
  const std::vector<DicomSeriesSummary> series = dicom_series_in(files);
  std::string want = detail::dicom::trim(series_uid);
  if (want.empty()) {
    if (series.size() > 1)
      fail(dir, ": holds ", series.size(), " series; pick one with --series UID: ", describe_series(series));
    want = series[0].uid;
  } else if (std::none_of(series.begin(), series.end(), [&](const DicomSeriesSummary& s) { return s.uid == want; })) {
    fail(dir, ": no series ", want, " (--series); the directory holds ", describe_series(series));
  }
  std::vector<DicomSliceTags> out;
  for (const DicomSliceTags& t : files)
    if (detail::dicom::trim(t.series_uid) == want) out.push_back(t);
  return out;
}

// Orders the slices of one series along the normal, checks that they form one regular grid, and
// computes that grid. `files` is sorted by file name for deterministic messages.
inline DicomSeries assemble_dicom_series(const std::string& dir, const std::vector<DicomSliceTags>& files) {
  using namespace detail::dicom;
  if (files.empty()) fail(dir, ": no DICOM files in the directory");
  DicomSeries out;
  out.uid = trim(files[0].series_uid);
  out.description = trim(files[0].series_description);
  std::vector<DicomSlice>& slices = out.slices;
  for (const DicomSliceTags& t : files) slices.push_back(parse_dicom_slice(t));
  const DicomSlice& first = slices[0];
  for (const DicomSlice& s : slices) {
    if (s.rows != first.rows || s.columns != first.columns)
      fail(dir, ": mixed slice sizes: ", s.file, " is ", s.columns, "x", s.rows, " (columns x rows) but ", first.file,
           " is ", first.columns, "x", first.rows);
    for (int a = 0; a < 6; ++a)
      if (std::fabs(s.orientation[a] - first.orientation[a]) > kSameOrientationTol)
        fail(dir, ": mixed slice orientations: ImageOrientationPatient of ", s.file, " differs from ", first.file);
    for (int a = 0; a < 2; ++a)
      if (std::fabs(s.pixel_spacing[a] - first.pixel_spacing[a]) > kSameSpacingTolMm)
        fail(dir, ": mixed pixel spacing: ", s.file, " has ", mm(s.pixel_spacing[0]), "x", mm(s.pixel_spacing[1]),
             " mm but ", first.file, " ", mm(first.pixel_spacing[0]), "x", mm(first.pixel_spacing[1]), " mm");
  }
  if (slices.size() < 2)
    fail(dir, ": the series has 1 slice (", first.file, "); a CT volume needs at least 2");
  const int64_t n = int64_t(slices.size());
  if (n > kMaxVoxels / first.rows / first.columns)
    fail(dir, ": ", first.columns, "x", first.rows, "x", n, " voxels exceeds the 2^34 limit");

  // Ascending along the normal; ties (duplicates, refused next) by file name, so the message is stable.
  std::stable_sort(slices.begin(), slices.end(),
                   [](const DicomSlice& a, const DicomSlice& b) { return a.along_normal < b.along_normal; });
  const std::array<double, 3> normal = cross(row_cosine(first), col_cosine(first));
  std::vector<double> steps;
  for (size_t s = 1; s < slices.size(); ++s) {
    const DicomSlice &a = slices[s - 1], &b = slices[s];
    const double step = b.along_normal - a.along_normal;
    if (step <= kDuplicateTolMm)
      fail(dir, ": duplicate slice position: ", a.file, " and ", b.file, " are both at ", mm(a.along_normal),
           " mm along the slice normal");
    // Gantry tilt: the positions walk off the normal, so the slices form a sheared (not a rectangular)
    // grid. Resampling it would invent voxels; the user should do that knowingly (e.g. dcm2niix's
    // tilt correction) and pass the result.
    std::array<double, 3> d{b.position[0] - a.position[0], b.position[1] - a.position[1], b.position[2] - a.position[2]};
    std::array<double, 3> off{d[0] - step * normal[0], d[1] - step * normal[1], d[2] - step * normal[2]};
    if (norm(off) > kStepTolMm + kStepTolRelative * step) {
      const double deg = std::atan2(norm(off), step) * 57.29577951308232;  // radians -> degrees
      fail(dir, ": gantry tilt: ", b.file, " is offset ", mm(norm(off)), " mm within the slice plane from ", a.file,
           " (", mm(deg), " degrees", trim(files[0].gantry_tilt).empty() ? "" : "; GantryDetectorTilt " + trim(files[0].gantry_tilt),
           "); volfeat does not resample tilted series: correct the tilt first (e.g. dcm2niix) and pass the NIfTI");
    }
    steps.push_back(step);
  }
  std::vector<double> sorted_steps = steps;
  std::nth_element(sorted_steps.begin(), sorted_steps.begin() + long(sorted_steps.size() / 2), sorted_steps.end());
  const double median = sorted_steps[sorted_steps.size() / 2];
  for (size_t s = 0; s < steps.size(); ++s) {
    if (std::fabs(steps[s] - median) <= kStepTolMm + kStepTolRelative * median) continue;
    const DicomSlice &a = slices[s], &b = slices[s + 1];
    const double ratio = steps[s] / median;
    if (ratio > 1.5 && std::fabs(ratio - std::round(ratio)) < 0.1)
      fail(dir, ": missing slice", std::lround(ratio) > 2 ? "s" : "", ": ", a.file, " and ", b.file, " are ",
           mm(steps[s]), " mm apart, the other slices ", mm(median), " mm");
    fail(dir, ": non-uniform slice spacing: ", a.file, " and ", b.file, " are ", mm(steps[s]), " mm apart, the other slices ",
         mm(median), " mm");
  }

  const DicomSlice &p0 = slices.front(), &pn = slices.back();
  const std::array<double, 3> step{(pn.position[0] - p0.position[0]) / double(n - 1),
                                   (pn.position[1] - p0.position[1]) / double(n - 1),
                                   (pn.position[2] - p0.position[2]) / double(n - 1)};
  const std::array<double, 3> r = row_cosine(first), c = col_cosine(first);
  const double lps[3] = {-1.0, -1.0, 1.0};
  Grid& g = out.grid;
  g.dims = {n, first.rows, first.columns};
  g.spacing = {norm(step), first.pixel_spacing[0], first.pixel_spacing[1]};
  // (+ 0.0 turns the -0 that negating a zero cosine gives into 0, for printing.)
  for (int a = 0; a < 3; ++a) {
    g.affine[a][0] = lps[a] * r[a] * first.pixel_spacing[1] + 0.0;
    g.affine[a][1] = lps[a] * c[a] * first.pixel_spacing[0] + 0.0;
    g.affine[a][2] = lps[a] * step[a] + 0.0;
    g.affine[a][3] = lps[a] * p0.position[a] + 0.0;
  }
  g.affine[3] = {0, 0, 0, 1};
  return out;
}

}  // namespace volfeat
