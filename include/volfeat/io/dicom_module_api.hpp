#pragma once
// The table of entry points libvolfeat_dicom.so (experiments/dicom_module.cpp) hands to the programs
// that open it (io/dicom_module.hpp): dicom_gdcm.hpp's reading functions, same signatures.
#include <string>
#include <vector>

#include "volfeat/io/dicom_series.hpp"

namespace volfeat {

// What the module's volfeat_dicom_api() returns. kVersion changes with any signature here.
struct DicomModuleApi {
  static constexpr int kVersion = 1;
  int version;
  std::vector<DicomSliceTags> (*scan_directory)(const std::string& dir);
  DicomSeries (*read_series_header)(const std::string& dir, const std::string& series_uid);
  DicomVolume (*read_series)(const std::string& dir, const std::string& series_uid);
};

}  // namespace volfeat
