// libvolfeat_dicom.so: the DICOM reader (io/dicom_gdcm.hpp) as a module the programs open on first use
// (io/dicom_module.hpp), so only a process that reads a DICOM directory loads GDCM and builds its
// dictionaries.
#include "volfeat/io/dicom_gdcm.hpp"
#include "volfeat/io/dicom_module_api.hpp"

namespace {

std::vector<volfeat::DicomSliceTags> scan_directory(const std::string& dir) { return volfeat::scan_dicom_directory(dir); }
volfeat::DicomSeries read_series_header(const std::string& dir, const std::string& uid) {
  return volfeat::read_dicom_series_header(dir, uid);
}
volfeat::DicomVolume read_series(const std::string& dir, const std::string& uid) { return volfeat::read_dicom_series(dir, uid); }

}  // namespace

extern "C" __attribute__((visibility("default"))) const volfeat::DicomModuleApi* volfeat_dicom_api() {
  static const volfeat::DicomModuleApi api{volfeat::DicomModuleApi::kVersion, &scan_directory, &read_series_header,
                                           &read_series};
  return &api;
}
