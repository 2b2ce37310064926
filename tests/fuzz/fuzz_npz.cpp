// libFuzzer target for the .npz/.npy readers (io/zip.hpp, io/npy.hpp, io/npz.hpp) and the weight
// checks on top of them (weights/load.hpp, nn/architectures.hpp): parse the input as an .npz and
// as a bare .npy, convert every array to several element types, and run what `--weights` runs on
// a state_dict (dtype and meta checks, 2D/3D detection, architecture detection, full validation).
// Every input must end in a volfeat::Error or valid arrays; anything else is a finding.
//
// Built by scripts/fuzz.sh (clang, -DVOLFEAT_FUZZ=ON); also linked with fuzz_replay.cpp into
// fuzz_replay_npz, the ctest that replays tests/fuzz/regressions/npz and the bad-input fixtures.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "volfeat/io/npz.hpp"
#include "volfeat/weights/load.hpp"

namespace {

void convert_all(const volfeat::NpyArray& a) {
  using volfeat::Error;
  try {
    const auto d = a.to_vector<double>();
    if (int64_t(d.size()) != a.size()) std::abort();
  } catch (const Error&) {
  }
  try {
    (void)a.to_vector<int32_t>();
  } catch (const Error&) {
  }
  try {
    (void)a.to_vector<uint8_t>();
  } catch (const Error&) {
  }
  try {
    (void)a.to_vector<uint64_t>();
  } catch (const Error&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace volfeat;
  try {
    const NpzMap arrays = parse_npz(data, size, "fuzz.npz");
    for (const auto& [key, a] : arrays) convert_all(a);
    try {
      const StateDict sd = state_dict_from_npz(arrays, "fuzz.npz");
      (void)weights_kind(sd);
      const int dims = conv_spatial_dims(sd);
      const Graph g = graph_of(sd);  // architecture detected, every key and shape validated
      check_weights_content(sd, g.arch(), dims);
    } catch (const Error&) {
    }
  } catch (const Error&) {
  }
  try {
    const NpyArray a = parse_npy(data, size, "fuzz.npy");
    convert_all(a);
    // What volfeat writes, it parses back identically.
    const std::string bytes = serialize_npy(a);
    const NpyArray b = parse_npy(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), "again.npy");
    if (b.shape != a.shape || b.dtype != a.dtype || b.fortran_order != a.fortran_order || b.bytes != a.bytes)
      std::abort();
  } catch (const Error&) {
  }
  return 0;
}
