#pragma once
// Whole networks on small inputs, one per family, tapped after each kind of fused step: DenseNet's stem
// conv+pool over planes, dense layers over a ring of bottleneck planes and pooled transitions; ResNet's
// residual epilogue; VGG's spatial conv pairs and conv pairs + pool. Small enough for the sanitizer
// suite. One list for the tests that hold a variant of a network to the plain one (test_bf16: bf16
// against float32; test_streamed_weights: streamed against in memory).
#include <string>
#include <vector>

#include "volfeat/core/shape.hpp"

namespace volfeat::test {

struct SmallNetworkCase {
  std::string arch;
  Dims x;                         // the input (N, D, H, W, C)
  std::vector<std::string> taps;  // full module names, in execution order (the pass stops at the last)
};

inline const std::vector<SmallNetworkCase>& small_network_cases() {
  static const std::vector<SmallNetworkCase> cases{
      {"densenet121", {1, 17, 20, 19, 1}, {"features.pool0", "features.denseblock1", "features.transition2", "features.denseblock3"}},
      {"resnet18", {1, 18, 17, 20, 1}, {"maxpool", "layer1", "layer2", "layer3"}},
      {"vgg11", {1, 16, 18, 17, 1}, {"features.2", "features.7", "features.12"}},
  };
  return cases;
}

}  // namespace volfeat::test
