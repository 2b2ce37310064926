#pragma once
// `volfeat sweep`: the Cartesian product schemes x layers x poolings x modes x similarities over one
// volume or a manifest, into one long CSV, DIR/sweep.csv. Forward passes are shared: one per
// (volume, scheme, mode[, region in mask-input]) serves every layer, pooling and similarity.
// --null-seeds N runs N random networks per (volume, mode) first and places each observed value in
// that null distribution.
//
// The stages: SweepArgs (CLI) -> SweepOptions (parsed, checked) -> SweepUnit (volume x scheme x
// mode) -> run_sweep_unit<Backend> -> SweepUnitRows -> written by one of two drivers:
//  * one process (run_sweep_single): DIR/.volfeat.lock for the whole run, rows appended to
//    DIR/sweep.csv (core/row_log.hpp): killed and restarted, it loses or duplicates no row;
//  * a cohort (run_sweep_cohort: --shard i/N, or mpirun with several ranks): units claimed one by
//    one, rows into DIR/cohort/parts/, DIR/sweep.csv merged from them (cohort/sweep_merge.hpp).
// A unit that fails (a bad file) is listed in DIR/failures.csv and the others go on; the exit
// status is then kExitSomeFailed (3).
#include <CLI/CLI.hpp>
#include <chrono>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>

#include "cli_backend.hpp"
#include "cohort/cohort_runner.hpp"
#include "cohort/manifest.hpp"
#include "cohort/sweep_merge.hpp"
#include "common_options.hpp"
#include "volfeat/core/row_log.hpp"
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
          {"weights", o.base.weights},  {"normalize", o.base.normalize},
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
  const NetworkWeights w = load_network_weights(o, int(pv.normalization.channels()));
  const Network<Backend, float> net(w.state);
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

// ---- one process: DIR/sweep.csv appended under DIR/.volfeat.lock -------------------------------

template <class Backend>
int run_sweep_single(const SweepOptions& o) {
  const std::string& dir = o.dir;
  const DirLock lock = lock_out_dir(dir, o.wait_lock, o.command);  // creates dir; one run at a time
  RowLog log(dir + "/sweep.csv", sweep_header(), kSweepKeyColumns);
  Progress progress(o.quiet);
  if (log.duplicates_removed()) {  // not a progress note: shown with --quiet too
    std::string key = csv_line(log.first_duplicate());
    key.pop_back();  // its newline
    std::cerr << "volfeat: " << dir << "/sweep.csv: removed " << log.duplicates_removed()
              << " duplicate row(s) (the first keyed " << key << "), kept the first of each\n";
  }
  if (log.dropped_partial_bytes())
    progress.note(dir + "/sweep.csv: dropped a torn last line (" + std::to_string(log.dropped_partial_bytes()) +
                  " bytes) from an interrupted run");
  write_sweep_json(o);

  const std::vector<SweepUnit> units = sweep_units(o);
  NullValues nulls;
  for (const auto& row : log.rows()) nulls.add(row);
  VolumeCache cache;
  std::vector<std::pair<std::vector<std::string>, std::string>> failures;
  size_t computed = 0;
  double compute_seconds = 0;
  for (size_t u = 0; u < units.size(); ++u) {
    const SweepUnit& unit = units[u];
    bool complete = true;
    for (const auto& k : unit_keys(o, unit)) complete = complete && log.has(k);
    if (complete) continue;
    const auto t0 = Progress::Clock::now();
    char head[160];
    std::snprintf(head, sizeof head, "unit %zu/%zu: %s", u + 1, units.size(), unit_label(o, unit).c_str());
    if (computed > 0) {
      const double eta = compute_seconds / double(computed) * double(units.size() - u);
      progress.note(std::string(head) + " (sweep ETA " + std::to_string(int(eta)) + " s)");
    } else {
      progress.note(head);
    }
    SweepUnitRows rows;
    try {
      rows = run_sweep_unit<Backend>(o, unit, cache, nulls, progress);
    } catch (const Error& e) {
      if (!o.from_manifest) throw;  // one volume: its error is the run's
      // One bad volume does not stop the others: listed in failures.csv, exit status 3.
      std::cerr << "volfeat: error: " << unit_label(o, unit) << ": " << e.what() << " (recorded in " << dir
                << "/failures.csv)\n";
      const VolumeEntry& v = o.volumes[unit.volume];
      failures.push_back({{v.id, unit.scheme, unit.mode, v.ct, v.mask}, e.what()});
      continue;
    }
    for (const auto& row : rows) {
      if (log.has(row)) continue;
      log.append(row);
      nulls.add(row);
    }
    compute_seconds += Progress::since(t0);
    ++computed;
  }
  write_failures_csv(dir, kFailureHeader, failures);
  std::cout << "sweep: " << units.size() << (units.size() == 1 ? " unit (" : " units (") << computed << " computed, "
            << units.size() - computed - failures.size() << " already done";
  if (!failures.empty()) std::cout << ", " << failures.size() << " failed: see " << dir << "/failures.csv";
  std::cout << "), " << log.rows().size() << " rows in " << dir << "/sweep.csv\n";
  return failures.empty() ? 0 : kExitSomeFailed;
}

// ---- a cohort: shards or ranks, rows per unit in DIR/cohort/parts ------------------------------

template <class Backend>
int run_sweep_cohort(const SweepOptions& o, const MpiWorld* world) {
  const CohortDir cd(o.dir, o.command);
  const std::vector<SweepUnit> units = sweep_units(o);
  std::vector<uint64_t> voxels(o.volumes.size());
  for (size_t v = 0; v < o.volumes.size(); ++v) voxels[v] = volume_voxels(o.volumes[v]);

  SweepPlan plan;
  plan.settings = sweep_settings_json(o);
  CohortJob job;
  std::map<std::pair<size_t, std::string>, size_t> group_of;  // (volume, mode) -> group
  std::map<size_t, std::vector<size_t>> nulls_of_group;
  for (size_t u = 0; u < units.size(); ++u) {
    const SweepUnit& su = units[u];
    const VolumeEntry& v = o.volumes[su.volume];
    const auto key = unit_keys(o, su);
    PlanUnit pu{unit_file_name({v.id, su.scheme, su.mode}), {v.id, su.scheme, su.mode, v.ct, v.mask}, key.size()};
    plan.units.push_back(pu);
    const size_t group = group_of.emplace(std::make_pair(su.volume, su.mode), group_of.size()).first->second;
    CohortUnit cu{pu.name, unit_label(o, su), su.volume, voxels[su.volume], group, {}};
    if (su.null()) nulls_of_group[group].push_back(u);
    else cu.after = nulls_of_group[group];
    job.units.push_back(cu);
  }
  if (!world || world->rank() == 0) cd.check_plan(plan.json());
  if (world) world->broadcast(0);  // the plan is on disk before any rank reads it
  if (!world || world->rank() == 0) write_sweep_json(o);

  const SweepRowsOnDisk disk(cd, plan);
  VolumeCache cache;
  Progress progress(o.quiet);
  job.done = [&](size_t u) { return disk.complete(u); };
  job.compute = [&](size_t u) {
    NullValues nulls;
    for (size_t n : job.units[u].after) {
      const std::string failed = cd.failure(plan.units[n].name);
      if (!failed.empty()) fail("its null network ", units[n].scheme, " failed: ", failed);
      if (!disk.complete(n)) throw UnitNotReady("the null networks of " + o.volumes[units[u].volume].id + ", " +
                                                units[u].mode + " are not finished");
      for (const auto& row : disk.rows(n)) nulls.add(row);
    }
    progress.note("unit " + std::to_string(u + 1) + "/" + std::to_string(units.size()) + ": " + job.units[u].label);
    const SweepUnitRows rows = run_sweep_unit<Backend>(o, units[u], cache, nulls, progress);
    RowLog part(cd.part(plan.units[u].name), sweep_header(), kSweepKeyColumns);
    for (const auto& row : rows) part.append(row);  // keys already there are skipped
  };

  const CohortCounts c = run_cohort(cd, job, world, o.shard.value_or(Shard{}));
  if (world && world->rank() != 0) return world->broadcast(0);

  SweepMergeResult merged;
  cd.merge_locked([&] { merged = merge_sweep(cd, plan); });
  std::cout << "sweep: " << units.size() << " units in the cohort; ";
  if (world) std::cout << world->size() << " ranks";
  else std::cout << "shard " << o.shard.value_or(Shard{}).index << "/" << o.shard.value_or(Shard{}).count;
  std::cout << ": " << c.computed << " computed, " << c.already_done << " already done, " << c.failed << " failed, "
            << c.left_to_others << " left to other runs; ";
  if (merged.written)
    std::cout << merged.rows << " rows in " << o.dir << "/sweep.csv";
  else
    std::cout << merged.missing << " units not finished yet: " << o.dir
              << "/sweep.csv is written by the run that finishes the last (or volfeat merge " << o.dir << ")";
  if (merged.failed) std::cout << "; " << merged.failed << " failed: see " << o.dir << "/failures.csv";
  std::cout << "\n";
  const int status = c.failed > 0 || (merged.written && merged.failed > 0) ? kExitSomeFailed : 0;
  return world ? world->broadcast(status) : status;
}

template <class Backend>
int run_sweep(const SweepOptions& o) {
  const std::unique_ptr<MpiWorld> world = MpiWorld::start_if_launched();
  if (world) {
    if (o.shard) fail("--shard and mpirun are alternatives: the ranks share the units already");
    set_rank_threads(*world, o.threads);
    select_local_device(world->local_rank());
  }
  std::error_code ec;
  // A directory started as a cohort stays one: a plain rerun joins it as shard 1/1.
  if (world || o.shard || std::filesystem::exists(o.dir + "/cohort/plan.json", ec)) return run_sweep_cohort<Backend>(o, world.get());
  return run_sweep_single<Backend>(o);
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
  add_shard_option(cmd, a->shard);
  cmd->callback([a, cmd, command] {
    finish_common_options(cmd, a->common);
    if (cmd->count("--mode") || cmd->count("--pool")) fail("sweep takes --modes and --pools (comma lists)");
    if (cmd->count("--inflate") && cmd->count("--schemes")) fail("--inflate and --schemes are alternatives: pass one");
    if (a->common.out == "volfeat_out") a->common.out = "volfeat_sweep";
    const int status = run_sweep<CliBackend>(sweep_options(*a, command));
    if (status != 0) throw CohortExit{status};
  });
}

}  // namespace volfeat::cli
