#pragma once
// Every Cpu op parallelises with OpenMP over independent output voxels or tiles; no op nests
// parallel regions (Eigen's GEMM runs single-threaded when called inside one).
#include <omp.h>

#include "volfeat/core/shape.hpp"

namespace volfeat::cpu {

// Loop [0, n) in parallel, statically scheduled: our work items are equal-sized.
template <class F>
void parallel_for(Index n, F&& f) {
#pragma omp parallel for schedule(static)
  for (Index i = 0; i < n; ++i) f(i);
}

}  // namespace volfeat::cpu
