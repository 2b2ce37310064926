// Landmark matching (include/volfeat/pipeline/landmarks.hpp): the geometry (world <-> voxel, the rigid
// transform, resampling consistent with the transformed landmarks), the automatic landmarks, the
// statistics (incomplete beta, t CDF against closed forms and tabulated quantiles, a hand-computed
// paired t-test), identity -> zero error (patch and dense features), and a small end-to-end run on the
// phantom within a time budget.
#define BOOST_TEST_MODULE landmarks
#include <boost/test/unit_test.hpp>
#include <chrono>
#include <cmath>
#include <sstream>

#include "support/sanitized.hpp"
#include "volfeat/backend/cpu.hpp"
#include "volfeat/pipeline/landmarks.hpp"
#include "volfeat/pipeline/phantom.hpp"
#include "../experiments/landmark_args.hpp"

using namespace volfeat;
using volfeat::test::kSanitized;

namespace {

// A grid whose voxel axes are permuted, flipped, anisotropic and shifted, so every affine path matters.
Grid oblique_grid(std::array<int64_t, 3> dims) {
  Grid g;
  g.dims = dims;
  g.spacing = {1.2, 1.0, 0.9};  // D, H, W
  // columns (i, j, k) = (W, H, D): W runs along -y, H along +z, D along +x (plus a small shear-free tilt)
  const double c = std::cos(0.2), s = std::sin(0.2);
  g.affine = {{{{0, 0, 1.2 * c, -20}}, {{-0.9, 0, 1.2 * s, 35}}, {{0, 1.0, 0, 7}}, {{0, 0, 0, 1}}}};
  return g;
}

// Two labels: an off-centre ellipsoid (1) and a slanted slab (2), inside a CT with some structure.
std::pair<Volume<float>, Volume<int32_t>> blob_volume() {
  const Grid g = oblique_grid({40, 44, 48});
  Volume<float> ct{g, std::vector<float>(size_t(g.voxels()))};
  Volume<int32_t> lab{g, std::vector<int32_t>(size_t(g.voxels()), 0)};
  for (int64_t d = 0; d < 40; ++d)
    for (int64_t h = 0; h < 44; ++h)
      for (int64_t w = 0; w < 48; ++w) {
        const double a = (d - 17.0) / 7.0, b = (h - 24.0) / 9.0, e = (w - 20.0) / 6.0;
        int32_t l = 0;
        if (a * a + b * b + e * e <= 1) l = 1;
        else if (std::fabs(double(d) + 0.5 * double(w) - 40.0) < 2.5 && h > 8 && h < 20 && w > 20 && w < 40) l = 2;
        lab.at(d, h, w) = l;
        ct.at(d, h, w) = float(l == 1 ? 800 : l == 2 ? 300 : 10.0 * std::sin(0.3 * double(d + h + w)));
      }
  return {ct, lab};
}

double dist(const Vec3& a, const Vec3& b) {
  return std::sqrt((a[0] - b[0]) * (a[0] - b[0]) + (a[1] - b[1]) * (a[1] - b[1]) + (a[2] - b[2]) * (a[2] - b[2]));
}

}  // namespace

// ----------------------------------------------------------------------------------- geometry

BOOST_AUTO_TEST_CASE(world_voxel_round_trip) {
  const Grid g = oblique_grid({40, 44, 48});
  const Vec3 v{3.25, 17.5, 41.0};
  const Vec3 x = voxel_to_world(g, v);
  // by hand: x = col_i * w + col_j * h + col_k * d + origin, with (i, j, k) = (w, h, d)
  for (size_t r = 0; r < 3; ++r)
    BOOST_TEST(x[r] == g.affine[r][0] * v[2] + g.affine[r][1] * v[1] + g.affine[r][2] * v[0] + g.affine[r][3],
               boost::test_tools::tolerance(1e-12));
  const Vec3 back = world_to_voxel(g, x);
  for (size_t a = 0; a < 3; ++a) BOOST_TEST(back[a] == v[a], boost::test_tools::tolerance(1e-9));
}

BOOST_AUTO_TEST_CASE(rotations) {
  // 90 degrees about z maps x to y; Euler x,y,z order: R = Rz Ry Rx
  const Mat3 rz = rotation_euler_xyz(0, 0, 90);
  RigidTransform t;
  t.rotation = rz;
  const Vec3 y = t.apply({1, 0, 0});
  BOOST_TEST(std::fabs(y[0]) < 1e-12);
  BOOST_TEST(std::fabs(y[1] - 1) < 1e-12);
  // 120 degrees about (1,1,1) cycles the axes x -> y -> z
  t.rotation = rotation_axis_angle({1, 1, 1}, 120);
  const Vec3 z = t.apply({0, 1, 0});
  BOOST_TEST(std::fabs(z[2] - 1) < 1e-12);
  BOOST_TEST(std::fabs(z[0]) + std::fabs(z[1]) < 1e-12);
  // Euler angles applied x first: (90, 0, 90) takes y -> z (by Rx) -> z (Rz leaves z)
  t.rotation = rotation_euler_xyz(90, 0, 90);
  const Vec3 w = t.apply({0, 1, 0});
  BOOST_TEST(std::fabs(w[2] - 1) < 1e-12);
  // apply and inverse, with a centre and a translation
  const RigidTransform p = rigid_transform({7, -11, 23}, Vec3{6, 4, -5}, {10, -3, 2});
  const Vec3 q{12.5, -40, 3};
  const Vec3 back = p.inverse(p.apply(q));
  for (size_t a = 0; a < 3; ++a) BOOST_TEST(back[a] == q[a], boost::test_tools::tolerance(1e-12));
  // rigid: distances are kept
  BOOST_TEST(dist(p.apply(q), p.apply({0, 0, 0})) == dist(q, {0, 0, 0}), boost::test_tools::tolerance(1e-12));
  // the centre only moves by the translation
  const Vec3 c = p.apply({10, -3, 2});
  BOOST_TEST(dist(c, {16, 1, -3}) < 1e-12);
  BOOST_CHECK_THROW(rigid_transform({1, 2}, Vec3{0, 0, 0}, Vec3{0, 0, 0}), Error);
  // the CLI's text forms (experiments/landmark_args.hpp)
  BOOST_CHECK_THROW(cli::parse_rigid_transform("1,2", "0,0,0", {0, 0, 0}), Error);
  BOOST_CHECK_THROW(cli::parse_rigid_transform("10", "1,x,2", {0, 0, 0}), Error);
  const RigidTransform parsed = cli::parse_rigid_transform("7,-11,23", "6,4,-5", {10, -3, 2});
  BOOST_TEST(bool(parsed.rotation == p.rotation));
  BOOST_TEST(bool(parsed.translation == p.translation));
  BOOST_TEST(parsed.text == "rotate 7,-11,23 deg about x,y,z around (10,-3,2) mm, then translate 6,4,-5 mm");
}

// The centroid of a transformed label is the transformed centroid (within 1 voxel), for both labels,
// on an oblique anisotropic grid; every transformed landmark lands on (or next to) its label in the
// resampled target; the CT moves with the labels.
BOOST_AUTO_TEST_CASE(transform_consistent_with_resampled_labels) {
  auto [ct, lab] = blob_volume();
  const RigidTransform t = rigid_transform({8, -5, 12}, Vec3{3, -2, 4}, grid_centre_world(lab.grid));
  const Volume<int32_t> moved = transform_nearest(lab, t);
  const Volume<float> moved_ct = transform_linear(ct, t, -1000.f);
  for (int32_t l : {1, 2}) {
    const Vec3 c0 = label_centroid(lab, l), c1 = label_centroid(moved, l);
    const Vec3 expect = world_to_voxel(lab.grid, t.apply(voxel_to_world(lab.grid, c0)));
    BOOST_TEST_MESSAGE("label " << l << ": centroid moved to (" << c1[0] << "," << c1[1] << "," << c1[2] << "), T(centroid) ("
                                << expect[0] << "," << expect[1] << "," << expect[2] << ")");
    for (size_t a = 0; a < 3; ++a) BOOST_TEST(std::fabs(c1[a] - expect[a]) < 1.0);
  }
  std::vector<std::string> skipped;
  const auto lms = automatic_landmarks(lab, {{"ball", 1}, {"slab", 2}}, t, 0, &skipped);
  BOOST_TEST(lms.size() == 14u);  // nothing touches the border
  BOOST_TEST(skipped.empty());
  for (const Landmark& lm : lms) {
    BOOST_TEST(dist(lm.true_world, t.apply(voxel_to_world(lab.grid, lm.voxel))) < 1e-9);
    if (lm.kind == "centroid") continue;
    BOOST_TEST(lab.at(lm.voxel[0], lm.voxel[1], lm.voxel[2]) == lm.label);
    // the transformed landmark is on its label in the target, up to one voxel of nearest-neighbour rounding
    bool near = false;
    for (int64_t a = -1; a <= 1; ++a)
      for (int64_t b = -1; b <= 1; ++b)
        for (int64_t c = -1; c <= 1; ++c) {
          const int64_t d = std::llround(lm.true_voxel[0]) + a, h = std::llround(lm.true_voxel[1]) + b,
                        w = std::llround(lm.true_voxel[2]) + c;
          if (d >= 0 && d < 40 && h >= 0 && h < 44 && w >= 0 && w < 48) near = near || moved.at(d, h, w) == lm.label;
        }
    BOOST_TEST(near, lm.name);
  }
  // the CT moved with the labels: the ball's value at the transformed ball centroid
  const Vec3 c = world_to_voxel(lab.grid, t.apply(voxel_to_world(lab.grid, label_centroid(lab, 1))));
  BOOST_TEST(moved_ct.at(std::llround(c[0]), std::llround(c[1]), std::llround(c[2])) == 800.f);
  // and outside the template there is fill
  BOOST_TEST(transform_linear(ct, rigid_transform({0}, Vec3{500, 0, 0}, {0, 0, 0}), -1000.f).at(0, 0, 0) == -1000.f);
}

BOOST_AUTO_TEST_CASE(identity_transform_resamples_exactly) {
  auto [ct, lab] = blob_volume();
  const RigidTransform id = rigid_transform({0}, Vec3{0, 0, 0}, grid_centre_world(lab.grid));
  BOOST_TEST(transform_linear(ct, id, -1000.f).data == ct.data);
  BOOST_TEST(transform_nearest(lab, id).data == lab.data);
}

BOOST_AUTO_TEST_CASE(automatic_landmark_definition) {
  // a box label 1 at d 5..14, h 3..8, w 10..29; label 2 touching the grid's low-D border
  Volume<int32_t> lab{make_grid({20, 12, 40}, {2.0, 1.0, 1.0}), std::vector<int32_t>(20 * 12 * 40, 0)};
  for (int64_t d = 5; d <= 14; ++d)
    for (int64_t h = 3; h <= 8; ++h)
      for (int64_t w = 10; w <= 29; ++w) lab.at(d, h, w) = 1;
  for (int64_t d = 0; d <= 2; ++d)
    for (int64_t h = 5; h <= 6; ++h)
      for (int64_t w = 33; w <= 35; ++w) lab.at(d, h, w) = 2;
  const RigidTransform id = rigid_transform({0}, Vec3{0, 0, 0}, {0, 0, 0});
  std::vector<std::string> skipped;
  const auto lms = automatic_landmarks(lab, {{"box", 1}, {"peg", 2}}, id, 0, &skipped);
  // kinds interleaved over the labels: box.centroid, peg.centroid, box.-D, (peg.-D skipped: border), box.+D, peg.+D, ...
  BOOST_TEST(lms.size() == 13u);
  BOOST_TEST(skipped.size() == 1u);
  BOOST_TEST(skipped.front().find("peg.-D") == 0u);
  BOOST_TEST(lms[0].name == "box.centroid");
  BOOST_TEST(lms[1].name == "peg.centroid");
  BOOST_TEST(lms[2].name == "box.-D");
  BOOST_TEST(lms[3].name == "box.+D");
  BOOST_TEST(lms[4].name == "peg.+D");
  auto find = [&](const std::string& n) {
    for (const auto& l : lms)
      if (l.name == n) return l.voxel;
    BOOST_FAIL("no landmark " + n);
    return Voxel{};
  };
  // centroid (9.5, 5.5, 19.5) rounds half away from zero
  BOOST_TEST((find("box.centroid") == Voxel{10, 6, 20}));
  // a face's voxel nearest the face's mean: -D face at d=5, centred at (5, 5.5, 19.5) -> (5, 5, 19) (first in scan order)
  BOOST_TEST((find("box.-D") == Voxel{5, 5, 19}));
  BOOST_TEST((find("box.+W") == Voxel{9, 5, 29}));
  BOOST_TEST((find("box.-H") == Voxel{9, 3, 19}));
  BOOST_TEST((find("peg.+D") == Voxel{2, 5, 34}));
  // world coordinates through the affine (spacing 2 mm along D)
  BOOST_TEST(lms[2].world[2] == 10.0);
  // the cap keeps the first N (both centroids first)
  const auto capped = automatic_landmarks(lab, {{"box", 1}, {"peg", 2}}, id, 2);
  BOOST_TEST(capped.size() == 2u);
  BOOST_TEST(capped[1].name == "peg.centroid");
  BOOST_CHECK_THROW(automatic_landmarks(lab, {{"none", 7}}, id), Error);
  // a transform that pushes a landmark out of the grid drops it
  std::vector<std::string> gone;
  const auto shifted = automatic_landmarks(lab, {{"box", 1}}, rigid_transform({0}, Vec3{25, 0, 0}, {0, 0, 0}), 0, &gone);
  BOOST_TEST(shifted.size() + gone.size() == 7u);
  BOOST_TEST(!gone.empty());
}

BOOST_AUTO_TEST_CASE(search_grid_and_patches) {
  const Grid g = make_grid({30, 30, 30}, {1.0, 1.0, 1.0});
  const auto c = search_candidates(g, {15, 15, 15}, 4.0, 2);
  // stride-2 lattice points within 4 mm: |(i,j,k)| <= 2 -> 1 + 6 + 12 + 8 + 6 = 33
  BOOST_TEST(c.size() == 33u);
  BOOST_TEST((c.front() == Voxel{15, 15, 15}));  // nearest first
  // clipped by the grid
  BOOST_TEST(search_candidates(g, {0, 0, 0}, 4.0, 2).size() == 11u);  // the octant i, j, k >= 0
  // a patch: voxel P/2 is the centre, outside is padding
  std::vector<float> data(30 * 30 * 30);
  for (size_t i = 0; i < data.size(); ++i) data[i] = float(i);
  const PatchSource s{data.data(), {30, 30, 30}, 1, {-7.f}};
  std::vector<float> patch(4 * 4 * 4);
  extract_patch(s, {1, 10, 20}, 4, patch.data());
  BOOST_TEST(patch[(2 * 4 + 2) * 4 + 2] == float((1 * 30 + 10) * 30 + 20));
  BOOST_TEST(patch[0] == -7.f);  // d = -1
  BOOST_TEST(patch[(1 * 4 + 0) * 4 + 0] == float((0 * 30 + 8) * 30 + 18));
}

// ----------------------------------------------------------------------------------- statistics

BOOST_AUTO_TEST_CASE(incomplete_beta_closed_forms) {
  for (double x : {0.01, 0.2, 0.5, 0.77, 0.999}) {
    BOOST_TEST(regularized_incomplete_beta(1, 1, x) == x, boost::test_tools::tolerance(1e-13));
    BOOST_TEST(regularized_incomplete_beta(3.5, 1, x) == std::pow(x, 3.5), boost::test_tools::tolerance(1e-12));
    BOOST_TEST(regularized_incomplete_beta(1, 2.5, x) == 1 - std::pow(1 - x, 2.5), boost::test_tools::tolerance(1e-12));
  }
  BOOST_TEST(regularized_incomplete_beta(7.3, 7.3, 0.5) == 0.5, boost::test_tools::tolerance(1e-13));
  BOOST_TEST(regularized_incomplete_beta(2, 3, 0) == 0.0);
  BOOST_TEST(regularized_incomplete_beta(2, 3, 1) == 1.0);
}

// Student's t CDF: closed forms for df = 1 (Cauchy), 2, 3 and 4, and the quantiles printed in every
// t table (t_{0.975} for df 1, 5, 7, 10; t_{0.95} for df 20, 30; t_{0.995} for df 5), to 1e-6.
BOOST_AUTO_TEST_CASE(student_t_cdf_known_values) {
  auto f1 = [](double t) { return 0.5 + std::atan(t) / M_PI; };
  auto f2 = [](double t) { return 0.5 + t / (2 * std::sqrt(2 + t * t)); };
  auto f3 = [](double t) {
    const double u = t / std::sqrt(3.0);
    return 0.5 + (u / (1 + u * u) + std::atan(u)) / M_PI;
  };
  auto f4 = [](double t) {
    const double q = 1 + t * t / 4;
    return 0.5 + 0.375 * (t / std::sqrt(q)) * (1 - t * t / (12 * q));
  };
  for (double t : {-8.0, -3.0, -1.2, -0.4, 0.0, 0.3, 0.7, 1.3, 2.5, 3.0869745, 12.0}) {
    BOOST_TEST(student_t_cdf(t, 1) == f1(t), boost::test_tools::tolerance(1e-12));
    BOOST_TEST(std::fabs(student_t_cdf(t, 2) - f2(t)) < 1e-12);
    BOOST_TEST(std::fabs(student_t_cdf(t, 3) - f3(t)) < 1e-12);
    BOOST_TEST(std::fabs(student_t_cdf(t, 4) - f4(t)) < 1e-12);
  }
  struct Q { double df, t, p; };
  for (const Q& q : {Q{1, 12.706204736174698, 0.975}, Q{5, 2.5705818356363146, 0.975}, Q{7, 2.364624251592785, 0.975},
                     Q{10, 2.2281388519649385, 0.975}, Q{20, 1.7247182429207857, 0.95}, Q{30, 1.6972608865939587, 0.95},
                     Q{5, 4.032142983557536, 0.995}}) {
    BOOST_TEST(std::fabs(student_t_cdf(q.t, q.df) - q.p) < 1e-6, "df " << q.df << " t " << q.t);
    BOOST_TEST(std::fabs(student_t_cdf(-q.t, q.df) - (1 - q.p)) < 1e-6);
  }
  // large df tends to the normal: Phi(1.959963984540054) = 0.975
  BOOST_TEST(std::fabs(student_t_cdf(1.959963984540054, 1e7) - 0.975) < 1e-6);
  BOOST_TEST(student_t_cdf(INFINITY, 3) == 1.0);
}

// before = 10 12 9 11 13, after = 8 9 9 10 10: differences 2 3 0 1 3, mean 1.8, sample variance 6.8 / 4 =
// 1.7, t = 1.8 / sqrt(1.7 / 5) = 3.08697453..., df 4, two-sided p = 2 (1 - F4(t)) with F4's closed form.
BOOST_AUTO_TEST_CASE(paired_t_test_hand_example) {
  const PairedTTest r = paired_t_test({10, 12, 9, 11, 13}, {8, 9, 9, 10, 10});
  BOOST_TEST(r.n == 5u);
  BOOST_TEST(r.mean_diff == 1.8, boost::test_tools::tolerance(1e-14));
  BOOST_TEST(r.sd_diff == std::sqrt(1.7), boost::test_tools::tolerance(1e-14));
  BOOST_TEST(r.df == 4.0);
  BOOST_TEST(r.t == 1.8 / std::sqrt(1.7 / 5), boost::test_tools::tolerance(1e-13));
  BOOST_TEST(std::fabs(r.t - 3.0869745325651587) < 1e-12);
  const double q = 1 + r.t * r.t / 4;
  const double f4 = 0.5 + 0.375 * (r.t / std::sqrt(q)) * (1 - r.t * r.t / (12 * q));
  BOOST_TEST(std::fabs(r.p - 2 * (1 - f4)) < 1e-12);
  BOOST_TEST(std::fabs(r.p - 0.036681989) < 1e-8);
  // swapped: t changes sign, p does not
  const PairedTTest s = paired_t_test({8, 9, 9, 10, 10}, {10, 12, 9, 11, 13});
  BOOST_TEST(s.t == -r.t, boost::test_tools::tolerance(1e-13));
  BOOST_TEST(s.p == r.p, boost::test_tools::tolerance(1e-12));
  // degenerate: equal differences
  const PairedTTest z = paired_t_test({1, 2, 3}, {1, 2, 3});
  BOOST_TEST(std::isnan(z.t));
  const PairedTTest c = paired_t_test({2, 3, 4}, {1, 2, 3});
  BOOST_TEST(std::isinf(c.t));
  BOOST_TEST(c.p == 0.0);
}

// ----------------------------------------------------------------------------------- matching

namespace {
std::vector<SchemeNetworks<Cpu, float>> networks(const std::vector<std::string>& schemes) {
  return inflate_scheme_networks<Cpu, float>(seeded_2d_init("densenet121", 0), schemes, {}, "");
}
}  // namespace

// Identity transform, zero translation: the target is the template, the unmoved position is a
// candidate, identical patches give identical features, so every landmark is matched exactly.
BOOST_AUTO_TEST_CASE(identity_matches_every_landmark_exactly) {
  Phantom ph = make_knee_phantom(0);
  const RigidTransform id = rigid_transform({0}, Vec3{0, 0, 0}, grid_centre_world(ph.ct.grid));
  const LandmarkInputs in = prepare_landmark_inputs(std::move(ph.ct), std::move(ph.labels), id, parse_normalization(kDefaultNormalize), -1000.f);
  BOOST_TEST(in.target_input == in.template_input);
  const auto lms = automatic_landmarks(in.template_labels, {{"femur", 1}, {"tibia", 2}}, id);
  BOOST_TEST(lms.size() == 12u);  // femur +D and tibia -D touch the border
  // Under the sanitizers one scheme (the weights differ, not the code): 60 s instead of 160 s there.
  const std::vector<std::string> schemes =
      kSanitized ? std::vector<std::string>{"random"} : std::vector<std::string>{"random", "i3d-mean"};
  const auto nets = networks(schemes);
  for (bool dense : {false, true}) {
    LandmarkOptions o;
    o.schemes = schemes;
    o.layers = {"shallow"};
    o.patches = {12};
    o.radius_mm = 4;
    o.stride = 2;
    o.dense = dense;
    Progress quiet(true);
    const LandmarkExperiment ex = run_landmark_matching(nets, in, lms, o, quiet);
    BOOST_TEST(ex.rows.size() == o.schemes.size() * 12u);
    for (const auto& r : ex.rows) {
      BOOST_TEST(r.error_before == 0.0);
      BOOST_TEST(r.error_after == 0.0, r.scheme << " " << r.landmark.name << (dense ? " dense" : ""));
      BOOST_TEST(r.feature_distance == 0.0);
      BOOST_TEST(r.candidates == 33u);
    }
    BOOST_TEST(ex.summary.size() == o.schemes.size());
    BOOST_TEST(std::isnan(ex.summary[0].test.t));  // all differences 0
  }
}

// The paper's setting, small: default transform, a shallow layer, a small patch. (Its speed belongs
// to benchmarks, not to a test: the time is printed, not asserted.)
BOOST_AUTO_TEST_CASE(end_to_end_on_the_phantom) {
  const auto t0 = std::chrono::steady_clock::now();
  Phantom ph = make_knee_phantom(0);
  const RigidTransform t = rigid_transform({10}, Vec3{6, 4, -5}, grid_centre_world(ph.ct.grid));
  const LandmarkInputs in = prepare_landmark_inputs(std::move(ph.ct), std::move(ph.labels), t, parse_normalization(kDefaultNormalize), -1000.f);
  const auto lms = automatic_landmarks(in.template_labels, {{"femur", 1}, {"tibia", 2}}, t);
  LandmarkOptions o;
  o.schemes = {"random"};
  o.layers = {"shallow", "deep"};  // deep does not fit a 12-voxel patch: reported, not run
  o.patches = {12};
  o.radius_mm = 15;
  // Under the sanitizers a coarser candidate grid: at stride 2 this took 1300 s there, at stride 4 (3024
  // forward passes) 54-64 s of a sanitized suite; stride 6 runs the same code on fewer candidates.
  o.stride = kSanitized ? 6 : 2;
  Progress quiet(true);
  const LandmarkExperiment ex = run_landmark_matching(networks({"random"}), in, lms, o, quiet);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  BOOST_TEST_MESSAGE("end to end: " << seconds << " s, " << ex.forward_passes << " forward passes");
  BOOST_TEST(ex.rows.size() == lms.size());
  BOOST_TEST(ex.summary.size() == 2u);
  BOOST_TEST(!ex.summary[1].feasible);
  BOOST_TEST(ex.summary[1].note.find("needs >= 13") != std::string::npos);
  const LandmarkSummary& s = ex.summary[0];
  BOOST_TEST(s.feasible);
  BOOST_TEST(s.n == lms.size());
  for (const auto& r : ex.rows) {
    BOOST_TEST(r.error_before > 0.0);
    BOOST_TEST(r.error_before < 15.0);  // every true position is inside the search radius
    BOOST_TEST(r.error_after >= r.floor - 1e-9);
    BOOST_TEST(std::isfinite(r.feature_distance));
  }
  BOOST_TEST(s.test.p >= 0.0);
  BOOST_TEST(s.test.p <= 1.0);
  // what the experiment is for: matching brings the landmarks closer on average
  BOOST_TEST(s.after_mean < s.before_mean);
  BOOST_TEST_MESSAGE("before " << s.before_mean << " mm, after " << s.after_mean << " mm, t " << s.test.t << ", p " << s.test.p);
  // the CSVs: a header plus one row per landmark / configuration
  const std::string csv = landmarks_csv(ex), summary = landmarks_summary_csv(ex);
  BOOST_TEST(std::count(csv.begin(), csv.end(), '\n') == long(lms.size() + 1));
  BOOST_TEST(std::count(summary.begin(), summary.end(), '\n') == 3L);
  BOOST_TEST(summary.find("random,deep,denseblock3,12,0,") != std::string::npos);
}
