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

}  // namespace volfeat
