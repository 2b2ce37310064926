#pragma once
// A ring of a conv's output planes: plane z of batch item n lives in slot z % slots, computed on
// demand by a producer, so a consumer that reads a few consecutive planes at a time (the next conv's
// 3-plane window, a max pool's 2-plane window) never needs the whole tensor. The fused ops of
// backend/cpu/fused.hpp stream through it (ConvActMaxPool, ConvPairMaxPool, SpatialConvPair,
// DenseLayerConvs).
//
// A producer computes `count` planes from z0 into a view of dims (1, count, H, W, C). A Winograd conv
// produces plane pairs (2k, 2k+1) (`pairs`): both land in adjacent slots, so `slots` must be even and
// leave room for the partner of the window's first plane (ops/fused.hpp counts the slots each op needs,
// for the op and the memory estimate alike).
#include <algorithm>
#include <vector>

#include "volfeat/core/error.hpp"
#include "volfeat/core/host_memory.hpp"
#include "volfeat/core/tensor_view.hpp"

namespace volfeat::cpu {

template <class T>
class PlaneRing {
 public:
  // dims: the whole conv output (N, D, H, W, C); the ring holds `slots` of its planes.
  PlaneRing(const Dims& d, Index slots, bool pairs) : PlaneRing(d, slots, pairs, nullptr) {}
  // The same over the caller's storage of slots * H * W * C values (a dense block's DenseLayerConvs reuse
  // one scratch for all their layers' rings), which must outlive the ring.
  PlaneRing(const Dims& d, Index slots, bool pairs, T* storage)
      : dims(d), ld(d.c), slots_(slots), pairs_(pairs), plane_(d.h * d.w * d.c),
        owned_(storage ? HostArray<T>() : HostArray<T>(size_t(slots * plane_))),
        data_(storage ? storage : owned_.data()), held_(size_t(slots), -1) {
    if (slots < 1 || (pairs && slots % 2 != 0)) fail("plane ring: ", slots, " slots for ", pairs ? "pairs" : "planes");
  }
  PlaneRing(const PlaneRing&) = delete;
  PlaneRing& operator=(const PlaneRing&) = delete;

  // Plane z of item n, computed now unless the ring holds it already.
  template <class Produce>
  const T* ensure(Index n, Index z, Produce&& produce) {
    const Index slot = z % slots_;
    if (held_[size_t(slot)] != n * dims.d + z) {
      const Index z0 = pairs_ ? z - z % 2 : z, count = pairs_ ? std::min<Index>(2, dims.d - z0) : 1;
      const Index s0 = z0 % slots_;
      produce(n, z0, count, TensorView<T>(data_ + s0 * plane_, Dims{1, count, dims.h, dims.w, dims.c}));
      for (Index k = 0; k < count; ++k) held_[size_t(s0 + k)] = n * dims.d + z0 + k;
    }
    return data_ + slot * plane_;
  }

  // The Rows interface of Conv3d::forward_plane_rows / Winograd3d::forward_planes_rows: the first
  // channel of row y of plane z (the caller has ensured the plane; n selects nothing: the ring is
  // refilled per batch item).
  const T* row(Index n, Index z, Index y) const {
    (void)n;
    return data_ + (z % slots_) * plane_ + y * dims.w * ld;
  }

  Dims dims;  // the whole conv output's
  Index ld;   // channel stride of a voxel

 private:
  Index slots_;
  bool pairs_;
  Index plane_;
  HostArray<T> owned_;  // empty over the caller's storage
  T* data_;
  std::vector<Index> held_;  // n * D + z of the plane in each slot (-1: none)
};

}  // namespace volfeat::cpu
