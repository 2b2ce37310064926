#pragma once
// The files of an extract run (Task V). Each is written under a temporary name and renamed, and
// run.json goes last: a directory with run.json holds a complete run.
#include <filesystem>
#include <future>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "volfeat/core/atomic_file.hpp"
#include "volfeat/io/npz.hpp"
#include "volfeat/pipeline/extract.hpp"
#include "volfeat/pipeline/region_report.hpp"
#include "volfeat/pipeline/run_environment.hpp"
#include "volfeat/version.hpp"

namespace volfeat {

inline std::string short_layer(const std::string& full) { return short_module_name(full); }

inline std::string format_double(double v) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

// The reports' shape: one row per pair, one column per layer.
inline std::string similarities_csv(const SimilarityTable& t) {
  std::ostringstream os;
  os << "pair";
  for (const auto& l : t.layers) os << ',' << short_layer(l);
  os << '\n';
  for (size_t p = 0; p < t.pairs.size(); ++p) {
    os << t.pairs[p];
    for (double v : t.value[p]) os << ',' << format_double(v);
    os << '\n';
  }
  return os.str();
}

// Everything that defines a value, one row per pair x layer: rows from different runs concatenate.
struct RunFacts {
  std::string mode, pool, normalize, scheme, axis, stem, weights_kind, weights_sha256, ct, mask;
};

inline std::string similarities_long_csv(const SimilarityTable& t, const RunFacts& f) {
  std::ostringstream os;
  os << "pair,region_a,region_b,layer,similarity,value,mode,pool,normalize,scheme,axis,stem,weights_kind,"
        "weights_sha256,ct,mask\n";
  auto quoted = [](const std::string& s) {
    std::string q = "\"";
    for (char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c);
    return q + "\"";
  };
  for (size_t p = 0; p < t.pairs.size(); ++p)
    for (size_t l = 0; l < t.layers.size(); ++l)
      os << t.pairs[p] << ',' << t.pair_regions[p].first << ',' << t.pair_regions[p].second << ','
         << short_layer(t.layers[l]) << ",cosine," << format_double(t.value[p][l]) << ',' << f.mode << ',' << f.pool
         << ',' << quoted(f.normalize) << ',' << f.scheme << ',' << f.axis << ',' << f.stem << ',' << f.weights_kind
         << ',' << f.weights_sha256 << ',' << quoted(f.ct) << ',' << quoted(f.mask) << '\n';
  return os.str();
}

// The first pooling's vectors (extract pools one way), keyed region/layer.
inline NpzMap features_npz(const RegionFeatures& f) {
  NpzMap m;
  for (const auto& [region, layers] : f.of(f.pools.at(0)))
    for (const auto& [layer, v] : layers) m.emplace(region + "/" + layer, NpyArray::from({int64_t(v.size())}, v.data()));
  return m;
}

inline nlohmann::json grid_json(const Grid& g) {
  return {{"dims_dhw", g.dims}, {"spacing_dhw_mm", g.spacing}, {"affine_ijk", g.affine}};
}

struct ExtractRun {
  std::string command_line;
  ExtractOptions options;
  PreparedVolume volume;
  NetworkWeights weights;
  RegionFeatures features;
  SimilarityTable table;
  nlohmann::json timings = nlohmann::json::object();
  int threads = 1;
  std::string backend = "cpu", precision = "float32";  // precision: what the convs ran (DeviceFor)
  std::string precision_note;                          // why it is not what --precision asked, or empty
  std::string precision_kernels;                       // which kernels ran bf16 (DeviceFor::kernels), or empty
  std::string stream_weights;                          // --stream-weights: the directory, or empty (in memory)
  // The outputs that read the HU volume itself, made before the forward pass (summarize_ct).
  std::string region_report;  // region_report.csv
  RgbImage region_slices;     // region_slices.png
};

// region_report.csv and region_slices.png (the two passes over the whole volume side by side), then the
// HU volume's values go (its grid stays): the forward pass needs only the normalised input and the mask.
// At 216x512x512 the HU volume is 216 MB of the run's peak, and the pass's activations reuse its pages
// instead of faulting in fresh ones.
inline void summarize_ct(ExtractRun& r) {
  auto report = std::async(std::launch::async, [&r] {
    return region_report_csv(r.volume.ct, r.volume.mask, r.volume.regions, r.volume.unlisted_labels);
  });
  r.region_slices = render_region_slices(r.volume.ct, r.volume.mask, r.volume.regions);
  r.region_report = report.get();
  std::vector<float>().swap(r.volume.ct.data);
}

inline RunFacts run_facts(const ExtractRun& r) {
  const auto meta = state_dict_meta(r.weights.state);
  auto str = [&](const char* key, const std::string& fallback) {
    return meta.contains(key) && meta[key].is_string() ? meta[key].get<std::string>() : fallback;
  };
  return {r.options.mode, r.options.pool, r.volume.normalization.text, str("scheme", r.options.inflate.scheme),
          str("axis", std::string(1, r.options.inflate.axis)), str("stem", stem_rule_name(r.options.inflate.stem)), r.weights.kind,
          r.weights.sha256, r.volume.ct_name, r.volume.mask_name};
}

inline nlohmann::json run_json(const ExtractRun& r) {
  using nlohmann::json;
  const ExtractOptions& o = r.options;
  const std::string arch = detect_arch(r.weights.state);
  json regions = json::array();
  for (const Region& g : r.volume.regions) regions.push_back({{"name", g.name}, {"label", g.label}, {"voxels", g.voxels}});
  json layers = json::array();
  for (const auto& l : r.features.layers) {
    const auto& s = r.features.layer_shapes.at(l);
    layers.push_back({{"name", l}, {"channels", s[0]}, {"grid_dhw", {s[1], s[2], s[3]}}});
  }
  json run = run_environment(r.backend, r.threads);
  run.update(json{
      {"command", r.command_line},
      {"precision", r.precision},
      {"precision_note", r.precision_note},
      {"precision_kernels", r.precision_kernels.empty() ? nlohmann::json(nullptr) : nlohmann::json(r.precision_kernels)},
      {"stream_weights", r.stream_weights.empty() ? nlohmann::json(nullptr) : nlohmann::json(r.stream_weights)},
      {"config",
       {{"mode", o.mode.name()}, {"pool", o.pool}, {"normalize", r.volume.normalization.text},
        {"denoise", o.preprocessing.denoise.text}, {"contrast", o.preprocessing.contrast.text},
        {"preprocessing", preprocessing_json(o.preprocessing, r.volume.normalization.text)},
        {"labels", o.labels.empty() ? kPhantomLabels : o.labels}, {"background", o.background},
        {"resample_mm", o.resample_mm ? json(*o.resample_mm) : json(nullptr)},
        {"crop_to_labels_mm", o.crop_margin_mm ? json(*o.crop_margin_mm) : json(nullptr)},
        {"layers_requested", o.layers}, {"preset", o.layers.empty() ? (o.preset.empty() ? default_preset(arch) : o.preset) : ""},
        {"inflate", {{"scheme", o.inflate.scheme}, {"axis", std::string(1, o.inflate.axis)}, {"stem", stem_rule_name(o.inflate.stem)}}},
        {"seed", o.inflate.seed}, {"arch", arch}}},
      {"weights",
       {{"path", o.weights.empty() ? json(nullptr) : json(o.weights)}, {"sha256", r.weights.sha256},
        {"kind", r.weights.kind}, {"pretrained", r.weights.kind == "pretrained"},
        {"description", r.weights.description}, {"meta", state_dict_meta(r.weights.state)}}},
      {"inputs",
       {{"ct", {{"path", r.volume.ct_name}, {"sha256", r.volume.ct_sha256}}},
        {"mask", {{"path", r.volume.mask_name}, {"sha256", r.volume.mask_sha256}}},
        {"mask_reorientation", reorientation_json(r.volume.mask_reorientation)},
        {"phantom", r.volume.phantom},
        {"grid_after_preprocessing", grid_json(r.volume.ct.grid)}}},
      {"regions", regions},
      {"unlisted_labels", r.volume.unlisted_labels},
      {"layers", layers},
      {"pairs", r.table.pairs},
      {"forward_passes", r.features.forward_passes},
      {"timings_s", r.timings},
  });
  return run;
}

inline void write_extract_outputs(const std::string& dir, const ExtractRun& r) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) fail(dir, ": cannot create output directory (", ec.message(), ")");
  // A stale run.json would vouch for files this run is about to replace.
  std::filesystem::remove(dir + "/run.json", ec);
  if (r.region_report.empty()) fail("write_extract_outputs: the run has no region report (call summarize_ct)");
  write_file_atomic(dir + "/similarities.csv", similarities_csv(r.table));
  write_file_atomic(dir + "/similarities_long.csv", similarities_long_csv(r.table, run_facts(r)));
  write_npz(dir + "/features.npz", features_npz(r.features));
  write_region_slices_png(dir + "/region_slices.png", r.region_slices);
  write_file_atomic(dir + "/region_report.csv", r.region_report);
  write_file_atomic(dir + "/run.json", run_json(r).dump(2) + "\n");
}

}  // namespace volfeat
