#pragma once
// The statistics of the landmark experiment: a paired t-test of the errors before vs after matching,
// with Student's t CDF from the regularised incomplete beta function.
#include <algorithm>
#include <cmath>
#include <vector>

#include "volfeat/core/error.hpp"

namespace volfeat {

// The regularised incomplete beta function I_x(a, b), by its continued fraction (modified Lentz),
// on the side of x where it converges fast (I_x(a,b) = 1 - I_{1-x}(b,a)).
inline double regularized_incomplete_beta(double a, double b, double x) {
  if (!(a > 0) || !(b > 0)) fail("incomplete beta: a and b must be > 0 (got ", a, ", ", b, ")");
  if (std::isnan(x)) return x;
  if (x <= 0) return 0;
  if (x >= 1) return 1;
  if (x > (a + 1) / (a + b + 2)) return 1 - regularized_incomplete_beta(b, a, 1 - x);
  const double log_front = std::lgamma(a + b) - std::lgamma(a) - std::lgamma(b) + a * std::log(x) + b * std::log1p(-x);
  const double tiny = 1e-300, eps = 1e-16;
  double c = 1, d = 1 - (a + b) * x / (a + 1);
  if (std::fabs(d) < tiny) d = tiny;
  d = 1 / d;
  double f = d;
  for (int m = 1; m <= 10000; ++m) {
    for (int step = 0; step < 2; ++step) {
      const double num = step == 0 ? m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m))
                                   : -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1));
      d = 1 + num * d;
      if (std::fabs(d) < tiny) d = tiny;
      c = 1 + num / c;
      if (std::fabs(c) < tiny) c = tiny;
      d = 1 / d;
      const double delta = c * d;
      f *= delta;
      if (step == 1 && std::fabs(delta - 1) < eps) return std::exp(log_front) * f / a;
    }
  }
  return std::exp(log_front) * f / a;
}

// CDF of Student's t distribution with df degrees of freedom: for t > 0, 1 - I_{df/(df+t^2)}(df/2, 1/2) / 2.
inline double student_t_cdf(double t, double df) {
  if (!(df > 0)) fail("t distribution: df must be > 0 (got ", df, ")");
  if (std::isnan(t)) return t;
  if (std::isinf(t)) return t > 0 ? 1 : 0;
  const double tail = 0.5 * regularized_incomplete_beta(df / 2, 0.5, df / (df + t * t));
  return t > 0 ? 1 - tail : tail;
}

struct PairedTTest {
  size_t n = 0;
  double mean_diff = NAN, sd_diff = NAN;  // of a - b (sample sd, n - 1)
  double t = NAN, df = NAN, p = NAN;      // two-sided
};

// Paired t-test of a vs b: t = mean(a - b) / (sd(a - b) / sqrt(n)), df = n - 1, two-sided p. With
// every difference equal: t = +-inf and p = 0 when the mean is non-zero, NaN when all differences are 0.
inline PairedTTest paired_t_test(const std::vector<double>& a, const std::vector<double>& b) {
  if (a.size() != b.size()) fail("paired t-test: ", a.size(), " vs ", b.size(), " values");
  PairedTTest r;
  r.n = a.size();
  if (r.n == 0) return r;
  double mean = 0;
  for (size_t i = 0; i < r.n; ++i) mean += a[i] - b[i];
  mean /= double(r.n);
  r.mean_diff = mean;
  if (r.n < 2) return r;
  double ss = 0;
  for (size_t i = 0; i < r.n; ++i) ss += (a[i] - b[i] - mean) * (a[i] - b[i] - mean);
  r.sd_diff = std::sqrt(ss / double(r.n - 1));
  r.df = double(r.n - 1);
  const double se = r.sd_diff / std::sqrt(double(r.n));
  // Differences equal up to round-off count as equal.
  if (!(se > 1e-12 * std::max(1.0, std::fabs(mean)))) {
    if (mean != 0 && std::fabs(mean) > 1e-12) r.t = mean > 0 ? INFINITY : -INFINITY, r.p = 0;
    return r;
  }
  r.t = mean / se;
  r.p = regularized_incomplete_beta(r.df / 2, 0.5, r.df / (r.df + r.t * r.t));
  return r;
}

inline void mean_sd(const std::vector<double>& v, double& mean, double& sd) {
  mean = sd = NAN;
  if (v.empty()) return;
  double s = 0;
  for (double x : v) s += x;
  mean = s / double(v.size());
  if (v.size() < 2) return;
  double ss = 0;
  for (double x : v) ss += (x - mean) * (x - mean);
  sd = std::sqrt(ss / double(v.size() - 1));
}

}  // namespace volfeat
