#pragma once
// `volfeat sweep`: the Cartesian product schemes x layers x poolings x modes x similarities over one
// volume or a manifest, into one long CSV, DIR/sweep.csv, appended row by row. Forward passes are
// shared: one per (volume, scheme, mode[, region in mask-input]) serves every layer, pooling and
// similarity. Killed and restarted with the same command, it skips finished rows and loses or
// duplicates none (core/row_log.hpp). --null-seeds N runs N random networks per (volume, mode) first
// and places each observed value in that null distribution.
#include <CLI/CLI.hpp>
#include <chrono>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>

#include "common_options.hpp"
#include "cli_backend.hpp"
#include "volfeat/core/row_log.hpp"
#include "volfeat/pipeline/extract_outputs.hpp"

namespace volfeat::cli {

struct VolumeEntry {
  std::string id, ct, mask, labels;
  std::string series;  // optional manifest column: the SeriesInstanceUID when ct is a DICOM directory
};

inline std::vector<VolumeEntry> read_manifest(const std::string& path) {
  std::ifstream in(path);
  if (!in) fail(path, ": cannot open the manifest");
  std::string line;
  if (!std::getline(in, line)) fail(path, ": empty manifest (expected a header ct,mask,labels[,id])");
  const auto header = parse_csv_line(line);
  auto column = [&](const std::string& name, bool required) -> int {
    for (size_t i = 0; i < header.size(); ++i)
      if (header[i] == name) return int(i);
    if (required) fail(path, ": manifest header lacks the column '", name, "' (expected ct,mask,labels[,id])");
    return -1;
  };
  const int c_ct = column("ct", true), c_mask = column("mask", true), c_labels = column("labels", true),
            c_id = column("id", false), c_series = column("series", false);
  const auto dir = std::filesystem::path(path).parent_path();
  auto resolve = [&](const std::string& p) { return std::filesystem::path(p).is_absolute() ? p : (dir / p).string(); };
  std::vector<VolumeEntry> out;
  int row = 1;
  while (std::getline(in, line)) {
    ++row;
    if (line.empty()) continue;
    const auto f = parse_csv_line(line);
    if (f.size() != header.size()) fail(path, ": row ", row, " has ", f.size(), " fields, the header ", header.size());
    VolumeEntry e{c_id >= 0 ? f[size_t(c_id)] : std::filesystem::path(f[size_t(c_ct)]).filename().string(),
                  resolve(f[size_t(c_ct)]), resolve(f[size_t(c_mask)]), f[size_t(c_labels)],
                  c_series >= 0 ? f[size_t(c_series)] : std::string()};
    for (const auto& other : out)
      if (other.id == e.id) fail(path, ": row ", row, ": volume id '", e.id, "' is not unique (add an id column)");
    out.push_back(e);
  }
  if (out.empty()) fail(path, ": the manifest lists no volume");
  return out;
}

struct SweepArgs {
  CommonArgs common;
  std::string schemes, pools = "mean", modes = "shared", similarities = "cosine", manifest;
  int null_seeds = 0;
};

inline const std::vector<std::string>& sweep_header() {
  static const std::vector<std::string> h{
      "volume", "scheme", "mode", "layer", "pool", "similarity", "pair",  // the key
      "region_a", "region_b", "value", "null_n", "null_mean", "null_std", "null_percentile", "weights_kind",
      "weights_sha256", "normalize", "ct", "mask", "labels", "forward_passes", "forward_seconds", "finished_at"};
  return h;
}
inline constexpr size_t kSweepKeyColumns = 7;
inline constexpr uint64_t kNullSeedBase = 1000;  // null networks use seeds 1001.., apart from --seed

inline std::string utc_now() {
  const std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buf;
}

template <class Backend>
void run_sweep(SweepArgs& a, const std::string& command) {
  const ExtractOptions& base = a.common.extract;
  const std::string dir = a.common.out;
  const auto schemes = split_list(a.schemes.empty() ? base.inflate.scheme : a.schemes);
  const auto pools = split_list(a.pools), modes = split_list(a.modes), sims = split_list(a.similarities);
  if (pools.empty() || modes.empty() || sims.empty()) fail("--pools, --modes and --similarities need at least one value");
  for (const auto& s : schemes) inflation_scheme(s);
  for (const auto& p : pools) parse_pooling(p);
  for (const auto& m : modes)
    if (m != "shared" && m != "mask-input") fail("--modes: '", m, "' (expected shared, mask-input)");
  bool want_cka = false;
  std::vector<std::string> vector_sims;
  for (const auto& s : sims) {
    if (parse_similarity(s).needs_samples()) want_cka = true;
    else vector_sims.push_back(s);
  }
  if (a.null_seeds < 0) fail("--null-seeds ", a.null_seeds, ": expected >= 0");
  for (const auto& s : schemes)
    if (base.weights.empty() && s != "random")
      fail("--schemes ", s, " inflates a 2D export: pass --weights (a torchvision export), or sweep only 'random'");

  std::vector<VolumeEntry> volumes;
  if (!a.manifest.empty()) {
    if (!base.ct.empty()) fail("--manifest and --ct are alternatives: pass one");
    volumes = read_manifest(a.manifest);
  } else {
    volumes.push_back({base.ct.empty() ? "phantom" : std::filesystem::path(base.ct).filename().string(), base.ct,
                       base.mask, base.labels, base.ct_series});
  }

  // Layer names from the architecture the weights (or --arch) define.
  const Graph graph = base.weights.empty() ? build_graph(base.arch) : graph_of(read_state_dict(base.weights));
  const auto layers = resolve_layers(base, graph);

  const DirLock lock = lock_out_dir(dir, a.common.wait_lock, command);  // creates dir; one run at a time
  RowLog log(dir + "/sweep.csv", sweep_header(), kSweepKeyColumns);
  Progress progress(a.common.quiet);
  if (log.duplicates_removed()) {  // not a progress note: shown with --quiet too
    std::string key = csv_line(log.first_duplicate());
    key.pop_back();  // its newline
    std::cerr << "volfeat: " << dir << "/sweep.csv: removed " << log.duplicates_removed()
              << " duplicate row(s) (the first keyed " << key << "), kept the first of each\n";
  }
  if (log.dropped_partial_bytes())
    progress.note(dir + "/sweep.csv: dropped a torn last line (" + std::to_string(log.dropped_partial_bytes()) +
                  " bytes) from an interrupted run");
  write_file_atomic(dir + "/sweep.json",
                    nlohmann::json{{"command", command}, {"volfeat_version", VOLFEAT_VERSION_STRING},
                                   {"schemes", schemes}, {"layers", layers}, {"pools", pools}, {"modes", modes},
                                   {"similarities", sims}, {"null_seeds", a.null_seeds}, {"weights", base.weights},
                                   {"normalize", base.normalize},
                                   {"preprocessing", preprocessing_json(base.preprocessing, base.normalize)}}
                            .dump(2) + "\n");

  struct Unit {
    size_t volume;
    std::string scheme;  // "null-random:SEED" for null networks
    std::string mode;
  };
  std::vector<Unit> units;
  for (size_t v = 0; v < volumes.size(); ++v)
    for (const auto& mode : modes) {
      for (int s = 1; s <= a.null_seeds; ++s) units.push_back({v, "null-random:" + std::to_string(kNullSeedBase + s), mode});
      for (const auto& scheme : schemes) units.push_back({v, scheme, mode});
    }

  // The rows a unit owes: (layer, pool, similarity, pair) for its volume's pairs.
  auto pairs_of = [&](const VolumeEntry& v) {
    const auto regions = parse_labels(v.labels.empty() ? kPhantomLabels : v.labels, base.background);
    std::vector<std::array<std::string, 3>> p;
    for (size_t i = 0; i < regions.size(); ++i)
      for (size_t j = i + 1; j < regions.size(); ++j)
        p.push_back({regions[i].name + "-" + regions[j].name, regions[i].name, regions[j].name});
    return p;
  };
  struct Cell {
    std::string layer, pool, similarity;
  };
  std::vector<Cell> cells;
  for (const auto& l : layers) {
    for (const auto& p : pools)
      for (const auto& s : vector_sims) cells.push_back({l, p, s});
    if (want_cka) cells.push_back({l, "-", "cka"});
  }

  std::map<size_t, PreparedVolume> prepared;
  size_t done = 0, computed = 0;
  double compute_seconds = 0;
  for (size_t u = 0; u < units.size(); ++u) {
    const Unit& unit = units[u];
    const VolumeEntry& vol = volumes[unit.volume];
    const auto pairs = pairs_of(vol);
    auto key = [&](const Cell& c, const std::string& pair) {
      return std::vector<std::string>{vol.id, unit.scheme, unit.mode, short_layer(c.layer), c.pool, c.similarity, pair};
    };
    bool complete = true;
    for (const auto& c : cells)
      for (const auto& p : pairs) complete = complete && log.has(key(c, p[0]));
    if (complete) {
      ++done;
      continue;
    }
    const auto t0 = Progress::Clock::now();
    char head[160];
    std::snprintf(head, sizeof head, "unit %zu/%zu: %s, %s, %s", u + 1, units.size(), vol.id.c_str(),
                  unit.scheme.c_str(), unit.mode.c_str());
    if (computed > 0) {
      const double eta = compute_seconds / double(computed) * double(units.size() - u);
      progress.note(std::string(head) + " (sweep ETA " + std::to_string(int(eta)) + " s)");
    } else {
      progress.note(head);
    }

    ExtractOptions o = base;
    o.ct = vol.ct;
    o.ct_series = vol.series;
    o.mask = vol.mask;
    o.labels = vol.labels;
    o.mode = unit.mode;
    const bool null_unit = unit.scheme.rfind("null-random:", 0) == 0;
    o.inflate.scheme = null_unit ? "random" : unit.scheme;
    if (null_unit) o.inflate.seed = std::stoull(unit.scheme.substr(12));
    o.inflate_given = !o.weights.empty();
    if (!prepared.count(unit.volume)) prepared.emplace(unit.volume, prepare_volume(o, progress));
    const PreparedVolume& pv = prepared.at(unit.volume);
    const NetworkWeights w = load_network_weights(o, int(pv.normalization.channels()));
    const Network<Backend, float> net(w.state);
    const RegionFeatures f = extract_scheme_features(o, net, pv, layers, pools, progress, want_cka);

    for (const auto& c : cells) {
      const SimilarityTable t = similarity_table(pv.regions, f, c.pool == "-" ? pools[0] : c.pool, parse_similarity(c.similarity));
      const size_t li = size_t(std::find(layers.begin(), layers.end(), c.layer) - layers.begin());
      for (size_t p = 0; p < t.pairs.size(); ++p) {
        const auto k = key(c, t.pairs[p]);
        if (log.has(k)) continue;
        const double value = t.value[p][li];
        // where the value falls among the null networks' values for the same cell and pair
        std::vector<double> null;
        if (!null_unit)
          for (const auto& row : log.rows())
            if (row[1].rfind("null-random:", 0) == 0 && row[0] == k[0] && row[2] == k[2] && row[3] == k[3] &&
                row[4] == k[4] && row[5] == k[5] && row[6] == k[6])
              null.push_back(std::stod(row[9]));
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
        log.append({k[0], k[1], k[2], k[3], k[4], k[5], k[6], t.pair_regions[p].first, t.pair_regions[p].second,
                    format_double(value), std::to_string(null.size()), n_mean, n_std, n_pct, w.kind, w.sha256,
                    pv.normalization.text, pv.ct_name, pv.mask_name, vol.labels.empty() ? kPhantomLabels : vol.labels,
                    std::to_string(f.forward_passes), format_double(f.forward_seconds), utc_now()});
      }
    }
    compute_seconds += Progress::since(t0);
    ++computed;
    ++done;
  }
  std::cout << "sweep: " << units.size() << (units.size() == 1 ? " unit (" : " units (") << computed << " computed, "
            << units.size() - computed << " already done), " << log.rows().size() << " rows in " << dir
            << "/sweep.csv\n";
}

inline void add_sweep_command(CLI::App& app, const std::string& command) {
  auto a = std::make_shared<SweepArgs>();
  CLI::App* cmd = app.add_subcommand("sweep", "Sweep schemes x layers x poolings x modes x similarities into one CSV");
  add_common_options(cmd, a->common);
  cmd->add_option("--schemes", a->schemes, "comma list of inflation schemes (default: --inflate)");
  cmd->add_option("--pools", a->pools, "comma list of poolings: mean,max,gem[:p],mean+std,topk[:q],percentile[:q],attention[:t]")
      ->capture_default_str();
  cmd->add_option("--modes", a->modes, "comma list: shared,mask-input")->capture_default_str();
  cmd->add_option("--similarities", a->similarities, "comma list: cosine,pearson,euclidean,cka")->capture_default_str();
  cmd->add_option("--manifest", a->manifest, "CSV with columns ct,mask,labels[,id][,series], one volume per row (ct: a NIfTI file or a DICOM directory)");
  cmd->add_option("--null-seeds", a->null_seeds, "random networks per (volume, mode) for a null distribution")
      ->capture_default_str();
  cmd->callback([a, cmd, command] {
    finish_common_options(cmd, a->common);
    if (cmd->count("--mode") || cmd->count("--pool")) fail("sweep takes --modes and --pools (comma lists)");
    if (cmd->count("--inflate") && cmd->count("--schemes")) fail("--inflate and --schemes are alternatives: pass one");
    if (a->common.out == "volfeat_out") a->common.out = "volfeat_sweep";
    run_sweep<CliBackend>(*a, command);
  });
}

}  // namespace volfeat::cli
