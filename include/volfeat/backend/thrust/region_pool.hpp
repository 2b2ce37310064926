#pragma once
// Thrust region pooling. Host weights (one per voxel of the map, or null for all ones) are copied
// to the device; the voxels are cut into segments, each (segment, channel) pair accumulates in
// double on the device, and the segments are then combined per channel in a fixed order, so the
// result does not depend on scheduling. Only the C pooled values come back to the host.
#include <algorithm>
#include <limits>
#include <vector>

#include "volfeat/backend/thrust/tensor.hpp"
#include "volfeat/ops/region_pool.hpp"

namespace volfeat {

namespace thrust_detail {

// The Cpu backend's std::max(a, b): a NaN feature never replaces the running maximum.
VOLFEAT_HD inline double max_like_std(double a, double b) { return a < b ? b : a; }

template <class T>
struct RegionPoolPartial {
  DeviceView<const T> f;
  const double* weights;  // device, or null for all ones
  Index segment_length;
  bool is_max;
  double init;
  double* partial;  // segments x c
  VOLFEAT_HD void operator()(Index i) const {
    const Index s = i / f.c, k = i - s * f.c;
    const Index v0 = s * segment_length;
    const Index v1 = v0 + segment_length < f.voxels() ? v0 + segment_length : f.voxels();
    double acc = init;
    for (Index v = v0; v < v1; ++v) {
      const double w = weights ? weights[v] : 1.0;
      if (w == 0) continue;  // as the Cpu backend: a zero-weight voxel's value (even NaN) is never read
      const double x = double(f.data[v * f.ld + k]);
      acc = is_max ? max_like_std(acc, x) : acc + w * x;
    }
    partial[i] = acc;
  }
};

struct RegionPoolCombine {
  const double* partial;
  Index segments, c;
  bool is_max;
  double init;
  double* result;
  VOLFEAT_HD void operator()(Index k) const {
    double r = init;
    for (Index s = 0; s < segments; ++s) {
      const double p = partial[s * c + k];
      r = is_max ? max_like_std(r, p) : r + p;
    }
    result[k] = r;
  }
};

}  // namespace thrust_detail

template <class T>
struct RegionPool<Thrust, T> {
  // f: a device view; weights: HOST memory, one per voxel of f (N*D*H*W), or nullptr for all ones.
  static std::vector<double> forward(TensorView<const T> f, const double* weights, RegionPoolKind kind) {
    const Index c = f.dims.c, voxels = f.dims.voxels();
    const bool is_max = kind == RegionPoolKind::kMax;
    const double init = is_max ? -std::numeric_limits<double>::infinity() : 0.0;
    double total_weight = 0;
    thrust::device_vector<double> device_weights;
    if (weights) {
      for (Index v = 0; v < voxels; ++v) total_weight += weights[v];
      thrust_detail::assign_from_host(device_weights, weights, static_cast<size_t>(voxels));
    } else {
      total_weight = double(voxels);
    }
    if (!(total_weight > 0)) fail("region pooling: the region has no voxel on this layer's grid");
    if (c <= 0) return {};

    // ~256 voxels per segment, at most 1024 segments: enough parallel work for a GPU, and a short
    // serial combine.
    const Index segments = std::clamp<Index>((voxels + 255) / 256, 1, 1024);
    const Index length = (voxels + segments - 1) / segments;
    thrust::device_vector<double> partial(static_cast<size_t>(segments * c)), result(static_cast<size_t>(c));
    thrust_detail::for_each_index(
        segments * c, thrust_detail::RegionPoolPartial<T>{thrust_detail::DeviceView<const T>(f),
                                                          weights ? thrust_detail::raw(device_weights) : nullptr,
                                                          length, is_max, init, thrust_detail::raw(partial)});
    thrust_detail::for_each_index(c, thrust_detail::RegionPoolCombine{thrust_detail::raw(partial), segments, c, is_max,
                                                                      init, thrust_detail::raw(result)});
    std::vector<double> out(static_cast<size_t>(c));
    thrust::copy(result.begin(), result.end(), out.begin());
    if (!is_max)
      for (double& r : out) r /= total_weight;
    return out;
  }
};

}  // namespace volfeat
