#pragma once
// `volfeat preprocess`: the CT through extract's intensity stages (denoise -> contrast -> normalise)
// without a network, and a report of what they did to the intensities (issue #15):
//   preprocessed.nii.gz   float32 on the CT's affine: the volume the network would see
//   intensity_report.csv  per region and for the whole volume, before and after denoise+contrast
//   intensity.png         box plots, histograms, scatter and band bars of the same
//   run.json              config (order included), inputs, timings (the filters' own seconds)
#include <CLI/CLI.hpp>
#include <filesystem>
#include <future>
#include <iostream>
#include <memory>

#include "common_options.hpp"
#include "volfeat/io/ct_volume.hpp"
#include "volfeat/pipeline/extract_outputs.hpp"
#include "volfeat/pipeline/intensity_report.hpp"
#include "volfeat/pipeline/run_environment.hpp"

namespace volfeat::cli {

struct PreprocessArgs {
  std::string ct, series, mask, labels, normalize = kDefaultNormalize, denoise = "none", contrast = "none";
  std::string out = "volfeat_preprocess";
  bool no_background = false, quiet = false;
  double nan_to = NAN, wait_lock = 0;
  int threads = 0;
};

inline void run_preprocess(const PreprocessArgs& a, const std::string& command) {
  // Every option is checked before anything is read or written.
  const Preprocessing pre = parse_preprocessing(a.denoise, a.contrast);
  const Normalization norm = parse_normalization(a.normalize);
  if (norm.channels() != 1)
    fail("--normalize ", a.normalize, ": preprocess writes one channel; use window:L,W (imagenet's per-channel step "
         "follows the window)");
  if (a.mask.empty() != a.labels.empty() && !a.mask.empty()) fail("--mask needs --labels (e.g. femur=1,hip=2)");
  if (!a.labels.empty() && a.mask.empty()) fail("--labels needs --mask");
  if (a.threads < 0) fail("--threads ", a.threads, ": expected a positive count");
  if (a.threads > 0) omp_set_num_threads(a.threads);
  std::error_code ec;
  if (std::filesystem::exists(a.out, ec) && !std::filesystem::is_directory(a.out, ec))
    fail("--out ", a.out, ": exists and is not a directory");
  std::vector<Region> regions;
  if (!a.mask.empty()) regions = parse_labels(a.labels, !a.no_background);

  const DirLock lock = lock_out_dir(a.out, a.wait_lock, command);
  Progress progress(a.quiet);
  nlohmann::json timings = nlohmann::json::object();
  const auto t_start = Progress::Clock::now();

  progress.begin("loading volumes");
  ReadOptions ro;
  if (!std::isnan(a.nan_to)) ro.nan_to = float(a.nan_to);
  // A file is hashed while it is read; a DICOM directory after, when its slice order is known (ct_sha256).
  auto ct_sha = std::async(std::launch::async, [&] { return is_ct_directory(a.ct) ? "" : sha256_file(a.ct); });
  CtVolume source = read_ct_volume(a.ct, ro, a.series);
  Volume<float> ct = std::move(source.volume);
  std::string ct_sha256 = ct_sha.get();
  if (source.format == "dicom") {
    ct_sha256 = volfeat::ct_sha256(a.ct, source);
    progress.note(a.ct + ": " + describe_ct_source(source));
  }
  Volume<int32_t> mask;
  std::string mask_sha256;
  std::optional<AxisReorientation> reorientation;
  std::vector<int32_t> unlisted;
  if (!a.mask.empty()) {
    mask = read_nifti_labels(a.mask);
    mask_sha256 = sha256_file(a.mask);
    reorientation = conform_mask_to_grid(ct.grid, a.ct, mask, a.mask);
    unlisted = match_regions(regions, count_labels(mask), a.mask);
  }
  timings["load"] = progress.end();
  if (reorientation) progress.note(reorientation_note(*reorientation, a.mask));

  const Volume<int32_t>* m = a.mask.empty() ? nullptr : &mask;
  // The statistics run before and after the filters, not beside them, so that the filters' own
  // times in run.json are not inflated by a second job on the same cores.
  progress.begin("intensity statistics (before)");
  const auto before_rows = intensity_rows(ct, m, regions);
  double statistics_seconds = progress.end();
  progress.begin("denoise " + pre.denoise.text + ", contrast " + pre.contrast.text);
  Volume<float> after = ct;
  const PreprocessingTimes pt = apply_preprocessing(after, pre);
  timings["denoise"] = pt.denoise;
  timings["contrast"] = pt.contrast;
  progress.end();
  auto t0 = Progress::Clock::now();
  const auto after_rows = intensity_rows(after, m, regions);
  timings["statistics"] = statistics_seconds + Progress::since(t0);
  t0 = Progress::Clock::now();
  Volume<float> input{after.grid, normalize_volume(after.data, norm)};
  timings["normalize"] = Progress::since(t0);

  progress.begin("writing outputs");
  t0 = Progress::Clock::now();
  std::filesystem::remove(a.out + "/run.json", ec);  // a stale run.json would vouch for the files replaced below
  auto png = std::async(std::launch::async, [&] {
    write_intensity_png(a.out + "/intensity.png", ct, after, m, regions, before_rows, after_rows);
  });
  write_file_atomic(a.out + "/intensity_report.csv", intensity_report_csv(before_rows, after_rows));
  write_nifti(a.out + "/preprocessed.nii.gz", input);
  png.get();
  timings["write_outputs"] = Progress::since(t0);
  progress.end();
  timings["total"] = Progress::since(t_start);

  nlohmann::json region_json = nlohmann::json::array();
  for (const Region& r : regions) region_json.push_back({{"name", r.name}, {"label", r.label}});
  nlohmann::json run = run_environment(Cpu::kName, omp_get_max_threads());  // preprocessing runs on the Cpu
  run.update(nlohmann::json{
      {"command", command},
      {"config",
       {{"denoise", pre.denoise.text}, {"contrast", pre.contrast.text}, {"normalize", norm.text},
        {"preprocessing", preprocessing_json(pre, norm.text)},
        {"labels", a.labels.empty() ? nlohmann::json(nullptr) : nlohmann::json(a.labels)},
        {"background", !a.no_background}}},
      {"inputs",
       {{"ct", {{"path", a.ct}, {"sha256", ct_sha256}}},
        {"mask", a.mask.empty() ? nlohmann::json(nullptr) : nlohmann::json{{"path", a.mask}, {"sha256", mask_sha256}}},
        {"mask_reorientation", reorientation_json(reorientation)},
        {"grid", grid_json(ct.grid)}}},
      {"regions", region_json},
      {"unlisted_labels", unlisted},
      {"outputs",
       {{"preprocessed.nii.gz", "float32 on the CT's grid: denoise -> contrast -> normalize, the network's input"},
        {"intensity_report.csv", "per stage (before = the CT as read; after = after denoise and contrast, HU-like) "
                                 "and region"},
        {"intensity.png", "box plots, histograms, before/after scatter, HU band bars (README: volfeat preprocess)"}}},
      {"timings_s", timings},
  });
  write_file_atomic(a.out + "/run.json", run.dump(2) + "\n");
  std::cout << "preprocessed " << a.ct << " (" << describe(ct.grid) << "): denoise " << pre.denoise.text << " ("
            << pt.denoise << " s), contrast " << pre.contrast.text << " (" << pt.contrast << " s), normalize " << norm.text
            << "\nwrote " << a.out << "/{preprocessed.nii.gz, intensity_report.csv, intensity.png, run.json}\n";
}

inline void add_preprocess_command(CLI::App& app, const std::string& command) {
  auto a = std::make_shared<PreprocessArgs>();
  CLI::App* cmd = app.add_subcommand(
      "preprocess", "CT -> denoise -> contrast -> normalise, written as NIfTI, with an intensity report before/after");
  cmd->add_option("--ct", a->ct, "CT volume: .nii / .nii.gz, or a directory holding a DICOM series")->required();
  cmd->add_option("--series", a->series, "with --ct DIR: the SeriesInstanceUID to read when DIR holds several series");
  cmd->add_option("--mask", a->mask, "label mask on the CT's grid (regions of the report)");
  cmd->add_option("--labels", a->labels, "regions as name=value in order, e.g. femur=1,hip=2");
  cmd->add_flag("--no-background", a->no_background, "do not add label 0 as the region 'background'");
  add_preprocessing_options(cmd, a->denoise, a->contrast);
  cmd->add_option("--normalize", a->normalize, "none | window:L,W | minmax | zscore (as extract)")->capture_default_str();
  cmd->add_option("--nan-to", a->nan_to, "replace NaN/Inf CT voxels by this value instead of failing");
  cmd->add_option("--out", a->out, "output directory")->capture_default_str();
  add_wait_lock_option(cmd, a->wait_lock);
  cmd->add_option("--threads", a->threads, "threads (default: all cores)");
  cmd->add_flag("--quiet", a->quiet, "no progress on stderr");
  cmd->callback([a, command] { run_preprocess(*a, command); });
}

}  // namespace volfeat::cli
