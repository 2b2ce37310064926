#pragma once
// Cpu conv with 1D Winograd along W, direct along D and H: for wide kernels on few input channels,
// DenseNet's 7x7x7 stride-2 stem on one CT channel (13.6 % of DenseNet121-3D's FLOPs, and a quarter of
// a float32 pass, that no 3D Winograd tile covers: winograd3d.hpp takes 3x3x3 stride-1 convs only).
//
// Along W a stride-s conv is s stride-1 correlations, one per phase q < s: output x reads input
// x*s - pad + kw, and the taps kw = q, q + s, q + 2s, ... read the samples s*j + q of the padded row
// (j = x + t for tap t of the phase). The stem's phases have 4 taps (kw 0, 2, 4, 6) and 3 (1, 3, 5).
// Each phase runs as Winograd F(4, r) (Toom-Cook, points 0, 1, -1, 2, -2, 1/2 and infinity, as many
// as 4 + r - 1 needs): 4 outputs from 4 + r - 1 transformed points, so the stem pays 7 + 6 = 13
// multiplies per 4 outputs and (kd, kh) row instead of 28, 2.15x fewer.
//
// The transform along W acts on input columns only, so it runs once per input plane, not per output row:
// per output plane (n, z), the input planes it reads that a ring (Planes) does not hold yet (the stem's plane
// z + 1 reads 5 of plane z's 7) are
//   1. transposed, activated and zero-padded: P[block][col][y' - S*block][c_in], col the padded input x
//      (x + pad_w), y' the padded input y, a block the rows that R consecutive output rows read (S =
//      R*stride_h rows on from block to block, block_rows_ = S - stride_h + the kernel's reach along H,
//      overlapping; the stem: R = 5, 15 rows, one cache line per column);
//   2. transformed along W, a block's column at a time: TP[point][block][tile][...] = sum_i B^T[j][i]
//      P[block][s*(4*tile + i) + q][...] for point j of phase q, into the ring.
// Then per output row (n, z, y), in chunks of up to kChunkTiles tiles of 4 outputs along W:
//   3. for each point, M[point] (tiles x C_out) = sum over kd of TP_kd[point][block][tile][row y's kH*C_in
//      values] (tiles x kH*C_in) * U[point][kd] (kH*C_in x C_out), U the transformed weights: one GEMM
//      segment per kd whose plane is inside the input, read in place (row stride: a block's column), on the
//      run-time dispatched micro-kernels (gemm_kernels.hpp), as rows_fast reads its row buffers;
//   4. output transform, a vector of output channels at a time: y[4*tile + i] = sum over the phases' points
//      of A^T[i][j] M[point][tile], then the bias and the post-activation (folded BN, ReLU), stored through
//      the output's channel stride.
// How it got here (perf, 108x256x256, Zen 4, the stem's conv+pool): transforming per output row, from its
// 49 input rows gathered into columns of K values, spent longer in the gathers than in the GEMMs (33 % of
// the samples against 26 %); gathering from transposed planes, 38 % on loads a cache line each; from planes
// in blocks, the row loop (gathers and transforms) still 29 % against the GEMMs' 36 %, the stem 0.162 s
// where the direct conv took 0.224 s. Transformed once per plane, each input value is transformed once for
// every 3.5 output planes instead of once per output row that reads it (12x fewer), nothing is gathered, and
// the stem takes 0.136 s (the GEMMs 51 % of its samples).
// The transforms are compiled for AVX-512, AVX2 and the baseline (winograd3d_transforms.hpp's vectors).
//
// Accuracy: F(4, 4) with these points scales by up to 8 (A^T's row (1, -1, 8, -8, 1/8 ...)). A model of the
// stem (bench/stem_winograd_error.py, bench/README.md "Zen 4 again") gives 6e-8 to 1.3e-7 relative rms in
// float32 against 3.5e-8 direct; tests/test_winograd_along_w.cpp holds it to the direct conv's bound.
// float32 only: a bf16 network keeps its stem on the bf16 direct kernels (winograd3d_select.hpp says why).
#include <omp.h>

#include <algorithm>
#include <array>
#include <memory>
#include <vector>

#include "volfeat/backend/cpu/batchnorm3d.hpp"
#include "volfeat/backend/cpu/gemm_kernels.hpp"
#include "volfeat/backend/cpu/isa.hpp"
#include "volfeat/backend/cpu/packed_store.hpp"
#include "volfeat/backend/cpu/toom_cook.hpp"
#include "volfeat/backend/cpu/winograd_along_w_layout.hpp"
#include "volfeat/backend/cpu/winograd3d_transforms.hpp"
#include "volfeat/core/error.hpp"
#include "volfeat/ops/conv3d.hpp"

namespace volfeat::cpu {

class WinogradAlongW {
 public:
  static constexpr int kM = int(winograd_w::kM);  // outputs per tile along W
  static constexpr int kMaxPhaseTaps = 4;    // F(4, 4): 7 points, the last of them 1/2
  static constexpr Index kChunkTiles = winograd_w::kChunkTiles;  // tiles per chunk of a row (winograd_along_w_layout.hpp)
  static constexpr Index kMaxKernelD = 64;

  // The transformed input planes of one input (the header's TP), a ring of (kD - 1)*dilation_d + 1 planes.
  // Made by the caller and passed to every run over the same input, in increasing output planes (as
  // ConvActMaxPool computes the stem's), so that each input plane is transformed once; it resets itself
  // when the input's address, shape or the output grid change. Not for two inputs at once, and not across
  // a change of the input's values at the same address.
  class Planes {
    friend class WinogradAlongW;
    AlignedFloats store_;
    std::vector<Index> tag_;  // per slot: the plane n*D_in + iz it holds, or -1
    winograd_w::Layout layout_;  // R = block_outputs, S = block_stride
    const float* key_ = nullptr;
    Dims key_in_, key_out_;
    Index key_ld_ = 0;

   public:
    // Bytes the ring holds allocated (nn/memory_estimate.hpp counts winograd_w::layout's ring_floats).
    size_t bytes() const { return store_.size() * sizeof(float); }
  };

  // Dilation 1 along W, every phase 1 .. kMaxPhaseTaps taps (a stride-2 kernel of 2 .. 8, stride 1 of 1 .. 4),
  // a kernel at most kMaxKernelD deep, and at most kMaxSegments GEMM segments (one per kd, or per (kd, kh)
  // where dilation_h > 1).
  static constexpr Index kMaxSegments = 512;
  static bool applicable(const ConvSpec& s) {
    const WindowGeometry& g = s.geometry;
    const Index sw = g.stride[2], kw = g.kernel[2];
    return g.dilation[2] == 1 && sw >= 1 && kw >= sw && (kw + sw - 1) / sw <= kMaxPhaseTaps && s.in_channels >= 1 &&
           s.out_channels >= 1 && g.kernel[0] <= kMaxKernelD &&
           g.kernel[0] * (g.dilation[1] == 1 ? 1 : g.kernel[1]) <= kMaxSegments;
  }

  // weight: torch order (O, I, kD, kH, kW); bias: null or O values.
  WinogradAlongW(const ConvSpec& spec, const float* weight, size_t weight_count, const float* bias, size_t bias_count)
      : spec_(spec) {
    if (!applicable(spec)) fail("winograd along W: this conv's geometry has no 1D Winograd along W");
    if (static_cast<Index>(weight_count) != spec.weight_count())
      fail("winograd along W: ", weight_count, " weights given, the layer needs ", spec.weight_count());
    if (bias_count != 0 && static_cast<Index>(bias_count) != spec.out_channels)
      fail("winograd along W: ", bias_count, " biases given, the layer needs ", spec.out_channels);
    bias_.assign(bias, bias + bias_count);
    const WindowGeometry& g = spec.geometry;
    const Index sw = g.stride[2], kw_n = g.kernel[2];
    for (Index q = 0; q < sw; ++q) {
      Phase ph;
      ph.q = q;
      ph.t = winograd_w::toom_cook(kM, int(winograd_w::phase_taps(kw_n, sw, q)));
      ph.p0 = points_;
      ph.at.assign(ph.t.at.begin(), ph.t.at.end());
      ph.bt.assign(ph.t.bt.begin(), ph.t.bt.end());
      points_ += ph.t.n;
      phases_.push_back(std::move(ph));
    }
    group_ = g.kernel[1] * spec.in_channels;
    k_ = g.kernel[0] * group_;
    pack_weights(weight);
  }

  const ConvSpec& spec() const { return spec_; }
  // Transformed points per (kd, kh, c_in) row and 4 outputs along W (the stem: 7 + 6 = 13).
  Index points() const { return points_; }
  void move_weights_to(const std::shared_ptr<WeightFile>& file) { u_store_.move_to(file); }

  // Output rows [row0, row1) of grid od (row = (n*D + z)*H + y), voxel (n, z, y, x) stored at
  // out + ((row*W + x) - v_base)*ldo. rows: the input (rows.dims, rows.ld, rows.row(n, z, y)).
  // planes: the caller's ring of transformed input planes over this input (Planes), or null for one of
  // this call's own.
  template <class Rows>
  void run(const Rows& rows, const Dims& od, float* out, Index ldo, Index v_base, Index row0, Index row1,
           const Activation<Cpu, float>& pre, const Activation<Cpu, float>& post, Planes* planes = nullptr) const {
    if (row0 >= row1) return;
    Planes own;
    Planes& pl = planes ? *planes : own;
    const WindowGeometry& g = spec_.geometry;
    const Dims& id = rows.dims;
    Job<Rows> j{this, &rows, od, out, ldo, v_base, {}, {}, &pl, {}};
    j.pre = {pre.bn ? pre.bn->scale() : nullptr, pre.bn ? pre.bn->shift() : nullptr, pre.relu};
    j.post = {post.bn ? post.bn->scale() : nullptr, post.bn ? post.bn->shift() : nullptr, post.relu};
    reset_if_new(pl, rows, od);
    void (*row_fn)(const Job<Rows>&, Index) = &row_generic<Rows>;
    void (*plane_fn)(const Job<Rows>&, Index, Index, float*) = &plane_generic<Rows>;
#if VOLFEAT_HAVE_ISA_VARIANTS
    if (cpu_isa() >= CpuIsa::kAvx2) row_fn = &row_avx2<Rows>, plane_fn = &plane_avx2<Rows>;
    if (cpu_isa() >= CpuIsa::kAvx512) row_fn = &row_avx512<Rows>, plane_fn = &plane_avx512<Rows>;
#endif
    const Index slots = Index(pl.tag_.size());
    for (Index plane = row0 / od.h; plane * od.h < row1; ++plane) {
      const Index n = plane / od.d, z = plane % od.d;
      // The input planes output plane z reads, transformed where the ring does not hold them yet.
      Index todo[kMaxKernelD], ntodo = 0;
      for (Index kd = 0; kd < g.kernel[0]; ++kd) {
        const Index iz = z * g.stride[0] - g.padding[0] + kd * g.dilation[0];
        j.plane[size_t(kd)] = nullptr;
        if (iz < 0 || iz >= id.d) continue;
        const Index slot = iz % slots;
        j.plane[size_t(kd)] = pl.store_.data() + slot * pl.layout_.plane_floats;
        if (pl.tag_[size_t(slot)] != n * id.d + iz) {
          pl.tag_[size_t(slot)] = n * id.d + iz;
          todo[ntodo++] = iz;
        }
      }
#pragma omp parallel for schedule(dynamic, 1)
      for (Index t = 0; t < ntodo; ++t) plane_fn(j, n, todo[t], pl.store_.data() + (todo[t] % slots) * pl.layout_.plane_floats);
      const Index r0 = std::max(row0, plane * od.h), r1 = std::min(row1, (plane + 1) * od.h);
#pragma omp parallel for schedule(dynamic, 1)
      for (Index row = r0; row < r1; ++row) row_fn(j, row);
    }
  }

 private:
  struct Phase {
    Index q = 0;   // the phase: taps kw = q + s*t read padded samples s*j + q
    Index p0 = 0;  // its first point's index among all points
    winograd_w::Transform1d t;
    std::vector<float> at, bt;  // t's A^T and B^T in float
  };
  template <class Rows>
  struct Job {
    const WinogradAlongW* self;
    const Rows* rows;
    Dims od;
    float* out;
    Index ldo, v_base;
    winograd::LaneAct<float> pre, post;
    const Planes* planes;
    std::array<const float*, kMaxKernelD> plane;  // per kd: the transformed input plane, or null (padding)
  };

  // Sizes the ring for this input and output grid, and empties it, unless it already is.
  template <class Rows>
  void reset_if_new(Planes& pl, const Rows& rows, const Dims& od) const {
    const WindowGeometry& g = spec_.geometry;
    const Dims& id = rows.dims;
    const float* key = rows.row(0, 0, 0);
    if (pl.key_ == key && pl.key_in_ == id && pl.key_out_ == od && pl.key_ld_ == rows.ld && !pl.tag_.empty()) return;
    pl.layout_ = winograd_w::layout(g, spec_.in_channels, od.h, od.w);
    const Index slots = pl.layout_.slots;
    pl.store_.reserve(size_t(slots * pl.layout_.plane_floats));
    pl.tag_.assign(size_t(slots), -1);
    pl.key_ = key, pl.key_in_ = id, pl.key_out_ = od, pl.key_ld_ = rows.ld;
  }

  // U[panel][point][k][pw]: G g per phase for each (o, kd, kh, c_in), in the GEMM's B panels.
  void pack_weights(const float* weight) {
    const WindowGeometry& g = spec_.geometry;
    const Index ci_n = spec_.in_channels, co = spec_.out_channels, sw = g.stride[2], kw_n = g.kernel[2];
    nv_ = gemm::panel_vectors(co);
    pw_ = 16 * nv_;
    panels_ = (co + pw_ - 1) / pw_;
    panel_floats_ = points_ * k_ * pw_;
    float* u = u_store_.reserve(size_t(panels_ * panel_floats_));
    std::fill(u, u + panels_ * panel_floats_, 0.f);
    for (Index o = 0; o < co; ++o)
      for (Index ci = 0; ci < ci_n; ++ci)
        for (Index kd = 0; kd < g.kernel[0]; ++kd)
          for (Index kh = 0; kh < g.kernel[1]; ++kh) {
            const float* w = weight + (((o * ci_n + ci) * g.kernel[0] + kd) * g.kernel[1] + kh) * kw_n;
            const Index k = (kd * g.kernel[1] + kh) * ci_n + ci;
            for (const Phase& ph : phases_)
              for (int j = 0; j < ph.t.n; ++j) {
                double v = 0;
                for (int t = 0; t < ph.t.r; ++t) v += ph.t.g[size_t(j * ph.t.r + t)] * double(w[ph.q + sw * t]);
                u[(o / pw_) * panel_floats_ + ((ph.p0 + j) * k_ + k) * pw_ + o % pw_] = float(v);
              }
          }
  }

  template <class Rows>
  static void row_generic(const Job<Rows>& j, Index row) {
    j.self->template row_impl<16>(j, row);
  }
  template <class Rows>
  static void plane_generic(const Job<Rows>& j, Index n, Index iz, float* dst) {
    j.self->template plane_impl<16>(j, n, iz, dst);
  }
#if VOLFEAT_HAVE_ISA_VARIANTS
  template <class Rows>
  VOLFEAT_TARGET_AVX2 static void row_avx2(const Job<Rows>& j, Index row) {
    j.self->template row_impl<32>(j, row);
  }
  template <class Rows>
  VOLFEAT_TARGET_AVX512 static void row_avx512(const Job<Rows>& j, Index row) {
    j.self->template row_impl<64>(j, row);
  }
  template <class Rows>
  VOLFEAT_TARGET_AVX2 static void plane_avx2(const Job<Rows>& j, Index n, Index iz, float* dst) {
    j.self->template plane_impl<32>(j, n, iz, dst);
  }
  template <class Rows>
  VOLFEAT_TARGET_AVX512 static void plane_avx512(const Job<Rows>& j, Index n, Index iz, float* dst) {
    j.self->template plane_impl<64>(j, n, iz, dst);
  }
#endif

  // Steps 1 and 2 of the header for input plane (n, iz): P in this thread's scratch, then TP into dst.
  template <int B, class Rows>
  VOLFEAT_WINOGRAD_INLINE void plane_impl(const Job<Rows>& j, Index n, Index iz, float* dst) const {
    const WindowGeometry& g = spec_.geometry;
    const Rows& in = *j.rows;
    const Dims& id = in.dims;
    const Planes& pl = *j.planes;
    const Index ci_n = spec_.in_channels, pad_w = g.padding[2], pad_h = g.padding[1];
    // 1. P[block][col][...], zeros in the padding.
    const Index p_floats = pl.layout_.p_floats();
    float* p = thread_scratch(5, size_t(p_floats));
    std::fill(p, p + p_floats, 0.f);
    const Index x_end = std::min(id.w, pl.layout_.cols - pad_w);
    std::vector<const float*> src(size_t(pl.layout_.block_rows));
    for (Index b = 0; b < pl.layout_.blocks; ++b) {
      Index i0 = -1, i1 = -1;  // the block's rows iy = S*b + i - pad_h inside the input: i in [i0, i1)
      for (Index i = 0; i < pl.layout_.block_rows; ++i) {
        const Index iy = pl.layout_.block_stride * b + i - pad_h;
        if (iy < 0 || iy >= id.h) continue;
        if (i0 < 0) i0 = i;
        i1 = i + 1;
        src[size_t(i)] = in.row(n, iz, iy);
      }
      if (i0 < 0) continue;
      for (Index x = 0; x < x_end; ++x) {
        float* d = p + (b * pl.layout_.cols + x + pad_w) * pl.layout_.block_floats;
        for (Index i = i0; i < i1; ++i)
          for (Index ci = 0; ci < ci_n; ++ci) {
            float v = src[size_t(i)][x * in.ld + ci];
            if (j.pre.scale) v = v * j.pre.scale[ci] + j.pre.shift[ci];
            if (j.pre.relu) v = v < 0.f ? 0.f : v;  // NaN stays NaN, as torch's relu keeps it
            d[i * ci_n + ci] = v;
          }
      }
    }
    // 2. TP[point][block][tile][...].
    for (const Phase& ph : phases_) {
      switch (ph.t.n) {
        case 4: transform_plane<4, B>(ph, p, dst, pl); break;
        case 5: transform_plane<5, B>(ph, p, dst, pl); break;
        case 6: transform_plane<6, B>(ph, p, dst, pl); break;
        default: transform_plane<7, B>(ph, p, dst, pl); break;
      }
    }
  }

  template <int N, int B>
  VOLFEAT_WINOGRAD_INLINE void transform_plane(const Phase& ph, const float* p, float* tp, const Planes& pl) const {
    using V = winograd::Vec<float, B>;
    constexpr int kL = winograd::kLanes<float, B>;
    const Index sw = spec_.geometry.stride[2], bf = pl.layout_.block_floats;
    float bt[N * N];
    std::copy(ph.bt.begin(), ph.bt.end(), bt);
    for (Index b = 0; b < pl.layout_.blocks; ++b)
      for (Index t = 0; t < pl.layout_.tiles; ++t) {
        const float* col = p + (b * pl.layout_.cols + sw * kM * t + ph.q) * bf;  // the tile's first point's column
        for (Index l = 0; l < bf; l += kL) {
          V d[N];
          VOLFEAT_UNROLL(8)
          for (int i = 0; i < N; ++i) winograd::load<float, B>(d[i], col + sw * i * bf + l, kL);
          VOLFEAT_UNROLL(8)
          for (int q = 0; q < N; ++q) {
            V acc = bt[q * N] * d[0];
            VOLFEAT_UNROLL(8)
            for (int i = 1; i < N; ++i) acc += bt[q * N + i] * d[i];
            winograd::store<float, B>(tp + (((ph.p0 + q) * pl.layout_.blocks + b) * pl.layout_.tiles + t) * bf + l, acc, kL);
          }
        }
      }
  }

  // Steps 3 and 4 of the header for one output row, in chunks of tiles.
  template <int B, class Rows>
  VOLFEAT_WINOGRAD_INLINE void row_impl(const Job<Rows>& j, Index row) const {
    using V = winograd::Vec<float, B>;
    constexpr int kL = winograd::kLanes<float, B>;
    const WindowGeometry& g = spec_.geometry;
    const Dims& od = j.od;
    const Planes& pl = *j.planes;
    const Index y = row % od.h, ci_n = spec_.in_channels;
    const Index tiles = pl.layout_.tiles, chunk = std::min(tiles, kChunkTiles), bf = pl.layout_.block_floats;
    float* m_buf = thread_scratch(6, size_t(pl.layout_.m_floats(pw_)));
    // Row y's block, and the offset of its tap kh = 0 in a block's column.
    const Index block = y / pl.layout_.block_outputs;
    const Index row_off = (y * g.stride[1] - block * pl.layout_.block_stride) * ci_n;
    // The GEMM's segments: per kd inside the input, its kH*C_in values (dilation 1 along H), or one per
    // (kd, kh) of C_in values.
    const bool merged = g.dilation[1] == 1;
    gemm::Segment segs[kMaxSegments];

    for (Index t0 = 0; t0 < tiles; t0 += chunk) {
      const Index nt = std::min(chunk, tiles - t0);
      for (Index panel = 0; panel < panels_; ++panel) {
        // 3. M[point] = sum over the segments of TP rows * U rows.
        gemm::Epilogue ep;
        ep.cols = int(pw_);
        for (Index p = 0; p < points_; ++p) {
          const float* u = u_store_.data() + panel * panel_floats_ + p * k_ * pw_;
          int ns = 0;
          for (Index kd = 0; kd < g.kernel[0]; ++kd) {
            const float* tp = j.plane[size_t(kd)];
            if (!tp) continue;
            const float* a = tp + ((p * pl.layout_.blocks + block) * tiles + t0) * bf + row_off;
            if (merged) {
              segs[ns++] = {a, u + kd * group_ * pw_, group_};
            } else {
              for (Index kh = 0; kh < g.kernel[1]; ++kh)
                segs[ns++] = {a + kh * g.dilation[1] * ci_n, u + (kd * g.kernel[1] + kh) * ci_n * pw_, ci_n};
            }
          }
          float* m = m_buf + p * nt * pw_;
          if (ns == 0) std::fill(m, m + nt * pw_, 0.f);  // every plane in the padding
          else gemm::gemm_rows(segs, ns, bf, int(nv_), nt, m, pw_, ep, 0);
        }
        // 4. outputs 4*(t0 + t) + i, channels panel*pw + c.
        const Index o0 = panel * pw_, cols_out = std::min(pw_, spec_.out_channels - o0);
        for (Index t = 0; t < nt; ++t) {
          const Index x0 = kM * (t0 + t), outs = std::min<Index>(kM, od.w - x0);
          float* dst = j.out + ((row * od.w + x0) - j.v_base) * j.ldo + o0;
          for (Index c = 0; c < cols_out; c += kL) {
            const int nl = int(std::min<Index>(kL, cols_out - c));
            V y0 = {}, y1 = {}, y2 = {}, y3 = {};
            for (const Phase& ph : phases_) {
              const int pn = ph.t.n;
              const float* at = ph.at.data();
              for (int q = 0; q < pn; ++q) {
                V mv;
                winograd::load<float, B>(mv, m_buf + ((ph.p0 + q) * nt + t) * pw_ + c, kL);
                y0 += at[q] * mv;
                y1 += at[pn + q] * mv;
                y2 += at[2 * pn + q] * mv;
                y3 += at[3 * pn + q] * mv;
              }
            }
            V bv = {};
            if (!bias_.empty()) winograd::load<float, B>(bv, bias_.data() + o0 + c, nl);
            const V* ys[kM] = {&y0, &y1, &y2, &y3};
            for (Index i = 0; i < outs; ++i) {
              V v = *ys[i] + bv;
              j.post.template apply<B>(v, o0 + c, nl);
              winograd::store<float, B>(dst + i * j.ldo + c, v, nl);
            }
          }
        }
      }
    }
  }

  ConvSpec spec_;
  std::vector<float> bias_;
  std::vector<Phase> phases_;
  Index points_ = 0;
  Index group_ = 0;  // kH*C_in: the values of one kd, one GEMM segment
  Index k_ = 0;      // rows (kd, kh, c_in) of U per point
  Index nv_ = 1, pw_ = 16, panels_ = 0, panel_floats_ = 0;
  PackedStore<float> u_store_;
};

}  // namespace volfeat::cpu
