#pragma once
// Automatic landmarks of a label volume: per label, the centroid and the 6 extreme points along
// -D,+D,-H,+H,-W,+W, with their true position in the target (the template under a known T).
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "volfeat/core/error.hpp"
#include "volfeat/io/volume.hpp"
#include "volfeat/pipeline/landmarks/geometry.hpp"

namespace volfeat {

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
  Vec3 world = Vec3::Zero();       // world(voxel)
  Vec3 true_world = Vec3::Zero();  // T(world): where the landmark is in the target
  Vec3 true_voxel = Vec3::Zero();  // continuous target voxel of true_world
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
    std::array<double, 3> sum{0, 0, 0};
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
  std::map<std::pair<int32_t, int>, std::pair<std::array<double, 3>, int64_t>> face_mean;  // value-initialised: zeros
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


}  // namespace volfeat
