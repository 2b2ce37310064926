#pragma once
// A bf16 direct conv's input planes as its tap-row pairs read them, made once a pass (the gray stem).
//
// A bf16 conv whose merged tap row (kW * C_in values) is odd-long packs B's tap rows in pairs within each
// kd, (kh, kh + 1) = (0, 1), (2, 3), ..., an odd kH leaving each kd its last row alone
// (conv3d_weights_impl.hpp); rows_fast interleaves a pair's two input rows into one row of k-pairs. Made
// per output row, DenseNet-121's 7x7x7 stride-2 stem converted 49 input rows and interleaved 24 pairs of
// them (across kd, before) for each output row, though each input row is read by about 12 output rows:
// `convert_row` was 3.5 % of a bf16 pass at 108x256x256, and skipping the copies (wrong outputs, a ceiling)
// made the pass 2.4-4.3 % faster (AMD EPYC Zen 5, alternating pairs, 2026-12-07).
//
// Where stride_h is even and dilation_h 1, every pair of every output row starts on the row parity of
// -padding_h, and every single row on that of -padding_h + kH - 1. So one table per input plane holds
// all the pairs an output row can read, (ys0 + 2q, ys0 + 2q + 1) interleaved for q < pair_rows, then the
// single rows ss0 + 2q, each a padded row of rows_fast's layout (row_values bf16, twice that for a pair).
// A ring of such planes (PairedPlanes, in Conv3d::PlaneState) holds those that the output plane being
// computed reads, each made once a pass; its entries hold the bits rows_fast's own copies would.
//
// A depth-factored kernel (depth_factor.hpp: 2D weights inflated by i3d-mean or centre, what users run) reads
// no input plane as it is: each of an output row's kH tap rows is the sum, over the kd it keeps, of the
// activated input rows of the planes that output plane reaches, a sum made per output row (7 rows of 7 planes
// for each of DenseNet's stem rows) though about kH / stride_h output rows read it. The ring then holds one
// plane, the output plane's depth-summed rows in the same layout (ring_slots: 1), made once per output plane
// when it is first computed; a single row that is also a pair's first is copied from it, summed once.
// DenseNet-121 with inflated weights in bf16 (AMD EPYC Zen 4, 2 threads, alternating old/new workers, geometric
// means of both orders, 2026-12-08): the stem with its pool 8-12 % faster at 108x256x256, the pass 2-3.5 % there
// and 2-3 % at 216x512x512.
// DenseNet-121 in bf16 (AMD EPYC Zen 5, 2 threads, alternating old/new workers, both orders, 2026-12-07): the
// stem with its pool 5.5-7.5 % faster at 216x512x512 (4 pairs) and about 3-4 % at 108x256x256 (16 pairs, this
// VM's first-run bias 6 % each way); the ring against the per-row copies of the same pairs, 108x256x256, 0.1-3.5 %
// for the whole pass. The whole pass against the old pairs: 216x512x512 -0.5 to 2.5 %, 108x256x256 -1.1 to 1.8 %.
#include <vector>

#include "volfeat/backend/cpu/gemm_types.hpp"
#include "volfeat/backend/cpu/paired_tap_rows_layout.hpp"
#include "volfeat/core/shape.hpp"

namespace volfeat::cpu::paired_rows {

// The ring: `slots` planes' tables, slot iz % slots holding input plane (n, iz) as tagged. Keyed to the
// input it was made from; a new input (or grid) empties it.
struct PairedPlanes {
  AlignedArray<Bf16> store;
  std::vector<Index> tag;  // per slot: the plane n * D_in + iz it holds (depth-summed: n * D_out + z), or -1
  Layout layout;
  const void* key = nullptr;
  Dims key_in, key_out;
  Index key_ld = 0;

  // Bytes the ring holds allocated (nn/memory_estimate.hpp counts layout's ring_values).
  size_t bytes() const { return store.size() * sizeof(Bf16); }
  // Sizes the ring for this input and output grid and empties it, unless it already is.
  void reset_if_new(const void* input, const Dims& in, const Dims& out, Index ld, const Layout& l) {
    if (key == input && key_in == in && key_out == out && key_ld == ld && !tag.empty()) return;
    layout = l;
    store.reserve(size_t(l.ring_values()));
    tag.assign(size_t(l.slots), -1);
    key = input, key_in = in, key_out = out, key_ld = ld;
  }
  Bf16* plane(Index iz) const { return store.data() + (iz % layout.slots) * layout.plane_values(); }
};

}  // namespace volfeat::cpu::paired_rows
