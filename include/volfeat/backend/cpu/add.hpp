#pragma once
#include "volfeat/backend/cpu/parallel.hpp"
#include "volfeat/backend/cpu_tensor.hpp"
#include "volfeat/core/error.hpp"
#include "volfeat/ops/add.hpp"
#include "volfeat/ops/relu.hpp"

namespace volfeat {

namespace cpu {
// z[i] = relu?(x[i] + y[i]) for i < n (z may be x): AddAct's arithmetic, also applied per tile by
// Conv3d::forward_residual. The relu keeps NaN, as torch's.
template <class T>
inline void add_act_row(const T* x, const T* y, T* z, Index n, bool relu) {
  if (relu) {
    for (Index i = 0; i < n; ++i) z[i] = relu_scalar(x[i] + y[i]);
  } else {
    for (Index i = 0; i < n; ++i) z[i] = x[i] + y[i];
  }
}
}  // namespace cpu

template <class T>
struct AddAct<Cpu, T> {
  static void forward(TensorView<const T> a, TensorView<const T> b, TensorView<T> out, bool relu) {
    if (a.dims != b.dims || out.dims != a.dims)
      fail("add: ", to_string(a.dims), " + ", to_string(b.dims), " into ", to_string(out.dims));
    const Index c = a.dims.c;
    cpu::parallel_for(a.dims.voxels(), [&](Index v) { cpu::add_act_row(a.voxel(v), b.voxel(v), out.voxel(v), c, relu); });
  }
};

}  // namespace volfeat
