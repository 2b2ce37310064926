// MUST NOT COMPILE. ctest's static_assert_* tests compile this file with -fsyntax-only and pass when
// the compiler rejects it with volfeat's static_assert naming what to enable.
//   -DVOLFEAT_CASE=1  one op (Conv3d) on a backend tag that has no specializations
//   -DVOLFEAT_CASE=2  the whole network on that tag (the Cpu backend is included, so the failure is
//                     about the missing backend, not a missing header)
#include "volfeat/nn/network.hpp"
#include "volfeat/ops/conv3d.hpp"

// A device tag someone declared without writing (or including) its specializations.
struct NoSuchDevice {
  static constexpr const char* kName = "no-such-device";
};

#if VOLFEAT_CASE == 1
int main() {
  volfeat::Conv3d<NoSuchDevice, float> conv;
  (void)conv;
}
#elif VOLFEAT_CASE == 2
#include "volfeat/backend/cpu.hpp"
int main() {
  const volfeat::Network<NoSuchDevice, float> net(volfeat::StateDict{});
  (void)net;
}
#else
#error "define VOLFEAT_CASE"
#endif
