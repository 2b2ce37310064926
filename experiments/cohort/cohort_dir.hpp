#pragma once
// The output directory of a cohort run (--shard i/N, mpirun, extract --manifest): many writers,
// one DIR. It extends core/dir_lock.hpp from one lock per run to one lock per unit of work:
//
//   DIR/cohort/plan.json          the units, in the single run's order, and the settings; every
//                                 writer checks it is the same (one DIR, one cohort)
//   DIR/cohort/claims/UNIT.lock   LockFile::claim while a writer computes UNIT (link(2), heartbeat,
//                                 stale take-over: a kill -9'ed rank's claims are taken over)
//   DIR/cohort/parts/UNIT.csv     a sweep unit's rows, a RowLog of its own (one writer: the claim's
//                                 holder), so a unit killed half-way resumes where it stopped
//   DIR/cohort/failed/UNIT.txt    why UNIT failed (written atomically; removed once it succeeds)
//   DIR/cohort/merge.lock         held while the cohort tables (sweep.csv, failures.csv, ...) are
//                                 rewritten from the parts, atomically, by whoever finishes last
//
// A single-process run of the same command holds DIR/.volfeat.lock for its whole run, as before;
// cohort writers refuse while that lock is live, and a single-process sweep on a DIR that holds
// a cohort/ joins it as --shard 1/1, so the two kinds of run never write the same rows.
#include <CLI/CLI.hpp>
#include <filesystem>
#include <set>
#include <sstream>
#include <stdexcept>
#include <functional>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "../out_dir_lock.hpp"
#include "volfeat/core/atomic_file.hpp"
#include "volfeat/core/dir_lock.hpp"
#include "volfeat/core/row_log.hpp"
#include "volfeat/core/sha256.hpp"

namespace volfeat::cli {

// Exit status of a cohort run (sweep, extract --manifest, merge) in which some units failed
// (listed in DIR/failures.csv) while the others finished: 1 stays "the run itself failed".
inline constexpr int kExitSomeFailed = 3;

// Thrown by a command's callback to leave with this exit status (main.cpp returns it).
struct CohortExit {
  int status;
};

// --shard i/N (cohort/shard.hpp), on sweep and extract --manifest.
inline void add_shard_option(CLI::App* cmd, std::string& shard) {
  cmd->add_option("--shard", shard,
                  "i/N: compute only job-array task i's share of the units (1 <= i <= N), into the same --out as "
                  "the other tasks; the last to finish writes the cohort tables");
}

// A unit's part could not start yet: what it needs is held by another writer (a null network's rows
// for a scheme). It is left to that writer, not failed.
struct UnitNotReady : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// A file name for a unit: readable, and unique through a hash of the full key.
inline std::string unit_file_name(const std::vector<std::string>& key) {
  std::string joined, readable;
  for (const auto& k : key) joined += k + '\x1f';
  for (const auto& k : key) {
    if (!readable.empty()) readable += "__";
    for (char c : k) readable += (std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.') ? c : '_';
  }
  if (readable.size() > 80) readable.resize(80);
  return readable + "-" + sha256_hex(joined.data(), joined.size()).substr(0, 12);
}

enum class UnitOutcome { kComputed, kAlreadyDone, kFailed, kLeftToOthers };

struct CohortCounts {
  size_t computed = 0, already_done = 0, failed = 0, left_to_others = 0;
  void add(UnitOutcome o) {
    (o == UnitOutcome::kComputed ? computed : o == UnitOutcome::kAlreadyDone ? already_done
                                          : o == UnitOutcome::kFailed    ? failed
                                                                          : left_to_others)++;
  }
};

class CohortDir {
 public:
  CohortDir(std::string dir, std::string command) : dir_(std::move(dir)), command_(std::move(command)) {
    std::error_code ec;
    for (const char* sub : {"/cohort/claims", "/cohort/parts", "/cohort/failed"}) {
      std::filesystem::create_directories(dir_ + sub, ec);
      if (ec) fail(dir_, sub, ": cannot create (", ec.message(), ")");
    }
    // A live single-process run holds the whole directory: do not write beside it.
    const std::string whole = dir_ + "/" + kDirLockName;
    const LockHolder h = lock_detail::parse_record(lock_detail::read_small_file(whole));
    if (h.parsed && !LockFile::is_stale(whole, h, lock_options(), nullptr))
      fail(whole, ": the output directory is in use by a single-process volfeat run (", h.describe(),
           "); wait for it, or use another --out");
  }

  const std::string& dir() const { return dir_; }
  std::string part(const std::string& unit) const { return dir_ + "/cohort/parts/" + unit + ".csv"; }
  std::string failed(const std::string& unit) const { return dir_ + "/cohort/failed/" + unit + ".txt"; }
  std::string claim_path(const std::string& unit) const { return dir_ + "/cohort/claims/" + unit + ".lock"; }
  std::string plan_path() const { return dir_ + "/cohort/plan.json"; }

  LockOptions lock_options() const {
    LockOptions o;
    o.command = command_;
    o.note = [](const std::string& line) { std::cerr << "volfeat: " << line << "\n"; };
    return o;
  }

  // Writes the plan, or checks that the one there is the same: shards of one cohort must agree.
  void check_plan(const nlohmann::json& plan) const {
    LockOptions o = lock_options();
    o.wait_seconds = 60;
    const LockFile guard = LockFile::acquire(dir_ + "/cohort/merge.lock", o);
    std::error_code ec;
    if (std::filesystem::exists(plan_path(), ec)) {
      nlohmann::json there;
      try {
        there = nlohmann::json::parse(lock_detail::read_small_file(plan_path()));
      } catch (const std::exception&) {
        fail(plan_path(), ": unreadable; remove it to restart the cohort's plan");
      }
      if (there != plan)
        fail(plan_path(), ": this directory holds a cohort run with other settings or volumes; use another --out "
                          "(or remove ", dir_, "/cohort to start over)");
      return;
    }
    write_file_atomic(plan_path(), plan.dump(1) + "\n");
  }

  // One unit, start to end: skipped when done; claimed; computed; its failure recorded.
  UnitOutcome process(const std::string& unit, const std::string& label, const std::function<bool()>& done,
                      const std::function<void()>& compute) const {
    if (done()) return UnitOutcome::kAlreadyDone;
    LockFile claim;
    if (!LockFile::claim(claim_path(unit), lock_options(), claim)) return UnitOutcome::kLeftToOthers;
    if (done()) return UnitOutcome::kAlreadyDone;  // finished by another writer before we claimed it
    try {
      compute();
    } catch (const UnitNotReady& e) {
      std::cerr << "volfeat: " << label << ": left to another run (" << e.what() << ")\n";
      return UnitOutcome::kLeftToOthers;
    } catch (const Error& e) {
      // Not fatal for the cohort: recorded, reported, and the next unit goes on.
      std::cerr << "volfeat: error: " << label << ": " << e.what() << " (recorded in " << dir_ << "/failures.csv)\n";
      write_file_atomic(failed(unit), std::string(e.what()) + "\n");
      return UnitOutcome::kFailed;
    }
    std::error_code ec;
    std::filesystem::remove(failed(unit), ec);
    return UnitOutcome::kComputed;
  }

  // The failure message of a unit, "" when it has not failed.
  std::string failure(const std::string& unit) const {
    return lock_detail::trim(lock_detail::read_small_file(failed(unit)));
  }

  // Runs fn under DIR/cohort/merge.lock (waits for another writer's merge).
  template <class Fn>
  void merge_locked(Fn&& fn) const {
    LockOptions o = lock_options();
    o.wait_seconds = 600;
    const LockFile guard = LockFile::acquire(dir_ + "/cohort/merge.lock", o);
    fn();
  }

 private:
  std::string dir_, command_;
};

// DIR/failures.csv, rewritten whole: (the key columns of each failed unit, its message); removed
// when nothing failed.
inline void write_failures_csv(const std::string& dir, const std::vector<std::string>& key_header,
                               const std::vector<std::pair<std::vector<std::string>, std::string>>& failures) {
  const std::string path = dir + "/failures.csv";
  if (failures.empty()) {
    std::error_code ec;
    std::filesystem::remove(path, ec);
    return;
  }
  std::vector<std::string> header = key_header;
  header.push_back("message");
  std::string text = csv_line(header);
  for (const auto& [key, message] : failures) {
    std::vector<std::string> row = key;
    row.push_back(message);
    text += csv_line(row);
  }
  write_file_atomic(path, text);
}

}  // namespace volfeat::cli
