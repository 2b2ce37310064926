#pragma once
// VGG-11/13/16/19, with and without batchnorm (torchvision.models.vgg), `features` only.
//   features.<i>: for each entry of the config, a conv (3^3, padding 1, bias) [-> batchnorm] -> relu,
//   or `M`, a max pool 2^3/2; i counts every module, as torchvision's nn.Sequential does. VGG-19's
//   conv5_4 is features.34 (features.49 with batchnorm).
// The paper's (Keras) names, `conv2_2` or `block2_conv2`, mean Keras' conv layer, whose ReLU is
// built in: torchvision's ReLU module that follows that conv.
#include <string>
#include <vector>

#include "volfeat/nn/arch/family.hpp"

namespace volfeat {

struct VggConfig {
  const char* name;
  std::vector<int> layers;  // output channels per conv, 0 for a max pool
  bool batchnorm;
};

inline const std::vector<VggConfig>& vgg_configs() {
  static const std::vector<VggConfig> configs = [] {
    const std::vector<int> a{64, 0, 128, 0, 256, 256, 0, 512, 512, 0, 512, 512, 0};
    const std::vector<int> b{64, 64, 0, 128, 128, 0, 256, 256, 0, 512, 512, 0, 512, 512, 0};
    const std::vector<int> d{64, 64, 0, 128, 128, 0, 256, 256, 256, 0, 512, 512, 512, 0, 512, 512, 512, 0};
    const std::vector<int> e{64, 64, 0, 128, 128, 0, 256, 256, 256, 256, 0, 512, 512, 512, 512, 0, 512, 512, 512, 512, 0};
    return std::vector<VggConfig>{{"vgg11", a, false}, {"vgg11_bn", a, true}, {"vgg13", b, false}, {"vgg13_bn", b, true},
                                  {"vgg16", d, false}, {"vgg16_bn", d, true}, {"vgg19", e, false}, {"vgg19_bn", e, true}};
  }();
  return configs;
}

inline const VggConfig& vgg_config(const std::string& name) {
  for (const auto& c : vgg_configs())
    if (name == c.name) return c;
  fail("unknown VGG '", name, "'");
}

inline Graph vgg_graph(const VggConfig& c, Index stem_in) {
  Graph g(c.name, stem_in, ConvInit::kFanOut);
  int x = g.input(), i = 0, block = 1, conv_in_block = 0;
  auto name = [&] { return "features." + std::to_string(i++); };
  for (int v : c.layers) {
    if (v == 0) {
      x = g.max_pool(name(), x, WindowGeometry::cube(2, 2, 0));
      ++block, conv_in_block = 0;
      continue;
    }
    x = g.conv(name(), x, v, WindowGeometry::cube(3, 1, 1), true);
    if (c.batchnorm) x = g.batchnorm(name(), x);
    x = g.relu(name(), x);
    ++conv_in_block;
    const std::string bc = std::to_string(block) + "_" + std::to_string(conv_in_block);
    g.alias("conv" + bc, x);
    g.alias("block" + std::to_string(block) + "_conv" + std::to_string(conv_in_block), x);
    // convB_last: the block's last conv (VGG-19's conv5_4 is VGG-16's conv5_3 and VGG-11's conv5_2), so
    // the paper's preset means the same depth in every VGG.
    g.alias("conv" + std::to_string(block) + "_last", x);
    g.alias("block" + std::to_string(block) + "_convlast", x);
  }
  g.container("features", x);
  return g;
}

inline ArchFamily vgg_family() {
  ArchFamily f;
  f.name = "VGG";
  for (const auto& c : vgg_configs()) f.archs.push_back(c.name);
  f.stem_key = "features.0.weight";
  f.head_prefixes = {"classifier."};
  f.detect = [](const StateDict& sd) -> std::string {
    // Conv weights are the 4-D/5-D features.<i>.weight; batchnorm weights are 1-D.
    std::vector<int> convs;
    bool bn = false;
    for (int i = 0; i < 64; ++i) {
      const std::string k = "features." + std::to_string(i) + ".weight";
      if (!sd.has(k)) continue;
      if (sd.at(k).shape.size() >= 4) convs.push_back(int(sd.at(k).shape[0]));
      else bn = true;
    }
    for (const auto& c : vgg_configs()) {
      std::vector<int> want;
      for (int v : c.layers)
        if (v) want.push_back(v);
      if (want == convs && c.batchnorm == bn) return c.name;
    }
    fail(sd.origin, ": not a VGG-11/13/16/19 state_dict (", convs.size(), " convs in features, ",
         bn ? "with" : "without", " batchnorm)");
  };
  f.build = [](const std::string& arch, Index stem_in) { return vgg_graph(vgg_config(arch), stem_in); };
  f.describe = [](const std::string& arch) {
    const VggConfig& c = vgg_config(arch);
    int convs = 0;
    for (int v : c.layers) convs += v ? 1 : 0;
    return std::to_string(convs) + " convs, " + (c.batchnorm ? "with" : "without") + " batchnorm";
  };
  // The paper's shallow, mid and deep layers (Avants et al.): VGG-19's conv2_2, conv4_2, conv5_4 (Keras' layers:
  // their ReLUs), i.e. the last conv of block 2, the second of block 4 and the last of block 5 in any VGG.
  f.depth_layers = {"conv2_last", "conv4_2", "conv5_last"};
  f.presets = {
      {"paper-vgg", {"conv2_last", "conv4_2", "conv5_last"}},
      {"last-3rd-5th", {"conv[-1]", "conv[-3]", "conv[-5]"}},
  };
  f.selector_hint = "conv[-k], convB_C, blockB_convC, convB_last";
  f.layer_doc = "features.<i> (torchvision's index: conv, [batchnorm,] relu, or max pool); convB_C or blockB_convC is "
                "the ReLU after block B's C-th conv (Keras' layer, the paper's names), convB_last that of its last conv. "
                "The `features.` prefix may be left out.";
  return f;
}

}  // namespace volfeat
