#pragma once
// The main job, in stages that the CLI, the report presets and the sweep driver share:
//   prepare_volume   CT + label mask -> regions, preprocessed network input   (Task I)
//   load_network_weights   --weights / inflation options / seeded random network
//   extract_features one forward pass (shared) or one per region (mask-input) -> pooled vectors (Task III)
//   similarity_table cosine per region pair and layer                          (Task IV)
#include <future>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "volfeat/backend/device_for.hpp"
#include "volfeat/core/precision.hpp"
#include "volfeat/core/progress.hpp"
#include "volfeat/core/sha256.hpp"
#include "volfeat/io/ct_volume.hpp"
#include "volfeat/io/nifti.hpp"
#include "volfeat/nn/network.hpp"
#include "volfeat/nn/selectors.hpp"
#include "volfeat/ops/region_pool.hpp"
#include "volfeat/pipeline/extract_mode.hpp"
#include "volfeat/pipeline/normalize.hpp"
#include "volfeat/pipeline/phantom.hpp"
#include "volfeat/pipeline/pooling.hpp"
#include "volfeat/pipeline/preprocessing.hpp"
#include "volfeat/pipeline/region_weights.hpp"
#include "volfeat/pipeline/regions.hpp"
#include "volfeat/pipeline/reorient.hpp"
#include "volfeat/pipeline/resample.hpp"
#include "volfeat/pipeline/similarity.hpp"
#include "volfeat/weights/load.hpp"

namespace volfeat {

inline constexpr const char* kPhantomLabels = "femur=1,tibia=2";

struct ExtractOptions {
  std::string ct, mask;  // no CT: the built-in knee phantom; ct may be a DICOM series directory
  std::string ct_series; // --series: the SeriesInstanceUID to read when ct is a directory of several
  std::string labels;    // default: femur=1,tibia=2
  bool background = true;
  std::string normalize = kDefaultNormalize;
  Preprocessing preprocessing;  // denoise -> contrast, before normalize
  std::optional<double> resample_mm;
  std::optional<double> crop_margin_mm;
  std::optional<float> nan_to;
  ExtractMode mode;             // shared | mask-input
  std::string pool = "mean";    // mean | max
  std::string weights;          // no weights: volfeat's seeded random network
  InflateOptions inflate;
  bool stem_given = false;      // --stem was passed (imagenet needs the rgb stem)
  bool inflate_given = false;   // --inflate was passed (it applies to 2D exports only)
  std::string arch = "densenet121";
  bool arch_given = false;      // --arch passed with --weights: the file must hold that architecture
  uint64_t max_memory = 0;      // bytes a run may use (--max-memory); 0: what the machine has available
  std::vector<std::string> layers;
  std::string preset;           // used when layers is empty (default: the architecture's first preset)
  DeviceOptions device;  // asked for (--precision, --stream-weights); the device says what runs (DeviceFor)
};

// What the network sees, and what the outputs describe.
struct PreparedVolume {
  Volume<float> ct;  // HU, after resampling/cropping
  Volume<int32_t> mask;
  std::vector<Region> regions;
  std::vector<int32_t> unlisted_labels;  // in the mask but in no region
  Normalization normalization;
  PreprocessingTimes preprocessing_seconds;
  std::vector<float> input;  // channels-last (D, H, W, C), C = normalization.channels()
  std::string ct_name, mask_name, ct_sha256, mask_sha256;
  bool phantom = false;
  std::optional<AxisReorientation> mask_reorientation;  // set when the mask was stored in another axis order
};

inline void prepare_loaded_volume(const ExtractOptions& o, PreparedVolume& v);

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
    // Both files at once, one thread each: inflating gzip is serial, and a scanner-sized CT takes
    // about a second to inflate and another to hash. The CT's error, if any, is reported first.
    auto mask = std::async(std::launch::async, [&] {
      std::pair<Volume<int32_t>, std::string> m{read_nifti_labels(o.mask), ""};
      m.second = sha256_file(o.mask);
      return m;
    });
    // A DICOM directory is hashed after reading, when its slice order is known (ct_sha256).
    auto ct_sha256 = std::async(std::launch::async, [&] { return is_ct_directory(o.ct) ? "" : sha256_file(o.ct); });
    CtVolume ct = read_ct_volume(o.ct, ro, o.ct_series);
    v.ct = std::move(ct.volume);
    v.ct_sha256 = ct_sha256.get();
    if (ct.format == "dicom") {
      v.ct_sha256 = volfeat::ct_sha256(o.ct, ct);
      progress.note(o.ct + ": " + describe_ct_source(ct));
    }
    std::tie(v.mask, v.mask_sha256) = mask.get();
    v.mask_reorientation = conform_mask_to_grid(v.ct.grid, o.ct, v.mask, o.mask);
    v.ct_name = o.ct;
    v.mask_name = o.mask;
  }
  progress.end();
  if (v.mask_reorientation) progress.note(reorientation_note(*v.mask_reorientation, v.mask_name));
  prepare_loaded_volume(o, v);
  return v;
}

// The steps after reading, for a CT and mask already on the same grid in v (files or, in the Python
// module, arrays): regions, crop, resample, normalisation.
inline void prepare_loaded_volume(const ExtractOptions& o, PreparedVolume& v) {
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
  if (o.crop_margin_mm || o.resample_mm) match_regions(v.regions, count_labels(v.mask), v.mask_name + " (after crop/resample)", true);
  // After crop/resample, so the filters run on the grid the network sees; ct then holds the
  // denoised/enhanced HU the outputs (region report, slices) describe.
  v.preprocessing_seconds = apply_preprocessing(v.ct, o.preprocessing);
  v.normalization = parse_normalization(o.normalize);
  v.input = normalize_volume(v.ct.data, v.normalization);
}

struct NetworkWeights {
  StateDict state;
  std::string kind;    // pretrained | seeded-init | random | unknown
  std::string sha256;  // of the weights file; empty for the built-in random network
  std::string description;
};

// The network of `member` (0 unless the scheme is an ensemble of several networks). Its seeded or
// inflated conv kernels are deferred: the network's build computes each where it packs it.
inline NetworkWeights load_network_weights(const ExtractOptions& o, int input_channels, size_t member = 0) {
  NetworkWeights w;
  InflateOptions inflate = scheme_members(o.inflate).at(member);
  if (input_channels == 3) {
    if (o.stem_given && inflate.stem != StemRule::kRgb)
      fail("--normalize imagenet feeds 3 channels: it needs --stem rgb, not --stem ", inflate.stem);
    inflate.stem = StemRule::kRgb;
  }
  if (o.weights.empty()) {
    if (o.inflate_given && o.inflate.scheme != "random")
      fail("--inflate ", o.inflate.scheme, " inflates a 2D export: pass --weights (a torchvision export), or use "
           "--inflate random");
    w.state = seeded_random_weights(o.arch, inflate.seed, input_channels, TensorValues::kOnUse);
    w.kind = "random";
    w.description = std::string("volfeat's seeded random ") + o.arch + " (seed " + std::to_string(inflate.seed) +
                    "; no --weights given)";
    return w;
  }
  WeightsFile file = read_weights_file(o.weights, inflate, true, TensorValues::kOnUse);
  w.state = std::move(file.state);
  w.sha256 = std::move(file.sha256);
  if (o.inflate_given && file.file_dims == 3)
    fail(o.weights, ": already holds 3D weights (", weights_kind(w.state), ", scheme ",
         state_dict_meta(w.state).value("scheme", std::string("unknown")),
         "); --inflate applies to 2D torchvision exports");
  if (o.arch_given) {
    const std::string found = detect_arch(w.state);
    if (o.arch != found)
      fail(o.weights, ": holds ", found, " weights (", arch_family(found).describe(found), ") but --arch ", o.arch,
           " was asked for");
  }
  w.kind = weights_kind(w.state);
  const int64_t stem = w.state.at(stem_key(w.state)).shape[1];
  if (stem != input_channels)
    fail(o.weights, ": conv0 takes ", stem, " channel(s) but --normalize ", o.normalize, " makes ", input_channels,
         input_channels == 3 ? " (convert with --stem rgb, or pass the 2D export)" : " (use a gray stem: --stem sum)");
  w.description = o.weights + " (" + w.kind + ")";
  if (scheme_members(o.inflate).size() > 1)
    w.description += ", " + o.inflate.scheme + " member " + std::to_string(member + 1) + ": " + inflate.scheme;
  return w;
}

inline std::vector<std::string> resolve_layers(const ExtractOptions& o, const Graph& g) {
  std::vector<std::string> sel = o.layers;
  if (sel.empty()) sel = layer_preset(g.arch(), o.preset.empty() ? default_preset(g.arch()) : o.preset);
  std::vector<std::string> full;
  for (const auto& s : sel) {
    const std::string name = resolve_layer(g, s);
    if (std::find(full.begin(), full.end(), name) != full.end()) fail("--layers: ", s, " names ", name, " twice");
    full.push_back(name);
  }
  return full;
}

using LayerVectors = std::map<std::string, std::vector<double>>;     // layer -> vector
using RegionVectors = std::map<std::string, LayerVectors>;             // region -> layer -> vector

struct RegionFeatures {
  std::vector<std::string> layers;  // full names, in the order asked
  std::vector<std::string> pools;   // pooling names, in the order asked
  std::map<std::string, RegionVectors> vectors;  // pool -> region -> layer -> vector
  std::map<std::string, std::map<std::string, ChannelGram>> grams;  // region -> layer (for CKA)
  std::map<std::string, std::array<Index, 4>> layer_shapes;       // (C, d, h, w)
  int forward_passes = 0;
  double forward_seconds = 0;

  const RegionVectors& of(const std::string& pool) const {
    auto it = vectors.find(pool);
    if (it == vectors.end()) fail("no features pooled with ", pool);
    return it->second;
  }
};

namespace detail {
// Pools the wanted taps over each region as they are produced, so no tap outlives its module.
// mean and max stream through the backend's RegionPool op; other poolings and CKA's Gram matrices
// gather the region's voxels from one host copy of the tap.
template <class Backend, class T>
struct RegionPooler {
  const Backend& device;
  const std::vector<std::string>& layers;
  const PreparedVolume& volume;
  std::vector<size_t> regions;  // indices into volume.regions pooled by this pass
  bool weighted;                // shared mode: partial-volume weights; mask-input: whole map
  std::vector<Pooling> pools;
  bool grams;
  RegionFeatures& out;
  Progress& progress;
  std::map<std::array<Index, 3>, std::vector<std::vector<double>>> weights_by_grid;

  bool wants(const std::string& name) const { return std::find(layers.begin(), layers.end(), name) != layers.end(); }

  void operator()(const std::string& name, TensorView<const T> f) {
    const auto grid = f.dims.spatial();
    out.layer_shapes[name] = {f.dims.c, grid[0], grid[1], grid[2]};
    const std::vector<double>* w = nullptr;
    std::vector<std::vector<double>>* all_w = nullptr;
    if (weighted) {
      all_w = &weights_by_grid[grid];
      if (all_w->empty()) {
        std::vector<int32_t> labels;
        for (const Region& g : volume.regions) labels.push_back(g.label);
        *all_w = region_weights(volume.mask, labels, grid);
      }
    }
    bool need_samples = grams;
    for (const Pooling& p : pools) need_samples = need_samples || !p.streaming();
    std::vector<T> host;
    if (need_samples) host = to_host(device, f);
    for (size_t r : regions) {
      const std::string& region = volume.regions[r].name;
      if (weighted) {
        w = &(*all_w)[r];
        double sum = 0;
        for (double x : *w) sum += x;
        if (!(sum > 0))
          fail("region ", region, " has no weight on the grid of ", name, " (", grid[0], "x", grid[1], "x", grid[2], ")");
      }
      for (const Pooling& p : pools)
        if (p.streaming())
          out.vectors[p.name][region][name] = RegionPool<Backend, T>::forward(
              f, w ? w->data() : nullptr, p.kind == Pooling::Kind::kMean ? RegionPoolKind::kMean : RegionPoolKind::kMax);
      if (!need_samples) continue;
      RegionSamples samples{f.dims.c, {}, {}};
      for (Index v = 0; v < f.dims.voxels(); ++v) {
        const double wv = w ? (*w)[size_t(v)] : 1.0;
        if (wv <= 0) continue;
        samples.weight.push_back(wv);
        samples.features.insert(samples.features.end(), host.begin() + v * f.dims.c, host.begin() + (v + 1) * f.dims.c);
      }
      for (const Pooling& p : pools)
        if (!p.streaming()) out.vectors[p.name][region][name] = pool_samples(samples, p);
      if (grams)
        out.grams[region][name] = channel_gram(samples.features.data(), samples.weight.data(), long(samples.count()),
                                               long(samples.channels));
    }
  }
  void on_progress(int done, int total, const std::string& name) {
    progress.update(double(done) / double(total), short_module_name(name));
  }
};
}  // namespace detail

// The network input of a prepared volume: (N=1, D, H, W of its grid, C=the normalisation's channels).
// Every pass of extract_features runs on it (mask-input passes too); the callers build their networks
// for it (BuildUpTo::input).
inline Dims forward_dims(const PreparedVolume& v) {
  const auto& g = v.ct.grid.dims;
  return Dims{1, g[0], g[1], g[2], v.normalization.channels()};
}

// One network: one forward pass (shared) or one per region (mask-input), every layer and pooling
// from the same passes.
template <class Backend, class T>
RegionFeatures extract_features(const Network<Backend, T>& net, const PreparedVolume& v,
                                const std::vector<std::string>& layers, ExtractMode mode,
                                const std::vector<std::string>& pool_names, Progress& progress, bool grams = false) {
  std::vector<Pooling> pools;
  for (const auto& p : pool_names) pools.push_back(parse_pooling(p));
  RegionFeatures out;
  out.layers = layers;
  out.pools = pool_names;
  int stop = 0;
  for (const auto& l : layers) stop = std::max(stop, net.node_of(l));
  const Index c = v.normalization.channels();
  const Dims dims = forward_dims(v);

  auto pass = [&](const std::vector<float>& input, std::vector<size_t> regions, bool weighted, const std::string& what) {
    detail::RegionPooler<Backend, T> pooler{net.device(), layers, v, std::move(regions), weighted, pools, grams, out, progress, {}};
    progress.begin(what);
    if constexpr (std::is_same_v<T, float> && kHostResident<Backend>) {
      net.forward(TensorView<const T>{input.data(), dims}, pooler, stop);  // no copy of the input
    } else {
      const std::vector<T> x(input.begin(), input.end());
      const auto on_device = from_host(net.device(), dims, x.data());
      net.forward(on_device.view(), pooler, stop);
    }
    out.forward_seconds += progress.end();
    ++out.forward_passes;
  };

  std::vector<size_t> all(v.regions.size());
  for (size_t r = 0; r < all.size(); ++r) all[r] = r;
  if (mode == ExtractMode::kShared) {
    pass(v.input, all, true, "forward pass (shared by " + std::to_string(all.size()) + " regions)");
  } else {
    for (size_t r : all) {
      std::vector<float> masked = huge_page_vector<float>(v.input.size());
      const int32_t* m = v.mask.data.data();
      const int32_t label = v.regions[r].label;
      for (size_t i = 0; i < masked.size(); ++i) masked[i] = v.input[i] * (m[i / size_t(c)] == label ? 1.0f : 0.0f);
      pass(masked, {r}, false,
           "forward pass " + std::to_string(r + 1) + "/" + std::to_string(all.size()) + " (" + v.regions[r].name + ")");
    }
  }
  return out;
}

template <class Backend, class T>
RegionFeatures extract_features(const Network<Backend, T>& net, const PreparedVolume& v,
                                const std::vector<std::string>& layers, ExtractMode mode, const std::string& pool,
                                Progress& progress) {
  return extract_features(net, v, layers, mode, std::vector<std::string>{pool}, progress);
}

// A scheme's features: its one network, or each member network of an ensemble
// (orientations-concat/-mean) with the members' vectors combined per region, layer and pooling.
// `first` is member 0's already-built network.
template <class Backend, class T>
RegionFeatures extract_scheme_features(const ExtractOptions& o, const Network<Backend, T>& first,
                                       const PreparedVolume& v, const std::vector<std::string>& layers,
                                       const std::vector<std::string>& pools, Progress& progress, bool grams = false) {
  const size_t members = scheme_members(o.inflate).size();
  RegionFeatures out = extract_features(first, v, layers, o.mode, pools, progress, grams);
  if (members == 1) return out;
  if (grams) fail("similarity cka is not defined for the ensemble scheme ", o.inflate.scheme);
  std::vector<RegionFeatures> parts{std::move(out)};
  for (size_t m = 1; m < members; ++m) {
    const Network<Backend, T> net(load_network_weights(o, int(v.normalization.channels()), m).state, first.device(),
                                  BuildUpTo{layers, forward_dims(v)});
    parts.push_back(extract_features(net, v, layers, o.mode, pools, progress, false));
  }
  RegionFeatures combined = parts[0];
  combined.forward_passes = 0;
  combined.forward_seconds = 0;
  for (const auto& p : parts) combined.forward_passes += p.forward_passes, combined.forward_seconds += p.forward_seconds;
  for (auto& [pool, regions] : combined.vectors)
    for (auto& [region, by_layer] : regions)
      for (auto& [layer, vec] : by_layer) {
        std::vector<std::vector<double>> member_vectors;
        for (const auto& p : parts) member_vectors.push_back(p.vectors.at(pool).at(region).at(layer));
        vec = combine_member_features(o.inflate.scheme, member_vectors);
      }
  for (auto& [layer, shape] : combined.layer_shapes)
    if (inflation_scheme(o.inflate.scheme).combine == CombineRule::kConcat) shape[0] *= Index(members);
  return combined;
}

struct SimilarityTable {
  std::vector<std::string> pairs;  // "a-b", i < j in region order
  std::vector<std::pair<std::string, std::string>> pair_regions;
  std::vector<std::string> layers;
  std::vector<std::vector<double>> value;  // [pair][layer]
};

inline SimilarityTable similarity_table(const std::vector<Region>& regions, const RegionFeatures& f,
                                        const std::string& pool, const Similarity& sim) {
  SimilarityTable t;
  t.layers = f.layers;
  for (size_t i = 0; i < regions.size(); ++i)
    for (size_t j = i + 1; j < regions.size(); ++j) {
      const std::string &a = regions[i].name, &b = regions[j].name;
      t.pairs.push_back(a + "-" + b);
      t.pair_regions.emplace_back(a, b);
      std::vector<double> row;
      for (const auto& l : f.layers)
        row.push_back(sim.needs_samples() ? linear_cka(f.grams.at(a).at(l), f.grams.at(b).at(l))
                                          : vector_similarity(sim, f.of(pool).at(a).at(l), f.of(pool).at(b).at(l)));
      t.value.push_back(row);
    }
  return t;
}

// Cosine of the first pooling's vectors: the extract command's table.
inline SimilarityTable similarity_table(const std::vector<Region>& regions, const RegionFeatures& f) {
  return similarity_table(regions, f, f.pools.at(0), parse_similarity("cosine"));
}

}  // namespace volfeat
