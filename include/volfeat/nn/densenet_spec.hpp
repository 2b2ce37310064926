#pragma once
// DenseNet architecture as data: the configs (one table), the module names in torchvision's order
// and the parameter shapes they carry. The network, the weight validator, the converter and the
// layer selectors all read this one description.
#include <array>
#include <string>
#include <string_view>
#include <vector>

#include "volfeat/core/error.hpp"
#include "volfeat/nn/state_dict.hpp"

namespace volfeat {

struct DenseNetConfig {
  const char* name;
  int growth_rate;
  int bn_size;
  int init_features;
  std::array<int, 4> block_layers;
};

inline constexpr std::array<DenseNetConfig, 3> kDenseNetConfigs{{
    {"densenet121", 32, 4, 64, {6, 12, 24, 16}},
    {"densenet169", 32, 4, 64, {6, 12, 32, 32}},
    {"densenet201", 32, 4, 64, {6, 12, 48, 32}},
}};

inline const DenseNetConfig& densenet_config(std::string_view name) {
  for (const auto& c : kDenseNetConfigs)
    if (name == c.name) return c;
  fail("unknown architecture '", name, "' (known: densenet121, densenet169, densenet201)");
}

// Channels entering block b (0-based) and entering layer l of it.
inline int block_input_channels(const DenseNetConfig& c, int b) {
  int ch = c.init_features;
  for (int i = 0; i < b; ++i) ch = (ch + c.block_layers[size_t(i)] * c.growth_rate) / 2;
  return ch;
}
inline int block_output_channels(const DenseNetConfig& c, int b) {
  return block_input_channels(c, b) + c.block_layers[size_t(b)] * c.growth_rate;
}

enum class ModuleKind { kConv, kNorm, kRelu, kPool, kDenseLayer, kDenseBlock, kTransition };

struct ModuleInfo {
  std::string name;  // torchvision's, with the "features." prefix
  ModuleKind kind;
};

// Every named module of `features`, in the order torch's forward hooks fire (a container after its
// children).
inline std::vector<ModuleInfo> densenet_modules(const DenseNetConfig& c) {
  std::vector<ModuleInfo> m;
  const std::string f = "features.";
  m.push_back({f + "conv0", ModuleKind::kConv});
  m.push_back({f + "norm0", ModuleKind::kNorm});
  m.push_back({f + "relu0", ModuleKind::kRelu});
  m.push_back({f + "pool0", ModuleKind::kPool});
  for (int b = 0; b < 4; ++b) {
    const std::string block = f + "denseblock" + std::to_string(b + 1);
    for (int l = 0; l < c.block_layers[size_t(b)]; ++l) {
      const std::string layer = block + ".denselayer" + std::to_string(l + 1);
      m.push_back({layer + ".norm1", ModuleKind::kNorm});
      m.push_back({layer + ".relu1", ModuleKind::kRelu});
      m.push_back({layer + ".conv1", ModuleKind::kConv});
      m.push_back({layer + ".norm2", ModuleKind::kNorm});
      m.push_back({layer + ".relu2", ModuleKind::kRelu});
      m.push_back({layer + ".conv2", ModuleKind::kConv});
      m.push_back({layer, ModuleKind::kDenseLayer});
    }
    m.push_back({block, ModuleKind::kDenseBlock});
    if (b < 3) {
      const std::string t = f + "transition" + std::to_string(b + 1);
      m.push_back({t + ".norm", ModuleKind::kNorm});
      m.push_back({t + ".relu", ModuleKind::kRelu});
      m.push_back({t + ".conv", ModuleKind::kConv});
      m.push_back({t + ".pool", ModuleKind::kPool});
      m.push_back({t, ModuleKind::kTransition});
    }
  }
  m.push_back({f + "norm5", ModuleKind::kNorm});
  return m;
}

struct ParamSpec {
  std::string key;
  Shape shape;
};

// Every tensor of `features` (conv weights with `spatial_dims` kernel axes: 2 for a torchvision
// export, 3 for volfeat's) plus the BN buffers. `stem_in` is conv0's input channels (3 for RGB
// exports, 1 after the stem collapse).
inline std::vector<ParamSpec> densenet_params(const DenseNetConfig& c, int spatial_dims, int64_t stem_in) {
  std::vector<ParamSpec> p;
  auto conv = [&](const std::string& name, int64_t out, int64_t in, int64_t k) {
    Shape s{out, in};
    for (int i = 0; i < spatial_dims; ++i) s.push_back(k);
    p.push_back({name + ".weight", s});
  };
  auto norm = [&](const std::string& name, int64_t ch) {
    for (const char* leaf : {".weight", ".bias", ".running_mean", ".running_var"}) p.push_back({name + leaf, {ch}});
  };
  const std::string f = "features.";
  conv(f + "conv0", c.init_features, stem_in, 7);
  norm(f + "norm0", c.init_features);
  for (int b = 0; b < 4; ++b) {
    const std::string block = f + "denseblock" + std::to_string(b + 1);
    const int in = block_input_channels(c, b);
    for (int l = 0; l < c.block_layers[size_t(b)]; ++l) {
      const std::string layer = block + ".denselayer" + std::to_string(l + 1);
      const int ch = in + l * c.growth_rate;
      norm(layer + ".norm1", ch);
      conv(layer + ".conv1", c.bn_size * c.growth_rate, ch, 1);
      norm(layer + ".norm2", c.bn_size * c.growth_rate);
      conv(layer + ".conv2", c.growth_rate, c.bn_size * c.growth_rate, 3);
    }
    if (b < 3) {
      const std::string t = f + "transition" + std::to_string(b + 1);
      const int out = block_output_channels(c, b);
      norm(t + ".norm", out);
      conv(t + ".conv", out / 2, out, 1);
    }
  }
  norm(f + "norm5", block_output_channels(c, 3));
  return p;
}

// Keys a torchvision state_dict may hold beyond `features`' tensors: BN step counters, the
// classifier (unused here) and volfeat's metadata entry.
inline bool is_ignorable_key(const std::string& key) {
  auto ends_with = [&](std::string_view s) {
    return key.size() >= s.size() && key.compare(key.size() - s.size(), s.size(), s) == 0;
  };
  return ends_with(".num_batches_tracked") || key.rfind("classifier.", 0) == 0 || key == "volfeat_meta";
}

// Which config a state_dict holds, from how many dense layers each block has.
inline const DenseNetConfig& detect_densenet(const StateDict& sd) {
  std::array<int, 4> layers{};
  for (int b = 0; b < 4; ++b) {
    const std::string prefix = "features.denseblock" + std::to_string(b + 1) + ".denselayer";
    while (sd.has(prefix + std::to_string(layers[size_t(b)] + 1) + ".conv1.weight")) ++layers[size_t(b)];
  }
  for (const auto& c : kDenseNetConfigs)
    if (c.block_layers == layers) return c;
  fail(sd.origin, ": not a DenseNet-121/169/201 state_dict (dense layers per block: ", layers[0], ",", layers[1],
       ",", layers[2], ",", layers[3], ")");
}

}  // namespace volfeat

namespace volfeat {

// Every key present with its exact shape, nothing unexpected; errors name the file, the key and
// both shapes.
inline void validate_densenet_state_dict(const StateDict& sd, const DenseNetConfig& c, int spatial_dims,
                                         int64_t stem_in) {
  const auto specs = densenet_params(c, spatial_dims, stem_in);
  std::map<std::string, const Shape*> expected;
  for (const auto& s : specs) expected[s.key] = &s.shape;
  for (const auto& s : specs) {
    auto it = sd.params.find(s.key);
    if (it == sd.params.end())
      fail(sd.origin, ": missing key ", s.key, " (expected shape ", shape_string(s.shape), ")");
    if (it->second.shape != s.shape)
      fail(sd.origin, ": key ", s.key, " has shape ", shape_string(it->second.shape), ", expected ",
           shape_string(s.shape));
    if (static_cast<int64_t>(it->second.values.size()) != element_count(s.shape))
      fail(sd.origin, ": key ", s.key, " holds ", it->second.values.size(), " values for shape ",
           shape_string(s.shape));
  }
  for (const auto& [key, p] : sd.params)
    if (!expected.count(key) && !is_ignorable_key(key))
      fail(sd.origin, ": unexpected key ", key, " (shape ", shape_string(p.shape), ") for ", c.name);
}

// 2 for a torchvision export, 3 for an inflated one; a file mixing the two is rejected.
inline int conv_spatial_dims(const StateDict& sd) {
  const Param& stem = sd.at("features.conv0.weight");
  const int dims = static_cast<int>(stem.shape.size()) - 2;
  if (dims != 2 && dims != 3)
    fail(sd.origin, ": features.conv0.weight has shape ", shape_string(stem.shape),
         ", expected a 4-D (2D export) or 5-D (3D) conv weight");
  for (const auto& [key, p] : sd.params) {
    const bool conv = key.size() > 7 && key.compare(key.size() - 7, 7, ".weight") == 0 && p.shape.size() >= 4;
    if (conv && static_cast<int>(p.shape.size()) - 2 != dims)
      fail(sd.origin, ": mixes 2D and 3D conv weights (features.conv0.weight is ", dims + 2, "-D, ", key, " is ",
           p.shape.size(), "-D)");
  }
  return dims;
}

}  // namespace volfeat
