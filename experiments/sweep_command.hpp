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
#include <iostream>
#include <memory>

#include "cli_backend.hpp"
#include "cohort/sweep_cohort.hpp"
#include "sweep_unit.hpp"
#include "volfeat/core/row_log.hpp"

namespace volfeat::cli {

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
  std::string precision_note;  // bf16 asked for where it cannot run: said once here, not per unit
  const Backend device = DeviceFor<Backend>::make(o.base.device, precision_note);
  if (!precision_note.empty()) progress.warn(precision_note);
  if (const std::string k = DeviceFor<Backend>::kernels(device); !k.empty()) progress.note(k);

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
