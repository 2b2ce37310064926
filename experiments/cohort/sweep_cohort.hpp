#pragma once
// `volfeat sweep` as a cohort (--shard i/N, or mpirun with several ranks): the units of
// sweep_unit.hpp claimed one by one in DIR/cohort (cohort_dir.hpp), each unit's rows into its own
// DIR/cohort/parts/UNIT.csv, and DIR/sweep.csv merged from them (sweep_merge.hpp) by the run that
// finishes the last unit. A scheme unit waits for its (volume, mode)'s null networks: the dealer
// hands it out after them, a shard keeps the group together, and a unit whose null rows another
// run still owes is left to that run (UnitNotReady).
#include <iostream>
#include <map>

#include "../sweep_unit.hpp"
#include "cohort_runner.hpp"
#include "sweep_merge.hpp"
#include "volfeat/core/row_log.hpp"

namespace volfeat::cli {

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

}  // namespace volfeat::cli
