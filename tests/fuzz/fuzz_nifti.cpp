// libFuzzer target for the NIfTI reader (io/nifti.hpp): header checks, the nifti C library's header
// decoding, gzip streaming, scaling and label conversion, and a write/read round trip of whatever
// reads successfully. Every input must end in a volfeat::Error or a valid volume; anything else
// (a crash, a sanitizer report, another exception type, a leak) is a finding.
//
// The reader works on paths (the C library opens the file itself), so each input is written to a
// file in /dev/shm (tmpfs) named .nii.gz when it starts with the gzip magic, else .nii.
//
// Built by scripts/fuzz.sh (clang, -DVOLFEAT_FUZZ=ON); also linked with fuzz_replay.cpp into
// fuzz_replay_nifti, the ctest that replays tests/fuzz/regressions/nifti and the bad-input fixtures.
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "volfeat/io/nifti.hpp"

namespace {

std::string scratch_dir() {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::path base = fs::is_directory("/dev/shm", ec) ? fs::path("/dev/shm") : fs::temp_directory_path();
  const fs::path dir = base / ("volfeat-fuzz-nifti-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  return dir.string();
}

void write_all(const std::string& path, const uint8_t* data, size_t size) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) std::abort();
  if (size && std::fwrite(data, 1, size, f) != size) std::abort();
  std::fclose(f);
}

template <class T>
void check_same(const volfeat::Volume<T>& a, const volfeat::Volume<T>& b) {
  if (a.grid.dims != b.grid.dims || a.data.size() != b.data.size()) std::abort();
  for (size_t i = 0; i < a.data.size(); ++i)
    if (!(a.data[i] == b.data[i])) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace volfeat;
  static const std::string dir = scratch_dir();
  const bool gz = size >= 2 && data[0] == 0x1f && data[1] == 0x8b;
  const std::string path = dir + (gz ? "/input.nii.gz" : "/input.nii");
  write_all(path, data, size);

  int64_t voxels = 0;
  try {
    const NiftiInfo h = read_nifti_header(path);
    if (h.grid.voxels() <= 0 || h.bytes_per_voxel <= 0) std::abort();
    voxels = h.grid.voxels();
  } catch (const Error&) {
  }
  // Big volumes (gzip lets a small input declare ~1000x its size) only repeat the same per-voxel
  // loops slowly; reading their headers is what matters, the voxels of small ones cover the rest.
  if (voxels > (int64_t{1} << 17)) {
    std::remove(path.c_str());
    return 0;
  }
  try {
    const Volume<float> v = read_nifti_float(path);
    for (float x : v.data)
      if (!std::isfinite(x)) std::abort();  // non-finite voxels must have been refused
    // Round trip: what volfeat writes, it reads back bit for bit.
    const std::string out = dir + "/roundtrip.nii";
    write_nifti(out, v);
    check_same(v, read_nifti_float(out));
  } catch (const Error&) {
  }
  try {
    ReadOptions o;
    o.nan_to = -1024.0f;
    const Volume<float> v = read_nifti_float(path, o);
    for (float x : v.data)
      if (!std::isfinite(x)) std::abort();
  } catch (const Error&) {
  }
  try {
    const Volume<int32_t> labels = read_nifti_labels(path);
    const std::string out = dir + "/roundtrip_labels.nii.gz";
    write_nifti(out, labels);
    check_same(labels, read_nifti_labels(out));
  } catch (const Error&) {
  }
  std::remove(path.c_str());
  return 0;
}
