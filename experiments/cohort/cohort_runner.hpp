#pragma once
// Who computes which unit of a cohort: every unit of shard i/N in this process (--shard, or 1/1),
// or, under mpirun, whatever rank 0 hands out. Rank 0 deals dynamically, largest volume first, a
// unit only once the units it needs are finished (a (volume, mode)'s null networks before its
// schemes), preferring for each rank the volume it prepared last (prepared volumes are reused).
// Every unit still goes through CohortDir::process (its claim), so ranks, shards and reruns of a
// killed job can share one DIR.
#include <omp.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "cohort_dir.hpp"
#include "mpi_world.hpp"
#include "shard.hpp"

namespace volfeat::cli {

struct CohortUnit {
  std::string name;             // unit_file_name: claims/NAME.lock, parts/NAME.csv
  std::string label;            // "volume, scheme, mode" for messages
  size_t volume = 0;            // index in the manifest
  uint64_t size = 0;            // voxels of the volume: largest first
  size_t group = 0;             // units that one shard keeps together
  std::vector<size_t> after;    // units to finish first
};

struct CohortJob {
  std::vector<CohortUnit> units;
  std::function<bool(size_t)> done;      // its rows/files are complete in DIR
  std::function<void(size_t)> compute;   // computes and writes it; throws Error (failed) or UnitNotReady
};

namespace detail::cohort {

// Rank 0's book of the units: pending, handed out, finished.
class Dealer {
 public:
  Dealer(const CohortJob& job, int ranks)
      : job_(job), state_(job.units.size(), kPending), last_volume_(size_t(ranks), size_t(-1)) {
    std::vector<uint64_t> size;
    std::vector<size_t> group;
    for (const auto& u : job.units) size.push_back(u.size), group.push_back(u.group);
    order_ = largest_first(size, group);
  }
  static constexpr int kStop = -2, kWait = -1;

  // What `rank` computes next (a unit, kWait or kStop), after it reports `finished` (or -1).
  int next(int rank, int finished, UnitOutcome outcome) {
    std::lock_guard<std::mutex> lk(mutex_);
    if (finished >= 0) state_[size_t(finished)] = kFinished, counts_.add(outcome);
    bool any_pending = false;
    int best = -1;
    for (size_t u : order_) {
      if (state_[u] != kPending) continue;
      any_pending = true;
      bool ready = true;
      for (size_t a : job_.units[u].after) ready = ready && state_[a] == kFinished;
      if (!ready) continue;
      if (best < 0) best = int(u);
      if (job_.units[u].volume == last_volume_[size_t(rank)]) {
        best = int(u);
        break;
      }
    }
    if (best >= 0) {
      state_[size_t(best)] = kHanded;
      last_volume_[size_t(rank)] = job_.units[size_t(best)].volume;
      return best;
    }
    return any_pending ? kWait : kStop;
  }
  CohortCounts counts() const {
    std::lock_guard<std::mutex> lk(mutex_);
    return counts_;
  }

 private:
  enum State : char { kPending, kHanded, kFinished };
  const CohortJob& job_;
  std::vector<size_t> order_;
  std::vector<State> state_;
  std::vector<size_t> last_volume_;
  CohortCounts counts_;
  mutable std::mutex mutex_;
};

inline UnitOutcome process(const CohortDir& dir, const CohortJob& job, size_t u) {
  return dir.process(job.units[u].name, job.units[u].label, [&] { return job.done(u); }, [&] { job.compute(u); });
}

}  // namespace detail::cohort

// Every unit of shard s, here. The counts of this process.
inline CohortCounts run_shard(const CohortDir& dir, const CohortJob& job, Shard s) {
  std::vector<uint64_t> size;
  std::vector<size_t> group;
  for (const auto& u : job.units) size.push_back(u.size), group.push_back(u.group);
  CohortCounts counts;
  for (size_t u : shard_units(size, group, s)) counts.add(detail::cohort::process(dir, job, u));
  return counts;
}

// Threads per rank: --threads, else the cores shared by the ranks on this node.
inline void set_rank_threads(const MpiWorld& world, int threads_given) {
  if (threads_given > 0) return;
  omp_set_num_threads(std::max(1, omp_get_num_procs() / std::max(1, world.local_size())));
}

#ifdef VOLFEAT_WITH_MPI
// Under mpirun: rank 0 deals, every rank (rank 0 too, from its main thread) computes. The counts of
// the whole job on rank 0 (the others' are empty).
inline CohortCounts run_ranks(const CohortDir& dir, const CohortJob& job, const MpiWorld& world) {
  constexpr int kTagReport = 71, kTagWork = 72;
  auto sleep_ms = [](int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); };
  if (world.rank() != 0) {
    int report[2] = {-1, 0};
    for (;;) {
      MPI_Send(report, 2, MPI_INT, 0, kTagReport, MPI_COMM_WORLD);
      int next = 0;
      MPI_Recv(&next, 1, MPI_INT, 0, kTagWork, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
      if (next == detail::cohort::Dealer::kStop) return {};
      if (next == detail::cohort::Dealer::kWait) {
        report[0] = -1;
        sleep_ms(200);
        continue;
      }
      report[0] = next;
      report[1] = int(detail::cohort::process(dir, job, size_t(next)));
    }
  }
  detail::cohort::Dealer dealer(job, world.size());
  // The dealer's thread polls (Iprobe and a 2 ms sleep) rather than blocking in MPI_Recv: OpenMPI
  // busy-waits in a blocking receive, which would take a core from rank 0's own computation.
  std::thread serve([&] {
    int stopped = 0;
    while (stopped < world.size() - 1) {
      int flag = 0;
      MPI_Status st;
      MPI_Iprobe(MPI_ANY_SOURCE, kTagReport, MPI_COMM_WORLD, &flag, &st);
      if (!flag) {
        sleep_ms(2);
        continue;
      }
      int report[2];
      MPI_Recv(report, 2, MPI_INT, st.MPI_SOURCE, kTagReport, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
      int next = dealer.next(st.MPI_SOURCE, report[0], UnitOutcome(report[1]));
      MPI_Send(&next, 1, MPI_INT, st.MPI_SOURCE, kTagWork, MPI_COMM_WORLD);
      if (next == detail::cohort::Dealer::kStop) ++stopped;
    }
  });
  if (world.rank0_works()) {
    int finished = -1;
    UnitOutcome outcome = UnitOutcome::kComputed;
    try {
      for (;;) {
        const int next = dealer.next(0, finished, outcome);
        if (next == detail::cohort::Dealer::kStop) break;
        if (next == detail::cohort::Dealer::kWait) {
          finished = -1;
          sleep_ms(200);
          continue;
        }
        finished = next;
        outcome = detail::cohort::process(dir, job, size_t(next));
      }
    } catch (const std::exception& e) {
      // The dealer's thread is inside MPI calls: end the whole job (its claims go stale; a rerun resumes).
      std::cerr << "volfeat: error: rank 0: " << e.what() << "\n";
      MPI_Abort(MPI_COMM_WORLD, 1);
    }
  }
  serve.join();
  return dealer.counts();
}
#endif

// Dispatch: ranks when MPI runs several, else the shard (1/1 when none was given).
inline CohortCounts run_cohort(const CohortDir& dir, const CohortJob& job, const MpiWorld* world, Shard s) {
#ifdef VOLFEAT_WITH_MPI
  if (world) return run_ranks(dir, job, *world);
#else
  (void)world;
#endif
  return run_shard(dir, job, s);
}

}  // namespace volfeat::cli
