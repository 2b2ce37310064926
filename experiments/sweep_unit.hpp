#pragma once
// The parts of `volfeat sweep` that do not depend on who runs it: SweepArgs (CLI) -> SweepOptions
// (parsed, checked) -> SweepUnit (volume x scheme x mode, in the single run's order) ->
// run_sweep_unit<Backend> -> SweepUnitRows, the rows the unit owes, which a driver writes
// (sweep_command.hpp: one process; cohort/sweep_cohort.hpp: shards and ranks).
#include <CLI/CLI.hpp>
#include <ctime>
#include <filesystem>
#include <map>
#include <optional>

#include "cohort/manifest.hpp"
#include "cohort/shard.hpp"
#include "common_options.hpp"
#include "volfeat/pipeline/extract_outputs.hpp"

namespace volfeat::cli {

struct SweepArgs {
  CommonArgs common;
  std::string schemes, pools = "mean", modes = "shared", similarities = "cosine", manifest, shard;
  int null_seeds = 0;
};

inline constexpr uint64_t kNullSeedBase = 1000;  // null networks use seeds 1001.., apart from --seed

inline std::string utc_now() {
  const std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buf;
}

// Everything a sweep needs, parsed and checked before anything runs.
struct SweepOptions {
  ExtractOptions base;
  std::string dir, command;
  std::vector<std::string> schemes, pools, modes, similarities, vector_similarities, layers;
  bool want_cka = false, quiet = false;
  bool from_manifest = false;  // a failing volume is then recorded and the others go on
  int null_seeds = 0, threads = 0;
  double wait_lock = 0;
  std::vector<VolumeEntry> volumes;
  std::optional<Shard> shard;
};

inline SweepOptions sweep_options(const SweepArgs& a, const std::string& command) {
  SweepOptions o;
  o.base = a.common.extract;
  o.dir = a.common.out, o.command = command, o.quiet = a.common.quiet, o.threads = a.common.threads;
  o.wait_lock = a.common.wait_lock, o.null_seeds = a.null_seeds;
  o.schemes = split_list(a.schemes.empty() ? o.base.inflate.scheme : a.schemes);
  o.pools = split_list(a.pools), o.modes = split_list(a.modes), o.similarities = split_list(a.similarities);
  if (o.pools.empty() || o.modes.empty() || o.similarities.empty())
    fail("--pools, --modes and --similarities need at least one value");
  for (const auto& s : o.schemes) inflation_scheme(s);
  for (const auto& p : o.pools) parse_pooling(p);
  for (const auto& m : o.modes)
    if (m != "shared" && m != "mask-input") fail("--modes: '", m, "' (expected shared, mask-input)");
  for (const auto& s : o.similarities) {
    if (parse_similarity(s).needs_samples()) o.want_cka = true;
    else o.vector_similarities.push_back(s);
  }
  if (o.null_seeds < 0) fail("--null-seeds ", o.null_seeds, ": expected >= 0");
  for (const auto& s : o.schemes)
    if (o.base.weights.empty() && s != "random")
      fail("--schemes ", s, " inflates a 2D export: pass --weights (a torchvision export), or sweep only 'random'");
  if (!a.shard.empty()) o.shard = parse_shard(a.shard);
  if (!a.manifest.empty()) {
    if (!o.base.ct.empty()) fail("--manifest and --ct are alternatives: pass one");
    o.volumes = read_manifest(a.manifest);
    o.from_manifest = true;
  } else {
    o.volumes.push_back({o.base.ct.empty() ? "phantom" : std::filesystem::path(o.base.ct).filename().string(),
                         o.base.ct, o.base.mask, o.base.labels, o.base.ct_series});
  }
  // Layer names from the architecture the weights (or --arch) define.
  const Graph graph = o.base.weights.empty() ? build_graph(o.base.arch) : graph_of(read_state_dict(o.base.weights));
  o.layers = resolve_layers(o.base, graph);
  return o;
}

inline nlohmann::json sweep_settings_json(const SweepOptions& o) {
  return {{"schemes", o.schemes},       {"layers", o.layers},         {"pools", o.pools},
          {"modes", o.modes},           {"similarities", o.similarities}, {"null_seeds", o.null_seeds},
          {"weights", o.base.weights},  {"normalize", o.base.normalize}, {"precision", precision_name(o.base.device.precision)},
          {"preprocessing", preprocessing_json(o.base.preprocessing, o.base.normalize)}};
}

inline void write_sweep_json(const SweepOptions& o) {
  nlohmann::json j = sweep_settings_json(o);
  j["command"] = o.command;
  j["volfeat_version"] = VOLFEAT_VERSION_STRING;
  write_file_atomic(o.dir + "/sweep.json", j.dump(2) + "\n");
}

// ---- units, and the rows each owes -------------------------------------------------------------

struct SweepUnit {
  size_t volume;
  std::string scheme;  // "null-random:SEED" for null networks
  std::string mode;
  bool null() const { return scheme.rfind("null-random:", 0) == 0; }
};

// In the single run's order: per volume, per mode, the null networks first, then the schemes.
inline std::vector<SweepUnit> sweep_units(const SweepOptions& o) {
  std::vector<SweepUnit> units;
  for (size_t v = 0; v < o.volumes.size(); ++v)
    for (const auto& mode : o.modes) {
      for (int s = 1; s <= o.null_seeds; ++s) units.push_back({v, "null-random:" + std::to_string(kNullSeedBase + s), mode});
      for (const auto& scheme : o.schemes) units.push_back({v, scheme, mode});
    }
  return units;
}

struct SweepCell {
  std::string layer, pool, similarity;
};

inline std::vector<SweepCell> sweep_cells(const SweepOptions& o) {
  std::vector<SweepCell> cells;
  for (const auto& l : o.layers) {
    for (const auto& p : o.pools)
      for (const auto& s : o.vector_similarities) cells.push_back({l, p, s});
    if (o.want_cka) cells.push_back({l, "-", "cka"});
  }
  return cells;
}

// The keys of a unit's rows, in the order they are written: cells x the volume's region pairs.
inline std::vector<std::vector<std::string>> unit_keys(const SweepOptions& o, const SweepUnit& u) {
  const VolumeEntry& v = o.volumes[u.volume];
  const auto regions = parse_labels(v.labels.empty() ? kPhantomLabels : v.labels, o.base.background);
  std::vector<std::vector<std::string>> keys;
  for (const auto& c : sweep_cells(o))
    for (size_t i = 0; i < regions.size(); ++i)
      for (size_t j = i + 1; j < regions.size(); ++j)
        keys.push_back({v.id, u.scheme, u.mode, short_layer(c.layer), c.pool, c.similarity,
                        regions[i].name + "-" + regions[j].name});
  return keys;
}

// The null networks' values per (volume, mode, layer, pool, similarity, pair), in seed order.
class NullValues {
 public:
  void add(const std::vector<std::string>& row) {
    if (row[1].rfind("null-random:", 0) == 0) values_[cell(row)].push_back(std::stod(row[9]));
  }
  const std::vector<double>& of(const std::vector<std::string>& key) const {
    static const std::vector<double> none;
    const auto it = values_.find(cell(key));
    return it == values_.end() ? none : it->second;
  }

 private:
  static std::string cell(const std::vector<std::string>& k) {
    return k[0] + '\x1f' + k[2] + '\x1f' + k[3] + '\x1f' + k[4] + '\x1f' + k[5] + '\x1f' + k[6];
  }
  std::map<std::string, std::vector<double>> values_;
};

// One prepared volume at a time: units come volume by volume (the dealer prefers a rank's last
// volume), and a cohort of CTs held at once would not fit in memory.
struct VolumeCache {
  size_t volume = size_t(-1);
  std::optional<PreparedVolume> prepared;
};

using SweepUnitRows = std::vector<std::vector<std::string>>;

template <class Backend>
SweepUnitRows run_sweep_unit(const SweepOptions& so, const SweepUnit& unit, VolumeCache& cache,
                             const NullValues& nulls, Progress& progress) {
  const VolumeEntry& vol = so.volumes[unit.volume];
  ExtractOptions o = so.base;
  o.ct = vol.ct, o.ct_series = vol.series, o.mask = vol.mask, o.labels = vol.labels, o.mode = unit.mode;
  o.inflate.scheme = unit.null() ? "random" : unit.scheme;
  if (unit.null()) o.inflate.seed = std::stoull(unit.scheme.substr(12));
  o.inflate_given = !o.weights.empty();
  if (cache.volume != unit.volume) {
    cache.prepared.reset();  // free the last volume before reading the next
    cache.volume = size_t(-1);
    cache.prepared.emplace(prepare_volume(o, progress));
    cache.volume = unit.volume;
  }
  const PreparedVolume& pv = *cache.prepared;
  NetworkWeights w = load_network_weights(o, int(pv.normalization.channels()));
  std::string precision_note;  // shown once by the sweep (sweep_command.hpp), not per unit
  const Network<Backend, float> net(w.state, kReleaseWeights, DeviceFor<Backend>::make(o.device, precision_note),
                                   BuildUpTo{so.layers, forward_dims(pv)});
  const RegionFeatures f = extract_scheme_features(o, net, pv, so.layers, so.pools, progress, so.want_cka);

  SweepUnitRows rows;
  for (const auto& c : sweep_cells(so)) {
    const SimilarityTable t =
        similarity_table(pv.regions, f, c.pool == "-" ? so.pools[0] : c.pool, parse_similarity(c.similarity));
    const size_t li = size_t(std::find(so.layers.begin(), so.layers.end(), c.layer) - so.layers.begin());
    for (size_t p = 0; p < t.pairs.size(); ++p) {
      const std::vector<std::string> k{vol.id, unit.scheme, unit.mode, short_layer(c.layer), c.pool, c.similarity, t.pairs[p]};
      const double value = t.value[p][li];
      // where the value falls among the null networks' values for the same cell and pair
      const std::vector<double>& null = unit.null() ? std::vector<double>() : nulls.of(k);
      std::string n_mean, n_std, n_pct;
      if (!null.empty()) {
        double m = 0, sq = 0, below = 0;
        for (double x : null) m += x, below += x <= value ? 1 : 0;
        m /= double(null.size());
        for (double x : null) sq += (x - m) * (x - m);
        n_mean = format_double(m);
        n_std = format_double(std::sqrt(sq / double(null.size())));
        n_pct = format_double(100.0 * below / double(null.size()));
      }
      rows.push_back({k[0], k[1], k[2], k[3], k[4], k[5], k[6], t.pair_regions[p].first, t.pair_regions[p].second,
                      format_double(value), std::to_string(null.size()), n_mean, n_std, n_pct, w.kind, w.sha256,
                      pv.normalization.text, pv.ct_name, pv.mask_name, vol.labels.empty() ? kPhantomLabels : vol.labels,
                      std::to_string(f.forward_passes), format_double(f.forward_seconds), utc_now()});
    }
  }
  return rows;
}

inline std::string unit_label(const SweepOptions& o, const SweepUnit& u) {
  return o.volumes[u.volume].id + ", " + u.scheme + ", " + u.mode;
}
}  // namespace volfeat::cli
