// Every Cpu primitive against the naive reference over the shared problem list, in float and double.
#define BOOST_TEST_MODULE primitives_cpu
#include <boost/mpl/list.hpp>

#include "support/cpu_isa_guard.hpp"
#include "support/primitive_checks.hpp"
#include "volfeat/backend/cpu.hpp"

using namespace volfeat;
using namespace volfeat::test;

using Scalars = boost::mpl::list<float, double>;

BOOST_AUTO_TEST_CASE_TEMPLATE(conv3d_matches_reference, T, Scalars) {
  for (const auto& p : conv_problems()) check_conv<Cpu, T>(p);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(batchnorm_relu_match_reference, T, Scalars) {
  for (const Dims& d : elementwise_shapes()) check_batchnorm_relu<Cpu, T>(d);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(add_matches_reference, T, Scalars) {
  for (const Dims& d : elementwise_shapes()) check_add<Cpu, T>(d);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(pools_match_reference, T, Scalars) {
  for (const auto& p : pool_problems()) {
    check_maxpool<Cpu, T>(p);
    check_avgpool<Cpu, T>(p);
  }
  for (const auto& p : maxpool_only_problems()) check_maxpool<Cpu, T>(p);
  for (const auto& p : adaptive_problems()) check_adaptive<Cpu, T>(p);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(concat_matches_reference, T, Scalars) { check_concat<Cpu, T>(); }

BOOST_AUTO_TEST_CASE(maxpool_propagates_nan_and_treats_padding_as_minus_infinity) {
  // All-negative input: a window that overlaps the padding must still return a negative value.
  Tensor<Cpu, float> x({1, 2, 2, 2, 1});
  for (Index i = 0; i < 8; ++i) x.data()[i] = -1.0f - float(i);
  x.data()[7] = NAN;
  MaxPool3d<Cpu, float> pool(WindowGeometry::cube(3, 2, 1));
  Tensor<Cpu, float> y(pool.output_dims(x.dims()));
  pool.forward(x.view(), y.view());
  BOOST_TEST(y.dims().voxels() == 1);
  BOOST_TEST(std::isnan(y.data()[0]));
  x.data()[7] = -8.0f;
  pool.forward(x.view(), y.view());
  BOOST_TEST(y.data()[0] == -1.0f);
}

BOOST_AUTO_TEST_CASE(conv_rejects_mismatched_views) {
  Conv3d<Cpu, float> conv({2, 3, WindowGeometry::cube(3, 1, 1)}, std::vector<double>(2 * 3 * 27, 0.5));
  Tensor<Cpu, float> x({1, 4, 4, 4, 2}), y({1, 4, 4, 4, 4});
  BOOST_CHECK_THROW(conv.forward(x.view(), y.view()), Error);
  Tensor<Cpu, float> bad_in({1, 4, 4, 4, 5});
  BOOST_CHECK_THROW(conv.output_dims(bad_in.dims()), Error);
}
