// The memory estimate (nn/memory_estimate.hpp) against the measured peak resident set of a real run:
// per architecture, a child process builds the network from a seeded random StateDict as the CLI does
// (kReleaseWeights: the StateDict keeps no values; Winograd where the rule picks it), runs one forward
// with no taps, and reports the peak RSS of that forward (VmHWM, reset after the build through
// /proc/self/clear_refs) above what the process held before the StateDict. That is the peak the memory
// guard judges: it runs after the build, before the forward. The estimate is network_weight_bytes
// (packed weights, Winograd's transformed ones; the released StateDict holds no floats) +
// simulate_forward's peak (activations, rings, per-thread conv scratch) + the input volume, as the guard
// counts them. The build's own transient peak (its threads' packing scratch and the heap's holes before
// the closing trim) is not the guard's to judge and is left out.
// It must lie within kMargin of the measurement: the guard refuses runs on it, so it must neither
// miss a large item (Winograd's weights were 120 MB of ResNet-50's, uncounted before) nor invent one.
#define BOOST_TEST_MODULE memory_estimate
#include <malloc.h>
#include <boost/test/unit_test.hpp>
#include <omp.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "support/sanitized.hpp"
#include "volfeat/backend/cpu.hpp"
#include "volfeat/nn/memory_estimate.hpp"
#include "volfeat/nn/network.hpp"
#include "volfeat/weights/inflate.hpp"

using namespace volfeat;

namespace {

// Where the streamed builds keep their weight file (a directory the measuring child makes; the parent
// removes it after the child is done).
const char* const kStreamDir = "memory_estimate_stream";

// Allowed relative difference between the estimate and the measured peak (both above the process's
// baseline). Measured on a Zen 3, 2 threads: ratios 0.99-1.01 (the messages give them). Without
// Winograd's transformed weights ResNet-50's estimate was 11 % short, which this margin catches.
constexpr double kMargin = 0.08;

// VmHWM of /proc/self/status, in bytes: the peak RSS since the process started or clear_refs reset it.
double resident_peak() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::stod(line.substr(6)) * 1024.0;
  throw std::runtime_error("/proc/self/status has no VmHWM");
}

double resident_now() {
  std::ifstream f("/proc/self/statm");
  double size = 0, resident = 0;
  f >> size >> resident;
  return resident * double(::sysconf(_SC_PAGESIZE));
}

struct Measured {
  double baseline = 0, peak = 0, estimate = 0, weights = 0, forward = 0;
};

// How the child builds its network: in memory, with streamed weights (--stream-weights: the estimate
// counts each step's weights in the pass, resident_weight_bytes apart), or in bf16 (packed weights of 2
// bytes).
enum class Build { kMemory, kStreamed, kBf16 };

// Runs in a fresh child process so that the peak belongs to this architecture alone.
// `up_to`: build only up to this module (BuildUpTo, as the CLI does for its taps) and run to it.
Measured measure(const std::string& arch, std::array<Index, 3> grid, Build how, const std::string& up_to) {
  int fd[2];
  BOOST_TEST_REQUIRE(::pipe(fd) == 0);
  const pid_t pid = ::fork();
  BOOST_TEST_REQUIRE(pid >= 0);
  if (pid == 0) {  // the child: never returns into the test framework (the parent runs no OpenMP, so fork is safe)
    ::close(fd[0]);
    try {
    // A fixed mmap threshold: glibc otherwise raises it to the size of each mmapped block freed, and
    // the pass's later buffers of that size come from the heap, which keeps them resident once freed.
    // The estimate counts live memory; that retention was 8-9 MB of a streamed ResNet-50's 51 MB here
    // (ratio 0.83 with glibc's default, 0.97 with this), and session 12 saw VGG-19's the same way.
    mallopt(M_MMAP_THRESHOLD, 64 * 1024);
    Measured m;
    m.baseline = resident_now();
    StateDict sd = random_state_dict(arch, 0, 1);
    Cpu device(how == Build::kBf16 ? Precision::kBf16 : Precision::kFloat32);
    if (how == Build::kStreamed) {
      device.stream_weights = kStreamDir;  // in the test's directory, on the build's disk
      std::filesystem::create_directories(device.stream_weights);
    }
    // as the CLI builds it: sd keeps no values
    const Network<Cpu, float> net(sd, kReleaseWeights, device, up_to.empty() ? BuildUpTo{} : BuildUpTo{{up_to}, std::nullopt});
    if (!(std::ofstream("/proc/self/clear_refs") << "5"))  // the peak from here on
      throw std::runtime_error("cannot reset the peak RSS through /proc/self/clear_refs");
    for (const auto& [key, p] : sd.params)
      if (!p.values.empty()) throw std::runtime_error("the build kept the values of " + key);
    const Dims d{1, grid[0], grid[1], grid[2], 1};
    std::vector<float> x(size_t(d.voxels()));
    for (size_t i = 0; i < x.size(); ++i) x[i] = float(std::sin(double(i) * 0.37));
    net.forward(TensorView<const float>(x.data(), d));
    m.peak = resident_peak();
    PlanTraits traits = net.plan_traits();
    // the StateDict holds none (checked above)
    const size_t packed = how == Build::kBf16 ? 2 : sizeof(float);
    if (how == Build::kStreamed) traits.streamed_weight_bytes = double(packed);  // each step's, in the pass
    m.weights = how == Build::kStreamed ? resident_weight_bytes(net.graph(), sizeof(float), net.built_last())
                                        : network_weight_bytes(net.graph(), traits, packed, net.built_last());
    m.forward = simulate_forward(net.graph(), grid, net.built_last(), {}, sizeof(float), omp_get_max_threads(), traits)
                    .peak_bytes;
    m.estimate = m.weights + m.forward + double(x.size()) * sizeof(float);
    const bool ok = ::write(fd[1], &m, sizeof m) == ssize_t(sizeof m);
    ::_exit(ok ? 0 : 1);
    } catch (const std::exception& e) {
      std::cerr << arch << ": " << e.what() << std::endl;
      ::_exit(2);
    }
  }
  ::close(fd[1]);
  Measured m;
  const bool got = ::read(fd[0], &m, sizeof m) == ssize_t(sizeof m);
  ::close(fd[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (how == Build::kStreamed) std::filesystem::remove_all(kStreamDir);  // the child's, left in the working directory
  BOOST_TEST_REQUIRE((got && WIFEXITED(status) && WEXITSTATUS(status) == 0), arch << ": the measuring child failed");
  return m;
}

void check(const std::string& arch, std::array<Index, 3> grid, Build how = Build::kMemory, const std::string& up_to = "") {
  if (test::normal_suite_only("the RSS comparison", "the sanitizers' shadow memory inflates RSS several times"))
    return;
  if (how == Build::kBf16 && !cpu::gemm::bf16_available()) {
    std::cout << "skipped (" << arch << " in bf16): " << cpu::gemm::bf16_unavailable_reason() << "\n";
    return;
  }
  const Measured m = measure(arch, grid, how, up_to);
  const double used = m.peak - m.baseline;
  const double ratio = m.estimate / used;
  BOOST_TEST_MESSAGE(arch << (how == Build::kStreamed ? " streamed" : how == Build::kBf16 ? " bf16" : "")
                          << (up_to.empty() ? "" : " up to " + up_to) << " " << grid[0] << "x" << grid[1] << "x" << grid[2] << ": measured peak RSS "
                          << used / 1e6 << " MB above the baseline, estimate " << m.estimate / 1e6 << " MB (weights "
                          << m.weights / 1e6 << ", forward " << m.forward / 1e6 << "), ratio " << ratio);
  BOOST_TEST(std::abs(ratio - 1.0) <= kMargin, arch << ": estimate " << m.estimate / 1e6 << " MB against " << used / 1e6
                                                    << " MB measured (ratio " << ratio << ")");
}

}  // namespace

BOOST_AUTO_TEST_CASE(resnet50_estimate_matches_peak_rss) { check("resnet50", {32, 64, 64}); }
BOOST_AUTO_TEST_CASE(vgg19_estimate_matches_peak_rss) { check("vgg19", {32, 64, 64}); }
BOOST_AUTO_TEST_CASE(densenet121_estimate_matches_peak_rss) { check("densenet121", {48, 96, 96}); }
// Where the weights, not the activations, set the peak: streamed (one step's weights mapped in at a time)
// and bf16 (half the bytes). Measured on a Zen 4, 2 threads, with the fixed mmap threshold of measure():
// ResNet-50 streamed 0.97, bf16 0.99, VGG-19 streamed in the test's output. Without it the heap's
// retention of freed small buffers (measure()) made ResNet-50 streamed 0.83 and VGG-19 streamed 0.89: the
// estimate counts what the pass holds live, and leaves that retention out.
BOOST_AUTO_TEST_CASE(resnet50_streamed_estimate_matches_peak_rss) { check("resnet50", {32, 64, 64}, Build::kStreamed); }
BOOST_AUTO_TEST_CASE(vgg19_streamed_estimate_matches_peak_rss) { check("vgg19", {32, 64, 64}, Build::kStreamed); }
BOOST_AUTO_TEST_CASE(resnet50_bf16_estimate_matches_peak_rss) { check("resnet50", {32, 64, 64}, Build::kBf16); }
// DenseNet-121 in bf16 holds blocks 1-3 in bf16 (Plan::bf16_buffer): half their bytes, counted so.
BOOST_AUTO_TEST_CASE(densenet121_bf16_estimate_matches_peak_rss) { check("densenet121", {48, 96, 96}, Build::kBf16); }
// Built only up to layer3 (BuildUpTo): the estimate counts the packed weights up to there, not layer4's.
// AMD EPYC Zen 3, 2 threads: 250 MB of weights against 367 MB for the whole network; ratio 0.997 (whole: 0.998).
BOOST_AUTO_TEST_CASE(resnet50_up_to_layer3_estimate_matches_peak_rss) {
  check("resnet50", {32, 64, 64}, Build::kMemory, "layer3");
}
