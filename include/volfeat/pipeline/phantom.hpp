#pragma once
// A synthetic knee CT with exact bone labels, so the pipeline can be exercised end to end (and its
// output checked against known anatomy) without shipping patient data.
//
// Grid: (D,H,W) = (128,160,160), 1 mm voxels, affine = identity, so D (NIfTI k) runs inferior ->
// superior (other dims sample the same 128x160x160 mm box more finely or coarsely, e.g. a
// scanner-sized 216x512x512 at 0.59x0.31x0.31 mm): the proximal tibia (label 2) occupies the low slices, the distal femur (label 1) the high
// ones, separated by a joint gap of about 5 mm around d = 61..66. Each bone is a union of ellipsoids
// and elliptic cylinders with a 3 mm cortical shell around marrow, inside an elliptic cylinder of
// soft tissue, in air.
#include <array>
#include <cmath>
#include <cstdint>
#include <vector>

#include "volfeat/core/error.hpp"
#include "volfeat/core/host_memory.hpp"
#include "volfeat/core/random.hpp"
#include "volfeat/io/volume.hpp"

namespace volfeat {

struct Phantom {
  Volume<float> ct;        // HU
  Volume<int32_t> labels;  // 0 background, 1 femur, 2 tibia (cortex + marrow)
};

// Noise-free intensities of the phantom's tissues, in HU, and the noise added on top.
namespace knee_phantom {
inline constexpr float kAirHu = -1000.0f;
inline constexpr float kSoftTissueHu = 40.0f;
inline constexpr float kMarrowHu = 300.0f;
inline constexpr float kCortexHu = 1200.0f;
inline constexpr float kNoiseSigmaHu = 20.0f;
inline constexpr double kCortexMm = 3.0;
}  // namespace knee_phantom

// Same seed -> the same volume on every platform (noise from volfeat::Rng, whose Box-Muller normals
// do not depend on the standard library; libm's log/sin/cos may still differ in the last ulp);
// different seeds differ only in the noise.
inline constexpr std::array<int64_t, 3> kKneePhantomDims{{128, 160, 160}};
inline Phantom make_knee_phantom(uint64_t seed = 0, const std::array<int64_t, 3>& dims = kKneePhantomDims);

namespace detail::phantom {

// Shapes in voxel coordinates (d,h,w). shrink(t) gives the same shape t mm smaller on every side,
// which turns a bone's outline into its marrow cavity.
struct Ellipsoid {
  std::array<double, 3> c, r;
  bool contains(double d, double h, double w) const {
    const double a = (d - c[0]) / r[0], b = (h - c[1]) / r[1], e = (w - c[2]) / r[2];
    return a * a + b * b + e * e <= 1.0;
  }
  Ellipsoid shrink(double t) const { return {c, {r[0] - t, r[1] - t, r[2] - t}}; }
};

// Elliptic cylinder along D, between slices d0 and d1.
struct Cylinder {
  double ch, cw, rh, rw, d0, d1;
  bool contains(double d, double h, double w) const {
    if (d < d0 || d > d1) return false;
    const double a = (h - ch) / rh, b = (w - cw) / rw;
    return a * a + b * b <= 1.0;
  }
  Cylinder shrink(double t) const { return {ch, cw, rh - t, rw - t, d0 + t, d1 - t}; }
};

struct Bone {
  std::vector<Ellipsoid> ellipsoids;
  std::vector<Cylinder> cylinders;
  bool contains(double d, double h, double w) const {
    for (const auto& e : ellipsoids)
      if (e.contains(d, h, w)) return true;
    for (const auto& c : cylinders)
      if (c.contains(d, h, w)) return true;
    return false;
  }
  Bone shrink(double t) const {
    Bone b;
    for (const auto& e : ellipsoids) b.ellipsoids.push_back(e.shrink(t));
    for (const auto& c : cylinders) b.cylinders.push_back(c.shrink(t));
    return b;
  }
};

}  // namespace detail::phantom

inline Phantom make_knee_phantom(uint64_t seed, const std::array<int64_t, 3>& dims) {
  using namespace detail::phantom;
  using namespace knee_phantom;
  for (int64_t n : dims)
    if (n < 1 || n > 4096) fail("phantom dims must be 1..4096 per axis, got ", n);
  const int64_t D = dims[0], H = dims[1], W = dims[2];
  // The anatomy below is laid out in mm on the default grid, where voxel index = mm; voxel centres
  // of any other grid map onto that box.
  const std::array<double, 3> spacing{{double(kKneePhantomDims[0]) / double(D), double(kKneePhantomDims[1]) / double(H),
                                       double(kKneePhantomDims[2]) / double(W)}};
  constexpr double ch = 80.0, cw = 80.0;

  // Distal femur: a shaft leaving the top of the volume, widening through the metaphysis into two
  // condyles whose lowest points are at d = 66. Shafts reach well past the volume so shrinking them
  // does not put a cortical cap inside the field of view.
  Bone femur;
  femur.cylinders.push_back({ch, cw, 13.0, 14.0, 95.0, 400.0});
  femur.ellipsoids.push_back({{98.0, ch, cw}, {18.0, 18.0, 24.0}});
  femur.ellipsoids.push_back({{80.0, ch + 2.0, cw - 16.0}, {14.0, 20.0, 14.0}});
  femur.ellipsoids.push_back({{80.0, ch + 2.0, cw + 16.0}, {14.0, 20.0, 14.0}});

  // Proximal tibia: a flat plateau with its top at d = 61, narrowing into a shaft that leaves the
  // bottom of the volume.
  Bone tibia;
  tibia.cylinders.push_back({ch, cw, 24.0, 34.0, 46.0, 61.0});
  tibia.ellipsoids.push_back({{46.0, ch, cw}, {14.0, 22.0, 30.0}});
  tibia.cylinders.push_back({ch, cw, 12.0, 13.0, -400.0, 50.0});

  const Bone femur_marrow = femur.shrink(kCortexMm), tibia_marrow = tibia.shrink(kCortexMm);
  const Cylinder leg{ch, cw, 62.0, 72.0, -1e9, 1e9};

  Phantom p;
  p.ct.grid = make_grid({D, H, W}, spacing);
  p.labels.grid = p.ct.grid;
  p.ct.data = huge_page_vector<float>(static_cast<size_t>(D * H * W));
  p.labels.data = huge_page_vector<int32_t>(static_cast<size_t>(D * H * W));

  Rng noise(seed);
  size_t i = 0;
  for (int64_t d = 0; d < D; ++d) {
    for (int64_t h = 0; h < H; ++h) {
      for (int64_t w = 0; w < W; ++w, ++i) {
        const double z = (double(d) + 0.5) * spacing[0] - 0.5, y = (double(h) + 0.5) * spacing[1] - 0.5,
                     x = (double(w) + 0.5) * spacing[2] - 0.5;
        float hu = kAirHu;
        int32_t label = 0;
        if (femur.contains(z, y, x)) {
          label = 1;
          hu = femur_marrow.contains(z, y, x) ? kMarrowHu : kCortexHu;
        } else if (tibia.contains(z, y, x)) {
          label = 2;
          hu = tibia_marrow.contains(z, y, x) ? kMarrowHu : kCortexHu;
        } else if (leg.contains(z, y, x)) {
          hu = kSoftTissueHu;
        }
        // Every voxel draws one deviate, so the noise field depends on the seed only, not the anatomy.
        p.ct.data[i] = hu + static_cast<float>(kNoiseSigmaHu * noise.normal());
        p.labels.data[i] = label;
      }
    }
  }
  return p;
}

}  // namespace volfeat
