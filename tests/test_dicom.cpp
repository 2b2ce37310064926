// Issue #15: CT as it comes off the scanner. Two halves:
//   * series assembly (io/dicom_series.hpp) on synthetic slice headers: order along the normal,
//     spacing from positions, the LPS -> RAS affine, and each refusal;
//   * the GDCM reader on series written by tests/fixtures/make_dicom_fixtures.py from the real pelvis
//     CT (axial, oblique, and the oblique one re-encoded as JPEG 2000, JPEG-LS, RLE and lossless JPEG):
//     voxel for voxel the NIfTI the series was made from, geometry within 1e-4 mm.
#define BOOST_TEST_MODULE dicom
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "support/paths.hpp"
#include "volfeat/io/ct_volume.hpp"
#include "volfeat/io/dicom_series.hpp"

using namespace volfeat;

namespace {

std::string ds(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.10g", v);
  return buf;
}

// Slice k of an axial series: IOP identity (row = +x, col = +y in LPS), 0.7 x 0.8 mm pixels, 2.5 mm
// slices starting at z = -40.
DicomSliceTags axial_slice(int k, const std::string& series = "1.2.3") {
  DicomSliceTags t;
  t.file = "slice" + std::to_string(k);
  t.transfer_syntax = "1.2.840.10008.1.2.1";
  t.modality = "CT";
  t.series_uid = series;
  t.series_description = "test";
  t.image_position = "-100\\-120\\" + ds(-40.0 + 2.5 * k);
  t.image_orientation = "1\\0\\0\\0\\1\\0";
  t.pixel_spacing = "0.8\\0.7";
  t.rows = "4";
  t.columns = "5";
  t.rescale_slope = "1";
  t.rescale_intercept = "-1024";
  return t;
}

std::vector<DicomSliceTags> axial_series(int n) {
  std::vector<DicomSliceTags> v;
  for (int k = 0; k < n; ++k) v.push_back(axial_slice(k));
  return v;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

#define CHECK_ERROR(expr, part)                                                          \
  do {                                                                                   \
    const std::string msg_ = error_of([&] { (void)(expr); });                            \
    BOOST_TEST_INFO("message: " << msg_);                                                \
    BOOST_CHECK(msg_.find(part) != std::string::npos);                                   \
  } while (0)

}  // namespace

BOOST_AUTO_TEST_CASE(shuffled_axial_slices_sort_along_the_normal_and_give_the_ras_affine) {
  auto tags = axial_series(6);
  std::mt19937 rng(3);
  std::shuffle(tags.begin(), tags.end(), rng);
  const DicomSeries s = assemble_dicom_series("dir", tags);
  for (int k = 0; k < 6; ++k) BOOST_TEST(s.slices[size_t(k)].file == "slice" + std::to_string(k));
  const Grid& g = s.grid;
  BOOST_TEST(g.dims == (std::array<int64_t, 3>{6, 4, 5}));
  BOOST_TEST(g.spacing[0] == 2.5, boost::test_tools::tolerance(1e-12));
  BOOST_TEST(g.spacing[1] == 0.8);
  BOOST_TEST(g.spacing[2] == 0.7);
  // LPS -> RAS: x and y negated. Column i along the row (+x LPS = -x RAS) by the column spacing.
  const double want[3][4] = {{-0.7, 0, 0, 100}, {0, -0.8, 0, 120}, {0, 0, 2.5, -40}};
  for (int r = 0; r < 3; ++r)
    for (int c = 0; c < 4; ++c) BOOST_TEST(g.affine[r][c] == want[r][c], boost::test_tools::tolerance(1e-12));
}

BOOST_AUTO_TEST_CASE(oblique_series_sorts_by_projection_not_by_z) {
  // Sagittal-ish: row = +y, column = -z (LPS), normal = row x col = (-1, 0, 0): slices ascend along -x,
  // so the slice with the largest x comes first, whatever z says.
  std::vector<DicomSliceTags> tags;
  for (int k = 0; k < 4; ++k) {
    DicomSliceTags t = axial_slice(k);
    t.image_orientation = "0\\1\\0\\0\\0\\-1";
    t.image_position = ds(50.0 - 1.5 * k) + "\\0\\" + ds(10.0);
    tags.push_back(t);
  }
  std::reverse(tags.begin(), tags.end());
  const DicomSeries s = assemble_dicom_series("dir", tags);
  BOOST_TEST(s.slices.front().file == "slice0");
  BOOST_TEST(s.grid.spacing[0] == 1.5, boost::test_tools::tolerance(1e-12));
  // column k = F * (P_last - P_first) / 3 = F * (-1.5, 0, 0) = (1.5, 0, 0)
  BOOST_TEST(s.grid.affine[0][2] == 1.5, boost::test_tools::tolerance(1e-12));
  BOOST_TEST(s.grid.affine[1][0] == -0.7, boost::test_tools::tolerance(1e-12));  // F (0,1,0) * 0.7: y negated
  BOOST_TEST(s.grid.affine[2][1] == -0.8, boost::test_tools::tolerance(1e-12));  // F (0,0,-1) * 0.8: z kept
}

BOOST_AUTO_TEST_CASE(each_defect_is_one_error_naming_file_and_problem) {
  {  // duplicate position
    auto t = axial_series(5);
    t[3].image_position = t[1].image_position;
    CHECK_ERROR(assemble_dicom_series("dir", t), "dir: duplicate slice position: slice1 and slice3");
  }
  {  // missing slice
    auto t = axial_series(6);
    t.erase(t.begin() + 3);
    CHECK_ERROR(assemble_dicom_series("dir", t), "dir: missing slice: slice2 and slice4 are 5 mm apart, the other slices 2.5 mm");
  }
  {  // non-uniform
    auto t = axial_series(6);
    t[3].image_position = "-100\\-120\\" + ds(-40.0 + 2.5 * 3 + 0.4);
    CHECK_ERROR(assemble_dicom_series("dir", t), "dir: non-uniform slice spacing: slice2 and slice3 are 2.9 mm apart");
  }
  {  // gantry tilt: positions walk along y as z goes up
    auto t = axial_series(5);
    for (int k = 0; k < 5; ++k) t[size_t(k)].image_position = "-100\\" + ds(-120 + 0.44 * k) + "\\" + ds(-40.0 + 2.5 * k);
    t[0].gantry_tilt = "10";
    CHECK_ERROR(assemble_dicom_series("dir", t), "dir: gantry tilt: slice1 is offset 0.44 mm within the slice plane from slice0");
  }
  {  // mixed sizes
    auto t = axial_series(4);
    t[2].rows = "8";
    CHECK_ERROR(assemble_dicom_series("dir", t), "dir: mixed slice sizes: slice2 is 5x8 (columns x rows) but slice0 is 5x4");
  }
  {  // not CT
    auto t = axial_series(4);
    t[1].modality = "MR";
    CHECK_ERROR(assemble_dicom_series("dir", t), "slice1: Modality is 'MR', not CT");
  }
  {  // not an image
    auto t = axial_series(4);
    t[1].rows = t[1].columns = "";
    t[1].has_pixel_data = false;
    t[1].modality = "SR";
    CHECK_ERROR(assemble_dicom_series("dir", t), "slice1: not an image (SOP class unknown, Modality SR, no pixel data)");
  }
  {  // missing pixel data
    auto t = axial_series(4);
    t[2].has_pixel_data = false;
    CHECK_ERROR(assemble_dicom_series("dir", t), "slice2: missing pixel data (7FE0,0010)");
  }
  {  // unsupported transfer syntax
    auto t = axial_series(4);
    t[0].transfer_syntax = "1.2.840.10008.1.2.4.100";
    CHECK_ERROR(assemble_dicom_series("dir", t), "slice0: unsupported transfer syntax 1.2.840.10008.1.2.4.100");
  }
  {  // garbage numbers
    auto t = axial_series(4);
    t[0].image_position = "1\\2";
    CHECK_ERROR(assemble_dicom_series("dir", t), "slice0: invalid ImagePositionPatient '1\\2' (expected 3 values)");
    t = axial_series(4);
    t[0].image_orientation = "1\\0\\0\\1\\0\\0";
    CHECK_ERROR(assemble_dicom_series("dir", t), "slice0: invalid ImageOrientationPatient");
  }
  CHECK_ERROR(assemble_dicom_series("dir", axial_series(1)), "dir: the series has 1 slice");
}

BOOST_AUTO_TEST_CASE(several_series_are_listed_and_one_can_be_picked) {
  auto t = axial_series(3);
  for (int k = 0; k < 2; ++k) {
    DicomSliceTags o = axial_slice(k, "9.8.7");
    o.series_description = "scout";
    t.push_back(o);
  }
  CHECK_ERROR(select_dicom_series("dir", t, ""),
              "dir: holds 2 series; pick one with --series UID: 1.2.3 ('test', CT, 3 files); 9.8.7 ('scout', CT, 2 files)");
  BOOST_TEST(select_dicom_series("dir", t, "9.8.7").size() == 2u);
  BOOST_TEST(select_dicom_series("dir", t, "1.2.3").size() == 3u);
  CHECK_ERROR(select_dicom_series("dir", t, "4.4"), "dir: no series 4.4 (--series)");
  CHECK_ERROR(select_dicom_series("dir", {}, ""), "dir: no DICOM files in the directory");
}

// ---- the GDCM reader on the pelvis fixtures -------------------------------------------------------
namespace {

const std::string kFixtures = volfeat::test::test_data_dir() + "/dicom";

struct Expected {
  std::string name, uid, syntax;
};

std::vector<Expected> expected_series() {
  std::ifstream in(kFixtures + "/expected.txt");
  if (!in) {
    std::printf("skipping: %s/expected.txt missing (make_dicom_fixtures.py skipped: pydicom or the pelvis CT absent)\n",
                kFixtures.c_str());
    std::exit(77);
  }
  std::vector<Expected> out;
  Expected e;
  while (in >> e.name >> e.uid >> e.syntax) out.push_back(e);
  return out;
}

}  // namespace

BOOST_AUTO_TEST_CASE(pelvis_series_equal_their_nifti_voxel_for_voxel) {
  if (!kDicomSupport) {
    std::printf("skipping: built without DICOM support\n");
    std::exit(77);
  }
  const auto series = expected_series();
  BOOST_TEST(series.size() == 6u, "expected axial, oblique and 4 compressed copies");
  const Volume<float> axial_ref = read_nifti_float(volfeat::test::shared_dir() + "/data/pelvis_ct/ct.nii.gz");
  const Volume<float> oblique_ref = read_nifti_float(kFixtures + "/ct_oblique.nii.gz");
  for (const Expected& e : series) {
    BOOST_TEST_CONTEXT("series " << e.name) {
      const Volume<float>& ref = e.name == "axial" ? axial_ref : oblique_ref;
      const std::string dir = kFixtures + "/" + e.name;
      const CtVolume ct = read_ct_volume(dir);
      BOOST_TEST(ct.format == "dicom");
      BOOST_TEST(ct.series_uid == e.uid);
      BOOST_TEST(ct.transfer_syntaxes == std::vector<std::string>{e.syntax});
      BOOST_TEST(ct.files.size() == size_t(ref.grid.dims[0]));
      const Grid& g = ct.volume.grid;
      BOOST_TEST(g.dims == ref.grid.dims);
      double worst = 0;
      for (int r = 0; r < 4; ++r)
        for (int c = 0; c < 4; ++c) worst = std::max(worst, std::fabs(g.affine[r][c] - ref.grid.affine[r][c]));
      for (int a = 0; a < 3; ++a) worst = std::max(worst, std::fabs(g.spacing[a] - ref.grid.spacing[a]));
      BOOST_TEST_MESSAGE(e.name << ": worst affine/spacing difference " << worst << " mm");
      BOOST_TEST(worst < 1e-4);
      BOOST_REQUIRE(ct.volume.data.size() == ref.data.size());
      size_t differ = 0;
      for (size_t i = 0; i < ref.data.size(); ++i) differ += ct.volume.data[i] != ref.data[i];
      BOOST_TEST(differ == 0u, differ << " of " << ref.data.size() << " voxels differ");
      // the header-only path (memory check) gives the same grid
      const Grid h = read_ct_grid(dir);
      BOOST_TEST(h.dims == g.dims);
      BOOST_TEST(h.affine == g.affine);
    }
  }
}

BOOST_AUTO_TEST_CASE(series_hash_ignores_file_names_but_not_content) {
  if (!kDicomSupport) std::exit(77);
  expected_series();
  namespace fs = std::filesystem;
  const std::string src = kFixtures + "/axial", copy = kFixtures + "_hash_copy";
  fs::remove_all(copy);
  fs::create_directories(copy);
  int n = 0;
  for (const auto& f : fs::directory_iterator(src)) fs::copy_file(f.path(), copy + "/renamed_" + std::to_string(n++));
  const CtVolume a = read_ct_volume(src), b = read_ct_volume(copy);
  BOOST_TEST(ct_sha256(src, a) == ct_sha256(copy, b));
  {  // one byte of one slice's pixels changed: same grid, another hash
    const std::string f = b.files[7];
    std::fstream io(f, std::ios::in | std::ios::out | std::ios::binary);
    io.seekp(-2, std::ios::end);
    io.put('\x7f');
  }
  const CtVolume c = read_ct_volume(copy);
  BOOST_TEST(ct_sha256(copy, c) != ct_sha256(src, a));
  fs::remove_all(copy);
}
