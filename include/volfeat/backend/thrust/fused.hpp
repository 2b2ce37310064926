#pragma once
// Thrust specialisations of the fused ops (ops/fused.hpp).
//   ActivatedAvgPool  the transition's norm+relu applied while pooling: no activated copy of the
//                     block buffer is made. Same window order and arithmetic as the default
//                     (BN into a temporary, then AvgPool), so the result is identical to it.
//   ConvActMaxPool    not specialised: the default (conv with fused BN+ReLU into a temporary, then
//                     MaxPool) runs, so the stem's full-resolution output exists for one op.
#include "volfeat/backend/thrust/pool3d.hpp"
#include "volfeat/ops/fused.hpp"

namespace volfeat {

template <class T>
struct ActivatedAvgPool<Thrust, T> {
  static void forward(Activation<Thrust, T> act, const AvgPool3d<Thrust, T>& pool, TensorView<const T> in,
                      TensorView<T> out) {
    if (out.dims != pool.output_dims(in.dims)) fail("activated avgpool: output view has the wrong shape");
    if (act.bn && act.bn->channels() != in.dims.c)
      fail("activated avgpool: the batchnorm has ", act.bn->channels(), " channels, the input ", in.dims.c);
    thrust_detail::for_each_index(
        out.dims.size(),
        thrust_detail::AvgPoolKernel<T>{thrust_detail::DeviceView<const T>(in), thrust_detail::DeviceView<T>(out),
                                        thrust_detail::DeviceWindow(pool.geometry()), pool.count_include_pad(),
                                        thrust_detail::device_activation(act)});
  }
};

}  // namespace volfeat
