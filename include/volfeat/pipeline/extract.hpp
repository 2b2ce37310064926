#pragma once
// The main job, in stages that the CLI, the report presets and the sweep driver share:
//   prepare_volume   CT + label mask -> regions, preprocessed network input   (Task I)
//   load_network_weights   --weights / inflation options / seeded random network
//   extract_features one forward pass (shared) or one per region (mask-input) -> pooled vectors (Task III)
//   similarity_table cosine per region pair and layer                          (Task IV)
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "volfeat/core/progress.hpp"
#include "volfeat/core/sha256.hpp"
#include "volfeat/io/nifti.hpp"
#include "volfeat/nn/densenet3d.hpp"
#include "volfeat/nn/selectors.hpp"
#include "volfeat/ops/region_pool.hpp"
#include "volfeat/pipeline/normalize.hpp"
#include "volfeat/pipeline/phantom.hpp"
#include "volfeat/pipeline/region_weights.hpp"
#include "volfeat/pipeline/regions.hpp"
#include "volfeat/pipeline/resample.hpp"
#include "volfeat/pipeline/similarity.hpp"
#include "volfeat/weights/load.hpp"

namespace volfeat {

inline constexpr const char* kPhantomLabels = "femur=1,tibia=2";
inline constexpr const char* kDefaultPreset = "denseblock4-tail";

struct ExtractOptions {
  std::string ct, mask;  // no CT: the built-in knee phantom
  std::string labels;    // default: femur=1,tibia=2
  bool background = true;
  std::string normalize = kDefaultNormalize;
  std::optional<double> resample_mm;
  std::optional<double> crop_margin_mm;
  std::optional<float> nan_to;
  std::string mode = "shared";  // shared | mask-input
  std::string pool = "mean";    // mean | max
  std::string weights;          // no weights: volfeat's seeded random network
  InflateOptions inflate;
  bool stem_given = false;      // --stem was passed (imagenet needs the rgb stem)
  std::string arch = "densenet121";
  std::vector<std::string> layers;
  std::string preset;           // used when layers is empty (default denseblock4-tail)
};

// What the network sees, and what the outputs describe.
struct PreparedVolume {
  Volume<float> ct;  // HU, after resampling/cropping
  Volume<int32_t> mask;
  std::vector<Region> regions;
  std::vector<int32_t> unlisted_labels;  // in the mask but in no region
  Normalization normalization;
  std::vector<float> input;  // channels-last (D, H, W, C), C = normalization.channels()
  std::string ct_name, mask_name, ct_sha256, mask_sha256;
  bool phantom = false;
  std::vector<std::vector<float>> indicators;  // per region, on the grid
};

inline PreparedVolume prepare_volume(const ExtractOptions& o, Progress& progress) {
  PreparedVolume v;
  if (o.ct.empty() != o.mask.empty()) fail("--ct and --mask go together (neither: the built-in knee phantom)");
  progress.begin("loading volumes");
  if (o.ct.empty()) {
    Phantom p = make_knee_phantom(0);
    v.ct = std::move(p.ct);
    v.mask = std::move(p.labels);
    v.phantom = true;
    v.ct_name = "built-in knee phantom (seed 0)";
    v.mask_name = "built-in knee phantom labels (femur=1, tibia=2)";
  } else {
    ReadOptions ro;
    ro.nan_to = o.nan_to;
    v.ct = read_nifti_float(o.ct, ro);
    v.mask = read_nifti_labels(o.mask);
    require_same_grid(v.ct.grid, o.ct, v.mask.grid, o.mask);
    v.ct_name = o.ct;
    v.mask_name = o.mask;
    v.ct_sha256 = sha256_file(o.ct);
    v.mask_sha256 = sha256_file(o.mask);
  }
  progress.end();

  v.regions = parse_labels(o.labels.empty() ? kPhantomLabels : o.labels, o.background);
  v.unlisted_labels = match_regions(v.regions, count_labels(v.mask), v.mask_name);
  if (o.crop_margin_mm) {
    std::set<int32_t> wanted;
    for (const Region& r : v.regions)
      if (r.label != 0) wanted.insert(r.label);
    const Box box = labels_box(v.mask, wanted, *o.crop_margin_mm);
    v.ct = crop(v.ct, box);
    v.mask = crop(v.mask, box);
  }
  if (o.resample_mm) {
    v.ct = resample_linear(v.ct, *o.resample_mm);
    v.mask = resample_nearest(v.mask, *o.resample_mm);
  }
  if (o.crop_margin_mm || o.resample_mm) match_regions(v.regions, count_labels(v.mask), v.mask_name + " (after crop/resample)");
  v.normalization = parse_normalization(o.normalize);
  v.input = normalize_volume(v.ct.data, v.normalization);
  for (const Region& r : v.regions) v.indicators.push_back(region_indicator(v.mask, r.label));
  return v;
}

struct NetworkWeights {
  StateDict state;
  std::string kind;    // pretrained | seeded-init | random | unknown
  std::string sha256;  // of the weights file; empty for the built-in random network
  std::string description;
};

inline NetworkWeights load_network_weights(const ExtractOptions& o, int input_channels) {
  NetworkWeights w;
  InflateOptions inflate = o.inflate;
  if (input_channels == 3) {
    if (o.stem_given && inflate.stem != "rgb")
      fail("--normalize imagenet feeds 3 channels: it needs --stem rgb, not --stem ", inflate.stem);
    inflate.stem = "rgb";
  }
  if (o.weights.empty()) {
    w.state = seeded_random_weights(densenet_config(o.arch), inflate.seed, input_channels);
    w.kind = "random";
    w.description = std::string("volfeat's seeded random ") + o.arch + " (seed " + std::to_string(inflate.seed) +
                    "; no --weights given)";
    return w;
  }
  w.state = load_densenet_weights(o.weights, inflate);
  w.kind = weights_kind(w.state);
  w.sha256 = sha256_file(o.weights);
  const int64_t stem = w.state.at("features.conv0.weight").shape[1];
  if (stem != input_channels)
    fail(o.weights, ": conv0 takes ", stem, " channel(s) but --normalize ", o.normalize, " makes ", input_channels,
         input_channels == 3 ? " (convert with --stem rgb, or pass the 2D export)" : " (use a gray stem: --stem sum)");
  w.description = o.weights + " (" + w.kind + ")";
  return w;
}

inline std::vector<std::string> resolve_layers(const ExtractOptions& o, const std::vector<ModuleInfo>& modules) {
  std::vector<std::string> sel = o.layers;
  if (sel.empty()) sel = layer_preset(o.preset.empty() ? kDefaultPreset : o.preset);
  std::vector<std::string> full;
  for (const auto& s : sel) {
    const std::string name = resolve_layer(modules, s);
    if (std::find(full.begin(), full.end(), name) != full.end()) fail("--layers: ", s, " names ", name, " twice");
    full.push_back(name);
  }
  return full;
}

struct RegionFeatures {
  std::vector<std::string> layers;  // full names, in the order asked
  // features[region][layer]
  std::map<std::string, std::map<std::string, std::vector<double>>> features;
  std::map<std::string, std::array<Index, 4>> layer_shapes;  // (C, d, h, w)
  int forward_passes = 0;
  double forward_seconds = 0;
};

namespace detail {
// Pools the wanted taps over each region as they are produced, so no tap is ever copied whole.
template <class Backend, class T>
struct RegionPooler {
  const std::vector<std::string>& layers;
  const PreparedVolume& volume;
  std::vector<size_t> regions;  // indices into volume.regions pooled by this pass
  bool weighted;                // shared mode: partial-volume weights; mask-input: whole map
  RegionPoolKind kind;
  RegionFeatures& out;
  Progress& progress;
  std::map<std::array<Index, 3>, std::vector<std::vector<double>>> weights_by_grid;

  bool wants(const std::string& name) const { return std::find(layers.begin(), layers.end(), name) != layers.end(); }
  void operator()(const std::string& name, TensorView<const T> f) {
    const auto grid = f.dims.spatial();
    out.layer_shapes[name] = {f.dims.c, grid[0], grid[1], grid[2]};
    if (!weighted) {
      for (size_t r : regions) out.features[volume.regions[r].name][name] = RegionPool<Backend, T>::forward(f, nullptr, kind);
      return;
    }
    auto& w = weights_by_grid[grid];
    if (w.empty())
      for (size_t r = 0; r < volume.regions.size(); ++r)
        w.push_back(region_weights(volume.indicators[r], volume.ct.grid.dims, grid));
    for (size_t r : regions) {
      double sum = 0;
      for (double x : w[r]) sum += x;
      if (!(sum > 0))
        fail("region ", volume.regions[r].name, " has no weight on the grid of ", name, " (", grid[0], "x", grid[1],
             "x", grid[2], ")");
      out.features[volume.regions[r].name][name] = RegionPool<Backend, T>::forward(f, w[r].data(), kind);
    }
  }
  void on_progress(int done, int stop, const std::string& name) {
    progress.update(double(done + 1) / double(stop + 1), name.substr(9));
  }
};
}  // namespace detail

template <class Backend, class T>
RegionFeatures extract_features(const DenseNet3d<Backend, T>& net, const PreparedVolume& v,
                                const std::vector<std::string>& layers, const std::string& mode,
                                const std::string& pool, Progress& progress) {
  if (mode != "shared" && mode != "mask-input") fail("--mode '", mode, "': expected shared or mask-input");
  if (pool != "mean" && pool != "max") fail("--pool '", pool, "': expected mean or max");
  const RegionPoolKind kind = pool == "mean" ? RegionPoolKind::kMean : RegionPoolKind::kMax;
  RegionFeatures out;
  out.layers = layers;
  int stop = 0;
  for (const auto& l : layers) stop = std::max(stop, net.module_index(l));
  const auto& g = v.ct.grid.dims;
  const Index c = v.normalization.channels();
  const Dims dims{1, g[0], g[1], g[2], c};

  auto pass = [&](const std::vector<float>& input, std::vector<size_t> regions, bool weighted, const std::string& what) {
    detail::RegionPooler<Backend, T> pooler{layers, v, std::move(regions), weighted, kind, out, progress, {}};
    const std::vector<T> x(input.begin(), input.end());
    const auto device = from_host(Backend{}, dims, x.data());
    progress.begin(what);
    net.forward(device.view(), pooler, stop);
    out.forward_seconds += progress.end();
    ++out.forward_passes;
  };

  std::vector<size_t> all(v.regions.size());
  for (size_t r = 0; r < all.size(); ++r) all[r] = r;
  if (mode == "shared") {
    pass(v.input, all, true, "forward pass (shared by " + std::to_string(all.size()) + " regions)");
  } else {
    for (size_t r : all) {
      std::vector<float> masked(v.input);
      for (size_t i = 0; i < masked.size(); ++i) masked[i] *= v.indicators[r][i / size_t(c)];
      pass(masked, {r}, false,
           "forward pass " + std::to_string(r + 1) + "/" + std::to_string(all.size()) + " (" + v.regions[r].name + ")");
    }
  }
  return out;
}

struct SimilarityTable {
  std::vector<std::string> pairs;  // "a-b", i < j in region order
  std::vector<std::pair<std::string, std::string>> pair_regions;
  std::vector<std::string> layers;
  std::vector<std::vector<double>> value;  // [pair][layer]
};

inline SimilarityTable similarity_table(const std::vector<Region>& regions, const RegionFeatures& f) {
  SimilarityTable t;
  t.layers = f.layers;
  for (size_t i = 0; i < regions.size(); ++i)
    for (size_t j = i + 1; j < regions.size(); ++j) {
      const std::string &a = regions[i].name, &b = regions[j].name;
      t.pairs.push_back(a + "-" + b);
      t.pair_regions.emplace_back(a, b);
      std::vector<double> row;
      for (const auto& l : f.layers) row.push_back(cosine_similarity(f.features.at(a).at(l), f.features.at(b).at(l)));
      t.value.push_back(row);
    }
  return t;
}

}  // namespace volfeat
