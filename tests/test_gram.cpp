// The fixed-order Gram GEMM behind channel_gram (include/volfeat/pipeline/fixed_order_gram.hpp): against
// the plain triple loop channel_gram used to be (within 1e-12 of max |K|; the count of entries that are
// not the same bits is printed), and bit-identical across OpenMP thread counts (1, 2) and misaligned
// input offsets, over shapes with channel counts off the 4 x 8 register tile, a sampling stride (more
// rows than kCkaMaxVoxels) and panels of fewer rows than kKc.
#define BOOST_TEST_MODULE gram
#include <boost/test/unit_test.hpp>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "volfeat/core/random.hpp"
#include "volfeat/pipeline/fixed_order_gram.hpp"
#include "volfeat/pipeline/similarity.hpp"

using namespace volfeat;

namespace {

struct Shape {
  long count, c, step;
};
// c = 1, 3, 13 (partial tiles), 37, 64, 130; 520 channels over 130 rows is big enough for the tiles to
// spread over the threads (fixed_order_gram.hpp's threshold).
const std::vector<Shape> kShapes{{1, 1, 1},   {7, 3, 1},    {200, 6, 1},  {129, 13, 1},
                                 {300, 37, 2}, {260, 64, 1}, {600, 130, 1}, {130, 520, 1},
                                 {kCkaMaxVoxels + 900, 20, 2}};

// The plain loop: sample by sample, K[p][q] += (w f_p) f_q.
std::vector<double> naive_gram(const double* rows, const double* weights, long count, long step, long c) {
  std::vector<double> k(size_t(c * c), 0.0);
  for (long i = 0; i < count; i += step) {
    const double* f = rows + i * c;
    for (long p = 0; p < c; ++p) {
      const double wf = weights[i] * f[p];
      for (long q = 0; q < c; ++q) k[size_t(p * c + q)] += wf * f[q];
    }
  }
  return k;
}

struct Data {
  std::vector<double> rows, weights;
};
Data gram_data(const Shape& s) {
  Rng rng(uint64_t(s.count * 1000 + s.c));
  Data d{std::vector<double>(size_t(s.count * s.c)), std::vector<double>(size_t(s.count))};
  for (double& v : d.rows) v = rng.normal();
  for (double& w : d.weights) w = 0.25 + std::fabs(rng.normal());
  return d;
}

// Run with `threads` OpenMP threads on copies of the input placed `offset` doubles into their buffers.
std::vector<double> gram_at(const Data& d, const Shape& s, int threads, size_t offset) {
  std::vector<double> rows(d.rows.size() + offset), weights(d.weights.size() + offset);
  std::copy(d.rows.begin(), d.rows.end(), rows.begin() + long(offset));
  std::copy(d.weights.begin(), d.weights.end(), weights.begin() + long(offset));
  const int before = omp_get_max_threads();
  omp_set_num_threads(threads);
  auto k = fixed_order_weighted_gram(rows.data() + offset, weights.data() + offset, s.count, s.step, s.c);
  omp_set_num_threads(before);
  return k;
}

bool same_bits(const std::vector<double>& a, const std::vector<double>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(double)) == 0;
}

}  // namespace

BOOST_AUTO_TEST_CASE(against_the_plain_loop) {
  for (const Shape& s : kShapes) {
    BOOST_TEST_CONTEXT("count " << s.count << ", c " << s.c << ", step " << s.step) {
      const Data d = gram_data(s);
      const auto want = naive_gram(d.rows.data(), d.weights.data(), s.count, s.step, s.c);
      const auto got = gram_at(d, s, 1, 0);
      double scale = 0;
      for (double v : want) scale = std::max(scale, std::fabs(v));
      size_t differing = 0;
      for (size_t i = 0; i < want.size(); ++i) {
        BOOST_TEST(std::fabs(got[i] - want[i]) <= 1e-12 * scale);
        differing += got[i] != want[i];
      }
      BOOST_TEST_MESSAGE("c " << s.c << ": " << differing << " of " << want.size() << " entries differ from the plain loop");
    }
  }
}

BOOST_AUTO_TEST_CASE(same_bits_for_any_threads_and_alignment) {
  for (const Shape& s : kShapes) {
    BOOST_TEST_CONTEXT("count " << s.count << ", c " << s.c << ", step " << s.step) {
      const Data d = gram_data(s);
      const auto ref = gram_at(d, s, 1, 0);
      for (int threads : {1, 2})
        for (size_t offset : {0, 1, 3})
          BOOST_TEST(same_bits(gram_at(d, s, threads, offset), ref), threads << " thread(s), offset " << offset);
    }
  }
}

// channel_gram (centred) and CKA through it: the same bits with 1 and 2 threads and a shifted input.
BOOST_AUTO_TEST_CASE(channel_gram_and_cka_reproducible) {
  const Shape s{130, 520, 1};
  const Data d = gram_data(s);
  Data e = d;
  for (double& v : e.rows) v = v * v - std::sin(v);  // another feature set over the same voxels
  std::vector<double> shifted(d.rows.size() + 1);
  std::copy(d.rows.begin(), d.rows.end(), shifted.begin() + 1);
  omp_set_num_threads(1);
  const ChannelGram a1 = channel_gram(d.rows.data(), d.weights.data(), s.count, s.c);
  omp_set_num_threads(2);
  const ChannelGram a2 = channel_gram(shifted.data() + 1, d.weights.data(), s.count, s.c);
  BOOST_TEST(same_bits(a1.k, a2.k));
  const ChannelGram b = channel_gram(e.rows.data(), d.weights.data(), s.count, s.c);
  const double cka1 = linear_cka(a1, b), cka2 = linear_cka(a2, b);
  BOOST_TEST(std::memcmp(&cka1, &cka2, sizeof(double)) == 0);
  BOOST_TEST(std::fabs(linear_cka(a1, a1) - 1) <= 1e-12);
}
