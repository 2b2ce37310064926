#pragma once
// GDCM loaded on first use: the DICOM reader (io/dicom_gdcm.hpp) compiled into a module of its own
// (libvolfeat_dicom.so, experiments/dicom_module.cpp) that a program opens only when it reads a DICOM
// directory.
//
// Why: linking GDCM costs every process its dictionaries at start-up. gdcmGlobal.h gives each
// translation unit a static gdcm::Global, so loading libgdcmDICT builds the public and private DICOM
// dictionaries (tens of thousands of map nodes) before main() and frees them at exit: an empty
// main() linked to GDCM took 35.7-37.5 ms of CPU against 1.2 ms without it (perf stat, AMD EPYC Zen 5,
// 2026-12-04), paid by every `volfeat extract` on a NIfTI file (0.44 s in all at 128^3).
//
// Link: the volfeat_dicom_loader CMake target (experiments/CMakeLists.txt: defines VOLFEAT_DICOM_MODULE,
// the module's file name, and VOLFEAT_DICOM_MODULE_INSTALLED, its path relative to the installed
// program; links libdl). The module is looked for beside the shared object holding this code where that is
// not the program (the Python module's package), beside the program (the build tree), then at the installed
// path; VOLFEAT_DICOM_MODULE_PATH in the environment names it explicitly. Its three entry points have the
// signatures of dicom_gdcm.hpp's, C++ types and exceptions included: the module is built by the same compiler
// from the same headers.
#include <dlfcn.h>

#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <string>
#include <system_error>
#include <vector>

#include "volfeat/core/error.hpp"
#include "volfeat/io/dicom_module_api.hpp"

namespace volfeat {

namespace detail::dicom_module {

// Where to look, in order: $VOLFEAT_DICOM_MODULE_PATH alone if set; else, when this code lives in a shared
// object other than the program (the Python module _volfeat, loaded by python3), beside that object first: its
// package carries a copy of the module (experiments/python/CMakeLists.txt), built with it; then beside the
// program, then the installed location relative to the program.
inline std::vector<std::string> candidates() {
  if (const char* p = std::getenv("VOLFEAT_DICOM_MODULE_PATH"); p && *p) return {p};
  std::vector<std::string> out;
  std::error_code ec;
  const std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  Dl_info self{};
  if (dladdr(reinterpret_cast<const void*>(&candidates), &self) && self.dli_fname && self.dli_fname[0] == '/') {
    std::error_code ec2;
    const std::filesystem::path object = std::filesystem::weakly_canonical(self.dli_fname, ec2);
    if (!ec2 && object != exe)  // /proc/self/exe is canonical already
      out.push_back((object.parent_path() / VOLFEAT_DICOM_MODULE).string());
  }
  if (!ec) {
    const std::filesystem::path dir = exe.parent_path();
    out.push_back((dir / VOLFEAT_DICOM_MODULE).string());
    out.push_back((dir / VOLFEAT_DICOM_MODULE_INSTALLED).lexically_normal().string());
  }
  if (out.empty()) out.push_back(VOLFEAT_DICOM_MODULE);  // the loader's own search path
  return out;
}

// The module's entry points, loaded once per process; `path` names the directory being read, for the
// message when the module cannot be loaded.
inline const DicomModuleApi& api(const std::string& path) {
  static std::once_flag once;
  static const DicomModuleApi* loaded = nullptr;
  static std::string why;
  std::call_once(once, [] {
    std::string tried;
    for (const std::string& file : candidates()) {
      void* handle = dlopen(file.c_str(), RTLD_NOW | RTLD_LOCAL);
      if (!handle) {
        const char* e = dlerror();
        tried += (tried.empty() ? "" : "; ") + (e ? std::string(e) : file + ": not loadable");
        continue;
      }
      using Entry = const DicomModuleApi* (*)();
      const auto entry = reinterpret_cast<Entry>(dlsym(handle, "volfeat_dicom_api"));
      const DicomModuleApi* a = entry ? entry() : nullptr;
      if (!a || a->version != DicomModuleApi::kVersion) {
        tried += (tried.empty() ? "" : "; ") + file + ": not a volfeat DICOM module of this version";
        dlclose(handle);
        continue;
      }
      loaded = a;  // the handle stays open for the process
      return;
    }
    why = tried;
  });
  if (!loaded)
    fail(path, ": is a directory (a DICOM series?), but volfeat's DICOM reader could not be loaded (", why,
         "); rebuild with GDCM (Debian: libgdcm-dev), or set VOLFEAT_DICOM_MODULE_PATH to libvolfeat_dicom.so");
  return *loaded;
}

}  // namespace detail::dicom_module

// dicom_gdcm.hpp's reading functions, through the module.
inline std::vector<DicomSliceTags> scan_dicom_directory(const std::string& dir) {
  return detail::dicom_module::api(dir).scan_directory(dir);
}
inline DicomSeries read_dicom_series_header(const std::string& dir, const std::string& series_uid = "") {
  return detail::dicom_module::api(dir).read_series_header(dir, series_uid);
}
inline DicomVolume read_dicom_series(const std::string& dir, const std::string& series_uid = "") {
  return detail::dicom_module::api(dir).read_series(dir, series_uid);
}

}  // namespace volfeat
