#pragma once
// The one executor: any graph of nn/graph.hpp (DenseNet, VGG, ResNet...) with its weights, inflated to
// 3D, over any backend. A Network holds the graph, the backend's device object (its state: for now a
// tag; a stream and library handles belong there) and the packed ops, one per conv and batchnorm node.
//
// forward() asks the observer which modules it wants, plans the steps (nn/plan.hpp: everything an
// observer does not look at is fused), allocates each buffer when a step first writes it and frees
// it after its last reader, and shows every wanted module's output to the observer as soon as it is
// produced. Activations are channels-last (N, D, H, W, C) throughout.
#include <algorithm>
#include <array>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "volfeat/backend/cpu/gemm_types.hpp"
#include "volfeat/core/host_memory.hpp"
#include "volfeat/nn/architectures.hpp"
#include "volfeat/nn/graph.hpp"
#include "volfeat/nn/plan.hpp"
#include "volfeat/nn/selectors.hpp"
#include "volfeat/nn/taps.hpp"
#include "volfeat/ops/add.hpp"
#include "volfeat/ops/batchnorm3d.hpp"
#include "volfeat/ops/concat.hpp"
#include "volfeat/ops/conv3d.hpp"
#include "volfeat/ops/conv_algorithm.hpp"
#include "volfeat/ops/fused.hpp"
#include "volfeat/ops/pool3d.hpp"
#include "volfeat/ops/relu.hpp"

namespace volfeat {

// An observer with on_progress(done_steps, total_steps, module) hears after each step that produces
// a named module, so a long forward pass can show progress.
template <class Observer, class = void>
inline constexpr bool kReportsProgress = false;
template <class Observer>
inline constexpr bool kReportsProgress<
    Observer, std::void_t<decltype(std::declval<Observer&>().on_progress(0, 0, std::string()))>> = true;

// True where ConvActMaxPool<Backend, T> holds only a ring of conv planes (for the memory estimate).
template <class Backend, class T>
inline constexpr bool kPlanewiseConvPool = kHostResident<Backend>;

// The backend's traits alone (which convs run Winograd is the built network's: Network::plan_traits).
template <class Backend, class T>
PlanTraits plan_traits() {
  PlanTraits t;
  t.planewise_pair = kPlanewiseDenseLayer<Backend, T>;
  t.planewise_pool = kPlanewiseConvPool<Backend, T>;
  t.bf16_features = kBf16Features<Backend, T>;
  return t;
}

// True where Conv3d<Backend, T> may run Winograd (it has winograd(): Cpu).
template <class Conv, class = void>
inline constexpr bool kConvHasWinograd = false;
template <class Conv>
inline constexpr bool kConvHasWinograd<Conv, std::void_t<decltype(std::declval<const Conv&>().winograd())>> = true;
// True where Conv3d<Backend, T> may run as 1D Winograd along W (it has winograd_along_w(): Cpu).
template <class Conv, class = void>
inline constexpr bool kConvHasAlongW = false;
template <class Conv>
inline constexpr bool kConvHasAlongW<Conv, std::void_t<decltype(std::declval<const Conv&>().winograd_along_w())>> = true;

// Asks Network's constructor to free each tensor's values of the StateDict as soon as its conv or
// batchnorm is packed; the keys, shapes and meta_json stay (the outputs name and describe the weights,
// and the memory estimate counts the values still held). Why: otherwise the whole StateDict and the
// whole packed network coexist at the end of the build, and that was the process's peak for a forward
// at 64x128x128 (ResNet-50, VGG-19: bench/README.md, "Weights released while the network is built").
struct ReleaseWeights {};
inline constexpr ReleaseWeights kReleaseWeights{};

// How much of its graph a Network packs: every node (no modules named, the default), or only the nodes
// up to and including the deepest of `modules` (layer selectors: nn/selectors.hpp), for a caller that
// knows its taps. Why: a run that tapped conv0 and pool0 packed all 120 of DenseNet-121's convs, and
// under ASan that build took 0.97 s of a 1.3 s `volfeat extract` (run.json, session 17). The convs past
// the deepest tap are neither packed nor, for seeded weights, computed. forward() past them is an error.
//
// input: the input the caller will run the network on, where it knows it (extract: the prepared
// volume). Each conv is then built for its output at that input (ConvUse): the Cpu
// backend leaves a conv with few outputs direct, since building its Winograd weights costs more than a
// forward there saves. Any other input still runs, exact to the same tolerances, only slower.
struct BuildUpTo {
  std::vector<std::string> modules;
  std::optional<Dims> input;
};

template <class Backend, class T>
class Network {
 public:
  using backend_type = Backend;
  using value_type = T;

  // sd: a 3D state_dict (conv weights (O, I, kD, kH, kW)) of any registered architecture, left as it is.
  explicit Network(const StateDict& sd, Backend device = {}) : Network(graph_of(sd), sd, device) {}
  Network(Graph graph, const StateDict& sd, Backend device = {}) : graph_(std::move(graph)), device_(device) {
    build(sd, nullptr, {});
  }
  // The same, releasing sd's values as it goes (ReleaseWeights above); a build that fails leaves sd partly
  // released, so it is for a StateDict that serves this network only.
  Network(StateDict& sd, ReleaseWeights, Backend device = {}, const BuildUpTo& extent = {})
      : graph_(graph_of(sd)), device_(device) {
    build(sd, &sd, extent);
  }
  // A temporary StateDict is always released as it goes.
  explicit Network(StateDict&& sd, Backend device = {}, const BuildUpTo& extent = {})
      : Network(sd, kReleaseWeights, device, extent) {}

  const Graph& graph() const { return graph_; }

  // The backend's traits and which convs run Winograd (per node), for the plan and the memory estimate.
  PlanTraits plan_traits() const {
    PlanTraits t = volfeat::plan_traits<Backend, T>();
    t.winograd_points.assign(convs_.size(), 0);
    if constexpr (kConvHasWinograd<Conv3d<Backend, T>>) {
      t.bf16.assign(convs_.size(), false);
      for (size_t i = 0; i < convs_.size(); ++i) {
        if (convs_[i] && convs_[i]->winograd()) t.winograd_points[i] = convs_[i]->winograd()->points();
        t.bf16[i] = convs_[i] && convs_[i]->precision() == Precision::kBf16;
      }
      t.bf16_staging = Conv3d<Backend, T>::bf16_output_staged();
      t.paired_planes.assign(convs_.size(), 0);
      for (size_t i = 0; i < convs_.size(); ++i) t.paired_planes[i] = convs_[i] ? convs_[i]->paired_plane_slots() : 0;
    }
    if constexpr (kConvHasAlongW<Conv3d<Backend, T>>) {
      t.along_w.assign(convs_.size(), false);
      for (size_t i = 0; i < convs_.size(); ++i) t.along_w[i] = convs_[i] && convs_[i]->winograd_along_w();
    }
    return t;
  }
  const std::string& arch() const { return graph_.arch(); }
  const Backend& device() const { return device_; }
  // 1 for a collapsed (gray) stem, 3 for an RGB stem fed a replicated, per-channel normalised volume.
  Index input_channels() const { return graph_.input_channels(); }
  const std::vector<ModuleInfo>& modules() const { return graph_.modules(); }
  // The node a module name denotes (the `stop` of forward()).
  int node_of(const std::string& name) const { return graph_.node_of(name); }
  // The last node forward() can run to: the graph's last, or the deepest module of BuildUpTo.
  int last_node() const { return built_last_; }
  int built_last() const { return built_last_; }

  // The smallest input extent per axis that reaches node `stop` with at least one voxel.
  std::array<Index, 3> min_input_size(int stop) const {
    std::array<Index, 3> need{};
    for (int a = 0; a < 3; ++a) {
      Index n = 1;
      for (;; ++n) {
        Dims d{1, 4096, 4096, 4096, input_channels()};
        (a == 0 ? d.d : a == 1 ? d.h : d.w) = n;
        const Dims o = graph_.infer_dims(d)[size_t(stop)];
        if ((a == 0 ? o.d : a == 1 ? o.h : o.w) > 0) break;
      }
      need[size_t(a)] = n;
    }
    return need;
  }

  // Runs the input (N, D, H, W, input_channels()) through the nodes up to and including `stop`
  // (default: the last node built, BuildUpTo), showing each wanted module's output to `obs`.
  template <class Observer>
  void forward(TensorView<const T> x, Observer& obs, int stop = -1) const {
    if (stop < 0) stop = built_last_;
    if (stop > built_last_) fail("network: built up to ", built_up_to_, " only (BuildUpTo); it cannot run to ",
                                 describe_node(std::min(stop, graph_.last_node())));
    check_input(x.dims, stop);
    std::vector<bool> wanted(graph_.nodes().size(), false);
    for (const ModuleInfo& m : graph_.modules())
      if (m.node <= stop && obs.wants(m.name)) wanted[size_t(m.node)] = true;
    const Plan plan = make_plan(graph_, x.dims, wanted, stop, plan_traits());
    run(plan, x, obs);
  }

  void forward(TensorView<const T> x, int stop = -1) const {
    NoTaps none;
    forward(x, none, stop);
  }

 private:
  using Buffer = Tensor<Backend, T>;
  using Act = Activation<Backend, T>;

  template <class Observer>
  void run(const Plan& plan, TensorView<const T> x, Observer& obs) const {
    std::vector<Buffer> buffers(plan.buffers.size());
    Buffer scratch;
    auto bf16 = [&](int node) {  // node's output is held in bf16 (Plan::bf16_buffer)
      const int b = node > 0 ? plan.place[size_t(node)].buffer : -1;
      return b >= 0 && plan.bf16_buffer[size_t(b)];
    };
    auto view = [&](int node) -> TensorView<T> {
      const Placement& p = plan.place[size_t(node)];
      if (p.buffer < 0) fail("network: node ", node, " has no buffer (internal error)");
      if (bf16(node)) fail("network: node ", node, " holds bf16 values (internal error)");
      Dims d = plan.dims[size_t(node)];
      return buffers[size_t(p.buffer)].view().channels(p.offset, d.c);
    };
    auto view16 = [&](int node) -> TensorView<cpu::Bf16> {
      const Placement& p = plan.place[size_t(node)];
      Buffer& b = buffers[size_t(p.buffer)];
      Dims whole = plan.buffers[size_t(p.buffer)];
      const Index ld = 2 * plan.storage_dims(p.buffer).c;
      whole.c = ld;
      return TensorView<cpu::Bf16>(reinterpret_cast<cpu::Bf16*>(b.data()), whole, ld)
          .channels(p.offset, plan.dims[size_t(node)].c);
    };
    auto in = [&](int node) -> TensorView<const T> { return node == 0 ? x : TensorView<const T>(view(node)); };
    auto bn = [&](int node) -> const BatchNorm3d<Backend, T>* { return node >= 0 ? bns_[size_t(node)].get() : nullptr; };
    const auto& nodes = graph_.nodes();
    const int total = int(plan.steps.size());
    for (int k = 0; k < total; ++k) {
      const Step& s = plan.steps[size_t(k)];
      for (int b : s.alloc) buffers[size_t(b)].resize(plan.storage_dims(b));
      // Held in bf16 (Plan::bf16_buffer; kBf16Features only): a dense block's features, which the stem's
      // pool, the dense layers and the transitions write and read; no observer sees them (make_plan).
      const bool out16 = bf16(s.out), in16 = !s.sources.empty() && bf16(s.sources[0]);
      const TensorView<T> out = out16 ? TensorView<T>() : view(s.out);
      auto src16 = [&] { return TensorView<const cpu::Bf16>(view16(s.sources[0])); };
      switch (s.kind) {
        case StepKind::kConv:
          convs_[size_t(s.conv)]->forward(in(s.sources[0]), out, Act{bn(s.pre_bn), s.pre_relu}, Act{bn(s.post_bn), s.post_relu});
          break;
        case StepKind::kConvAdd:
          ConvAddAct<Backend, T>::forward(*convs_[size_t(s.conv)], Act{bn(s.pre_bn), s.pre_relu}, Act{bn(s.post_bn), s.post_relu},
                                          in(s.sources[0]), in(s.sources[1]), out, s.relu);
          break;
        case StepKind::kConvMaxPool: {
          const Act post{bn(s.post_bn), s.post_relu};
          const MaxPool3d<Backend, T> pool(nodes[size_t(s.op)].window);
          if constexpr (kBf16Features<Backend, T>)
            if (out16) {  // the stem into block 1
              ConvActMaxPool<Backend, T>::forward(*convs_[size_t(s.conv)], post, pool, in(s.sources[0]), view16(s.out));
              break;
            }
          ConvActMaxPool<Backend, T>::forward(*convs_[size_t(s.conv)], post, pool, in(s.sources[0]), out);
          break;
        }
        case StepKind::kConvPairMaxPool:
          ConvPairMaxPool<Backend, T>::forward(*convs_[size_t(s.conv)], Act{bn(s.post_bn), s.post_relu},
                                               *convs_[size_t(s.conv2)], Act{bn(s.post2_bn), s.post2_relu},
                                               MaxPool3d<Backend, T>(nodes[size_t(s.op)].window),
                                               in(s.sources[0]), out);
          break;
        case StepKind::kSpatialConvPair:
          SpatialConvPair<Backend, T>::forward(*convs_[size_t(s.conv)], Act{bn(s.post_bn), s.post_relu},
                                               *convs_[size_t(s.conv2)], Act{bn(s.post2_bn), s.post2_relu},
                                               in(s.sources[0]), out);
          break;
        case StepKind::kPoolConv: {
          // Pool the activated input first, then the 1x1 conv on 1/8 of the voxels.
          Buffer pooled(s.scratch);
          const AvgPool3d<Backend, T> pool(nodes[size_t(s.op)].window, nodes[size_t(s.op)].count_include_pad);
          const Act pre{bn(s.pre_bn), s.pre_relu};
          if constexpr (kBf16Features<Backend, T>) {  // from a block in bf16, or into one
            if (in16) ActivatedAvgPool<Backend, T>::forward(pre, pool, src16(), pooled.view());
            else ActivatedAvgPool<Backend, T>::forward(pre, pool, in(s.sources[0]), pooled.view());
            if (out16) convs_[size_t(s.conv)]->forward_bf16_out(pooled.view(), view16(s.out));
            else convs_[size_t(s.conv)]->forward(pooled.view(), out);
          } else {
            ActivatedAvgPool<Backend, T>::forward(pre, pool, in(s.sources[0]), pooled.view());
            convs_[size_t(s.conv)]->forward(pooled.view(), out);
          }
          break;
        }
        case StepKind::kConvPair: {
          if (scratch.dims() != s.scratch) scratch = Buffer();  // free the old one before the new one
          const Act pre{bn(s.pre_bn), s.pre_relu}, post{bn(s.post_bn), s.post_relu}, post2{bn(s.post2_bn), s.post2_relu};
          const auto &conv1 = *convs_[size_t(s.conv)], &conv2 = *convs_[size_t(s.conv2)];
          auto layer = [&](auto from, auto to) {
            DenseLayerConvs<Backend, T>::forward(conv1, pre, post, conv2, from, to, scratch, post2);
          };
          if constexpr (kBf16Features<Backend, T>) {
            if (in16) layer(src16(), view16(s.out));  // a bf16 block (in and out one block: make_plan)
            else layer(in(s.sources[0]), out);
          } else {
            layer(in(s.sources[0]), out);
          }
          if (!s.keep_scratch) scratch = Buffer();
          break;
        }
        case StepKind::kBatchNorm:
          bns_[size_t(s.op)]->forward(in(s.sources[0]), out, s.relu);
          break;
        case StepKind::kRelu:
          Relu<Backend, T>::forward(in(s.sources[0]), out);
          break;
        case StepKind::kMaxPool:
          MaxPool3d<Backend, T>(nodes[size_t(s.op)].window).forward(in(s.sources[0]), out);
          break;
        case StepKind::kAvgPool:
          AvgPool3d<Backend, T>(nodes[size_t(s.op)].window, nodes[size_t(s.op)].count_include_pad)
              .forward(in(s.sources[0]), out);
          break;
        case StepKind::kAdd:
          AddAct<Backend, T>::forward(in(s.sources[0]), in(s.sources[1]), out, s.relu);
          break;
        case StepKind::kConcat: {
          // Members written elsewhere (the caller's input, or a node already in another concat) are copied.
          Index off = 0;
          for (int m : nodes[size_t(s.out)].inputs) {
            const Index c = plan.dims[size_t(m)].c;
            if (std::find(s.copy.begin(), s.copy.end(), m) != s.copy.end())
              ConcatChannels<Backend, T>::forward({in(m)}, out.channels(off, c));
            off += c;
          }
          break;
        }
      }
      std::string shown;
      for (const ModuleInfo* m : graph_.modules_of(s.out)) {
        if (!out16 && plan.wanted[size_t(s.out)] && obs.wants(m->name)) obs(m->name, TensorView<const T>(out));
        if (shown.empty()) shown = m->name;
      }
      if constexpr (kReportsProgress<Observer>)
        if (!shown.empty() || k + 1 == total) obs.on_progress(k + 1, total, shown);
      for (int b : s.release) buffers[size_t(b)] = Buffer();
      if constexpr (kStreamsWeights<Backend>)  // streamed weights: this step's conv weights leave the process
        if (s.conv >= 0) device_.drop_weight_pages();
    }
  }

  void check_input(const Dims& x, int stop) const {
    if (x.c != input_channels())
      fail("input has ", x.c, " channels; this network's stem takes ", input_channels(),
           input_channels() == 1 ? " (a gray volume)" : " (a gray volume replicated to RGB)");
    const Dims out = graph_.infer_dims(x)[size_t(stop)];
    if (!Graph::fits(out)) {
      const auto need = min_input_size(stop);
      const char* axes = "DHW";
      std::string s;
      for (int a = 0; a < 3; ++a) s += std::string(a ? " x " : "") + axes[a] + ">=" + std::to_string(need[size_t(a)]);
      fail("input of size D=", x.d, " H=", x.h, " W=", x.w, " is too small to reach ", describe_node(stop),
           ": it needs at least ", s, " voxels");
    }
  }

  // The first module that names node i, or the node's own name.
  std::string describe_node(int i) const {
    const auto named = graph_.modules_of(i);
    return named.empty() ? graph_.node(i).name : named.front()->name;
  }

  // release: sd itself, whose tensors' values are freed once packed, or null. Nodes past the extent's
  // deepest module are not packed (their values are freed all the same when released).
  void build(const StateDict& sd, StateDict* release, const BuildUpTo& extent) {
    if (conv_spatial_dims(sd) != 3)
      fail(sd.origin, ": holds 2D conv weights; inflate it to 3D first (volfeat convert, or load_network_weights)");
    const Index stem = graph_.input_channels();
    if (stem != 1 && stem != 3)
      fail(sd.origin, ": ", stem_key(sd), " takes ", stem, " input channels, expected 1 (gray) or 3 (RGB)");
    validate_state_dict(sd, graph_, 3);
    built_last_ = graph_.last_node();
    built_up_to_ = describe_node(built_last_);
    if (!extent.modules.empty()) {
      built_last_ = 0;
      for (const std::string& m : extent.modules) {
        const std::string name = resolve_layer(graph_, m);
        if (graph_.node_of(name) >= built_last_) built_last_ = graph_.node_of(name), built_up_to_ = name;
      }
    }
    if constexpr (kStreamsWeights<Backend>) device_.open_weight_file();
    const auto& nodes = graph_.nodes();
    convs_.resize(nodes.size());
    bns_.resize(nodes.size());
    if (release)  // what is not built is not needed either
      for (size_t i = size_t(built_last_) + 1; i < nodes.size(); ++i) {
        if (nodes[i].kind == OpKind::kConv) {
          free_values(*release, nodes[i].name + ".weight");
          if (nodes[i].bias) free_values(*release, nodes[i].name + ".bias");
        } else if (nodes[i].kind == OpKind::kBatchNorm) {
          for (const char* leaf : {".weight", ".bias", ".running_mean", ".running_var"}) free_values(*release, nodes[i].name + leaf);
        }
      }
    std::vector<ConvUse> uses(nodes.size());
    if (extent.input) {
      const std::vector<Dims> out = graph_.infer_dims(*extent.input);
      for (size_t i = 0; i <= size_t(built_last_); ++i)
        uses[i] = {std::max<Index>(1, out[i].voxels()), out[i].h, out[i].w};
    }
    std::vector<int> conv_nodes;
    for (size_t i = 0; i <= size_t(built_last_); ++i) {
      if (nodes[i].kind == OpKind::kConv) conv_nodes.push_back(int(i));
      if (nodes[i].kind == OpKind::kBatchNorm) {
        BatchNormParams p;  // folded in double (a few thousand values)
        auto widen = [&](const char* leaf) {
          const std::vector<float>& v = sd.at(nodes[i].name + leaf).values;
          return std::vector<double>(v.begin(), v.end());
        };
        p.gamma = widen(".weight");
        p.beta = widen(".bias");
        p.running_mean = widen(".running_mean");
        p.running_var = widen(".running_var");
        bns_[i] = std::make_unique<BatchNorm3d<Backend, T>>(p);
        if (release)
          for (const char* leaf : {".weight", ".bias", ".running_mean", ".running_var"})
            free_values(*release, nodes[i].name + leaf);
      }
    }
    // Packing the weights is independent per conv: in parallel on host backends (DenseNet-121's 120
    // convs took 0.2-0.5 s one after another). scratch: the calling thread's buffer for a deferred
    // kernel, computed there and packed while it is still in cache; it is reused, so those kernels'
    // values are never all written (TensorValues::kOnUse).
    auto make_conv = [&](int i, std::vector<float>& scratch) {
      const Node& n = nodes[size_t(i)];
      const Param& w = sd.at(n.name + ".weight");
      const ConvSpec spec{w.shape[1], w.shape[0], n.window};
      const std::vector<float> no_bias;
      const std::vector<float>& bias = n.bias ? sd.at(n.name + ".bias").values : no_bias;
      if (w.deferred()) {
        scratch.resize(size_t(element_count(w.shape)));
        w.compute(scratch.data());
      }
      // Per layer, the backend's algorithm (Cpu: Winograd where it wins, transformed in double, else
      // the direct conv), built straight from the StateDict's floats (a double network widens each
      // value exactly).
      convs_[size_t(i)] = ConvAlgorithm<Backend, T>::make(spec, w.deferred() ? scratch : w.values, bias, device_,
                                                          uses[size_t(i)]);
      if (release) {  // distinct tensors per conv: the map itself is only read meanwhile
        free_values(*release, n.name + ".weight");
        if (n.bias) free_values(*release, n.name + ".bias");
      }
    };
    if constexpr (kHostResident<Backend>) {
      // Largest first: the threads finish together (the last convs are small), and when weights are
      // released the convs in flight at the end, whose StateDict values and packed copy coexist, are
      // small ones. In node order ResNet-50's two 512x512x3^3 layer4 convs came last: 2 x 28 MB above
      // the packed network (peak RSS of its build 293 -> 268 MB, 2 threads, Zen 3).
      std::vector<size_t> weight_size(nodes.size(), 0);
      for (int i : conv_nodes) weight_size[size_t(i)] = size_t(element_count(sd.at(nodes[size_t(i)].name + ".weight").shape));
      std::stable_sort(conv_nodes.begin(), conv_nodes.end(),
                       [&](int a, int b) { return weight_size[size_t(a)] > weight_size[size_t(b)]; });
      std::string error;  // an exception must not leave an OpenMP region: the first is rethrown after it
      // Streamed weights: one conv at a time (each conv's own loops still run in parallel), so the build
      // holds one kernel and one packed copy, not one per thread. ResNet-50, 2 threads, Zen 4: the
      // streamed build's peak RSS 176 -> 115 MB (with a 128^3 input held); the build takes 0.37-0.64 s
      // against 0.26-0.29 s for the parallel one in memory, whose peak is 296 MB.
      bool streamed = false;
      if constexpr (kStreamsWeights<Backend>) streamed = device_.weight_file != nullptr;
#pragma omp parallel if (!streamed)
      {
        std::vector<float> scratch;  // sized by the thread's first (largest) deferred kernel
#pragma omp for schedule(dynamic, 1)
        for (size_t k = 0; k < conv_nodes.size(); ++k) {
          try {
            make_conv(conv_nodes[k], scratch);
          } catch (const std::exception& e) {
#pragma omp critical(volfeat_network_build)
            if (error.empty()) error = e.what();
          }
        }
      }
      if (!error.empty()) fail(error);
    } else {
      std::vector<float> scratch;
      for (int i : conv_nodes) make_conv(i, scratch);
    }
    if (release) {
      release->source.reset();    // every deferred kernel is packed: what they were computed from goes
      release_free_host_memory();  // what the packing did not reuse (free_values)
    }
  }

  // Frees one tensor's values; a large one's pages go back to the kernel at once. Under
  // retain_freed_host_memory the heap would keep them, and the freed StateDict would stay resident
  // beside the packed network, which reuses its holes only in part: VGG-19's build peaked at 377 MB
  // against 278 MB packed, ResNet-50's at 284 against 242 (Zen 3, 2 threads); with this, 294 and 250.
  // Small tensors are left to the heap: the next convs' packing reuses their pages without a fault
  // (discarding them too cost DenseNet-121's build 20 % more time and lowered nothing); what it did
  // not reuse goes back once the build is done.
  static void free_values(StateDict& sd, const std::string& key) {
    Param& p = sd.params.at(key);
    std::vector<float>& v = p.values;
    const size_t bytes = v.size() * sizeof(float);
    if (bytes >= kDiscardFromBytes) discard_host_pages(v.data(), bytes);
    std::vector<float>().swap(v);
    p.compute = nullptr;
  }
  static constexpr size_t kDiscardFromBytes = size_t(1) << 20;

  Graph graph_;
  Backend device_;
  int built_last_ = 0;       // the last node packed (BuildUpTo)
  std::string built_up_to_;  // its module, as BuildUpTo named it (for messages)
  std::vector<std::unique_ptr<Conv3d<Backend, T>>> convs_;      // per node (null: not a conv)
  std::vector<std::unique_ptr<BatchNorm3d<Backend, T>>> bns_;   // per node (null: not a batchnorm)
};

}  // namespace volfeat
