#pragma once
// `volfeat landmarks`: the landmark-matching evaluation of Avants et al. on a template and a copy of it
// under a known rigid transform (include/volfeat/pipeline/landmarks.hpp has the method).
//
// LandmarksArgs (CLI11's strings) -> landmarks_options -> LandmarksOptions (parsed and checked, no I/O)
// -> run_landmarks<Backend> -> LandmarksResult -> write_landmarks (the three files) and
// print_landmarks (stdout).
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
#include "volfeat/pipeline/run_environment.hpp"
#include "common_options.hpp"
#include "landmark_args.hpp"
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
  std::string precision = "float32";  // parsed into LandmarksOptions::device
  std::string stream_weights;
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

// Every option parsed and checked before any input is read.
struct LandmarksOptions {
  std::string ct, mask, labels, series;  // no --ct: the built-in knee phantom
  std::string normalize;                 // as given (run.json quotes it)
  Normalization normalization;
  std::optional<double> resample_mm;
  std::string weights;
  InflateOptions inflate;  // the stem forced to rgb by a 3-channel --normalize
  bool arch_given = false, schemes_given = false;
  std::vector<std::string> archs;
  DeviceOptions device;  // asked for; LandmarksResult::precision is what ran
  TransformArgs transform;
  LandmarkOptions matching;
  std::string out;
  std::string command;  // the command line, for landmarks_run.json
  double wait_lock = 0;
  bool quiet = false;
};

inline LandmarksOptions landmarks_options(const LandmarksArgs& a, const CLI::App& cmd) {
  if (a.threads < 0) fail("--threads ", a.threads, ": expected a positive count");
  if (a.ct.empty() != a.mask.empty()) fail("--ct and --mask go together (neither: the built-in knee phantom)");
  std::error_code ec;
  if (std::filesystem::exists(a.out, ec) && !std::filesystem::is_directory(a.out, ec))
    fail("--out ", a.out, ": exists and is not a directory");
  LandmarksOptions o;
  o.ct = a.ct, o.mask = a.mask, o.labels = a.labels, o.series = a.series;
  o.normalize = a.normalize;
  o.weights = a.weights;
  o.device = {parse_precision(a.precision), a.stream_weights};
  if (!a.stream_weights.empty()) WeightFile::check_dir(a.stream_weights);  // before any work
  o.out = a.out, o.wait_lock = a.wait_lock, o.quiet = a.quiet;
  if (cmd.count("--resample")) o.resample_mm = a.resample;
  LandmarkOptions& m = o.matching;
  m.schemes = split_list(a.schemes);
  m.layers = split_list(a.layers);
  m.patches = parse_int_list(a.patches, "--patch");
  m.radius_mm = a.radius;
  m.stride = a.stride;
  m.max_landmarks = a.max_landmarks;
  m.dense = a.dense;
  m.fill_hu = a.fill_hu;
  if (m.schemes.empty()) fail("--schemes: empty list");
  for (const auto& s : m.schemes) inflation_scheme(s);  // unknown names fail before any work
  if (m.layers.empty()) fail("--layers: empty list");
  if (!(m.radius_mm >= 0)) fail("--radius ", m.radius_mm, ": expected >= 0 mm");
  if (m.stride < 1) fail("--stride ", m.stride, ": expected >= 1 voxel");
  o.normalization = parse_normalization(a.normalize);
  o.transform = parse_transform_args(a.rotate, a.translate);
  o.inflate = a.inflate;
  if (o.normalization.channels() == 3) {
    if (cmd.count("--stem") && o.inflate.stem != StemRule::kRgb) fail("--normalize imagenet feeds 3 channels: it needs --stem rgb");
    o.inflate.stem = StemRule::kRgb;
  }
  o.archs = split_list(a.arch);
  if (o.archs.empty()) fail("--arch: empty list");
  for (const auto& arch : o.archs) arch_family(arch);  // unknown names fail before any work
  o.arch_given = cmd.count("--arch") > 0;
  o.schemes_given = cmd.count("--schemes") > 0;
  if (!o.weights.empty() && o.arch_given && o.archs.size() > 1)
    fail("--arch ", a.arch, ": with --weights the file decides the one architecture");
  return o;
}

// What a run found and computed: everything the outputs need.
struct LandmarksResult {
  std::string backend;  // Backend::kName
  std::string ct_name, mask_name;
  std::optional<AxisReorientation> mask_reorientation;
  Grid grid;
  RigidTransform transform;
  std::vector<Landmark> landmarks;
  std::vector<std::string> skipped;
  std::vector<std::string> layers;  // as asked (presets unexpanded)
  std::string weights_description, weights_sha;
  std::string precision = "float32", precision_note;  // what the convs ran (DeviceFor), and why not as asked
  std::string precision_kernels;                      // which kernels ran bf16 (DeviceFor::kernels), or empty
  struct Scheme {
    std::string key;  // arch/scheme
    std::vector<std::string> members;
    std::string description;
  };
  std::vector<Scheme> schemes;
  LandmarkExperiment experiment;
};

// The template CT and its labels: the given files (the mask conformed to the CT's axes), or the phantom.
inline void read_landmark_volumes(const LandmarksOptions& o, Volume<float>& ct, Volume<int32_t>& labels,
                                  LandmarksResult& r, Progress& progress) {
  if (o.ct.empty()) {
    progress.note("no --ct given: running on the built-in synthetic knee phantom");
    Phantom p = make_knee_phantom(0);
    ct = std::move(p.ct), labels = std::move(p.labels);
    r.ct_name = "built-in knee phantom (seed 0)", r.mask_name = "built-in knee phantom labels";
  } else {
    ct = read_ct_volume(o.ct, {}, o.series).volume;
    labels = read_nifti_labels(o.mask);
    r.mask_reorientation = conform_mask_to_grid(ct.grid, o.ct, labels, o.mask);
    if (r.mask_reorientation) progress.note(reorientation_note(*r.mask_reorientation, o.mask));
    r.ct_name = o.ct, r.mask_name = o.mask;
  }
  if (o.resample_mm) {
    ct = resample_linear(ct, *o.resample_mm);
    labels = resample_nearest(labels, *o.resample_mm);
  }
}

// The regions that get landmarks: --labels, the phantom's, or every non-zero label of the mask.
inline std::vector<LandmarkRegion> landmark_regions(const LandmarksOptions& o, const Volume<int32_t>& labels,
                                                    const std::string& mask_name) {
  std::vector<LandmarkRegion> regions;
  std::string label_spec = o.labels;
  if (label_spec.empty() && o.ct.empty()) label_spec = kPhantomLabels;
  if (label_spec.empty()) {
    for (const auto& [v, n] : count_labels(labels))
      if (v != 0 && n > 0) regions.push_back({"label" + std::to_string(v), v});
    if (regions.empty()) fail(mask_name, ": holds no non-zero label");
  } else {
    for (const Region& r : parse_labels(label_spec, true))
      if (r.label != 0) regions.push_back({r.name, r.label});
  }
  return regions;
}

// The layers asked for, in `arch`: a layer preset (paper-vgg, paper-resnet, shallow...) stands for its
// layers there.
inline std::vector<std::string> arch_layers(const std::string& arch, const std::vector<std::string>& asked) {
  std::vector<std::string> out;
  for (const auto& l : asked) {
    bool preset = false;
    for (const auto& [name, layers] : arch_family(arch).presets)
      if (name == l) preset = true, out.insert(out.end(), layers.begin(), layers.end());
    if (!preset) out.push_back(l);
  }
  return out;
}

// How far `arch`'s networks are built: up to the deepest layer asked for (depth aliases mapped).
inline BuildUpTo landmark_extent(const std::string& arch, const std::vector<std::string>& asked) {
  BuildUpTo e;
  for (const auto& l : arch_layers(arch, asked)) e.modules.push_back(landmark_layer_selector(arch, l));
  return e;
}

// One set of scheme networks per architecture (the paper's network x layer x patch grid): volfeat's
// seeded 2D init per --arch, or the --weights file (2D: inflated per scheme; 3D: used as it is). Each is
// built only up to the deepest layer asked for (BuildUpTo).
template <class Backend>
std::vector<std::vector<SchemeNetworks<Backend, float>>> landmark_networks(const LandmarksOptions& o,
                                                                          LandmarkOptions& m, LandmarksResult& r) {
  std::vector<std::vector<SchemeNetworks<Backend, float>>> per_arch;
  const Backend device = DeviceFor<Backend>::make(o.device, r.precision_note);
  r.precision = precision_name(DeviceFor<Backend>::precision(device));
  r.precision_kernels = DeviceFor<Backend>::kernels(device);
  if (o.weights.empty()) {
    for (const auto& arch : o.archs) {
      const StateDict sd2 = seeded_2d_init(arch, o.inflate.seed);
      r.weights_description += (r.weights_description.empty() ? "" : "; ") + sd2.origin;
      per_arch.push_back(
          inflate_scheme_networks<Backend, float>(sd2, m.schemes, o.inflate, "", device, landmark_extent(arch, m.layers)));
    }
    r.weights_description += ", inflated per scheme; NOT pretrained";
    return per_arch;
  }
  StateDict sd = read_state_dict(o.weights);
  const int dims = conv_spatial_dims(sd);
  const std::string found = graph_of(sd).arch();  // a known architecture, every key with its shape
  if (o.arch_given && found != o.archs.front())
    fail(o.weights, ": holds ", found, " weights but --arch ", o.archs.front(), " was asked for");
  r.weights_sha = sha256_file(o.weights);
  if (dims == 3) {
    if (o.schemes_given)
      fail(o.weights, " is already 3D: --schemes needs a 2D export to inflate (drop --schemes to use the file as it is)");
    SchemeNetworks<Backend, float> s;
    s.scheme = "as-loaded";
    s.members = {"as-loaded"};
    s.nets.push_back(std::make_shared<const Network<Backend, float>>(sd, kReleaseWeights, device,
                                                                     landmark_extent(found, m.layers)));
    s.description = "as-loaded: " + weights_kind(sd);
    per_arch.push_back({});
    per_arch.back().push_back(std::move(s));
    m.schemes = {"as-loaded"};
    r.weights_description = o.weights + " (3D, " + weights_kind(sd) + ")";
  } else {
    r.weights_description = o.weights + " (2D, " + weights_kind(sd) + "), inflated per scheme";
    per_arch.push_back(inflate_scheme_networks<Backend, float>(sd, m.schemes, o.inflate, r.weights_sha, device,
                                                               landmark_extent(found, m.layers)));
  }
  return per_arch;
}

template <class Backend>
LandmarksResult run_landmarks(const LandmarksOptions& o, Progress& progress) {
  LandmarksResult r;
  r.backend = Backend::kName;
  LandmarkOptions m = o.matching;
  r.layers = m.layers;

  // ---- template volume and labels, the transform, the target, the landmarks
  Volume<float> ct;
  Volume<int32_t> labels;
  read_landmark_volumes(o, ct, labels, r, progress);
  const std::vector<LandmarkRegion> regions = landmark_regions(o, labels, r.mask_name);
  r.transform = make_rigid_transform(o.transform, grid_centre_world(ct.grid));
  progress.begin("resampling the target");
  const LandmarkInputs in = prepare_landmark_inputs(std::move(ct), std::move(labels), r.transform, o.normalization, m.fill_hu);
  progress.end();
  r.grid = in.template_ct.grid;
  r.landmarks = automatic_landmarks(in.template_labels, regions, r.transform, m.max_landmarks, &r.skipped);
  for (const auto& s : r.skipped) progress.note("landmark skipped: " + s);

  // ---- networks
  const int channels = in.normalization.channels();
  progress.begin("building networks");
  const auto per_arch = landmark_networks<Backend>(o, m, r);
  progress.end();
  if (!r.precision_note.empty()) progress.warn(r.precision_note);
  if (!r.precision_kernels.empty()) progress.note(r.precision_kernels);
  for (const auto& nets : per_arch)
    for (const auto& s : nets)
      if (s.nets.front()->input_channels() != channels)
        fail("scheme ", s.scheme, ": the network takes ", s.nets.front()->input_channels(),
             " channel(s) but --normalize ", o.normalize, " makes ", channels);
  progress.note("weights: " + r.weights_description);

  // ---- matching, per architecture
  for (const auto& nets : per_arch) {
    LandmarkOptions oa = m;
    oa.layers = arch_layers(nets.front().nets.front()->arch(), r.layers);
    append_experiment(r.experiment, run_landmark_matching(nets, in, r.landmarks, oa, progress));
  }
  for (const auto& nets : per_arch)
    for (const auto& s : nets) r.schemes.push_back({s.nets.front()->arch() + "/" + s.scheme, s.members, s.description});
  return r;
}

// landmarks.csv, landmarks_summary.csv and landmarks_run.json in --out.
inline void write_landmarks(const LandmarksOptions& o, const LandmarksResult& r, double seconds_total) {
  const LandmarkExperiment& ex = r.experiment;
  std::error_code ec;
  std::filesystem::create_directories(o.out, ec);
  if (ec) fail(o.out, ": cannot create output directory (", ec.message(), ")");
  write_file_atomic(o.out + "/landmarks.csv", landmarks_csv(ex));
  write_file_atomic(o.out + "/landmarks_summary.csv", landmarks_summary_csv(ex));
  const LandmarkOptions& m = o.matching;
  nlohmann::json run = run_environment(r.backend, omp_get_max_threads());
  run["command"] = o.command;
  run["ct"] = r.ct_name;
  run["mask"] = r.mask_name;
  run["mask_reorientation"] = reorientation_json(r.mask_reorientation);
  run["grid"] = describe(r.grid);
  run["normalize"] = o.normalize;
  run["weights"] = r.weights_description;
  run["weights_sha256"] = r.weights_sha;
  run["precision"] = r.precision;
  run["precision_note"] = r.precision_note;
  run["precision_kernels"] = r.precision_kernels.empty() ? nlohmann::json(nullptr) : nlohmann::json(r.precision_kernels);
  run["stream_weights"] = o.device.stream_weights.empty() ? nlohmann::json(nullptr) : nlohmann::json(o.device.stream_weights);
  for (const auto& s : r.schemes) run["schemes"][s.key] = {{"members", s.members}, {"weights", s.description}};
  run["archs"] = o.archs;
  run["axis"] = std::string(1, o.inflate.axis);
  run["stem"] = stem_rule_name(o.inflate.stem);
  run["seed"] = o.inflate.seed;
  run["seeded_normal"] = kSeededNormalGenerator;  // the random scheme's generator (older runs drew otherwise)
  run["layers"] = r.layers;
  run["patches"] = m.patches;
  run["transform"] = r.transform.text;
  run["rotation_matrix"] = to_rows(r.transform.rotation);
  run["translation_mm"] = to_array(r.transform.translation);
  run["rotation_centre_mm"] = to_array(r.transform.centre);
  run["radius_mm"] = m.radius_mm;
  run["stride_voxels"] = m.stride;
  run["features"] = m.dense ? "dense approximation: one pass over the search box, footprint averages"
                            : "one forward pass per patch, global average of the layer's map";
  run["distance"] = "Euclidean distance of L2-normalised feature vectors";
  run["fill_hu"] = m.fill_hu;
  run["landmarks"] = nlohmann::json::array();
  for (const auto& l : ex.landmarks)
    run["landmarks"].push_back({{"name", l.name}, {"voxel", l.voxel}, {"world_mm", to_array(l.world)},
                                {"true_world_mm", to_array(l.true_world)}});
  run["skipped_landmarks"] = r.skipped;
  run["forward_passes"] = ex.forward_passes;
  run["seconds_matching"] = ex.seconds;
  run["seconds_total"] = seconds_total;
  write_file_atomic(o.out + "/landmarks_run.json", run.dump(2) + "\n");
}

// The run in words and the paper's table, on stdout.
inline void print_landmarks(std::ostream& os, const LandmarksOptions& o, const LandmarksResult& r) {
  const LandmarkExperiment& ex = r.experiment;
  const LandmarkOptions& m = o.matching;
  const size_t per = ex.rows.empty() ? 0 : ex.rows.front().candidates;
  os << "landmark matching: " << r.landmarks.size() << " landmarks; target = template under " << r.transform.text
     << "; search radius " << m.radius_mm << " mm, stride " << m.stride << " voxel(s) (" << per
     << " candidates for the first landmark); " << (m.dense ? "dense approximation" : "one forward pass per patch")
     << "; nearest L2-normalised features (Euclidean)\n"
     << "weights: " << r.weights_description << "\n";
  print_landmark_table(os, ex);
  os << "wrote " << o.out << "/{landmarks.csv, landmarks_summary.csv, landmarks_run.json}; " << ex.forward_passes
     << " forward passes in " << std::fixed << std::setprecision(1) << ex.seconds << " s\n";
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
  add_stem_option(cmd, a->inflate.stem, "conv0 input: sum, mean or rgb");
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
  add_device_options(cmd, a->precision, a->stream_weights);
  cmd->add_flag("--quiet", a->quiet, "no progress on stderr");

  cmd->callback([a, cmd, command] {
    const auto t0 = Progress::Clock::now();
    LandmarksOptions o = landmarks_options(*a, *cmd);
    o.command = command;
    if (a->threads > 0) omp_set_num_threads(a->threads);
    const DirLock lock = lock_out_dir(o.out, o.wait_lock, command);
    Progress progress(o.quiet);
    const LandmarksResult r = run_landmarks<CliBackend>(o, progress);
    write_landmarks(o, r, Progress::since(t0));
    print_landmarks(std::cout, o, r);
  });
}

}  // namespace volfeat::cli
