// One whole-network forward at a time, for bench/compare_pytorch.py (and by hand).
//
//   volfeat_forward D H W [--reps N] [--warmup N] [--threads T] [--taps a,b,c] [--serve] [--stop MODULE]
//                   [--arch ARCH] [--precision float32|bf16] [--stream-weights DIR]
//
// The network is DenseNet121-3D with volfeat's seeded random (torchvision-style) weights; the input
// is a seeded normal volume (1, D, H, W, 1). Each wanted tap is pooled to a channel mean while it is
// produced (what `volfeat extract` does in shared mode), so taps cost no memory.
// Without --serve: warm-up, then --reps timed forwards; prints one JSON line per rep and a summary.
// With --serve: reads lines from stdin; "run" -> one timed forward, prints {"seconds": s}; EOF quits.
// Both print the peak RSS (getrusage) at exit.
#include <sys/resource.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <numeric>
#include <string>
#include <vector>

#include "comma_list.hpp"
#include "volfeat/backend/cpu.hpp"
#include "volfeat/core/host_memory.hpp"
#include "volfeat/core/random.hpp"
#include "volfeat/nn/network.hpp"
#include "volfeat/nn/selectors.hpp"
#include "volfeat/weights/inflate.hpp"
#include "volfeat/weights/load.hpp"

using namespace volfeat;

namespace {

double cpu_seconds() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return double(t.tv_sec) + 1e-9 * double(t.tv_nsec);
}

struct MeanTaps {
  std::vector<std::string> names;
  double checksum = 0;
  bool profile = false;
  double last = 0;  // process CPU seconds
  std::vector<std::pair<std::string, double>> spans;  // --profile: seconds up to each progress report
  void on_progress(int, int, const std::string& name) {
    if (!profile) return;
    const double now = cpu_seconds();
    spans.emplace_back(name, now - last);
    last = now;
  }
  bool wants(const std::string& n) const { return std::find(names.begin(), names.end(), n) != names.end(); }
  void operator()(const std::string&, TensorView<const float> v) {
    const auto pooled = RegionPool<Cpu, float>::forward(v, nullptr, RegionPoolKind::kMean);
    for (double x : pooled) checksum += x;
  }
};

double peak_rss_mb() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return double(u.ru_maxrss) / 1024.0;
}

}  // namespace

int main(int argc, char** argv) {
  volfeat::retain_freed_host_memory();  // as the CLI (core/host_memory.hpp)
  try {
    if (argc < 4) {
      std::cerr << "usage: volfeat_forward D H W [--reps N] [--warmup N] [--threads T] [--taps a,b,c] [--serve] "
                   "[--stop MODULE] [--arch ARCH] [--precision float32|bf16] [--stream-weights DIR] [--weights 2D.npz]\n";
      return 2;
    }
    const Index d = std::stoll(argv[1]), h = std::stoll(argv[2]), w = std::stoll(argv[3]);
    int reps = 5, warmup = 1, threads = 0;
    bool serve = false, profile = false;
    std::string taps, stop_name, arch = "densenet121", stream_weights, weights;
    Precision precision = Precision::kFloat32;
    for (int i = 4; i < argc; ++i) {
      const std::string a = argv[i];
      auto next = [&]() -> std::string {
        if (i + 1 >= argc) throw std::runtime_error(a + " needs a value");
        return argv[++i];
      };
      if (a == "--reps") reps = std::stoi(next());
      else if (a == "--warmup") warmup = std::stoi(next());
      else if (a == "--threads") threads = std::stoi(next());
      else if (a == "--taps") taps = next();
      else if (a == "--serve") serve = true;
      else if (a == "--stop") stop_name = next();
      else if (a == "--profile") profile = true;
      else if (a == "--arch") arch = next();
      else if (a == "--precision") precision = parse_precision(next());
      else if (a == "--stream-weights") stream_weights = next();
      else if (a == "--weights") weights = next();  // a torchvision 2D export, inflated as extract's default (i3d-mean along D)
      else throw std::runtime_error("unknown option " + a);
    }
    if (threads > 0) omp_set_num_threads(threads);

    if (precision == Precision::kBf16 && !cpu::gemm::bf16_available())
      throw std::runtime_error("--precision bf16: " + cpu::gemm::bf16_unavailable_reason());
    // Deferred kernels, as the CLI builds its networks (load_network_weights): each computed and packed in
    // turn, each conv built for its output at D x H x W as extract builds them (BuildUpTo::input).
    const Network<Cpu, float> net(weights.empty() ? random_state_dict(arch, 0, 1, TensorValues::kOnUse)
                                                  : load_weights(weights, InflateOptions{}),
                                  Cpu(precision, stream_weights), BuildUpTo{{}, Dims{1, d, h, w, 1}});
    MeanTaps obs;
    obs.profile = profile;
    if (taps.empty()) {  // the family's shallow / mid / deep
      const std::string family = arch_family(arch).name;
      taps = family == "DenseNet" ? "denseblock2,denseblock3,denseblock4"
             : family == "VGG"    ? "conv2_2,conv4_2,conv5_4"
                                  : "layer1,layer3,layer4";
    }
    for (const auto& t : split(taps)) obs.names.push_back(resolve_layer(net.graph(), t));
    const int stop = stop_name.empty() ? -1 : net.node_of(resolve_layer(net.graph(), stop_name));

    const Dims dims{1, d, h, w, 1};
    std::vector<float> x(size_t(dims.size()));
    {
      Rng rng(1);
      for (float& v : x) v = float(rng.normal());
    }
    const TensorView<const float> in(x.data(), dims);
    auto once = [&]() {
      const auto t0 = std::chrono::steady_clock::now();
      obs.checksum = 0;
      obs.spans.clear();
      obs.last = cpu_seconds();
      net.forward(in, obs, stop);
      return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    };

    if (serve) {
      std::cout << "{\"ready\": true, \"gflop\": " << net.graph().conv_flops(dims) / 1e9 << "}" << std::endl;
      std::string line;
      while (std::getline(std::cin, line)) {
        if (line == "run") std::cout << "{\"seconds\": " << once() << ", \"checksum\": " << obs.checksum << "}" << std::endl;
        else if (line == "quit") break;
      }
    } else {
      for (int i = 0; i < warmup; ++i) once();
      std::vector<double> t;
      for (int i = 0; i < reps; ++i) {
        t.push_back(once());
        std::cout << "{\"rep\": " << i << ", \"seconds\": " << t.back() << "}" << std::endl;
      }
      if (profile) {  // process CPU seconds per stage of the last rep: stem (up to the first dense layer), blocks, transitions
        std::vector<std::pair<std::string, double>> agg;
        for (const auto& [name, sec] : obs.spans) {
          std::string key = short_module_name(name);
          const size_t dot = key.find('.');
          if (key.rfind("denseblock", 0) == 0 && dot != std::string::npos) key = key.substr(0, dot);
          if (obs.spans.front().first == name) key = "stem+" + key;
          if (agg.empty() || agg.back().first != key) agg.emplace_back(key, 0.0);
          agg.back().second += sec;
        }
        for (const auto& [k, v] : agg) std::printf("  %-28s %8.4f s\n", k.c_str(), v);
      }
      std::vector<double> s = t;
      std::sort(s.begin(), s.end());
      if (!s.empty())
        std::printf("{\"median\": %.4f, \"min\": %.4f, \"max\": %.4f}\n", s[s.size() / 2], s.front(), s.back());
    }
    std::printf("{\"peak_rss_mb\": %.1f, \"checksum\": %.9g}\n", peak_rss_mb(), obs.checksum);
  } catch (const std::exception& e) {
    std::cerr << "volfeat_forward: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
