#pragma once
#include <cmath>
#include <limits>
#include <omp.h>

#include "volfeat/backend/cpu_tensor.hpp"
#include "volfeat/core/error.hpp"
#include "volfeat/ops/region_pool.hpp"

namespace volfeat {

template <class T>
struct RegionPool<Cpu, T> {
  // weights: one per voxel of f (N*D*H*W), or nullptr for all ones.
  static std::vector<double> forward(TensorView<const T> f, const double* weights, RegionPoolKind kind) {
    const Index c = f.dims.c, voxels = f.dims.voxels();
    const bool is_max = kind == RegionPoolKind::kMax;
    const double init = is_max ? -std::numeric_limits<double>::infinity() : 0.0;
    std::vector<double> result(size_t(c), init);
    double total_weight = 0;
#pragma omp parallel
    {
      std::vector<double> acc(size_t(c), init);
      double wsum = 0;
#pragma omp for schedule(static) nowait
      for (Index v = 0; v < voxels; ++v) {
        const double w = weights ? weights[v] : 1.0;
        if (w == 0) continue;
        const T* x = f.voxel(v);
        wsum += w;
        if (is_max) {
          for (Index k = 0; k < c; ++k) acc[size_t(k)] = std::max(acc[size_t(k)], double(x[k]));
        } else {
          for (Index k = 0; k < c; ++k) acc[size_t(k)] += w * double(x[k]);
        }
      }
#pragma omp critical
      {
        total_weight += wsum;
        for (Index k = 0; k < c; ++k)
          result[size_t(k)] = is_max ? std::max(result[size_t(k)], acc[size_t(k)]) : result[size_t(k)] + acc[size_t(k)];
      }
    }
    if (!(total_weight > 0)) fail("region pooling: the region has no voxel on this layer's grid");
    if (!is_max)
      for (double& r : result) r /= total_weight;
    return result;
  }
};

}  // namespace volfeat
