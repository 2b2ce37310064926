#pragma once
// `volfeat extract` (the main job), `volfeat phantom` and `volfeat info`.
#include <CLI/CLI.hpp>
#include <future>
#include <iomanip>
#include <iostream>
#include <memory>
#include <optional>
#include <tuple>
#include <utility>

#include "cli_backend.hpp"
#include "cohort/extract_cohort.hpp"
#include "common_options.hpp"
#include "volfeat/backend/cpu.hpp"
#include "volfeat/pipeline/extract_outputs.hpp"

namespace volfeat::cli {

// Prints the table as the reports did: pairs x layers.
inline void print_table(std::ostream& os, const SimilarityTable& t) {
  size_t w = 4;
  for (const auto& p : t.pairs) w = std::max(w, p.size());
  os << std::left << std::setw(int(w)) << "pair";
  for (const auto& l : t.layers) os << "  " << std::right << std::setw(int(std::max<size_t>(8, short_layer(l).size()))) << short_layer(l);
  os << '\n';
  for (size_t p = 0; p < t.pairs.size(); ++p) {
    os << std::left << std::setw(int(w)) << t.pairs[p];
    for (size_t l = 0; l < t.layers.size(); ++l)
      os << "  " << std::right << std::setw(int(std::max<size_t>(8, short_layer(t.layers[l]).size()))) << std::fixed
         << std::setprecision(4) << t.value[p][l];
    os << '\n';
  }
}

// `given`: a volume the caller prepared (the Python module's arrays) instead of o.ct/o.mask.
template <class Backend>
ExtractRun run_extract(const ExtractOptions& o, Progress& progress, const std::string& command,
                       std::optional<PreparedVolume> given = std::nullopt) {
  ExtractRun r;
  r.command_line = command;
  r.options = o;
  r.threads = omp_get_max_threads();
  r.backend = Backend::kName;
  // The device first: a precision or --stream-weights directory it refuses fails before any work
  // (and before region_report.csv and region_slices.png are written).
  std::string precision_note;
  const Backend device = DeviceFor<Backend>::make(o.device, precision_note);
  if (!precision_note.empty()) progress.warn(precision_note);
  r.precision = precision_name(DeviceFor<Backend>::precision(device));
  r.precision_note = precision_note;
  r.precision_kernels = DeviceFor<Backend>::kernels(device);
  if (!r.precision_kernels.empty()) progress.note(r.precision_kernels);
  r.stream_weights = DeviceFor<Backend>::stream_weights(device);
  Progress::Clock::time_point t0 = Progress::Clock::now();
  check_load_memory(o, o.max_memory, progress);
  // The weights (a file, or seeded random initialisation) load while the volumes are read; the
  // volumes' errors still come first.
  auto weights = std::async(std::launch::async, [&o] {
    const auto t = Progress::Clock::now();
    NetworkWeights w = load_network_weights(o, parse_normalization(o.normalize).channels());
    return std::make_pair(std::move(w), Progress::since(t));
  });
  r.volume = given ? std::move(*given) : prepare_volume(o, progress);
  r.timings["prepare"] = Progress::since(t0);
  r.timings["denoise"] = r.volume.preprocessing_seconds.denoise;    // within "prepare"
  r.timings["contrast"] = r.volume.preprocessing_seconds.contrast;  // within "prepare"
  if (r.volume.phantom) progress.note("no --ct given: running on the built-in synthetic knee phantom");
  for (int32_t l : r.volume.unlisted_labels)
    if (l != 0 || !o.background) progress.note(r.volume.mask_name + ": label " + std::to_string(l) + " is in no region");

  t0 = Progress::Clock::now();
  summarize_ct(r);
  r.timings["summarize_ct"] = Progress::since(t0);  // region_report.csv and region_slices.png, made now

  t0 = Progress::Clock::now();
  double load_seconds = 0;
  std::tie(r.weights, load_seconds) = weights.get();
  // Only the nodes up to the deepest tap are built, each conv for its output at this volume (BuildUpTo).
  const auto layers = resolve_layers(o, graph_of(r.weights.state));
  const Network<Backend, float> net(r.weights.state, kReleaseWeights, device, BuildUpTo{layers, forward_dims(r.volume)});
  r.timings["load_weights"] = load_seconds;  // overlapped with "prepare"
  r.timings["build_network"] = Progress::since(t0);
  progress.note("weights: " + r.weights.description);

  check_extract_memory(extract_sizes(o, r.volume, r.weights, net, layers, r.threads), o.max_memory, progress);
  r.features = extract_scheme_features(o, net, r.volume, layers, {o.pool}, progress);
  r.timings["forward"] = r.features.forward_seconds;
  r.table = similarity_table(r.volume.regions, r.features);
  return r;
}

struct ExtractArgs {
  CommonArgs common;
  std::string manifest, shard;  // a cohort: cohort/extract_cohort.hpp
};

inline void add_extract_command(CLI::App& app, const std::string& command) {
  auto a = std::make_shared<ExtractArgs>();
  CLI::App* cmd = app.add_subcommand("extract", "CT + label mask -> region features per layer -> cosine similarity tables");
  add_common_options(cmd, a->common);
  cmd->add_option("--manifest", a->manifest, "CSV with columns ct,mask,labels[,id][,series]: one output directory "
                                             "per volume (--out/ID) and cohort tables in --out");
  add_shard_option(cmd, a->shard);
  cmd->callback([a, cmd, command] {
    finish_common_options(cmd, a->common);
    if (!a->manifest.empty()) {
      const int status = run_extract_manifest(
          a->common.extract, a->manifest, a->common.out, a->shard, a->common.threads, a->common.quiet, command,
          [&command](const ExtractOptions& o, Progress& p) { return run_extract<CliBackend>(o, p, command); });
      if (status != 0) throw CohortExit{status};
      return;
    }
    if (!a->shard.empty()) fail("--shard needs --manifest (a cohort to share out)");
    const DirLock lock = lock_out_dir(a->common.out, a->common.wait_lock, command);
    Progress progress(a->common.quiet);
    const auto t0 = Progress::Clock::now();
    ExtractRun r = run_extract<CliBackend>(a->common.extract, progress, command);
    const auto t1 = Progress::Clock::now();
    write_extract_outputs(a->common.out, r);
    r.timings["write_outputs"] = Progress::since(t1);
    r.timings["total"] = Progress::since(t0);
    write_file_atomic(a->common.out + "/run.json", run_json(r).dump(2) + "\n");
    std::cout << "cosine similarity, " << r.options.mode << " mode, " << r.options.pool << " pooling, weights: "
              << r.weights.description << "\n";
    print_table(std::cout, r.table);
    std::cout << "wrote " << a->common.out << "/{similarities.csv, similarities_long.csv, features.npz, run.json, "
              << "region_report.csv, region_slices.png}; " << r.features.forward_passes << " forward pass"
              << (r.features.forward_passes == 1 ? "" : "es") << "\n";
  });
}

inline void add_phantom_command(CLI::App& app) {
  struct Args {
    std::string out = "phantom";
    uint64_t seed = 0;
    std::vector<int64_t> dims{kKneePhantomDims.begin(), kKneePhantomDims.end()};
    std::string ct_dtype = "float32";
  };
  auto a = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand("phantom", "Write the synthetic knee CT and its labels (femur=1, tibia=2) as NIfTI");
  cmd->add_option("--out", a->out, "output directory")->capture_default_str();
  cmd->add_option("--seed", a->seed, "noise seed")->capture_default_str();
  cmd->add_option("--dims", a->dims, "grid D,H,W over the same 128x160x160 mm (e.g. 216,512,512 for a scanner-sized CT)")
      ->delimiter(',')
      ->expected(3)
      ->capture_default_str();
  cmd->add_option("--ct-dtype", a->ct_dtype, "float32, or int16 (rounded HU, as scanners store CT)")
      ->check(CLI::IsMember({"float32", "int16"}))
      ->capture_default_str();
  cmd->callback([a] {
    const Phantom p = make_knee_phantom(a->seed, {a->dims[0], a->dims[1], a->dims[2]});
    const std::string& out = a->out;
    std::error_code ec;
    std::filesystem::create_directories(out, ec);
    if (ec) fail(out, ": cannot create output directory (", ec.message(), ")");
    if (a->ct_dtype == "int16") {
      Volume<int32_t> hu{p.ct.grid, std::vector<int32_t>(p.ct.data.size())};
      for (size_t i = 0; i < hu.data.size(); ++i) hu.data[i] = int32_t(std::lround(std::clamp(p.ct.data[i], -32768.f, 32767.f)));
      write_nifti(out + "/knee_ct.nii.gz", hu);  // stored as int16: every value fits
    } else {
      write_nifti(out + "/knee_ct.nii.gz", p.ct);
    }
    write_nifti(out + "/knee_labels.nii.gz", p.labels);
    const auto counts = count_labels(p.labels);
    std::cout << "wrote " << out << "/knee_ct.nii.gz and knee_labels.nii.gz: " << describe(p.ct.grid)
              << "; labels " << label_census(counts) << "\n";
  });
}

// `volfeat info DIR`: the series in a DICOM directory, or the one asked for, read as extract reads it.
inline void print_dicom_info(const std::string& dir, const std::string& series) {
  if (series.empty()) {
    const std::vector<DicomSeriesSummary> all = list_ct_series(dir);
    if (all.size() > 1) {
      std::cout << dir << ": " << all.size() << " DICOM series (pass --series UID for one)\n";
      for (const auto& s : all)
        std::cout << "  " << s.uid << "  '" << s.description << "'  " << s.modality << "  " << s.files << " files\n";
      return;
    }
  }
  const CtVolume ct = read_ct_volume(dir, {}, series);
  const Grid& g = ct.volume.grid;
  double mn = INFINITY, mx = -INFINITY;
  for (float x : ct.volume.data) mn = std::min(mn, double(x)), mx = std::max(mx, double(x));
  std::cout << dir << ": " << describe_ct_source(ct) << "\n"
            << "  grid       " << describe(g) << "\n"
            << "  (D,H,W)    " << g.dims[0] << " x " << g.dims[1] << " x " << g.dims[2] << " voxels, " << g.spacing[0]
            << " x " << g.spacing[1] << " x " << g.spacing[2] << " mm\n"
            << "  orientation " << orientation_code(g) << " (ImageOrientationPatient, as RAS)\n"
            << "  values     " << mn << " .. " << mx << " HU (RescaleSlope/Intercept applied)\n";
}

inline void add_info_command(CLI::App& app) {
  auto file = std::make_shared<std::string>();
  auto series = std::make_shared<std::string>();
  CLI::App* cmd = app.add_subcommand("info", "NIfTI header summary and label counts, or a DICOM series' summary");
  cmd->add_option("file", *file, "a .nii or .nii.gz file, or a directory holding a DICOM series")->required();
  cmd->add_option("--series", *series, "with a directory: the SeriesInstanceUID to describe");
  cmd->callback([file, series] {
    if (is_ct_directory(*file)) return print_dicom_info(*file, *series);
    if (!series->empty()) fail("--series ", *series, ": ", *file, " is a NIfTI file, not a DICOM directory");
    const NiftiInfo h = read_nifti_header(*file);
    std::cout << *file << ": NIfTI-" << h.version << (h.gzipped ? " (gzip)" : "") << "\n"
              << "  grid       " << describe(h.grid) << "\n"
              << "  (D,H,W)    " << h.grid.dims[0] << " x " << h.grid.dims[1] << " x " << h.grid.dims[2] << " voxels, "
              << h.grid.spacing[0] << " x " << h.grid.spacing[1] << " x " << h.grid.spacing[2] << " mm\n"
              << "  orientation " << h.orientation << " (" << h.affine_source << ")\n"
              << "  datatype   " << h.datatype_name << "\n"
              << "  scl        " << (h.scaled ? "slope " + std::to_string(h.scl_slope) + ", inter " + std::to_string(h.scl_inter)
                                              : std::string("none")) << "\n";
    const Volume<float> v = read_nifti_float(*file);
    bool integral = true;
    double mn = INFINITY, mx = -INFINITY;
    for (float x : v.data) {
      mn = std::min(mn, double(x)), mx = std::max(mx, double(x));
      integral = integral && x == std::floor(x);
    }
    std::cout << "  values     " << mn << " .. " << mx << "\n";
    if (integral && mx - mn <= 1000) {
      const auto counts = count_labels(read_nifti_labels(*file));
      std::cout << "  labels     " << label_census(counts) << "\n";
    }
  });
}

}  // namespace volfeat::cli
