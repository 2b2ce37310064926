#pragma once
// Cpu 3D Winograd convolution F(2x4x4, 3x3x3) for 3x3x3, stride-1, dilation-1 convs (any padding):
// 144 multiplies per 2x4x4 output tile and channel pair, 4.5 per output instead of 27 (6x fewer;
// winograd3d_transforms.hpp has the transforms and why this tile). The network attaches one to a
// Conv3d<Cpu, float> where it wins (winograd3d_select.hpp); Conv3d::forward and forward_plane then run it.
//
// The output grid is cut into 2x4x4 tiles (partial at the edges: the missing outputs are computed on
// zero input and dropped). Tiles are processed in blocks, each thread a whole block at a time, in
// three phases:
//   1. input transform: each tile's 4x6x6 x C_in patch is gathered (the fused pre-activation, BN and
//      ReLU, applied to in-bounds values only: torch pads the activated tensor with zeros) and
//      transformed, a cache line of channels at a time, into V[xi][tile][c_in];
//   2. the batched GEMM: for each of the 144 points xi, M[xi] (tiles x C_out) = V[xi] * U[xi]
//      (C_in x C_out), U the transformed weights. This is the one switchable stage (gemm_point):
//      float runs the run-time dispatched micro-kernels of gemm_kernels.hpp (AVX-512 / AVX2+FMA /
//      generic) on U packed into their panels; double runs Eigen;
//   3. output transform: each tile's 144 points of M give 32 outputs, then the bias, the folded BN and
//      the ReLU of the post-activation, written through the output view's channel stride (so a dense
//      block's in-place channel slice works as for the direct conv).
//
// The transforms are compiled three times, for AVX-512 (64-byte vectors), AVX2 (32-byte) and the build's
// baseline (16-byte), and chosen by cpu_isa(). The AVX-512 variant took DenseNet-121's forward at 128^3
// from 0.36 to 0.33 s (float32) and 0.25 to 0.23 s (bf16), means of 3 runs of 5 on a noisy Zen 4.
// forward_planes_rows reads its input through a row accessor, so DenseLayerConvs feeds it from its
// ring of bottleneck planes (of bf16 values in a bf16 network, widened as the transform loads them:
// winograd::load_from). Tiles are 2 planes deep, so output planes come in pairs as before.
//
// A network's float32 convs on AVX-512 and AVX2 CPUs, and a bf16 network's, take F(4x4x4) instead
// (winograd::FloatTile::kF4x4x4, chosen by winograd3d_select.hpp): the same phases over 6x6x6 patches,
// 216 points, 64 outputs per tile, and output planes in fours (plane_step; the fused ops' rings hold
// groups of four). Where the output planes suit 6-wide tiles, F(4x6x6) (kF4x6x6): 6x8x8 patches, 384
// points, 144 outputs per tile, planes in fours as well.
//
// Depth-factored weights (depth_factor.hpp: each kd slice zero or the same 3x3 S, as inflating a 2D
// network along D makes them): the tiles are 2D, Tile<1, 4, 4> (winograd3d_tile.hpp), one plane deep.
// Phase 1 sums the activated planes the kernel keeps once per run of tiles (depth_summed_input), then
// transforms each tile's 6x6 patch of sums; U is the 2D transform of S; 36 GEMMs per block; each tile
// gives 16 outputs of one plane. DenseNet-121 at 128^3 with
// inflated weights (Zen 4): 0.250 -> 0.170 s per forward (README.md, "Depth-factored convs").
//
// bf16 (Precision::kBf16, float only, where bf16_available(); a network asks for it per conv where the
// bf16 tile wins, winograd3d_select.hpp): U is rounded to bf16 once and packed as
// k-pairs (gemm_bf16.hpp; an odd C_in padded with a zero row); the input transform rounds V to bf16 as
// it stores it, and the 64 GEMMs of F(2x2x2) run the bf16 kernels. The transforms stay float. (Until
// session 17 V went through a float block and a separate rounding pass: DenseNet's 128 -> 32 held 1.4 MB
// of V and M per block, past the 1 MB L2, instead of 0.6 MB; the conv at 32^3 with the BN+ReLU prologue,
// one thread, Zen 4: 39.6 / 42.4 ms before, 32.3 / 38.0 ms after, two alternating runs.)
//
// winograd3d_run_impl.hpp defines the run over tiles (run, run_tiles) and one block's phases (block_impl).
//
// Accuracy: the transforms add, subtract and scale (by up to 8 in F(4,3)'s A^T), so the rounding error
// grows with them; README.md ("3D Winograd") has the measured error per layer, tests/test_winograd.cpp
// the bound it is held to.
#include <Eigen/Core>
#include <omp.h>
#include <algorithm>
#include <cstring>
#include <memory>
#include <type_traits>
#include <vector>

#include "volfeat/backend/cpu/batchnorm3d.hpp"
#include "volfeat/backend/cpu/compiled_once.hpp"
#include "volfeat/backend/cpu/depth_factor.hpp"
#include "volfeat/backend/cpu/gemm_kernels.hpp"
#include "volfeat/backend/cpu/isa.hpp"
#include "volfeat/backend/cpu/packed_store.hpp"
#include "volfeat/backend/cpu/plane_ring.hpp"
#include "volfeat/backend/cpu/winograd3d_transforms.hpp"
#include "volfeat/core/precision.hpp"
#include "volfeat/ops/conv3d.hpp"

namespace volfeat::cpu {

template <class T>
class Winograd3d {
  using TileF32 = winograd::TileF32;
  using TileF32Deep = winograd::TileF32Deep;
  using TileF32Wide = winograd::TileF32Wide;
  using TileBf16 = winograd::TileBf16;
  using TileF32Depth = winograd::TileF32Depth;
  static constexpr bool kPanels = std::is_same_v<T, float>;  // float: the micro-kernels' panels
  static constexpr Index kPad = 64 / Index(sizeof(T));         // one cache line

 public:
  // 3x3x3, stride 1, dilation 1: the geometry F(2x4x4, 3x3x3) computes.
  static bool applicable(const ConvSpec& s) {
    const WindowGeometry& g = s.geometry;
    return g.kernel == std::array<Index, 3>{3, 3, 3} && g.stride == std::array<Index, 3>{1, 1, 1} &&
           g.dilation == std::array<Index, 3>{1, 1, 1};
  }

  // weight: torch order (O, I, 3, 3, 3); bias: empty or O values; float (a network's StateDict, read
  // in place) or double, transformed in double either way. Float weights whose depth slices are each
  // zero or one 3x3 S (depth_factor.hpp; inflated along D by i3d-mean or centre) run the depth-summed
  // 2D tiles unless `factoring` is kOff; double weights (the reference networks') never do. `float_tile`:
  // the tile of a float conv that is neither bf16 nor depth-factored (winograd3d_tile.hpp: F(4x4x4) is a
  // bf16 network's and, on AVX-512 and AVX2 CPUs, a float32 one's, F(4x6x6) where it wins; double always takes
  // F(2x4x4)).
  template <class W, class B = W>
  Winograd3d(const ConvSpec& spec, const std::vector<W>& weight, const std::vector<B>& bias = {},
             Precision precision = Precision::kFloat32, DepthFactoring factoring = DepthFactoring::kAuto,
             winograd::FloatTile float_tile = winograd::FloatTile::kF2x4x4)
      : spec_(spec),
        bf16_(kPanels && precision == Precision::kBf16 && gemm::bf16_available()) {
    if (!applicable(spec)) fail("winograd3d: only 3x3x3 convs with stride 1 and dilation 1");
    if (static_cast<Index>(weight.size()) != spec.weight_count())
      fail("winograd3d: ", weight.size(), " weights given, the layer needs ", spec.weight_count());
    if (!bias.empty() && static_cast<Index>(bias.size()) != spec.out_channels)
      fail("winograd3d: ", bias.size(), " biases given, the layer needs ", spec.out_channels);
    if constexpr (std::is_same_v<W, float>) {
      if (factoring == DepthFactoring::kAuto) depth_ = depth_factor(spec, weight.data());
    }
    // Depth-factored, bf16 was asked for: F(4x4) in float32 all the same. bf16 would need F(2x2) (F(2x4)
    // put a conv 1.7e-2 from float32, past issue #17's 1e-2): 4 multiplies per output at twice the
    // rate against 2.25, and 16 transformed points per 4 outputs against 36 per 16. DenseNet-121 at
    // 128^3 (inflated, Zen 4, 3 alternating runs of 5): 0.171 / 0.124 / 0.126 s against F(2x2)'s
    // 0.211 / 0.214 / 0.149 s.
    if (depth_factored()) bf16_ = false;
    if (kPanels && !bf16_ && !depth_factored()) float_tile_ = float_tile;
    const Index ci = spec.in_channels, co = spec.out_channels;
    const Index points = this->points();
    // U[xi][c_in][c_out]; float: per point, panels of 16*nv output channels, each c_in x 16*nv.
    T* u = nullptr;
    AlignedArray<float> float_u;  // bf16: U in float until it is rounded into its bf16 store
    if constexpr (kPanels) {
      nv_ = gemm::panel_vectors(co);
      pw_ = 16 * nv_;
      panels_ = (co + pw_ - 1) / pw_;
      panel_floats_ = ci * pw_;
      const size_t n = size_t(points * panels_ * panel_floats_);
      u = bf16_ ? float_u.reserve(n) : panel_store_.reserve(n);
    } else {
      u_.resize(size_t(points * ci * co));
      u = u_.data();
    }
    with_tile([&](auto tile) { transform_weights<decltype(tile)>(weight, u); });
    bias_.assign(bias.begin(), bias.end());
    if constexpr (kPanels) {
      if (bf16_) {
        // Each panel's rows i as k-pairs (U[i][o], U[i+1][o]) of bf16 (gemm_bf16.hpp), an odd C_in's
        // last pair (U[C_in-1][o], 0).
        const Index n = points * panels_;
        panel16_values_ = (ci + ci % 2) * pw_;
        Bf16* h = panel16_store_.reserve(size_t(n * panel16_values_));
#pragma omp parallel for schedule(static) if (ci * co >= 4096)
        for (Index q = 0; q < n; ++q) {
          Bf16* hq = h + q * panel16_values_;
          if (ci % 2) std::fill(hq + (ci - 1) * pw_, hq + panel16_values_, Bf16(0));
          for (Index i = 0; i < ci; ++i)
            for (Index o = 0; o < pw_; ++o) hq[(i / 2) * 2 * pw_ + o * 2 + i % 2] = round_to_bf16(u[(q * ci + i) * pw_ + o]);
        }
      }
    }
  }

  const ConvSpec& spec() const { return spec_; }
  // Transformed points per tile: 144 (F(2x4x4), float32), 216 (F(4x4x4)), 384 (F(4x6x6)) or 64 (F(2x2x2),
  // bf16); depth-factored, 36 (F(4x4), in either precision).
  int points() const {
    return with_tile([](auto tile) { return decltype(tile)::kPoints; });
  }
  // Output planes per call when run plane by plane (winograd::plane_step): 4 for F(4x4x4) and F(4x6x6),
  // else 2.
  Index plane_step() const { return winograd::plane_step(points()); }
  // Whether the weights are depth-factored: the tiles are then 2D ones on depth-summed input.
  bool depth_factored() const { return depth_.factored(); }
  Precision precision() const { return bf16_ ? Precision::kBf16 : Precision::kFloat32; }
  // Streamed weights (core/weight_file.hpp): U goes to the network's file. The double path's U (the
  // reference networks') stays in memory.
  void move_weights_to(const std::shared_ptr<WeightFile>& file) {
    panel_store_.move_to(file);
    panel16_store_.move_to(file);
  }
  // Bytes of the transformed weights (144/27 of the direct conv's, more with padded panels; half in bf16).
  size_t weight_bytes() const {
    if (bf16_) return size_t(points() * panels_ * panel16_values_) * sizeof(Bf16);
    return kPanels ? size_t(points() * panels_ * panel_floats_) * sizeof(T) : u_.size() * sizeof(T);
  }

  // out: T, or (float only) bf16, each value rounded as round_to_bf16 rounds what a T output would hold:
  // a bf16 network's dense-block features (nn/plan.hpp, Plan::bf16_buffer).
  template <class O>
  void forward(TensorView<const T> in, TensorView<O> out, const Activation<Cpu, T>& pre = {},
               const Activation<Cpu, T>& post = {}) const {
    const Dims od = spec_.output_dims(in.dims);
    if (out.dims != od) fail("winograd3d: output view ", to_string(out.dims), " but the conv produces ", to_string(od));
    if (od.voxels() <= 0) fail("winograd3d: input ", to_string(in.dims), " is smaller than the kernel");
    run(ViewRows{in, in.dims, in.ld}, od, out.data, out.ld, 0, 0, od.n, 0, od.d, pre, post);
  }

  // Output planes [z0, z0 + nz) of batch item n into `planes` (dims (1, nz, H_out, W_out, C_out), any
  // ld). A group of plane_step() planes starting at a multiple of it costs one plane of tiles; fewer
  // planes cost as much.
  void forward_planes(TensorView<const T> in, Index n, Index z0, Index nz, TensorView<T> planes,
                      const Activation<Cpu, T>& pre = {}, const Activation<Cpu, T>& post = {}) const {
    forward_planes_rows(ViewRows{in, in.dims, in.ld}, n, z0, nz, planes, pre, post);
  }

  // forward_planes reading the input through `rows` (as Conv3d::forward_planes_rows): rows.dims the
  // whole input's dims, rows.ld its channel stride, rows.row(n, iz, iy) the first channel of input row
  // (n, iz, iy). Output planes z0 .. z0 + nz - 1 read input planes z0 - pad .. z0 + nz + 1 - pad.
  template <class Rows, class O>
  void forward_planes_rows(const Rows& rows, Index n, Index z0, Index nz, TensorView<O> planes,
                           const Activation<Cpu, T>& pre = {}, const Activation<Cpu, T>& post = {}) const {
    const Dims od = spec_.output_dims(rows.dims);
    if (planes.dims != Dims{1, nz, od.h, od.w, od.c} || n < 0 || n >= od.n || z0 < 0 || nz < 1 || z0 + nz > od.d)
      fail("winograd3d: planes view ", to_string(planes.dims), " / planes (", n, ", ", z0, "+", nz,
           ") do not fit output ", to_string(od));
    run(rows, od, planes.data, planes.ld, (n * od.d + z0) * od.h * od.w, n, n + 1, z0, z0 + nz, pre, post);
  }

 private:
  // U from the torch-order weights, tile shape Tl: see the constructor.
  template <class Tl, class W>
  void transform_weights(const std::vector<W>& weight, T* u) {
    // Per input channel i (in parallel: it is most of a network's build time, DenseNet-121's 58 convs
    // 0.12 of 0.18 CPU s before the batched transform, Zen 3), the rows (point, panel, i) of U: the
    // lanes beyond C_out zeroed, then kKernelBatch output channels at a time (never across a panel: pw_
    // is a multiple of 16), so one thread's stores run along rows it alone writes, kKernelBatch
    // floats at a time.
    const Index ci = spec_.in_channels, co = spec_.out_channels;
    constexpr int kPoints = Tl::kPoints;
    constexpr int kB = winograd::kKernelBatch;
    static_assert(16 % kB == 0, "a batch of output channels must not straddle a panel");
#pragma omp parallel for schedule(static) if (ci * co >= 4096)
    for (Index i = 0; i < ci; ++i) {
      if constexpr (kPanels) {
        const Index last = (panels_ - 1) * pw_, tail = panels_ * pw_ - co;  // unused lanes of the last panel
        for (int xi = 0; xi < kPoints; ++xi)
          std::fill_n(u + ((xi * panels_ + panels_ - 1) * ci + i) * pw_ + (co - last), tail, 0.f);
      }
      for (Index o0 = 0; o0 < co; o0 += kB) {
        const int nb = int(std::min<Index>(kB, co - o0));
        const W* g[kB];
        // a depth-summed tile transforms the slice S only
        const Index offset = Tl::kDepthSum ? depth_.slice * 9 : 0;
        for (int b = 0; b < nb; ++b) g[b] = weight.data() + ((o0 + b) * ci + i) * 27 + offset;
        double t[kPoints][kB];
        winograd::kernel_transform_batch<Tl>(g, nb, t);
        for (int xi = 0; xi < kPoints; ++xi) {
          T* dst = kPanels ? u + ((xi * panels_ + o0 / pw_) * ci + i) * pw_ + o0 % pw_ : u + (xi * ci + i) * co + o0;
          for (int b = 0; b < nb; ++b) dst[b] = static_cast<T>(t[xi][b]);
        }
      }
    }
  }

  // f(Tile{}) with this conv's tile shape (winograd3d_tile.hpp): the one place that maps the conv's state
  // to its tile.
  template <class F>
  decltype(auto) with_tile(F&& f) const {
    if (depth_factored()) return f(TileF32Depth{});
    if (bf16_) return f(TileBf16{});
    switch (float_tile_) {
      case winograd::FloatTile::kF4x4x4: return f(TileF32Deep{});
      case winograd::FloatTile::kF4x6x6: return f(TileF32Wide{});
      case winograd::FloatTile::kF2x4x4: break;
    }
    return f(TileF32{});
  }

  struct ViewRows {
    TensorView<const T> in;
    Dims dims;
    Index ld;
    const T* row(Index n, Index z, Index y) const { return in.voxel(n, z, y, 0); }
  };

  // Everything one block of tiles needs. O: the output's values, T or bf16 (forward).
  template <class Rows, class O = T>
  struct Job {
    const Winograd3d* self;
    const Rows* rows;
    Dims od;
    O* out;
    Index ldo, v_base, n0, z_lo, z_hi, tz0, ty, tx, per_n, tiles, block;
    winograd::LaneAct<T> pre;
    winograd::LaneAct<T> post;
  };

  // The batched GEMM stage, point p of one block: m (rows x co) = v (rows x ci) * U[p].
  void gemm_point(int p, const T* v, T* m, Index rows) const {
    const Index ci = spec_.in_channels, co = spec_.out_channels;
    if constexpr (kPanels) {
      for (Index q = 0; q < panels_; ++q) {
        const gemm::Segment seg{v, panel_store_.data() + (p * panels_ + q) * panel_floats_, ci};
        gemm::Epilogue ep;
        ep.cols = int(std::min(pw_, co - q * pw_));
        gemm::gemm_rows(&seg, 1, ci, int(nv_), rows, m + q * pw_, co, ep, 0);
      }
    } else {
      using RowMatrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
      Eigen::Map<const RowMatrix> a(v, rows, ci), b(u_.data() + p * ci * co, ci, co);
      Eigen::Map<RowMatrix> c(m, rows, co);
      c.noalias() = a * b;
    }
  }

  // The points() GEMMs of one block: M[p] = V[p] * U[p], V's points vps apart, M's mps apart; V bf16
  // (the bf16 tile) or T.
  template <class VT>
  void gemm_points(const VT* v, Index vps, T* m, Index mps, Index rows) const {
    for (int p = 0; p < points(); ++p) {
      if constexpr (std::is_same_v<VT, Bf16>) gemm_point_bf16(p, v + p * vps, m + p * mps, rows);
      else gemm_point(p, v + p * vps, m + p * mps, rows);
    }
  }

  // gemm_point in bf16: v is the block's V[p], bf16.
  void gemm_point_bf16(int p, const Bf16* v, T* m, Index rows) const {
    const Index ci = spec_.in_channels, co = spec_.out_channels;
    for (Index q = 0; q < panels_; ++q) {
      const gemm::Bf16Segment seg{v, panel16_store_.data() + (p * panels_ + q) * panel16_values_, ci};
      gemm::Epilogue ep;
      ep.cols = int(std::min(pw_, co - q * pw_));
      gemm::gemm_rows_bf16(&seg, 1, ci, int(nv_), rows, m + q * pw_, co, ep);
    }
  }

  // A thread's V (slot 2) and M (slot 3), reused across blocks, layers and passes, 64-byte aligned (the
  // std::vectors they were came 16-byte aligned from the heap, so a 64-byte vector store could straddle
  // two cache lines; no difference in whole-network time was measurable on the Zen 4). The bf16 tile's
  // V is bf16 (slot 2 of the bf16 scratch).
  template <class VT = T>
  static VT* scratch(int slot, size_t n) {
    if constexpr (std::is_same_v<VT, Bf16>) {
      return thread_scratch_bf16(slot, n);
    } else if constexpr (std::is_same_v<T, float>) {
      return thread_scratch(slot, n);
    } else {
      thread_local std::array<AlignedArray<T>, 3> s;
      return s[size_t(slot - 2)].reserve(n);
    }
  }

  // The output origin (n, z, y, x) of tile t of a run: tiles in order of n, plane of tiles, row, column.
  template <class Tl, class Rows, class O>
  static VOLFEAT_WINOGRAD_INLINE void tile_origin(const Job<Rows, O>& j, Index t, Index& n, Index& z, Index& y,
                                                  Index& x);

  // Phase 1 of a depth-summed block (Tl::kDepthSum): V from sums over the planes the kernel keeps.
  template <int VB, class Tl, class Rows, class O>
  static VOLFEAT_WINOGRAD_INLINE void depth_summed_input(const Job<Rows, O>& j, Index t0, Index rows, T* vbuf,
                                                         Index vps);

  // Block b of a run, the three phases (this file's head), in vectors of VB bytes; block_generic, block_avx2
  // and block_avx512 compile it for each instruction set (run_tiles picks one by cpu_isa()).
  template <int VB, class Tl, class Rows, class O>
  static VOLFEAT_WINOGRAD_INLINE void block_impl(const Job<Rows, O>& j, Index b);
  template <class Tl, class Rows, class O>
  static void block_generic(const Job<Rows, O>& j, Index b) {
    block_impl<16, Tl>(j, b);
  }
#if VOLFEAT_HAVE_ISA_VARIANTS
  template <class Tl, class Rows, class O>
  VOLFEAT_TARGET_AVX2 static void block_avx2(const Job<Rows, O>& j, Index b) {
    block_impl<32, Tl>(j, b);
  }
  template <class Tl, class Rows, class O>
  VOLFEAT_TARGET_AVX512 static void block_avx512(const Job<Rows, O>& j, Index b) {
    block_impl<64, Tl>(j, b);
  }
#endif

  // Output voxels (n, z, y, x) with n in [n0, n1), z in [z_lo, z_hi), stored at
  // out + (((n*D + z)*H + y)*W + x - v_base) * ldo.
  // Defined in winograd3d_run_impl.hpp, not inline: a program built with VOLFEAT_SEPARATE_KERNELS compiles
  // its float instances once (compiled_once.hpp).
  template <class Rows, class O>
  void run(const Rows& rows, const Dims& od, O* out, Index ldo, Index v_base, Index n0, Index n1, Index z_lo,
           Index z_hi, const Activation<Cpu, T>& pre, const Activation<Cpu, T>& post) const;
  template <class Tl, class Rows, class O>
  void run_tiles(const Rows& rows, const Dims& od, O* out, Index ldo, Index v_base, Index n0, Index n1, Index z_lo,
                 Index z_hi, const Activation<Cpu, T>& pre, const Activation<Cpu, T>& post) const;

  ConvSpec spec_;
  std::vector<T> bias_;
  std::vector<T> u_;  // double: U[xi][c_in][c_out]
  // float: U[xi] in panels of pw_ = 16*nv_ output channels, each c_in x pw_ (gemm_kernels.hpp's layout)
  Index nv_ = 1, pw_ = 16, panels_ = 0, panel_floats_ = 0;
  PackedStore<float> panel_store_;
  // bf16: U as k-pairs of bf16 instead (gemm_bf16.hpp), panel16_values_ per panel
  bool bf16_ = false;  // also the tile: F(2x2x2) in bf16 (never when depth-factored)
  // the tile of a float32 conv that is not depth-factored (the constructor's float_tile; double: F(2x4x4))
  winograd::FloatTile float_tile_ = winograd::FloatTile::kF2x4x4;
  // Depth-factored weights (depth_factor.hpp, as Conv3d's direct path holds them): the slice transformed
  // and the planes m[kd] a depth-summed tile adds; empty: 3D tiles
  DepthFactor depth_;
  Index panel16_values_ = 0;
  PackedStore<Bf16> panel16_store_;
};

}  // namespace volfeat::cpu

#include "volfeat/backend/cpu/winograd3d_run_impl.hpp"
