#pragma once
// The matrices of 1D Winograd (Toom-Cook) correlations F(m, r), built in double at run time for the
// Winograd along W (winograd_along_w.hpp), whose phases need F(4, 1) .. F(4, 4).
#include <cmath>
#include <iterator>
#include <utility>
#include <vector>

#include "volfeat/core/error.hpp"

namespace volfeat::cpu {

namespace winograd_w {

// The matrices of the correlation F(m, r), y[i] = sum_t d[i + t] g[t] (i < m, t < r), over n = m + r - 1
// points (the first n - 1 of 0, 1, -1, 2, -2, 1/2, -1/2, then infinity): y = A^T ((G g) . (B^T d)).
// Built as bench/stem_winograd_error.py builds them: E_k (n x k) evaluates a polynomial of k coefficients
// at each point (its leading coefficient at infinity); A^T = E_m^T, G = E_r, B^T = (E_n^-1)^T.
struct Transform1d {
  int m = 0, r = 0, n = 0;
  std::vector<double> at;  // m x n
  std::vector<double> g;   // n x r
  std::vector<double> bt;  // n x n
};

inline Transform1d toom_cook(int m, int r) {
  static constexpr double kPoints[] = {0, 1, -1, 2, -2, 0.5, -0.5};
  Transform1d t;
  t.m = m, t.r = r, t.n = m + r - 1;
  const int n = t.n;
  if (m < 1 || r < 1 || n - 1 > int(std::size(kPoints))) fail("winograd along W: no points for F(", m, ", ", r, ")");
  auto evaluation = [&](int k) {  // n x k
    std::vector<double> e(size_t(n * k), 0.0);
    for (int p = 0; p < n - 1; ++p)
      for (int i = 0; i < k; ++i) e[size_t(p * k + i)] = std::pow(kPoints[p], i);
    e[size_t((n - 1) * k + k - 1)] = 1.0;
    return e;
  };
  const std::vector<double> em = evaluation(m);
  t.at.resize(size_t(m * n));
  for (int i = 0; i < m; ++i)
    for (int p = 0; p < n; ++p) t.at[size_t(i * n + p)] = em[size_t(p * m + i)];
  t.g = evaluation(r);
  // E_n^-1 by Gauss-Jordan with partial pivoting (n <= 8; E_n is a Vandermonde matrix plus infinity's row).
  std::vector<double> a = evaluation(n), inv(size_t(n * n), 0.0);
  for (int i = 0; i < n; ++i) inv[size_t(i * n + i)] = 1.0;
  for (int c = 0; c < n; ++c) {
    int piv = c;
    for (int i = c + 1; i < n; ++i)
      if (std::abs(a[size_t(i * n + c)]) > std::abs(a[size_t(piv * n + c)])) piv = i;
    for (int j = 0; j < n; ++j) std::swap(a[size_t(c * n + j)], a[size_t(piv * n + j)]), std::swap(inv[size_t(c * n + j)], inv[size_t(piv * n + j)]);
    const double d = a[size_t(c * n + c)];
    for (int j = 0; j < n; ++j) a[size_t(c * n + j)] /= d, inv[size_t(c * n + j)] /= d;
    for (int i = 0; i < n; ++i) {
      if (i == c) continue;
      const double f = a[size_t(i * n + c)];
      if (f == 0) continue;
      for (int j = 0; j < n; ++j) a[size_t(i * n + j)] -= f * a[size_t(c * n + j)], inv[size_t(i * n + j)] -= f * inv[size_t(c * n + j)];
    }
  }
  t.bt.resize(size_t(n * n));
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j) t.bt[size_t(i * n + j)] = inv[size_t(j * n + i)];
  return t;
}

}  // namespace winograd_w

}  // namespace volfeat::cpu
