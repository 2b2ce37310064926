#pragma once
// A network as data: a graph of modules with torchvision's names, their geometry and the parameter
// shapes they carry. One description per architecture (nn/arch/*.hpp) builds it; the executor
// (nn/network.hpp), the fusion planner (nn/plan.hpp), the memory estimate, the weight validator,
// the inflation and the layer selectors all read this one graph.
//
// Nodes are the ops torch runs, in execution order (a topological order): conv, batchnorm, relu,
// max/avg pool, and the two functional ops that are not modules, `+` (ResNet's residual) and
// torch.cat (DenseNet's concatenation). Modules are what a forward hook can see: every named node,
// plus containers (a dense layer, a block, a bottleneck, `layer3`) whose output is some node's. A
// module used twice (ResNet's `relu` inside a block) names its last call, as a hook writing into a
// dict would keep; modules() lists each name once, in the order its hook first fires.
#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "volfeat/core/error.hpp"
#include "volfeat/core/shape.hpp"
#include "volfeat/nn/state_dict.hpp"

namespace volfeat {

enum class OpKind { kInput, kConv, kBatchNorm, kRelu, kMaxPool, kAvgPool, kAdd, kConcat };
enum class ModuleKind { kConv, kNorm, kRelu, kPool, kContainer };

// torchvision's initialisation of conv weights, for volfeat's seeded random networks:
// kaiming_normal_ with mode fan_in (DenseNet) or fan_out (VGG, ResNet).
enum class ConvInit { kFanIn, kFanOut };

struct Node {
  OpKind kind = OpKind::kInput;
  std::string name;         // the torchvision module ("" for `+` and torch.cat)
  std::vector<int> inputs;  // node indices, all smaller than this one's
  Index channels = 0;       // output channels
  WindowGeometry window;    // conv and pool geometry (D, H, W)
  bool bias = false;        // conv: has a bias
  bool count_include_pad = true;  // avg pool
};

struct ModuleInfo {
  std::string name;  // full torchvision name, e.g. features.denseblock1.denselayer2.conv1, layer3.5.conv2
  ModuleKind kind;
  int node;          // the node whose output this module's hook sees
};

struct ParamSpec {
  std::string key;
  Shape shape;
};

class Graph {
 public:
  Graph() = default;
  // `arch`: the registry name (densenet121, vgg19_bn, resnet50...); `in_channels`: the stem's input
  // (1 for a gray volume, 3 for RGB).
  Graph(std::string arch, Index in_channels, ConvInit init) : arch_(std::move(arch)), init_(init) {
    Node in;
    in.channels = in_channels;
    nodes_.push_back(in);
  }

  // ---- building (the arch descriptions) ----
  int input() const { return 0; }
  int conv(const std::string& name, int in, Index out_channels, const WindowGeometry& g, bool bias = false) {
    Node n = make(OpKind::kConv, name, {in}, out_channels);
    n.window = g;
    n.bias = bias;
    return push(n, ModuleKind::kConv);
  }
  int batchnorm(const std::string& name, int in) { return push(make(OpKind::kBatchNorm, name, {in}, ch(in)), ModuleKind::kNorm); }
  int relu(const std::string& name, int in) { return push(make(OpKind::kRelu, name, {in}, ch(in)), ModuleKind::kRelu); }
  int max_pool(const std::string& name, int in, const WindowGeometry& g) {
    Node n = make(OpKind::kMaxPool, name, {in}, ch(in));
    n.window = g;
    return push(n, ModuleKind::kPool);
  }
  int avg_pool(const std::string& name, int in, const WindowGeometry& g, bool count_include_pad = true) {
    Node n = make(OpKind::kAvgPool, name, {in}, ch(in));
    n.window = g;
    n.count_include_pad = count_include_pad;
    return push(n, ModuleKind::kPool);
  }
  // `a + b` (same shape), not a module.
  int add(int a, int b) {
    if (ch(a) != ch(b)) fail(arch_, ": adding ", ch(a), " to ", ch(b), " channels");
    return push(make(OpKind::kAdd, "", {a, b}, ch(a)), ModuleKind::kContainer);
  }
  // torch.cat(inputs, dim=1), not a module.
  int concat(const std::vector<int>& inputs) {
    Index c = 0;
    for (int i : inputs) c += ch(i);
    return push(make(OpKind::kConcat, "", inputs, c), ModuleKind::kContainer);
  }
  // A container module whose output is `node`'s; its hook fires now (after its children).
  void container(const std::string& name, int node) { name_module(name, ModuleKind::kContainer, node); }
  // Another name for a module or node (the paper's `conv2_2`), not listed in modules().
  void alias(const std::string& name, int node) { aliases_[name] = node; }

  // ---- reading ----
  const std::string& arch() const { return arch_; }
  ConvInit conv_init() const { return init_; }
  Index input_channels() const { return nodes_[0].channels; }
  const std::vector<Node>& nodes() const { return nodes_; }
  const Node& node(int i) const { return nodes_[size_t(i)]; }
  int last_node() const { return int(nodes_.size()) - 1; }
  const std::vector<ModuleInfo>& modules() const { return modules_; }
  const std::map<std::string, int>& aliases() const { return aliases_; }
  // The node a module name denotes, or -1.
  int find_module(const std::string& name) const {
    auto it = module_index_.find(name);
    return it == module_index_.end() ? -1 : modules_[size_t(it->second)].node;
  }
  int node_of(const std::string& name) const {
    const int n = find_module(name);
    if (n < 0) fail("unknown module ", name, " in ", arch_);
    return n;
  }
  // Modules whose hook sees node i, in hook order.
  std::vector<const ModuleInfo*> modules_of(int node) const {
    std::vector<const ModuleInfo*> out;
    for (const auto& m : modules_)
      if (m.node == node) out.push_back(&m);
    return out;
  }
  int first_conv() const {
    for (size_t i = 0; i < nodes_.size(); ++i)
      if (nodes_[i].kind == OpKind::kConv) return int(i);
    fail(arch_, ": has no conv");
  }

  // Every parameter tensor, in execution order: conv weights with `spatial_dims` kernel axes (2 for
  // a torchvision export, 3 for volfeat's) and biases, BatchNorm's four buffers.
  std::vector<ParamSpec> params(int spatial_dims) const {
    std::vector<ParamSpec> p;
    for (const Node& n : nodes_) {
      if (n.kind == OpKind::kConv) {
        Shape s{n.channels, nodes_[size_t(n.inputs[0])].channels};
        for (int a = 3 - spatial_dims; a < 3; ++a) s.push_back(n.window.kernel[size_t(a)]);
        p.push_back({n.name + ".weight", s});
        if (n.bias) p.push_back({n.name + ".bias", {n.channels}});
      } else if (n.kind == OpKind::kBatchNorm) {
        for (const char* leaf : {".weight", ".bias", ".running_mean", ".running_var"}) p.push_back({n.name + leaf, {n.channels}});
      }
    }
    return p;
  }
  // Parameter values of the nodes up to and including `last` (default: every node), 3D kernels.
  double param_values(int last = -1) const {
    if (last < 0 || last > last_node()) last = last_node();
    double v = 0;
    for (int i = 0; i <= last; ++i) {
      const Node& n = nodes_[size_t(i)];
      if (n.kind == OpKind::kConv)
        v += double(n.channels) * (double(nodes_[size_t(n.inputs[0])].channels) * double(n.window.taps()) + (n.bias ? 1 : 0));
      else if (n.kind == OpKind::kBatchNorm)
        v += 4.0 * double(n.channels);
    }
    return v;
  }

  // Every node's output dims for an input of `in` (spatial extents <= 0 where a window no longer fits).
  std::vector<Dims> infer_dims(const Dims& in) const {
    std::vector<Dims> d(nodes_.size());
    d[0] = in;
    d[0].c = nodes_[0].channels;
    for (size_t i = 1; i < nodes_.size(); ++i) {
      const Node& n = nodes_[i];
      Dims x = d[size_t(n.inputs[0])];
      if (n.kind == OpKind::kConv || n.kind == OpKind::kMaxPool || n.kind == OpKind::kAvgPool) {
        const auto s = n.window.out_spatial({std::max<Index>(x.d, 0), std::max<Index>(x.h, 0), std::max<Index>(x.w, 0)});
        x.d = s[0], x.h = s[1], x.w = s[2];
      }
      x.c = n.channels;
      d[i] = x;
    }
    return d;
  }
  static bool fits(const Dims& d) { return d.d > 0 && d.h > 0 && d.w > 0; }

  // 2 * multiply-adds of every conv node for an input of `in` (the standard network, unfused: what
  // GFLOP/s figures are counted in).
  double conv_flops(const Dims& in) const {
    const auto d = infer_dims(in);
    double f = 0;
    for (size_t i = 1; i < nodes_.size(); ++i)
      if (nodes_[i].kind == OpKind::kConv)
        f += 2.0 * double(d[i].voxels()) * double(d[i].c) * double(d[size_t(nodes_[i].inputs[0])].c) *
             double(nodes_[i].window.taps());
    return f;
  }

 private:
  Node make(OpKind k, const std::string& name, std::vector<int> inputs, Index channels) const {
    for (int i : inputs)
      if (i < 0 || i >= int(nodes_.size())) fail(arch_, ": node ", name, " reads node ", i, " that does not exist yet");
    Node n;
    n.kind = k;
    n.name = name;
    n.inputs = std::move(inputs);
    n.channels = channels;
    return n;
  }
  Index ch(int node) const { return nodes_.at(size_t(node)).channels; }
  int push(const Node& n, ModuleKind kind) {
    nodes_.push_back(n);
    const int id = int(nodes_.size()) - 1;
    if (!n.name.empty()) name_module(n.name, kind, id);
    return id;
  }
  void name_module(const std::string& name, ModuleKind kind, int node) {
    auto it = module_index_.find(name);
    if (it != module_index_.end()) {
      modules_[size_t(it->second)].node = node;  // a module called again: the last call's output
      return;
    }
    module_index_[name] = modules_.size();
    modules_.push_back({name, kind, node});
  }

  std::string arch_;
  ConvInit init_ = ConvInit::kFanIn;
  std::vector<Node> nodes_;
  std::vector<ModuleInfo> modules_;
  std::map<std::string, size_t> module_index_;
  std::map<std::string, int> aliases_;
};

}  // namespace volfeat
