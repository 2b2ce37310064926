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
// xi = (a*4 + b)*4 + e over (z, y, x). The tile transforms work on a vector of channels at once.
#include <array>
#include <cstring>
#include <vector>

#include "volfeat/core/shape.hpp"

namespace volfeat::cpu::winograd {

constexpr int kIn = 4;       // input tile extent per axis
constexpr int kOut = 2;      // output tile extent per axis
constexpr int kPoints = 64;  // transformed points per tile (4^3)

// A vector of B bytes (GCC/Clang vector extension): 64 (one zmm) in the AVX-512 variant of the block
// loop, 32 (one ymm) in the AVX2 one, 16 (SSE2, the x86-64 baseline, or NEON) in the portable one. The
// transforms run on kLanes<T, B> channels at once.
template <class T, int B>
struct VecOf;
template <>
struct VecOf<float, 64> {
  typedef float type __attribute__((vector_size(64)));
};
template <>
struct VecOf<double, 64> {
  typedef double type __attribute__((vector_size(64)));
};
template <>
struct VecOf<float, 32> {
  typedef float type __attribute__((vector_size(32)));
};
template <>
struct VecOf<double, 32> {
  typedef double type __attribute__((vector_size(32)));
};
template <>
struct VecOf<float, 16> {
  typedef float type __attribute__((vector_size(16)));
};
template <>
struct VecOf<double, 16> {
  typedef double type __attribute__((vector_size(16)));
};
template <class T, int B>
using Vec = typename VecOf<T, B>::type;
template <class T, int B>
constexpr int kLanes = int(B / sizeof(T));

// Everything below is inlined into its caller, so that the caller's target (winograd3d.hpp compiles
// its block loop once for AVX2 and once for the build's baseline) decides the instructions.
#define VOLFEAT_WINOGRAD_INLINE inline __attribute__((always_inline))

// Vectors go by reference only (a 32-byte vector by value in the portable build's signatures would
// change its ABI, -Wpsabi).
// v = nl (1 .. kLanes) values from p; lanes past nl are zero.
template <class T, int B>
VOLFEAT_WINOGRAD_INLINE void load(Vec<T, B>& v, const T* p, int nl) {
  if (nl == kLanes<T, B>) {
    std::memcpy(&v, p, sizeof(v));
  } else {
    T t[kLanes<T, B>] = {};
    for (int l = 0; l < nl; ++l) t[l] = p[l];
    std::memcpy(&v, t, sizeof(v));
  }
}
template <class T, int B>
VOLFEAT_WINOGRAD_INLINE void store(T* p, const Vec<T, B>& v, int nl) {
  if (nl == kLanes<T, B>) {
    std::memcpy(p, &v, sizeof(v));
  } else {
    T t[kLanes<T, B>];
    std::memcpy(t, &v, sizeof(v));
    for (int l = 0; l < nl; ++l) p[l] = t[l];
  }
}

// Per-channel affine + ReLU (a folded BN and/or a ReLU; scale null: no BN), in place. The ReLU is
// torch's: a NaN lane compares false and stays NaN.
template <class T>
struct LaneAct {
  const T* scale = nullptr;
  const T* shift = nullptr;
  bool relu = false;
  template <int B>
  VOLFEAT_WINOGRAD_INLINE void apply(Vec<T, B>& v, Index c0, int nl) const {
    if (scale) {
      Vec<T, B> s, b;
      load<T, B>(s, scale + c0, nl);
      load<T, B>(b, shift + c0, nl);
      v = v * s + b;
    }
    if (relu) {
      const Vec<T, B> zero = {};
      v = v < zero ? zero : v;
    }
  }
};

// One tile, kLanes channels from c0: src[p] = the first channel of input voxel p ((z, y, x) of the
// 4x4x4 patch; null: padding, zero). V point p gets B^T d B, stored at dst + p * pstride. ahead (or
// null): another tile's src, whose lines at c0 are prefetched.
template <class T, int B>
VOLFEAT_WINOGRAD_INLINE void input_tile(const T* const* src, Index c0, int nl, const LaneAct<T>& pre, T* dst, Index pstride,
                                        const T* const* ahead = nullptr) {
  using V = Vec<T, B>;
  V buf[kPoints];
  const V zero = {};
  if (ahead)
    for (int p = 0; p < kPoints; ++p)
      if (ahead[p]) __builtin_prefetch(ahead[p] + c0, 0, 3);
  for (int ab = 0; ab < 16; ++ab) {  // along x, while loading
    V d[4];
    for (int e = 0; e < 4; ++e) {
      const T* s = src[ab * 4 + e];
      if (s) {
        load<T, B>(d[e], s + c0, nl);
        pre.template apply<B>(d[e], c0, nl);
      } else {
        d[e] = zero;
      }
    }
    buf[ab * 4 + 0] = d[0] - d[2];
    buf[ab * 4 + 1] = d[1] + d[2];
    buf[ab * 4 + 2] = d[2] - d[1];
    buf[ab * 4 + 3] = d[1] - d[3];
  }
  for (int a = 0; a < 4; ++a)  // along y
    for (int e = 0; e < 4; ++e) {
      V* q = buf + a * 16 + e;
      const V x0 = q[0], x1 = q[4], x2 = q[8], x3 = q[12];
      q[0] = x0 - x2;
      q[4] = x1 + x2;
      q[8] = x2 - x1;
      q[12] = x1 - x3;
    }
  for (int be = 0; be < 16; ++be) {  // along z, into V
    const V x0 = buf[be], x1 = buf[16 + be], x2 = buf[32 + be], x3 = buf[48 + be];
    const V y0 = x0 - x2, y1 = x1 + x2, y2 = x2 - x1, y3 = x1 - x3;
    store<T, B>(dst + Index(be) * pstride, y0, nl);
    store<T, B>(dst + Index(16 + be) * pstride, y1, nl);
    store<T, B>(dst + Index(32 + be) * pstride, y2, nl);
    store<T, B>(dst + Index(48 + be) * pstride, y3, nl);
  }
}

// One tile, kLanes channels: point p of M at m + p * pstride; y[o] = output o ((z, y, x) of 2x2x2).
template <class T, int B>
VOLFEAT_WINOGRAD_INLINE void output_tile(const T* m, Index pstride, int nl, Vec<T, B> (&y)[8]) {
  using V = Vec<T, B>;
  V t1[32];  // (z, y, xo)
  for (int zy = 0; zy < 16; ++zy) {
    V m0, m1, m2, m3;
    load<T, B>(m0, m + Index(zy * 4) * pstride, nl);
    load<T, B>(m1, m + Index(zy * 4 + 1) * pstride, nl);
    load<T, B>(m2, m + Index(zy * 4 + 2) * pstride, nl);
    load<T, B>(m3, m + Index(zy * 4 + 3) * pstride, nl);
    t1[zy * 2] = m0 + m1 + m2;
    t1[zy * 2 + 1] = m1 - m2 - m3;
  }
  V t2[16];  // (z, yo, xo)
  for (int z = 0; z < 4; ++z)
    for (int xo = 0; xo < 2; ++xo) {
      const V* p = t1 + z * 8 + xo;
      t2[z * 4 + xo] = p[0] + p[2] + p[4];
      t2[z * 4 + 2 + xo] = p[2] - p[4] - p[6];
    }
  for (int yx = 0; yx < 4; ++yx) {
    y[yx] = t2[yx] + t2[4 + yx] + t2[8 + yx];
    y[4 + yx] = t2[4 + yx] - t2[8 + yx] - t2[12 + yx];
  }
}

// G g G^T along each axis of up to kKernelBatch 3x3x3 kernels at once, in double: g[b] is kernel b
// ((kd, kh, kw) order, float or double), b < nb; u[xi][b] its 64 points (lanes b >= nb are zero). The
// batch index is innermost so the compiler vectorises across kernels: a network's build transforms every
// (c_out, c_in) pair of its 3x3x3 convs, DenseNet-121's 237 K kernels, and one kernel at a time it was a
// quarter of a fresh process's fixed cost (bench/README.md, "The fixed cost of a fresh process").
constexpr int kKernelBatch = 8;
template <class W>
void kernel_transform_batch(const W* const* g, int nb, double (&u)[kPoints][kKernelBatch]) {
  constexpr int B = kKernelBatch;
  // One axis: (g0, g1, g2) -> (g0, (g0 + g1 + g2) / 2, (g0 - g1 + g2) / 2, g2), lane by lane.
  auto line = [](const double* g0, const double* g1, const double* g2, double* u0, double* u1, double* u2,
                 double* u3) {
    for (int b = 0; b < B; ++b) {
      u0[b] = g0[b];
      u1[b] = 0.5 * (g0[b] + g1[b] + g2[b]);
      u2[b] = 0.5 * (g0[b] - g1[b] + g2[b]);
      u3[b] = g2[b];
    }
  };
  double in[27][B];  // (kd, kh, kw) x kernel
  for (int b = 0; b < B; ++b)
    for (int k = 0; k < 27; ++k) in[k][b] = b < nb ? double(g[b][k]) : 0.0;
  double a[3][3][4][B];  // (kd, kh, e) x kernel: along kw
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) {
      const int k = (i * 3 + j) * 3;
      line(in[k], in[k + 1], in[k + 2], a[i][j][0], a[i][j][1], a[i][j][2], a[i][j][3]);
    }
  double c[3][4][4][B];  // (kd, b, e) x kernel: along kh
  for (int i = 0; i < 3; ++i)
    for (int e = 0; e < 4; ++e) line(a[i][0][e], a[i][1][e], a[i][2][e], c[i][0][e], c[i][1][e], c[i][2][e], c[i][3][e]);
  for (int k = 0; k < 4; ++k)  // (a, b, e) x kernel: along kd, into xi = (a*4 + b)*4 + e
    for (int e = 0; e < 4; ++e)
      line(c[0][k][e], c[1][k][e], c[2][k][e], u[k * 4 + e], u[(4 + k) * 4 + e], u[(8 + k) * 4 + e], u[(12 + k) * 4 + e]);
}

// One kernel's G g G^T (kernel_transform_batch with one lane): u (64 points).
template <class W>
std::array<double, kPoints> kernel_transform(const W* g) {
  double t[kPoints][kKernelBatch];
  const W* one[1] = {g};
  kernel_transform_batch(one, 1, t);
  std::array<double, kPoints> u{};
  for (int xi = 0; xi < kPoints; ++xi) u[size_t(xi)] = t[xi][0];
  return u;
}

}  // namespace volfeat::cpu::winograd
