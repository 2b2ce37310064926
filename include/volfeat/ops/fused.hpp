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
//                    bn2 -> relu, with post2). The Cpu specialisation computes conv1 plane by plane into
//                    a ring as deep as conv2's window and each conv2 output plane once its window is
//                    complete, so the 128-channel bottleneck (453 MB in block 1 of a 216x512x512
//                    input) never exists whole.
//   ConvPairMaxPool  out = MaxPool(post2(conv2(post1(conv1(in)))))   two spatial convs and the max pool
//                    that ends a VGG block (conv1_1 -> relu -> conv1_2 -> relu -> pool1, and the last two
//                    convs of every deeper block). The Cpu specialisation streams both convs' outputs
//                    through rings of planes: at 216x512x512 neither 14.5 GB activation of VGG-19's
//                    block 1 exists, only conv1_1's planes that conv1_2 reads and conv1_2's planes that
//                    the pool reads.
#include "volfeat/backend/backend.hpp"
#include "volfeat/core/tensor_view.hpp"
#include "volfeat/ops/batchnorm3d.hpp"
#include "volfeat/ops/conv3d.hpp"
#include "volfeat/ops/pool3d.hpp"
#include "volfeat/ops/relu.hpp"

namespace volfeat {

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

}  // namespace volfeat
