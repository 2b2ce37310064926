#pragma once
// Pooling a feature map over a region given per-voxel weights on the map's grid: the weighted mean
// sum_v w_v f_v / sum_v w_v, or the max over voxels with w_v > 0. Without weights, over all voxels
// (global average / max pooling, the reports' method). Accumulates in double.
#include <vector>

#include "volfeat/backend/backend.hpp"
#include "volfeat/core/tensor_view.hpp"

namespace volfeat {

enum class RegionPoolKind { kMean, kMax };

template <class Backend, class T>
struct RegionPool {
  VOLFEAT_UNSUPPORTED_OP("RegionPool");
};

}  // namespace volfeat
