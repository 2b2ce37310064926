#pragma once
// Options every driver shares (extract, report, sweep): inputs, regions, preprocessing, weights,
// layers, threads. One definition, so the commands cannot drift apart.
#include <CLI/CLI.hpp>
#include <omp.h>
#include <string>

#include "../weights/inflate_options.hpp"
#include "out_dir_lock.hpp"
#include "volfeat/core/weight_file.hpp"
#include "volfeat/pipeline/extract.hpp"
#include "volfeat/pipeline/memory_guard.hpp"

namespace volfeat::cli {

struct CommonArgs {
  ExtractOptions extract;
  std::string layers;  // comma list; parsed after CLI11
  double resample = 0, crop = -1, nan_to = NAN;
  bool no_background = false, quiet = false;
  int threads = 0;
  double wait_lock = 0;
  std::string out = "volfeat_out";
  std::string max_memory;  // parsed after CLI11 (parse_memory_size)
  std::string denoise = "none", contrast = "none";  // parsed after CLI11 into extract.preprocessing
  std::string mode = ExtractMode().name();           // parsed after CLI11 into extract.mode
  std::string precision = "float32";                 // parsed after CLI11 into extract.device
  std::string stream_weights;                        // extract.device.stream_weights
};

// --denoise and --contrast, shared with `volfeat preprocess`.
inline void add_preprocessing_options(CLI::App* cmd, std::string& denoise, std::string& contrast) {
  cmd->add_option("--denoise", denoise,
                  "none | gaussian:SIGMA_MM | median:RADIUS_VOX | bilateral:SIGMA_MM,SIGMA_HU (applied first, in HU)")
      ->capture_default_str();
  cmd->add_option("--contrast", contrast,
                  "none | equalize | clahe[:CLIP] (after --denoise, mapped back onto the HU range; default CLIP 0.01)")
      ->capture_default_str();
}

// Every --arch value (nn/architectures.hpp).
inline std::vector<std::string> arch_names() {
  std::vector<std::string> out;
  for (const auto& f : arch_families()) out.insert(out.end(), f.archs.begin(), f.archs.end());
  return out;
}

// --precision and --stream-weights (the device a run's networks are built on), shared with
// `volfeat landmarks`.
inline void add_device_options(CLI::App* cmd, std::string& precision, std::string& stream_weights) {
  cmd->add_option("--precision", precision,
                  "float32 | bf16 | tf32: the convs' arithmetic; bf16 (opt-in, CPU) needs AVX512-BF16, else float32 "
                  "with a note; tf32 (opt-in) is volfeat-cuda's tensor cores (README: Precision)")
      ->capture_default_str();
  cmd->add_option("--stream-weights", stream_weights,
                  "DIR on a disk: keep the packed weights in an unlinked file there and hold one step's at a time "
                  "(same results; README: Streamed weights)");
}

inline void add_common_options(CLI::App* cmd, CommonArgs& a) {
  ExtractOptions& e = a.extract;
  cmd->add_option("--ct", e.ct, "CT volume: .nii / .nii.gz, or a directory holding a DICOM series; omit for the "
                                "built-in knee phantom");
  cmd->add_option("--series", e.ct_series, "with --ct DIR: the SeriesInstanceUID to read when DIR holds several series");
  cmd->add_option("--mask", e.mask, "label mask on the CT's grid");
  cmd->add_option("--labels", e.labels, "regions as name=value in order, e.g. femur=1,tibia=2 (default for the phantom)");
  cmd->add_flag("--no-background", a.no_background, "do not add label 0 as the region 'background'");
  cmd->add_option("--normalize", e.normalize,
                  "none | window:L,W | minmax | zscore | imagenet[:L,W] (imagenet = window, then ImageNet mean/std per RGB channel)")
      ->capture_default_str();
  add_preprocessing_options(cmd, a.denoise, a.contrast);
  cmd->add_option("--resample", a.resample, "resample to isotropic MM spacing first (trilinear CT, nearest labels)");
  cmd->add_option("--crop-to-labels", a.crop, "crop to the labelled regions plus MARGIN_MM first");
  cmd->add_option("--nan-to", a.nan_to, "replace NaN/Inf CT voxels by this value instead of failing");
  cmd->add_option("--mode", a.mode, "shared: one forward pass, regions pooled in their masks; mask-input: the reports' "
                                    "method, one pass per region on CT x mask")
      ->capture_default_str()
      ->check(CLI::IsMember({"shared", "mask-input"}));
  cmd->add_option("--pool", e.pool, "mean | max | gem[:p] | mean+std | topk[:q] | percentile[:q] | attention[:t]")
      ->capture_default_str();
  cmd->add_option("--weights", e.weights, ".npz: a torchvision 2D state_dict export (architecture detected from its keys, "
                                          "inflated on load) or a 3D file from volfeat convert; omit for volfeat's seeded "
                                          "random network");
  add_inflate_options(cmd, e.inflate);
  cmd->add_option("--seed", e.inflate.seed, "seed of the random network (no --weights, or --inflate random)")
      ->capture_default_str();
  cmd->add_option("--arch", e.arch, "architecture of the random network; with --weights, the architecture the file must hold")
      ->capture_default_str()
      ->check(CLI::IsMember(arch_names()));
  cmd->add_option("--layers", a.layers, "comma list: torchvision module names (features. optional), conv[-k], "
                                        "containers (denseblockN, layerN), VGG's convB_C");
  cmd->add_option("--preset", e.preset, "layer set: denseblock4-tail (DenseNet default), last-3rd-5th, block-outputs, "
                                        "paper-vgg (VGG default), paper-resnet (ResNet default)");
  cmd->add_option("--out", a.out, "output directory")->capture_default_str();
  add_wait_lock_option(cmd, a.wait_lock);
  cmd->add_option("--threads", a.threads, "threads (default: all cores)");
  add_device_options(cmd, a.precision, a.stream_weights);
  cmd->add_flag("--quiet", a.quiet, "no progress on stderr");
  cmd->add_option("--max-memory", a.max_memory,
                  "refuse runs whose estimated peak memory exceeds SIZE (e.g. 4G, 500M; default: what is available)");
}

inline std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start < s.size()) {
    const size_t end = std::min(s.find(',', start), s.size());
    if (end > start) out.push_back(s.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

// CLI values -> ExtractOptions, and the process-wide thread count.
inline void finish_common_options(CLI::App* cmd, CommonArgs& a) {
  ExtractOptions& e = a.extract;
  e.background = !a.no_background;
  e.preprocessing = parse_preprocessing(a.denoise, a.contrast);
  e.mode = ExtractMode(a.mode);
  e.device = {parse_precision(a.precision), a.stream_weights};
  if (!a.stream_weights.empty()) WeightFile::check_dir(a.stream_weights);  // before any work
  e.layers = split_list(a.layers);
  if (!e.layers.empty() && !e.preset.empty()) fail("--layers and --preset are alternatives: pass one");
  if (cmd->count("--resample")) e.resample_mm = a.resample;
  if (cmd->count("--crop-to-labels")) e.crop_margin_mm = a.crop;
  if (!std::isnan(a.nan_to)) e.nan_to = float(a.nan_to);
  e.stem_given = cmd->count("--stem") > 0;
  e.inflate_given = cmd->count("--inflate") > 0;
  // With --weights the file decides the architecture; --arch then asserts which one it must be.
  e.arch_given = !e.weights.empty() && cmd->count("--arch") > 0;
  if (!a.max_memory.empty()) e.max_memory = parse_memory_size(a.max_memory);
  std::error_code ec;
  if (std::filesystem::exists(a.out, ec) && !std::filesystem::is_directory(a.out, ec))
    fail("--out ", a.out, ": exists and is not a directory");
  if (a.threads < 0) fail("--threads ", a.threads, ": expected a positive count");
  if (a.threads > 0) omp_set_num_threads(a.threads);
}

inline std::string command_line(int argc, char** argv) {
  std::string s;
  for (int i = 0; i < argc; ++i) s += (i ? " " : "") + std::string(argv[i]);
  return s;
}

}  // namespace volfeat::cli
