#pragma once
// MPI for cohort runs (mpirun -np N volfeat sweep|extract --manifest ...), through the MPI C API
// only (standard MPI-3 calls: OpenMPI and MPICH both serve). MPI is started only when a launcher
// started this process with more than one rank, so a plain `volfeat` never pays for it, and a
// volfeat built without MPI (VOLFEAT_WITH_MPI=OFF) refuses an N-rank launch with one line instead
// of running the same cohort N times.
#include <cstdlib>
#include <exception>
#include <memory>
#include <string>

#include "volfeat/core/error.hpp"
#ifdef VOLFEAT_WITH_MPI
// The C API only: without these, mpi.h in C++ pulls in the removed MPI-2 C++ bindings (OpenMPI's
// mpicxx.h), which need libmpi_cxx.
#ifndef OMPI_SKIP_MPICXX
#define OMPI_SKIP_MPICXX 1
#endif
#ifndef MPICH_SKIP_MPICXX
#define MPICH_SKIP_MPICXX 1
#endif
#include <mpi.h>
#endif
#if defined(VOLFEAT_CLI_BACKEND_THRUST) && defined(__CUDACC__)
#include <cuda_runtime.h>
#endif

namespace volfeat::cli {

// The world size a launcher announced in the environment (OpenMPI, MPICH/Hydra, PMI-2 and PMIx
// under srun); 0 when none did, -1 when one did without saying the size.
inline int launcher_world_size() {
  for (const char* var : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "MPI_LOCALNRANKS"})
    if (const char* v = std::getenv(var)) return std::atoi(v);
  if (std::getenv("PMIX_RANK")) return -1;
  return 0;
}

// The CUDA build gives each rank on a node its own GPU: local rank r takes GPU r mod count.
inline void select_local_device(int local_rank) {
#if defined(VOLFEAT_CLI_BACKEND_THRUST) && defined(__CUDACC__)
  int count = 0;
  if (cudaGetDeviceCount(&count) == cudaSuccess && count > 0) cudaSetDevice(local_rank % count);
#else
  (void)local_rank;
#endif
}

class MpiWorld {
 public:
  // nullptr unless a launcher started several ranks.
  static std::unique_ptr<MpiWorld> start_if_launched() {
    const int announced = launcher_world_size();
    if (announced == 0 || announced == 1) return nullptr;
#ifdef VOLFEAT_WITH_MPI
    std::unique_ptr<MpiWorld> w(new MpiWorld());
    if (w->size_ == 1) return nullptr;
    return w;
#else
    fail("started as ", announced, " MPI ranks, but this volfeat was built without MPI (VOLFEAT_WITH_MPI=OFF); "
         "rebuild with libopenmpi-dev or libmpich-dev installed, or run job-array tasks with --shard i/N");
#endif
  }
  MpiWorld(const MpiWorld&) = delete;
  MpiWorld& operator=(const MpiWorld&) = delete;
  ~MpiWorld() {
#ifdef VOLFEAT_WITH_MPI
    // An error leaves without MPI_Finalize: the launcher then ends the other ranks instead of
    // letting them wait for this one forever.
    if (std::uncaught_exceptions() == 0) MPI_Finalize();
#endif
  }

  int rank() const { return rank_; }
  int size() const { return size_; }
  int local_rank() const { return local_rank_; }
  int local_size() const { return local_size_; }
  // Whether rank 0 may serve the others from a thread while it also computes units.
  bool rank0_works() const { return threads_ok_; }

#ifdef VOLFEAT_WITH_MPI
  // Rank 0's value, on every rank.
  int broadcast(int value) const {
    MPI_Bcast(&value, 1, MPI_INT, 0, MPI_COMM_WORLD);
    return value;
  }
#else
  int broadcast(int value) const { return value; }
#endif

 private:
#ifdef VOLFEAT_WITH_MPI
  MpiWorld() {
    int provided = 0;
    // SERIALIZED: rank 0's scheduler thread makes every MPI call while the run is on, the main
    // thread only before and after it.
    MPI_Init_thread(nullptr, nullptr, MPI_THREAD_SERIALIZED, &provided);
    threads_ok_ = provided >= MPI_THREAD_SERIALIZED;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
    MPI_Comm local;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &local);
    MPI_Comm_rank(local, &local_rank_);
    MPI_Comm_size(local, &local_size_);
    MPI_Comm_free(&local);
  }
#endif
  int rank_ = 0, size_ = 1, local_rank_ = 0, local_size_ = 1;
  bool threads_ok_ = false;
};

}  // namespace volfeat::cli
