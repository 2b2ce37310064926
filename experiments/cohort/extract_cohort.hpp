#pragma once
// `volfeat extract --manifest M.csv --out DIR`: every volume's extract into DIR/ID/ (the files of a
// single extract, run.json last), then the cohort tables:
//   DIR/features_long.csv                  volume, region, layer, channel, value (the pooled vectors)
//   DIR/similarities_across_volumes.csv    region, layer, volume_a, volume_b, cosine (every pair of
//                                          volumes, for each region and layer both have)
//   DIR/failures.csv                       volume, ct, mask, message (only when some failed)
// One process, --shard i/N or mpirun: units (one per volume) are claimed in DIR/cohort/ as a sweep
// cohort's are (cohort_dir.hpp); a volume is done when DIR/ID/run.json exists. The tables are
// written by the run that finishes the last volume (or volfeat merge DIR), atomically.
#include <cmath>
#include <functional>
#include <iostream>
#include <memory>

#include "cohort_runner.hpp"
#include "manifest.hpp"
#include "volfeat/io/npz.hpp"
#include "volfeat/pipeline/extract_outputs.hpp"

namespace volfeat::cli {

inline const std::vector<std::string> kExtractFailureHeader{"volume", "ct", "mask"};

struct ExtractPlan {
  nlohmann::json settings;
  std::vector<std::string> names, ids;
  std::vector<std::vector<std::string>> keys;  // id, ct, mask

  nlohmann::json json() const {
    nlohmann::json u = nlohmann::json::array();
    for (size_t i = 0; i < ids.size(); ++i) u.push_back({{"name", names[i]}, {"id", ids[i]}, {"key", keys[i]}});
    return {{"command", "extract"}, {"settings", settings}, {"units", u}};
  }
  static ExtractPlan from_json(const nlohmann::json& j) {
    ExtractPlan p;
    p.settings = j.at("settings");
    for (const auto& u : j.at("units")) {
      p.names.push_back(u.at("name").get<std::string>());
      p.ids.push_back(u.at("id").get<std::string>());
      p.keys.push_back(u.at("key").get<std::vector<std::string>>());
    }
    return p;
  }
};

inline bool extract_volume_done(const std::string& dir, const std::string& id) {
  std::error_code ec;
  return std::filesystem::exists(dir + "/" + id + "/run.json", ec);
}

struct ExtractMergeResult {
  bool written = false;
  size_t volumes = 0, missing = 0, failed = 0;
};

// The cohort tables, once every volume is done or failed; under CohortDir::merge_locked.
inline ExtractMergeResult merge_extract(const CohortDir& cd, const ExtractPlan& plan) {
  ExtractMergeResult r;
  std::vector<std::pair<std::vector<std::string>, std::string>> failures;
  std::vector<size_t> done;
  for (size_t u = 0; u < plan.ids.size(); ++u) {
    if (extract_volume_done(cd.dir(), plan.ids[u])) {
      done.push_back(u);
      continue;
    }
    const std::string message = cd.failure(plan.names[u]);
    if (message.empty()) ++r.missing;
    else failures.push_back({plan.keys[u], message});
  }
  r.failed = failures.size();
  if (r.missing) return r;
  // region/layer -> vector, per finished volume (features.npz: the first pooling's vectors)
  std::vector<std::map<std::string, std::vector<float>>> features;
  std::string long_text = "volume,region,layer,channel,value\n";
  for (size_t u : done) {
    std::map<std::string, std::vector<float>> f;
    for (const auto& [name, array] : read_npz(cd.dir() + "/" + plan.ids[u] + "/features.npz")) {
      f[name] = array.to_vector<float>();
      const size_t slash = name.find('/');
      const std::string region = name.substr(0, slash), layer = short_layer(name.substr(slash + 1));
      const auto& v = f[name];
      for (size_t c = 0; c < v.size(); ++c)
        long_text += csv_line({plan.ids[u], region, layer, std::to_string(c), format_double(double(v[c]))});
    }
    features.push_back(std::move(f));
  }
  std::string sim_text = "region,layer,volume_a,volume_b,cosine\n";
  if (!features.empty())
    for (const auto& [name, first] : features[0]) {
      (void)first;
      const size_t slash = name.find('/');
      for (size_t a = 0; a < done.size(); ++a)
        for (size_t b = a + 1; b < done.size(); ++b) {
          const auto ia = features[a].find(name), ib = features[b].find(name);
          if (ia == features[a].end() || ib == features[b].end() || ia->second.size() != ib->second.size()) continue;
          double dot = 0, na = 0, nb = 0;
          for (size_t c = 0; c < ia->second.size(); ++c) {
            const double x = ia->second[c], y = ib->second[c];
            dot += x * y, na += x * x, nb += y * y;
          }
          const double cosine = na > 0 && nb > 0 ? dot / std::sqrt(na * nb) : NAN;
          sim_text += csv_line({name.substr(0, slash), short_layer(name.substr(slash + 1)), plan.ids[done[a]],
                                plan.ids[done[b]], format_double(cosine)});
        }
    }
  write_file_atomic(cd.dir() + "/features_long.csv", long_text);
  write_file_atomic(cd.dir() + "/similarities_across_volumes.csv", sim_text);
  write_failures_csv(cd.dir(), kExtractFailureHeader, failures);
  r.volumes = done.size();
  r.written = true;
  return r;
}

using ExtractOne = std::function<ExtractRun(const ExtractOptions&, Progress&)>;

// Returns the exit status (0, or kExitSomeFailed).
inline int run_extract_manifest(const ExtractOptions& base, const std::string& manifest, const std::string& dir,
                                const std::string& shard_text, int threads, bool quiet, const std::string& command,
                                const ExtractOne& extract_one) {
  if (!base.ct.empty()) fail("--manifest and --ct are alternatives: pass one");
  const std::vector<VolumeEntry> volumes = read_manifest(manifest);
  check_ids_are_file_names(manifest, volumes);
  const std::optional<Shard> shard = shard_text.empty() ? std::nullopt : std::optional<Shard>(parse_shard(shard_text));
  const std::unique_ptr<MpiWorld> world = MpiWorld::start_if_launched();
  if (world) {
    if (shard) fail("--shard and mpirun are alternatives: the ranks share the units already");
    set_rank_threads(*world, threads);
    select_local_device(world->local_rank());
  }
  const CohortDir cd(dir, command);
  ExtractPlan plan;
  plan.settings = {{"layers", base.layers},   {"preset", base.preset}, {"pool", base.pool},
                   {"mode", base.mode},       {"weights", base.weights}, {"normalize", base.normalize},
                   {"scheme", base.inflate.scheme}, {"seed", base.inflate.seed}, {"arch", base.arch},
                   {"preprocessing", preprocessing_json(base.preprocessing, base.normalize)}};
  CohortJob job;
  for (size_t v = 0; v < volumes.size(); ++v) {
    plan.names.push_back(unit_file_name({volumes[v].id}));
    plan.ids.push_back(volumes[v].id);
    plan.keys.push_back({volumes[v].id, volumes[v].ct, volumes[v].mask});
    job.units.push_back({plan.names.back(), volumes[v].id, v, volume_voxels(volumes[v]), v, {}});
  }
  if (!world || world->rank() == 0) cd.check_plan(plan.json());
  if (world) world->broadcast(0);
  Progress progress(quiet);
  job.done = [&](size_t u) { return extract_volume_done(dir, volumes[u].id); };
  job.compute = [&](size_t u) {
    ExtractOptions o = base;
    o.ct = volumes[u].ct, o.ct_series = volumes[u].series, o.mask = volumes[u].mask, o.labels = volumes[u].labels;
    progress.note("volume " + std::to_string(u + 1) + "/" + std::to_string(volumes.size()) + ": " + volumes[u].id);
    const auto t0 = Progress::Clock::now();
    ExtractRun r = extract_one(o, progress);
    const std::string out = dir + "/" + volumes[u].id;
    const auto t1 = Progress::Clock::now();
    write_extract_outputs(out, r);
    r.timings["write_outputs"] = Progress::since(t1);
    r.timings["total"] = Progress::since(t0);
    write_file_atomic(out + "/run.json", run_json(r).dump(2) + "\n");
  };
  const CohortCounts c = run_cohort(cd, job, world.get(), shard.value_or(Shard{}));
  if (world && world->rank() != 0) return world->broadcast(0);
  ExtractMergeResult merged;
  cd.merge_locked([&] { merged = merge_extract(cd, plan); });
  std::cout << "extract: " << volumes.size() << " volumes in the cohort; ";
  if (world) std::cout << world->size() << " ranks";
  else std::cout << "shard " << shard.value_or(Shard{}).index << "/" << shard.value_or(Shard{}).count;
  std::cout << ": " << c.computed << " computed, " << c.already_done << " already done, " << c.failed << " failed, "
            << c.left_to_others << " left to other runs; ";
  if (merged.written)
    std::cout << "wrote " << dir << "/{features_long.csv, similarities_across_volumes.csv} over " << merged.volumes
              << " volumes";
  else
    std::cout << merged.missing << " volumes not finished yet: the cohort tables are written by the run that "
              << "finishes the last (or volfeat merge " << dir << ")";
  if (merged.failed) std::cout << "; " << merged.failed << " failed: see " << dir << "/failures.csv";
  std::cout << "\n";
  const int status = c.failed > 0 || (merged.written && merged.failed > 0) ? kExitSomeFailed : 0;
  return world ? world->broadcast(status) : status;
}

}  // namespace volfeat::cli
