#pragma once
// Cpu Conv3d.
//
// float (the fast path): weights are packed once into panels of 16*NV output channels,
// B[k][16*NV] with k ordered (tap, c_in), tap = (kd*kH + kh)*kW + kw, so that one micro-kernel of
// gemm_kernels.hpp keeps an R x 16*NV block of outputs in registers over all of K. The kernels (and
// NV) are those of the instruction set chosen at run time (AVX-512, AVX2+FMA or generic, isa.hpp).
//  * pointwise (1x1x1, stride 1, no padding): tiles of up to 512 voxels are packed, with the fused
//    pre-activation applied, into an A tile cut into 128-wide k chunks (row stride 128, one segment per
//    chunk); the tile stays in L2 while every panel of B passes over it.
//  * any other geometry (3x3x3 dense-layer convs, the 7^3 stride-2 stem, test shapes): per output row
//    (n, z, y), each input row it touches (kd, kh) is copied once, activated and zero-padded along W,
//    into a per-thread buffer; a block of R consecutive output voxels then reads tap (kd, kh, kw) of
//    row r at buffer + ((x0 + r)*stride_w + kw*dilation_w)*C_in: the row stride is constant, so
//    taps are kernel segments (kw taps merge into one when dilation_w = 1) and no im2col exists.
//    Rows whose kd/kh fall into the padding contribute nothing and are skipped.
//    A depth-factored kernel (backend/cpu/depth_factor.hpp: what inflating along D with i3d-mean or
//    centre makes) is packed as its 2D slice; per (kh) the input rows of the kd it keeps are summed,
//    activated first, into one buffer row, and the GEMM runs over kH*kW taps instead of kD*kH*kW.
//    Where B's panel outgrows L2 (VGG's and ResNet's 256- and 512-channel convs), a band of output rows
//    runs as one row instead (bands_fast, backend/cpu/conv_bands.hpp): its input rows copied once into a
//    slab of whole padded rows (in stride_h row phases), output (y, x) at long-row position
//    (y - y0)*W_padded/stride_w + x, so that one GEMM with B in K groups covers the band; the padded
//    columns' outputs are computed and dropped.
// Both parallelise with OpenMP over voxel tiles / output rows. The post-activation (bias, BN, ReLU)
// runs in the kernel's epilogue on registers. forward_residual (ResNet's conv -> bn -> `+= identity`
// -> relu, ConvAddAct) adds the residual and applies the relu to each voxel tile once all its panels
// are stored (whole rows: the identity read as one stream) / to each panel of an output row right
// after the kernel stored it, while they are still in L1/L2, instead of in a pass of its own over
// memory; the values are those of the composition (same sums, same order).
//
// bf16 (Precision::kBf16, float only, where bf16_available()): the same two paths with the weights
// packed as bf16 k-pairs (gemm_bf16.hpp) and each A tile / input row activated in float and rounded to
// bf16 as it is written (the buffers hold bf16); the bf16 kernels accumulate in float and share the
// epilogue. B is cut into units, one per kernel segment (a tap row of kW*C_in when kw taps merge, else
// a tap of C_in; the whole K for pointwise), each padded to an even length with a zero row, so every
// segment starts on a pair: an odd C_in (the gray stem) runs bf16 too.
//
// double: implicit GEMM with Eigen over tiles of output voxels (A tile packed with the
// pre-activation, A*W into the output view).
#include <Eigen/Core>
#include <algorithm>
#include <cstdlib>
#include <memory>
#include <type_traits>
#include <vector>

#include "volfeat/backend/cpu/add.hpp"
#include "volfeat/backend/cpu/batchnorm3d.hpp"
#include "volfeat/backend/cpu/compiled_once.hpp"
#include "volfeat/backend/cpu/conv_bands.hpp"
#include "volfeat/backend/cpu/depth_factor.hpp"
#include "volfeat/backend/cpu/gemm_kernels.hpp"
#include "volfeat/backend/cpu/packed_store.hpp"
#include "volfeat/backend/cpu/paired_tap_rows.hpp"
#include "volfeat/backend/cpu/parallel.hpp"
#include "volfeat/backend/cpu/plane_ring.hpp"
#include "volfeat/backend/cpu/winograd3d.hpp"
#include "volfeat/backend/cpu/winograd_along_w.hpp"
#include "volfeat/core/precision.hpp"
#include "volfeat/ops/conv3d.hpp"

namespace volfeat {

template <class T>
class Conv3d<Cpu, T> {
  using RowMatrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  using StridedMap = Eigen::Map<RowMatrix, Eigen::Unaligned, Eigen::OuterStride<>>;
  using ConstStridedMap = Eigen::Map<const RowMatrix, Eigen::Unaligned, Eigen::OuterStride<>>;
  static constexpr bool kFast = std::is_same_v<T, float>;
  static constexpr Index kChunk = 128;  // k chunk of a packed pointwise A tile (its row stride)

 public:
  Conv3d() = default;
  // weight: torch order (O, I, kD, kH, kW); bias: empty or O values.
  Conv3d(const ConvSpec& spec, const std::vector<double>& weight, const std::vector<double>& bias = {},
         Precision precision = Precision::kFloat32)
      : spec_(spec), bf16_(runs_bf16(precision)) {
    if (static_cast<Index>(weight.size()) != spec.weight_count())
      fail("conv3d: ", weight.size(), " weights given, the layer needs ", spec.weight_count());
    if (!bias.empty() && static_cast<Index>(bias.size()) != spec.out_channels)
      fail("conv3d: ", bias.size(), " biases given, the layer needs ", spec.out_channels);
    bias_.assign(bias.begin(), bias.end());
    pack_weights(weight.data());
  }
  // The same from float data (torchvision's dtype, the float StateDict's): no double copy of the
  // weights is made; identical packing.
  // Where the weights are depth-factored (cpu::depth_factor) and `factoring` allows it, the float path
  // packs their 2D slice and sums input rows along depth (depth_factored()).
  Conv3d(const ConvSpec& spec, const float* weight, size_t weight_count, const float* bias = nullptr,
         size_t bias_count = 0, Precision precision = Precision::kFloat32,
         DepthFactoring factoring = DepthFactoring::kAuto)
      : spec_(spec), bf16_(runs_bf16(precision)) {
    if (static_cast<Index>(weight_count) != spec.weight_count())
      fail("conv3d: ", weight_count, " weights given, the layer needs ", spec.weight_count());
    if (bias_count != 0 && static_cast<Index>(bias_count) != spec.out_channels)
      fail("conv3d: ", bias_count, " biases given, the layer needs ", spec.out_channels);
    bias_.assign(bias, bias + bias_count);
    if constexpr (kFast) {
      if (factoring == DepthFactoring::kAuto && !pointwise()) depth_ = cpu::depth_factor(spec, weight);
      if (depth_.factored()) {
        const std::vector<float> slice = cpu::depth_factor_slice(spec, weight, depth_);
        pack_weights(slice.data(), spec.geometry.kernel[1] * spec.geometry.kernel[2]);
        return;
      }
    }
    pack_weights(weight);
  }
  // A conv that runs as Winograd from the start (ConvAlgorithm<Cpu, float>::make): no direct weights
  // are packed, the Winograd conv holds the weights and the bias.
  Conv3d(const ConvSpec& spec, std::shared_ptr<const cpu::Winograd3d<T>> winograd) : spec_(spec) {
    set_winograd(std::move(winograd));
  }
  // A float conv that runs as 1D Winograd along W (the stem: winograd_along_w.hpp), which holds the
  // weights and the bias; forward, forward_planes and forward_planes_rows run it.
  Conv3d(const ConvSpec& spec, std::shared_ptr<const cpu::WinogradAlongW> along_w)
      : spec_(spec), along_w_(std::move(along_w)) {
    static_assert(kFast, "Winograd along W is the float path's");
    if (!along_w_ || !(along_w_->spec() == spec_)) fail("conv3d: the Winograd along W given is not this layer's");
  }

  const ConvSpec& spec() const { return spec_; }
  // What this conv computes in: bf16 only where it was asked for and the CPU runs it (runs_bf16).
  Precision precision() const {
    if (winograd_) return winograd_->precision();
    return bf16_ ? Precision::kBf16 : Precision::kFloat32;
  }
  // Whether the conv runs depth-factored: a 2D kernel over input rows summed along depth (direct), or
  // 2D Winograd tiles on depth-summed input (Winograd3d::depth_factored).
  bool depth_factored() const { return winograd_ ? winograd_->depth_factored() : depth_.factored(); }
  // Whether the direct conv runs its output rows in bands (bands_fast; backend/cpu/conv_bands.hpp): float32,
  // not bf16, and B's panel past conv_bands::kMinPanelBytes (or as VOLFEAT_CONV_BANDS says).
  bool runs_in_bands() const { return bands_; }
  // Whether a direct conv asked for `precision` runs in bf16: float, and the bf16 kernels available
  // (bf16_unavailable_reason).
  static bool runs_bf16(Precision precision) {
    return kFast && precision == Precision::kBf16 && cpu::gemm::bf16_available();
  }
  Dims output_dims(const Dims& in) const { return spec_.output_dims(in); }

  void forward(TensorView<const T> in, TensorView<T> out, Activation<Cpu, T> pre = {},
               Activation<Cpu, T> post = {}) const {
    const Dims want = output_dims(in.dims);
    if (out.dims != want)
      fail("conv3d: output view ", to_string(out.dims), " but the conv produces ", to_string(want));
    if (want.voxels() <= 0) fail("conv3d: input ", to_string(in.dims), " is smaller than the kernel");
    if (winograd_) return winograd_->forward(in, out, pre, post);
    if constexpr (kFast) {
      if (along_w_) along_w_->run(ViewRows{in}, want, out.data, out.ld, 0, 0, want.n * want.d * want.h, pre, post);
      else if (pointwise()) forward_pointwise(in, out, pre, post);
      else rows_fast(ViewRows{in}, want, out.data, out.ld, 0, pre, post, 0, want.n * want.d * want.h);
    } else {
      forward_eigen_range(in, want, out.data, out.ld, 0, pre, post, 0, want.voxels());
    }
  }

  // out = relu?(post(conv(pre(in))) + residual) (ConvAddAct, backend/cpu/fused.hpp). `out` must not
  // overlap `in` or `residual`. A Winograd conv runs whole, then the add in one pass (winograd3d.hpp
  // has no per-tile hook).
  void forward_residual(TensorView<const T> in, TensorView<const T> residual, TensorView<T> out, Activation<Cpu, T> pre,
                        Activation<Cpu, T> post, bool relu) const {
    const Dims want = output_dims(in.dims);
    if (out.dims != want || residual.dims != want)
      fail("conv3d: output view ", to_string(out.dims), " / residual ", to_string(residual.dims), " but the conv produces ",
           to_string(want));
    if (want.voxels() <= 0) fail("conv3d: input ", to_string(in.dims), " is smaller than the kernel");
    const Residual res{residual, relu};
    if (winograd_ || along_w_) {
      forward(in, out, pre, post);
      return AddAct<Cpu, T>::forward(TensorView<const T>(out), residual, out, relu);
    }
    if constexpr (kFast) {
      if (pointwise()) forward_pointwise(in, out, pre, post, &res);
      else rows_fast(ViewRows{in}, want, out.data, out.ld, 0, pre, post, 0, want.n * want.d * want.h, &res);
    } else {
      forward_eigen_range(in, want, out.data, out.ld, 0, pre, post, 0, want.voxels(), &res);
    }
  }

  // What a pass over one input that computes the output plane by plane keeps from one call to the next:
  // a conv along W's ring of its transformed input planes (WinogradAlongW::Planes: the stem's output plane
  // z + 1 reads 5 of plane z's 7 input planes). The caller makes one per pass over an input
  // (ConvActMaxPool) and hands it to every forward_planes of that pass; without one each call transforms
  // the input planes it reads afresh. Other algorithms keep nothing in it.
  class PlaneState {
    friend class Conv3d;
    cpu::WinogradAlongW::Planes along_w_;
    cpu::paired_rows::PairedPlanes paired_;  // a bf16 direct conv's input rows as its tap-row pairs read them

   public:
    size_t bytes() const { return along_w_.bytes() + paired_.bytes(); }
  };

  // Output planes z0 .. z0 + count - 1 of batch item n only, into `planes` (dims (1, count, H_out, W_out,
  // C_out), any ld): the fused ops compute a conv plane by plane with it, `count` up to plane_step() at a
  // multiple of it (a Winograd conv's group costs what one of its planes does), any count otherwise.
  void forward_planes(TensorView<const T> in, Index n, Index z0, Index count, TensorView<T> planes,
                      Activation<Cpu, T> pre = {}, Activation<Cpu, T> post = {}, PlaneState* state = nullptr) const {
    const Dims od = output_dims(in.dims);
    if (planes.dims != Dims{1, count, od.h, od.w, od.c} || n < 0 || n >= od.n || z0 < 0 || count < 1 || z0 + count > od.d)
      fail("conv3d: planes view ", to_string(planes.dims), " / planes (", n, ", ", z0, "+", count, ") do not fit output ",
           to_string(od));
    if (winograd_) return winograd_->forward_planes(in, n, z0, count, planes, pre, post);
    const Index row0 = (n * od.d + z0) * od.h, row1 = row0 + count * od.h, v_base = row0 * od.w;
    if constexpr (kFast) {
      if (along_w_)
        return along_w_->run(ViewRows{in}, od, planes.data, planes.ld, v_base, row0, row1, pre, post,
                             state ? &state->along_w_ : nullptr);
      rows_fast(ViewRows{in}, od, planes.data, planes.ld, v_base, pre, post, row0, row1, nullptr,
                state ? &state->paired_ : nullptr);
    } else {
      (void)state;
      forward_eigen_range(in, od, planes.data, planes.ld, v_base, pre, post, v_base, row1 * od.w);
    }
  }
  // One output plane z (plane: dims (1, 1, H_out, W_out, C_out)).
  void forward_plane(TensorView<const T> in, Index n, Index z, TensorView<T> plane, Activation<Cpu, T> pre = {},
                     Activation<Cpu, T> post = {}, PlaneState* state = nullptr) const {
    forward_planes(in, n, z, 1, plane, pre, post, state);
  }

  // forward_planes reading the input through `rows` instead of a view of all of it, so a caller can
  // hold only the input planes output planes z0 .. z0 + count - 1 read (DenseLayerConvs keeps a ring of
  // them). rows.dims: the whole input's dims; rows.ld: channel stride; rows.row(n, iz, iy): the first
  // channel of input row (n, iz, iy), a float, or a bf16 that a Winograd conv widens as it loads it
  // (reads_bf16_rows). Fast path (float) only.
  // planes: T, or bf16 for a Winograd conv (forward_bf16_out's rounding).
  template <class Rows, class O = T>
  void forward_planes_rows(const Rows& rows, Index n, Index z0, Index count, TensorView<O> planes,
                           Activation<Cpu, T> pre = {}, Activation<Cpu, T> post = {}) const {
    static_assert(kFast, "forward_planes_rows is the float path's");
    const Dims od = output_dims(rows.dims);
    if (planes.dims != Dims{1, count, od.h, od.w, od.c} || n < 0 || n >= od.n || z0 < 0 || count < 1 || z0 + count > od.d)
      fail("conv3d: planes view ", to_string(planes.dims), " / planes (", n, ", ", z0, "+", count, ") do not fit output ",
           to_string(od));
    if (winograd_) return winograd_->forward_planes_rows(rows, n, z0, count, planes, pre, post);
    if constexpr (!std::is_same_v<cpu::RowElement<Rows>, T> || !std::is_same_v<O, T>) {
      fail("conv3d: only a Winograd conv reads or writes bf16 rows");
    } else {
      const Index row0 = (n * od.d + z0) * od.h, row1 = row0 + count * od.h;
      if (along_w_) return along_w_->run(rows, od, planes.data, planes.ld, row0 * od.w, row0, row1, pre, post);
      rows_fast(rows, od, planes.data, planes.ld, row0 * od.w, pre, post, row0, row1);
    }
  }
  // Whether forward_planes_rows takes rows of bf16: a Winograd conv.
  bool reads_bf16_rows() const { return winograd_ != nullptr; }
  template <class Rows>
  void forward_plane_rows(const Rows& rows, Index n, Index z, TensorView<T> plane, Activation<Cpu, T> pre = {},
                          Activation<Cpu, T> post = {}) const {
    forward_planes_rows(rows, n, z, 1, plane, pre, post);
  }
  static constexpr bool kHasPlaneRows = kFast;

  // The hook of Winograd F(2x4x4, 3x3x3) (backend/cpu/winograd3d.hpp): the network builds its convs
  // with it where it wins (ConvAlgorithm::make, winograd3d_select.hpp), then forward, forward_planes and
  // forward_planes_rows run it.
  // One way: every path then runs Winograd, so direct weights packed before are freed (they were 51 MB
  // of ResNet-50's 3D convs beside Winograd's 120 MB).
  void set_winograd(std::shared_ptr<const cpu::Winograd3d<T>> w) {
    if (!w || !(w->spec() == spec_)) fail("conv3d: the Winograd conv given is not this layer's");
    winograd_ = std::move(w);
    depth_ = cpu::DepthFactor();
    panel_store_ = cpu::PackedStore<float>();
    panel16_store_ = cpu::PackedStore<cpu::Bf16>();
    bf16_ = false;
    bands_ = false;
    pair_unit_ = 0;
    packed_ = RowMatrix();
  }
  const cpu::Winograd3d<T>* winograd() const { return winograd_.get(); }
  // The planes of the ring from which forward_planes with a PlaneState reads this bf16 conv's tap-row pairs
  // (paired_tap_rows.hpp: its input planes, or depth-factored the output plane's depth-summed rows); 0: it
  // keeps none. The memory estimate counts the ring (PlanTraits::paired_planes).
  Index paired_plane_slots() const {
    if (!pair_unit_ || !cpu::paired_rows::applies(spec_.geometry)) return 0;
    return cpu::paired_rows::ring_slots(spec_.geometry, depth_.factored());
  }
  const cpu::WinogradAlongW* winograd_along_w() const { return along_w_.get(); }
  // Output planes per call when the fused ops run this conv plane by plane: 1, or its Winograd tile's
  // group (Winograd3d::plane_step: 2, or 4 for F(4x4x4) and F(4x6x6)).
  Index plane_step() const { return winograd_ ? winograd_->plane_step() : 1; }

  // forward with its output rounded to bf16 as it is stored (round_to_bf16 of what forward would store),
  // for a pointwise bf16 conv (precision() kBf16) or a Winograd conv: a bf16 network's ring of
  // bottleneck planes (DenseLayerConvs), half the bytes of float, which its Winograd conv2 widens back as
  // it loads them, and its dense-block features (nn/plan.hpp, Plan::bf16_buffer).
  void forward_bf16_out(TensorView<const T> in, TensorView<cpu::Bf16> out, Activation<Cpu, T> pre = {},
                        Activation<Cpu, T> post = {}) const {
    const Dims want = output_dims(in.dims);
    if (out.dims != want)
      fail("conv3d: output view ", to_string(out.dims), " but the conv produces ", to_string(want));
    if constexpr (kFast) {
      if (winograd_) return winograd_->forward(in, out, pre, post);
      // (a pointwise conv is never Winograd nor along W, and set_winograd clears bf16_)
      if (!pointwise() || !bf16_) fail("conv3d: a bf16 output needs a pointwise bf16 conv or a Winograd conv");
      forward_pointwise(in, out, pre, post);
    } else {
      fail("conv3d: a bf16 output needs a pointwise bf16 conv or a Winograd conv");
    }
  }
  // Whether a pointwise bf16 conv's bf16 output (forward_bf16_out) goes through a float tile of the thread's
  // before it is rounded: on AMX tiles, whose epilogue writes float; the AVX512-BF16 kernels round as they
  // store (Epilogue::c16). For the memory estimate (PlanTraits::bf16_staging).
  static bool bf16_output_staged() {
    if constexpr (kFast) return cpu::gemm::bf16_available() && cpu::gemm::bf16_gemms_on_tiles();
    else return false;
  }
  // forward of a pointwise bf16 conv on bf16 input (a bf16 network's dense-block features,
  // Plan::bf16_buffer): each value is widened exactly as the pre-activation loads it, so `out` holds
  // forward's (T) or forward_bf16_out's (bf16) result on the widened input.
  template <class O>
  void forward_from_bf16(TensorView<const cpu::Bf16> in, TensorView<O> out, Activation<Cpu, T> pre = {},
                         Activation<Cpu, T> post = {}) const {
    const Dims want = output_dims(in.dims);
    if (out.dims != want)
      fail("conv3d: output view ", to_string(out.dims), " but the conv produces ", to_string(want));
    if constexpr (kFast) {
      if (!pointwise() || !bf16_) fail("conv3d: a bf16 input needs a pointwise bf16 conv");
      forward_pointwise(in, out, pre, post);
    } else {
      fail("conv3d: a bf16 input needs a pointwise bf16 conv");
    }
  }

  // Streamed weights (core/weight_file.hpp): the packed panels go to the network's file (a Winograd
  // conv's U moves before set_winograd: ConvAlgorithm::make). The double path's matrix stays.
  void move_weights_to(const std::shared_ptr<WeightFile>& file) {
    panel_store_.move_to(file);
    panel16_store_.move_to(file);
  }

  bool pointwise() const {
    const WindowGeometry& g = spec_.geometry;
    return g.taps() == 1 && g.stride == std::array<Index, 3>{1, 1, 1} && g.padding == std::array<Index, 3>{0, 0, 0};
  }

 private:
  // weight: torch order (O, I, kD, kH, kW), spec_.weight_count() values of any arithmetic type.
  // float: panels of 16*nv_ output channels (nv_ as the run-time ISA's kernels want), zero beyond
  // C_out; double: the (K, C_out) matrix of the Eigen path.
  // taps: of the kernel packed, spec_'s or, depth-factored, its 2D slice's kH*kW.
  template <class W>
  void pack_weights(const W* weight, Index taps = -1);  // conv3d_weights_impl.hpp

  // The residual of forward_residual: the add's other input, on the output's grid.
  struct Residual {
    TensorView<const T> view;
    bool relu = false;
  };
  // y[i] = relu?(y[i] + r[i]) for i < n: AddAct's arithmetic.
  static void add_residual(T* y, const T* r, Index n, bool relu) { cpu::add_act_row<T>(y, r, y, n, relu); }

  // ------------------------------------------------------------------ fast path (float)
  struct Act {
    const float* scale = nullptr;
    const float* shift = nullptr;
    bool relu = false;
    bool active() const { return scale || relu; }
  };
  static Act act_of(const Activation<Cpu, T>& a) {
    Act r;
    if constexpr (std::is_same_v<T, float>) {
      if (a.bn) r.scale = a.bn->scale(), r.shift = a.bn->shift();
    }
    r.relu = a.relu;
    return r;
  }
  // y[i] = act(x[i]) for i < n, into a float A buffer or, rounded, a bf16 one (an A tile's or row
  // buffer's values).
  static void put_values(const float* x, float* y, Index n, const Act& a) {
    if (a.active()) cpu::gemm::activate_row(x, y, n, a.scale, a.shift, a.relu);
    else std::copy(x, x + n, y);
  }
  static void put_values(const float* x, cpu::Bf16* y, Index n, const Act& a) {
    if (a.active()) cpu::gemm::activate_row_bf16(x, y, n, a.scale, a.shift, a.relu);
    else cpu::gemm::convert_row_bf16(x, y, n);
  }
  static void put_values(const cpu::Bf16* x, cpu::Bf16* y, Index n, const Act& a) {
    if (a.active()) cpu::gemm::activate_row_bf16(x, y, n, a.scale, a.shift, a.relu);
    else std::copy(x, x + n, y);
  }
  // out[2e] = r0[e], out[2e + 1] = r1[e] for e < n, a null row read as zeros: two bf16 rows as one of
  // k-pairs (rows_fast's pairs of tap rows).
  static void interleave_rows(const cpu::Bf16* r0, const cpu::Bf16* r1, cpu::Bf16* out, Index n) {
    if (r0 && r1)
      for (Index e = 0; e < n; ++e) out[2 * e] = r0[e], out[2 * e + 1] = r1[e];
    else if (r0)
      for (Index e = 0; e < n; ++e) out[2 * e] = r0[e], out[2 * e + 1] = 0;
    else
      for (Index e = 0; e < n; ++e) out[2 * e] = 0, out[2 * e + 1] = r1[e];
  }
  cpu::gemm::Epilogue epilogue(const Activation<Cpu, T>& post, Index panel) const {
    cpu::gemm::Epilogue ep;
    const Index pw = 16 * nv_, o0 = panel * pw;
    if constexpr (std::is_same_v<T, float>) {
      if (!bias_.empty()) ep.bias = bias_.data() + o0;
      if (post.bn) ep.scale = post.bn->scale() + o0, ep.shift = post.bn->shift() + o0;
    }
    ep.relu = post.relu;
    ep.cols = int(std::min(pw, spec_.out_channels - o0));
    return ep;
  }
  // The k steps of B one kernel segment reads (pointwise: all of K, cut into 128-chunks at even
  // offsets; kw taps merged: a tap row, kW*C_in; else a tap, C_in), and the same rounded up to even:
  // bf16 pads each unit to that, so a segment's first k is a pair's first (gemm_bf16.hpp).
  Index b_unit(bool even) const {
    const WindowGeometry& g = spec_.geometry;
    const Index ci = spec_.in_channels;
    const Index u = pointwise() ? ci : g.dilation[2] == 1 ? g.kernel[2] * ci : ci;
    return even ? u + u % 2 : u;
  }
  const float* panel(Index p) const { return panel_store_.data() + p * panel_floats_; }
  const cpu::Bf16* panel16(Index p) const { return panel16_store_.data() + p * panel_floats_; }

  // in: T, or bf16 (forward_from_bf16; a bf16 conv); out: T, or bf16 (forward_bf16_out; a bf16 conv, no
  // residual).
  template <class I, class O>
  void forward_pointwise(TensorView<const I> in, TensorView<O> out, const Activation<Cpu, T>& pre,
                         const Activation<Cpu, T>& post, const Residual* res = nullptr) const;

  // K steps per group of gemm_rows (0: all of K in one pass, C never reloaded). Cutting a 4-vector
  // panel's B into L1-sized slices (64 or 128 k steps) measured no faster here, so it is off.
  Index kgroup() const { return 0; }

  // Input rows of a whole view, for rows_fast.
  struct ViewRows {
    TensorView<const T> in;
    Dims dims = in.dims;
    Index ld = in.ld;
    const T* row(Index n, Index z, Index y) const { return in.voxel(n, z, y, 0); }
  };

  // Input row src (w voxels, channel stride ld) activated into dst (C_in values per voxel, float or bf16
  // rounded as it is written); whole-row only when contiguous and not activated (the activation's scale and
  // shift are per channel). The row and band paths' copies.
  template <class D>
  void put_row(const float* src, Index ld, Index w, const Act& a, D* dst) const {
    const Index ci = spec_.in_channels;
    if (ld == ci && !a.active()) put_values(src, dst, w * ci, a);
    else
      for (Index x = 0; x < w; ++x) put_values(src + x * ld, dst + x * ci, ci, a);
  }
  // Input row iy of item n, summed over the kd a depth-factored kernel keeps for output plane z, each
  // activated first, in kd order, into dst (W_in x C_in floats; term: as many of scratch). False, dst
  // untouched, where every kept kd is in the depth padding.
  // Rows that need no activation and lie contiguous (a stem on the CT itself) are added from where they lie,
  // in the same order: copying each into `term` first was 13 % of a bf16 stem+pool's samples with inflated
  // weights (108x256x256, AMD EPYC Zen 4, 2026-12-08).
  template <class Rows>
  bool depth_sum_row(const Rows& in, Index n, Index z, Index iy, const Act& act, float* dst, float* term) const {
    const WindowGeometry& g = spec_.geometry;
    const Index values = in.dims.w * spec_.in_channels;
    int nsum = 0;
    if (!act.active() && in.ld == spec_.in_channels) {
      const float* first = nullptr;
      for (Index kd = 0; kd < g.kernel[0]; ++kd) {
        const Index iz = z * g.stride[0] - g.padding[0] + kd * g.dilation[0];
        if (!depth_.mask[size_t(kd)] || iz < 0 || iz >= in.dims.d) continue;
        const float* r = in.row(n, iz, iy);
        if (nsum == 0) first = r;
        else if (nsum == 1)
          for (Index i = 0; i < values; ++i) dst[i] = first[i] + r[i];
        else
          for (Index i = 0; i < values; ++i) dst[i] += r[i];
        ++nsum;
      }
      if (nsum == 1) std::copy(first, first + values, dst);
      return nsum > 0;
    }
    for (Index kd = 0; kd < g.kernel[0]; ++kd) {
      const Index iz = z * g.stride[0] - g.padding[0] + kd * g.dilation[0];
      if (!depth_.mask[size_t(kd)] || iz < 0 || iz >= in.dims.d) continue;
      put_row(in.row(n, iz, iy), in.ld, in.dims.w, act, nsum == 0 ? dst : term);
      if (nsum++ > 0)
        for (Index i = 0; i < values; ++i) dst[i] += term[i];
    }
    return nsum > 0;
  }

  // paired: a pass's ring of input planes with their tap-row pairs made (paired_tap_rows.hpp), or null.
  template <class Rows>
  void rows_fast(const Rows& in, const Dims& od, T* out, Index ldo, Index v_base, const Activation<Cpu, T>& pre,
                 const Activation<Cpu, T>& post, Index row0, Index row1, const Residual* res = nullptr,
                 cpu::paired_rows::PairedPlanes* paired = nullptr) const;

  // rows_fast's rows [row0, row1) in bands of output rows of one plane: a band's input rows are copied
  // once (activated, zero-padded along H and W; depth-factored: summed along D) into a slab of whole rows
  // in stride_h row phases, so that the band is one long row of constant stride stride_w*C_in that
  // gemm_rows takes whole, in K groups.
  template <class Rows>
  void bands_fast(const Rows& in, const Dims& od, T* out, Index ldo, Index v_base, const Activation<Cpu, T>& pre,
                   const Activation<Cpu, T>& post, Index row0, Index row1, const Residual* res = nullptr) const;

  // ------------------------------------------------------------------ double (Eigen; conv3d_eigen_impl.hpp)
  // Output voxels [first, last) of the grid `want`; voxel v is stored at out + (v - v_base)*ldo.
  void forward_eigen_range(TensorView<const T> in, const Dims& want, T* out, Index ldo, Index v_base,
                           const Activation<Cpu, T>& pre, const Activation<Cpu, T>& post, Index first, Index last,
                           const Residual* res = nullptr) const;
  // Rows [v0, v0+rows) of A: output voxel v's receptive field, padding as zeros. A fused
  // pre-activation applies only to in-bounds values: torch pads the activated tensor with zeros.
  void pack(const TensorView<const T>& in, const Dims& od, Index v0, Index rows, const Activation<Cpu, T>& pre,
            T* a) const;

  ConvSpec spec_;
  RowMatrix packed_;  // double: (K, C_out), rows ordered (tap, c_in)
  std::vector<T> bias_;
  // float: panels of 16*nv_ output channels, each K x 16*nv_
  Index nv_ = 1, panels_ = 0, panel_floats_ = 0;
  Index b_unit_ = 0;  // k steps of a kernel segment's unit of B (b_unit(bf16_))
  Index pair_unit_ = 0;  // bf16: k steps of a pair of tap rows' unit of B (2 kW C_in), 0: rows unpaired
  cpu::PackedStore<float> panel_store_;
  // bf16: the same panels as k-pairs of bf16 (gemm_bf16.hpp), panel_floats_ values each, instead
  bool bf16_ = false;
  bool bands_ = false;  // float32, not bf16: rows_fast runs in bands (bands_fast)
  cpu::DepthFactor depth_;  // float: the kernel's depth factoring, if packed as its 2D slice
  cpu::PackedStore<cpu::Bf16> panel16_store_;
  std::shared_ptr<const cpu::Winograd3d<T>> winograd_;  // set: forward runs Winograd
  std::shared_ptr<const cpu::WinogradAlongW> along_w_;  // set (float only): forward runs it
};

}  // namespace volfeat

// The out-of-class definitions: the float fast paths (forward_pointwise, rows_fast, bands_fast), the
// packing of the weights, and the double path.
#include "volfeat/backend/cpu/conv3d_impl.hpp"
#include "volfeat/backend/cpu/conv3d_weights_impl.hpp"
#include "volfeat/backend/cpu/conv3d_eigen_impl.hpp"
