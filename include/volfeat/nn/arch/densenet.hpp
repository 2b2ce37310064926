#pragma once
// DenseNet-121/161/169/201 (torchvision.models.densenet), `features` only.
//   features.conv0 7^3/2 -> norm0 -> relu0 -> pool0 (max 3^3/2)
//   denseblockB.denselayerL: torch.cat(block input, earlier layers' outputs) -> norm1 -> relu1 ->
//       conv1 (1^3, bn_size*growth) -> norm2 -> relu2 -> conv2 (3^3, growth); the layer outputs its
//       `growth` new channels, the block the concatenation of its input and all of them
//   transitionB: norm -> relu -> conv (1^3, half the channels) -> pool (avg 2^3/2)
//   norm5
#include <array>
#include <string>

#include "volfeat/nn/arch/family.hpp"

namespace volfeat {

struct DenseNetConfig {
  const char* name;
  int growth_rate;
  int bn_size;
  int init_features;
  std::array<int, 4> block_layers;
};

inline constexpr std::array<DenseNetConfig, 4> kDenseNetConfigs{{
    {"densenet121", 32, 4, 64, {6, 12, 24, 16}},
    {"densenet161", 48, 4, 96, {6, 12, 36, 24}},
    {"densenet169", 32, 4, 64, {6, 12, 32, 32}},
    {"densenet201", 32, 4, 64, {6, 12, 48, 32}},
}};

inline const DenseNetConfig& densenet_config(const std::string& name) {
  for (const auto& c : kDenseNetConfigs)
    if (name == c.name) return c;
  fail("unknown DenseNet '", name, "' (known: densenet121, densenet161, densenet169, densenet201)");
}

inline Graph densenet_graph(const DenseNetConfig& c, Index stem_in) {
  Graph g(c.name, stem_in, ConvInit::kFanIn);
  const std::string f = "features.";
  int x = g.conv(f + "conv0", g.input(), c.init_features, WindowGeometry::cube(7, 2, 3));
  x = g.batchnorm(f + "norm0", x);
  x = g.relu(f + "relu0", x);
  x = g.max_pool(f + "pool0", x, WindowGeometry::cube(3, 2, 1));
  for (int b = 0; b < 4; ++b) {
    const std::string block = f + "denseblock" + std::to_string(b + 1);
    std::vector<int> features{x};
    for (int l = 0; l < c.block_layers[size_t(b)]; ++l) {
      const std::string p = block + ".denselayer" + std::to_string(l + 1);
      int y = g.concat(features);
      y = g.batchnorm(p + ".norm1", y);
      y = g.relu(p + ".relu1", y);
      y = g.conv(p + ".conv1", y, Index(c.bn_size) * c.growth_rate, WindowGeometry::cube(1));
      y = g.batchnorm(p + ".norm2", y);
      y = g.relu(p + ".relu2", y);
      y = g.conv(p + ".conv2", y, c.growth_rate, WindowGeometry::cube(3, 1, 1));
      g.container(p, y);
      features.push_back(y);
    }
    x = g.concat(features);
    g.container(block, x);
    if (b == 3) break;
    const std::string t = f + "transition" + std::to_string(b + 1);
    x = g.batchnorm(t + ".norm", x);
    x = g.relu(t + ".relu", x);
    x = g.conv(t + ".conv", x, g.node(x).channels / 2, WindowGeometry::cube(1));
    x = g.avg_pool(t + ".pool", x, WindowGeometry::cube(2, 2, 0));
    g.container(t, x);
  }
  x = g.batchnorm(f + "norm5", x);
  g.container("features", x);
  return g;
}

inline std::string describe_densenet(const DenseNetConfig& c) {
  return "dense layers per block " + std::to_string(c.block_layers[0]) + "," + std::to_string(c.block_layers[1]) + "," +
         std::to_string(c.block_layers[2]) + "," + std::to_string(c.block_layers[3]);
}

inline ArchFamily densenet_family() {
  ArchFamily f;
  f.name = "DenseNet";
  for (const auto& c : kDenseNetConfigs) f.archs.push_back(c.name);
  f.stem_key = "features.conv0.weight";
  f.head_prefixes = {"classifier."};
  f.detect = [](const StateDict& sd) -> std::string {
    std::array<int, 4> layers{};
    for (int b = 0; b < 4; ++b)
      layers[size_t(b)] = count_keys(sd, "features.denseblock" + std::to_string(b + 1) + ".denselayer", ".conv1.weight");
    const Index init = sd.has("features.conv0.weight") ? sd.at("features.conv0.weight").shape.at(0) : 0;
    for (const auto& c : kDenseNetConfigs)
      if (c.block_layers == layers && c.init_features == init) return c.name;
    fail(sd.origin, ": not a DenseNet-121/161/169/201 state_dict (dense layers per block: ", layers[0], ",", layers[1],
         ",", layers[2], ",", layers[3], ")");
  };
  f.build = [](const std::string& arch, Index stem_in) { return densenet_graph(densenet_config(arch), stem_in); };
  f.describe = [](const std::string& arch) { return describe_densenet(densenet_config(arch)); };
  f.depth_layers = {"denseblock1", "denseblock2", "denseblock3"};
  f.presets = {
      {"denseblock4-tail",
       {"denseblock4.denselayer15.conv2", "denseblock4.denselayer16.conv1", "denseblock4.denselayer16.conv2"}},
      {"last-3rd-5th", {"conv[-1]", "conv[-3]", "conv[-5]"}},
      {"block-outputs", {"denseblock2", "denseblock3", "denseblock4"}},
  };
  f.selector_hint = "conv[-k], denseblockN, transitionN";
  f.layer_doc = "features.conv0, norm0, relu0, pool0; denseblockB.denselayerL.{norm1,relu1,conv1,norm2,relu2,conv2}, "
                "denseblockB.denselayerL (its new channels), denseblockB (the concatenation); "
                "transitionB.{norm,relu,conv,pool}, transitionB; norm5. The `features.` prefix may be left out.";
  return f;
}

}  // namespace volfeat
