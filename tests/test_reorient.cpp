// Issue #19: a mask on the CT's grid stored in another axis order or direction is reoriented by index
// remapping. Checked for all 48 signed axis permutations against a naive per-voxel loop, with the
// permutation recovered from the affines alone; physically different grids are refused.
#define BOOST_TEST_MODULE reorient
#include <boost/test/unit_test.hpp>
#include <array>
#include <cmath>
#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "support/error_of.hpp"
#include "volfeat/pipeline/reorient.hpp"

using namespace volfeat;
using volfeat::test::error_of;

namespace {

using Ijk = std::array<int64_t, 3>;

// A slightly oblique CT-like grid with distinct dims and spacing on every axis, so a wrong axis
// assignment cannot go unnoticed. (D,H,W) = (k,j,i) = (7,6,5).
Grid ct_grid() {
  Grid g = make_grid({7, 6, 5}, {2.5, 0.75, 0.5}, {-120.25, 33.5, 71.0});
  const double c = std::cos(0.05), s = std::sin(0.05);  // 2.9 degrees about z
  const std::array<double, 3> sp{{0.5, 0.75, 2.5}};       // (i,j,k)
  g.affine[0][0] = c * sp[0], g.affine[0][1] = -s * sp[1];
  g.affine[1][0] = s * sp[0], g.affine[1][1] = c * sp[1];
  return g;
}

// The grid `target` is, stored with CT axis a along stored axis r.axis[a] (reversed where r.flip[a]),
// built from the mapping's definition; and the stored array filled by visiting every CT voxel.
template <class T>
Volume<T> store_permuted(const Volume<T>& target, const AxisReorientation& r) {
  const Grid& t = target.grid;
  const Ijk n{{t.dims[2], t.dims[1], t.dims[0]}};
  const std::array<double, 3> sp{{t.spacing[2], t.spacing[1], t.spacing[0]}};
  Ijk sn{};
  std::array<double, 3> ssp{};
  Grid g;
  for (int a = 0; a < 3; ++a) {
    const int b = r.axis[a];
    sn[b] = n[a], ssp[b] = sp[a];
    for (int row = 0; row < 3; ++row) g.affine[row][b] = r.flip[a] ? -t.affine[row][a] : t.affine[row][a];
  }
  // stored voxel 0 is the CT voxel at the far end of every reversed axis
  for (int row = 0; row < 3; ++row) {
    g.affine[row][3] = t.affine[row][3];
    for (int a = 0; a < 3; ++a)
      if (r.flip[a]) g.affine[row][3] += t.affine[row][a] * double(n[a] - 1);
  }
  g.dims = {sn[2], sn[1], sn[0]};
  g.spacing = {ssp[2], ssp[1], ssp[0]};
  Volume<T> s{g, std::vector<T>(target.data.size())};
  for (int64_t k = 0; k < n[2]; ++k)
    for (int64_t j = 0; j < n[1]; ++j)
      for (int64_t i = 0; i < n[0]; ++i) {
        const Ijk c{{i, j, k}};
        Ijk m{};
        for (int a = 0; a < 3; ++a) m[r.axis[a]] = r.flip[a] ? n[a] - 1 - c[a] : c[a];
        s.at(m[2], m[1], m[0]) = target.at(k, j, i);
      }
  return s;
}

std::vector<AxisReorientation> all_signed_permutations() {
  std::vector<AxisReorientation> out;
  std::array<int, 3> p{{0, 1, 2}};
  do {
    for (int signs = 0; signs < 8; ++signs) {
      AxisReorientation r;
      r.axis = p;
      for (int a = 0; a < 3; ++a) r.flip[a] = (signs >> a) & 1;
      out.push_back(r);
    }
  } while (std::next_permutation(p.begin(), p.end()));
  return out;
}

Volume<int32_t> random_labels(const Grid& g, uint32_t seed) {
  std::mt19937 rng(seed);
  Volume<int32_t> v{g, std::vector<int32_t>(size_t(g.voxels()))};
  for (auto& x : v.data) x = int32_t(rng() % 1000);  // (almost) every voxel distinct: a misplaced one shows
  return v;
}

}  // namespace

BOOST_AUTO_TEST_CASE(every_signed_permutation_is_found_and_undone_exactly) {
  const Volume<int32_t> ct_labels = random_labels(ct_grid(), 19);
  int checked = 0;
  for (const AxisReorientation& want : all_signed_permutations()) {
    const Volume<int32_t> stored = store_permuted(ct_labels, want);
    const auto found = find_axis_reorientation(ct_labels.grid, stored.grid);
    BOOST_REQUIRE_MESSAGE(found, "no reorientation for axes " << want.axes()[0] << want.axes()[1] << want.axes()[2]);
    BOOST_CHECK(found->axis == want.axis);
    BOOST_CHECK(found->flip == want.flip);
    BOOST_CHECK_EQUAL(found->identity(), want.identity());
    const Volume<int32_t> back = reorient_volume(stored, ct_labels.grid, *found);
    BOOST_CHECK(back.grid.dims == ct_labels.grid.dims);
    BOOST_CHECK(back.data == ct_labels.data);
    ++checked;
  }
  BOOST_CHECK_EQUAL(checked, 48);
}

BOOST_AUTO_TEST_CASE(remapping_matches_a_naive_loop_on_arbitrary_data) {
  // The stored array filled independently at random, then read through the mapping voxel by voxel.
  const Grid ct = ct_grid();
  for (const AxisReorientation& r : all_signed_permutations()) {
    Volume<int32_t> stored = store_permuted(Volume<int32_t>{ct, std::vector<int32_t>(size_t(ct.voxels()))}, r);
    std::mt19937 rng(7);
    for (auto& x : stored.data) x = int32_t(rng());
    const Volume<int32_t> out = reorient_volume(stored, ct, r);
    int64_t wrong = 0;
    const Ijk n{{ct.dims[2], ct.dims[1], ct.dims[0]}};
    for (int64_t k = 0; k < n[2]; ++k)
      for (int64_t j = 0; j < n[1]; ++j)
        for (int64_t i = 0; i < n[0]; ++i) {
          const Ijk c{{i, j, k}};
          Ijk m{};
          for (int a = 0; a < 3; ++a) m[r.axis[a]] = r.flip[a] ? n[a] - 1 - c[a] : c[a];
          wrong += out.at(k, j, i) != stored.at(m[2], m[1], m[0]);
        }
    BOOST_CHECK_MESSAGE(wrong == 0, wrong << " voxels wrong for axes " << r.axes()[0] << r.axes()[1] << r.axes()[2]);
  }
}

BOOST_AUTO_TEST_CASE(orientation_codes_follow_nifti_ras) {
  Grid g = make_grid({4, 4, 4}, {1, 1, 1});
  BOOST_CHECK_EQUAL(orientation_code(g), "RAS");
  g.affine[0][0] = -1, g.affine[1][1] = -1;
  BOOST_CHECK_EQUAL(orientation_code(g), "LPS");
  g.affine[2][2] = -1;
  BOOST_CHECK_EQUAL(orientation_code(g), "LPI");
  // columns i and j swapped: i runs along y, j along x
  const Grid swapped{{{4, 4, 4}}, {{1, 1, 1}}, {{{{0, 3, 0, 0}}, {{-2, 0, 0, 0}}, {{0, 0, 1, 0}}, {{0, 0, 0, 1}}}}};
  BOOST_CHECK_EQUAL(orientation_code(swapped), "PRS");
  BOOST_CHECK_EQUAL(orientation_code(ct_grid()), "RAS");  // slightly oblique: the dominant direction

  AxisReorientation r;
  r.axis = {2, 0, 1};
  r.flip = {true, false, true};
  BOOST_CHECK((r.axes() == std::vector<std::string>{"-k", "i", "-j"}));
  const auto j = reorientation_json(r);
  BOOST_CHECK(j["permutation"] == nlohmann::json({2, 0, 1}));
  BOOST_CHECK(j["flip"] == nlohmann::json({true, false, true}));
  BOOST_CHECK(reorientation_json(std::nullopt).is_null());
}

BOOST_AUTO_TEST_CASE(physically_different_grids_are_not_reorientations) {
  const Grid ct = ct_grid();
  AxisReorientation flip_i;
  flip_i.flip = {true, false, false};
  const Grid flipped = store_permuted(Volume<int32_t>{ct, std::vector<int32_t>(size_t(ct.voxels()))}, flip_i).grid;
  BOOST_REQUIRE(find_axis_reorientation(ct, flipped));

  Grid g = flipped;  // the data flipped and the column negated, but the origin left: a mirror image
  g.affine[0][3] = ct.affine[0][3], g.affine[1][3] = ct.affine[1][3];
  BOOST_CHECK(!find_axis_reorientation(ct, g));
  g = flipped;
  g.affine[2][3] += 0.5;  // shifted half a millimetre
  BOOST_CHECK(!find_axis_reorientation(ct, g));
  g = flipped;
  for (int r = 0; r < 3; ++r) g.affine[r][2] *= 2.0 / 2.5;  // other slice spacing
  g.spacing[0] = 2.0;
  BOOST_CHECK(!find_axis_reorientation(ct, g));
  g = flipped;
  g.dims[0] -= 1;  // other field of view
  BOOST_CHECK(!find_axis_reorientation(ct, g));
  g = flipped;  // rotated another 5 degrees about z: oblique relative to the CT
  const double c = std::cos(0.0873), s = std::sin(0.0873);
  for (int col = 0; col < 4; ++col) {
    const double x = g.affine[0][col], y = g.affine[1][col];
    g.affine[0][col] = c * x - s * y, g.affine[1][col] = s * x + c * y;
  }
  BOOST_CHECK(!find_axis_reorientation(ct, g));

  // the tolerance: float32 round-off passes, a tenth of a micrometre more does not
  g = flipped;
  g.affine[0][3] += 5e-5;
  BOOST_CHECK(find_axis_reorientation(ct, g));
  g.affine[0][3] += 1e-4;
  BOOST_CHECK(!find_axis_reorientation(ct, g));
}

BOOST_AUTO_TEST_CASE(conform_mask_to_grid_reorients_or_refuses_with_one_line) {
  const Volume<int32_t> truth = random_labels(ct_grid(), 3);

  Volume<int32_t> same = truth;
  BOOST_CHECK(!conform_mask_to_grid(truth.grid, "ct.nii.gz", same, "mask.nii.gz"));
  BOOST_CHECK(same.data == truth.data);

  AxisReorientation r;
  r.axis = {1, 2, 0};
  r.flip = {false, true, false};
  Volume<int32_t> stored = store_permuted(truth, r);
  const auto done = conform_mask_to_grid(truth.grid, "ct.nii.gz", stored, "mask.nii.gz");
  BOOST_REQUIRE(done);
  BOOST_CHECK(done->axis == r.axis && done->flip == r.flip);
  BOOST_CHECK_EQUAL(done->to, "RAS");
  BOOST_CHECK_EQUAL(done->from, "SRP");  // stored i = CT k (S), stored j = CT i (R), stored k = CT -j (P)
  BOOST_CHECK(stored.data == truth.data);
  BOOST_CHECK(grid_difference(stored.grid, truth.grid, 0.0).empty());  // exactly the CT's grid
  const std::string note = reorientation_note(*done, "mask.nii.gz");
  BOOST_TEST_MESSAGE(note);
  BOOST_CHECK_EQUAL(note, 
                    "mask.nii.gz: mask reoriented SRP -> RAS to the CT's grid (lossless: CT (i,j,k) = mask (j,-k,i))");

  Volume<int32_t> shifted = store_permuted(truth, r);
  shifted.grid.affine[1][3] += 3.0;
  const std::string msg = error_of([&] { conform_mask_to_grid(truth.grid, "ct.nii.gz", shifted, "seg.nii"); });
  BOOST_TEST_MESSAGE(msg);
  BOOST_CHECK(msg.find('\n') == std::string::npos);
  for (const char* part : {"grid mismatch (dimensions differ)", "ct.nii.gz is 5x6x7", "seg.nii is 7x5x6",
                           "only a reordering or reversal"})
    BOOST_CHECK_MESSAGE(msg.find(part) != std::string::npos, "'" << part << "' not in: " << msg);
}
