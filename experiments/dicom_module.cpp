// libvolfeat_dicom.so: the DICOM reader (io/dicom_gdcm.hpp) as a module the programs open on first use
// (io/dicom_module.hpp), so only a process that reads a DICOM directory loads GDCM and builds its
// dictionaries.
#include "volfeat/io/dicom_gdcm.hpp"
#include "volfeat/io/dicom_module_api.hpp"

extern "C" __attribute__((visibility("default"))) const volfeat::DicomModuleApi* volfeat_dicom_api() {
  static const volfeat::DicomModuleApi api{volfeat::DicomModuleApi::kVersion, &volfeat::scan_dicom_directory,
                                           &volfeat::read_dicom_series_header, &volfeat::read_dicom_series};
  return &api;
}
