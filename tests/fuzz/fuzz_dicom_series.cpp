// libFuzzer target for DICOM series assembly (io/dicom_series.hpp): tag parsing, series selection,
// slice ordering, spacing/tilt/duplicate checks and the affine, fed synthetic slice headers (no
// files, no GDCM). Every input must end in a volfeat::Error or a series whose grid is consistent;
// anything else (a crash, a sanitizer report, another exception, a bad grid) is a finding.
//
// Input format: one slice per line; fields separated by '|', in DicomSliceTags order:
//   series_uid|modality|transfer_syntax|image_position|image_orientation|pixel_spacing|rows|columns|
//   number_of_frames|samples_per_pixel|bits_allocated|rescale_slope|rescale_intercept|has_pixel_data
// (missing trailing fields are empty; has_pixel_data is "0" for false). The first line may start
// with "series=" to choose a series (--series).
//
// Built by scripts/fuzz.sh dicom_series (clang, -DVOLFEAT_FUZZ=ON); also linked with fuzz_replay.cpp
// into fuzz_replay_dicom_series, the ctest that replays tests/fuzz/regressions/dicom_series.
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "volfeat/io/dicom_series.hpp"

namespace {

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  for (;;) {
    const size_t end = s.find(sep, start);
    out.push_back(s.substr(start, end == std::string::npos ? std::string::npos : end - start));
    if (end == std::string::npos) return out;
    start = end + 1;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace volfeat;
  if (size > 65536) return 0;
  std::vector<std::string> lines = split(std::string(reinterpret_cast<const char*>(data), size), '\n');
  std::string series;
  if (!lines.empty() && lines[0].rfind("series=", 0) == 0) {
    series = lines[0].substr(7);
    lines.erase(lines.begin());
  }
  std::vector<DicomSliceTags> tags;
  for (size_t n = 0; n < lines.size() && n < 512; ++n) {
    if (lines[n].empty()) continue;
    std::vector<std::string> f = split(lines[n], '|');
    f.resize(14);
    DicomSliceTags t;
    t.file = "slice" + std::to_string(n);
    t.series_uid = f[0], t.modality = f[1], t.transfer_syntax = f[2], t.image_position = f[3];
    t.image_orientation = f[4], t.pixel_spacing = f[5], t.rows = f[6], t.columns = f[7];
    t.number_of_frames = f[8], t.samples_per_pixel = f[9], t.bits_allocated = f[10];
    t.rescale_slope = f[11], t.rescale_intercept = f[12], t.has_pixel_data = f[13] != "0";
    tags.push_back(t);
  }
  try {
    (void)dicom_series_in(tags);
    const std::vector<DicomSliceTags> chosen = select_dicom_series("dir", tags, series);
    const DicomSeries s = assemble_dicom_series("dir", chosen);
    const Grid& g = s.grid;
    if (g.dims[0] != int64_t(s.slices.size()) || g.dims[0] < 2 || g.dims[1] < 1 || g.dims[2] < 1) std::abort();
    for (const auto& row : g.affine)
      for (double v : row)
        if (!std::isfinite(v)) std::abort();
    for (double sp : g.spacing)
      if (!(sp > 0) || !std::isfinite(sp)) std::abort();
    for (size_t k = 1; k < s.slices.size(); ++k)
      if (!(s.slices[k].along_normal > s.slices[k - 1].along_normal)) std::abort();  // strictly ascending
    for (const DicomSlice& x : s.slices)
      if (x.rows != g.dims[1] || x.columns != g.dims[2] || !std::isfinite(x.slope) || !std::isfinite(x.intercept))
        std::abort();
  } catch (const Error&) {
  }
  return 0;
}
