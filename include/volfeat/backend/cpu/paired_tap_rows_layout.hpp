#pragma once
// The layout of a bf16 direct conv's ring of paired input planes (paired_tap_rows.hpp says what it is for): what
// one plane's table holds and how many planes the ring keeps, for the conv and for the memory estimate
// (nn/memory_estimate.hpp), which counts the ring by it.
#include <algorithm>

#include "volfeat/core/shape.hpp"

namespace volfeat::cpu {

// rows_fast's padded input row (conv3d_impl.hpp), which the ring's entries copy and the memory estimate counts:
// input x in [-padding_w, W_in + padding_w) at x + padding_w, wide enough for every tap that W_out outputs read
// (padded_row_width voxels), C_in values a voxel rounded up to 16 (padded_row_values).
inline Index padded_row_width(const WindowGeometry& g, Index w_in, Index w_out) {
  return std::max(w_in + 2 * g.padding[2], (w_out - 1) * g.stride[2] + (g.kernel[2] - 1) * g.dilation[2] + 1);
}
inline Index padded_row_values(const WindowGeometry& g, Index ci, Index w_in, Index w_out) {
  return ((padded_row_width(g, w_in, w_out) * ci + 15) / 16) * 16;
}

namespace paired_rows {

struct Layout {
  Index row_values = 0;   // one padded row's bf16 values (rows_fast's row_floats); a pair's, twice that
  Index pair_rows = 0;    // pairs per plane: input rows (ys0 + 2q, ys0 + 2q + 1), q < pair_rows
  Index single_rows = 0;  // single rows per plane (odd kH): input row ss0 + 2q, q < single_rows
  Index ys0 = 0, ss0 = 0;
  Index slots = 0;  // planes the ring holds: the kernel's reach along depth, or 1 depth-summed (ring_slots)

  Index plane_values() const { return (2 * pair_rows + single_rows) * row_values; }
  Index ring_values() const { return slots * plane_values(); }
  // Pair q's interleaved rows and single q's row in a plane's table.
  Index pair_offset(Index q) const { return 2 * q * row_values; }
  Index single_offset(Index q) const { return (2 * pair_rows + q) * row_values; }
};

// Whether a bf16 conv with paired tap rows can read them from a ring of planes: every pair of every output
// row on one row parity.
inline bool applies(const WindowGeometry& g) {
  return g.stride[1] % 2 == 0 && g.dilation[1] == 1 && g.kernel[1] >= 2;
}

// The planes the ring holds: every input plane the kernel reaches along depth, or, where the kernel is
// depth-factored (depth_summed), the one plane of depth-summed rows of the output plane being computed.
inline Index ring_slots(const WindowGeometry& g, bool depth_summed) {
  return depth_summed ? 1 : (g.kernel[0] - 1) * g.dilation[0] + 1;
}

inline Layout layout(const WindowGeometry& g, Index ci, Index w_in, Index h_out, Index w_out, bool depth_summed) {
  Layout l;
  l.row_values = padded_row_values(g, ci, w_in, w_out);
  const Index kh = g.kernel[1], last = (h_out - 1) * g.stride[1];  // the last output row's first tap row, + padding
  l.ys0 = -g.padding[1];
  l.pair_rows = kh / 2 > 0 ? (last + 2 * (kh / 2 - 1)) / 2 + 1 : 0;
  l.ss0 = -g.padding[1] + kh - 1;
  l.single_rows = kh % 2 == 1 ? last / 2 + 1 : 0;
  l.slots = ring_slots(g, depth_summed);
  return l;
}

}  // namespace paired_rows
}  // namespace volfeat::cpu
