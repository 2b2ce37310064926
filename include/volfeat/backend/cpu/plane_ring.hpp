#pragma once
// A ring of a conv's output planes: plane z of batch item n lives in slot z % slots, computed on
// demand by a producer, so a consumer that reads a few consecutive planes at a time (the next conv's
// 3-plane window, a max pool's 2-plane window) never needs the whole tensor. The fused ops of
// backend/cpu/fused.hpp stream through it (ConvActMaxPool, ConvPairMaxPool, SpatialConvPair,
// DenseLayerConvs).
//
// A producer computes `count` planes from z0 into a view of dims (1, count, H, W, C). A Winograd conv
// produces groups of `step` planes (step k, ..., step k + step - 1: pairs, or fours for F(4x4x4) and F(4x6x6);
// Winograd3d::plane_step): a group lands in adjacent slots, so `slots` must be a multiple of step and
// leave room for the rest of the groups the window's first and last planes belong to (ops/fused.hpp
// counts the slots each op needs, for the op and the memory estimate alike). A direct conv: step 1.
// Groups may start at `offset` instead (offset + step k, ...; the first one cut at plane 0): a
// pointwise conv1 whose consumer reads windows starting at z0 - padding (DenseLayerConvs) then fills a
// window with whole groups. Plane z lives in slot (z - offset) mod slots.
#include <algorithm>
#include <type_traits>
#include <utility>
#include <vector>

#include "volfeat/core/error.hpp"
#include "volfeat/core/host_memory.hpp"
#include "volfeat/core/tensor_view.hpp"

namespace volfeat::cpu {

// The values of a row source's rows (PlaneRing's row(), Conv3d's ViewRows): float, or bf16 (a bf16
// network's ring of bottleneck planes, backend/cpu/fused.hpp), which a Winograd conv widens as it loads.
template <class Rows>
using RowElement = std::remove_cv_t<std::remove_pointer_t<decltype(std::declval<const Rows&>().row(0, 0, 0))>>;

template <class T>
class PlaneRing {
 public:
  // dims: the whole conv output (N, D, H, W, C); the ring holds `slots` of its planes.
  PlaneRing(const Dims& d, Index slots, Index step) : PlaneRing(d, slots, step, nullptr) {}
  // The same over the caller's storage of slots * H * W * C values (a dense block's DenseLayerConvs reuse
  // one scratch for all their layers' rings), which must outlive the ring.
  PlaneRing(const Dims& d, Index slots, Index step, T* storage, Index offset = 0)
      : dims(d), ld(d.c), slots_(slots), step_(step), offset_(offset), plane_(d.h * d.w * d.c),
        owned_(storage ? HostArray<T>() : HostArray<T>(size_t(slots * plane_))),
        data_(storage ? storage : owned_.data()), held_(size_t(slots), -1) {
    if (step < 1 || slots < 1 || slots % step != 0 || offset < 0 || offset >= step)
      fail("plane ring: ", slots, " slots for groups of ", step, " planes from ", offset);
  }
  PlaneRing(const PlaneRing&) = delete;
  PlaneRing& operator=(const PlaneRing&) = delete;

  // Plane z of item n, computed now unless the ring holds it already.
  template <class Produce>
  const T* ensure(Index n, Index z, Produce&& produce) {
    const Index slot = slot_of(z);
    if (held_[size_t(slot)] != n * dims.d + z) {
      const Index g0 = z - mod(z - offset_, step_);  // z's group: [g0, g0 + step), within [0, D)
      const Index z0 = std::max<Index>(g0, 0), count = std::min<Index>(g0 + step_, dims.d) - z0;
      const Index s0 = slot_of(z0);  // the group's slots are adjacent: slot_of(g0) is a multiple of step
      produce(n, z0, count, TensorView<T>(data_ + s0 * plane_, Dims{1, count, dims.h, dims.w, dims.c}));
      for (Index k = 0; k < count; ++k) held_[size_t(s0 + k)] = n * dims.d + z0 + k;
    }
    return data_ + slot * plane_;
  }

  // The Rows interface of Conv3d::forward_planes_rows (and the algorithms behind it): the first
  // channel of row y of plane z (the caller has ensured the plane; n selects nothing: the ring is
  // refilled per batch item).
  const T* row(Index n, Index z, Index y) const {
    (void)n;
    return data_ + slot_of(z) * plane_ + y * dims.w * ld;
  }

  Dims dims;  // the whole conv output's
  Index ld;   // channel stride of a voxel

 private:
  static Index mod(Index a, Index m) { return (a % m + m) % m; }
  Index slot_of(Index z) const { return mod(z - offset_, slots_); }

  Index slots_;
  Index step_;    // planes per producer call
  Index offset_;  // where groups start, mod step
  Index plane_;
  HostArray<T> owned_;  // empty over the caller's storage
  T* data_;
  std::vector<Index> held_;  // n * D + z of the plane in each slot (-1: none)
};

}  // namespace volfeat::cpu
