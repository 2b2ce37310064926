#pragma once
// `volfeat landmarks`: the landmark-matching evaluation of Avants et al. on a template and a copy of it
// under a known rigid transform (include/volfeat/pipeline/landmarks.hpp has the method).
#include <CLI/CLI.hpp>
#include <omp.h>

#include <cstdio>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli_backend.hpp"
#include "common_options.hpp"
#include "out_dir_lock.hpp"
#include "volfeat/core/atomic_file.hpp"
#include "volfeat/pipeline/landmarks.hpp"
#include "volfeat/pipeline/reorient.hpp"
#include "volfeat/version.hpp"

namespace volfeat::cli {

struct LandmarksArgs {
  std::string ct, mask, labels, series;
  std::string normalize = kDefaultNormalize;
  double resample = 0;
  std::string weights;
  InflateOptions inflate;
  std::string arch = "densenet121";
  std::string schemes = "i3d-mean,random";
  std::string layers = "shallow,mid,deep";
  std::string patches = "12,20,32";
  std::string rotate = "10";
  std::string translate = "6,4,-5";
  double radius = 15;
  int stride = 2;
  size_t max_landmarks = 0;
  bool dense = false;
  float fill_hu = -1000;
  std::string out = "volfeat_landmarks";
  int threads = 0;
  double wait_lock = 0;
  bool quiet = false;
};

// The paper's table: configurations x mean error before / after matching, paired t and p.
inline void print_landmark_table(std::ostream& os, const LandmarkExperiment& ex) {
  size_t wa = 4, ws = 6, wl = 5;
  for (const auto& s : ex.summary)
    wa = std::max(wa, s.arch.size()), ws = std::max(ws, s.scheme.size()), wl = std::max(wl, s.layer.size());
  auto pm = [](double m, double sd) {
    std::ostringstream s;
    s << std::fixed << std::setprecision(2) << m << " ± " << (std::isnan(sd) ? 0.0 : sd);
    return s.str();
  };
  os << std::left << std::setw(int(wa)) << "arch" << "  " << std::setw(int(ws)) << "scheme" << "  " << std::setw(int(wl)) << "layer" << std::right
     << std::setw(7) << "patch" << std::setw(5) << "n" << std::setw(17) << "before (mm)" << std::setw(17)
     << "after (mm)" << std::setw(10) << "t" << std::setw(11) << "p" << std::setw(11) << "floor (mm)" << "\n";
  for (const auto& s : ex.summary) {
    os << std::left << std::setw(int(wa)) << s.arch << "  " << std::setw(int(ws)) << s.scheme << "  " << std::setw(int(wl)) << s.layer << std::right
       << std::setw(7) << s.patch;
    if (!s.feasible) {
      os << "    -  n/a: " << s.note << "\n";
      continue;
    }
    std::ostringstream t, p;
    if (std::isnan(s.test.t)) t << "nan";
    else t << std::fixed << std::setprecision(2) << s.test.t;
    if (std::isnan(s.test.p)) p << "nan";
    else if (s.test.p < 1e-4) p << std::scientific << std::setprecision(1) << s.test.p;
    else p << std::fixed << std::setprecision(4) << s.test.p;
    // "±" is 2 bytes in UTF-8: widen its columns by one so they line up.
    os << std::setw(5) << s.n << std::setw(18) << pm(s.before_mean, s.before_sd) << std::setw(18)
       << pm(s.after_mean, s.after_sd) << std::setw(10) << t.str() << std::setw(11) << p.str() << std::setw(11)
       << std::fixed << std::setprecision(2) << s.floor_mean << "\n";
  }
}

inline std::vector<int> parse_int_list(const std::string& s, const std::string& what) {
  std::vector<int> out;
  for (const auto& item : split_list(s)) {
    size_t used = 0;
    int v = 0;
    try {
      v = std::stoi(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != item.size() || v < 1) fail(what, " '", s, "': '", item, "' is not a positive integer");
    out.push_back(v);
  }
  if (out.empty()) fail(what, ": empty list");
  return out;
}

inline void add_landmarks_command(CLI::App& app, const std::string& command) {
  auto a = std::make_shared<LandmarksArgs>();
  CLI::App* cmd = app.add_subcommand(
      "landmarks",
      "Landmark matching (Avants et al.): the target is the template under a known rigid transform; each automatic "
      "landmark (label centroid, extreme points) is found in the target as the voxel whose patch features are nearest "
      "the template's; errors in mm before vs after, paired t-test, per scheme x layer x patch size");
  cmd->add_option("--ct", a->ct, "template CT (.nii / .nii.gz, or a DICOM series directory); omit for the built-in "
                                 "knee phantom");
  cmd->add_option("--series", a->series, "with --ct DIR: the SeriesInstanceUID to read when DIR holds several series");
  cmd->add_option("--mask", a->mask, "label mask on the CT's grid: landmarks come from its labels");
  cmd->add_option("--labels", a->labels,
                  "labels that get landmarks, as name=value (default: femur=1,tibia=2 for the phantom, every non-zero "
                  "label of --mask otherwise)");
  cmd->add_option("--normalize", a->normalize, "none | window:L,W | minmax | zscore | imagenet[:L,W]")->capture_default_str();
  cmd->add_option("--resample", a->resample, "resample the template to isotropic MM spacing first (trilinear CT, nearest labels)");
  cmd->add_option("--weights", a->weights,
                  "a torchvision 2D export (.npz; each --schemes entry inflates it) or a 3D file (used as it is, no "
                  "schemes); omit: volfeat's seeded 2D init, NOT pretrained");
  cmd->add_option("--axis", a->inflate.axis, "inflated axis: D, H or W")->capture_default_str()->check(CLI::IsMember({'D', 'H', 'W'}));
  cmd->add_option("--stem", a->inflate.stem, "conv0 input: sum, mean or rgb")->capture_default_str()->check(
      CLI::IsMember({"sum", "mean", "rgb"}));
  cmd->add_option("--seed", a->inflate.seed, "seed of the random/shuffled schemes and of the seeded 2D init")->capture_default_str();
  cmd->add_option("--arch", a->arch,
                  "comma list of architectures (the paper's grid: e.g. vgg19,resnet50,densenet121); without --weights, "
                  "each gets volfeat's seeded 2D init; with --weights, the architecture the file must hold")
      ->capture_default_str();
  cmd->add_option("--schemes", a->schemes, "comma list of inflation schemes:" + scheme_list())->capture_default_str();
  cmd->add_option("--layers", a->layers,
                  "comma list: shallow, mid, deep (DenseNet: denseblock1..3; VGG: conv2_2, conv4_2, conv5_4; ResNet: "
                  "layer1..3), a layer preset (paper-vgg, paper-resnet, ...), or module names (conv[-k], containers, "
                  "torchvision names)")
      ->capture_default_str();
  cmd->add_option("--patch", a->patches, "comma list of cubic patch sizes in voxels (the paper: 12..32)")->capture_default_str();
  cmd->add_option("--rotate", a->rotate,
                  "DEG: rotation by DEG degrees about the world axis (1,1,1)/sqrt(3); AX,AY,AZ: Euler angles in degrees "
                  "about world x, y, z (applied in that order); about the template grid's centre")
      ->capture_default_str();
  cmd->add_option("--translate", a->translate, "TX,TY,TZ in world mm, after the rotation")->capture_default_str();
  cmd->add_option("--radius", a->radius, "search radius in mm around the landmark's untransformed position")->capture_default_str();
  cmd->add_option("--stride", a->stride, "candidate grid stride in voxels")->capture_default_str();
  cmd->add_option("--max-landmarks", a->max_landmarks, "use at most N landmarks (0: all)")->capture_default_str();
  cmd->add_flag("--dense", a->dense,
                "fast approximation: one forward pass over the search box, features averaged over each candidate's "
                "patch footprint on the layer's grid (NOT equivalent to one pass per patch)");
  cmd->add_option("--fill-hu", a->fill_hu, "HU outside the template (resampling) and outside the volume (patches)")->capture_default_str();
  cmd->add_option("--out", a->out, "output directory")->capture_default_str();
  add_wait_lock_option(cmd, a->wait_lock);
  cmd->add_option("--threads", a->threads, "threads (default: all cores)");
  cmd->add_flag("--quiet", a->quiet, "no progress on stderr");

  cmd->callback([a, cmd, command] {
    const auto t0 = Progress::Clock::now();
    Progress progress(a->quiet);
    if (a->threads < 0) fail("--threads ", a->threads, ": expected a positive count");
    if (a->threads > 0) omp_set_num_threads(a->threads);
    if (a->ct.empty() != a->mask.empty()) fail("--ct and --mask go together (neither: the built-in knee phantom)");
    std::error_code ec;
    if (std::filesystem::exists(a->out, ec) && !std::filesystem::is_directory(a->out, ec))
      fail("--out ", a->out, ": exists and is not a directory");
    const DirLock lock = lock_out_dir(a->out, a->wait_lock, command);

    LandmarkOptions o;
    o.schemes = split_list(a->schemes);
    o.layers = split_list(a->layers);
    o.patches = parse_int_list(a->patches, "--patch");
    o.radius_mm = a->radius;
    o.stride = a->stride;
    o.max_landmarks = a->max_landmarks;
    o.dense = a->dense;
    o.fill_hu = a->fill_hu;
    if (o.schemes.empty()) fail("--schemes: empty list");
    for (const auto& s : o.schemes) inflation_scheme(s);  // unknown names fail before any work
    if (o.layers.empty()) fail("--layers: empty list");
    if (!(o.radius_mm >= 0)) fail("--radius ", o.radius_mm, ": expected >= 0 mm");
    if (o.stride < 1) fail("--stride ", o.stride, ": expected >= 1 voxel");

    // ---- template volume and labels
    Volume<float> ct;
    Volume<int32_t> labels;
    std::string ct_name, mask_name;
    std::optional<AxisReorientation> mask_reorientation;
    if (a->ct.empty()) {
      progress.note("no --ct given: running on the built-in synthetic knee phantom");
      Phantom p = make_knee_phantom(0);
      ct = std::move(p.ct), labels = std::move(p.labels);
      ct_name = "built-in knee phantom (seed 0)", mask_name = "built-in knee phantom labels";
    } else {
      ct = read_ct_volume(a->ct, {}, a->series).volume;
      labels = read_nifti_labels(a->mask);
      mask_reorientation = conform_mask_to_grid(ct.grid, a->ct, labels, a->mask);
      if (mask_reorientation) progress.note(reorientation_note(*mask_reorientation, a->mask));
      ct_name = a->ct, mask_name = a->mask;
    }
    if (cmd->count("--resample")) {
      ct = resample_linear(ct, a->resample);
      labels = resample_nearest(labels, a->resample);
    }
    std::vector<LandmarkRegion> regions;
    std::string label_spec = a->labels;
    if (label_spec.empty() && a->ct.empty()) label_spec = kPhantomLabels;
    if (label_spec.empty()) {
      for (const auto& [v, n] : count_labels(labels))
        if (v != 0 && n > 0) regions.push_back({"label" + std::to_string(v), v});
      if (regions.empty()) fail(mask_name, ": holds no non-zero label");
    } else {
      for (const Region& r : parse_labels(label_spec, true))
        if (r.label != 0) regions.push_back({r.name, r.label});
    }

    // ---- the transform, target, landmarks
    const RigidTransform transform = parse_rigid_transform(a->rotate, a->translate, grid_centre_world(ct.grid));
    progress.begin("resampling the target");
    LandmarkInputs in = prepare_landmark_inputs(std::move(ct), std::move(labels), transform, a->normalize, o.fill_hu);
    progress.end();
    std::vector<std::string> skipped;
    const std::vector<Landmark> landmarks =
        automatic_landmarks(in.template_labels, regions, transform, o.max_landmarks, &skipped);
    for (const auto& s : skipped) progress.note("landmark skipped: " + s);

    // ---- networks
    const int channels = in.normalization.channels();
    InflateOptions base = a->inflate;
    if (channels == 3) {
      if (cmd->count("--stem") && base.stem != "rgb") fail("--normalize imagenet feeds 3 channels: it needs --stem rgb");
      base.stem = "rgb";
    }
    // One set of scheme networks per architecture: the paper's network x layer x patch grid.
    std::vector<std::string> archs = split_list(a->arch);
    if (archs.empty()) fail("--arch: empty list");
    for (const auto& arch : archs) arch_family(arch);  // unknown names fail before any work
    if (!a->weights.empty() && cmd->count("--arch") && archs.size() > 1)
      fail("--arch ", a->arch, ": with --weights the file decides the one architecture");
    std::vector<std::vector<SchemeNetworks<CliBackend, float>>> per_arch;
    std::string weights_description, weights_sha;
    progress.begin("building networks");
    if (a->weights.empty()) {
      for (const auto& arch : archs) {
        const StateDict sd2 = seeded_2d_init(arch, base.seed);
        weights_description += (weights_description.empty() ? "" : "; ") + sd2.origin;
        per_arch.push_back(inflate_scheme_networks<CliBackend, float>(sd2, o.schemes, base, ""));
      }
      weights_description += ", inflated per scheme; NOT pretrained";
    } else {
      StateDict sd = read_state_dict(a->weights);
      const int dims = conv_spatial_dims(sd);
      const std::string found = graph_of(sd).arch();  // a known architecture, every key with its shape
      if (cmd->count("--arch") && found != archs.front())
        fail(a->weights, ": holds ", found, " weights but --arch ", archs.front(), " was asked for");
      weights_sha = sha256_file(a->weights);
      if (dims == 3) {
        if (cmd->count("--schemes"))
          fail(a->weights, " is already 3D: --schemes needs a 2D export to inflate (drop --schemes to use the file as it is)");
        SchemeNetworks<CliBackend, float> s;
        s.scheme = "as-loaded";
        s.members = {"as-loaded"};
        s.nets.push_back(std::make_shared<const Network<CliBackend, float>>(sd));
        s.description = "as-loaded: " + weights_kind(sd);
        per_arch.push_back({});
        per_arch.back().push_back(std::move(s));
        o.schemes = {"as-loaded"};
        weights_description = a->weights + " (3D, " + weights_kind(sd) + ")";
      } else {
        weights_description = a->weights + " (2D, " + weights_kind(sd) + "), inflated per scheme";
        per_arch.push_back(inflate_scheme_networks<CliBackend, float>(sd, o.schemes, base, weights_sha));
      }
    }
    progress.end();
    for (const auto& nets : per_arch)
      for (const auto& s : nets)
        if (s.nets.front()->input_channels() != channels)
          fail("scheme ", s.scheme, ": the network takes ", s.nets.front()->input_channels(),
               " channel(s) but --normalize ", a->normalize, " makes ", channels);
    progress.note("weights: " + weights_description);

    LandmarkExperiment ex;
    const std::vector<std::string> asked_layers = o.layers;
    for (const auto& nets : per_arch) {
      // A layer preset (paper-vgg, paper-resnet, ...) stands for its layers in this architecture.
      LandmarkOptions oa = o;
      oa.layers.clear();
      const std::string& arch = nets.front().nets.front()->arch();
      for (const auto& l : asked_layers) {
        bool preset = false;
        for (const auto& [name, layers] : arch_family(arch).presets)
          if (name == l) preset = true, oa.layers.insert(oa.layers.end(), layers.begin(), layers.end());
        if (!preset) oa.layers.push_back(l);
      }
      append_experiment(ex, run_landmark_matching(nets, in, landmarks, oa, progress));
    }
    std::vector<const SchemeNetworks<CliBackend, float>*> all_nets;
    for (const auto& nets : per_arch)
      for (const auto& s : nets) all_nets.push_back(&s);

    // ---- outputs
    std::filesystem::create_directories(a->out, ec);
    if (ec) fail(a->out, ": cannot create output directory (", ec.message(), ")");
    write_file_atomic(a->out + "/landmarks.csv", landmarks_csv(ex));
    write_file_atomic(a->out + "/landmarks_summary.csv", landmarks_summary_csv(ex));
    nlohmann::json run;
    run["volfeat_version"] = VOLFEAT_VERSION_STRING;
    run["ct"] = ct_name;
    run["mask"] = mask_name;
    run["mask_reorientation"] = reorientation_json(mask_reorientation);
    run["grid"] = describe(in.template_ct.grid);
    run["normalize"] = a->normalize;
    run["weights"] = weights_description;
    run["weights_sha256"] = weights_sha;
    for (const auto* s : all_nets)
      run["schemes"][s->nets.front()->arch() + "/" + s->scheme] = {{"members", s->members}, {"weights", s->description}};
    run["archs"] = archs;
    run["axis"] = std::string(1, a->inflate.axis);
    run["stem"] = base.stem;
    run["seed"] = base.seed;
    run["layers"] = o.layers;
    run["patches"] = o.patches;
    run["transform"] = transform.text;
    run["rotation_matrix"] = transform.rotation;
    run["translation_mm"] = transform.translation;
    run["rotation_centre_mm"] = transform.centre;
    run["radius_mm"] = o.radius_mm;
    run["stride_voxels"] = o.stride;
    run["features"] = o.dense ? "dense approximation: one pass over the search box, footprint averages"
                              : "one forward pass per patch, global average of the layer's map";
    run["distance"] = "Euclidean distance of L2-normalised feature vectors";
    run["fill_hu"] = o.fill_hu;
    run["landmarks"] = nlohmann::json::array();
    for (const auto& l : ex.landmarks)
      run["landmarks"].push_back({{"name", l.name}, {"voxel", l.voxel}, {"world_mm", l.world}, {"true_world_mm", l.true_world}});
    run["skipped_landmarks"] = skipped;
    run["forward_passes"] = ex.forward_passes;
    run["threads"] = omp_get_max_threads();
    run["seconds_matching"] = ex.seconds;
    run["seconds_total"] = Progress::since(t0);
    write_file_atomic(a->out + "/landmarks_run.json", run.dump(2) + "\n");

    const size_t per = ex.rows.empty() ? 0 : ex.rows.front().candidates;
    std::cout << "landmark matching: " << landmarks.size() << " landmarks; target = template under " << transform.text
              << "; search radius " << o.radius_mm << " mm, stride " << o.stride << " voxel(s) (" << per
              << " candidates for the first landmark); "
              << (o.dense ? "dense approximation" : "one forward pass per patch")
              << "; nearest L2-normalised features (Euclidean)\n"
              << "weights: " << weights_description << "\n";
    print_landmark_table(std::cout, ex);
    std::cout << "wrote " << a->out << "/{landmarks.csv, landmarks_summary.csv, landmarks_run.json}; " << ex.forward_passes
              << " forward passes in " << std::fixed << std::setprecision(1) << ex.seconds << " s\n";
  });
}

}  // namespace volfeat::cli
