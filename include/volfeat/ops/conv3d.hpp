#pragma once
// Conv3d with torch.nn.Conv3d's semantics (groups = 1): per-axis kernel, stride, padding, dilation,
// optional bias. Weights arrive in torch's (O, I, kD, kH, kW) order; each backend packs them its way.
#include <vector>

#include "volfeat/backend/backend.hpp"
#include "volfeat/core/error.hpp"
#include "volfeat/core/shape.hpp"
#include "volfeat/ops/batchnorm3d.hpp"

namespace volfeat {

struct ConvSpec {
  Index in_channels = 1;
  Index out_channels = 1;
  WindowGeometry geometry;

  Index weight_count() const { return out_channels * in_channels * geometry.taps(); }
  Dims output_dims(const Dims& in) const {
    if (in.c != in_channels)
      fail("conv3d: input has ", in.c, " channels, the layer expects ", in_channels);
    const auto s = geometry.out_spatial(in.spatial());
    return {in.n, s[0], s[1], s[2], out_channels};
  }
  friend bool operator==(const ConvSpec& a, const ConvSpec& b) {
    return a.in_channels == b.in_channels && a.out_channels == b.out_channels && a.geometry == b.geometry;
  }
  // 2 * MACs, the usual FLOP count for a forward pass.
  double flops(const Dims& in) const {
    const Dims o = output_dims(in);
    return 2.0 * double(o.voxels()) * double(out_channels) * double(in_channels * geometry.taps());
  }
};

template <class Backend, class T>
class Conv3d {
  VOLFEAT_UNSUPPORTED_OP("Conv3d");
};

}  // namespace volfeat
