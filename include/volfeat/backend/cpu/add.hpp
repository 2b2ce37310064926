#pragma once
#include "volfeat/backend/cpu/parallel.hpp"
#include "volfeat/backend/cpu_tensor.hpp"
#include "volfeat/core/error.hpp"
#include "volfeat/ops/add.hpp"
#include "volfeat/ops/relu.hpp"

namespace volfeat {

template <class T>
struct AddAct<Cpu, T> {
  static void forward(TensorView<const T> a, TensorView<const T> b, TensorView<T> out, bool relu) {
    if (a.dims != b.dims || out.dims != a.dims)
      fail("add: ", to_string(a.dims), " + ", to_string(b.dims), " into ", to_string(out.dims));
    const Index c = a.dims.c;
    cpu::parallel_for(a.dims.voxels(), [&](Index v) {
      const T* x = a.voxel(v);
      const T* y = b.voxel(v);
      T* z = out.voxel(v);
      if (relu) {
        for (Index i = 0; i < c; ++i) z[i] = relu_scalar(x[i] + y[i]);
      } else {
        for (Index i = 0; i < c; ++i) z[i] = x[i] + y[i];
      }
    });
  }
};

}  // namespace volfeat
