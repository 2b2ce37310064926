#pragma once
// `volfeat merge DIR`: writes a cohort's tables (sweep: DIR/sweep.csv; extract --manifest: the
// cohort tables) from what its shards and ranks left in DIR/cohort. The shards do this
// themselves when they finish; merge is for finishing by hand (e.g. after the last task was killed
// during its merge). Refuses, naming how
// many units are still to do, while the cohort is incomplete.
#include <CLI/CLI.hpp>
#include <iostream>
#include <memory>

#include "extract_cohort.hpp"
#include "sweep_merge.hpp"

namespace volfeat::cli {

inline int merge_cohort(const std::string& dir) {
  const std::string plan_path = dir + "/cohort/plan.json";
  const std::string text = lock_detail::read_small_file(plan_path);
  if (text.empty()) fail(plan_path, ": not found; ", dir, " holds no cohort run (sweep --shard/mpirun, extract --manifest)");
  nlohmann::json plan;
  try {
    plan = nlohmann::json::parse(text);
  } catch (const std::exception&) {
    fail(plan_path, ": unreadable JSON");
  }
  const CohortDir cd(dir, "volfeat merge " + dir);
  size_t missing = 0, failed = 0;
  if (plan.value("command", "") == "sweep") {
    const SweepPlan p = SweepPlan::from_json(plan);
    SweepMergeResult r;
    cd.merge_locked([&] { r = merge_sweep(cd, p); });
    missing = r.missing, failed = r.failed;
    if (r.written) std::cout << "merge: " << r.rows << " rows in " << dir << "/sweep.csv";
  } else if (plan.value("command", "") == "extract") {
    const ExtractPlan p = ExtractPlan::from_json(plan);
    ExtractMergeResult r;
    cd.merge_locked([&] { r = merge_extract(cd, p); });
    missing = r.missing, failed = r.failed;
    if (!missing) std::cout << "merge: cohort tables over " << r.volumes << " volumes in " << dir;
  } else {
    fail(plan_path, ": unknown command '", plan.value("command", ""), "'");
  }
  if (missing)
    fail(dir, ": ", missing, " units are not finished yet (and did not fail); rerun the command (or the missing "
         "shards) to finish them, then merge");
  if (failed) std::cout << "; " << failed << " failed: see " << dir << "/failures.csv";
  std::cout << "\n";
  return failed ? kExitSomeFailed : 0;
}

inline void add_merge_command(CLI::App& app) {
  auto dir = std::make_shared<std::string>();
  CLI::App* cmd = app.add_subcommand("merge", "Write a cohort's tables (sweep.csv, or extract's cohort tables) from DIR/cohort");
  cmd->add_option("dir", *dir, "the --out of sweep --shard/mpirun or extract --manifest")->required();
  cmd->callback([dir] {
    const int status = merge_cohort(*dir);
    if (status != 0) throw CohortExit{status};
  });
}

}  // namespace volfeat::cli
