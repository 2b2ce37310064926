#pragma once
// The floats every bf16 rounding is checked on (test_bf16 against vcvtneps2bf16, test_winograd's bf16 V store
// against round_to_bf16): random values over a wide range, then the special cases.
#include <cmath>
#include <iterator>
#include <limits>
#include <vector>

#include "support/compare.hpp"

namespace volfeat::test {

inline std::vector<float> bf16_rounding_cases(size_t random_count, uint64_t seed) {
  std::vector<float> x;
  for (double v : random_values(random_count, seed)) x.push_back(float(v * 1e3));
  const float specials[] = {0.f,
                            -0.f,
                            1.f,
                            -1.f,
                            1.00390625f,                       // 1 + 2^-8: a tie between two bf16, to even (1)
                            1.01171875f,                       // 1 + 3*2^-8: a tie, to even (1 + 2^-6)
                            std::nextafter(1.00390625f, 2.f),  // just above the tie: up
                            3.3895314e38f,                     // the largest finite bf16
                            std::numeric_limits<float>::max(),
                            std::numeric_limits<float>::infinity(),
                            -std::numeric_limits<float>::infinity(),
                            std::numeric_limits<float>::quiet_NaN(),
                            -std::numeric_limits<float>::quiet_NaN(),
                            std::numeric_limits<float>::signaling_NaN(),
                            std::numeric_limits<float>::denorm_min(),
                            -1e-40f,
                            std::numeric_limits<float>::min(),
                            -std::numeric_limits<float>::min()};
  x.insert(x.end(), std::begin(specials), std::end(specials));
  return x;
}

}  // namespace volfeat::test
