#pragma once
// Landmark matching, the evaluation of Avants et al. ("Deep Volumetric Feature Encoding for
// Biomedical Images"): a landmark of a template is looked for in a target as the voxel whose patch
// features are nearest the template's, and the error in mm is compared before and after matching.
//
// The experiment needs no hand-placed landmarks: the target is the template under a known rigid
// transform T (rotation about a centre, then translation, in world mm), resampled onto the template's
// grid, so each template landmark x has the true target position T(x).
//
//   geometry      voxel (d,h,w) <-> world (x,y,z) through the NIfTI affine; RigidTransform; the target
//                 by trilinear (CT) and nearest (labels) resampling of the template under T
//   landmarks     per label: the centroid and the 6 extreme points along -D,+D,-H,+H,-W,+W
//   features      a cubic patch of P voxels around a voxel, run through the network up to the chosen
//                 layer (forward's early stop), global average of that layer's map (the paper's way)
//   matching      candidates: target voxels on a stride-S grid within R mm of the landmark's
//                 *untransformed* position; the match is the candidate whose L2-normalised feature
//                 vector is nearest (Euclidean distance) the template patch's
//   statistics    paired t-test of the errors before vs after, with the t distribution's CDF from the
//                 regularised incomplete beta function
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "volfeat/backend/cpu_tensor.hpp"
#include "volfeat/core/error.hpp"
#include "volfeat/core/progress.hpp"
#include "volfeat/io/volume.hpp"
#include "volfeat/nn/network.hpp"
#include "volfeat/nn/selectors.hpp"
#include "volfeat/pipeline/normalize.hpp"
#include "volfeat/core/random.hpp"
#include "volfeat/weights/load.hpp"

namespace volfeat {

using Vec3 = std::array<double, 3>;
using Mat3 = std::array<std::array<double, 3>, 3>;
using Voxel = std::array<int64_t, 3>;  // (d, h, w)

// ============================================================================ geometry

namespace detail::lm {
inline Vec3 mul(const Mat3& m, const Vec3& v) {
  Vec3 r{};
  for (size_t i = 0; i < 3; ++i) r[i] = m[i][0] * v[0] + m[i][1] * v[1] + m[i][2] * v[2];
  return r;
}
inline Mat3 mul(const Mat3& a, const Mat3& b) {
  Mat3 r{};
  for (size_t i = 0; i < 3; ++i)
    for (size_t j = 0; j < 3; ++j) r[i][j] = a[i][0] * b[0][j] + a[i][1] * b[1][j] + a[i][2] * b[2][j];
  return r;
}
inline Mat3 transpose(const Mat3& m) {
  Mat3 r{};
  for (size_t i = 0; i < 3; ++i)
    for (size_t j = 0; j < 3; ++j) r[i][j] = m[j][i];
  return r;
}
inline Mat3 inverse(const Mat3& m) {
  const double det = m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) -
                     m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0]) +
                     m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]);
  if (!(std::fabs(det) > 1e-300)) fail("affine: the voxel axes are degenerate (determinant ", det, ")");
  Mat3 r{};
  r[0][0] = (m[1][1] * m[2][2] - m[1][2] * m[2][1]) / det;
  r[0][1] = (m[0][2] * m[2][1] - m[0][1] * m[2][2]) / det;
  r[0][2] = (m[0][1] * m[1][2] - m[0][2] * m[1][1]) / det;
  r[1][0] = (m[1][2] * m[2][0] - m[1][0] * m[2][2]) / det;
  r[1][1] = (m[0][0] * m[2][2] - m[0][2] * m[2][0]) / det;
  r[1][2] = (m[0][2] * m[1][0] - m[0][0] * m[1][2]) / det;
  r[2][0] = (m[1][0] * m[2][1] - m[1][1] * m[2][0]) / det;
  r[2][1] = (m[0][1] * m[2][0] - m[0][0] * m[2][1]) / det;
  r[2][2] = (m[0][0] * m[1][1] - m[0][1] * m[1][0]) / det;
  return r;
}
inline Vec3 add(const Vec3& a, const Vec3& b) { return {a[0] + b[0], a[1] + b[1], a[2] + b[2]}; }
inline Vec3 sub(const Vec3& a, const Vec3& b) { return {a[0] - b[0], a[1] - b[1], a[2] - b[2]}; }
inline double norm(const Vec3& a) { return std::sqrt(a[0] * a[0] + a[1] * a[1] + a[2] * a[2]); }

// The affine's 3x3 part with columns reordered to (D, H, W) = (k, j, i).
inline Mat3 voxel_axes(const Grid& g) {
  Mat3 m{};
  for (size_t r = 0; r < 3; ++r)
    for (size_t a = 0; a < 3; ++a) m[r][a] = g.affine[r][2 - a];
  return m;
}
inline Vec3 origin(const Grid& g) { return {g.affine[0][3], g.affine[1][3], g.affine[2][3]}; }

inline std::vector<double> parse_numbers(const std::string& s, const std::string& what) {
  std::vector<double> out;
  size_t start = 0;
  while (start <= s.size()) {
    const size_t end = std::min(s.find(',', start), s.size());
    const std::string item = s.substr(start, end - start);
    size_t used = 0;
    double v = 0;
    try {
      v = std::stod(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (item.empty() || used != item.size() || !std::isfinite(v)) fail(what, " '", s, "': '", item, "' is not a number");
    out.push_back(v);
    start = end + 1;
  }
  return out;
}
}  // namespace detail::lm

// World mm (x, y, z) of continuous voxel coordinates (d, h, w), through the grid's affine.
inline Vec3 voxel_to_world(const Grid& g, const Vec3& dhw) {
  return detail::lm::add(detail::lm::mul(detail::lm::voxel_axes(g), dhw), detail::lm::origin(g));
}
inline Vec3 voxel_to_world(const Grid& g, const Voxel& v) { return voxel_to_world(g, Vec3{double(v[0]), double(v[1]), double(v[2])}); }
// Continuous voxel coordinates (d, h, w) of a world point.
inline Vec3 world_to_voxel(const Grid& g, const Vec3& xyz) {
  return detail::lm::mul(detail::lm::inverse(detail::lm::voxel_axes(g)), detail::lm::sub(xyz, detail::lm::origin(g)));
}
// The world position of the grid's centre (continuous voxel ((D-1)/2, (H-1)/2, (W-1)/2)).
inline Vec3 grid_centre_world(const Grid& g) {
  return voxel_to_world(g, Vec3{0.5 * double(g.dims[0] - 1), 0.5 * double(g.dims[1] - 1), 0.5 * double(g.dims[2] - 1)});
}

// Rotation R by Euler angles in degrees about the world x, then y, then z axis: R = Rz * Ry * Rx.
inline Mat3 rotation_euler_xyz(double ax_deg, double ay_deg, double az_deg) {
  const double a = ax_deg * M_PI / 180, b = ay_deg * M_PI / 180, c = az_deg * M_PI / 180;
  const Mat3 rx{{{1, 0, 0}, {0, std::cos(a), -std::sin(a)}, {0, std::sin(a), std::cos(a)}}};
  const Mat3 ry{{{std::cos(b), 0, std::sin(b)}, {0, 1, 0}, {-std::sin(b), 0, std::cos(b)}}};
  const Mat3 rz{{{std::cos(c), -std::sin(c), 0}, {std::sin(c), std::cos(c), 0}, {0, 0, 1}}};
  return detail::lm::mul(rz, detail::lm::mul(ry, rx));
}
// Rotation by `deg` degrees about the unit vector along `axis` (right-handed, Rodrigues).
inline Mat3 rotation_axis_angle(Vec3 axis, double deg) {
  const double n = detail::lm::norm(axis);
  if (!(n > 0)) fail("rotation axis must be non-zero");
  for (double& v : axis) v /= n;
  const double t = deg * M_PI / 180, c = std::cos(t), s = std::sin(t), C = 1 - c;
  const double x = axis[0], y = axis[1], z = axis[2];
  return Mat3{{{c + x * x * C, x * y * C - z * s, x * z * C + y * s},
               {y * x * C + z * s, c + y * y * C, y * z * C - x * s},
               {z * x * C - y * s, z * y * C + x * s, c + z * z * C}}};
}

// x -> R (x - centre) + centre + translation, all in world mm.
struct RigidTransform {
  Mat3 rotation{{{1, 0, 0}, {0, 1, 0}, {0, 0, 1}}};
  Vec3 centre{0, 0, 0};
  Vec3 translation{0, 0, 0};
  std::string text;  // how it was specified, for outputs

  Vec3 apply(const Vec3& x) const {
    using namespace detail::lm;
    return add(add(mul(rotation, sub(x, centre)), centre), translation);
  }
  Vec3 inverse(const Vec3& y) const {
    using namespace detail::lm;
    return add(mul(transpose(rotation), sub(sub(y, centre), translation)), centre);
  }
};

// The fixed axis of a single-angle --rotate: the oblique world axis (1,1,1)/sqrt(3), so that a
// rotation moves every axis of the volume.
inline const Vec3 kLandmarkRotationAxis{1, 1, 1};

// --rotate DEG: DEG degrees about the oblique world axis (1,1,1)/sqrt(3); --rotate AX,AY,AZ: Euler angles
// in degrees about world x, y, z, applied in that order. --translate TX,TY,TZ in world mm. The rotation
// is about `centre` (the template grid's centre).
inline RigidTransform parse_rigid_transform(const std::string& rotate, const std::string& translate, const Vec3& centre) {
  RigidTransform t;
  t.centre = centre;
  const auto r = detail::lm::parse_numbers(rotate, "--rotate");
  if (r.size() == 1) t.rotation = rotation_axis_angle(kLandmarkRotationAxis, r[0]);
  else if (r.size() == 3) t.rotation = rotation_euler_xyz(r[0], r[1], r[2]);
  else fail("--rotate '", rotate, "': expected DEG (about the axis (1,1,1)) or AX,AY,AZ (Euler angles about x, y, z)");
  const auto tr = detail::lm::parse_numbers(translate, "--translate");
  if (tr.size() != 3) fail("--translate '", translate, "': expected TX,TY,TZ in mm");
  t.translation = {tr[0], tr[1], tr[2]};
  std::ostringstream os;
  os << "rotate " << (r.size() == 1 ? rotate + " deg about (1,1,1)" : rotate + " deg about x,y,z") << " around ("
     << centre[0] << "," << centre[1] << "," << centre[2] << ") mm, then translate " << translate << " mm";
  t.text = os.str();
  return t;
}

namespace detail::lm {
// Template continuous voxel u = M v + b of target voxel v, for a target on the template's grid.
struct VoxelMap {
  Mat3 m;
  Vec3 b;
  Vec3 at(int64_t d, int64_t h, int64_t w) const {
    return {m[0][0] * double(d) + m[0][1] * double(h) + m[0][2] * double(w) + b[0],
            m[1][0] * double(d) + m[1][1] * double(h) + m[1][2] * double(w) + b[1],
            m[2][0] * double(d) + m[2][1] * double(h) + m[2][2] * double(w) + b[2]};
  }
};
// target(v) = template(T^-1(world(v))): u = A^-1 (R^T (A v + o - c - t) + c - o).
inline VoxelMap target_to_template(const Grid& g, const RigidTransform& t) {
  const Mat3 a = voxel_axes(g), ai = inverse(a), rt = transpose(t.rotation);
  VoxelMap map;
  map.m = mul(ai, mul(rt, a));
  const Vec3 o = origin(g);
  map.b = mul(ai, sub(add(mul(rt, sub(sub(o, t.centre), t.translation)), t.centre), o));
  return map;
}
}  // namespace detail::lm

// The template under T, on the template's own grid: trilinear, `fill` outside the template.
inline Volume<float> transform_linear(const Volume<float>& v, const RigidTransform& t, float fill) {
  Volume<float> out{v.grid, std::vector<float>(v.data.size())};
  const auto map = detail::lm::target_to_template(v.grid, t);
  const auto& n = v.grid.dims;
#pragma omp parallel for schedule(static)
  for (int64_t d = 0; d < n[0]; ++d)
    for (int64_t h = 0; h < n[1]; ++h)
      for (int64_t w = 0; w < n[2]; ++w) {
        const Vec3 u = map.at(d, h, w);
        const int64_t i0 = int64_t(std::floor(u[0])), j0 = int64_t(std::floor(u[1])), k0 = int64_t(std::floor(u[2]));
        const double fd = u[0] - double(i0), fh = u[1] - double(j0), fw = u[2] - double(k0);
        double acc = 0;
        for (int a = 0; a < 2; ++a)
          for (int b = 0; b < 2; ++b)
            for (int c = 0; c < 2; ++c) {
              const double wgt = (a ? fd : 1 - fd) * (b ? fh : 1 - fh) * (c ? fw : 1 - fw);
              if (wgt == 0) continue;
              const int64_t i = i0 + a, j = j0 + b, k = k0 + c;
              const bool inside = i >= 0 && i < n[0] && j >= 0 && j < n[1] && k >= 0 && k < n[2];
              acc += wgt * (inside ? double(v.at(i, j, k)) : double(fill));
            }
        out.at(d, h, w) = float(acc);
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

// ============================================================================ landmarks

// Mean voxel coordinate (d, h, w) of a label; an absent label is an error.
inline Vec3 label_centroid(const Volume<int32_t>& labels, int32_t label) {
  double s[3] = {0, 0, 0};
  int64_t count = 0;
  const auto& n = labels.grid.dims;
  for (int64_t d = 0; d < n[0]; ++d)
    for (int64_t h = 0; h < n[1]; ++h)
      for (int64_t w = 0; w < n[2]; ++w)
        if (labels.at(d, h, w) == label) s[0] += double(d), s[1] += double(h), s[2] += double(w), ++count;
  if (count == 0) fail("label ", label, " is absent");
  return {s[0] / double(count), s[1] / double(count), s[2] / double(count)};
}

struct Landmark {
  std::string name;   // "femur.centroid", "femur.+D", ...
  std::string region;
  int32_t label = 0;
  std::string kind;   // centroid | -D | +D | -H | +H | -W | +W
  Voxel voxel{};      // in the template: the patch centre and the search centre in the target
  Vec3 world{};       // world(voxel)
  Vec3 true_world{};  // T(world): where the landmark is in the target
  Vec3 true_voxel{};  // continuous target voxel of true_world
};

struct LandmarkRegion {
  std::string name;
  int32_t label = 0;
};

// Per label, in the order centroid, -D, +D, -H, +H, -W, +W (labels interleaved within each kind, so a
// cap on the count keeps every label). The centroid is rounded to the nearest voxel. An extreme point
// along an axis is, of the label's voxels with the smallest (-) or largest (+) coordinate on that axis,
// the one nearest their mean. Skipped, with a reason in `skipped`: extreme points on the grid's border
// (the field of view cuts the label there; that point is not anatomy) and landmarks whose true target
// position T(x) lies outside the target grid. max_count 0: all.
inline std::vector<Landmark> automatic_landmarks(const Volume<int32_t>& labels, const std::vector<LandmarkRegion>& regions,
                                                 const RigidTransform& t, size_t max_count = 0,
                                                 std::vector<std::string>* skipped = nullptr) {
  const auto& n = labels.grid.dims;
  struct Stats {
    Vec3 sum{0, 0, 0};
    int64_t count = 0;
    std::array<int64_t, 6> extreme{};  // min/max per axis
  };
  std::map<int32_t, Stats> stats;
  for (const auto& r : regions) {
    if (r.label == 0) fail("landmarks: label 0 is the background and has no landmarks");
    Stats s;
    for (size_t a = 0; a < 3; ++a) s.extreme[2 * a] = std::numeric_limits<int64_t>::max(), s.extreme[2 * a + 1] = -1;
    stats[r.label] = s;
  }
  for (int64_t d = 0; d < n[0]; ++d)
    for (int64_t h = 0; h < n[1]; ++h)
      for (int64_t w = 0; w < n[2]; ++w) {
        auto it = stats.find(labels.at(d, h, w));
        if (it == stats.end()) continue;
        Stats& s = it->second;
        const int64_t p[3] = {d, h, w};
        for (size_t a = 0; a < 3; ++a) {
          s.sum[a] += double(p[a]);
          s.extreme[2 * a] = std::min(s.extreme[2 * a], p[a]);
          s.extreme[2 * a + 1] = std::max(s.extreme[2 * a + 1], p[a]);
        }
        ++s.count;
      }
  for (const auto& r : regions)
    if (stats[r.label].count == 0) fail("landmarks: region ", r.name, "=", r.label, " is absent from the labels");

  // The voxels on each extreme face: their mean, then the face voxel nearest it.
  std::map<std::pair<int32_t, int>, std::pair<Vec3, int64_t>> face_mean;
  std::map<std::pair<int32_t, int>, std::pair<Voxel, double>> face_pick;
  for (int pass = 0; pass < 2; ++pass)
    for (int64_t d = 0; d < n[0]; ++d)
      for (int64_t h = 0; h < n[1]; ++h)
        for (int64_t w = 0; w < n[2]; ++w) {
          const int32_t l = labels.at(d, h, w);
          auto it = stats.find(l);
          if (it == stats.end()) continue;
          const int64_t p[3] = {d, h, w};
          for (int e = 0; e < 6; ++e) {
            if (p[e / 2] != it->second.extreme[size_t(e)]) continue;
            const auto key = std::make_pair(l, e);
            if (pass == 0) {
              auto& [sum, count] = face_mean[key];
              for (size_t a = 0; a < 3; ++a) sum[a] += double(p[a]);
              ++count;
            } else {
              const auto& [sum, count] = face_mean[key];
              double dist = 0;
              for (size_t a = 0; a < 3; ++a) dist += std::pow(double(p[a]) - sum[a] / double(count), 2);
              auto f = face_pick.find(key);
              if (f == face_pick.end() || dist < f->second.second) face_pick[key] = {{d, h, w}, dist};
            }
          }
        }

  static const char* kKinds[7] = {"centroid", "-D", "+D", "-H", "+H", "-W", "+W"};
  std::vector<Landmark> out;
  for (int k = 0; k < 7; ++k)
    for (const auto& r : regions) {
      const Stats& s = stats[r.label];
      Landmark lm;
      lm.region = r.name;
      lm.label = r.label;
      lm.kind = kKinds[k];
      lm.name = r.name + "." + lm.kind;
      if (k == 0) {
        for (size_t a = 0; a < 3; ++a)
          lm.voxel[a] = std::clamp<int64_t>(std::llround(s.sum[a] / double(s.count)), 0, n[a] - 1);
      } else {
        const int e = k - 1;
        const int64_t coord = s.extreme[size_t(e)];
        if (coord == 0 || coord == n[size_t(e / 2)] - 1) {
          if (skipped) skipped->push_back(lm.name + ": on the grid's border (the field of view cuts the label)");
          continue;
        }
        lm.voxel = face_pick.at({r.label, e}).first;
      }
      lm.world = voxel_to_world(labels.grid, lm.voxel);
      lm.true_world = t.apply(lm.world);
      lm.true_voxel = world_to_voxel(labels.grid, lm.true_world);
      bool inside = true;
      for (size_t a = 0; a < 3; ++a) inside = inside && lm.true_voxel[a] >= -0.5 && lm.true_voxel[a] <= double(n[a]) - 0.5;
      if (!inside) {
        if (skipped) skipped->push_back(lm.name + ": its transformed position leaves the target's grid");
        continue;
      }
      out.push_back(lm);
    }
  if (max_count > 0 && out.size() > max_count) {
    if (skipped)
      for (size_t i = max_count; i < out.size(); ++i) skipped->push_back(out[i].name + ": beyond --max-landmarks");
    out.resize(max_count);
  }
  return out;
}

// ============================================================================ patches and features

// A normalised network input (channels-last (D, H, W, C)) and the value of every channel outside it.
struct PatchSource {
  const float* data = nullptr;
  std::array<int64_t, 3> dims{};
  int channels = 1;
  std::vector<float> pad;  // per channel
};

// The cube of P voxels per axis whose voxel P/2 (per axis) is `centre`: indices centre - P/2 ..
// centre - P/2 + P - 1. Voxels outside the volume take the pad value. out: P^3 * C floats.
inline void extract_patch(const PatchSource& s, const Voxel& centre, int p, float* out) {
  const int64_t c = s.channels, P = p;
  const int64_t lo[3] = {centre[0] - P / 2, centre[1] - P / 2, centre[2] - P / 2};
  for (int64_t a = 0; a < P; ++a)
    for (int64_t b = 0; b < P; ++b)
      for (int64_t e = 0; e < P; ++e) {
        const int64_t d = lo[0] + a, h = lo[1] + b, w = lo[2] + e;
        float* dst = out + ((a * P + b) * P + e) * c;
        if (d >= 0 && d < s.dims[0] && h >= 0 && h < s.dims[1] && w >= 0 && w < s.dims[2]) {
          const float* src = s.data + ((d * s.dims[1] + h) * s.dims[2] + w) * c;
          std::copy(src, src + c, dst);
        } else {
          std::copy(s.pad.begin(), s.pad.end(), dst);
        }
      }
}

// The names of --layers' depth aliases, per family (ArchFamily::depth_layers): shallow, mid and deep are
// DenseNet's dense blocks 1, 2 and 3 (their concatenated channels: 256, 512 and 1024 for DenseNet121),
// the paper's VGG conv2_2, conv4_2 and conv5_4 (a shallower VGG's last conv of block 2, second of block
// 4, last of block 5), ResNet's layer1, layer2 and layer3.
inline std::string landmark_layer_module(const Graph& g, const std::string& selector) {
  const int k = selector == "shallow" ? 0 : selector == "mid" ? 1 : selector == "deep" ? 2 : -1;
  if (k >= 0) return resolve_layer(g, arch_family(g.arch()).depth_layers[size_t(k)]);
  return resolve_layer(g, selector);
}

namespace detail::lm {
// Global average of each wanted module's map (per channel, in double), for one sample.
template <class Backend, class T>
struct GlobalAverage {
  const Backend* device;
  const std::vector<std::string>* names;
  std::vector<std::vector<double>>* out;  // [name index]
  bool wants(const std::string& n) const { return std::find(names->begin(), names->end(), n) != names->end(); }
  void operator()(const std::string& n, TensorView<const T> v) {
    const size_t i = size_t(std::find(names->begin(), names->end(), n) - names->begin());
    const Index c = v.dims.c, voxels = v.dims.voxels();
    std::vector<double> s(size_t(c), 0.0);
    if constexpr (std::is_same_v<Backend, Cpu>) {
      for (Index k = 0; k < voxels; ++k) {
        const T* p = v.voxel(k);
        for (Index j = 0; j < c; ++j) s[size_t(j)] += double(p[j]);
      }
    } else {
      const auto host = to_host(*device, v);
      for (Index k = 0; k < voxels; ++k)
        for (Index j = 0; j < c; ++j) s[size_t(j)] += double(host[size_t(k * c + j)]);
    }
    for (double& x : s) x /= double(voxels);
    (*out)[i] = std::move(s);
  }
};

// (stride, offset) along D of node `node`'s grid in input voxels: output voxel i is centred on input
// s*i + o. Follows each node's first input back to the graph's input (every conv and pool on the way).
inline std::pair<double, double> module_sampling(const Graph& g, int node) {
  std::vector<const WindowGeometry*> chain;
  for (int i = node; i > 0; i = g.node(i).inputs[0]) {
    const Node& n = g.node(i);
    if (n.kind == OpKind::kConv || n.kind == OpKind::kMaxPool || n.kind == OpKind::kAvgPool) chain.push_back(&n.window);
  }
  double s = 1, o = 0;
  for (auto it = chain.rbegin(); it != chain.rend(); ++it) {
    o += s * (double((*it)->kernel[0] - 1) / 2 - double((*it)->padding[0]));
    s *= double((*it)->stride[0]);
  }
  return {s, o};
}
}  // namespace detail::lm

// Features of patches: runs each P^3 patch through `net` up to `stop` and returns, per job, the global
// average of each of `modules` (full names). Jobs run one patch per forward pass (batch 1); on the Cpu
// backend the patches are spread over the OpenMP threads, each forward then running single-threaded
// (tiny patches parallelise far better across patches than within one).
template <class Backend, class T>
std::vector<std::vector<std::vector<double>>> patch_features(const Network<Backend, T>& net,
                                                             const std::vector<std::pair<const PatchSource*, Voxel>>& jobs,
                                                             int p, const std::vector<std::string>& modules, int stop) {
  std::vector<std::vector<std::vector<double>>> out(jobs.size(), std::vector<std::vector<double>>(modules.size()));
  const Index c = net.input_channels();
  const Dims dims{1, p, p, p, c};
  auto one = [&](size_t j, std::vector<T>& buf, std::vector<float>& patch) {
    if (jobs[j].first->channels != c)
      fail("landmarks: the input has ", jobs[j].first->channels, " channel(s) but the network takes ", c);
    extract_patch(*jobs[j].first, jobs[j].second, p, patch.data());
    std::copy(patch.begin(), patch.end(), buf.begin());
    const auto on_device = from_host(net.device(), dims, buf.data());
    detail::lm::GlobalAverage<Backend, T> obs{&net.device(), &modules, &out[j]};
    net.forward(on_device.view(), obs, stop);
  };
  const int64_t count = int64_t(jobs.size());
  if constexpr (std::is_same_v<Backend, Cpu>) {
    std::string error;
#pragma omp parallel
    {
      std::vector<T> buf(size_t(dims.size()));
      std::vector<float> patch(size_t(dims.size()));
#pragma omp for schedule(dynamic, 1)
      for (int64_t j = 0; j < count; ++j) {
        try {
          one(size_t(j), buf, patch);
        } catch (const std::exception& e) {
#pragma omp critical(volfeat_landmarks_error)
          if (error.empty()) error = e.what();
        }
      }
    }
    if (!error.empty()) fail(error);
  } else {
    std::vector<T> buf(size_t(dims.size()));
    std::vector<float> patch(size_t(dims.size()));
    for (int64_t j = 0; j < count; ++j) one(size_t(j), buf, patch);
  }
  return out;
}

// The fast approximation (--dense): ONE forward pass over the box covering the patches around every
// voxel of `box_centres` (voxels outside the volume padded), then, per voxel of `centres` and module, the
// mean of the module's map over that voxel's patch footprint: map voxel i stands for input voxels [s*i + o - s/2, s*i + o + s/2) (module_sampling), and
// is weighted by the fraction of that interval inside the patch, per axis. NOT equivalent to the patch
// approach: the map sees context beyond each patch and none of a patch's zero padding.
template <class Backend, class T>
std::vector<std::vector<std::vector<double>>> dense_features(const Network<Backend, T>& net, const PatchSource& src,
                                                             const std::vector<Voxel>& box_centres,
                                                             const std::vector<Voxel>& centres, int p,
                                                             const std::vector<std::string>& modules, int stop) {
  const Index c = net.input_channels();
  if (src.channels != c) fail("landmarks: the input has ", src.channels, " channel(s) but the network takes ", c);
  Voxel lo{}, hi{};
  for (size_t a = 0; a < 3; ++a) {
    lo[a] = std::numeric_limits<int64_t>::max(), hi[a] = std::numeric_limits<int64_t>::min();
    for (const Voxel& v : box_centres) lo[a] = std::min(lo[a], v[a] - p / 2), hi[a] = std::max(hi[a], v[a] - p / 2 + p);
  }
  for (const Voxel& v : centres)
    for (size_t a = 0; a < 3; ++a)
      if (v[a] - p / 2 < lo[a] || v[a] - p / 2 + p > hi[a]) fail("dense_features: a patch leaves the box");
  const Dims dims{1, hi[0] - lo[0], hi[1] - lo[1], hi[2] - lo[2], c};
  std::vector<T> box(size_t(dims.size()));
  for (int64_t d = 0; d < dims.d; ++d)
    for (int64_t h = 0; h < dims.h; ++h)
      for (int64_t w = 0; w < dims.w; ++w) {
        const int64_t sd = lo[0] + d, sh = lo[1] + h, sw = lo[2] + w;
        T* dst = box.data() + ((d * dims.h + h) * dims.w + w) * c;
        if (sd >= 0 && sd < src.dims[0] && sh >= 0 && sh < src.dims[1] && sw >= 0 && sw < src.dims[2]) {
          const float* s = src.data + ((sd * src.dims[1] + sh) * src.dims[2] + sw) * c;
          std::copy(s, s + c, dst);
        } else {
          std::copy(src.pad.begin(), src.pad.end(), dst);
        }
      }
  struct Maps {
    const Backend* device;
    const std::vector<std::string>* names;
    std::vector<HostTensor<T>> maps;
    bool wants(const std::string& n) const { return std::find(names->begin(), names->end(), n) != names->end(); }
    void operator()(const std::string& n, TensorView<const T> v) {
      maps[size_t(std::find(names->begin(), names->end(), n) - names->begin())] = HostTensor<T>{v.dims, to_host(*device, v)};
    }
  } obs{&net.device(), &modules, std::vector<HostTensor<T>>(modules.size())};
  const auto on_device = from_host(net.device(), dims, box.data());
  net.forward(on_device.view(), obs, stop);

  std::vector<std::vector<std::vector<double>>> out(centres.size(), std::vector<std::vector<double>>(modules.size()));
  for (size_t m = 0; m < modules.size(); ++m) {
    const HostTensor<T>& map = obs.maps[m];
    const auto [s, o] = detail::lm::module_sampling(net.graph(), net.node_of(modules[m]));
    const std::array<Index, 3> n{map.dims.d, map.dims.h, map.dims.w};
    for (size_t j = 0; j < centres.size(); ++j) {
      // per axis: weight of map index i = overlap of [s*i+o-s/2, s*i+o+s/2) with the patch [a-0.5, a+P-0.5)
      std::array<std::vector<double>, 3> wt;
      for (size_t a = 0; a < 3; ++a) {
        const double p0 = double(centres[j][a] - p / 2 - lo[a]) - 0.5, p1 = p0 + double(p);
        wt[a].resize(size_t(n[a]));
        for (Index i = 0; i < n[a]; ++i) {
          const double c0 = s * double(i) + o - s / 2, c1 = c0 + s;
          wt[a][size_t(i)] = std::max(0.0, std::min(c1, p1) - std::max(c0, p0)) / s;
        }
      }
      std::vector<double> f(size_t(map.dims.c), 0.0);
      double total = 0;
      for (Index d = 0; d < n[0]; ++d)
        for (Index h = 0; h < n[1]; ++h) {
          const double wdh = wt[0][size_t(d)] * wt[1][size_t(h)];
          if (wdh == 0) continue;
          for (Index w = 0; w < n[2]; ++w) {
            const double wgt = wdh * wt[2][size_t(w)];
            if (wgt == 0) continue;
            const T* v = map.voxel((d * n[1] + h) * n[2] + w);
            for (Index k = 0; k < map.dims.c; ++k) f[size_t(k)] += wgt * double(v[k]);
            total += wgt;
          }
        }
      if (total > 0)
        for (double& x : f) x /= total;
      out[j][m] = std::move(f);
    }
  }
  return out;
}

// Target voxels on a stride-S grid through `centre` whose world distance from it is <= radius_mm,
// inside the grid, ordered by that distance (then (d, h, w)): ties in feature distance go to the
// candidate nearest the search centre.
inline std::vector<Voxel> search_candidates(const Grid& g, const Voxel& centre, double radius_mm, int stride) {
  if (!(radius_mm >= 0)) fail("--radius ", radius_mm, ": expected >= 0 mm");
  if (stride < 1) fail("--stride ", stride, ": expected >= 1 voxel");
  const Vec3 c = voxel_to_world(g, centre);
  std::array<int64_t, 3> reach{};
  for (size_t a = 0; a < 3; ++a) reach[a] = int64_t(std::floor(radius_mm / g.spacing[a] / double(stride) + 1e-9));
  std::vector<std::pair<double, Voxel>> found;
  for (int64_t i = -reach[0]; i <= reach[0]; ++i)
    for (int64_t j = -reach[1]; j <= reach[1]; ++j)
      for (int64_t k = -reach[2]; k <= reach[2]; ++k) {
        const Voxel v{centre[0] + i * stride, centre[1] + j * stride, centre[2] + k * stride};
        if (v[0] < 0 || v[0] >= g.dims[0] || v[1] < 0 || v[1] >= g.dims[1] || v[2] < 0 || v[2] >= g.dims[2]) continue;
        const double dist = detail::lm::norm(detail::lm::sub(voxel_to_world(g, v), c));
        if (dist <= radius_mm + 1e-9) found.push_back({dist, v});
      }
  std::sort(found.begin(), found.end());
  std::vector<Voxel> out;
  for (const auto& f : found) out.push_back(f.second);
  return out;
}

// Unit vector (a zero vector stays zero).
inline std::vector<double> l2_normalized(std::vector<double> v) {
  double s = 0;
  for (double x : v) s += x * x;
  s = std::sqrt(s);
  if (s > 0)
    for (double& x : v) x /= s;
  return v;
}

// ============================================================================ statistics

// The regularised incomplete beta function I_x(a, b), by its continued fraction (modified Lentz),
// on the side of x where it converges fast (I_x(a,b) = 1 - I_{1-x}(b,a)).
inline double regularized_incomplete_beta(double a, double b, double x) {
  if (!(a > 0) || !(b > 0)) fail("incomplete beta: a and b must be > 0 (got ", a, ", ", b, ")");
  if (std::isnan(x)) return x;
  if (x <= 0) return 0;
  if (x >= 1) return 1;
  if (x > (a + 1) / (a + b + 2)) return 1 - regularized_incomplete_beta(b, a, 1 - x);
  const double log_front = std::lgamma(a + b) - std::lgamma(a) - std::lgamma(b) + a * std::log(x) + b * std::log1p(-x);
  const double tiny = 1e-300, eps = 1e-16;
  double c = 1, d = 1 - (a + b) * x / (a + 1);
  if (std::fabs(d) < tiny) d = tiny;
  d = 1 / d;
  double f = d;
  for (int m = 1; m <= 10000; ++m) {
    for (int step = 0; step < 2; ++step) {
      const double num = step == 0 ? m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m))
                                   : -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1));
      d = 1 + num * d;
      if (std::fabs(d) < tiny) d = tiny;
      c = 1 + num / c;
      if (std::fabs(c) < tiny) c = tiny;
      d = 1 / d;
      const double delta = c * d;
      f *= delta;
      if (step == 1 && std::fabs(delta - 1) < eps) return std::exp(log_front) * f / a;
    }
  }
  return std::exp(log_front) * f / a;
}

// CDF of Student's t distribution with df degrees of freedom: for t > 0, 1 - I_{df/(df+t^2)}(df/2, 1/2) / 2.
inline double student_t_cdf(double t, double df) {
  if (!(df > 0)) fail("t distribution: df must be > 0 (got ", df, ")");
  if (std::isnan(t)) return t;
  if (std::isinf(t)) return t > 0 ? 1 : 0;
  const double tail = 0.5 * regularized_incomplete_beta(df / 2, 0.5, df / (df + t * t));
  return t > 0 ? 1 - tail : tail;
}

struct PairedTTest {
  size_t n = 0;
  double mean_diff = NAN, sd_diff = NAN;  // of a - b (sample sd, n - 1)
  double t = NAN, df = NAN, p = NAN;      // two-sided
};

// Paired t-test of a vs b: t = mean(a - b) / (sd(a - b) / sqrt(n)), df = n - 1, two-sided p. With
// every difference equal: t = +-inf and p = 0 when the mean is non-zero, NaN when all differences are 0.
inline PairedTTest paired_t_test(const std::vector<double>& a, const std::vector<double>& b) {
  if (a.size() != b.size()) fail("paired t-test: ", a.size(), " vs ", b.size(), " values");
  PairedTTest r;
  r.n = a.size();
  if (r.n == 0) return r;
  double mean = 0;
  for (size_t i = 0; i < r.n; ++i) mean += a[i] - b[i];
  mean /= double(r.n);
  r.mean_diff = mean;
  if (r.n < 2) return r;
  double ss = 0;
  for (size_t i = 0; i < r.n; ++i) ss += (a[i] - b[i] - mean) * (a[i] - b[i] - mean);
  r.sd_diff = std::sqrt(ss / double(r.n - 1));
  r.df = double(r.n - 1);
  const double se = r.sd_diff / std::sqrt(double(r.n));
  // Differences equal up to round-off count as equal.
  if (!(se > 1e-12 * std::max(1.0, std::fabs(mean)))) {
    if (mean != 0 && std::fabs(mean) > 1e-12) r.t = mean > 0 ? INFINITY : -INFINITY, r.p = 0;
    return r;
  }
  r.t = mean / se;
  r.p = regularized_incomplete_beta(r.df / 2, 0.5, r.df / (r.df + r.t * r.t));
  return r;
}

inline void mean_sd(const std::vector<double>& v, double& mean, double& sd) {
  mean = sd = NAN;
  if (v.empty()) return;
  double s = 0;
  for (double x : v) s += x;
  mean = s / double(v.size());
  if (v.size() < 2) return;
  double ss = 0;
  for (double x : v) ss += (x - mean) * (x - mean);
  sd = std::sqrt(ss / double(v.size() - 1));
}

// ============================================================================ the experiment

struct LandmarkOptions {
  std::vector<std::string> schemes{"i3d-mean", "random"};
  std::vector<std::string> layers{"shallow", "mid", "deep"};  // aliases or module selectors
  std::vector<int> patches{12, 20, 32};
  double radius_mm = 15;
  int stride = 2;
  size_t max_landmarks = 0;  // 0: all
  bool dense = false;        // the fast approximation instead of one forward pass per patch
  float fill_hu = -1000;     // the target outside the template, and patches outside the volume
};

// One network of a scheme (an ensemble has several).
template <class Backend, class T>
struct SchemeNetworks {
  std::string scheme;
  std::vector<std::string> members;  // member scheme names, one per network
  std::vector<std::shared_ptr<const Network<Backend, T>>> nets;
  std::string description;           // what the weights are
};

struct LandmarkResult {
  std::string arch, scheme, layer, module;  // layer: as asked (e.g. "shallow"); module: full name
  int patch = 0;
  Landmark landmark;
  size_t candidates = 0;
  Voxel match{};
  Vec3 match_world{};
  double error_before = NAN, error_after = NAN;
  double floor = NAN;             // the smallest error any candidate could give (the grid's limit)
  double feature_distance = NAN;  // of the match
  double centre_distance = NAN;   // feature distance of the search centre (the unmoved position)
};

struct LandmarkSummary {
  std::string arch, scheme, layer, module;
  int patch = 0;
  bool feasible = true;
  std::string note;  // why a configuration did not run
  size_t n = 0;
  double before_mean = NAN, before_sd = NAN, after_mean = NAN, after_sd = NAN, floor_mean = NAN;
  PairedTTest test;  // before vs after
  double seconds = 0;  // wall time of this scheme x patch size (its layers share the forward passes)
};

struct LandmarkExperiment {
  std::vector<Landmark> landmarks;
  std::vector<std::string> skipped;
  std::vector<LandmarkResult> rows;
  std::vector<LandmarkSummary> summary;
  int64_t forward_passes = 0;
  double seconds = 0;
};

// torchvision's initialisation of `arch` in 2D (kaiming-normal convs, N(0, 2 / fan) with the family's
// fan as in random_state_dict; BN gamma=1, beta=0, mean 0, var 1), seeded with volfeat's portable Rng,
// with an RGB stem: the 2D network the inflation schemes start from when no --weights are given. NOT
// pretrained, and not torchvision's own draw either (weights/export_torchvision.py --seed writes that one).
inline StateDict seeded_2d_init(const std::string& arch, uint64_t seed) {
  const Graph g = build_graph(arch, 3);
  StateDict sd;
  sd.origin = "volfeat's seeded 2D init (" + arch + ", seed " + std::to_string(seed) + ")";
  Rng rng(seed ^ 0x9e3779b97f4a7c15ULL);  // a different stream from the 3D random scheme's
  for (const ParamSpec& p : g.params(2)) {
    Param param{p.shape, std::vector<double>(size_t(element_count(p.shape)))};
    const auto leaf = p.key.substr(p.key.rfind('.') + 1);
    if (p.shape.size() == 4) {
      const int64_t fan = element_count(p.shape) / (g.conv_init() == ConvInit::kFanIn ? p.shape[0] : p.shape[1]);
      const double std_dev = std::sqrt(2.0 / double(fan));
      for (double& v : param.values) v = std_dev * rng.normal();
    } else {
      std::fill(param.values.begin(), param.values.end(), (leaf == "weight" || leaf == "running_var") ? 1.0 : 0.0);
    }
    sd.params.emplace(p.key, std::move(param));
  }
  const nlohmann::json meta{{"format", "volfeat-weights"}, {"dims", 2},  {"arch", arch},
                            {"source", "volfeat-seeded-2d-init"}, {"seed", seed}, {"weights_kind", "volfeat-seeded-2d-init"}};
  sd.meta_json = meta.dump();
  return sd;
}

// The networks of each scheme, inflated from one 2D state_dict: a single network, or an ensemble's
// members (scheme_members) whose features are combined per patch (combine_member_features).
template <class Backend, class T>
std::vector<SchemeNetworks<Backend, T>> inflate_scheme_networks(const StateDict& sd2d, const std::vector<std::string>& schemes,
                                                                const InflateOptions& base, const std::string& source_sha256) {
  std::vector<SchemeNetworks<Backend, T>> out;
  for (const auto& name : schemes) {
    inflation_scheme(name);  // an unknown name is an error that lists the known ones
    InflateOptions opt = base;
    opt.scheme = name;
    SchemeNetworks<Backend, T> s;
    s.scheme = name;
    for (const InflateOptions& m : scheme_members(opt)) {
      const StateDict sd3 = inflate_with_meta(sd2d, m, source_sha256);
      s.members.push_back(m.scheme);
      s.nets.push_back(std::make_shared<const Network<Backend, T>>(sd3));
      if (s.description.empty()) s.description = weights_kind(sd3);
    }
    s.description = name + (s.members.size() > 1 ? " (" + std::to_string(s.members.size()) + " networks)" : "") +
                    ": " + s.description;
    out.push_back(std::move(s));
  }
  return out;
}

// The template and target as the network sees them.
struct LandmarkInputs {
  Volume<float> template_ct, target_ct;  // HU, same grid
  Volume<int32_t> template_labels, target_labels;
  Normalization normalization;
  std::vector<float> template_input, target_input;  // normalised, channels-last
  std::vector<float> pad;                            // per channel: the fill HU, normalised

  PatchSource template_source() const { return {template_input.data(), template_ct.grid.dims, normalization.channels(), pad}; }
  PatchSource target_source() const { return {target_input.data(), target_ct.grid.dims, normalization.channels(), pad}; }
};

// Normalises template and target with ONE map: volume statistics (minmax, zscore) are taken over both
// volumes together, so the same tissue gets the same input value in both. The pad value is the fill HU
// under that map.
inline LandmarkInputs prepare_landmark_inputs(Volume<float> ct, Volume<int32_t> labels, const RigidTransform& t,
                                              const std::string& normalize, float fill_hu) {
  if (ct.grid.dims != labels.grid.dims) fail("landmarks: the CT and the labels have different grids");
  LandmarkInputs in;
  in.target_ct = transform_linear(ct, t, fill_hu);
  in.target_labels = transform_nearest(labels, t, 0);
  in.template_ct = std::move(ct);
  in.template_labels = std::move(labels);
  in.normalization = parse_normalization(normalize);
  std::vector<float> both;
  both.reserve(in.template_ct.data.size() * 2 + 1);
  both.insert(both.end(), in.template_ct.data.begin(), in.template_ct.data.end());
  both.insert(both.end(), in.target_ct.data.begin(), in.target_ct.data.end());
  both.push_back(fill_hu);
  const std::vector<float> norm = normalize_volume(both, in.normalization);
  const int c = in.normalization.channels();
  const size_t n = in.template_ct.data.size() * size_t(c);
  in.template_input.assign(norm.begin(), norm.begin() + std::ptrdiff_t(n));
  in.target_input.assign(norm.begin() + std::ptrdiff_t(n), norm.begin() + std::ptrdiff_t(2 * n));
  in.pad.assign(norm.end() - c, norm.end());
  return in;
}

// Runs every scheme x patch x landmark: per (scheme network, patch, landmark) one forward pass for the
// template patch and one per candidate, up to the deepest requested layer the patch reaches; every
// requested layer is read from those same passes. Layers a patch is too small for are reported as
// infeasible configurations.
template <class Backend, class T>
LandmarkExperiment run_landmark_matching(const std::vector<SchemeNetworks<Backend, T>>& schemes, const LandmarkInputs& in,
                                         const std::vector<Landmark>& landmarks, const LandmarkOptions& o,
                                         Progress& progress) {
  LandmarkExperiment ex;
  ex.landmarks = landmarks;
  if (landmarks.empty()) fail("landmarks: no landmark to match");
  if (schemes.empty() || o.layers.empty() || o.patches.empty()) fail("landmarks: nothing to run (no scheme, layer or patch)");
  for (int p : o.patches)
    if (p < 1) fail("--patch ", p, ": expected a positive size in voxels");
  const Grid& grid = in.template_ct.grid;
  const Graph& graph = schemes.front().nets.front()->graph();
  const PatchSource template_source = in.template_source(), target_source = in.target_source();
  std::vector<std::string> layer_modules;
  for (const auto& l : o.layers) {
    const std::string m = landmark_layer_module(graph, l);
    if (std::find(layer_modules.begin(), layer_modules.end(), m) != layer_modules.end())
      fail("--layers: ", l, " names ", m, " twice");
    layer_modules.push_back(m);
  }
  for (size_t i = 0; i < o.schemes.size(); ++i)
    for (size_t j = 0; j < i; ++j)
      if (o.schemes[i] == o.schemes[j]) fail("--schemes: ", o.schemes[i], " appears twice");

  std::vector<std::vector<Voxel>> candidates;
  std::vector<double> floors;
  for (const Landmark& lm : landmarks) {
    candidates.push_back(search_candidates(grid, lm.voxel, o.radius_mm, o.stride));
    double best = INFINITY;
    for (const Voxel& v : candidates.back())
      best = std::min(best, detail::lm::norm(detail::lm::sub(voxel_to_world(grid, v), lm.true_world)));
    floors.push_back(best);
  }

  // Work estimate for the ETA: patch volume x passes.
  double total_work = 0, done_work = 0;
  for (const auto& s : schemes)
    for (int p : o.patches)
      for (const auto& c : candidates)
        total_work += double(s.nets.size()) * double(p) * p * p * double(o.dense ? 1 : c.size() + 1);
  const auto t_start = Progress::Clock::now();
  progress.begin("landmark matching (" + std::to_string(landmarks.size()) + " landmarks, " +
                 std::to_string(schemes.size()) + " scheme(s) x " + std::to_string(o.patches.size()) + " patch size(s))");
  for (const auto& s : schemes) {
    for (int p : o.patches) {
      const auto t_config = Progress::Clock::now();
      // The layers this patch reaches; the deepest sets the early stop.
      std::vector<std::string> run_modules, run_layers;
      int stop = -1;
      const auto& net0 = *s.nets.front();
      for (size_t l = 0; l < o.layers.size(); ++l) {
        const int idx = net0.node_of(layer_modules[l]);
        const Dims out = net0.graph().infer_dims(Dims{1, p, p, p, net0.input_channels()})[size_t(idx)];
        if (!Graph::fits(out)) continue;
        run_modules.push_back(layer_modules[l]);
        run_layers.push_back(o.layers[l]);
        stop = std::max(stop, idx);
      }
      if (stop >= 0) {
        for (size_t li = 0; li < landmarks.size(); ++li) {
          const Landmark& lm = landmarks[li];
          const auto& cand = candidates[li];
          // features[member][job][module]; job 0 is the template patch, then the candidates.
          std::vector<std::vector<std::vector<std::vector<double>>>> member_features;
          for (const auto& net : s.nets) {
            if (o.dense) {
              // The template's box is the target's (same voxels, same grid), so both maps see the same context.
              auto tmpl = dense_features(*net, template_source, cand, {lm.voxel}, p, run_modules, stop);
              auto tgt = dense_features(*net, target_source, cand, cand, p, run_modules, stop);
              tmpl.insert(tmpl.end(), std::make_move_iterator(tgt.begin()), std::make_move_iterator(tgt.end()));
              member_features.push_back(std::move(tmpl));
              ex.forward_passes += 2;
            } else {
              std::vector<std::pair<const PatchSource*, Voxel>> jobs;
              jobs.push_back({&template_source, lm.voxel});
              for (const Voxel& v : cand) jobs.push_back({&target_source, v});
              member_features.push_back(patch_features(*net, jobs, p, run_modules, stop));
              ex.forward_passes += int64_t(jobs.size());
            }
          }
          for (size_t m = 0; m < run_modules.size(); ++m) {
            auto feature = [&](size_t job) {
              std::vector<std::vector<double>> parts;
              for (const auto& mf : member_features) parts.push_back(mf[job][m]);
              return l2_normalized(parts.size() == 1 ? parts[0] : combine_member_features(s.scheme, parts));
            };
            const std::vector<double> ref = feature(0);
            size_t best = 0;
            double best_dist = INFINITY, centre_dist = NAN;
            for (size_t j = 0; j < cand.size(); ++j) {
              const std::vector<double> f = feature(j + 1);
              double dist = 0;
              for (size_t k = 0; k < f.size(); ++k) dist += (f[k] - ref[k]) * (f[k] - ref[k]);
              dist = std::sqrt(dist);
              if (cand[j] == lm.voxel) centre_dist = dist;
              if (dist < best_dist) best_dist = dist, best = j;
            }
            LandmarkResult r;
            r.arch = net0.arch();
            r.scheme = s.scheme;
            r.layer = run_layers[m];
            r.module = run_modules[m];
            r.patch = p;
            r.landmark = lm;
            r.candidates = cand.size();
            r.match = cand[best];
            r.match_world = voxel_to_world(grid, r.match);
            r.error_before = detail::lm::norm(detail::lm::sub(lm.world, lm.true_world));
            r.error_after = detail::lm::norm(detail::lm::sub(r.match_world, lm.true_world));
            r.floor = floors[li];
            r.feature_distance = best_dist;
            r.centre_distance = centre_dist;
            ex.rows.push_back(r);
          }
          done_work += double(s.nets.size()) * double(p) * p * p * double(o.dense ? 1 : cand.size() + 1);
          progress.update(done_work / total_work, s.scheme + ", patch " + std::to_string(p) + ", " + lm.name);
        }
      }
      // One summary per requested layer (in --layers order), feasible or not.
      const double secs = Progress::since(t_config);
      for (size_t l = 0; l < o.layers.size(); ++l) {
        LandmarkSummary sm;
        sm.arch = net0.arch();
        sm.scheme = s.scheme;
        sm.layer = o.layers[l];
        sm.module = layer_modules[l];
        sm.patch = p;
        sm.seconds = secs;
        if (std::find(run_modules.begin(), run_modules.end(), sm.module) == run_modules.end()) {
          sm.feasible = false;
          const int idx = net0.node_of(sm.module);
          sm.note = "patch " + std::to_string(p) + " is too small for " + short_module_name(sm.module) + " (needs >= " +
                    std::to_string(net0.min_input_size(idx)[0]) + ")";
          ex.summary.push_back(sm);
          continue;
        }
        std::vector<double> before, after, floor;
        for (LandmarkResult& r : ex.rows)
          if (r.scheme == s.scheme && r.patch == p && r.layer == sm.layer) {
            before.push_back(r.error_before);
            after.push_back(r.error_after);
            floor.push_back(r.floor);
          }
        sm.n = before.size();
        mean_sd(before, sm.before_mean, sm.before_sd);
        mean_sd(after, sm.after_mean, sm.after_sd);
        double floor_sd = 0;
        mean_sd(floor, sm.floor_mean, floor_sd);
        sm.test = paired_t_test(before, after);
        ex.summary.push_back(sm);
      }
    }
  }
  progress.end();
  ex.seconds = Progress::since(t_start);
  return ex;
}

// ============================================================================ outputs

namespace detail::lm {
inline std::string num(double v, int precision = 6) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  std::ostringstream os;
  os.precision(precision);
  os << v;
  return os.str();
}
}  // namespace detail::lm

// The paper's grid over several networks: one experiment's rows and summary after another's.
inline void append_experiment(LandmarkExperiment& into, const LandmarkExperiment& ex) {
  if (into.landmarks.empty()) into.landmarks = ex.landmarks, into.skipped = ex.skipped;
  into.rows.insert(into.rows.end(), ex.rows.begin(), ex.rows.end());
  into.summary.insert(into.summary.end(), ex.summary.begin(), ex.summary.end());
  into.forward_passes += ex.forward_passes;
  into.seconds += ex.seconds;
}

// One row per arch x scheme x layer x patch x landmark.
inline std::string landmarks_csv(const LandmarkExperiment& ex) {
  using detail::lm::num;
  std::ostringstream os;
  os << "arch,scheme,layer,module,patch,landmark,region,label,kind,template_d,template_h,template_w,template_x,template_y,"
        "template_z,true_x,true_y,true_z,match_d,match_h,match_w,match_x,match_y,match_z,error_before_mm,"
        "error_after_mm,grid_floor_mm,candidates,feature_distance,centre_feature_distance\n";
  for (const auto& r : ex.rows) {
    const Landmark& l = r.landmark;
    os << r.arch << ',' << r.scheme << ',' << r.layer << ',' << short_module_name(r.module) << ',' << r.patch << ',' << l.name << ',' << l.region << ','
       << l.label << ',' << l.kind << ',' << l.voxel[0] << ',' << l.voxel[1] << ',' << l.voxel[2];
    for (double v : l.world) os << ',' << num(v, 10);
    for (double v : l.true_world) os << ',' << num(v, 10);
    os << ',' << r.match[0] << ',' << r.match[1] << ',' << r.match[2];
    for (double v : r.match_world) os << ',' << num(v, 10);
    os << ',' << num(r.error_before, 10) << ',' << num(r.error_after, 10) << ',' << num(r.floor, 10) << ','
       << r.candidates << ',' << num(r.feature_distance, 10) << ',' << num(r.centre_distance, 10) << '\n';
  }
  return os.str();
}

// One row per arch x scheme x layer x patch: errors before/after (mean, sd), the paired t-test, n.
inline std::string landmarks_summary_csv(const LandmarkExperiment& ex) {
  using detail::lm::num;
  std::ostringstream os;
  os << "arch,scheme,layer,module,patch,n,before_mean_mm,before_sd_mm,after_mean_mm,after_sd_mm,mean_reduction_mm,"
        "t,df,p,grid_floor_mean_mm,seconds_scheme_patch,note\n";
  for (const auto& s : ex.summary) {
    os << s.arch << ',' << s.scheme << ',' << s.layer << ',' << short_module_name(s.module) << ',' << s.patch << ',' << s.n << ','
       << num(s.before_mean, 10) << ',' << num(s.before_sd, 10) << ',' << num(s.after_mean, 10) << ','
       << num(s.after_sd, 10) << ',' << num(s.test.mean_diff, 10) << ',' << num(s.test.t, 10) << ','
       << num(s.test.df) << ',' << num(s.test.p, 10) << ',' << num(s.floor_mean, 10) << ',' << num(s.seconds, 4)
       << ',' << s.note << '\n';
  }
  return os.str();
}

}  // namespace volfeat
