#pragma once
// Landmark matching: candidates are target voxels on a stride-S grid within R mm of the landmark's
// *untransformed* position; the match is the candidate whose L2-normalised feature vector is nearest
// (Euclidean distance) the template patch's. The error in mm before and after matching goes to the
// paired t-test per scheme x layer x patch.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <iterator>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "volfeat/core/error.hpp"
#include "volfeat/core/progress.hpp"
#include "volfeat/io/volume.hpp"
#include "volfeat/pipeline/landmarks/definition.hpp"
#include "volfeat/pipeline/landmarks/geometry.hpp"
#include "volfeat/pipeline/landmarks/networks.hpp"
#include "volfeat/pipeline/landmarks/patch_features.hpp"
#include "volfeat/pipeline/landmarks/t_test.hpp"
#include "volfeat/pipeline/normalize.hpp"

namespace volfeat {

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
        const double dist = (voxel_to_world(g, v) - c).norm();
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


struct LandmarkResult {
  std::string arch, scheme, layer, module;  // layer: as asked (e.g. "shallow"); module: full name
  int patch = 0;
  Landmark landmark;
  size_t candidates = 0;
  Voxel match{};
  Vec3 match_world = Vec3::Zero();
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
                                              const Normalization& normalization, float fill_hu) {
  if (ct.grid.dims != labels.grid.dims) fail("landmarks: the CT and the labels have different grids");
  LandmarkInputs in;
  in.target_ct = transform_linear(ct, t, fill_hu);
  in.target_labels = transform_nearest(labels, t, 0);
  in.template_ct = std::move(ct);
  in.template_labels = std::move(labels);
  in.normalization = normalization;
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
      best = std::min(best, (voxel_to_world(grid, v) - lm.true_world).norm());
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
            r.error_before = (lm.world - lm.true_world).norm();
            r.error_after = (r.match_world - lm.true_world).norm();
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

// The paper's grid over several networks: one experiment's rows and summary after another's.
inline void append_experiment(LandmarkExperiment& into, const LandmarkExperiment& ex) {
  if (into.landmarks.empty()) into.landmarks = ex.landmarks, into.skipped = ex.skipped;
  into.rows.insert(into.rows.end(), ex.rows.begin(), ex.rows.end());
  into.summary.insert(into.summary.end(), ex.summary.begin(), ex.summary.end());
  into.forward_passes += ex.forward_passes;
  into.seconds += ex.seconds;
}

}  // namespace volfeat
