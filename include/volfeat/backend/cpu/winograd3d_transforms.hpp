#pragma once
// The transforms of 3D Winograd F(MZ x MY x MX, 3x3x3) (Lavin & Gray 2016, "Fast Algorithms for
// Convolutional Neural Networks"), for the tile shapes of winograd3d_tile.hpp: float32 runs F(2x4x4),
// F(2,3) along z and F(4,3) along y and x, or where winograd3d_select.hpp chooses them F(4x4x4) and
// F(4x6x6) (F(6,3) along y and x, below); bf16 runs F(2x2x2). Each 1D transform along its axis:
//
//   Y = A^T [ (G g G^T) ⊙ (B^T d B) ] A    per axis, with, for F(2,3) (points 0, 1, -1, inf)
//
//   B^T = | 1  0 -1  0 |    G = | 1    0    0   |    A^T = | 1  1  1  0 |
//         | 0  1  1  0 |        | 1/2  1/2  1/2 |          | 0  1 -1 -1 |
//         | 0 -1  1  0 |        | 1/2 -1/2  1/2 |
//         | 0  1  0 -1 |        | 0    0    1   |
//
// and for F(4,3) (points 0, 1, -1, 2, -2, inf)
//
//   B^T = | 4  0 -5  0  1  0 |    G = | 1/4    0     0   |    A^T = | 1  1  1  1  1  0 |
//         | 0 -4 -4  1  1  0 |        | -1/6 -1/6  -1/6 |          | 0  1 -1  2 -2  0 |
//         | 0  4 -4 -1  1  0 |        | -1/6  1/6  -1/6 |          | 0  1  1  4  4  0 |
//         | 0 -2 -1  2  1  0 |        | 1/24  1/12  1/6 |          | 0  1 -1  8 -8  1 |
//         | 0  2 -1 -2  1  0 |        | 1/24 -1/12  1/6 |
//         | 0  4  0 -5  0  1 |        | 0     0     1   |
//
// A 4x6x6 input tile d gives a 2x4x4 output tile: 144 multiplies (per input/output channel pair) in
// the transformed domain for 32 outputs, 4.5 per output instead of 27 (F(2x2x2): 8). Why not F(2,3)
// along every axis, as before: on the Zen 4 a F(2x2x2) conv spent as long writing and reading its
// transformed tiles (64 cache lines per 8 outputs and 16 channels, through L2) as in its GEMMs; F(2x4x4)
// writes 144 lines per 32 outputs. z keeps F(2,3) so that a conv still produces its output planes in
// pairs (plane_ring.hpp), and because F(4,3) along all three axes costs 3-4x the rounding error of
// F(2x4x4) (README.md, "3D Winograd"). The tile transforms work on a vector of channels at once.
#include <array>
#include <cstring>
#include <type_traits>
#include <vector>

#include "volfeat/backend/cpu/gemm_types.hpp"
#include "volfeat/backend/cpu/winograd3d_tile.hpp"
#include "volfeat/core/shape.hpp"

namespace volfeat::cpu::winograd {

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

// v rounded to bf16 as round_to_bf16 rounds (vcvtneps2bf16's rounding: nearest, ties to even; zero and
// denormals to signed zero; NaN made quiet), nl lanes stored at p. In plain vector code, so every variant
// of the block loop compiles it; only the bf16 tile, on AVX512-BF16 CPUs, runs it.
// (The narrowing goes through explicit specialisations: GCC 12 rejects __builtin_convertvector on a
// vector type that depends on a template parameter.)
template <int B>
struct Bf16Lanes;
#define VOLFEAT_WINOGRAD_BF16_LANES(BYTES)                                                           \
  template <>                                                                                      \
  struct Bf16Lanes<BYTES> {                                                                        \
    typedef std::uint32_t U __attribute__((vector_size(BYTES)));                                   \
    typedef std::uint16_t H __attribute__((vector_size(BYTES / 2)));                               \
    static VOLFEAT_WINOGRAD_INLINE void narrow(const U& u, H& h) { h = __builtin_convertvector(u, H); } \
    static VOLFEAT_WINOGRAD_INLINE void widen(const H& h, U& u) { u = __builtin_convertvector(h, U); }  \
  };
VOLFEAT_WINOGRAD_BF16_LANES(64)
VOLFEAT_WINOGRAD_BF16_LANES(32)
VOLFEAT_WINOGRAD_BF16_LANES(16)
#undef VOLFEAT_WINOGRAD_BF16_LANES

template <int B>
VOLFEAT_WINOGRAD_INLINE void store_bf16(Bf16* p, const Vec<float, B>& v, int nl) {
  using U = typename Bf16Lanes<B>::U;
  using H = typename Bf16Lanes<B>::H;
  U u;
  std::memcpy(&u, &v, sizeof u);
  const U high = u >> 16;
  U r = (u + 0x7fffu + (high & 1u)) >> 16;
  r = (u & 0x7fffffffu) > 0x7f800000u ? (high | 0x0040u) : r;
  r = (u & 0x7f800000u) == 0 ? (high & 0x8000u) : r;
  H h;
  Bf16Lanes<B>::narrow(r, h);
  if (nl == kLanes<float, B>) {
    std::memcpy(p, &h, sizeof h);
  } else {
    Bf16 t[kLanes<float, B>];
    std::memcpy(t, &h, sizeof h);
    for (int l = 0; l < nl; ++l) p[l] = t[l];
  }
}

// v = nl values from p, T's own or, for float, bf16 ones widened (exact: a bf16 is a float's upper half);
// lanes past nl are zero. The input of a Winograd conv whose rows are bf16 (a bf16 network's ring of
// bottleneck planes: backend/cpu/fused.hpp) goes through here.
template <class T, int B, class S>
VOLFEAT_WINOGRAD_INLINE void load_from(Vec<T, B>& v, const S* p, int nl) {
  if constexpr (std::is_same_v<S, T>) {
    load<T, B>(v, p, nl);
  } else {
    static_assert(std::is_same_v<S, Bf16> && std::is_same_v<T, float>, "a source is T, or bf16 of float");
    using U = typename Bf16Lanes<B>::U;
    using H = typename Bf16Lanes<B>::H;
    H h;
    if (nl == kLanes<float, B>) {
      std::memcpy(&h, p, sizeof h);
    } else {
      Bf16 t[kLanes<float, B>] = {};
      for (int l = 0; l < nl; ++l) t[l] = p[l];
      std::memcpy(&h, t, sizeof h);
    }
    U u;
    Bf16Lanes<B>::widen(h, u);
    u <<= 16;
    std::memcpy(&v, &u, sizeof v);
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

// The 1D transforms, on a vector of channels (or a double) at a time; in and out may not alias.
// F(2,3): B^T (4 -> 4), A^T (4 -> 2).
template <class V>
VOLFEAT_WINOGRAD_INLINE void bt2(const V* d, V* r) {
  r[0] = d[0] - d[2];
  r[1] = d[1] + d[2];
  r[2] = d[2] - d[1];
  r[3] = d[1] - d[3];
}
template <class V>
VOLFEAT_WINOGRAD_INLINE void at2(const V* m, V* o) {
  o[0] = m[0] + m[1] + m[2];
  o[1] = m[1] - m[2] - m[3];
}
// F(4,3): B^T (6 -> 6) in 14 operations, A^T (6 -> 4).
template <class V>
VOLFEAT_WINOGRAD_INLINE void bt4(const V* d, V* r) {
  const V d4d2 = d[4] - d[2], d3d1 = d[3] - d[1];
  r[0] = (d[0] - d[2]) * 4.f + d4d2;
  r[1] = (d[3] + d[4]) - (d[1] + d[2]) * 4.f;
  r[2] = (d[4] - d[3]) + (d[1] - d[2]) * 4.f;
  r[3] = d4d2 + d3d1 * 2.f;
  r[4] = d4d2 - d3d1 * 2.f;
  r[5] = (d[5] - d[3]) - d3d1 * 4.f;
}
template <class V>
VOLFEAT_WINOGRAD_INLINE void at4(const V* m, V* o) {
  const V p = m[1] + m[2], q = m[1] - m[2], r = m[3] + m[4], s = m[3] - m[4];
  o[0] = m[0] + p + r;
  o[1] = q + s * 2.f;
  o[2] = p + r * 4.f;
  o[3] = q + s * 8.f + m[5];
}

// F(6,3) (y and x of F(4x6x6)), points in A^T's column order 0, 1, -1, 2, -2, 1/2, -1/2, inf; B^T and G
// scaled as Lavin & Gray's:
//
//   B^T = | 1  0    -21/4  0     21/4  0    -1  0 |    G = | 1      0      0    |
//         | 0  1     1    -17/4 -17/4  1     1  0 |        | -2/9  -2/9   -2/9  |
//         | 0 -1     1     17/4 -17/4 -1     1  0 |        | -2/9   2/9   -2/9  |
//         | 0  1/2   1/4  -5/2  -5/4   2     1  0 |        | 1/90   1/45   2/45 |
//         | 0 -1/2   1/4   5/2  -5/4  -2     1  0 |        | 1/90  -1/45   2/45 |
//         | 0  2     4    -5/2  -5     1/2   1  0 |        | 32/45  16/45  8/45 |
//         | 0 -2     4     5/2  -5    -1/2   1  0 |        | 32/45 -16/45  8/45 |
//         | 0 -1     0     21/4  0    -21/4  0  1 |        | 0      0      1    |
//
//   A^T = | 1  1  1  1   1   1     1      0 |
//         | 0  1 -1  2  -2   1/2  -1/2    0 |
//         | 0  1  1  4   4   1/4   1/4    0 |
//         | 0  1 -1  8  -8   1/8  -1/8    0 |
//         | 0  1  1  16  16  1/16  1/16   0 |
//         | 0  1 -1  32 -32  1/32 -1/32   1 |
//
// An 8x8 input patch gives 6x6 outputs: 64 points per 36 against F(4x4)'s 36 per 16.
template <class V>
VOLFEAT_WINOGRAD_INLINE void bt6(const V* d, V* r) {
  r[0] = d[0] - d[6] + (d[4] - d[2]) * 5.25f;
  r[7] = d[7] - d[1] + (d[3] - d[5]) * 5.25f;
  {
    const V a = d[2] + d[6] - d[4] * 4.25f, b = d[1] + d[5] - d[3] * 4.25f;
    r[1] = a + b;
    r[2] = a - b;
  }
  {
    const V a = d[6] + d[2] * 0.25f - d[4] * 1.25f, b = d[1] * 0.5f - d[3] * 2.5f + d[5] * 2.f;
    r[3] = a + b;
    r[4] = a - b;
  }
  {
    const V a = d[6] + (d[2] - d[4] * 1.25f) * 4.f, b = d[1] * 2.f - d[3] * 2.5f + d[5] * 0.5f;
    r[5] = a + b;
    r[6] = a - b;
  }
}
template <class V>
VOLFEAT_WINOGRAD_INLINE void at6(const V* m, V* o) {
  const V p1 = m[1] + m[2], q1 = m[1] - m[2], p2 = m[3] + m[4], q2 = m[3] - m[4], p3 = m[5] + m[6], q3 = m[5] - m[6];
  o[0] = m[0] + p1 + p2 + p3;
  o[1] = q1 + q2 * 2.f + q3 * 0.5f;
  o[2] = p1 + p2 * 4.f + p3 * 0.25f;
  o[3] = q1 + q2 * 8.f + q3 * 0.125f;
  o[4] = p1 + p2 * 16.f + p3 * 0.0625f;
  o[5] = q1 + q2 * 32.f + q3 * 0.03125f + m[7];
}

// B^T and A^T of the axis with N = 4 (F(2,3)), 6 (F(4,3)) or 8 (F(6,3)) input points, or 1: the
// depth-summed tile's z, whose one plane holds the sums over the kept planes
// (Winograd3d::depth_summed_input).
template <int N, class V>
VOLFEAT_WINOGRAD_INLINE void bt(const V* d, V* r) {
  static_assert(N == 1 || N == 4 || N == 6 || N == 8, "an axis of 1, 4, 6 or 8 transformed points");
  if constexpr (N == 1) r[0] = d[0];
  else if constexpr (N == 4) bt2(d, r);
  else if constexpr (N == 6) bt4(d, r);
  else bt6(d, r);
}
template <int N, class V>
VOLFEAT_WINOGRAD_INLINE void at(const V* m, V* o) {
  static_assert(N == 1 || N == 4 || N == 6 || N == 8, "an axis of 1, 4, 6 or 8 transformed points");
  if constexpr (N == 1) o[0] = m[0];
  else if constexpr (N == 4) at2(m, o);
  else if constexpr (N == 6) at4(m, o);
  else at6(m, o);
}

// One tile of shape Tl, kLanes channels from c0: src[p] = the first channel of input voxel p ((z, y, x)
// of the kInZ x kInY x kInX patch; null: padding, zero). V point p gets B^T d B, stored at
// dst + p * pstride, as T, or rounded to bf16 where D is Bf16 (the bf16 tile). A depth-summed tile's
// patch is one plane: the depth sums (Winograd3d's depth_summed_input), activated already. The input
// is S: T, or bf16 widened to float (load_from).
template <class Tl, class T, int B, class D = T, class S = T>
VOLFEAT_WINOGRAD_INLINE void input_tile(const S* const* src, Index c0, int nl, const LaneAct<T>& pre, D* dst, Index pstride) {
  static_assert(std::is_same_v<D, T> || (std::is_same_v<D, Bf16> && std::is_same_v<T, float>), "V is T, or bf16 of float");
  using V = Vec<T, B>;
  constexpr int kZ = Tl::kInZ, kY = Tl::kInY, kX = Tl::kInX, kPlane = kY * kX;
  V buf[Tl::kPoints];
  const V zero = {};
  for (int ab = 0; ab < kZ * kY; ++ab) {  // along x, while loading
    V d[kX];
    for (int e = 0; e < kX; ++e) {
      const S* s = src[ab * kX + e];
      if (s) {
        load_from<T, B>(d[e], s + c0, nl);
        // The voxel's next B bytes into L2 (prefetcht1; on AVX-512 the next line of channels, float or
        // bf16; for bf16 rows no different from one vector ahead within the VM's noise, session 37):
        // Winograd3d's block reads a line per tile and pass (both halves of a bf16 line together, so the
        // second half's prefetch repeats the first's) and the next line a pass over its tiles later, and
        // this pass's lines are 512 bytes apart at 128 channels, scattered over 4 planes, which the
        // hardware prefetchers did not follow: 52 % of the F(2x4x4) block's samples
        // fell after this load (perf annotate, bf16 DenseNet-121 at 108x256x256, Zen 5), 24 % now. The
        // block's share of the forward 24.9 -> 18.9 %; float32 forward 0.59 -> 0.55 s, bf16 0.46 -> 0.41 s
        // (3 alternating pairs of 3; 128^3: -4 %); outputs unchanged. The last vector's prefetch reaches
        // the next voxel, also read soon; a prefetch never faults. A depth-summed tile reads its thread's
        // contiguous scratch of sums instead, which needs none.
        if constexpr (!Tl::kDepthSum) __builtin_prefetch(reinterpret_cast<const char*>(s + c0) + B, 0, 2);
        pre.template apply<B>(d[e], c0, nl);
      } else {
        d[e] = zero;
      }
    }
    bt<kX>(d, buf + ab * kX);
  }
  for (int a = 0; a < kZ; ++a)  // along y
    for (int e = 0; e < kX; ++e) {
      V* q = buf + a * kPlane + e;
      V d[kY], r[kY];
      for (int b = 0; b < kY; ++b) d[b] = q[b * kX];
      bt<kY>(d, r);
      for (int b = 0; b < kY; ++b) q[b * kX] = r[b];
    }
  for (int be = 0; be < kPlane; ++be) {  // along z, into V
    V d[kZ], r[kZ];
    for (int a = 0; a < kZ; ++a) d[a] = buf[a * kPlane + be];
    bt<kZ>(d, r);
    for (int a = 0; a < kZ; ++a) {
      if constexpr (std::is_same_v<D, Bf16>) store_bf16<B>(dst + Index(a * kPlane + be) * pstride, r[a], nl);
      else store<T, B>(dst + Index(a * kPlane + be) * pstride, r[a], nl);
    }
  }
}

// One tile of shape Tl, kLanes channels: point p of M at m + p * pstride; y[o] = output o.
template <class Tl, class T, int B>
VOLFEAT_WINOGRAD_INLINE void output_tile(const T* m, Index pstride, int nl, Vec<T, B> (&y)[Tl::kOutputs]) {
  using V = Vec<T, B>;
  constexpr int kZ = Tl::kInZ, kY = Tl::kInY, kX = Tl::kInX, kOY = Tl::kOutY, kOX = Tl::kOutX;
  V t1[kZ * kY * kOX];  // (z, y, xo)
  for (int ab = 0; ab < kZ * kY; ++ab) {
    V mv[kX];
    for (int e = 0; e < kX; ++e) load<T, B>(mv[e], m + Index(ab * kX + e) * pstride, nl);
    at<kX>(mv, t1 + ab * kOX);
  }
  V t2[kZ * kOY * kOX];  // (z, yo, xo)
  for (int a = 0; a < kZ; ++a)
    for (int xo = 0; xo < kOX; ++xo) {
      V d[kY], o[kOY];
      for (int b = 0; b < kY; ++b) d[b] = t1[(a * kY + b) * kOX + xo];
      at<kY>(d, o);
      for (int yo = 0; yo < kOY; ++yo) t2[(a * kOY + yo) * kOX + xo] = o[yo];
    }
  constexpr int kPlane = kOY * kOX;
  for (int yx = 0; yx < kPlane; ++yx) {
    V d[kZ], o[Tl::kOutZ];
    for (int a = 0; a < kZ; ++a) d[a] = t2[a * kPlane + yx];
    at<kZ>(d, o);
    for (int zo = 0; zo < Tl::kOutZ; ++zo) y[zo * kPlane + yx] = o[zo];
  }
}

// G g G^T along each axis of up to kKernelBatch 3x3x3 kernels at once, in double: g[b] is kernel b
// ((kd, kh, kw) order, float or double; for a depth-summed tile the 3x3 slice S, (kh, kw)), b < nb;
// u[xi][b] its Tl::kPoints points (lanes b >= nb are zero). The batch index is innermost so the
// compiler vectorises across kernels: a network's build transforms every (c_out, c_in) pair of its
// 3x3x3 convs, DenseNet-121's 237 K kernels, and one kernel at a time it was a quarter of a fresh
// process's fixed cost (bench/README.md, "The fixed cost of a fresh process").
constexpr int kKernelBatch = 8;
template <class Tl, class W>
void kernel_transform_batch(const W* const* g, int nb, double (&u)[Tl::kPoints][kKernelBatch]) {
  constexpr int B = kKernelBatch, kZ = Tl::kInZ, kY = Tl::kInY, kX = Tl::kInX;
  // One axis, lane by lane: F(2,3)'s G (3 -> 4), F(4,3)'s (3 -> 6) or F(6,3)'s (3 -> 8).
  auto axis = [](auto n, const double* g0, const double* g1, const double* g2, double* const* o) {
    for (int b = 0; b < B; ++b) {
      if constexpr (decltype(n)::value == 8) {
        o[0][b] = g0[b];
        o[1][b] = -2.0 / 9 * (g0[b] + g1[b] + g2[b]);
        o[2][b] = -2.0 / 9 * (g0[b] - g1[b] + g2[b]);
        o[3][b] = g0[b] / 90 + g1[b] / 45 + 2 * g2[b] / 45;
        o[4][b] = g0[b] / 90 - g1[b] / 45 + 2 * g2[b] / 45;
        o[5][b] = 32 * g0[b] / 45 + 16 * g1[b] / 45 + 8 * g2[b] / 45;
        o[6][b] = 32 * g0[b] / 45 - 16 * g1[b] / 45 + 8 * g2[b] / 45;
        o[7][b] = g2[b];
      } else if constexpr (decltype(n)::value == 4) {
        o[0][b] = g0[b];
        o[1][b] = 0.5 * (g0[b] + g1[b] + g2[b]);
        o[2][b] = 0.5 * (g0[b] - g1[b] + g2[b]);
        o[3][b] = g2[b];
      } else {
        o[0][b] = g0[b] / 4;
        o[1][b] = -(g0[b] + g1[b] + g2[b]) / 6;
        o[2][b] = -(g0[b] - g1[b] + g2[b]) / 6;
        o[3][b] = g0[b] / 24 + g1[b] / 12 + g2[b] / 6;
        o[4][b] = g0[b] / 24 - g1[b] / 12 + g2[b] / 6;
        o[5][b] = g2[b];
      }
    }
  };
  constexpr int kKD = Tl::kDepthSum ? 1 : 3;  // kernel planes transformed
  double in[kKD * 9][B];                       // (kd, kh, kw) x kernel
  for (int b = 0; b < B; ++b)
    for (int k = 0; k < kKD * 9; ++k) in[k][b] = b < nb ? double(g[b][k]) : 0.0;
  double a[kKD][3][kX][B];  // (kd, kh, e) x kernel: along kw
  for (int i = 0; i < kKD; ++i)
    for (int j = 0; j < 3; ++j) {
      const int k = (i * 3 + j) * 3;
      double* o[kX];
      for (int e = 0; e < kX; ++e) o[e] = a[i][j][e];
      axis(std::integral_constant<int, kX>{}, in[k], in[k + 1], in[k + 2], o);
    }
  double c[kKD][kY][kX][B];  // (kd, b, e) x kernel: along kh
  for (int i = 0; i < kKD; ++i)
    for (int e = 0; e < kX; ++e) {
      double* o[kY];
      for (int bb = 0; bb < kY; ++bb) o[bb] = c[i][bb][e];
      axis(std::integral_constant<int, kY>{}, a[i][0][e], a[i][1][e], a[i][2][e], o);
    }
  if constexpr (Tl::kDepthSum) {  // one plane: xi = b*kInX + e
    for (int bb = 0; bb < kY; ++bb)
      for (int e = 0; e < kX; ++e)
        for (int b = 0; b < B; ++b) u[bb * kX + e][b] = c[0][bb][e][b];
  } else {
    for (int bb = 0; bb < kY; ++bb)  // (a, b, e) x kernel: along kd, into xi = (a*kInY + b)*kInX + e
      for (int e = 0; e < kX; ++e) {
        double* o[kZ];
        for (int aa = 0; aa < kZ; ++aa) o[aa] = u[(aa * kY + bb) * kX + e];
        axis(std::integral_constant<int, kZ>{}, c[0][bb][e], c[1][bb][e], c[2][bb][e], o);
      }
  }
}

// One kernel's G g G^T (kernel_transform_batch with one lane).
template <class Tl, class W>
std::array<double, Tl::kPoints> kernel_transform(const W* g) {
  double t[Tl::kPoints][kKernelBatch];
  const W* one[1] = {g};
  kernel_transform_batch<Tl>(one, 1, t);
  std::array<double, Tl::kPoints> u{};
  for (int xi = 0; xi < Tl::kPoints; ++xi) u[size_t(xi)] = t[xi][0];
  return u;
}

}  // namespace volfeat::cpu::winograd
