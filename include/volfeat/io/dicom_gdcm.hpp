#pragma once
// Reading a DICOM CT series from a directory with GDCM (Debian: libgdcm-dev).
//
// Link: the volfeat_dicom CMake target (gdcmMSFF and the libraries it needs; defines
// VOLFEAT_WITH_DICOM=1). Everything decided from the tags (series choice, slice order, geometry,
// refusals) is in io/dicom_series.hpp; this file only gets the tags and pixels out of the files:
//   scan_dicom_directory   the tags of every file (pixel data not read), for the series logic and
//                          the memory check (read_dicom_series_grid);
//   read_dicom_series      the volume: each slice decoded by gdcm::ImageReader, which handles every
//                          compressed transfer syntax Debian's GDCM is built with (JPEG lossy and
//                          lossless, JPEG-LS, JPEG 2000, RLE, deflate), then RescaleSlope/Intercept.
//
// What GDCM does not tell us, checked here: it reads a file whose pixel data is cut short without a
// complaint (the missing bytes are left zero), so the value length of (7FE0,0010) is compared with
// the file size, and encapsulated (compressed) pixel data must end with its sequence delimiter.
// GDCM's own warnings and errors are silenced: each failure is one volfeat::Error line instead.
#include <gdcmDataSet.h>
#include <gdcmImage.h>
#include <gdcmImageReader.h>
#include <gdcmPixelFormat.h>
#include <gdcmReader.h>
#include <gdcmStringFilter.h>
#include <gdcmTrace.h>
#include <gdcmTransferSyntax.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "volfeat/core/error.hpp"
#include "volfeat/core/host_memory.hpp"
#include "volfeat/io/dicom_series.hpp"
#include "volfeat/io/volume.hpp"

namespace volfeat {

namespace detail::dicom {

inline void quiet_gdcm() {
  gdcm::Trace::SetDebug(false);
  gdcm::Trace::SetWarning(false);
  gdcm::Trace::SetError(false);
}

// The directory's candidate files: regular files, sorted by name, without hidden files and without
// DICOMDIR (a media index, not a slice).
inline std::vector<std::string> list_files(const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) fail(dir, ": not a directory");
  std::vector<std::string> out;
  fs::directory_iterator it(dir, ec), end;
  if (ec) fail(dir, ": cannot list the directory (", ec.message(), ")");
  for (; it != end; it.increment(ec)) {
    if (ec) fail(dir, ": cannot list the directory (", ec.message(), ")");
    const std::string name = it->path().filename().string();
    if (name.empty() || name[0] == '.' || name == "DICOMDIR") continue;
    if (fs::is_directory(it->path(), ec)) continue;  // sub-directories are not part of the series
    out.push_back(it->path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

inline uint32_t read_u32(const unsigned char* p, bool big) {
  return big ? (uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | p[3])
             : (uint32_t(p[3]) << 24 | uint32_t(p[2]) << 16 | uint32_t(p[1]) << 8 | p[0]);
}
inline uint16_t read_u16(const unsigned char* p, bool big) {
  return big ? uint16_t(p[0] << 8 | p[1]) : uint16_t(p[1] << 8 | p[0]);
}

// Where the pixel data element's header ends (the reader stops there when told to skip the value):
// whether (7FE0,0010) is there, and if so that its value fits in the file.
inline bool check_pixel_data_extent(const std::string& file, uint64_t value_start, const gdcm::TransferSyntax& ts) {
  std::ifstream in(file, std::ios::binary);
  in.seekg(0, std::ios::end);
  const uint64_t size = uint64_t(in.tellg());
  if (value_start == 0 || value_start > size || value_start < 8) return false;
  const bool big = ts == gdcm::TransferSyntax::ExplicitVRBigEndian;
  const bool explicit_vr = ts.IsExplicit();
  const uint64_t header = explicit_vr ? 12 : 8;
  if (value_start < header) return false;
  unsigned char h[12] = {};
  in.seekg(std::streamoff(value_start - header));
  in.read(reinterpret_cast<char*>(h), std::streamsize(header));
  if (!in) return false;
  if (read_u16(h, big) != 0x7FE0 || read_u16(h + 2, big) != 0x0010) return false;
  const uint32_t vl = read_u32(h + header - 4, big);
  if (vl == 0xFFFFFFFFu) {
    // Encapsulated: fragments, then the Sequence Delimitation Item (FFFE,E0DD) with length 0.
    unsigned char tail[8] = {};
    if (size < value_start + 8) fail(file, ": truncated: the encapsulated pixel data is cut off");
    in.seekg(std::streamoff(size - 8));
    in.read(reinterpret_cast<char*>(tail), 8);
    if (!in || read_u16(tail, big) != 0xFFFE || read_u16(tail + 2, big) != 0xE0DD || read_u32(tail + 4, big) != 0)
      fail(file, ": truncated: the encapsulated (compressed) pixel data does not end with its sequence delimiter");
  } else if (value_start + vl > size) {
    fail(file, ": truncated: the pixel data needs ", vl, " bytes but the file holds ", size - value_start);
  }
  return true;
}

inline DicomSliceTags read_tags(const std::string& file) {
  quiet_gdcm();
  DicomSliceTags t;
  t.file = file;
  gdcm::Reader reader;
  reader.SetFileName(file.c_str());
  const gdcm::Tag pixel_data(0x7FE0, 0x0010);
  // Stops at the pixel data with its value unread (skip set), so a scan of 1000 slices reads KBs.
  if (!reader.ReadUpToTag(pixel_data, std::set<gdcm::Tag>{pixel_data})) {
    std::error_code ec;
    const auto size = std::filesystem::file_size(file, ec);
    if (ec) fail(file, ": cannot read (", ec.message(), ")");
    fail(file, ": not a DICOM file, or truncated or corrupt in its header (", size, " bytes)");
  }
  const gdcm::File& f = reader.GetFile();
  const gdcm::TransferSyntax& ts = f.GetHeader().GetDataSetTransferSyntax();
  gdcm::StringFilter sf;
  sf.SetFile(f);
  auto get = [&](uint16_t g, uint16_t e) {
    const gdcm::Tag tag(g, e);
    if (g == 0x0002) return f.GetHeader().FindDataElement(tag) ? sf.ToString(tag) : std::string();
    return f.GetDataSet().FindDataElement(tag) ? sf.ToString(tag) : std::string();
  };
  t.transfer_syntax = get(0x0002, 0x0010);
  t.sop_class = get(0x0008, 0x0016);
  t.modality = get(0x0008, 0x0060);
  t.series_uid = get(0x0020, 0x000E);
  t.series_description = get(0x0008, 0x103E);
  t.image_position = get(0x0020, 0x0032);
  t.image_orientation = get(0x0020, 0x0037);
  t.pixel_spacing = get(0x0028, 0x0030);
  t.rows = get(0x0028, 0x0010);
  t.columns = get(0x0028, 0x0011);
  t.number_of_frames = get(0x0028, 0x0008);
  t.samples_per_pixel = get(0x0028, 0x0002);
  t.bits_allocated = get(0x0028, 0x0100);
  t.rescale_slope = get(0x0028, 0x1053);
  t.rescale_intercept = get(0x0028, 0x1052);
  t.gantry_tilt = get(0x0018, 0x1120);
  // UIDs are padded with NUL to even length.
  for (std::string* s : {&t.transfer_syntax, &t.sop_class, &t.series_uid})
    while (!s->empty() && (s->back() == '\0' || s->back() == ' ')) s->pop_back();
  if (ts == gdcm::TransferSyntax::DeflatedExplicitVRLittleEndian) {
    // Positions are in the inflated stream: ask the dataset instead (this reads the whole file).
    gdcm::Reader full;
    full.SetFileName(file.c_str());
    t.has_pixel_data = full.Read() && full.GetFile().GetDataSet().FindDataElement(pixel_data);
  } else {
    t.has_pixel_data = check_pixel_data_extent(file, uint64_t(reader.GetStreamCurrentPosition()), ts);
  }
  return t;
}

inline const char* scalar_name(gdcm::PixelFormat::ScalarType st) {
  return gdcm::PixelFormat(st).GetScalarTypeAsString();
}

// Decodes one slice into out[0 .. rows*columns) as HU.
inline void decode_slice(const DicomSlice& s, float* out) {
  quiet_gdcm();
  gdcm::ImageReader reader;
  reader.SetFileName(s.file.c_str());
  const char* syntax = dicom_transfer_syntax_name(s.transfer_syntax);
  if (!reader.Read())
    fail(s.file, ": GDCM cannot read the image (transfer syntax ", s.transfer_syntax, " ", syntax ? syntax : "",
         "): corrupt or truncated");
  const gdcm::Image& image = reader.GetImage();
  if (image.GetColumns() != unsigned(s.columns) || image.GetRows() != unsigned(s.rows))
    fail(s.file, ": the pixel data is ", image.GetColumns(), "x", image.GetRows(), " but the header says ", s.columns,
         "x", s.rows);
  const gdcm::PixelFormat& pf = image.GetPixelFormat();
  if (pf.GetSamplesPerPixel() != 1) fail(s.file, ": ", pf.GetSamplesPerPixel(), " samples per pixel; a CT slice has 1");
  const size_t n = size_t(s.rows) * size_t(s.columns);
  const size_t bytes = pf.GetPixelSize();
  const unsigned long length = image.GetBufferLength();
  if (length != n * bytes)
    fail(s.file, ": decoded pixel data is ", length, " bytes, expected ", n * bytes, " (", s.columns, "x", s.rows, " ",
         pf.GetScalarTypeAsString(), ")");
  std::vector<char> buf(length);
  if (!image.GetBuffer(buf.data()))
    fail(s.file, ": cannot decode the pixel data (transfer syntax ", s.transfer_syntax, " ", syntax ? syntax : "",
         "): truncated or corrupt");
  // GDCM hands out BitsAllocated-wide values; bits above BitsStored are masked, and signed values
  // sign-extended from BitsStored, here (idempotent if GDCM already did it).
  const unsigned stored = pf.GetBitsStored(), allocated = pf.GetBitsAllocated();
  if (pf.GetHighBit() + 1u != stored)
    fail(s.file, ": HighBit ", pf.GetHighBit(), " with BitsStored ", stored, " is not supported (expected HighBit = BitsStored - 1)");
  auto convert = [&](auto tag) {
    using T = decltype(tag);
    for (size_t i = 0; i < n; ++i) {
      T raw;
      std::memcpy(&raw, buf.data() + i * sizeof(T), sizeof(T));
      int64_t v = int64_t(raw);
      if (stored < allocated && stored < 64) {
        const uint64_t mask = (uint64_t{1} << stored) - 1;
        uint64_t u = uint64_t(v) & mask;
        if (pf.GetPixelRepresentation() == 1 && (u >> (stored - 1)) & 1) u |= ~mask;
        v = int64_t(u);
      }
      const double hu = double(v) * s.slope + s.intercept;
      if (!(std::fabs(hu) <= FLT_MAX)) fail(s.file, ": RescaleSlope/Intercept make a value outside float's range");
      out[i] = float(hu);
    }
  };
  switch (pf.GetScalarType()) {
    case gdcm::PixelFormat::UINT8: convert(uint8_t{}); break;
    case gdcm::PixelFormat::INT8: convert(int8_t{}); break;
    case gdcm::PixelFormat::UINT16: convert(uint16_t{}); break;
    case gdcm::PixelFormat::INT16: convert(int16_t{}); break;
    case gdcm::PixelFormat::UINT32: convert(uint32_t{}); break;
    case gdcm::PixelFormat::INT32: convert(int32_t{}); break;
    default:
      fail(s.file, ": unsupported pixel type ", scalar_name(pf.GetScalarType()),
           " (volfeat reads 8-, 16- and 32-bit integer pixels)");
  }
}

}  // namespace detail::dicom

// The tags of every file in dir (sorted by name). No pixel data is decoded.
inline std::vector<DicomSliceTags> scan_dicom_directory(const std::string& dir) {
  std::vector<DicomSliceTags> out;
  for (const std::string& f : detail::dicom::list_files(dir)) out.push_back(detail::dicom::read_tags(f));
  return out;
}

// The series' grid from the tags alone (for the memory check before any pixel is decoded).
inline DicomSeries read_dicom_series_header(const std::string& dir, const std::string& series_uid = "") {
  return assemble_dicom_series(dir, select_dicom_series(dir, scan_dicom_directory(dir), series_uid));
}

inline DicomVolume read_dicom_series(const std::string& dir, const std::string& series_uid = "") {
  DicomVolume v;
  v.series = read_dicom_series_header(dir, series_uid);
  v.volume.grid = v.series.grid;
  const Grid& g = v.volume.grid;
  v.volume.data = huge_page_vector<float>(size_t(g.voxels()));
  const size_t per_slice = size_t(g.dims[1] * g.dims[2]);
  for (size_t d = 0; d < v.series.slices.size(); ++d) {
    const DicomSlice& s = v.series.slices[d];
    detail::dicom::decode_slice(s, v.volume.data.data() + d * per_slice);
    if (std::find(v.transfer_syntaxes.begin(), v.transfer_syntaxes.end(), s.transfer_syntax) == v.transfer_syntaxes.end())
      v.transfer_syntaxes.push_back(s.transfer_syntax);
  }
  return v;
}

}  // namespace volfeat
