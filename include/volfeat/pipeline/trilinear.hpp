#pragma once
// The one trilinear sampler of volfeat: resample.hpp (grid to grid, neighbours clamped to the edge,
// PyTorch's interpolate(align_corners=False)) and landmarks/geometry.hpp (a rigid transform, a constant
// fill outside the volume) differ only in how they find the two neighbours along each axis (a
// LinearTap) and in what a neighbour outside the volume holds (the fetch); the arithmetic is this one
// function. tests/test_trilinear.cpp checks it against the 8-weight sum over shapes and positions.
// resample_linear computes exactly what it did before (same expression). The landmark target used the
// 8-weight sum: through this sampler (and Eigen's 3x3 products) the knee phantom's target is the same
// bits, and a random 96x112x128 volume under an oblique transform differs in 5 of 1.38M voxels by one
// float ulp (measured once against the old code); the landmark CSVs on the phantom and the pelvis did not change.
#include <algorithm>
#include <cmath>
#include <cstdint>

namespace volfeat {

// The two neighbours along one axis and the weight t of the second: value = v[i0] (1 - t) + v[i1] t.
struct LinearTap {
  int64_t i0 = 0, i1 = 0;
  double t = 0;
};

// Continuous index `src` on an axis of n voxels, clamped to the edge: src below 0 samples voxel 0, and
// past the last voxel both neighbours are the last voxel (resample_linear's convention).
inline LinearTap clamped_tap(double src, int64_t n) {
  const double s = std::max(0.0, src);
  const int64_t i0 = std::min<int64_t>(int64_t(s), n - 1);
  return {i0, std::min<int64_t>(i0 + 1, n - 1), s - double(i0)};
}

// Continuous index `u`, unclamped: floor(u) and floor(u) + 1, either possibly outside the volume (the
// fetch then supplies the fill).
inline LinearTap floor_tap(double u) {
  const int64_t i0 = int64_t(std::floor(u));
  return {i0, i0 + 1, u - double(i0)};
}

// Trilinear interpolation in double: along W, then H, then D, each step a (1 - t) + b t. at(d, h, w)
// returns a neighbour's value as double (and decides what lies outside the volume). A neighbour whose
// weight is 0 still gets fetched and multiplied by 0, so the fetch must return a finite value.
template <class Fetch>
double trilinear(const Fetch& at, const LinearTap& d, const LinearTap& h, const LinearTap& w) {
  const double c00 = at(d.i0, h.i0, w.i0) * (1 - w.t) + at(d.i0, h.i0, w.i1) * w.t;
  const double c01 = at(d.i0, h.i1, w.i0) * (1 - w.t) + at(d.i0, h.i1, w.i1) * w.t;
  const double c10 = at(d.i1, h.i0, w.i0) * (1 - w.t) + at(d.i1, h.i0, w.i1) * w.t;
  const double c11 = at(d.i1, h.i1, w.i0) * (1 - w.t) + at(d.i1, h.i1, w.i1) * w.t;
  const double c0 = c00 * (1 - h.t) + c01 * h.t, c1 = c10 * (1 - h.t) + c11 * h.t;
  return c0 * (1 - d.t) + c1 * d.t;
}

}  // namespace volfeat
