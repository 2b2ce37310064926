#pragma once
// The transforms of 3D Winograd F(2x2x2, 3x3x3) (Lavin & Gray 2016, "Fast Algorithms for
// Convolutional Neural Networks", F(2,3) applied along each of the three axes):
//
//   Y = A^T [ (G g G^T) ⊙ (B^T d B) ] A    per axis, with
//
//   B^T = | 1  0 -1  0 |    G = | 1    0    0   |    A^T = | 1  1  1  0 |
//         | 0  1  1  0 |        | 1/2  1/2  1/2 |          | 0  1 -1 -1 |
//         | 0 -1  1  0 |        | 1/2 -1/2  1/2 |
//         | 0  1  0 -1 |        | 0    0    1   |
//
// A 4x4x4 input tile d gives a 2x2x2 output tile: 64 multiplies (per input/output channel pair) in
// the transformed domain instead of 8 * 27 = 216. The 64 transformed points are indexed
// xi = (a*4 + b)*4 + e over (z, y, x). Every function here works on L channels at once (L lanes,
// the innermost, contiguous index), so that the compiler vectorises the lane loops.
#include <array>
#include <vector>

#include "volfeat/core/shape.hpp"

namespace volfeat::cpu::winograd {

constexpr int kIn = 4;       // input tile extent per axis
constexpr int kOut = 2;      // output tile extent per axis
constexpr int kPoints = 64;  // transformed points per tile (4^3)

// d (64 points x L lanes) <- B^T d B along x, then y, then z, in place.
template <class T, int L>
inline void input_transform(T (&d)[kPoints][L]) {
  for (int stride : {1, 4, 16}) {
    for (int base = 0; base < kPoints; ++base) {
      if ((base / stride) % 4 != 0) continue;  // `base` is the first point of a line along this axis
      T* p0 = d[base];
      T* p1 = d[base + stride];
      T* p2 = d[base + 2 * stride];
      T* p3 = d[base + 3 * stride];
#pragma GCC ivdep
      for (int l = 0; l < L; ++l) {
        const T x0 = p0[l], x1 = p1[l], x2 = p2[l], x3 = p3[l];
        p0[l] = x0 - x2;
        p1[l] = x1 + x2;
        p2[l] = x2 - x1;
        p3[l] = x1 - x3;
      }
    }
  }
}

// y (8 outputs, (z, y, x) order, x L lanes) <- A^T m A of m (64 points x L lanes).
template <class T, int L>
inline void output_transform(const T (&m)[kPoints][L], T (&y)[8][L]) {
  T t1[32][L];  // (z, y, xo): along x
  for (int zy = 0; zy < 16; ++zy) {
    const T* p0 = m[zy * 4];
    const T* p1 = m[zy * 4 + 1];
    const T* p2 = m[zy * 4 + 2];
    const T* p3 = m[zy * 4 + 3];
    T* q0 = t1[zy * 2];
    T* q1 = t1[zy * 2 + 1];
#pragma GCC ivdep
    for (int l = 0; l < L; ++l) {
      q0[l] = p0[l] + p1[l] + p2[l];
      q1[l] = p1[l] - p2[l] - p3[l];
    }
  }
  T t2[16][L];  // (z, yo, xo): along y
  for (int z = 0; z < 4; ++z)
    for (int xo = 0; xo < 2; ++xo) {
      const T* p0 = t1[(z * 4 + 0) * 2 + xo];
      const T* p1 = t1[(z * 4 + 1) * 2 + xo];
      const T* p2 = t1[(z * 4 + 2) * 2 + xo];
      const T* p3 = t1[(z * 4 + 3) * 2 + xo];
      T* q0 = t2[(z * 2 + 0) * 2 + xo];
      T* q1 = t2[(z * 2 + 1) * 2 + xo];
#pragma GCC ivdep
      for (int l = 0; l < L; ++l) {
        q0[l] = p0[l] + p1[l] + p2[l];
        q1[l] = p1[l] - p2[l] - p3[l];
      }
    }
  for (int yx = 0; yx < 4; ++yx) {  // along z
    const T* p0 = t2[0 * 4 + yx];
    const T* p1 = t2[1 * 4 + yx];
    const T* p2 = t2[2 * 4 + yx];
    const T* p3 = t2[3 * 4 + yx];
    T* q0 = y[yx];
    T* q1 = y[4 + yx];
#pragma GCC ivdep
    for (int l = 0; l < L; ++l) {
      q0[l] = p0[l] + p1[l] + p2[l];
      q1[l] = p1[l] - p2[l] - p3[l];
    }
  }
}

// G g G^T along each axis of one 3x3x3 kernel g ((kd, kh, kw) order), in double: u (64 points).
inline std::array<double, kPoints> kernel_transform(const double* g) {
  auto line = [](double g0, double g1, double g2, double* u, int stride) {
    u[0] = g0;
    u[stride] = 0.5 * (g0 + g1 + g2);
    u[2 * stride] = 0.5 * (g0 - g1 + g2);
    u[3 * stride] = g2;
  };
  double a[3][3][4];  // (kd, kh, e)
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) line(g[(i * 3 + j) * 3], g[(i * 3 + j) * 3 + 1], g[(i * 3 + j) * 3 + 2], a[i][j], 1);
  double b[3][4][4];  // (kd, b, e)
  for (int i = 0; i < 3; ++i)
    for (int e = 0; e < 4; ++e) {
      double col[4];
      line(a[i][0][e], a[i][1][e], a[i][2][e], col, 1);
      for (int k = 0; k < 4; ++k) b[i][k][e] = col[k];
    }
  std::array<double, kPoints> u{};
  for (int k = 0; k < 4; ++k)
    for (int e = 0; e < 4; ++e) {
      double col[4];
      line(b[0][k][e], b[1][k][e], b[2][k][e], col, 1);
      for (int a2 = 0; a2 < 4; ++a2) u[size_t((a2 * 4 + k) * 4 + e)] = col[a2];
    }
  return u;
}

}  // namespace volfeat::cpu::winograd
