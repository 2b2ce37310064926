#pragma once
// The device a run's networks are built on, made from what the user asked for (parsed at the edge):
// the CLI's --precision and the Python module's precision=. A backend whose device carries no
// precision runs float32 only and refuses bf16; the Cpu backend specialises this
// (backend/cpu/device_for.hpp): bf16 where the CPU runs it, else float32 with a one-line note.
#include <string>

#include "volfeat/core/error.hpp"
#include "volfeat/core/precision.hpp"

namespace volfeat {

template <class Backend>
struct DeviceFor {
  // note: set to one line when the device does not do what was asked (the caller shows it).
  static Backend make(Precision requested, std::string& note) {
    (void)note;
    if (requested != Precision::kFloat32)
      fail("--precision ", precision_name(requested), ": the ", Backend::kName, " backend runs float32 only");
    return Backend{};
  }
  static Precision precision(const Backend&) { return Precision::kFloat32; }
};

}  // namespace volfeat
