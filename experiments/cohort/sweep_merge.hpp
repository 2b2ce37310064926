#pragma once
// A sweep cohort on disk: its plan (units in the single run's order, rows each owes), the rows of
// each unit (DIR/cohort/parts/UNIT.csv, or an earlier single run's DIR/sweep.csv), and the merge
// that writes DIR/sweep.csv and DIR/failures.csv from them. The merged sweep.csv lists the units
// in the single run's order, each unit's rows in the order it wrote them, so it holds the same keys
// and values, row for row, as `volfeat sweep` in one process.
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cohort_dir.hpp"
#include "volfeat/core/row_log.hpp"

namespace volfeat::cli {

inline const std::vector<std::string>& sweep_header() {
  static const std::vector<std::string> h{
      "volume", "scheme", "mode", "layer", "pool", "similarity", "pair",  // the key
      "region_a", "region_b", "value", "null_n", "null_mean", "null_std", "null_percentile", "weights_kind",
      "weights_sha256", "normalize", "ct", "mask", "labels", "forward_passes", "forward_seconds", "finished_at"};
  return h;
}
inline constexpr size_t kSweepKeyColumns = 7;
// DIR/failures.csv of a sweep: the unit, its inputs, then the message.
inline const std::vector<std::string> kFailureHeader{"volume", "scheme", "mode", "ct", "mask"};

struct PlanUnit {
  std::string name;
  std::vector<std::string> key;  // volume, scheme, mode, ct, mask
  size_t rows = 0;
};

struct SweepPlan {
  nlohmann::json settings;
  std::vector<PlanUnit> units;

  nlohmann::json json() const {
    nlohmann::json u = nlohmann::json::array();
    for (const auto& p : units) u.push_back({{"name", p.name}, {"key", p.key}, {"rows", p.rows}});
    return {{"command", "sweep"}, {"settings", settings}, {"units", u}};
  }
  static SweepPlan from_json(const nlohmann::json& j) {
    SweepPlan p;
    p.settings = j.at("settings");
    for (const auto& u : j.at("units"))
      p.units.push_back({u.at("name").get<std::string>(), u.at("key").get<std::vector<std::string>>(), u.at("rows").get<size_t>()});
    return p;
  }
};

// The rows of a CSV written by a RowLog, read only: a torn last line is ignored (its writer, or
// the next claim's RowLog, drops it), a repeated key keeps its first row.
inline std::vector<std::vector<std::string>> read_row_log(const std::string& path) {
  std::vector<std::vector<std::string>> rows;
  std::ifstream in(path, std::ios::binary);
  if (!in) return rows;
  std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  data.resize(data.rfind('\n') == std::string::npos ? 0 : data.rfind('\n') + 1);
  std::istringstream lines(data);
  std::string line;
  if (!std::getline(lines, line)) return rows;
  if (parse_csv_line(line) != sweep_header())
    fail(path, ": exists with other columns; pass another --out or remove it (expected header: ",
         csv_line(sweep_header()).substr(0, 120), "...)");
  std::set<std::vector<std::string>> keys;
  while (std::getline(lines, line)) {
    auto f = parse_csv_line(line);
    if (f.size() != sweep_header().size()) fail(path, ": malformed row '", line.substr(0, 80), "'");
    if (keys.insert({f.begin(), f.begin() + kSweepKeyColumns}).second) rows.push_back(std::move(f));
  }
  return rows;
}

class SweepRowsOnDisk {
 public:
  // Reads DIR/sweep.csv (rows of an earlier single run, or an earlier merge) once.
  SweepRowsOnDisk(const CohortDir& cd, const SweepPlan& plan) : cd_(cd), plan_(plan) {
    std::map<std::vector<std::string>, size_t> unit_of;
    for (size_t u = 0; u < plan.units.size(); ++u)
      unit_of[{plan.units[u].key[0], plan.units[u].key[1], plan.units[u].key[2]}] = u;
    earlier_.resize(plan.units.size());
    for (auto& row : read_row_log(cd.dir() + "/sweep.csv")) {
      const auto it = unit_of.find({row[0], row[1], row[2]});
      if (it == unit_of.end()) other_.push_back(std::move(row));
      else earlier_[it->second].push_back(std::move(row));
    }
  }

  bool complete(size_t u) const { return rows(u).size() == plan_.units[u].rows; }

  // The unit's rows: its part when complete, else the earlier sweep.csv's, else the part so far.
  std::vector<std::vector<std::string>> rows(size_t u) const {
    auto part = read_row_log(cd_.part(plan_.units[u].name));
    if (part.size() == plan_.units[u].rows || earlier_[u].size() != plan_.units[u].rows) return part;
    return earlier_[u];
  }
  // Rows of sweep.csv that are not the plan's (other settings or volumes): kept, after the plan's.
  std::vector<std::vector<std::string>> other_rows(const std::set<std::vector<std::string>>& planned_keys) const {
    std::vector<std::vector<std::string>> out = other_;
    for (const auto& unit : earlier_)
      for (const auto& row : unit)
        if (!planned_keys.count({row.begin(), row.begin() + kSweepKeyColumns})) out.push_back(row);
    return out;
  }

 private:
  const CohortDir& cd_;
  const SweepPlan& plan_;
  std::vector<std::vector<std::vector<std::string>>> earlier_;
  std::vector<std::vector<std::string>> other_;
};

struct SweepMergeResult {
  bool written = false;
  size_t rows = 0, missing = 0, failed = 0;
};

// Writes DIR/sweep.csv and DIR/failures.csv once every unit is complete or failed; call it under
// CohortDir::merge_locked. Nothing is written while a unit is still to do.
inline SweepMergeResult merge_sweep(const CohortDir& cd, const SweepPlan& plan) {
  const SweepRowsOnDisk disk(cd, plan);
  SweepMergeResult r;
  std::string text = csv_line(sweep_header());
  std::vector<std::pair<std::vector<std::string>, std::string>> failures;
  std::set<std::vector<std::string>> planned_keys;
  for (size_t u = 0; u < plan.units.size(); ++u) {
    const auto rows = disk.rows(u);
    if (rows.size() == plan.units[u].rows) {
      for (const auto& row : rows) text += csv_line(row), planned_keys.insert({row.begin(), row.begin() + kSweepKeyColumns});
      r.rows += rows.size();
      continue;
    }
    const std::string message = cd.failure(plan.units[u].name);
    if (message.empty()) {
      ++r.missing;
      continue;
    }
    failures.push_back({plan.units[u].key, message});
  }
  r.failed = failures.size();
  if (r.missing) return r;
  for (const auto& row : disk.other_rows(planned_keys)) text += csv_line(row), ++r.rows;
  write_file_atomic(cd.dir() + "/sweep.csv", text);
  write_failures_csv(cd.dir(), kFailureHeader, failures);
  r.written = true;
  return r;
}

}  // namespace volfeat::cli
