// The shared trilinear sampler (include/volfeat/pipeline/trilinear.hpp), used by resample_linear and by
// the landmark target (transform_linear), against a naive reference: the sum over the 8 corners of
// (product of the three 1-D weights) x value, corner by corner (the landmark code's old loop). Over a
// list of shapes (degenerate axes of 1 voxel, odd and even sizes) and positions inside, on the edges
// and outside the volume: equal within 1e-12 relative in double, and within one float ulp once stored
// as float (in practice equal: the count of differing voxels is printed).
#define BOOST_TEST_MODULE trilinear
#include <boost/test/unit_test.hpp>
#include <array>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "volfeat/pipeline/landmarks/geometry.hpp"
#include "volfeat/pipeline/resample.hpp"
#include "volfeat/pipeline/trilinear.hpp"

using namespace volfeat;

namespace {

const std::vector<std::array<int64_t, 3>> kShapes{{1, 1, 1}, {1, 4, 5}, {2, 3, 4}, {5, 7, 3}, {9, 4, 11}, {16, 16, 16}};

Volume<float> random_volume(const std::array<int64_t, 3>& dims, unsigned seed) {
  Grid g;
  g.dims = dims;
  g.spacing = {1.5, 0.8, 1.1};
  g.affine = {{{{0, 0, 1.5, 3}}, {{0, 0.8, 0, -7}}, {{1.1, 0, 0, 2}}, {{0, 0, 0, 1}}}};  // (i,j,k) = (W,H,D)
  Volume<float> v{g, std::vector<float>(size_t(g.voxels()))};
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1000.f, 2000.f);
  for (float& x : v.data) x = u(rng);
  return v;
}

// The naive reference: 8 corners, weight = product of the 1-D weights, summed in corner order.
template <class Fetch>
double naive_trilinear(const Fetch& at, const LinearTap& d, const LinearTap& h, const LinearTap& w) {
  double acc = 0;
  for (int a = 0; a < 2; ++a)
    for (int b = 0; b < 2; ++b)
      for (int c = 0; c < 2; ++c) {
        const double wgt = (a ? d.t : 1 - d.t) * (b ? h.t : 1 - h.t) * (c ? w.t : 1 - w.t);
        acc += wgt * at(a ? d.i1 : d.i0, b ? h.i1 : h.i0, c ? w.i1 : w.i0);
      }
  return acc;
}

// |a - b| within one ulp of float at the larger magnitude.
bool within_float_ulp(float a, float b) {
  return std::fabs(double(a) - double(b)) <= double(std::nextafter(std::max(std::fabs(a), std::fabs(b)), INFINITY)) -
                                                 double(std::max(std::fabs(a), std::fabs(b)));
}

}  // namespace

BOOST_AUTO_TEST_CASE(taps) {
  // floor taps: negative and integer positions
  const LinearTap f = floor_tap(-0.25);
  BOOST_TEST(f.i0 == -1);
  BOOST_TEST(f.i1 == 0);
  BOOST_TEST(f.t == 0.75);
  const LinearTap g = floor_tap(3.0);
  BOOST_TEST(g.i0 == 3);
  BOOST_TEST(g.t == 0.0);
  // clamped taps: below 0 -> voxel 0; past the end -> the last voxel twice
  const LinearTap c = clamped_tap(-0.3, 5);
  BOOST_TEST(c.i0 == 0);
  BOOST_TEST(c.i1 == 1);
  BOOST_TEST(c.t == 0.0);
  const LinearTap e = clamped_tap(4.6, 5);
  BOOST_TEST(e.i0 == 4);
  BOOST_TEST(e.i1 == 4);
  const LinearTap one = clamped_tap(0.7, 1);
  BOOST_TEST(one.i0 == 0);
  BOOST_TEST(one.i1 == 0);
}

// Fill outside (the landmark target's convention), positions spread over and around the volume.
BOOST_AUTO_TEST_CASE(fill_outside_against_naive) {
  for (const auto& dims : kShapes) {
    BOOST_TEST_CONTEXT("shape " << dims[0] << "x" << dims[1] << "x" << dims[2]) {
      const Volume<float> v = random_volume(dims, unsigned(dims[0] * 100 + dims[1] * 10 + dims[2]));
      const double fill = -1000;
      auto at = [&](int64_t i, int64_t j, int64_t k) {
        const bool inside = i >= 0 && i < dims[0] && j >= 0 && j < dims[1] && k >= 0 && k < dims[2];
        return inside ? double(v.at(i, j, k)) : fill;
      };
      std::mt19937 rng(7);
      int differing_floats = 0, samples = 0;
      for (int s = 0; s < 4000; ++s) {
        std::array<double, 3> u{};
        for (size_t a = 0; a < 3; ++a) {
          std::uniform_real_distribution<double> pos(-1.5, double(dims[a]) + 0.5);
          u[a] = pos(rng);
          if (s % 5 == 0) u[a] = std::round(u[a]);  // on voxel centres (zero weights)
        }
        const LinearTap d = floor_tap(u[0]), h = floor_tap(u[1]), w = floor_tap(u[2]);
        const double got = trilinear(at, d, h, w), want = naive_trilinear(at, d, h, w);
        BOOST_TEST(got == want, boost::test_tools::tolerance(1e-12));
        BOOST_TEST(within_float_ulp(float(got), float(want)));
        differing_floats += float(got) != float(want);
        ++samples;
      }
      BOOST_TEST_MESSAGE("fill: " << differing_floats << " of " << samples << " samples differ as float");
    }
  }
}

// Edge clamping (resample_linear's convention), and resample_linear itself against the naive sum.
BOOST_AUTO_TEST_CASE(resample_against_naive) {
  for (const auto& dims : kShapes)
    for (double mm : {0.7, 1.0, 1.9}) {
      BOOST_TEST_CONTEXT("shape " << dims[0] << "x" << dims[1] << "x" << dims[2] << ", " << mm << " mm") {
        const Volume<float> v = random_volume(dims, 3);
        const Volume<float> r = resample_linear(v, mm);
        auto at = [&](int64_t i, int64_t j, int64_t k) { return double(v.at(i, j, k)); };
        int differing = 0;
        for (int64_t d = 0; d < r.grid.dims[0]; ++d)
          for (int64_t h = 0; h < r.grid.dims[1]; ++h)
            for (int64_t w = 0; w < r.grid.dims[2]; ++w) {
              std::array<LinearTap, 3> t;
              const int64_t idx[3] = {d, h, w};
              for (size_t a = 0; a < 3; ++a) {
                // by hand: src = (i + 0.5) * new/old - 0.5, clamped to [0, n - 1]
                const double src = std::max(0.0, (double(idx[a]) + 0.5) * (r.grid.spacing[a] / v.grid.spacing[a]) - 0.5);
                const int64_t i0 = std::min<int64_t>(int64_t(std::floor(src)), dims[a] - 1);
                t[a] = {i0, std::min<int64_t>(i0 + 1, dims[a] - 1), src - double(i0)};
              }
              const float want = float(naive_trilinear(at, t[0], t[1], t[2]));
              const float got = r.at(d, h, w);
              BOOST_TEST(within_float_ulp(got, want));
              differing += got != want;
            }
        BOOST_TEST_MESSAGE("resample: " << differing << " of " << r.grid.voxels() << " voxels differ as float");
      }
    }
}

// A function linear in (d, h, w) is reproduced exactly (to round-off) anywhere inside the volume.
BOOST_AUTO_TEST_CASE(linear_function_reproduced) {
  const std::array<int64_t, 3> dims{6, 5, 7};
  auto f = [](double d, double h, double w) { return 3.0 + 2.0 * d - 1.5 * h + 0.25 * w; };
  auto at = [&](int64_t i, int64_t j, int64_t k) { return f(double(i), double(j), double(k)); };
  std::mt19937 rng(11);
  for (int s = 0; s < 500; ++s) {
    std::array<double, 3> u{};
    for (size_t a = 0; a < 3; ++a) u[a] = std::uniform_real_distribution<double>(0, double(dims[a] - 1))(rng);
    const double got = trilinear(at, floor_tap(u[0]), floor_tap(u[1]), floor_tap(u[2]));
    BOOST_TEST(got == f(u[0], u[1], u[2]), boost::test_tools::tolerance(1e-12));
  }
}

// The landmark target through the sampler: a translation by whole voxels on an axis-aligned grid moves
// every voxel exactly, with the fill where the template ends.
BOOST_AUTO_TEST_CASE(whole_voxel_translation_is_exact) {
  const Volume<float> v = random_volume({9, 4, 11}, 5);
  // world x = 1.5 d, y = 0.8 h, z = 1.1 w (+ origin): 2 voxels along D are 3 mm along x
  const RigidTransform t = rigid_transform({0}, Vec3{3.0, 0, 0}, grid_centre_world(v.grid));
  const Volume<float> moved = transform_linear(v, t, -1000.f);
  for (int64_t d = 0; d < 9; ++d)
    for (int64_t h = 0; h < 4; ++h)
      for (int64_t w = 0; w < 11; ++w) BOOST_TEST(moved.at(d, h, w) == (d >= 2 ? v.at(d - 2, h, w) : -1000.f));
}
