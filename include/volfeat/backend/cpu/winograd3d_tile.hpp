#pragma once
// The tile shapes of the Cpu 3D Winograd conv (winograd3d.hpp, transforms in winograd3d_transforms.hpp)
// and the block size its run uses, apart from the transforms so that the memory estimate
// (nn/memory_estimate.hpp, also compiled by nvcc) can count them.
#include <algorithm>

#include "volfeat/core/shape.hpp"

namespace volfeat::cpu::winograd {

// A tile shape: F(MZ x MY x MX, 3x3x3), each extent 2 (F(2,3)) or 4 (F(4,3)), y and x also 6 (F(6,3)).
// Transformed points are indexed xi = (a*kInY + b)*kInX + e over (z, y, x), outputs o = (zo*kOutY + yo)*kOutX
// + xo.
//
// MZ = 1 is the depth-summed tile of a depth-factored kernel (depth_factor.hpp: every kd slice zero or
// the same 3x3 S, as inflating a 2D network along D makes): the tile spans kPatchZ = 3 input planes,
// runs the 2D F(MY x MX, 3x3) of S on the sum of the kept ones (after the pre-activation; summed per run
// of tiles, Winograd3d::depth_summed_input), so it has one transformed plane (kInZ = 1) and one output
// plane. F(4x4, 3x3): 36 points per 16 outputs, 2.25 multiplies per output where F(2x4x4, 3x3x3) takes 4.5.
template <int MZ, int MY, int MX>
struct Tile {
  static_assert((MZ == 1 || MZ == 2 || MZ == 4) && (MY == 2 || MY == 4 || MY == 6) &&
                    (MX == 2 || MX == 4 || MX == 6),
                "F(2,3), F(4,3) or (y, x) F(6,3) per axis, or depth-summed along z");
  static constexpr bool kDepthSum = MZ == 1;
  static constexpr int kOutZ = MZ, kOutY = MY, kOutX = MX;                   // output tile extents
  static constexpr int kInZ = kDepthSum ? 1 : MZ + 2, kInY = MY + 2, kInX = MX + 2;  // transformed extents
  static constexpr int kPatchZ = MZ + 2;                                     // input planes a tile spans
  static constexpr int kPoints = kInZ * kInY * kInX;                         // transformed points per tile
  static constexpr int kOutputs = MZ * MY * MX;
};
// float32 on the generic kernels: F(2x4x4), 144 points per 32 outputs. bf16 (Precision::kBf16):
// F(2x2x2), 64 points per 8 outputs, because V is rounded to bf16 after the input transform: F(4,3)'s
// transforms, which scale by up to 5 and 8, took DenseNet-121's features 2.4e-2 away from float32 (issue
// #17 allows 1e-2), and at bf16's GEMM rate F(2x2x2) ran no slower than a direct conv (session 11). A
// network takes the bf16 tile only where it wins (winograd3d_select.hpp, winograd_precision: AMX tiles,
// or 128 channels on both sides). Depth-factored kernels: the 2D F(4x4) (36 points per 16 outputs) in
// either precision (why: Winograd3d's constructor).
//
// F(4x4x4) (216 points per 64 outputs: 3.4 multiplies per output instead of 4.5, and fewer transform
// operations per output) is the float32 tile on AVX-512 and AVX2 CPUs, and that of a bf16 network's convs
// that keep float32 (FloatTile::kF4x4x4, winograd3d_select.hpp). F(4,3) along z too costs about 3x
// F(2x4x4)'s rounding error (one 128-channel tile, bench/winograd_tile_error.py: max 4.0e-5 against
// 1.2e-5; a conv at most 3.0e-5 from the naive reference, held to 1e-4 by test_winograd). It saved 10 % of
// a bf16 DenseNet-121 forward on Zen 5, 6-8 % of a float32 one on Zen 4 and 1-11 % on AVX2 Zen 3
// (bench/README.md). Its output planes come in fours (plane_step).
//
// F(4x6x6) (F(6,3) along y and x: 384 points per 144 outputs, 2.7 multiplies per output) replaces it in
// a bf16 network's float32 convs (and a float32 network's under VOLFEAT_WINOGRAD=wide) where the output
// planes waste few of its 6-wide tiles (FloatTile::kF4x6x6, winograd3d_select.hpp: winograd_float_tile,
// wide_tile_wins). Its rounding error is about F(4x4x4)'s: a conv at most 3.3e-5 from the naive reference
// over the shared shapes, against 3.0e-5 (test_winograd); one 128-channel tile max 4.4e-5 against 4.0e-5
// (bench/winograd_tile_error.py).
using TileF32 = Tile<2, 4, 4>;
using TileF32Deep = Tile<4, 4, 4>;
using TileF32Wide = Tile<4, 6, 6>;
using TileBf16 = Tile<2, 2, 2>;
using TileF32Depth = Tile<1, 4, 4>;

// The float32 tile of a conv that is neither bf16 nor depth-factored (Winograd3d's constructor).
enum class FloatTile { kF2x4x4, kF4x4x4, kF4x6x6 };

// Output planes a Winograd conv with `points` transformed points per tile computes per call when it runs
// plane by plane (the fused ops' rings, backend/cpu/fused.hpp; ops/fused.hpp counts their slots): its
// tile's depth, 4 for F(4x4x4) and F(4x6x6), else 2 (the 2-deep tiles, and the depth-factored one, whose
// runs of two planes share their depth sums' set-up); 1 for a direct conv (points 0).
inline Index plane_step(int points) {
  if (points == 0) return 1;
  if (points == TileF32Deep::kPoints) return TileF32Deep::kOutZ;
  return points == TileF32Wide::kPoints ? TileF32Wide::kOutZ : 2;
}

// Tiles per block of Winograd3d::run (per thread, at a time) before it is cut to a whole number of the
// micro-kernel's row blocks and to the work at hand: V and M of a block hold points * block * (C_in +
// C_out) values, about 256K (1 MB of floats, near L2), but at least 16 tiles, 32 from 128x128 channels
// on, so that U (points * C_in * C_out) is reused enough; F(4x4x4) under 128x128 channels at least 8
// (one row block of the 8-row kernel). Why 8 there: DenseNet-121's 128 -> 32 convs in F(4x4x4) had
// blocks of 16 tiles, 2.2 MB of V and M against a 1 MB L2; with 8 (1.1 MB) the bf16 forward was 4.4-5.1 %
// faster at 108x256x256, 1.9-3.5 % at 128^3, 0.6-0.7 % at 216x512x512, and float32's 2.3-3.2 % at
// 108x256x256 (alternating pairs in both orders, equal checksums: the tiles' sums do not depend on the
// block; AMD EPYC Zen 4, bench/README.md, session 39). 4 (the budget's 7) was no faster than 8. On Zen 5
// (family 26 model 2, session 48), time with 8 over time with the other, alternating pairs, the median of
// each order (under 1: 8 faster): a bf16 network at 128^3, 4 tiles 0.90 and 1.01, 6 0.95 and 1.05, 12 0.95
// and 1.02, 16 0.88 and 0.96 (8 pairs per order); float32 with 16 tiles 0.97 and 1.05 at 216x512x512 (3),
// 0.94 and 1.02 at 108x256x256 (5). So 8 there too (session 27's unpaired rounds had made 8 look slower at
// 216x512x512).
// F(4x6x6) under 128x128 channels takes the budget itself, at least 4 tiles (4 at 128 -> 32, 0.98 MB); on
// that Zen 5, the same ratios with 4, bf16 at 108x256x256: 3 tiles 0.95 and 0.97, 6 0.99 and 1.03, 8 1.00
// and 1.01 (6 pairs per order).
// DenseNet's 128 -> 32 conv with its BN+ReLU on the input, 2 threads, 28x64x64 in groups of four planes,
// time of F(4x4x4) at 8 over F(4x6x6)'s (medians of 9-11 alternating pairs, AMD EPYC Zen 4, session 40):
// F(4x6x6) at 4-6 tiles 1.06-1.12, at 12 0.97, at 16 0.83, at 8 0.92-0.98 (session 39's trial build had
// 16, then 8, and gained 0-2 % of a forward).
// nn/memory_estimate.hpp counts the same.
inline Index block_budget(Index ci, Index co, int points) {
  const Index min_block = ci * co >= 128 * 128         ? 32
                          : points == TileF32Wide::kPoints ? 4
                          : points == TileF32Deep::kPoints ? 8
                                                           : 16;
  return std::max<Index>(min_block, Index(1 << 18) / (points * (ci + co)));
}

// The block of a run over `tiles` tiles with `threads` threads (before the cut to whole row blocks, which
// only shrinks it): at least 2 blocks per thread when there are enough tiles, at least 8 tiles (or all
// of them) unless the budget is smaller, at most the budget.
inline Index block_tiles(Index tiles, int threads, Index ci, Index co, int points) {
  const Index budget = block_budget(ci, co, points);
  return std::clamp<Index>((tiles + 2 * threads - 1) / (2 * threads), std::min({tiles, Index(8), budget}), budget);
}

// Output tiles of tile shape Tl over an output grid (D, H, W): an upper bound on one run's (a run over
// plane pairs covers fewer).
template <class Tl>
Index tiles_of(Index d, Index h, Index w) {
  return ((d + Tl::kOutZ - 1) / Tl::kOutZ) * ((h + Tl::kOutY - 1) / Tl::kOutY) * ((w + Tl::kOutX - 1) / Tl::kOutX);
}
// Input columns of the depth sums of a run of `tiles` depth-summed tiles along x (Winograd3d's
// depth_summed_input holds kInY rows of them, C_in values each; nn/memory_estimate.hpp counts the same).
template <class Tl>
constexpr Index depth_sum_columns(Index tiles) {
  static_assert(Tl::kDepthSum, "depth sums belong to depth-summed tiles");
  return Tl::kOutX * tiles + (Tl::kInX - Tl::kOutX);
}

// The same for the tile with `points` transformed points.
inline Index tiles_of(int points, Index d, Index h, Index w) {
  switch (points) {
    case TileBf16::kPoints: return tiles_of<TileBf16>(d, h, w);
    case TileF32Depth::kPoints: return tiles_of<TileF32Depth>(d, h, w);
    case TileF32Deep::kPoints: return tiles_of<TileF32Deep>(d, h, w);
    case TileF32Wide::kPoints: return tiles_of<TileF32Wide>(d, h, w);
    default: return tiles_of<TileF32>(d, h, w);
  }
}

}  // namespace volfeat::cpu::winograd
