#pragma once
// The memory layout of the Cpu conv with 1D Winograd along W (winograd_along_w.hpp): its transformed points,
// its ring of transformed input planes and its per-thread scratch, apart from the conv so that the memory
// estimate (nn/memory_estimate.hpp, also compiled by nvcc) counts what the conv allocates from the same
// arithmetic, as winograd3d_tile.hpp does for the 3D tiles.
#include <algorithm>

#include "volfeat/core/shape.hpp"

namespace volfeat::cpu::winograd_w {

inline constexpr Index kM = 4;             // outputs per tile along W
inline constexpr Index kChunkTiles = 64;   // tiles per chunk of an output row (M near 0.2 MB at 64 channels)
inline constexpr Index kLanes = 16;        // a block's column is padded to a multiple of this

// Taps of phase q of a stride-s kernel of kw taps along W (kw = q, q + s, ...): Winograd F(kM, taps).
inline Index phase_taps(Index kw, Index s, Index q) { return (kw - q + s - 1) / s; }

// Transformed points per (kd, kh, c_in) row and kM outputs along W: F(kM, r)'s kM + r - 1 per phase
// (DenseNet's stem: 7 + 6 = 13).
inline Index points(const WindowGeometry& g) {
  Index p = 0;
  for (Index q = 0; q < g.stride[2]; ++q) p += kM + phase_taps(g.kernel[2], g.stride[2], q) - 1;
  return p;
}

// The ring and scratch of one input over output grid (h_out, w_out) of a conv on `ci` input channels
// (WinogradAlongW::Planes; the header of winograd_along_w.hpp has the names):
//   tiles: kM outputs each along W; cols: the padded input columns they read;
//   a block: the input rows that block_outputs consecutive output rows read (block_stride rows on from
//   block to block, block_rows long, overlapping), one column of them block_floats values;
//   plane_floats: one transformed plane, TP[point][block][tile][block_floats]; slots: the ring's planes.
struct Layout {
  Index points = 0, tiles = 0, cols = 0;
  Index block_outputs = 0, block_stride = 0, block_rows = 0, block_floats = 0, blocks = 0;
  Index plane_floats = 0, slots = 0;

  Index ring_floats() const { return slots * plane_floats; }
  // A thread's P (its input plane transposed into blocks, slot 5 of thread_scratch) and M (a chunk's
  // GEMM outputs for `panel_width` output channels, slot 6).
  Index p_floats() const { return blocks * cols * block_floats; }
  Index m_floats(Index panel_width) const { return points * std::min(tiles, kChunkTiles) * panel_width; }
};

inline Layout layout(const WindowGeometry& g, Index ci, Index h_out, Index w_out) {
  Layout l;
  l.points = points(g);
  Index max_n = 0;  // the most points of a phase
  for (Index q = 0; q < g.stride[2]; ++q) max_n = std::max(max_n, kM + phase_taps(g.kernel[2], g.stride[2], q) - 1);
  l.tiles = (w_out + kM - 1) / kM;
  // The columns the tiles read: phase q's last point of tile t reads s*(kM*t + n_q - 1) + q.
  l.cols = g.stride[2] * (kM * l.tiles + max_n - 1);
  // Blocks of R output rows: as many as keep a block's column in kLanes floats, at least 1.
  const Index sh = g.stride[1], reach = (g.kernel[1] - 1) * g.dilation[1] + 1;
  l.block_outputs = std::max<Index>(1, (kLanes / ci - reach) / sh + 1);
  l.block_stride = l.block_outputs * sh;
  l.block_rows = l.block_stride - sh + reach;
  l.block_floats = (l.block_rows * ci + kLanes - 1) / kLanes * kLanes;
  l.blocks = (h_out + l.block_outputs - 1) / l.block_outputs;
  l.plane_floats = l.points * l.blocks * l.tiles * l.block_floats;
  l.slots = (g.kernel[0] - 1) * g.dilation[0] + 1;
  return l;
}

}  // namespace volfeat::cpu::winograd_w
