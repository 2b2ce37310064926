#pragma once
// Fused sequences the network calls as one op, each with a default implementation composed from the
// single ops (so every backend has them) that a backend may specialise to avoid the intermediate:
//
//   ConvActMaxPool   out = MaxPool(post(Conv(in)))   DenseNet's stem conv0 -> norm0 -> relu0 -> pool0.
//                    The Cpu specialisation computes conv planes into a ring of pool-window depth,
//                    so the full-resolution stem output (64 x D/2 x H/2 x W/2) never exists.
//   ActivatedAvgPool out = AvgPool(act(in))          a transition's norm -> relu -> pool, run before
//                    its 1x1 conv (pool and 1x1 conv are both linear, so they commute): the conv
//                    then runs on 1/8 of the voxels and the full-resolution conv output never exists.
//   DenseLayerConvs  out = post2(conv2(post1(conv1(pre1(in)))))   a dense layer's norm1 -> relu1 -> conv1
//                    -> norm2 -> relu2 -> conv2 (a ResNet bottleneck's conv1 -> bn1 -> relu -> conv2 ->
//                    bn2 -> relu, with post2). The Cpu specialisation computes conv1 plane by plane (in
//                    conv2's groups for a Winograd conv2) into a ring as deep as conv2's window and each
//                    conv2 output plane once its window is complete, so the 128-channel bottleneck (453 MB
//                    in block 1 of a 216x512x512 input) never exists whole; a bottleneck of at most
//                    kWholeBottleneckValues is computed whole (dense_layer_scratch).
//   ConvPairMaxPool  out = MaxPool(post2(conv2(post1(conv1(in)))))   two spatial convs and the max pool
//                    that ends a VGG block (conv1_1 -> relu -> conv1_2 -> relu -> pool1, and the last two
//                    convs of every deeper block). The Cpu specialisation streams both convs' outputs
//                    through rings of planes: at 216x512x512 neither 14.5 GB activation of VGG-19's
//                    block 1 exists, only conv1_1's planes that conv1_2 reads and conv1_2's planes that
//                    the pool reads.
//   SpatialConvPair  out = post2(conv2(post1(conv1(in))))   two spatial convs whose middle no one sees and
//                    whose second output is kept whole (VGG's conv2_1 -> relu -> conv2_2 when the paper's
//                    tap conv2_2 looks at it; the first two convs of a 3- or 4-conv block). The Cpu
//                    specialisation streams conv1's planes through a ring as ConvPairMaxPool does, so only
//                    conv2's output exists whole (VGG-19 at 64x128x128: 67 MB less at conv2_2).
//   ConvAddAct       out = relu?(post(conv(pre(in))) + residual)   ResNet's conv3 -> bn3 -> `+= identity` ->
//                    relu (a basic block's conv2 -> bn2 -> ...). The default runs the conv into `out`, then
//                    the add in place; the Cpu specialisation adds the residual and applies the relu per
//                    output tile right after the micro-kernel wrote it, while it is in cache. `out` must
//                    not overlap `in` or `residual`.
#include "volfeat/backend/backend.hpp"
#include "volfeat/core/tensor_view.hpp"
#include "volfeat/ops/add.hpp"
#include "volfeat/ops/batchnorm3d.hpp"
#include "volfeat/ops/conv3d.hpp"
#include "volfeat/ops/pool3d.hpp"
#include "volfeat/ops/relu.hpp"

namespace volfeat {

// `step`: the planes the conv computes per call (1 direct; a Winograd conv's groups of 2, or of 4 for
// F(4x4x4) and F(4x6x6): Conv3d<Cpu>::plane_step, winograd::plane_step), which land in adjacent slots of the ring.
inline Index round_up_to(Index n, Index step) { return (n + step - 1) / step * step; }

// Planes of conv output ConvActMaxPool's ring holds (Cpu): as many as the pool window is deep when every
// window starts on a group's first plane and ends on a group's last (VGG's 2/2 pools with pairs), else
// span + step rounded up to whole groups (pairs: span + 2, rounded up to even), so that a window's
// groups never share slots. The memory estimate (nn/plan.hpp) reads the same count.
inline Index conv_max_pool_ring_planes(const WindowGeometry& pool, Index step) {
  const Index span = pool.dilation[0] * (pool.kernel[0] - 1) + 1;
  const bool aligned = pool.stride[0] % step == 0 && pool.padding[0] % step == 0 && span % step == 0;
  return aligned ? span : round_up_to(span + step, step);
}

// Planes of conv1's output one output step of DenseLayerConvs reads (Cpu): conv2's window depth, step2 - 1
// more for a Winograd conv2 (step2 output planes per call, from span + step2 - 1 input planes). Its ring
// holds that rounded up to whole groups of step2 (dense_layer_scratch).
inline Index dense_layer_ring_planes(const WindowGeometry& conv2, Index step2) {
  return conv2.dilation[0] * (conv2.kernel[0] - 1) + step2;
}

// A bottleneck of at most this many values (8 MiB of float32) DenseLayerConvs (Cpu) computes whole,
// conv1 then conv2 in one call each, instead of through a ring. Why: the ring runs one parallel loop per
// conv1 plane and per conv2 group, each ending in a barrier, and where planes are small the barriers
// cost more than the work: DenseNet-121's blocks 2-4 at 128^3 (planes of 16x16 down to 4x4) make 560 of
// a forward's ~800 loops and a conv1 plane of block 3 about 15 us of work for two threads (both counted
// from the shapes and FLOPs, not timed), and 12 % of a bf16 forward's samples were libgomp's barrier
// spin (perf, AMD EPYC Zen 5, 2 threads).
inline constexpr Index kWholeBottleneckValues = Index(1) << 21;

// What a ring of DenseLayerConvs (Cpu) holds: float32, or bf16, where a bf16 network's pointwise conv1
// feeds a Winograd conv2 (Conv3d<Cpu>::forward_bf16_out, reads_bf16_rows): half the bytes conv1 writes
// and conv2's input transform reads.
enum class RingValues { kFloat32, kBf16 };
// The one rule, for the op (from its convs) and the plan (from PlanTraits) alike.
inline RingValues dense_ring_values(bool conv1_runs_bf16, bool conv2_runs_winograd) {
  return conv1_runs_bf16 && conv2_runs_winograd ? RingValues::kBf16 : RingValues::kFloat32;
}

// DenseLayerConvs' scratch in float32 values (Cpu; the memory estimate reads the same): the whole
// bottleneck md when it is that small (whole_values: tests pass 0 to run the ring), else the ring's planes,
// two bf16 values to a float for a bf16 ring (its channels halved, rounded up).
inline Dims dense_layer_scratch(const WindowGeometry& conv2, Index step2, const Dims& md,
                                Index whole_values = kWholeBottleneckValues, RingValues values = RingValues::kFloat32) {
  if (md.size() <= whole_values) return md;
  // conv1 fills the ring in groups of step2 too, aligned to conv2's windows: whole groups per window.
  const Index c = values == RingValues::kBf16 ? (md.c + 1) / 2 : md.c;
  return Dims{1, round_up_to(dense_layer_ring_planes(conv2, step2), step2), md.h, md.w, c};
}

// Planes of conv1's output ConvPairMaxPool's ring holds (Cpu): conv2's window (as the dense layer's);
// when conv1 computes planes in groups, the window's first and last planes may fall inside groups, so
// step1 more, rounded up to whole groups (pairs: 2 more, rounded up to even).
inline Index conv_pair_ring_planes(const WindowGeometry& conv2, Index step1, Index step2) {
  const Index window = dense_layer_ring_planes(conv2, step2);
  return step1 > 1 ? round_up_to(window + step1, step1) : window;
}

template <class Backend, class T>
struct ConvActMaxPool {
  static void forward(const Conv3d<Backend, T>& conv, Activation<Backend, T> post, const MaxPool3d<Backend, T>& pool,
                      TensorView<const T> in, TensorView<T> out) {
    Tensor<Backend, T> tmp(conv.output_dims(in.dims));
    conv.forward(in, tmp.view(), {}, post);
    pool.forward(tmp.view(), out);
  }
};

template <class Backend, class T>
struct ActivatedAvgPool {
  static void forward(Activation<Backend, T> act, const AvgPool3d<Backend, T>& pool, TensorView<const T> in,
                      TensorView<T> out) {
    if (!act.active()) return pool.forward(in, out);
    Tensor<Backend, T> tmp(in.dims);
    if (act.bn) act.bn->forward(in, tmp.view(), act.relu);
    else Relu<Backend, T>::forward(in, tmp.view());
    pool.forward(tmp.view(), out);
  }
};

// True where DenseLayerConvs<Backend, T> holds only a ring of bottleneck planes (for the memory estimate).
template <class Backend, class T>
inline constexpr bool kPlanewiseDenseLayer = false;

// True where the fused ops have forms on bf16 features (Cpu, float): ConvActMaxPool writes them,
// DenseLayerConvs reads and writes them, ActivatedAvgPool reads them, and Conv3d::forward_bf16_out
// writes a transition's. A bf16 network's dense blocks are then held in bf16 (nn/plan.hpp,
// Plan::bf16_buffer).
template <class Backend, class T>
inline constexpr bool kBf16Features = false;

template <class Backend, class T>
struct DenseLayerConvs {
  // `scratch`: storage the op keeps between calls (the caller holds one per dense block).
  static void forward(const Conv3d<Backend, T>& conv1, Activation<Backend, T> pre1, Activation<Backend, T> post1,
                      const Conv3d<Backend, T>& conv2, TensorView<const T> in, TensorView<T> out,
                      Tensor<Backend, T>& scratch, Activation<Backend, T> post2 = {}) {
    const Dims mid = conv1.output_dims(in.dims);
    if (scratch.dims() != mid) scratch.resize(mid);
    conv1.forward(in, scratch.view(), pre1, post1);
    conv2.forward(scratch.view(), out, {}, post2);
  }
};

template <class Backend, class T>
struct ConvPairMaxPool {
  static void forward(const Conv3d<Backend, T>& conv1, Activation<Backend, T> post1, const Conv3d<Backend, T>& conv2,
                      Activation<Backend, T> post2, const MaxPool3d<Backend, T>& pool, TensorView<const T> in,
                      TensorView<T> out) {
    Tensor<Backend, T> mid(conv1.output_dims(in.dims));
    conv1.forward(in, mid.view(), {}, post1);
    ConvActMaxPool<Backend, T>::forward(conv2, post2, pool, mid.view(), out);
  }
};

template <class Backend, class T>
struct SpatialConvPair {
  static void forward(const Conv3d<Backend, T>& conv1, Activation<Backend, T> post1, const Conv3d<Backend, T>& conv2,
                      Activation<Backend, T> post2, TensorView<const T> in, TensorView<T> out) {
    Tensor<Backend, T> mid(conv1.output_dims(in.dims));
    conv1.forward(in, mid.view(), {}, post1);
    conv2.forward(mid.view(), out, {}, post2);
  }
};

// ConvAddAct's default: the conv into `out`, then the add (and relu) in place.
template <class Backend, class T>
void conv_add_act_composed(const Conv3d<Backend, T>& conv, Activation<Backend, T> pre, Activation<Backend, T> post,
                           TensorView<const T> in, TensorView<const T> residual, TensorView<T> out, bool relu) {
  conv.forward(in, out, pre, post);
  AddAct<Backend, T>::forward(TensorView<const T>(out), residual, out, relu);
}

template <class Backend, class T>
struct ConvAddAct {
  static void forward(const Conv3d<Backend, T>& conv, Activation<Backend, T> pre, Activation<Backend, T> post,
                      TensorView<const T> in, TensorView<const T> residual, TensorView<T> out, bool relu) {
    conv_add_act_composed(conv, pre, post, in, residual, out, relu);
  }
};

}  // namespace volfeat
