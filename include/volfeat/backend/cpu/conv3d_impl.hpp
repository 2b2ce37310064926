#pragma once
// Conv3d<Cpu>'s float fast paths, defined outside the class (backend/cpu/conv3d.hpp says what they do):
// forward_pointwise, the 1x1x1 GEMM over tiles of voxels; rows_fast, the implicit GEMM over output rows; and
// bands_fast, the same over bands of output rows (backend/cpu/conv_bands.hpp). Included by conv3d.hpp; not
// meant to be included alone.
#include <omp.h>

#include <algorithm>
#include <vector>

#include "volfeat/backend/cpu/conv3d.hpp"

namespace volfeat {

// Defined outside the class, not inline: a program built with VOLFEAT_SEPARATE_KERNELS compiles the float
// instances once (compiled_once.hpp).
template <class T>
template <class I, class O>
void Conv3d<Cpu, T>::forward_pointwise(TensorView<const I> in, TensorView<O> out, const Activation<Cpu, T>& pre,
                                       const Activation<Cpu, T>& post, const Residual* res) const {
  // A bf16 output: the AVX512-BF16 kernels round each value in their epilogue as they store it
  // (Epilogue::c16). On AMX tiles, whose epilogue writes float, the tile's panels go into a float tile of the
  // thread's (rows x C_out floats, 256 KiB for DenseNet's 512 x 128, in L2), rounded into out in one call
  // once every panel is in (slot 0 holds a float conv's A; a bf16 conv's is slot 0 of the bf16 scratch).
  // Rounding each panel's rows as the GEMM finished them, a call per 64 values, made the bf16 ring no faster
  // than the float one; one call per tile 1.7-2.9 % faster at 108x256x256 (alternating pairs, DenseNet-121,
  // Zen 4), though convert_row's share of the samples stayed 4-5 % (bench/README.md, session 37).
  constexpr bool kBf16Out = std::is_same_v<O, cpu::Bf16>;
  const bool round_in_epilogue = kBf16Out && !cpu::gemm::bf16_gemms_on_tiles();
  static_assert(kBf16Out || std::is_same_v<O, T>, "a pointwise conv writes T, or bf16");
  constexpr bool kBf16In = std::is_same_v<I, cpu::Bf16>;  // then bf16_ (forward_from_bf16)
  static_assert(kBf16In || std::is_same_v<I, T>, "a pointwise conv reads T, or bf16");
  const Index ci = spec_.in_channels, voxels = out.dims.voxels(), pw = 16 * nv_;
  const Index chunks = (ci + kChunk - 1) / kChunk;
  const Index tile_max = std::clamp<Index>(Index(65536) / (chunks * kChunk), 32, 512);
  // Tiles of equal size, and with few tiles a multiple of the threads: at 8^3 (DenseNet's block 3 at
  // 128^3) a 320-channel conv made 3 tiles of 170 voxels and one of 2, one thread doing twice the other's.
  const Index threads = omp_get_max_threads();
  Index tiles = (voxels + tile_max - 1) / tile_max;
  if (tiles < 4 * threads) tiles = std::min(voxels, (tiles + threads - 1) / threads * threads);
  const Index tile = (voxels + tiles - 1) / tiles;
  tiles = (voxels + tile - 1) / tile;
  const Act act = act_of(pre);
#pragma omp parallel
  {
    float* a = bf16_ ? nullptr : cpu::thread_scratch(0, size_t(chunks * tile * kChunk));
    const Index co = spec_.out_channels;
    float* const c_tile = kBf16Out && !round_in_epilogue ? cpu::thread_scratch(0, size_t(tile * co)) : nullptr;
    cpu::Bf16* a16 = bf16_ ? cpu::thread_scratch_bf16(0, size_t(chunks * tile * kChunk)) : nullptr;
    std::vector<cpu::gemm::Segment> segs(static_cast<size_t>(chunks));
    std::vector<cpu::gemm::Bf16Segment> segs16(static_cast<size_t>(bf16_ ? chunks : 0));
#pragma omp for schedule(dynamic, 1)
    for (Index t = 0; t < tiles; ++t) {
      const Index v0 = t * tile, rows = std::min(tile, voxels - v0);
      for (Index r = 0; r < rows; ++r) {
        const I* x = in.voxel(v0 + r);
        for (Index c = 0; c < chunks; ++c) {
          const Index len = std::min(kChunk, ci - c * kChunk), at = (c * tile + r) * kChunk;
          const Act chunk{act.scale ? act.scale + c * kChunk : nullptr, act.shift ? act.shift + c * kChunk : nullptr,
                          act.relu};
          if (kBf16In || bf16_) put_values(x + c * kChunk, a16 + at, len, chunk);
          else if constexpr (!kBf16In) put_values(x + c * kChunk, a + at, len, chunk);
        }
      }
      for (Index p = 0; p < panels_; ++p) {
        cpu::gemm::Epilogue ep = epilogue(post, p);
        auto fill = [&](auto* sg, auto* tile_a, auto* panel_b) {  // one segment per k chunk, float or bf16
          for (Index c = 0; c < chunks; ++c)
            sg[c] = {tile_a + c * tile * kChunk, panel_b + c * kChunk * pw, std::min(kChunk, ci - c * kChunk)};
        };
        if constexpr (kBf16Out) {
          fill(segs16.data(), a16, panel16(p));
          if (round_in_epilogue) {
            ep.c16 = out.voxel(v0) + p * pw;
            cpu::gemm::gemm_rows_bf16(segs16.data(), int(chunks), kChunk, int(nv_), rows, nullptr, out.ld, ep);
          } else {
            cpu::gemm::gemm_rows_bf16(segs16.data(), int(chunks), kChunk, int(nv_), rows, c_tile + p * pw, co, ep);
          }
        } else if (bf16_) {
          fill(segs16.data(), a16, panel16(p));
          cpu::gemm::gemm_rows_bf16(segs16.data(), int(chunks), kChunk, int(nv_), rows, out.voxel(v0) + p * pw, out.ld,
                                    ep);
        } else {
          fill(segs.data(), a, panel(p));
          cpu::gemm::gemm_rows(segs.data(), int(chunks), kChunk, int(nv_), rows, out.voxel(v0) + p * pw, out.ld, ep,
                               kgroup());
        }
      }
      // The residual once the tile's panels are all in (rows x C_out floats: 512 KiB to 1 MiB for ResNet-50's
      // conv3s, mostly still in L2), whole rows at a time, so the identity is read as one stream. Added per
      // panel, right after each panel's GEMM, its reads were slices of 16 * nv_ floats, one per row, C_out
      // floats apart, and the add stalled on their loads (perf): volfeat_bench's
      // conv1x1/resnet_c64_to256_residual_32^3 took 6.3-6.5 ms that way against 4.3-4.5 ms now (1.07-1.22x
      // for c128_to512, 1.07x for c256_to1024), and ResNet-50's forward is 1.03-1.08x faster at 128^3,
      // 1.06x at 108x256x256 (alternating workers, AMD Zen 5, 2026-12-07).
      if constexpr (!kBf16Out) {
        if (res)
          for (Index r = 0; r < rows; ++r) add_residual(out.voxel(v0 + r), res->view.voxel(v0 + r), co, res->relu);
      }
      if constexpr (kBf16Out) {
        if (round_in_epilogue) continue;
        if (out.ld == co) cpu::gemm::convert_row_bf16(c_tile, out.voxel(v0), rows * co);  // a dense ring's rows
        else
          for (Index r = 0; r < rows; ++r) cpu::gemm::convert_row_bf16(c_tile + r * co, out.voxel(v0 + r), co);
      }
    }
  }
}

template <class T>
template <class Rows>
void Conv3d<Cpu, T>::rows_fast(const Rows& in, const Dims& od, T* out, Index ldo, Index v_base,
                               const Activation<Cpu, T>& pre, const Activation<Cpu, T>& post, Index row0, Index row1,
                               const Residual* res, cpu::paired_rows::PairedPlanes* paired) const {
  if (bands_) return bands_fast(in, od, out, ldo, v_base, pre, post, row0, row1, res);
  const WindowGeometry& g = spec_.geometry;
  const Dims& id = in.dims;
  auto dst = [&](Index n, Index z, Index y, Index x) { return out + ((((n * od.d + z) * od.h + y) * od.w + x) - v_base) * ldo; };
  const Index ci = spec_.in_channels, pw = 16 * nv_;
  const Index kd_n = g.kernel[0], kh_n = g.kernel[1], kw_n = g.kernel[2];
  // Padded row: input x in [-pad, W_in + pad) -> buffer x + pad; wide enough for every tap read.
  const Index pad = g.padding[2];
  const Index wp = cpu::padded_row_width(g, id.w, od.w), row_floats = cpu::padded_row_values(g, ci, id.w, od.w);
  const Index rs = g.stride[2] * ci;
  const bool merge_kw = g.dilation[2] == 1;
  const Act act = act_of(pre);
  // Tap rows: (kd, kh) as kd * kH + kh, or kh when depth-factored; each is copied into the buffer row of
  // its index (rows_n, rows_n + 1: a pair's two rows before they are interleaved, pair_unit_).
  const bool summed = depth_.factored();
  const Index rows_n = summed ? kh_n : kd_n * kh_n;
  // bf16 tap rows in pairs within each kd (pack_weights): groups of kH tap rows, kH / 2 pairs and an odd
  // last row each; pairs first in the buffer (two rows each, interleaved), then the groups' last rows.
  const Index groups = pair_unit_ ? rows_n / kh_n : 0, group_pairs = kh_n / 2, pairs = groups * group_pairs;
  // A ring of input planes with their pairs made once a pass (paired_tap_rows.hpp), where the caller keeps
  // one and the rows are one output plane's: the planes that plane reads and the ring lacks, made first.
  // Depth-factored, the ring's one plane holds the output plane's depth-summed rows, made once per plane.
  using Paired = cpu::paired_rows::Layout;
  const bool table = paired && paired_plane_slots() > 0 && row0 / od.h == (row1 - 1) / od.h;
  std::vector<Index> make;  // input planes iz (of item n) to make, or depth-summed the output plane z
  bool summed_live = false;  // depth-summed: some kd the kernel keeps reads a plane inside the input
  if (table) {
    paired->reset_if_new(in.row(0, 0, 0), id, od, in.ld, cpu::paired_rows::layout(g, ci, id.w, od.h, od.w, summed));
    const Index n = row0 / (od.d * od.h), z = (row0 / od.h) % od.d;
    for (Index kd = 0; kd < kd_n; ++kd) {
      const Index iz = z * g.stride[0] - g.padding[0] + kd * g.dilation[0];
      if (iz < 0 || iz >= id.d) continue;
      if (summed) {
        summed_live = summed_live || depth_.mask[size_t(kd)];
        continue;
      }
      Index& tag = paired->tag[size_t(iz % paired->layout.slots)];
      if (tag != n * id.d + iz) tag = n * id.d + iz, make.push_back(iz);
    }
    if (summed_live && paired->tag[0] != n * od.d + z) paired->tag[0] = n * od.d + z, make.push_back(z);
  }
  const Paired pl = table ? paired->layout : Paired{};
#pragma omp parallel
  {
    float* rowbuf = bf16_ ? nullptr : cpu::thread_scratch(1, size_t(kd_n * kh_n * row_floats));
    cpu::Bf16* rowbuf16 = bf16_ ? cpu::thread_scratch_bf16(1, size_t((rows_n + (pair_unit_ ? 2 : 0)) * row_floats)) : nullptr;
    std::vector<cpu::gemm::Segment> segs(static_cast<size_t>(kd_n * kh_n * kw_n));
    std::vector<cpu::gemm::Bf16Segment> segs16(bf16_ ? segs.size() : 0);
    std::vector<float> sum_row(summed ? size_t(id.w * ci) : 0), term_row(sum_row.size());
    // The tap rows an output row reads (not all padding), in buffer order; pair_unit_: its live pairs of them.
    std::vector<Index> live;
    std::vector<const cpu::Bf16*> pair_a, single_a;  // pair_unit_: the live pairs' and last rows' A
    std::vector<Index> single_g;                      // ... and the groups of those last rows
    // Input row src (id.w voxels, channel stride ld), activated, into buffer row `r`, zero-padded along W.
    auto fill = [&](const float* src, Index ld, const Act& a, auto* buf) {
      using E = std::remove_pointer_t<decltype(buf)>;
      std::fill(buf, buf + pad * ci, E(0));
      put_row(src, ld, id.w, a, buf + pad * ci);
      std::fill(buf + (pad + id.w) * ci, buf + wp * ci, E(0));
    };
    auto write_row = [&](const float* src, Index ld, const Act& a, Index r) {
      if (bf16_) fill(src, ld, a, rowbuf16 + r * row_floats);
      else fill(src, ld, a, rowbuf + r * row_floats);
    };
    // Input row iy of plane iz of item n (depth-factored: of output plane z, the activated input rows of the
    // kd the kernel keeps summed, sum_kd m[kd] act(x)[iz(kd)]) into buffer row r; false: all of it padding.
    auto write_input_row = [&](Index n, Index iz_or_z, Index iy, Index r) {
      if (iy < 0 || iy >= id.h) return false;
      if (!summed) {
        if (iz_or_z < 0 || iz_or_z >= id.d) return false;
        write_row(in.row(n, iz_or_z, iy), in.ld, act, r);
        return true;
      }
      if (!depth_sum_row(in, n, iz_or_z, iy, act, sum_row.data(), term_row.data())) return false;
      write_row(sum_row.data(), ci, Act{}, r);
      return true;
    };
    // The planes the ring lacks: pair q of plane iz is input rows ys0 + 2q and + 1 (each made in the thread's
    // two spare buffer rows, then interleaved; a row in the padding as zeros), single q row ss0 + 2q. A single
    // row that is a pair's first (odd kH: ss0 - ys0 = kH - 1 is even) is copied from the pair's made row
    // (depth-summed, the sum is made once).
    if (table) {
      const Index per_plane = pl.pair_rows + pl.single_rows, n = row0 / (od.d * od.h), lag = (kh_n - 1) / 2;
#pragma omp for schedule(dynamic, 8)
      for (Index e = 0; e < Index(make.size()) * per_plane; ++e) {
        const Index iz = make[size_t(e / per_plane)], q = e % per_plane;
        cpu::Bf16* const plane = paired->plane(iz);
        if (q < pl.pair_rows) {
          const Index ys = pl.ys0 + 2 * q;
          const bool r0 = write_input_row(n, iz, ys, rows_n), r1 = write_input_row(n, iz, ys + 1, rows_n + 1);
          if (r0 || r1)
            interleave_rows(r0 ? rowbuf16 + rows_n * row_floats : nullptr,
                            r1 ? rowbuf16 + (rows_n + 1) * row_floats : nullptr, plane + pl.pair_offset(q), wp * ci);
          if (r0 && q >= lag && q - lag < pl.single_rows)
            std::copy_n(rowbuf16 + rows_n * row_floats, wp * ci, plane + pl.single_offset(q - lag));
        } else {
          const Index s = q - pl.pair_rows;  // a single row no pair starts on
          if (s + lag >= pl.pair_rows && write_input_row(n, iz, pl.ss0 + 2 * s, rows_n))
            std::copy_n(rowbuf16 + rows_n * row_floats, wp * ci, plane + pl.single_offset(s));
        }
      }
    }
#pragma omp for schedule(dynamic, 1)
    for (Index row = row0; row < row1; ++row) {
      const Index y = row % od.h, z = (row / od.h) % od.d, n = row / (od.h * od.d);
      // Tap row t of this output row into buffer row r (activated, zero-padded); false: all of it padding.
      auto write_tap_row = [&](Index t, Index r) {
        const Index iy = y * g.stride[1] - g.padding[1] + (t % kh_n) * g.dilation[1];
        if (summed) return write_input_row(n, z, iy, r);
        return write_input_row(n, z * g.stride[0] - g.padding[0] + (t / kh_n) * g.dilation[0], iy, r);
      };
      // Copy (activated, zero-padded) every input row this output row reads.
      live.clear();
      pair_a.clear(), single_a.clear(), single_g.clear();
      if (table) {
        // The ring's tables: pair (kd, j) reads rows ys and ys + 1 of plane iz, unless both are padding;
        // depth-summed, pair (0, j) those of the output plane's one table.
        for (Index kd = 0; kd < groups; ++kd) {
          const Index iz = summed ? z : z * g.stride[0] - g.padding[0] + kd * g.dilation[0];
          if (summed ? !summed_live : (iz < 0 || iz >= id.d)) continue;
          const cpu::Bf16* const plane = paired->plane(iz);
          for (Index j = 0; j < group_pairs; ++j) {
            const Index ys = y * g.stride[1] - g.padding[1] + 2 * j;
            if (ys + 1 < 0 || ys >= id.h) continue;
            live.push_back(kd * group_pairs + j), pair_a.push_back(plane + pl.pair_offset((ys - pl.ys0) / 2));
          }
          const Index ys = y * g.stride[1] - g.padding[1] + kh_n - 1;
          if (kh_n % 2 == 1 && ys >= 0 && ys < id.h)
            single_g.push_back(kd), single_a.push_back(plane + pl.single_offset((ys - pl.ss0) / 2));
        }
      } else if (pair_unit_) {
        // bf16, tap rows in pairs (pack_weights): pair P = (group, j)'s rows 2j and 2j + 1 of the group
        // interleaved into buffer rows 2P and 2P + 1, (row 2j, row 2j + 1) of each voxel and channel as one
        // k-pair; a row in the padding is zeros. A group's odd last tap row goes to buffer row 2 pairs + group.
        for (Index grp = 0; grp < groups; ++grp) {
          for (Index j = 0; j < group_pairs; ++j) {
            const Index t = grp * kh_n + 2 * j, p = grp * group_pairs + j;
            const bool r0 = write_tap_row(t, rows_n), r1 = write_tap_row(t + 1, rows_n + 1);
            if (!r0 && !r1) continue;
            interleave_rows(r0 ? rowbuf16 + rows_n * row_floats : nullptr,
                            r1 ? rowbuf16 + (rows_n + 1) * row_floats : nullptr, rowbuf16 + 2 * p * row_floats, wp * ci);
            live.push_back(p), pair_a.push_back(rowbuf16 + 2 * p * row_floats);
          }
          if (kh_n % 2 == 1 && write_tap_row(grp * kh_n + kh_n - 1, 2 * pairs + grp))
            single_g.push_back(grp), single_a.push_back(rowbuf16 + (2 * pairs + grp) * row_floats);
        }
      } else {
        for (Index t = 0; t < rows_n; ++t)
          if (write_tap_row(t, Index(live.size()))) live.push_back(t);
      }
      // The segments of one panel: (A, B) of each tap row of every live input row, A in float or
      // bf16 (the same offsets into the bf16 copy of each row).
      auto fill = [&](auto* sg, auto rows_of, auto panel_base) {
        int ns = 0;
        for (size_t v = 0; v < live.size(); ++v) {
          const auto a = rows_of + Index(v) * row_floats;  // live[v]'s row, in float or bf16
          const Index khd = live[v];
          if (merge_kw) {  // b_unit_: kw_n * ci, or that rounded up to even in bf16
            sg[ns++] = {a, panel_base + khd * b_unit_ * pw, kw_n * ci};
          } else {
            for (Index kw = 0; kw < kw_n; ++kw)
              sg[ns++] = {a + kw * g.dilation[2] * ci, panel_base + (khd * kw_n + kw) * b_unit_ * pw, ci};
          }
        }
        return ns;
      };
      for (Index p = 0; p < panels_; ++p) {
        const cpu::gemm::Epilogue ep = epilogue(post, p);
        if (pair_unit_) {
          // One GEMM over the live pairs, rows 2 * stride * C_in apart, then one over the groups' odd last
          // tap rows on the sums it left.
          const int np = int(live.size()), ns = int(single_g.size());
          for (int s = 0; s < np; ++s)
            segs16[size_t(s)] = {pair_a[size_t(s)], panel16(p) + live[size_t(s)] * pair_unit_ * pw, pair_unit_};
          if (np > 0 || ns == 0) {
            cpu::gemm::Epilogue e = ep;
            e.finish = ns == 0;
            cpu::gemm::gemm_rows_bf16(segs16.data(), np, 2 * rs, int(nv_), od.w, dst(n, z, y, 0) + p * pw, ldo, e);
          }
          if (ns > 0) {
            for (int s = 0; s < ns; ++s)
              segs16[size_t(s)] = {single_a[size_t(s)],
                                   panel16(p) + (pairs * pair_unit_ + single_g[size_t(s)] * b_unit_) * pw, kw_n * ci};
            cpu::gemm::Epilogue e = ep;
            e.accumulate = np > 0;
            cpu::gemm::gemm_rows_bf16(segs16.data(), ns, rs, int(nv_), od.w, dst(n, z, y, 0) + p * pw, ldo, e);
          }
        } else if (bf16_) {
          const int ns = fill(segs16.data(), static_cast<const cpu::Bf16*>(rowbuf16), panel16(p));
          cpu::gemm::gemm_rows_bf16(segs16.data(), ns, rs, int(nv_), od.w, dst(n, z, y, 0) + p * pw, ldo, ep);
        } else {
          const int ns = fill(segs.data(), static_cast<const float*>(rowbuf), panel(p));
          cpu::gemm::gemm_rows(segs.data(), ns, rs, int(nv_), od.w, dst(n, z, y, 0) + p * pw, ldo, ep, kgroup());
        }
        if (res)  // the row's panel, still in L1/L2
          for (Index x = 0; x < od.w; ++x)
            add_residual(dst(n, z, y, x) + p * pw, res->view.voxel(n, z, y, x) + p * pw, ep.cols, res->relu);
      }
    }
  }
}

template <class T>
template <class Rows>
void Conv3d<Cpu, T>::bands_fast(const Rows& in, const Dims& od, T* out, Index ldo, Index v_base,
                                const Activation<Cpu, T>& pre, const Activation<Cpu, T>& post, Index row0,
                                Index row1, const Residual* res) const {
  const WindowGeometry& g = spec_.geometry;
  const Dims& id = in.dims;
  const Index ci = spec_.in_channels, pw = 16 * nv_;
  const Index kd_n = g.kernel[0], kh_n = g.kernel[1], kw_n = g.kernel[2], sh = g.stride[1], sw = g.stride[2];
  const bool factored = depth_.factored();
  const Index slab_planes = factored ? 1 : kd_n;
  // The slab's planes, row phases and padded rows (backend/cpu/conv_bands.hpp has the picture).
  const cpu::conv_bands::Layout l = cpu::conv_bands::layout(g, ci, pw, slab_planes, id.w, od.h, od.w);
  const Index row_floats = l.wpe * ci, phase_floats = l.phase_rows * row_floats;
  const Act act = act_of(pre);
  // The bands: runs of up to l.band output rows of one plane (n, z) within [row0, row1).
  struct Band {
    Index n, z, y0, y1;
  };
  std::vector<Band> bands;
  for (Index row = row0; row < row1;) {
    const Index y = row % od.h, plane = row / od.h;
    const Index y1 = std::min(od.h, y + std::min(l.band, row1 - row));
    bands.push_back({plane / od.d, plane % od.d, y, y1});
    row += y1 - y;
  }
  // Each band's panels in chunks, a few tasks per thread; each task fills its band's slab (VGG-19's
  // conv4_2 at 64x128x128: 3 x 18 x 18 x 512 floats, 2 MB, against 0.45 GFLOP per panel).
  const Index threads = omp_get_max_threads(), np = Index(bands.size());
  const Index chunks = std::clamp<Index>((4 * threads + np - 1) / np, 1, panels_);
  const Index per_chunk = (panels_ + chunks - 1) / chunks;
  const Index tasks = np * chunks;
#pragma omp parallel
  {
    float* const slab = cpu::thread_scratch(1, size_t(l.slab));
    float* const c = cpu::thread_scratch(0, size_t(l.outputs));  // a band's long row, one panel
    std::vector<cpu::gemm::Segment> segs(static_cast<size_t>(kd_n * kh_n * kw_n));
    std::vector<Index> live(static_cast<size_t>(slab_planes));  // the slab planes a band fills
    std::vector<float> term(factored ? size_t(id.w * ci) : 0);
#pragma omp for schedule(dynamic, 1)
    for (Index t = 0; t < tasks; ++t) {
      const Band& bd = bands[size_t(t / chunks)];
      const Index p0 = (t % chunks) * per_chunk, p1 = std::min(panels_, p0 + per_chunk);
      if (p0 >= p1) continue;
      auto plane_z = [&](Index kd) { return bd.z * g.stride[0] - g.padding[0] + kd * g.dilation[0]; };
      // Slab plane s: row r of phase q is input row iy = stride_h*(y0 + r) + q - pad_h, zero-padded along W.
      auto fill_plane = [&](Index s, auto&& put) {
        for (Index q = 0; q < sh; ++q)
          for (Index r = 0; r < l.phase_rows; ++r) {
            float* row = slab + s * l.slab_plane + q * phase_floats + r * row_floats;
            const Index iy = sh * (bd.y0 + r) + q - g.padding[1];
            if (iy < 0 || iy >= id.h) {
              std::fill(row, row + row_floats, 0.f);
              continue;
            }
            std::fill(row, row + g.padding[2] * ci, 0.f);
            put(iy, row + g.padding[2] * ci);
            std::fill(row + (g.padding[2] + id.w) * ci, row + row_floats, 0.f);
          }
      };
      int nlive = 0;
      if (factored) {
        // One plane of the depth sums rows_fast makes; where every kept kd is in the depth padding (then for
        // every row) the plane adds nothing.
        bool inside = false;
        fill_plane(0, [&](Index iy, float* dst) { inside = depth_sum_row(in, bd.n, bd.z, iy, act, dst, term.data()); });
        if (inside) live[size_t(nlive++)] = 0;
      } else {
        // A plane per kd inside the input (one in the depth padding adds nothing: left out).
        for (Index kd = 0; kd < kd_n; ++kd) {
          if (plane_z(kd) < 0 || plane_z(kd) >= id.d) continue;
          live[size_t(nlive++)] = kd;
          fill_plane(kd, [&](Index iy, float* dst) { put_row(in.row(bd.n, plane_z(kd), iy), in.ld, id.w, act, dst); });
        }
      }
      // The band as one long row: output (y, x) at position (y - y0)*row_voxels + x, stride_w*C_in apart.
      const Index len = (bd.y1 - bd.y0 - 1) * l.row_voxels + od.w;
      for (Index p = p0; p < p1; ++p) {
        int ns = 0;
        for (int v = 0; v < nlive; ++v) {
          const Index s = live[size_t(v)];
          for (Index kh = 0; kh < kh_n; ++kh) {
            const Index reach = kh * g.dilation[1];
            const float* a = slab + s * l.slab_plane + (reach % sh) * phase_floats + (reach / sh) * row_floats;
            const Index tap_row = factored ? kh : s * kh_n + kh;  // its unit in the packed B
            if (g.dilation[2] == 1) {
              segs[size_t(ns++)] = {a, panel(p) + tap_row * b_unit_ * pw, kw_n * ci};
            } else {
              for (Index kw = 0; kw < kw_n; ++kw)
                segs[size_t(ns++)] = {a + kw * g.dilation[2] * ci, panel(p) + (tap_row * kw_n + kw) * b_unit_ * pw, ci};
            }
          }
        }
        const cpu::gemm::Epilogue ep = epilogue(post, p);
        cpu::gemm::gemm_rows(segs.data(), ns, sw * ci, int(nv_), len, c, pw, ep, cpu::conv_bands::kGroup);
        for (Index y = bd.y0; y < bd.y1; ++y)
          for (Index x = 0; x < od.w; ++x) {
            T* d = out + ((((bd.n * od.d + bd.z) * od.h + y) * od.w + x) - v_base) * ldo + p * pw;
            const float* cv = c + ((y - bd.y0) * l.row_voxels + x) * pw;
            if (res) cpu::add_act_row<T>(cv, res->view.voxel(bd.n, bd.z, y, x) + p * pw, d, ep.cols, res->relu);
            else std::copy(cv, cv + ep.cols, d);
          }
      }
    }
  }
}

#ifdef VOLFEAT_INSTANCE_ONCE
// The float direct convs (compiled_once.hpp): the pointwise GEMM, and the implicit GEMM over a view's rows
// and over DenseLayerConvs' ring of bottleneck planes.
VOLFEAT_INSTANCE_ONCE void Conv3d<Cpu, float>::forward_pointwise(TensorView<const float>, TensorView<float>,
                                                                 const Activation<Cpu, float>&,
                                                                 const Activation<Cpu, float>&, const Residual*) const;
VOLFEAT_INSTANCE_ONCE void Conv3d<Cpu, float>::forward_pointwise(TensorView<const float>, TensorView<cpu::Bf16>,
                                                                 const Activation<Cpu, float>&,
                                                                 const Activation<Cpu, float>&, const Residual*) const;
VOLFEAT_INSTANCE_ONCE void Conv3d<Cpu, float>::forward_pointwise(TensorView<const cpu::Bf16>, TensorView<float>,
                                                                 const Activation<Cpu, float>&,
                                                                 const Activation<Cpu, float>&, const Residual*) const;
VOLFEAT_INSTANCE_ONCE void Conv3d<Cpu, float>::forward_pointwise(TensorView<const cpu::Bf16>, TensorView<cpu::Bf16>,
                                                                 const Activation<Cpu, float>&,
                                                                 const Activation<Cpu, float>&, const Residual*) const;
VOLFEAT_INSTANCE_ONCE void Conv3d<Cpu, float>::bands_fast(const ViewRows&, const Dims&, float*, Index, Index,
                                                           const Activation<Cpu, float>&,
                                                           const Activation<Cpu, float>&, Index, Index,
                                                           const Residual*) const;
VOLFEAT_INSTANCE_ONCE void Conv3d<Cpu, float>::bands_fast(const cpu::PlaneRing<float>&, const Dims&, float*, Index,
                                                           Index, const Activation<Cpu, float>&,
                                                           const Activation<Cpu, float>&, Index, Index,
                                                           const Residual*) const;
VOLFEAT_INSTANCE_ONCE void Conv3d<Cpu, float>::rows_fast(const ViewRows&, const Dims&, float*, Index, Index,
                                                         const Activation<Cpu, float>&, const Activation<Cpu, float>&,
                                                         Index, Index, const Residual*,
                                                         cpu::paired_rows::PairedPlanes*) const;
VOLFEAT_INSTANCE_ONCE void Conv3d<Cpu, float>::rows_fast(const cpu::PlaneRing<float>&, const Dims&, float*, Index,
                                                         Index, const Activation<Cpu, float>&,
                                                         const Activation<Cpu, float>&, Index, Index,
                                                         const Residual*, cpu::paired_rows::PairedPlanes*) const;
#endif

}  // namespace volfeat
