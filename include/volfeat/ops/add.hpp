#pragma once
// out = a + b, then ReLU if asked: ResNet's `out += identity; out = relu(out)` in one pass. out may
// be the same view as a or b (the executor runs it in place when nothing else reads the input).
#include "volfeat/backend/backend.hpp"
#include "volfeat/core/tensor_view.hpp"

namespace volfeat {

template <class Backend, class T>
struct AddAct {
  VOLFEAT_UNSUPPORTED_OP("AddAct");
};

}  // namespace volfeat
