// Streamed weights (core/weight_file.hpp, --stream-weights): a network whose packed weights live in a
// file gives the same taps as one holding them in memory, bit for bit (float32, and bf16 where the CPU
// runs it); during a pass the process maps at most the weights of the step that uses the most (as the
// memory estimate counts them), and
// none after it; the file holds every conv's packed weights; directories in memory and bad paths are
// refused with one line.
#define BOOST_TEST_MODULE streamed_weights
#include <sys/statfs.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "support/error_of.hpp"
#include "support/primitive_checks.hpp"
#include "support/small_networks.hpp"
#include "support/smaps.hpp"
#include "volfeat/backend/cpu.hpp"
#include "volfeat/nn/memory_estimate.hpp"
#include "volfeat/nn/network.hpp"
#include "volfeat/nn/taps.hpp"
#include "volfeat/weights/load.hpp"

using namespace volfeat;
using namespace volfeat::test;

namespace {

// A directory on the build's disk (the tests' working directory), not /tmp: /tmp may be a tmpfs.
std::string stream_dir() {
  const std::string d = (std::filesystem::current_path() / "streamed_weights_dir").string();
  std::filesystem::create_directories(d);
  return d;
}

// Bytes of [base, base + len) this process has mapped in (the Rss lines of /proc/self/smaps).
double mapped_bytes(const void* base, size_t len) {
  const auto lo = reinterpret_cast<std::uintptr_t>(base), hi = lo + len;
  double rss = 0;
  for (const test::Mapping& m : test::read_smaps())
    if (m.lo >= lo && m.hi <= hi) rss += m.rss_bytes;
  return rss;
}

// Records the taps, and the most weight bytes mapped in when any tap was shown.
struct WatchingRecorder : Recorder<Cpu, float> {
  using Recorder::Recorder;
  const WeightFile* file = nullptr;
  double most = 0;
  void operator()(const std::string& name, TensorView<const float> v) {
    if (file) most = std::max(most, mapped_bytes(file->base(), file->bytes()));
    Recorder::operator()(name, v);
  }
};

// The deepest module the input reaches, so the pass runs every conv it can (the largest included:
// ResNet-18's layer4, VGG-11's 512-channel convs).
std::string deepest_module(const Network<Cpu, float>& net, const Dims& x) {
  const auto& m = net.modules();
  for (auto it = m.rbegin(); it != m.rend(); ++it) {
    const auto need = net.min_input_size(it->node);
    if (x.d >= need[0] && x.h >= need[1] && x.w >= need[2]) return it->name;
  }
  return m.front().name;
}

void check_networks(Precision precision) {
  for (const SmallNetworkCase& c : small_network_cases()) {
    BOOST_TEST_CONTEXT(c.arch << " " << precision_name(precision) << " on " << to_string(c.x)) {
      const Network<Cpu, float> held(seeded_random_weights(c.arch, 5), Cpu(precision));
      const Network<Cpu, float> streamed(seeded_random_weights(c.arch, 5), Cpu(precision, stream_dir()));
      const WeightFile* file = streamed.device().weight_file.get();
      BOOST_TEST_REQUIRE(file != nullptr);
      // Every conv's packed weights went to the file: page-rounded and with padded panels, at least as
      // many bytes as network_weight_bytes counts (every parameter, Winograd's U for its convs) but for
      // the batchnorms and biases, a few KB; bf16 half that.
      const double packed = network_weight_bytes(held.graph(), held.plan_traits(), sizeof(float));
      const double factor = precision == Precision::kBf16 ? 0.5 : 1.0;
      BOOST_TEST(double(file->bytes()) >= 0.9 * factor * packed, file->bytes() << " bytes in the file, " << packed
                                                                              << " packed as float32");
      BOOST_TEST(mapped_bytes(file->base(), file->bytes()) == 0.0, "the build leaves no weight mapped in");

      const auto xv = random_values(size_t(c.x.voxels()), 97);
      const std::vector<float> x(xv.begin(), xv.end());
      const TensorView<const float> in(x.data(), c.x);
      std::vector<std::string> taps = c.taps;
      if (const std::string last = deepest_module(held, c.x); last != taps.back()) taps.push_back(last);
      Recorder<Cpu, float> want(taps);
      WatchingRecorder got(taps);
      got.file = file;
      const int stop = held.node_of(taps.back());
      for (int pass = 0; pass < 2; ++pass) {  // the second pass reads the weights back in
        held.forward(in, want, stop);
        streamed.forward(in, got, stop);
        for (const auto& t : taps)
          BOOST_TEST((got.at(t).data == want.at(t).data), t << " (pass " << pass << "): streamed differs from in memory");
      }
      // The most weight bytes one step maps in, as the memory estimate counts them.
      PlanTraits traits = held.plan_traits();
      traits.streamed_weight_bytes = sizeof(float) * factor;
      const double bound =
          simulate_forward(held.graph(), {c.x.d, c.x.h, c.x.w}, stop, taps, sizeof(float), 1, traits).step_weight_bytes;
      BOOST_TEST_MESSAGE(c.arch << " to " << taps.back() << ": " << file->bytes() << " bytes streamed, at most "
                                << got.most << " mapped in at a tap (bound " << bound << ")");
      BOOST_TEST(got.most > 0.0, "no weight was ever mapped in: the watch did not see the file");
      BOOST_TEST(got.most <= bound + 2 * 4096.0 * 16);
      BOOST_TEST(mapped_bytes(file->base(), file->bytes()) <= bound + 2 * 4096.0 * 16);
    }
  }
}

}  // namespace

BOOST_AUTO_TEST_CASE(streamed_networks_equal_networks_in_memory) { check_networks(Precision::kFloat32); }

BOOST_AUTO_TEST_CASE(streamed_bf16_networks_equal_bf16_networks_in_memory) {
  const std::string why = cpu::gemm::bf16_unavailable_reason();
  if (!why.empty()) {
    std::cout << "skipped (bf16 part): the bf16 kernels cannot run here: " << why << "\n";
    return;
  }
  check_networks(Precision::kBf16);
}

BOOST_AUTO_TEST_CASE(directories_that_cannot_hold_the_weights_are_refused) {
  auto make = [](const std::string& dir) {
    return error_of([&] {
      std::string note;
      (void)DeviceFor<Cpu>::make({Precision::kFloat32, dir}, note);
    });
  };
  const std::string missing = stream_dir() + "/does-not-exist", a_file = stream_dir() + "/a-file";
  std::string e = make(missing);
  BOOST_TEST(e.find("--stream-weights " + missing + ": No such file or directory") == 0, e);
  std::ofstream(a_file) << "x";
  e = make(a_file);
  BOOST_TEST(e == "--stream-weights " + a_file + ": not a directory", e);
  struct statfs fs {};
  if (::statfs("/dev/shm", &fs) == 0 && long(fs.f_type) == 0x01021994) {
    e = make("/dev/shm");
    BOOST_TEST(e.find("--stream-weights /dev/shm: a tmpfs/ramfs directory is memory") == 0, e);
  } else {
    std::cout << "skipped (tmpfs part): /dev/shm is not a tmpfs here\n";
  }
  BOOST_TEST(make(stream_dir()).empty());
}
