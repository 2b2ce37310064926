#pragma once
// The accuracy measure used throughout: max |a - b| / max |b| (b the reference).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

namespace volfeat::test {

template <class A, class B>
double relative_error(const std::vector<A>& got, const std::vector<B>& want) {
  if (got.size() != want.size()) return INFINITY;
  double err = 0, scale = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double g = double(got[i]), w = double(want[i]);
    if (std::isnan(g) != std::isnan(w)) return INFINITY;
    if (std::isnan(w)) continue;
    err = std::max(err, std::abs(g - w));
    scale = std::max(scale, std::abs(w));
  }
  return scale > 0 ? err / scale : err;
}

// Values in [-1, 1) from a fixed seed, on a 2^-20 grid so that float holds them exactly: an exact
// op (max, copy, ReLU) must then agree with the double reference to the bit.
inline std::vector<double> random_values(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<double> v(n);
  for (auto& x : v) x = double(int64_t(rng() >> 43) - (int64_t(1) << 20)) * 0x1.0p-20;
  return v;
}

}  // namespace volfeat::test
