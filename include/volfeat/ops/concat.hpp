#pragma once
// torch.cat along channels. DenseNet itself never calls it (its blocks append in place); it exists
// for users composing their own nets and for taps that need a dense copy of a slice.
#include <vector>

#include "volfeat/backend/backend.hpp"
#include "volfeat/core/tensor_view.hpp"

namespace volfeat {

template <class Backend, class T>
struct ConcatChannels {
  VOLFEAT_UNSUPPORTED_OP("ConcatChannels");
};

}  // namespace volfeat
