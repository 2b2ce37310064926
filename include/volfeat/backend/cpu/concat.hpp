#pragma once
#include <algorithm>
#include <vector>

#include "volfeat/backend/cpu/parallel.hpp"
#include "volfeat/backend/cpu_tensor.hpp"
#include "volfeat/ops/concat.hpp"

namespace volfeat {

template <class T>
struct ConcatChannels<Cpu, T> {
  static void forward(const std::vector<TensorView<const T>>& parts, TensorView<T> out) {
    Index c = 0;
    for (const auto& p : parts) {
      if (p.dims.n != out.dims.n || p.dims.d != out.dims.d || p.dims.h != out.dims.h || p.dims.w != out.dims.w)
        fail("concat: part ", to_string(p.dims), " does not match output grid ", to_string(out.dims));
      c += p.dims.c;
    }
    if (c != out.dims.c) fail("concat: parts hold ", c, " channels, output has ", out.dims.c);
    cpu::parallel_for(out.dims.voxels(), [&](Index v) {
      T* dst = out.voxel(v);
      for (const auto& p : parts) dst = std::copy(p.voxel(v), p.voxel(v) + p.dims.c, dst);
    });
  }
};

}  // namespace volfeat
