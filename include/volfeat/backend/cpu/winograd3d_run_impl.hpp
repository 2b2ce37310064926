#pragma once
// Winograd3d's run over tiles, defined outside the class (backend/cpu/winograd3d.hpp says what the phases do):
// run and run_tiles, which cut a run's tiles into blocks for the threads, and one block's pipeline
// (tile_origin, depth_summed_input, block_impl). Included by winograd3d.hpp; not meant to be included alone.
#include <omp.h>

#include <algorithm>
#include <type_traits>
#include <vector>

#include "volfeat/backend/cpu/winograd3d.hpp"

namespace volfeat::cpu {

template <class T>
template <class Tl, class Rows, class O>
VOLFEAT_WINOGRAD_INLINE void Winograd3d<T>::tile_origin(const Job<Rows, O>& j, Index t, Index& n, Index& z, Index& y,
                                                        Index& x) {
  n = j.n0 + t / j.per_n;
  Index r = t % j.per_n;
  x = Tl::kOutX * (r % j.tx);
  r /= j.tx;
  y = Tl::kOutY * (r % j.ty);
  z = Tl::kOutZ * (j.tz0 + r / j.ty);
}

// Phase 1 of a depth-summed block (Tl::kDepthSum): its tiles come in runs along x (one n, z and row of
// tiles each). For each run, the activated input planes the kernel keeps are summed once over the run's
// kInY input rows and kOutX * k + 2 columns, C_in values each, into the thread's scratch (slot 4), in
// ascending plane order; then each tile's kInY x kInX patch is transformed from those sums. Gathering each
// tile's 3 x 6 x 6 patch from the three planes instead (108 scattered voxels per 16 outputs, every
// voxel read by up to 4 tiles) waited on memory: 56 % of the block's samples fell on the instruction
// after its loads (perf annotate, bf16 DenseNet-121 at 108x256x256, Zen 4).
template <class T>
template <int VB, class Tl, class Rows, class O>
VOLFEAT_WINOGRAD_INLINE void Winograd3d<T>::depth_summed_input(const Job<Rows, O>& j, Index t0, Index rows, T* vbuf,
                                                               Index vps) {
  using V = winograd::Vec<T, VB>;
  constexpr int nv = winograd::kLanes<T, VB>, kY = Tl::kInY, kX = Tl::kInX;
  const Winograd3d& self = *j.self;
  const Index ci = self.spec_.in_channels;
  const WindowGeometry& g = self.spec_.geometry;
  const Dims& id = j.rows->dims;
  const Index ld = j.rows->ld;
  using S = RowElement<Rows>;  // T, or bf16 widened as loaded
  for (Index r = 0; r < rows;) {
    Index n, z, y, x;  // the run's first tile
    tile_origin<Tl>(j, t0 + r, n, z, y, x);
    Index r1 = r + 1;  // tiles r .. r1 - 1: the run along x
    while (r1 < rows && (t0 + r1) % j.tx != 0) ++r1;
    const Index cols = winograd::depth_sum_columns<Tl>(r1 - r);
    // sum[row b][column][c_in]: the depth sum at input (y - pad + b, x - pad + column); zero outside
    T* const sum = scratch(4, size_t(kY * cols * ci));
    for (int bb = 0; bb < kY; ++bb) {
      const Index iy = y - g.padding[1] + bb;
      const S* planes[Tl::kPatchZ];  // the kept planes' rows, ascending
      int np = 0;
      for (int a = 0; a < Tl::kPatchZ && iy >= 0 && iy < id.h; ++a) {
        const Index iz = z - g.padding[0] + a;
        if (self.depth_.mask[size_t(a)] && iz >= 0 && iz < id.d) planes[np++] = j.rows->row(n, iz, iy);
      }
      for (Index col = 0; col < cols; ++col) {
        const Index ix = x - g.padding[2] + col;
        T* const s = sum + (bb * cols + col) * ci;
        const int live = ix >= 0 && ix < id.w ? np : 0;
        for (Index c0 = 0; c0 < ci; c0 += nv) {
          const int nl = int(std::min<Index>(nv, ci - c0));
          V acc = {};
          for (int p = 0; p < live; ++p) {
            V v;
            winograd::load_from<T, VB>(v, planes[p] + ix * ld + c0, nl);
            j.pre.template apply<VB>(v, c0, nl);
            acc += v;
          }
          winograd::store<T, VB>(s + c0, acc, nl);
        }
      }
    }
    const winograd::LaneAct<T> none{};  // the sums are activated already
    for (Index c0 = 0; c0 < ci; c0 += nv)
      for (Index rr = r; rr < r1; ++rr) {
        const T* src[kY * kX];
        for (int bb = 0; bb < kY; ++bb)
          for (int e = 0; e < kX; ++e) src[bb * kX + e] = sum + (bb * cols + (rr - r) * Tl::kOutX + e) * ci;
        winograd::input_tile<Tl, T, VB>(src, c0, int(std::min<Index>(nv, ci - c0)), none, vbuf + rr * ci + c0, vps);
      }
    r = r1;
  }
}

template <class T>
template <int VB, class Tl, class Rows, class O>
VOLFEAT_WINOGRAD_INLINE void Winograd3d<T>::block_impl(const Job<Rows, O>& j, Index b) {
  constexpr int kPoints = Tl::kPoints;
  using V = winograd::Vec<T, VB>;
  constexpr int nv = winograd::kLanes<T, VB>;
  const Winograd3d& self = *j.self;
  const Index ci = self.spec_.in_channels, co = self.spec_.out_channels;
  const WindowGeometry& g = self.spec_.geometry;
  const Dims& id = j.rows->dims;
  const Index ld = j.rows->ld;
  // V's values: bf16 for the bf16 tile (rounded by the input transform as it stores them), else T.
  constexpr bool kBf16V = kPanels && std::is_same_v<Tl, TileBf16>;
  using VT = std::conditional_t<kBf16V, Bf16, T>;
  // Point strides padded by one cache line: a power-of-two stride (32 tiles x 64 channels = 8 KB)
  // sends the 64 points of a tile to one L1 set.
  const Index vps = j.block * ci + 64 / Index(sizeof(VT)), mps = j.block * co + kPad;
  VT* const vbuf = scratch<VT>(2, size_t(kPoints * vps));
  T* const mbuf = scratch(3, size_t(kPoints * mps));
  const Index t0 = b * j.block, rows = std::min(j.block, j.tiles - t0);
  if constexpr (Tl::kDepthSum) {
    static_assert(!kBf16V, "depth-summed tiles run float32");
    depth_summed_input<VB, Tl>(j, t0, rows, vbuf, vps);
  } else {
    // 1. input transform into V[p][r][c]: a cache line of channels at a time (below) over all tiles of
    // the block, so that a tile finds in L1 the part of its patch it shares with the tile before it
    // along x (tile by tile over all channels, each tile's 64 x C_in patch of F(2x2x2), 32 KB at 128
    // channels, evicted its predecessor's).
    constexpr int kPatch = Tl::kPatchZ * Tl::kInY * Tl::kInX;  // input voxels a tile reads
    using S = RowElement<Rows>;  // T, or bf16 widened as loaded
    thread_local std::vector<const S*> src_store;
    if (src_store.size() < size_t(rows * kPatch)) src_store.resize(size_t(rows * kPatch));
    const S** const srcs = src_store.data();
    for (Index r = 0; r < rows; ++r) {
      Index n, z, y, x;
      tile_origin<Tl>(j, t0 + r, n, z, y, x);
      const S** src = srcs + r * kPatch;  // first channel of each input voxel of the patch (null: padding)
      for (int a = 0; a < Tl::kPatchZ; ++a)
        for (int bb = 0; bb < Tl::kInY; ++bb) {
          const Index iz = z - g.padding[0] + a, iy = y - g.padding[1] + bb;
          const bool row_in = iz >= 0 && iz < id.d && iy >= 0 && iy < id.h;
          const S* row = row_in ? j.rows->row(n, iz, iy) : nullptr;
          for (int e = 0; e < Tl::kInX; ++e) {
            const Index ix = x - g.padding[2] + e;
            src[(a * Tl::kInY + bb) * Tl::kInX + e] = row_in && ix >= 0 && ix < id.w ? row + ix * ld : nullptr;
          }
        }
    }
    // A cache line of channels per tile and pass: an AVX-512 vector of float channels is one line, but
    // one of a bf16 ring's is half a line, so each tile transforms both halves while its patch's lines
    // are in L1, where a pass over the block's tiles per vector fetched every line twice. DenseNet-121
    // in bf16 (AMD EPYC Zen 4, alternating pairs in both orders, equal checksums): 1.9-3.2 % faster at
    // 108x256x256 (16 pairs), 0.8-6.1 % at 216x512x512 (4 pairs), no different at 128^3; two lines per
    // pass no better than one (bench/README.md, session 38). AVX2's float vectors are half a line too:
    // float32 under VOLFEAT_CPU_ISA=avx2 (then its F(2x4x4) tile), 3.6-4.9 % faster at 108x256x256 (8 pairs).
    constexpr Index kLine = std::max<Index>(64 / Index(sizeof(S)), nv);  // channels a 64-byte line holds
    for (Index c1 = 0; c1 < ci; c1 += kLine)
      for (Index r = 0; r < rows; ++r)
        for (Index c0 = c1; c0 < std::min(ci, c1 + kLine); c0 += nv)
          winograd::input_tile<Tl, T, VB, VT, S>(srcs + r * kPatch, c0, int(std::min<Index>(nv, ci - c0)), j.pre,
                                              vbuf + r * ci + c0, vps);
  }
  // 2. the points() GEMMs
  self.gemm_points(vbuf, vps, mbuf, mps, rows);
  // 3. output transform and epilogue
  const T* bias = self.bias_.empty() ? nullptr : self.bias_.data();
  for (Index r = 0; r < rows; ++r) {
    Index n, z, y, x;
    tile_origin<Tl>(j, t0 + r, n, z, y, x);
    constexpr int kOut = Tl::kOutputs;
    O* dst[kOut];
    for (int o = 0; o < kOut; ++o) {
      const Index oz = z + o / (Tl::kOutY * Tl::kOutX), oy = y + (o / Tl::kOutX) % Tl::kOutY,
                  ox = x + o % Tl::kOutX;
      const bool keep = oz >= j.z_lo && oz < j.z_hi && oy < j.od.h && ox < j.od.w;
      dst[o] = keep ? j.out + ((((n * j.od.d + oz) * j.od.h + oy) * j.od.w + ox) - j.v_base) * j.ldo : nullptr;
    }
    for (Index c0 = 0; c0 < co; c0 += nv) {
      const int nl = int(std::min<Index>(nv, co - c0));
      V yv[kOut];
      winograd::output_tile<Tl, T, VB>(mbuf + r * co + c0, mps, nl, yv);
      V bv = {};
      if (bias) winograd::load<T, VB>(bv, bias + c0, nl);
      for (int o = 0; o < kOut; ++o) {
        if (!dst[o]) continue;
        yv[o] += bv;
        j.post.template apply<VB>(yv[o], c0, nl);
        if constexpr (std::is_same_v<O, T>) winograd::store<T, VB>(dst[o] + c0, yv[o], nl);
        else winograd::store_bf16<VB>(dst[o] + c0, yv[o], nl);
      }
    }
  }
}

template <class T>
template <class Tl, class Rows, class O>
void Winograd3d<T>::run_tiles(const Rows& rows, const Dims& od, O* out, Index ldo, Index v_base, Index n0, Index n1,
                              Index z_lo, Index z_hi, const Activation<Cpu, T>& pre,
                              const Activation<Cpu, T>& post) const {
  static_assert(std::is_same_v<O, T> || (std::is_same_v<O, Bf16> && std::is_same_v<T, float>),
                "a Winograd conv writes T, or (float) bf16");
  const Index ci = spec_.in_channels, co = spec_.out_channels;
  Job<Rows, O> j{};
  j.self = this, j.rows = &rows, j.od = od, j.out = out, j.ldo = ldo, j.v_base = v_base, j.n0 = n0;
  j.z_lo = z_lo, j.z_hi = z_hi;
  j.tz0 = z_lo / Tl::kOutZ;
  const Index tz1 = (z_hi + Tl::kOutZ - 1) / Tl::kOutZ;  // tile planes covering [z_lo, z_hi)
  j.ty = (od.h + Tl::kOutY - 1) / Tl::kOutY, j.tx = (od.w + Tl::kOutX - 1) / Tl::kOutX;
  j.per_n = (tz1 - j.tz0) * j.ty * j.tx;
  j.tiles = (n1 - n0) * j.per_n;
  // Each thread takes whole blocks of tiles (no barriers: this VM's cores are shared, and a thread
  // that waits on a descheduled one loses its turn), at least 2 blocks per thread when there are
  // enough tiles, each block at most winograd::block_budget tiles (its V and M near L2's size). The
  // budget's measurements, per call with one thread on Zen 3 (F(2x2x2), bench/README.md): against a
  // 1M-value budget and a 64K one, 64->64 121 ms (1M: 215, 64K: 104), 128->32 6.7 ms (9.1, 8.9),
  // 256->256 at 32 tiles 41 ms (8 tiles: 56-64).
  const int threads = omp_get_max_threads();
  j.block = winograd::block_tiles(j.tiles, threads, ci, co, Tl::kPoints);
  // A whole number of the micro-kernel's row blocks (6 on AVX2): 32 tiles ran as 5+5+6+5+5+6 rows,
  // and the 5-row kernel does 10 FMAs per 7 loads instead of 12 per 8.
  if constexpr (kPanels) {
    const Index rmax = gemm::max_rows(int(nv_));
    if (j.block > 2 * rmax && j.block < j.tiles) j.block -= j.block % rmax;
  }
  j.pre = {pre.bn ? pre.bn->scale() : nullptr, pre.bn ? pre.bn->shift() : nullptr, pre.relu};
  j.post = {post.bn ? post.bn->scale() : nullptr, post.bn ? post.bn->shift() : nullptr, post.relu};
  const Index nblocks = (j.tiles + j.block - 1) / j.block;
  void (*block)(const Job<Rows, O>&, Index) = &block_generic<Tl, Rows, O>;
#if VOLFEAT_HAVE_ISA_VARIANTS
  if (cpu_isa() >= CpuIsa::kAvx2) block = &block_avx2<Tl, Rows, O>;
  if (cpu_isa() >= CpuIsa::kAvx512) block = &block_avx512<Tl, Rows, O>;
#endif
#pragma omp parallel for schedule(dynamic, 1)
  for (Index b = 0; b < nblocks; ++b) block(j, b);
}

template <class T>
template <class Rows, class O>
void Winograd3d<T>::run(const Rows& rows, const Dims& od, O* out, Index ldo, Index v_base, Index n0, Index n1,
                        Index z_lo, Index z_hi, const Activation<Cpu, T>& pre, const Activation<Cpu, T>& post) const {
  with_tile([&](auto tile) { run_tiles<decltype(tile)>(rows, od, out, ldo, v_base, n0, n1, z_lo, z_hi, pre, post); });
}

#ifdef VOLFEAT_INSTANCE_ONCE
// The float convs' tiles of every instruction set, for the row sources the network uses (a view, and
// DenseLayerConvs' ring of bottleneck planes, float or a bf16 network's bf16).
VOLFEAT_INSTANCE_ONCE void Winograd3d<float>::run(const ViewRows&, const Dims&, float*, Index, Index, Index, Index,
                                                  Index, Index, const Activation<Cpu, float>&,
                                                  const Activation<Cpu, float>&) const;
VOLFEAT_INSTANCE_ONCE void Winograd3d<float>::run(const PlaneRing<float>&, const Dims&, float*, Index, Index, Index,
                                                  Index, Index, Index, const Activation<Cpu, float>&,
                                                  const Activation<Cpu, float>&) const;
VOLFEAT_INSTANCE_ONCE void Winograd3d<float>::run(const PlaneRing<Bf16>&, const Dims&, float*, Index, Index, Index,
                                                  Index, Index, Index, const Activation<Cpu, float>&,
                                                  const Activation<Cpu, float>&) const;
// ... and writing bf16 (a bf16 network's dense-block features).
VOLFEAT_INSTANCE_ONCE void Winograd3d<float>::run(const ViewRows&, const Dims&, Bf16*, Index, Index, Index, Index,
                                                  Index, Index, const Activation<Cpu, float>&,
                                                  const Activation<Cpu, float>&) const;
VOLFEAT_INSTANCE_ONCE void Winograd3d<float>::run(const PlaneRing<float>&, const Dims&, Bf16*, Index, Index, Index,
                                                  Index, Index, Index, const Activation<Cpu, float>&,
                                                  const Activation<Cpu, float>&) const;
VOLFEAT_INSTANCE_ONCE void Winograd3d<float>::run(const PlaneRing<Bf16>&, const Dims&, Bf16*, Index, Index, Index,
                                                  Index, Index, Index, const Activation<Cpu, float>&,
                                                  const Activation<Cpu, float>&) const;
#endif

}  // namespace volfeat::cpu
