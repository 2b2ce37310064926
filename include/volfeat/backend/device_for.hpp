#pragma once
// The device a run's networks are built on, made from what the user asked for (parsed at the edge):
// the CLI's --precision and --stream-weights, the Python module's precision= and stream_weights=. A
// backend whose device carries neither runs float32 with its weights in its own memory and refuses
// the rest; the Cpu backend specialises this (backend/cpu/device_for.hpp): bf16 where the CPU runs
// it, else float32 with a one-line note, and weights streamed from a file (core/weight_file.hpp).
#include <string>

#include "volfeat/core/error.hpp"
#include "volfeat/core/precision.hpp"

namespace volfeat {

struct DeviceOptions {
  Precision precision = Precision::kFloat32;
  std::string stream_weights;  // a directory on a disk, or empty: weights in memory
};

template <class Backend>
struct DeviceFor {
  // note: set to one line when the device does not do what was asked (the caller shows it).
  static Backend make(const DeviceOptions& asked, std::string& note) {
    (void)note;
    if (asked.precision != Precision::kFloat32)
      fail("--precision ", precision_name(asked.precision), ": the ", Backend::kName, " backend runs float32 only");
    if (!asked.stream_weights.empty())
      fail("--stream-weights: the ", Backend::kName, " backend keeps its weights in its own memory");
    return Backend{};
  }
  static Precision precision(const Backend&) { return Precision::kFloat32; }
  static std::string stream_weights(const Backend&) { return {}; }
  // One line on which kernels run a reduced precision (run.json's "precision_kernels"), or empty.
  static std::string kernels(const Backend&) { return {}; }
};

}  // namespace volfeat
