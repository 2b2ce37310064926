#pragma once
// ResNet-18/34/50/101/152 and Wide ResNet-50-2/101-2 (torchvision.models.resnet), without avgpool/fc.
//   conv1 7^3/2 -> bn1 -> relu -> maxpool 3^3/2 -> layer1..layer4
//   BasicBlock  layerN.B: conv1 3^3 (stride s) -> bn1 -> relu -> conv2 3^3 -> bn2, + identity -> relu
//   Bottleneck  layerN.B: conv1 1^3 -> bn1 -> relu -> conv2 3^3 (stride s) -> bn2 -> relu -> conv3 1^3
//               (4x) -> bn3, + identity -> relu
//   identity: the block's input, or downsample.0 (1^3 conv, stride s) -> downsample.1 (batchnorm)
//   when the stride or the width changes. The block's `relu` module runs two or three times; its name
//   means its last call (the block's output), as a forward hook keeps.
// ResNeXt needs grouped convs, which volfeat's Conv3d does not have yet.
#include <array>
#include <string>
#include <vector>

#include "volfeat/nn/arch/family.hpp"

namespace volfeat {

struct ResNetConfig {
  const char* name;
  bool bottleneck;
  std::array<int, 4> blocks;
  int width_per_group;  // 64; 128 for the wide ResNets
};

inline constexpr std::array<ResNetConfig, 7> kResNetConfigs{{
    {"resnet18", false, {2, 2, 2, 2}, 64},
    {"resnet34", false, {3, 4, 6, 3}, 64},
    {"resnet50", true, {3, 4, 6, 3}, 64},
    {"resnet101", true, {3, 4, 23, 3}, 64},
    {"resnet152", true, {3, 8, 36, 3}, 64},
    {"wide_resnet50_2", true, {3, 4, 6, 3}, 128},
    {"wide_resnet101_2", true, {3, 4, 23, 3}, 128},
}};

inline const ResNetConfig& resnet_config(const std::string& name) {
  for (const auto& c : kResNetConfigs)
    if (name == c.name) return c;
  fail("unknown ResNet '", name, "'");
}

inline Graph resnet_graph(const ResNetConfig& c, Index stem_in) {
  Graph g(c.name, stem_in, ConvInit::kFanOut);
  const auto k1 = [](Index s) { return WindowGeometry::cube(1, s, 0); };
  const auto k3 = [](Index s) { return WindowGeometry::cube(3, s, 1); };
  int x = g.conv("conv1", g.input(), 64, WindowGeometry::cube(7, 2, 3));
  x = g.batchnorm("bn1", x);
  x = g.relu("relu", x);
  x = g.max_pool("maxpool", x, WindowGeometry::cube(3, 2, 1));
  const int expansion = c.bottleneck ? 4 : 1;
  for (int l = 0; l < 4; ++l) {
    const Index planes = Index(64) << l;
    const std::string layer = "layer" + std::to_string(l + 1);
    for (int b = 0; b < c.blocks[size_t(l)]; ++b) {
      const std::string p = layer + "." + std::to_string(b);
      const Index stride = (b == 0 && l > 0) ? 2 : 1;
      const Index in_ch = g.node(x).channels;
      int y;
      if (c.bottleneck) {
        const Index width = planes * c.width_per_group / 64;
        y = g.conv(p + ".conv1", x, width, k1(1));
        y = g.relu(p + ".relu", g.batchnorm(p + ".bn1", y));
        y = g.conv(p + ".conv2", y, width, k3(stride));
        y = g.relu(p + ".relu", g.batchnorm(p + ".bn2", y));
        y = g.batchnorm(p + ".bn3", g.conv(p + ".conv3", y, planes * expansion, k1(1)));
      } else {
        y = g.conv(p + ".conv1", x, planes, k3(stride));
        y = g.relu(p + ".relu", g.batchnorm(p + ".bn1", y));
        y = g.batchnorm(p + ".bn2", g.conv(p + ".conv2", y, planes, k3(1)));
      }
      int identity = x;
      if (stride != 1 || in_ch != planes * expansion) {
        identity = g.conv(p + ".downsample.0", x, planes * expansion, k1(stride));
        identity = g.batchnorm(p + ".downsample.1", identity);
        g.container(p + ".downsample", identity);
      }
      x = g.relu(p + ".relu", g.add(y, identity));
      g.container(p, x);
    }
    g.container(layer, x);
  }
  return g;
}

inline ArchFamily resnet_family() {
  ArchFamily f;
  f.name = "ResNet";
  for (const auto& c : kResNetConfigs) f.archs.push_back(c.name);
  f.stem_key = "conv1.weight";
  f.head_prefixes = {"fc."};
  f.detect = [](const StateDict& sd) -> std::string {
    std::array<int, 4> blocks{};
    for (int l = 0; l < 4; ++l) blocks[size_t(l)] = count_keys(sd, "layer" + std::to_string(l + 1) + ".", ".conv1.weight", 0);
    const bool bottleneck = sd.has("layer1.0.conv3.weight");
    const Index width = sd.has("layer1.0.conv1.weight") ? sd.at("layer1.0.conv1.weight").shape.at(0) : 0;
    for (const auto& c : kResNetConfigs)
      if (c.blocks == blocks && c.bottleneck == bottleneck && (!bottleneck || width == c.width_per_group)) return c.name;
    fail(sd.origin, ": not a ResNet-18/34/50/101/152 or Wide ResNet-50-2/101-2 state_dict (", bottleneck ? "Bottleneck" : "BasicBlock",
         " blocks per layer: ", blocks[0], ",", blocks[1], ",", blocks[2], ",", blocks[3],
         bottleneck ? ", width " + std::to_string(width) : std::string(), ")");
  };
  f.build = [](const std::string& arch, Index stem_in) { return resnet_graph(resnet_config(arch), stem_in); };
  f.describe = [](const std::string& arch) {
    const ResNetConfig& c = resnet_config(arch);
    return std::string(c.bottleneck ? "Bottleneck" : "BasicBlock") + " blocks per layer " + std::to_string(c.blocks[0]) +
           "," + std::to_string(c.blocks[1]) + "," + std::to_string(c.blocks[2]) + "," + std::to_string(c.blocks[3]);
  };
  // Shallow, mid and deep, as the paper's VGG layers: the outputs of layer1, layer3 and layer4
  // (each a block's ReLU output, at 1/4, 1/16 and 1/32 of the input's extent).
  f.depth_layers = {"layer1", "layer2", "layer3"};
  f.presets = {
      {"paper-resnet", {"layer1", "layer3", "layer4"}},
      {"last-3rd-5th", {"conv[-1]", "conv[-3]", "conv[-5]"}},
      {"block-outputs", {"layer2", "layer3", "layer4"}},
  };
  f.selector_hint = "conv[-k], layerN, layerN.B, layerN.B.convK";
  f.layer_doc = "conv1, bn1, relu, maxpool; layerN.B.{conv1,bn1,conv2,bn2[,conv3,bn3],relu} (relu: the block's output), "
                "layerN.B.downsample[.0|.1], layerN.B, layerN.";
  return f;
}

}  // namespace volfeat
