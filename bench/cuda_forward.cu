// One whole-network forward at a time on the CUDA backend, for bench/compare_pytorch_cuda.py: the
// GPU twin of volfeat_forward.cpp (same seeded DenseNet121-3D, same seeded input, same taps pooled to
// channel means while they are produced).
//
//   volfeat_cuda_forward D H W [--reps N] [--warmup N] [--taps a,b,c] [--arch ARCH] [--precision float32|tf32] [--profile]
//
// Each rep is timed from the host copy of the input to the last tap's pooled values on the host,
// after cudaDeviceSynchronize, so it is what one volume costs. Peak GPU memory: a thread polls
// cudaMemGetInfo every 0.2 ms during the reps; the figure is the highest use minus the use before the
// network was built (the CUDA context is excluded, as torch.cuda.max_memory_reserved excludes it).
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cctype>
#include <map>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "comma_list.hpp"
#include "volfeat/backend/thrust.hpp"
#include "volfeat/core/random.hpp"
#include "volfeat/nn/network.hpp"
#include "volfeat/nn/selectors.hpp"
#include "volfeat/weights/inflate.hpp"

using namespace volfeat;

namespace {

size_t used_bytes() {
  size_t free_b = 0, total_b = 0;
  if (cudaMemGetInfo(&free_b, &total_b) != cudaSuccess) return 0;
  return total_b - free_b;
}

struct MeanTaps {
  std::vector<std::string> names;
  double checksum = 0;
  // --profile: GPU seconds per kind of step after the input's upload (a module name's last part, digits
  // dropped except for convs: conv0 the stem, conv1 the 1x1s, conv2 the 3x3x3s, conv the transitions'),
  // the device synchronised after every step; printed for the last rep.
  bool profile = false;
  std::chrono::steady_clock::time_point last;
  std::map<std::string, double> spans;
  void on_progress(int, int, const std::string& name) {
    if (!profile) return;
    cudaDeviceSynchronize();
    const auto now = std::chrono::steady_clock::now();
    std::string key = name.substr(name.rfind('.') + 1);
    if (key.rfind("conv", 0) != 0)  // conv0 (stem), conv1 (1x1), conv2 (3x3x3) apart; transitions' "conv"
      while (!key.empty() && std::isdigit(static_cast<unsigned char>(key.back()))) key.pop_back();
    spans[key] += std::chrono::duration<double>(now - last).count();
    last = now;
  }
  bool wants(const std::string& n) const { return std::find(names.begin(), names.end(), n) != names.end(); }
  void operator()(const std::string&, TensorView<const float> v) {
    for (double x : RegionPool<Thrust, float>::forward(v, nullptr, RegionPoolKind::kMean)) checksum += x;
  }
};

}  // namespace

int main(int argc, char** argv) {
  try {
    if (argc < 4) {
      std::cerr << "usage: volfeat_cuda_forward D H W [--reps N] [--warmup N] [--taps a,b,c] [--arch ARCH] "
                   "[--precision float32|tf32]\n";
      return 2;
    }
    const Index d = std::stoll(argv[1]), h = std::stoll(argv[2]), w = std::stoll(argv[3]);
    int reps = 5, warmup = 2;
    MeanTaps obs;
    std::string taps = "denseblock2,denseblock3,denseblock4", arch = "densenet121", precision = "float32";
    for (int i = 4; i < argc; ++i) {
      const std::string a = argv[i];
      auto next = [&]() -> std::string {
        if (i + 1 >= argc) throw std::runtime_error(a + " needs a value");
        return argv[++i];
      };
      if (a == "--reps") reps = std::stoi(next());
      else if (a == "--warmup") warmup = std::stoi(next());
      else if (a == "--taps") taps = next();
      else if (a == "--arch") arch = next();
      else if (a == "--precision") precision = next();
      else if (a == "--profile") obs.profile = true;
      else throw std::runtime_error("unknown option " + a);
    }
    std::string note;
    const Thrust device = DeviceFor<Thrust>::make({parse_precision(precision), {}}, note);
    if (!note.empty()) std::cerr << note << "\n";
    cudaFree(nullptr);  // the context, before the baseline of memory use
    const size_t base = used_bytes();
    const auto t_build = std::chrono::steady_clock::now();
    const Dims dims{1, d, h, w, 1};
    const Network<Thrust, float> net(random_state_dict(arch, 0, 1, TensorValues::kOnUse), device,
                                     BuildUpTo{{}, dims});
    cudaDeviceSynchronize();
    const double build_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_build).count();
    for (const auto& t : split(taps)) obs.names.push_back(resolve_layer(net.graph(), t));

    std::vector<float> x(size_t(dims.size()));
    {
      Rng rng(1);
      for (float& v : x) v = float(rng.normal());
    }
    auto once = [&]() {
      const auto t0 = std::chrono::steady_clock::now();
      obs.checksum = 0;
      obs.spans.clear();
      const Tensor<Thrust, float> in = from_host(Thrust{}, dims, x.data());
      obs.last = std::chrono::steady_clock::now();
      net.forward(in.view(), obs);
      cudaDeviceSynchronize();
      return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    };
    std::atomic<bool> polling{true};
    std::atomic<size_t> peak{used_bytes()};
    std::thread poller([&] {
      while (polling.load()) {
        const size_t u = used_bytes();
        if (u > peak.load()) peak.store(u);
        std::this_thread::sleep_for(std::chrono::microseconds(200));
      }
    });
    for (int i = 0; i < warmup; ++i) once();
    std::vector<double> t;
    for (int i = 0; i < reps; ++i) t.push_back(once());
    polling.store(false);
    poller.join();
    if (const cudaError_t e = cudaGetLastError(); e != cudaSuccess) fail("CUDA: ", cudaGetErrorString(e));
    for (const auto& [k, v] : obs.spans) std::printf("  %-14s %8.4f s\n", k.c_str(), v);
    std::sort(t.begin(), t.end());
    std::printf("{\"median\": %.5f, \"min\": %.5f, \"max\": %.5f, \"build_s\": %.4f, \"peak_gpu_gib\": %.3f, "
                "\"checksum\": %.9g, \"gflop\": %.1f, \"precision\": \"%s\"}\n",
                t[t.size() / 2], t.front(), t.back(), build_s, double(peak.load() - base) / double(1ull << 30),
                obs.checksum, net.graph().conv_flops(dims) / 1e9, precision_name(device.precision));
  } catch (const std::exception& e) {
    std::cerr << "volfeat_cuda_forward: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
