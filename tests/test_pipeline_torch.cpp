// The extract pipeline on the real pelvis CT (femur=1, hip=2) against an independent PyTorch
// implementation of the same procedure (tests/torch/pipeline_reference.py): every cosine within
// 1e-4, in both modes; the partial-volume mask weights against torch's adaptive_avg_pool3d; one
// forward pass in shared mode whatever the number of regions; grid and label errors.
#define BOOST_TEST_MODULE pipeline_torch
#include <boost/test/unit_test.hpp>
#include <filesystem>

#include "support/paths.hpp"
#include "support/sanitized.hpp"
#include "support/compare.hpp"
#include "support/torch_refs.hpp"
#include "volfeat/backend/cpu.hpp"
#include "volfeat/pipeline/extract.hpp"

using namespace volfeat;
using namespace volfeat::test;

namespace {

const std::string kPelvis = volfeat::test::shared_dir() + "/data/pelvis_ct";

struct PelvisAndTorch {
  PelvisAndTorch() {
    if (!std::filesystem::exists(kPelvis + "/ct.nii.gz")) {
      std::cout << "SKIP: " << kPelvis << "/ct.nii.gz is missing (the shared data folder is not beside the checkout)"
                << std::endl;
      std::exit(77);
    }
    require_torch_refs();
  }
};
BOOST_TEST_GLOBAL_FIXTURE(PelvisAndTorch);

ExtractOptions pelvis_options(const std::string& mode, const std::string& pool) {
  ExtractOptions o;
  o.ct = kPelvis + "/ct.nii.gz";
  o.mask = kPelvis + "/femur1_hip2.nii.gz";
  o.labels = "femur=1,hip=2";
  o.normalize = "window:400,2000";
  o.weights = torch_ref_dir() + "/dn121_2d.npz";
  o.preset = "denseblock4-tail";
  o.mode = mode;
  o.pool = pool;
  return o;
}

struct Run {
  PreparedVolume volume;
  RegionFeatures features;
  SimilarityTable table;
};

Run run_pipeline(const ExtractOptions& o) {
  Progress quiet(true);
  Run r;
  r.volume = prepare_volume(o, quiet);
  const Network<Cpu, float> net(load_network_weights(o, r.volume.normalization.channels()).state);
  r.features = extract_features(net, r.volume, resolve_layers(o, net.graph()), o.mode, o.pool, quiet);
  r.table = similarity_table(r.volume.regions, r.features);
  return r;
}

// A VGG or ResNet plain torchvision export (no volfeat metadata: the architecture comes from its keys)
// on the pelvis CT averaged to 9 mm, with the family's paper preset.
ExtractOptions arch_options(const std::string& arch, const std::string& preset) {
  ExtractOptions o = pelvis_options("shared", "mean");
  o.ct = volfeat::test::test_data_dir() + "/pelvis_9mm/ct.nii.gz";
  o.mask = volfeat::test::test_data_dir() + "/pelvis_9mm/labels.nii.gz";
  o.weights = volfeat::test::test_data_dir() + "/arch/" + arch + "_2d.npz";
  o.preset = preset;
  o.arch = arch;
  o.arch_given = true;  // --arch with --weights: the file must hold it
  return o;
}

void check_against_torch(const std::string& mode, const std::string& pool, const std::string& ref_name = "",
                         const ExtractOptions* options = nullptr) {
  const NpzMap ref = read_npz(volfeat::test::test_data_dir() + "/pipeline/ref_" +
                              (ref_name.empty() ? mode + "_" + pool : ref_name) + ".npz");
  const auto meta = ref_meta(ref);
  const Run r = run_pipeline(options ? *options : pelvis_options(mode, pool));

  BOOST_TEST(r.table.pairs == meta["pairs"].get<std::vector<std::string>>(), boost::test_tools::per_element());
  BOOST_TEST(r.table.layers == meta["layers"].get<std::vector<std::string>>(), boost::test_tools::per_element());
  BOOST_TEST(r.features.forward_passes == meta["forward_passes"].get<int>());
  BOOST_TEST(r.features.forward_passes == (mode == "shared" ? 1 : 3));

  const auto cos = ref.at("cosine").to_vector<double>();  // (pairs, layers)
  double worst = 0;
  for (size_t p = 0; p < r.table.pairs.size(); ++p)
    for (size_t l = 0; l < r.table.layers.size(); ++l) {
      const double got = r.table.value[p][l], want = cos[p * r.table.layers.size() + l];
      BOOST_TEST(std::abs(got - want) <= 1e-4, r.table.pairs[p] << " @ " << r.table.layers[l] << ": " << got << " vs torch " << want);
      worst = std::max(worst, std::abs(got - want));
    }
  for (const auto& region : r.volume.regions)
    for (const auto& layer : r.features.layers)
      BOOST_TEST(relative_error(r.features.of(pool).at(region.name).at(layer),
                                ref.at("feature/" + region.name + "/" + layer).to_vector<double>()) <= 1e-4,
                 region.name << " @ " << layer);
  BOOST_TEST_MESSAGE(mode << "/" << pool << ": " << r.table.pairs.size() * r.table.layers.size()
                          << " cosines match torch; largest difference " << worst);
}

}  // namespace

BOOST_AUTO_TEST_CASE(shared_mean_matches_torch) { check_against_torch("shared", "mean"); }
BOOST_AUTO_TEST_CASE(mask_input_mean_matches_torch) {
  if (normal_suite_only("mask_input_mean_matches_torch", "shared_mean_matches_torch; test_cli's mask-input run")) return;
  check_against_torch("mask-input", "mean");
}
BOOST_AUTO_TEST_CASE(shared_max_matches_torch) {
  if (normal_suite_only("shared_max_matches_torch", "shared_mean_matches_torch; the region pools in test_primitives_cpu")) return;
  check_against_torch("shared", "max");
}
BOOST_AUTO_TEST_CASE(vgg19_paper_layers_match_torch) {
  const ExtractOptions o = arch_options("vgg19", "paper-vgg");
  check_against_torch("shared", "mean", "vgg19_shared_mean", &o);
}
BOOST_AUTO_TEST_CASE(resnet50_paper_layers_match_torch) {
  const ExtractOptions o = arch_options("resnet50", "paper-resnet");
  check_against_torch("shared", "mean", "resnet50_shared_mean", &o);
}

BOOST_AUTO_TEST_CASE(mask_weights_equal_torch_adaptive_avg_pool3d) {
  const NpzMap ref = read_npz(volfeat::test::test_data_dir() + "/pipeline/ref_shared_mean.npz");
  Progress quiet(true);
  const PreparedVolume v = prepare_volume(pelvis_options("shared", "mean"), quiet);
  size_t checked = 0;
  for (const auto& [key, arr] : ref) {
    if (key.rfind("weight/", 0) != 0) continue;
    const std::string region = key.substr(7, key.find('/', 7) - 7);
    size_t r = 0;
    while (v.regions[r].name != region) ++r;
    const std::array<Index, 3> grid{arr.shape[0], arr.shape[1], arr.shape[2]};
    const auto got = region_weights(v.mask, v.regions[r].label, grid);
    BOOST_TEST(relative_error(got, arr.to_vector<double>()) <= 1e-12, key);
    ++checked;
  }
  BOOST_TEST(checked == 9u);  // 3 regions x 3 layers
}

BOOST_AUTO_TEST_CASE(shared_mode_makes_one_forward_pass_for_any_number_of_regions) {
  ExtractOptions o = pelvis_options("shared", "mean");
  o.mask = kPelvis + "/totalsegmentator_labels.nii.gz";
  o.labels = "femur_left=75,femur_right=76,hip_left=77,hip_right=78";
  o.layers = {"conv[-1]"};
  o.preset.clear();
  const Run r = run_pipeline(o);
  BOOST_TEST(r.volume.regions.size() == 5u);
  BOOST_TEST(r.table.pairs.size() == 10u);
  BOOST_TEST(r.features.forward_passes == 1);
}

BOOST_AUTO_TEST_CASE(mask_on_another_grid_is_an_error_naming_both) {
  const std::string dir = volfeat::test::test_data_dir() + "/pipeline_errors";
  std::filesystem::create_directories(dir);
  Volume<int32_t> mask = read_nifti_labels(kPelvis + "/femur1_hip2.nii.gz");
  Volume<int32_t> shifted = mask;
  shifted.grid.affine[0][3] += 1.5;  // same dims, origin moved 1.5 mm
  write_nifti(dir + "/shifted_mask.nii.gz", shifted);
  const Box box{{0, 0, 0}, {mask.grid.dims[0] - 1, mask.grid.dims[1], mask.grid.dims[2]}};
  write_nifti(dir + "/cropped_mask.nii.gz", crop(mask, box));
  Progress quiet(true);
  for (const char* name : {"shifted_mask.nii.gz", "cropped_mask.nii.gz"}) {
    ExtractOptions o = pelvis_options("shared", "mean");
    o.mask = dir + "/" + name;
    try {
      prepare_volume(o, quiet);
      BOOST_FAIL(name << " was accepted");
    } catch (const Error& e) {
      const std::string msg = e.what();
      BOOST_TEST_MESSAGE(msg);
      BOOST_TEST(msg.find("grid mismatch") != std::string::npos);
      BOOST_TEST(msg.find(o.ct) != std::string::npos);
      BOOST_TEST(msg.find(o.mask) != std::string::npos);
      BOOST_TEST(msg.find("122x101x112") != std::string::npos);
    }
  }
}

BOOST_AUTO_TEST_CASE(absent_label_is_an_error_listing_the_labels_present) {
  ExtractOptions o = pelvis_options("shared", "mean");
  o.labels = "femur=1,tibia=7";
  Progress quiet(true);
  try {
    prepare_volume(o, quiet);
    BOOST_FAIL("an absent label was accepted");
  } catch (const Error& e) {
    const std::string msg = e.what();
    BOOST_TEST_MESSAGE(msg);
    BOOST_TEST(msg.find("tibia=7 is not in the mask") != std::string::npos);
    BOOST_TEST(msg.find("1 (8884 voxels)") != std::string::npos);
    BOOST_TEST(msg.find(o.mask) != std::string::npos);
  }
}
