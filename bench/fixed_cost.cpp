// The fixed cost of a `volfeat extract` process, phase by phase, and the prepare cost of a CT file:
//
//   volfeat_fixed_cost [--arch a,b,c] [--weights-dir DIR] [--ct FILE.nii.gz] [--reps N] [--threads T]
//
// Per architecture (default densenet121,vgg19,resnet50), each phase --reps times (median, min-max, seconds):
//   generate   seeded_random_weights(arch, 0): volfeat's seeded random network, its conv kernels
//              computed up front (kNow), and deferred to the build as the CLI does (kOnUse)
//   load       read_weights_file(DIR/ARCH.npz): read, hash, check and (a 2D torchvision export) inflate,
//              its kernels deferred to the build as the CLI does (kOnUse)
//   build      Network<Cpu, float>(state, kReleaseWeights): validate, compute deferred kernels and pack
//              every conv, as the CLI does
//   generate, previous Box-Muller: the generator used before, for the ratio in the same run
// and with --ct, the stages of prepare on that file: its gzip stream inflated whole by zlib and by
// libdeflate (io/gz.hpp), read as float (read_nifti_float), normalised to the network input.
// Every phase's result is checked (finite weights, a network that runs a 16^3 forward) outside the timing.
#include <algorithm>
#include <chrono>
#include <ctime>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <iostream>
#include <string>
#include <vector>

#include "comma_list.hpp"
#include "volfeat/backend/cpu.hpp"
#include "volfeat/core/random.hpp"
#include "volfeat/io/gz.hpp"
#include "volfeat/io/nifti.hpp"
#include "volfeat/nn/network.hpp"
#include "volfeat/pipeline/normalize.hpp"
#include "volfeat/weights/load.hpp"

using namespace volfeat;

namespace {

using Clock = std::chrono::steady_clock;

double cpu_seconds() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return double(t.tv_sec) + 1e-9 * double(t.tv_nsec);
}

struct Stat {
  double median = 0, lo = 0, hi = 0, cpu = 0;  // wall seconds; cpu: median process CPU seconds (all threads)
};

// Wall time is what a user waits; CPU seconds (all threads) are what the phase costs whatever else the
// machine runs, which on a shared VM is the steadier of the two.
Stat time_reps(int reps, const std::function<void()>& f) {
  std::vector<double> t, c;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = Clock::now();
    const double c0 = cpu_seconds();
    f();
    c.push_back(cpu_seconds() - c0);
    t.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
  }
  std::sort(t.begin(), t.end());
  std::sort(c.begin(), c.end());
  return {t[t.size() / 2], t.front(), t.back(), c[c.size() / 2]};
}

void row(const std::string& what, const std::string& phase, const Stat& s) {
  std::printf("| %s | %s | %.3f | %.3f–%.3f | %.3f |\n", what.c_str(), phase.c_str(), s.median, s.lo, s.hi, s.cpu);
  std::fflush(stdout);
}

// The network runs: a 16^3 (or larger, as the architecture needs) forward gives finite outputs.
void check_network(const Network<Cpu, float>& net) {
  const auto need = net.min_input_size(net.last_node());
  const Index d = std::max<Index>(16, need[0]), h = std::max<Index>(16, need[1]), w = std::max<Index>(16, need[2]);
  std::vector<float> x(size_t(d * h * w * net.input_channels()), 0.5f);
  struct Finite {
    bool ok = true;
    bool wants(const std::string&) const { return true; }
    void operator()(const std::string& name, TensorView<const float> v) {
      const Index n = v.dims.voxels();
      for (Index i = 0; i < n; ++i)
        for (Index c = 0; c < v.dims.c; ++c)
          if (!std::isfinite(v.data[i * v.ld + c])) {
            if (ok) std::fprintf(stderr, "non-finite output in %s\n", name.c_str());
            ok = false;
          }
    }
  } obs;
  net.forward(TensorView<const float>{x.data(), Dims{1, d, h, w, net.input_channels()}}, obs);
  if (!obs.ok) fail(net.arch(), ": the built network gives non-finite outputs");
}

// The generator the seeded random networks used before weights/seeded_normal.hpp (Box-Muller over
// mt19937_64, serial), for the comparison in the same run.
StateDict box_muller_state_dict(const std::string& arch, uint64_t seed) {
  const Graph g = build_graph(arch, 1);
  StateDict sd;
  Rng rng(seed);
  for (const ParamSpec& p : g.params(3)) {
    Param param{p.shape, std::vector<float>(size_t(element_count(p.shape)))};
    if (p.shape.size() == 5) {
      const int64_t fan = element_count(p.shape) / (g.conv_init() == ConvInit::kFanIn ? p.shape[0] : p.shape[1]);
      const double std_dev = std::sqrt(2.0 / double(fan));
      for (float& v : param.values) v = float(std_dev * rng.normal());
    } else {
      const auto leaf = p.key.substr(p.key.rfind('.') + 1);
      std::fill(param.values.begin(), param.values.end(), (leaf == "weight" || leaf == "running_var") ? 1.0f : 0.0f);
    }
    sd.params.emplace(p.key, std::move(param));
  }
  return sd;
}

// (Deferred kernels are computed in a copy: the timed build computes them again from the original.)
void check_weights(StateDict sd) {
  materialize(sd);
  for (const auto& [k, p] : sd.params)
    for (auto v : p.values)
      if (!std::isfinite(v)) fail(sd.origin, ": ", k, " holds a non-finite value");
}

}  // namespace

int main(int argc, char** argv) {
  try {
    std::vector<std::string> archs{"densenet121", "vgg19", "resnet50"};
    std::string weights_dir, ct;
    int reps = 5, threads = 0;
    for (int i = 1; i < argc; ++i) {
      const std::string a = argv[i];
      auto next = [&]() -> std::string {
        if (i + 1 >= argc) fail(a, ": needs a value");
        return argv[++i];
      };
      if (a == "--arch") archs = split(next());
      else if (a == "--weights-dir") weights_dir = next();
      else if (a == "--ct") ct = next();
      else if (a == "--reps") reps = std::stoi(next());
      else if (a == "--threads") threads = std::stoi(next());
      else fail("usage: volfeat_fixed_cost [--arch a,b] [--weights-dir DIR] [--ct FILE] [--reps N] [--threads T]");
    }
    if (threads > 0) omp_set_num_threads(threads);
    std::printf("%d threads, %d reps\n\n| what | phase | median wall s | min–max wall s | median CPU s |\n|---|---|---:|---:|---:|\n",
                omp_get_max_threads(), reps);
    for (const std::string& arch : archs) {
      // Every rep's result is kept until the phase's timing ends: a process never frees its weights or
      // network before its forward pass, so freeing the previous rep's (munmap) is no part of the cost.
      std::vector<StateDict> sds;
      std::vector<std::unique_ptr<Network<Cpu, float>>> nets;
      auto generate = [&](const std::function<StateDict()>& make) {
        sds.clear();
        sds.reserve(size_t(reps));
        return time_reps(reps, [&] { sds.push_back(make()); });
      };
      auto build = [&] {
        nets.clear();
        nets.reserve(size_t(reps));
        // As the CLI builds it: each rep from its own StateDict, released as it is packed.
        size_t next = 0;
        return time_reps(reps, [&] { nets.push_back(std::make_unique<Network<Cpu, float>>(sds[next++], kReleaseWeights)); });
      };
      row(arch, "generate, previous Box-Muller (serial)", generate([&] { return box_muller_state_dict(arch, 0); }));
      check_weights(sds.back());
      row(arch, "generate (seeded random)", generate([&] { return seeded_random_weights(arch, 0); }));
      check_weights(sds.back());
      row(arch, "build (seeded random)", build());
      check_network(*nets.back());
      row(arch, "generate (seeded random, deferred)",
          generate([&] { return seeded_random_weights(arch, 0, 1, TensorValues::kOnUse); }));
      check_weights(sds.back());
      row(arch, "build (seeded random, deferred)", build());
      check_network(*nets.back());
      const std::string file = weights_dir + "/" + arch + ".npz";
      if (weights_dir.empty()) continue;
      if (!std::filesystem::exists(file)) {
        std::printf("| %s | load | (no %s) | | |\n", arch.c_str(), file.c_str());
        continue;
      }
      row(arch, "load (" + std::filesystem::path(file).filename().string() + ")",
          generate([&] { return read_weights_file(file, {}, true, TensorValues::kOnUse).state; }));
      check_weights(sds.back());
      row(arch, "build (loaded)", build());
      check_network(*nets.back());
    }
    if (!ct.empty()) {
      const std::string name = std::filesystem::path(ct).filename().string();
      Volume<float> v;
      {
        const MappedFile file(ct);
        const NiftiInfo info = read_nifti_header(ct);
        const size_t expected = size_t(info.vox_offset + info.grid.voxels() * info.bytes_per_voxel);
        GzBytes out;
        std::string error;
        size_t sizes[2] = {0, 0};
        row(name, "gunzip, zlib", time_reps(reps, [&] {
              if (!gunzip_zlib(file.data(), file.size(), expected, out, error)) fail(ct, ": ", error);
              sizes[0] = out.size;
            }));
#if VOLFEAT_HAVE_LIBDEFLATE
        row(name, "gunzip, libdeflate", time_reps(reps, [&] {
              if (!gunzip_libdeflate(file.data(), file.size(), expected, out, error)) fail(ct, ": ", error);
              sizes[1] = out.size;
            }));
        if (sizes[0] != sizes[1]) fail(ct, ": zlib and libdeflate disagree on the size");
#endif
      }
      row(name, "read_nifti_float", time_reps(reps, [&] { v = read_nifti_float(ct); }));
      double sum = 0;
      for (float x : v.data) sum += x;
      if (!std::isfinite(sum)) fail(ct, ": non-finite voxels");
      const Normalization n = parse_normalization(kDefaultNormalize);
      std::vector<float> in;
      row(name, "normalize_volume", time_reps(reps, [&] { in = normalize_volume(v.data, n); }));
      if (in.size() != v.data.size()) fail("normalize_volume: wrong size");
    }
  } catch (const std::exception& e) {
    std::cerr << "volfeat_fixed_cost: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
