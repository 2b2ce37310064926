#pragma once
// The bf16 GEMM on AMX tiles (amx_tiles.hpp): gemm_rows_bf16's contract (gemm_kernels.hpp), C (rows x
// 16*nv floats) = sum over K segments of A.B, then the epilogue, for segments whose lengths are
// multiples of 32 (kAmxTileK: one tile row of A is 32 bf16). The AVX512-BF16 kernels take the rest.
//
// Tiles: 0-3 accumulate C, 4-5 hold A, 6-7 hold B. A block is up to 32 rows of C (two row tiles of up to
// 16, A in tiles 4 and 5) by two vectors of 16 output channels (B in tiles 6 and 7), so each k step of 32
// loads 4 tiles and runs 4 tdpbf16ps:
//   C[i][j] (tile 2i+j) += A_i (tile 4+i: rows 16i .. 16i+15 of the block, k .. k+31)
//                        . B_j (tile 6+j: k-pairs k/2 .. k/2+15, output channels 16j .. 16j+15)
// A row r of a segment is at a + r*rs bf16 values, so A's tile stride is 2*rs bytes. B is the packed
// panel of gemm_bf16.hpp: k-pair p, channel o at b + (p*16*nv + o)*2, so one k-pair row is 64*nv bytes
// and channel vector j of the k step at k starts at b + k*16*nv + 32*j.
// The block's sums go through a 4 KB float scratch on the stack (tilestored), and the AVX-512 kernels'
// epilogue (gemm_avx512.hpp: accumulate, bias, BN, ReLU, masked columns) writes them into C.
// Each call configures the tiles (ldtilecfg) and releases them at the end (tilerelease); a last block of
// fewer than 32 rows configures its row tiles with fewer rows, so nothing is read or written past the
// rows.
#include <algorithm>

#include "volfeat/backend/cpu/amx_tiles.hpp"
#include "volfeat/backend/cpu/gemm_avx512.hpp"
#include "volfeat/backend/cpu/gemm_types.hpp"

#if VOLFEAT_HAVE_ISA_VARIANTS
namespace volfeat::cpu::gemm::amx {

// The tile shapes of a block whose row tiles have m0 and m1 rows (m1 = 0: one row tile).
inline TileConfig block_config(int m0, int m1) {
  TileConfig cfg;
  cfg.set(0, m0, 64), cfg.set(1, m0, 64), cfg.set(4, m0, 64);  // row tile 0: C[0][0], C[0][1], A_0
  cfg.set(2, m1, 64), cfg.set(3, m1, 64), cfg.set(5, m1, 64);  // row tile 1: C[1][0], C[1][1], A_1
  cfg.set(6, 16, 64), cfg.set(7, 16, 64);                      // B_0, B_1: 16 k-pairs x 16 channels
  return cfg;
}

// One block's sums (m rows, NJ vectors, row stride 32 floats) through the AVX-512 epilogue into C.
template <int NJ>
VOLFEAT_TARGET_AMX void finish_rows(const float* sums, int m, float* c, Index ldc, const Epilogue& ep) {
  __mmask16 mask[NJ];
  avx512::panel_masks<NJ>(ep, mask);
  for (int r = 0; r < m; ++r) {
    __m512 acc[1][NJ];
    avx512::start_block<1, NJ>(acc, mask, c + r * ldc, ldc, ep);
    VOLFEAT_UNROLL(2)
    for (int j = 0; j < NJ; ++j) acc[0][j] = _mm512_add_ps(acc[0][j], _mm512_load_ps(sums + r * 32 + 16 * j));
    avx512::finish_block<1, NJ>(acc, mask, c + r * ldc, ldc, ep);
  }
}

// One block: rows m0 + m1 of C from row r0, vectors j0 (and j0 + 1 when NJ is 2) of the panel.
template <class Tiles, int NJ>
VOLFEAT_TARGET_AMX void block(const Bf16Segment* segs, int nseg, Index rs, Index pw, Index r0, int m0, int m1, int j0,
                              float* c, Index ldc, const Epilogue& ep) {
  alignas(64) float sums[32 * 32];  // row r of the block, channel 16j + x at sums[r*32 + 16j + x]
  const Index a_stride = 2 * rs, b_stride = 4 * pw;  // bytes
  Tiles::template zero<0>();
  if constexpr (NJ == 2) Tiles::template zero<1>();
  if (m1) {
    Tiles::template zero<2>();
    if constexpr (NJ == 2) Tiles::template zero<3>();
  }
  for (int s = 0; s < nseg; ++s) {
    const Bf16* a = segs[s].a + r0 * rs;
    const Bf16* b = segs[s].b + 32 * j0;
    for (Index k = 0; k < segs[s].len; k += kAmxTileK) {
      Tiles::template load<6>(b + k * pw, b_stride);
      if constexpr (NJ == 2) Tiles::template load<7>(b + k * pw + 32, b_stride);
      Tiles::template load<4>(a + k, a_stride);
      Tiles::template dot<0, 4, 6>();
      if constexpr (NJ == 2) Tiles::template dot<1, 4, 7>();
      if (m1) {
        Tiles::template load<5>(a + 16 * rs + k, a_stride);
        Tiles::template dot<2, 5, 6>();
        if constexpr (NJ == 2) Tiles::template dot<3, 5, 7>();
      }
    }
  }
  Tiles::template store<0>(sums, 128);
  if constexpr (NJ == 2) Tiles::template store<1>(sums + 16, 128);
  if (m1) {
    Tiles::template store<2>(sums + 16 * 32, 128);
    if constexpr (NJ == 2) Tiles::template store<3>(sums + 16 * 32 + 16, 128);
  }
  Tiles::fence();  // the stores above are asm the compiler cannot see into (amx_tiles.hpp)
  // The epilogue of vectors j0 .. j0+NJ-1: their bias/BN and the columns of them that are valid.
  Epilogue e = ep;
  e.cols = std::min(ep.cols - 16 * j0, 16 * NJ);
  if (e.bias) e.bias += 16 * j0;
  if (e.scale) e.scale += 16 * j0;
  if (e.shift) e.shift += 16 * j0;
  finish_rows<NJ>(sums, m0 + m1, c + r0 * ldc + 16 * j0, ldc, e);
}

// gemm_rows_bf16 on tiles (amx_takes(segs, nseg) only): C (rows x 16*nv, row r at c + r*ldc) = the sums,
// then ep; row r of segment s's A at segs[s].a + r*rs.
template <class Tiles>
VOLFEAT_TARGET_AMX void gemm_rows(const Bf16Segment* segs, int nseg, Index rs, int nv, Index rows, float* c, Index ldc,
                                  const Epilogue& ep) {
  const Index pw = 16 * Index(nv);
  TileConfig shape{0};  // the tiles' present shape (none yet: this GEMM configures its own)
  Tiles::fence();       // A and B are in memory before the first tileloadd
  for (Index r0 = 0; r0 < rows; r0 += 32) {
    const int m = int(std::min<Index>(32, rows - r0));
    const int m0 = std::min(16, m), m1 = m - m0;
    if (const TileConfig want = block_config(m0, m1); !(want == shape)) Tiles::configure(shape = want);
    for (int j0 = 0; j0 < nv; j0 += 2) {
      if (ep.cols <= 16 * j0) break;  // nothing valid from here on in this panel
      if (j0 + 1 < nv && ep.cols > 16 * (j0 + 1))
        block<Tiles, 2>(segs, nseg, rs, pw, r0, m0, m1, j0, c, ldc, ep);
      else
        block<Tiles, 1>(segs, nseg, rs, pw, r0, m0, m1, j0, c, ldc, ep);
    }
  }
  Tiles::release();
}

}  // namespace volfeat::cpu::gemm::amx
#endif  // VOLFEAT_HAVE_ISA_VARIANTS
