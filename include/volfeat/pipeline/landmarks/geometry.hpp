#pragma once
// Landmark geometry: voxel (d,h,w) <-> world (x,y,z) through the NIfTI affine, the rigid transform T
// (rotation about a centre, then translation, in world mm), and the target: the template under T,
// resampled onto the template's own grid (trilinear for CT, nearest for labels). The 3x3 algebra is
// Eigen's (fixed-size Matrix3d / Vector3d, no heap, no threads).
#include <Eigen/Dense>
#include <array>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "volfeat/core/error.hpp"
#include "volfeat/io/volume.hpp"
#include "volfeat/pipeline/trilinear.hpp"

namespace volfeat {

using Vec3 = Eigen::Vector3d;
using Mat3 = Eigen::Matrix3d;
using Voxel = std::array<int64_t, 3>;  // (d, h, w)

namespace detail::lm {
// The affine's 3x3 part with columns reordered to (D, H, W) = (k, j, i).
inline Mat3 voxel_axes(const Grid& g) {
  Mat3 m;
  for (int r = 0; r < 3; ++r)
    for (int a = 0; a < 3; ++a) m(r, a) = g.affine[size_t(r)][size_t(2 - a)];
  return m;
}
inline Vec3 origin(const Grid& g) { return {g.affine[0][3], g.affine[1][3], g.affine[2][3]}; }
inline Vec3 to_vec(const Voxel& v) { return {double(v[0]), double(v[1]), double(v[2])}; }
// The inverse of the voxel axes; a degenerate affine is an error.
inline Mat3 inverse_axes(const Mat3& m) {
  const double det = m.determinant();
  if (!(std::fabs(det) > 1e-300)) fail("affine: the voxel axes are degenerate (determinant ", det, ")");
  return m.inverse();
}
}  // namespace detail::lm

// A 3-vector as a plain array (JSON outputs, CSV loops).
inline std::array<double, 3> to_array(const Vec3& v) { return {v[0], v[1], v[2]}; }
// A 3x3 matrix as rows of plain arrays (JSON outputs).
inline std::array<std::array<double, 3>, 3> to_rows(const Mat3& m) {
  return {{{m(0, 0), m(0, 1), m(0, 2)}, {m(1, 0), m(1, 1), m(1, 2)}, {m(2, 0), m(2, 1), m(2, 2)}}};
}

// World mm (x, y, z) of continuous voxel coordinates (d, h, w), through the grid's affine.
inline Vec3 voxel_to_world(const Grid& g, const Vec3& dhw) { return detail::lm::voxel_axes(g) * dhw + detail::lm::origin(g); }
inline Vec3 voxel_to_world(const Grid& g, const Voxel& v) { return voxel_to_world(g, detail::lm::to_vec(v)); }
// Continuous voxel coordinates (d, h, w) of a world point.
inline Vec3 world_to_voxel(const Grid& g, const Vec3& xyz) {
  return detail::lm::inverse_axes(detail::lm::voxel_axes(g)) * (xyz - detail::lm::origin(g));
}
// The world position of the grid's centre (continuous voxel ((D-1)/2, (H-1)/2, (W-1)/2)).
inline Vec3 grid_centre_world(const Grid& g) {
  return voxel_to_world(g, Vec3{0.5 * double(g.dims[0] - 1), 0.5 * double(g.dims[1] - 1), 0.5 * double(g.dims[2] - 1)});
}

// Rotation R by Euler angles in degrees about the world x, then y, then z axis: R = Rz * Ry * Rx.
inline Mat3 rotation_euler_xyz(double ax_deg, double ay_deg, double az_deg) {
  const double a = ax_deg * M_PI / 180, b = ay_deg * M_PI / 180, c = az_deg * M_PI / 180;
  Mat3 rx, ry, rz;
  rx << 1, 0, 0, 0, std::cos(a), -std::sin(a), 0, std::sin(a), std::cos(a);
  ry << std::cos(b), 0, std::sin(b), 0, 1, 0, -std::sin(b), 0, std::cos(b);
  rz << std::cos(c), -std::sin(c), 0, std::sin(c), std::cos(c), 0, 0, 0, 1;
  return rz * (ry * rx);
}
// Rotation by `deg` degrees about the unit vector along `axis` (right-handed, Rodrigues).
inline Mat3 rotation_axis_angle(const Vec3& axis, double deg) {
  const double n = axis.norm();
  if (!(n > 0)) fail("rotation axis must be non-zero");
  const Vec3 u = axis / n;
  const double t = deg * M_PI / 180, c = std::cos(t), s = std::sin(t), C = 1 - c;
  const double x = u[0], y = u[1], z = u[2];
  Mat3 r;
  r << c + x * x * C, x * y * C - z * s, x * z * C + y * s,  //
      y * x * C + z * s, c + y * y * C, y * z * C - x * s,   //
      z * x * C - y * s, z * y * C + x * s, c + z * z * C;
  return r;
}

// x -> R (x - centre) + centre + translation, all in world mm.
struct RigidTransform {
  Mat3 rotation = Mat3::Identity();
  Vec3 centre = Vec3::Zero();
  Vec3 translation = Vec3::Zero();
  std::string text;  // how it was specified, for outputs

  Vec3 apply(const Vec3& x) const { return rotation * (x - centre) + centre + translation; }
  Vec3 inverse(const Vec3& y) const { return rotation.transpose() * (y - centre - translation) + centre; }
};

// The fixed axis of a single-angle rotation: the oblique world axis (1,1,1)/sqrt(3), so that a rotation
// moves every axis of the volume.
inline const Vec3 kLandmarkRotationAxis{1, 1, 1};

// The rotation from `degrees`: one angle about kLandmarkRotationAxis, or three Euler angles about world
// x, y, z applied in that order; then `translation` mm, about `centre`. `text` is left to the caller
// (it quotes the options as given).
inline RigidTransform rigid_transform(const std::vector<double>& degrees, const Vec3& translation, const Vec3& centre) {
  RigidTransform t;
  t.centre = centre;
  t.translation = translation;
  if (degrees.size() == 1) t.rotation = rotation_axis_angle(kLandmarkRotationAxis, degrees[0]);
  else if (degrees.size() == 3) t.rotation = rotation_euler_xyz(degrees[0], degrees[1], degrees[2]);
  else fail("rotation: expected 1 angle (about the axis (1,1,1)) or 3 (Euler angles about x, y, z), got ", degrees.size());
  return t;
}

namespace detail::lm {
// Template continuous voxel u = M v + b of target voxel v, for a target on the template's grid.
struct VoxelMap {
  Mat3 m;
  Vec3 b;
  Vec3 at(int64_t d, int64_t h, int64_t w) const { return m * Vec3{double(d), double(h), double(w)} + b; }
};
// target(v) = template(T^-1(world(v))): u = A^-1 (R^T (A v + o - c - t) + c - o).
inline VoxelMap target_to_template(const Grid& g, const RigidTransform& t) {
  const Mat3 a = voxel_axes(g), ai = inverse_axes(a), rt = t.rotation.transpose();
  const Vec3 o = origin(g);
  return {ai * (rt * a), ai * (rt * (o - t.centre - t.translation) + t.centre - o)};
}
}  // namespace detail::lm

// The template under T, on the template's own grid: trilinear, `fill` outside the template.
inline Volume<float> transform_linear(const Volume<float>& v, const RigidTransform& t, float fill) {
  Volume<float> out{v.grid, std::vector<float>(v.data.size())};
  const auto map = detail::lm::target_to_template(v.grid, t);
  const auto& n = v.grid.dims;
  auto at = [&](int64_t i, int64_t j, int64_t k) {
    const bool inside = i >= 0 && i < n[0] && j >= 0 && j < n[1] && k >= 0 && k < n[2];
    return inside ? double(v.at(i, j, k)) : double(fill);
  };
#pragma omp parallel for schedule(static)
  for (int64_t d = 0; d < n[0]; ++d)
    for (int64_t h = 0; h < n[1]; ++h)
      for (int64_t w = 0; w < n[2]; ++w) {
        const Vec3 u = map.at(d, h, w);
        out.at(d, h, w) = float(trilinear(at, floor_tap(u[0]), floor_tap(u[1]), floor_tap(u[2])));
      }
  return out;
}

// Labels under T: nearest neighbour, `fill` outside the template.
inline Volume<int32_t> transform_nearest(const Volume<int32_t>& v, const RigidTransform& t, int32_t fill = 0) {
  Volume<int32_t> out{v.grid, std::vector<int32_t>(v.data.size())};
  const auto map = detail::lm::target_to_template(v.grid, t);
  const auto& n = v.grid.dims;
#pragma omp parallel for schedule(static)
  for (int64_t d = 0; d < n[0]; ++d)
    for (int64_t h = 0; h < n[1]; ++h)
      for (int64_t w = 0; w < n[2]; ++w) {
        const Vec3 u = map.at(d, h, w);
        const int64_t i = std::llround(u[0]), j = std::llround(u[1]), k = std::llround(u[2]);
        const bool inside = i >= 0 && i < n[0] && j >= 0 && j < n[1] && k >= 0 && k < n[2];
        out.at(d, h, w) = inside ? v.at(i, j, k) : fill;
      }
  return out;
}

}  // namespace volfeat
