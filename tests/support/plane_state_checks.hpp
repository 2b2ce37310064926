#pragma once
// A Cpu conv run plane by plane through one pass's PlaneState (what ConvActMaxPool hands the stem) against its
// whole forward, bit for bit: test_bf16's ring of paired input planes and test_depth_factor's table of
// depth-summed pairs (backend/cpu/paired_tap_rows.hpp) must hold exactly what the per-row path computes.
#include <cstring>
#include <vector>

#include "support/primitive_checks.hpp"
#include "volfeat/backend/cpu.hpp"

namespace volfeat::test {

// conv on x, plain and with BN+ReLU fused before and after (random_bn seeds bn_seed and bn_seed + 1): every
// output of forward_planes, one plane per call through one PlaneState, equals forward's; the state then holds
// state_bytes.
inline void check_planes_match_forward(const Conv3d<Cpu, float>& conv, const ref::Array5& x, uint64_t bn_seed,
                                       size_t state_bytes) {
  auto in = device<Cpu, float>(x);
  const Dims od = conv.output_dims(in.dims());
  const BatchNorm3d<Cpu, float> pre(random_bn(in.dims().c, bn_seed)), post(random_bn(od.c, bn_seed + 1));
  for (bool fused : {false, true}) {
    const Activation<Cpu, float> a = fused ? Activation<Cpu, float>{&pre, true} : Activation<Cpu, float>{};
    const Activation<Cpu, float> b = fused ? Activation<Cpu, float>{&post, true} : Activation<Cpu, float>{};
    Tensor<Cpu, float> whole(od), planes(od);
    conv.forward(in.view(), whole.view(), a, b);
    Conv3d<Cpu, float>::PlaneState state;
    for (Index n = 0; n < od.n; ++n)
      for (Index z = 0; z < od.d; ++z)
        conv.forward_planes(in.view(), n, z, 1,
                            TensorView<float>(planes.view().voxel(n, z, 0, 0), Dims{1, 1, od.h, od.w, od.c}), a, b,
                            &state);
    const std::vector<float> got = host<Cpu, float>(planes.view()), want = host<Cpu, float>(whole.view());
    BOOST_TEST(std::memcmp(got.data(), want.data(), got.size() * sizeof(float)) == 0, "fused " << fused);
    BOOST_TEST(state.bytes() == state_bytes, "fused " << fused);
  }
}

}  // namespace volfeat::test
