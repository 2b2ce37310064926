#pragma once
// The memory guard of `volfeat extract`: before the volumes are read and again before the forward
// pass, estimate the run's peak memory and stop with the estimate and a way out (--resample,
// --crop-to-labels) when it exceeds what the machine has (MemAvailable, or the cgroup's limit) or
// --max-memory, instead of starting and being killed by the OOM killer halfway.
//
// The estimate adds the pipeline's own arrays to nn/memory_estimate.hpp's replay of the forward
// pass; both describe the current implementation and are meant to err on the high side.
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "volfeat/pipeline/extract_mode.hpp"
#include "volfeat/core/error.hpp"
#include "volfeat/core/progress.hpp"
#include "volfeat/io/ct_volume.hpp"
#include "volfeat/io/nifti.hpp"
#include "volfeat/nn/memory_estimate.hpp"
#include "volfeat/pipeline/extract.hpp"

namespace volfeat {

// Code, shared libraries and OpenMP thread stacks of a volfeat process.
inline constexpr double kProcessBaselineBytes = 64.0 * (1 << 20);
// Added on top of the data's bytes (see estimate_extract_memory).
inline constexpr double kAllocatorSlack = 0.10;

// "4G", "500M", "1.5GiB", "2048k", "123456" (bytes). Binary multiples: 1K = 1024 bytes.
inline uint64_t parse_memory_size(const std::string& text, const std::string& option = "--max-memory") {
  auto bad = [&] { fail(option, " '", text, "': expected a size such as 4G, 500M or 2048K (bytes without a suffix)"); };
  size_t used = 0;
  double value = 0;
  try {
    value = std::stod(text, &used);
  } catch (const std::exception&) {
    bad();
  }
  std::string unit = text.substr(used);
  for (char& ch : unit) ch = char(std::toupper(static_cast<unsigned char>(ch)));
  if (unit.size() > 1 && (unit.substr(1) == "B" || unit.substr(1) == "IB")) unit = unit.substr(0, 1);
  double scale = 1;
  if (unit.empty() || unit == "B") scale = 1;
  else if (unit == "K") scale = 1024.0;
  else if (unit == "M") scale = 1024.0 * 1024;
  else if (unit == "G") scale = 1024.0 * 1024 * 1024;
  else if (unit == "T") scale = 1024.0 * 1024 * 1024 * 1024;
  else bad();
  const double bytes = value * scale;
  if (!std::isfinite(bytes) || !(bytes >= 1) || bytes > 9e18) bad();
  return uint64_t(bytes);
}

inline std::string format_bytes(double bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (bytes >= 1024 && u < 4) bytes /= 1024, ++u;
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", bytes, units[u]);
  return buf;
}

namespace detail::memory {

inline bool read_number(const std::string& path, double& out) {
  std::ifstream f(path);
  std::string s;
  if (!(f >> s) || s == "max") return false;
  try {
    out = std::stod(s);
  } catch (const std::exception&) {
    return false;
  }
  return true;
}

}  // namespace detail::memory

// Memory a process may still allocate: MemAvailable, capped by a cgroup (v2 or v1) memory limit
// minus the cgroup's usage. `what` says which bound applied. Returns false if nothing is known.
inline bool available_memory(double& bytes, std::string& what) {
  bool known = false;
  std::ifstream meminfo("/proc/meminfo");
  std::string key;
  double kb = 0;
  std::string unit;
  while (meminfo >> key >> kb) {
    std::getline(meminfo, unit);
    if (key == "MemAvailable:") {
      bytes = kb * 1024, what = "MemAvailable", known = true;
      break;
    }
  }
  double limit = 0, usage = 0;
  const bool v2 = detail::memory::read_number("/sys/fs/cgroup/memory.max", limit) &&
                  detail::memory::read_number("/sys/fs/cgroup/memory.current", usage);
  const bool v1 = !v2 && detail::memory::read_number("/sys/fs/cgroup/memory/memory.limit_in_bytes", limit) &&
                  detail::memory::read_number("/sys/fs/cgroup/memory/memory.usage_in_bytes", usage);
  if ((v2 || v1) && limit < 1e18) {  // v1 reports "no limit" as ~2^63
    const double room = std::max(0.0, limit - usage);
    if (!known || room < bytes) bytes = room, what = "the cgroup memory limit", known = true;
  }
  return known;
}

// This process's resident set, from /proc/self/statm.
inline double resident_bytes() {
  std::ifstream f("/proc/self/statm");
  double size = 0, resident = 0;
  if (!(f >> size >> resident)) return 0;
  return resident * double(::sysconf(_SC_PAGESIZE));
}

// Everything the estimate depends on, so it can be re-evaluated for another grid (the --resample
// suggestion) without touching any data.
struct ExtractSizes {
  std::array<Index, 3> grid{{0, 0, 0}};  // (D, H, W) the network sees
  std::array<double, 3> spacing{{1, 1, 1}};  // mm along (D, H, W)
  Index channels = 1;                    // network input channels (3 for imagenet)
  bool ct_held = true;                   // the HU volume still held during the pass (summarize_ct lets it go)
  int regions = 0;
  ExtractMode mode;
  const Graph* graph = nullptr;  // the network's (stem channels included)
  double state_dict_values = 0;  // values the loaded StateDict holds (as double)
  int stop = -1;                 // module index the pass runs to
  int built_last = -1;           // the last node the network packed (Network::built_last; -1: all)
  std::vector<std::string> taps;
  int threads = 1;
  bool gathers_samples = false;  // a non-streaming pooling (gem, topk, ...): taps copied to the host
  bool grams = false;            // CKA: a C x C Gram matrix per region and tap
  bool host_resident = true;     // the backend reads the host input in place (kHostResident)
  PlanTraits traits;             // the backend's fused ops (rings of planes or whole temporaries)
  bool weights_streamed = false; // --stream-weights: one step's packed weights held at a time
  bool weights_bf16 = false;     // --precision bf16 ran: the packed weights are half as large
};

struct MemoryEstimate {
  double total = 0;
  std::vector<std::pair<std::string, double>> parts;  // what makes up the total, largest items
  std::string peak_module;
  bool fits_network = true;  // the grid reaches the stop module with at least one voxel
};

inline MemoryEstimate estimate_extract_memory(const ExtractSizes& s) {
  const double v = double(s.grid[0]) * double(s.grid[1]) * double(s.grid[2]);
  const double f = 4;  // float / int32
  MemoryEstimate e;
  // PreparedVolume: mask (int32), input (C floats), and the HU volume (float) unless its outputs were
  // made and it was let go before the pass (summarize_ct).
  e.parts.push_back({"volumes", v * f * ((s.ct_held ? 2 : 1) + double(s.channels))});
  // StateDict values (float), and the network's packed copy (Winograd's transformed weights where a
  // conv runs it; bf16 half as large), or, when it streams them, its batchnorms and biases: the pass
  // counts each step's conv weights while the step runs.
  const size_t packed_bytes = s.weights_bf16 ? 2 : sizeof(float);  // batchnorms stay float: a few KB
  PlanTraits traits = s.traits;
  if (s.weights_streamed) traits.streamed_weight_bytes = double(packed_bytes);
  e.parts.push_back({"weights", s.state_dict_values * f + (s.weights_streamed ? resident_weight_bytes(*s.graph, sizeof(float), s.built_last)
                                                                              : network_weight_bytes(*s.graph, s.traits, packed_bytes, s.built_last))});
  // extract_features' pass: mask-input's masked copy; a device backend's T copy and device tensor.
  const double input_copies = (s.mode == ExtractMode::kMaskInput ? 1 : 0) + (s.host_resident ? 0 : 2);
  e.parts.push_back({"pass input", v * f * double(s.channels) * input_copies});
  const bool weighted = s.mode == ExtractMode::kShared;
  std::vector<std::array<Index, 3>> grids_seen;
  const ForwardMemory fw = simulate_forward(
      *s.graph, s.grid, s.stop, s.taps, sizeof(float), s.threads, traits,
      [&](int, const std::array<Index, 3>& grid, Index ch) {
        TapBytes t;
        const double g = double(grid[0]) * double(grid[1]) * double(grid[2]);
        // RegionPooler with a non-streaming pooling or CKA: a host copy of the tap (T) and, one
        // region at a time, its voxels' features and weights as double; CKA keeps a Gram matrix.
        if (s.gathers_samples || s.grams) t.transient += g * double(ch) * (4 + 8) + 8 * g;
        if (s.grams) t.kept += double(s.regions) * double(ch) * double(ch) * 8;
        if (!weighted || std::find(grids_seen.begin(), grids_seen.end(), grid) != grids_seen.end()) return t;
        grids_seen.push_back(grid);
        // region_weights(): per region, its (D, h, w) partial means and each thread's (H, w) slice,
        // then one double per voxel of the tap's grid per region, cached for the rest of the pass.
        t.transient += 8 * double(s.regions) *
                       (double(s.grid[0]) * double(grid[1]) * double(grid[2]) + double(s.threads) * double(s.grid[1]) * double(grid[2]));
        t.kept += 8 * g * double(s.regions);
        return t;
      });
  e.parts.push_back({"forward pass", fw.peak_bytes});
  // glibc keeps freed heap blocks (below its mmap threshold, up to 32 MiB) for reuse, so RSS runs a
  // few percent above the live bytes, most in mask-input mode's repeated passes (measured: up to 4%).
  double data = 0;
  for (const auto& [what, bytes] : e.parts) data += bytes;
  e.parts.push_back({"allocator slack", kAllocatorSlack * data});
  e.parts.push_back({"process", kProcessBaselineBytes});
  e.peak_module = fw.peak_module;
  e.fits_network = fw.stop_grid[0] > 0 && fw.stop_grid[1] > 0 && fw.stop_grid[2] > 0;
  for (const auto& [what, bytes] : e.parts) e.total += bytes;
  return e;
}

inline std::string describe_estimate(const MemoryEstimate& e) {
  std::string s;
  for (const auto& [what, bytes] : e.parts) s += (s.empty() ? "" : " + ") + what + " " + format_bytes(bytes);
  return s;
}

// The limit runs are held to: --max-memory, else what this process holds plus what it may still
// allocate (MemAvailable or the cgroup's room). False when neither is known.
inline bool memory_limit(uint64_t max_memory, double& limit, std::string& what) {
  if (max_memory > 0) {
    limit = double(max_memory);
    what = "--max-memory " + format_bytes(limit);
    return true;
  }
  double avail = 0;
  std::string source;
  if (!available_memory(avail, source)) return false;
  const double held = resident_bytes();
  limit = avail + held;
  what = "the " + format_bytes(limit) + " available (" + source + " " + format_bytes(avail) + " + this process's " +
         format_bytes(held) + ")";
  return true;
}

// Reading the CT and the mask (and resampling them): the volumes' share of the peak, from the
// headers alone, before a byte of voxel data is read.
inline void check_load_memory(const ExtractOptions& o, uint64_t max_memory, Progress& progress) {
  if (o.ct.empty() || o.mask.empty()) return;  // the phantom is small
  const Grid ct_grid = read_ct_grid(o.ct, o.ct_series);  // a NIfTI header, or a DICOM series' tags
  const NiftiInfo mask = read_nifti_header(o.mask);
  const double v = double(ct_grid.voxels()), vm = double(mask.grid.voxels());
  double need = 4 * v + 4 * vm;
  if (o.resample_mm && *o.resample_mm > 0 && std::isfinite(*o.resample_mm)) {
    const Grid r = resampled_grid(ct_grid, *o.resample_mm);
    need += 8 * double(r.voxels());
  }
  double limit = 0;
  std::string what;
  if (!memory_limit(max_memory, limit, what)) return;
  if (need > limit)
    fail_as<MemoryLimitError>(o.ct, ": a ", ct_grid.dims[2], "x", ct_grid.dims[1], "x", ct_grid.dims[0],
         " volume needs about ", format_bytes(need), " just to load (CT as float32, labels as int32",
         o.resample_mm ? ", resampled copies" : "", "), more than ", what,
         "; downsample or crop the files first (the network needs several times more)");
  (void)progress;
}

// Before the forward pass(es): the whole run's estimated peak against the limit.
inline void check_extract_memory(const ExtractSizes& s, uint64_t max_memory,
                                 Progress& progress) {
  const MemoryEstimate e = estimate_extract_memory(s);
  double limit = 0;
  std::string what;
  if (!memory_limit(max_memory, limit, what)) {
    progress.note("memory: estimated peak " + format_bytes(e.total) + " (available memory unknown)");
    return;
  }
  progress.note("memory: estimated peak " + format_bytes(e.total) + " (" + describe_estimate(e) + "), limit " +
                format_bytes(limit));
  if (e.total <= limit) return;

  // The finest isotropic spacing that would fit, if one does.
  std::string suggestion = "--resample MM";
  const double finest = std::max({s.spacing[0], s.spacing[1], s.spacing[2]});
  for (double mm : {0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 12.0, 16.0}) {
    if (mm <= finest * 1.001) continue;
    ExtractSizes r = s;
    for (size_t a = 0; a < 3; ++a)
      r.grid[a] = std::max<Index>(1, std::llround(double(s.grid[a]) * s.spacing[a] / mm));
    const MemoryEstimate er = estimate_extract_memory(r);
    if (!er.fits_network) break;  // coarser grids would be too small for the tapped layers
    const double need = er.total;
    if (need <= limit) {
      std::ostringstream os;
      os << "--resample " << mm << " (about " << format_bytes(need) << ")";
      suggestion = os.str();
      break;
    }
  }
  const std::array<Index, 3>& g = s.grid;
  const std::string peak = short_module_name(e.peak_module);
  fail_as<MemoryLimitError>("estimated peak memory ", format_bytes(e.total), " (", describe_estimate(e), "; forward peak at ", peak, ", ",
       s.mode, " mode, ", s.regions, " regions, ", g[2], "x", g[1], "x", g[0], " (i,j,k) voxels) exceeds ", what,
       "; shrink the input with ", suggestion, " or --crop-to-labels MARGIN_MM",
       ", or tap earlier layers");
}

// The sizes of a prepared run, for check_extract_memory().
// `pools`: the poolings the pass computes (default: --pool); `grams`: CKA's Gram matrices too.
template <class Net>
ExtractSizes extract_sizes(const ExtractOptions& o, const PreparedVolume& v, const NetworkWeights& w, const Net& net,
                           const std::vector<std::string>& layers, int threads,
                           const std::vector<std::string>& pools = {}, bool grams = false) {
  ExtractSizes s;
  s.grid = v.ct.grid.dims;
  s.spacing = v.ct.grid.spacing;
  s.ct_held = !v.ct.data.empty();
  s.channels = v.normalization.channels();
  s.regions = int(v.regions.size());
  s.mode = o.mode;
  s.graph = &net.graph();
  for (const auto& [key, p] : w.state.params) s.state_dict_values += double(p.values.size());
  if (w.state.source)  // what deferred kernels are computed from (a 2D export), held until they all are
    for (const auto& [key, p] : w.state.source->params) s.state_dict_values += double(p.size());
  s.stop = 0;
  for (const auto& l : layers) s.stop = std::max(s.stop, net.node_of(l));
  s.built_last = net.built_last();
  s.taps = layers;
  s.threads = threads;
  for (const std::string& p : pools.empty() ? std::vector<std::string>{o.pool} : pools)
    s.gathers_samples = s.gathers_samples || !parse_pooling(p).streaming();
  s.grams = grams;
  s.host_resident = kHostResident<typename Net::backend_type>;
  s.traits = net.plan_traits();
  if constexpr (kStreamsWeights<typename Net::backend_type>) s.weights_streamed = net.device().weight_file != nullptr;
  s.weights_bf16 = DeviceFor<typename Net::backend_type>::precision(net.device()) == Precision::kBf16;
  return s;
}

}  // namespace volfeat
