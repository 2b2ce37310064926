#pragma once
// The fusion planner: a graph (nn/graph.hpp), an input size, the modules an observer wants and the
// node to stop at become a list of steps, each one or more nodes computed by one op, and the buffers
// those steps write, with when each is allocated and freed. The executor (nn/network.hpp) runs the
// steps; the memory estimate (nn/memory_estimate.hpp) replays the same list counting bytes, so the
// two cannot drift apart.
//
// Rewrites, each applied only where the nodes it hides are seen by no one else (one consumer, no
// tap, not the stop node):
//   pre-activation   batchnorm [-> relu] -> conv: applied while the conv packs its input (DenseNet's
//                    norm1/relu1 and transitions); the activated tensor never exists.
//   post-activation  conv -> batchnorm [-> relu]: applied in the conv's epilogue on registers
//                    (DenseNet's stem, VGG-bn, every ResNet conv).
//   conv + max pool  conv(+post) -> max pool: ConvActMaxPool, a ring of conv output planes on Cpu
//                    (DenseNet's and ResNet's stems).
//   conv pair + pool conv(+post) -> conv(+post) -> max pool, both convs spatial: ConvPairMaxPool, rings
//                    of both convs' output planes on Cpu (the last two convs of every VGG block: at
//                    216x512x512 neither of block 1's 14.5 GB activations exists).
//   spatial pair     conv(+post) -> conv(+post), both spatial, the second's output kept (a tap, or no
//                    pool after it): SpatialConvPair, a ring of the first conv's output planes on Cpu
//                    (VGG's conv2_1 -> conv2_2 under the paper's tap conv2_2; the first two convs of a
//                    3- or 4-conv block). Never where the second conv's add fusion (ResNet) applies.
//   pool before conv pre-activation -> 1x1 conv -> avg pool (no padding): ActivatedAvgPool, then
//                    the conv on 1/8 of the voxels (pool and pointwise conv are linear and commute:
//                    DenseNet's transitions).
//   conv pair        1x1 conv(+pre, +post) -> conv(+post): DenseLayerConvs, a ring of the first
//                    conv's output planes on Cpu (DenseNet's dense layer, ResNet's bottleneck).
//   conv + residual  conv(+pre, +post bn) -> add [-> relu]: ConvAddAct, the add of the other input
//                    (ResNet's identity) and the relu in the conv's epilogue, per output tile while it
//                    is in cache (conv3 -> bn3 -> `+ identity` -> relu of a bottleneck, conv2 -> bn2 of
//                    a basic block). The step runs once the identity exists (after a downsample branch
//                    that follows the conv in node order).
//   add + relu       ResNet's `out += identity; relu(out)` in one pass (where the add stays unfused).
//   in place concat  torch.cat's inputs are written straight into channel slices of one buffer, and a
//                    concatenation that is a prefix of a later one is a view of it (a dense block
//                    is one buffer that grows by 32 channels per layer, never copied).
//   in place         a standalone batchnorm, relu or add overwrites its input when nothing else reads it.
#include <algorithm>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "volfeat/backend/cpu/winograd3d_tile.hpp"
#include "volfeat/backend/cpu/winograd_along_w_layout.hpp"
#include "volfeat/core/error.hpp"
#include "volfeat/nn/graph.hpp"
#include "volfeat/ops/fused.hpp"

namespace volfeat {

enum class StepKind {
  kConv, kConvAdd, kConvMaxPool, kConvPairMaxPool, kSpatialConvPair, kPoolConv, kConvPair, kBatchNorm, kRelu, kMaxPool,
  kAvgPool, kAdd, kConcat
};

struct Step {
  StepKind kind = StepKind::kConv;
  int out = -1;               // the node whose output the step produces
  std::vector<int> sources;   // nodes it reads
  int conv = -1, conv2 = -1;  // conv nodes (kConv*, kPoolConv, kConvPair)
  int pre_bn = -1;            // pre-activation of `conv`
  bool pre_relu = false;
  int post_bn = -1;           // post-activation of `conv`
  bool post_relu = false;
  int post2_bn = -1;          // post-activation of `conv2`
  bool post2_relu = false;
  int op = -1;                // the pool / batchnorm node; kConvAdd: the add node (sources[1]: its other input)
  bool relu = false;          // kBatchNorm, kAdd, kConvAdd: a relu follows in the same pass
  bool in_place = false;      // kBatchNorm/kRelu/kAdd: `out` overwrites sources[0]
  std::vector<int> copy;      // kConcat: members not already in the buffer (copied)
  std::vector<int> alloc;     // buffers allocated before the step
  std::vector<int> release;   // buffers freed after it
  Dims scratch{0, 0, 0, 0, 0};  // kConvPair: the scratch it needs; kConvMaxPool / kPoolConv: its temporary;
                                //   kConvPairMaxPool, kSpatialConvPair: conv's ring (or whole output)
  Dims scratch2{0, 0, 0, 0, 0}; // kConvPairMaxPool: conv2's ring (or whole output)
  bool keep_scratch = false;    // kConvPair: the next pair reuses the scratch
};

struct Placement {
  int buffer = -1;  // -1: the caller's input tensor
  Index offset = 0; // first channel within the buffer
};

// Backend properties the plan depends on (for the memory it models).
struct PlanTraits {
  bool planewise_pair = false;  // DenseLayerConvs keeps a ring of planes (kPlanewiseDenseLayer)
  bool planewise_pool = false;  // ConvActMaxPool keeps a ring of planes
  // For the memory estimate only (the plan ignores it): bytes per packed weight value when the network
  // streams its weights (4 float32, 2 bf16; Winograd's float32 tiles hold 4 in either: memory_estimate.hpp,
  // conv_value_bytes), so each step holds its convs' weights; 0 when they are all held
  // (network_weight_bytes counts them apart).
  double streamed_weight_bytes = 0;
  // Per node: 0, or the conv runs Winograd (Cpu; its rings hold planes in groups, plane_step) with this
  // many transformed points per tile (backend/cpu/winograd3d_tile.hpp: 144 float32, 216 float32 F(4x4x4),
  // 384 float32 F(4x6x6), 64 bf16, 36 depth-factored).
  std::vector<int> winograd_points;
  int winograd_points_of(int node) const {
    return node >= 0 && size_t(node) < winograd_points.size() ? winograd_points[size_t(node)] : 0;
  }
  bool uses_winograd(int node) const { return winograd_points_of(node) > 0; }
  // Per node: the conv runs as 1D Winograd along W (Cpu: backend/cpu/winograd_along_w.hpp, the stem), which
  // holds a ring of transformed input planes while it runs. Empty: none does.
  std::vector<bool> along_w;
  bool runs_along_w(int node) const { return node >= 0 && size_t(node) < along_w.size() && along_w[size_t(node)]; }
  // Per node: the planes of the ring from which a bf16 direct conv, run plane by plane (ConvActMaxPool), reads
  // its tap-row pairs (Cpu: backend/cpu/paired_tap_rows.hpp, the gray stem: kD input planes, or 1 of
  // depth-summed rows), 0 for none. Empty: none does.
  std::vector<Index> paired_planes;
  Index paired_plane_slots(int node) const {
    return node >= 0 && size_t(node) < paired_planes.size() ? paired_planes[size_t(node)] : 0;
  }
  Index plane_step(int node) const { return cpu::winograd::plane_step(winograd_points_of(node)); }
  // Per node: the conv computes in bf16 (Cpu; a dense layer's ring of bottleneck planes is then bf16
  // where its conv2 runs Winograd: ops/fused.hpp, RingValues). Empty: none does.
  std::vector<bool> bf16;
  bool runs_bf16(int node) const { return node >= 0 && size_t(node) < bf16.size() && bf16[size_t(node)]; }
  RingValues dense_ring_values(int conv1, int conv2) const {
    return volfeat::dense_ring_values(runs_bf16(conv1), uses_winograd(conv2));
  }
  // A bf16 pointwise conv writing bf16 (a dense layer's ring, a transition into a bf16 block) computes each
  // tile into a float tile first (Cpu on AMX tiles: Conv3d::bf16_output_staged). For the memory estimate.
  bool bf16_staging = false;
  // The backend's fused ops read and write bf16 features (Cpu, float): a bf16 network's dense blocks may
  // then be held in bf16 (Plan::bf16_buffer).
  bool bf16_features = false;
};

struct Plan {
  std::vector<Dims> dims;            // every node's output
  std::vector<Placement> place;      // every node's output storage
  std::vector<Dims> buffers;         // every buffer's dims (dense, channels-last)
  std::vector<bool> bf16_buffer;     // per buffer: holds bf16 values, not T (a bf16 network's dense blocks)
  std::vector<Step> steps;
  std::vector<bool> wanted;          // per node: an observer sees it
  int stop = 0;
  // Buffer b as allocated (Network::run) and counted (memory_estimate.hpp): a bf16 buffer holds its
  // channels two to a value, (c + 1) / 2 of them.
  Dims storage_dims(int b) const {
    Dims d = buffers[size_t(b)];
    if (bf16_buffer[size_t(b)]) d.c = (d.c + 1) / 2;
    return d;
  }
};

namespace detail {
inline bool pointwise(const WindowGeometry& g) {
  return g.taps() == 1 && g.stride == std::array<Index, 3>{1, 1, 1} && g.padding == std::array<Index, 3>{0, 0, 0};
}
}  // namespace detail

// `wanted[i]`: an observer wants a module of node i. Nodes after `stop` are not run.
inline Plan make_plan(const Graph& g, const Dims& input, const std::vector<bool>& wanted, int stop, const PlanTraits& traits) {
  const auto& nodes = g.nodes();
  const int n = int(nodes.size());
  Plan p;
  p.stop = stop;
  p.wanted = wanted;
  p.dims = g.infer_dims(input);
  p.place.assign(size_t(n), Placement{});

  // Consumers of every node among the nodes that run.
  std::vector<std::vector<int>> consumers(static_cast<size_t>(n));
  for (int i = 1; i <= stop; ++i)
    for (int s : nodes[size_t(i)].inputs) consumers[size_t(s)].push_back(i);
  auto hidden = [&](int i) {  // may be fused away
    return i > 0 && !wanted[size_t(i)] && i != stop && consumers[size_t(i)].size() == 1;
  };
  auto only = [&](int i) { return consumers[size_t(i)].front(); };
  auto kind = [&](int i) { return nodes[size_t(i)].kind; };

  // ---- concatenations in place: each concat lives in its host, the largest concat (<= stop) whose
  // inputs start with its inputs; the host's inputs are written into their channel slices.
  std::vector<int> host(size_t(n), -1);
  for (int i = stop; i >= 1; --i) {
    if (kind(i) != OpKind::kConcat) continue;
    host[size_t(i)] = i;
    for (int j = i + 1; j <= stop; ++j) {
      if (kind(j) != OpKind::kConcat) continue;
      const auto &a = nodes[size_t(i)].inputs, &b = nodes[size_t(j)].inputs;
      if (a.size() <= b.size() && std::equal(a.begin(), a.end(), b.begin())) {
        host[size_t(i)] = host[size_t(j)];
        break;
      }
    }
  }
  std::vector<std::pair<int, Index>> member_of(size_t(n), {-1, 0});  // node -> (host concat, channel offset)
  for (int i = 1; i <= stop; ++i) {
    if (kind(i) != OpKind::kConcat || host[size_t(i)] != i) continue;
    Index off = 0;
    for (int m : nodes[size_t(i)].inputs) {
      if (m > 0 && member_of[size_t(m)].first < 0) member_of[size_t(m)] = {i, off};
      off += nodes[size_t(m)].channels;
    }
  }

  // ---- steps
  std::vector<bool> done(size_t(n), false);
  std::vector<int> pre_bn(size_t(n), -1), pre_src(size_t(n), -1);
  std::vector<bool> pre_relu(size_t(n), false);
  std::vector<Step> deferred(static_cast<size_t>(n));  // per add node: a kConvAdd waiting for its residual
  std::vector<bool> deferred_add(size_t(n), false);
  // conv -> [bn] -> [relu]: the post-activation chain a conv can absorb; returns its last node.
  auto post_chain = [&](int c, int& bn, bool& relu) {
    int end = c;
    bn = -1, relu = false;
    if (hidden(end) && kind(only(end)) == OpKind::kBatchNorm) bn = end = only(end);
    if (hidden(end) && kind(only(end)) == OpKind::kRelu) relu = true, end = only(end);
    return end;
  };
  for (int i = 1; i <= stop; ++i) {
    if (done[size_t(i)]) continue;
    const Node& nd = nodes[size_t(i)];
    Step s;
    switch (nd.kind) {
      case OpKind::kInput:  // only node 0, the caller's tensor
        continue;
      case OpKind::kBatchNorm:
      case OpKind::kRelu: {
        // The start of a pre-activation chain into a conv?
        int bn = nd.kind == OpKind::kBatchNorm ? i : -1, end = i;
        bool relu = nd.kind == OpKind::kRelu;
        if (bn >= 0 && hidden(end) && kind(only(end)) == OpKind::kRelu) relu = true, end = only(end);
        if (hidden(end) && kind(only(end)) == OpKind::kConv) {
          const int c = only(end);
          pre_bn[size_t(c)] = bn, pre_relu[size_t(c)] = relu, pre_src[size_t(c)] = nd.inputs[0];
          done[size_t(i)] = done[size_t(end)] = true;  // the batchnorm and/or its relu, nothing between
          continue;
        }
        s.kind = nd.kind == OpKind::kBatchNorm ? StepKind::kBatchNorm : StepKind::kRelu;
        s.op = i;
        s.sources = {nd.inputs[0]};
        s.out = i;
        if (nd.kind == OpKind::kBatchNorm && hidden(i) && kind(only(i)) == OpKind::kRelu) s.relu = true, s.out = only(i);
        break;
      }
      case OpKind::kConv: {
        s.conv = i;
        s.pre_bn = pre_bn[size_t(i)], s.pre_relu = pre_relu[size_t(i)];
        const int src = pre_src[size_t(i)] >= 0 ? pre_src[size_t(i)] : nd.inputs[0];
        s.sources = {src};
        const bool pre = s.pre_bn >= 0 || s.pre_relu;
        const int end = post_chain(i, s.post_bn, s.post_relu);
        const bool post = s.post_bn >= 0 || s.post_relu;
        s.kind = StepKind::kConv;
        s.out = end;
        if (!s.post_relu && hidden(end) && kind(only(end)) == OpKind::kAdd) {
          const int a = only(end);
          const auto& ins = nodes[size_t(a)].inputs;
          const int other = ins.size() != 2 ? end : ins[0] == end ? ins[1] : ins[0];
          if (other != end && !deferred_add[size_t(a)]) {
            s.kind = StepKind::kConvAdd;
            s.op = s.out = a;
            s.sources.push_back(other);
            if (hidden(a) && kind(only(a)) == OpKind::kRelu) s.relu = true, s.out = only(a);
            if (other > i) {  // the identity comes later in node order (a downsample branch): run at the add
              deferred[size_t(a)] = s;
              deferred_add[size_t(a)] = true;  // the identity's own conv (downsample) must not claim the add too
              for (int k : {i, s.post_bn}) if (k > 0) done[size_t(k)] = true;
              continue;
            }
          }
        }
        const bool add = s.kind == StepKind::kConvAdd;
        // conv -> conv -> max pool, both spatial, nothing seen in between: conv pair + pool.
        // Else conv -> conv, both spatial, the second's output kept: spatial pair (unless the second
        // conv's output goes on into an add, which its own step fuses).
        int conv2 = -1, pool2 = -1, post2_bn = -1, end2 = -1;
        bool post2_relu = false;
        if (!add && !pre && !detail::pointwise(nd.window) && hidden(end) && kind(only(end)) == OpKind::kConv &&
            pre_src[size_t(only(end))] < 0 && !detail::pointwise(nodes[size_t(only(end))].window)) {
          end2 = post_chain(only(end), post2_bn, post2_relu);
          conv2 = only(end);
          if (hidden(end2) && kind(only(end2)) == OpKind::kMaxPool) pool2 = only(end2);
          else if (hidden(end2) && kind(only(end2)) == OpKind::kAdd) conv2 = -1;
        }
        if (conv2 >= 0 && pool2 < 0) {
          s.kind = StepKind::kSpatialConvPair;
          s.conv2 = conv2, s.post2_bn = post2_bn, s.post2_relu = post2_relu;
          s.out = end2;
          const Dims md = p.dims[size_t(end)];
          const Index ring1 = conv_pair_ring_planes(nodes[size_t(conv2)].window, traits.plane_step(i),
                                                    traits.plane_step(conv2));
          s.scratch = traits.planewise_pool ? Dims{1, ring1, md.h, md.w, md.c} : md;
        } else if (pool2 >= 0) {
          s.kind = StepKind::kConvPairMaxPool;
          s.conv2 = conv2, s.post2_bn = post2_bn, s.post2_relu = post2_relu;
          s.op = s.out = pool2;
          const Dims md = p.dims[size_t(end)], cd = p.dims[size_t(nodes[size_t(pool2)].inputs[0])];
          const Index ring1 = conv_pair_ring_planes(nodes[size_t(conv2)].window, traits.plane_step(i),
                                                    traits.plane_step(conv2));
          const Index ring2 = conv_max_pool_ring_planes(nodes[size_t(pool2)].window, traits.plane_step(conv2));
          s.scratch = traits.planewise_pool ? Dims{1, ring1, md.h, md.w, md.c} : md;
          s.scratch2 = traits.planewise_pool ? Dims{1, ring2, cd.h, cd.w, cd.c} : cd;
        } else if (!add && !pre && hidden(end) && kind(only(end)) == OpKind::kMaxPool) {
          s.kind = StepKind::kConvMaxPool;
          s.op = s.out = only(end);
          const Dims cd = p.dims[size_t(end)];
          const Index ring = conv_max_pool_ring_planes(nodes[size_t(s.op)].window, traits.plane_step(i));
          s.scratch = traits.planewise_pool ? Dims{1, ring, cd.h, cd.w, cd.c} : cd;
        } else if (!add && !post && detail::pointwise(nd.window) && hidden(end) && kind(only(end)) == OpKind::kAvgPool &&
                   nodes[size_t(only(end))].window.padding == std::array<Index, 3>{0, 0, 0}) {
          s.kind = StepKind::kPoolConv;
          s.op = s.out = only(end);
          s.scratch = p.dims[size_t(s.op)];
          s.scratch.c = p.dims[size_t(src)].c;
        } else if (!add && detail::pointwise(nd.window) && hidden(end) && kind(only(end)) == OpKind::kConv &&
                   pre_src[size_t(only(end))] < 0) {
          s.kind = StepKind::kConvPair;
          s.conv2 = only(end);
          s.out = post_chain(s.conv2, s.post2_bn, s.post2_relu);
          const Dims md = p.dims[size_t(end)];
          s.scratch = traits.planewise_pair
                          ? dense_layer_scratch(nodes[size_t(s.conv2)].window, traits.plane_step(s.conv2), md,
                                                kWholeBottleneckValues, traits.dense_ring_values(i, s.conv2))
                          : md;
        }
        break;
      }
      case OpKind::kMaxPool:
      case OpKind::kAvgPool:
        s.kind = nd.kind == OpKind::kMaxPool ? StepKind::kMaxPool : StepKind::kAvgPool;
        s.op = s.out = i;
        s.sources = {nd.inputs[0]};
        break;
      case OpKind::kAdd:
        if (deferred_add[size_t(i)]) {
          s = deferred[size_t(i)];
          break;
        }
        s.kind = StepKind::kAdd;
        s.sources = nd.inputs;
        s.out = i;
        if (hidden(i) && kind(only(i)) == OpKind::kRelu) s.relu = true, s.out = only(i);
        break;
      case OpKind::kConcat:
        s.kind = StepKind::kConcat;
        s.out = i;
        for (int m : nd.inputs)
          if (member_of[size_t(m)].first != host[size_t(i)]) s.copy.push_back(m);
        s.sources = s.copy;
        break;
    }
    // Mark every node the step covers. The fused nodes form a chain from the first to `out`.
    std::vector<int> covered{i};
    for (int k : {s.conv, s.post_bn, s.conv2, s.post2_bn, s.op, s.out})
      if (k > 0) covered.push_back(k);
    if (s.post_relu) covered.push_back(consumers[size_t(s.post_bn >= 0 ? s.post_bn : s.conv)].front());
    if (s.post2_relu) covered.push_back(consumers[size_t(s.post2_bn >= 0 ? s.post2_bn : s.conv2)].front());
    for (int k : covered) done[size_t(k)] = true;
    p.steps.push_back(s);
  }

  // ---- placement and buffer lifetimes, in step order with reference counts: a buffer is freed
  // after the step that makes its last read or write.
  std::vector<int> reads_left(size_t(n), 0);
  for (const Step& s : p.steps)
    for (int src : s.sources) ++reads_left[size_t(src)];
  std::vector<int> buffer_of_host(size_t(n), -1);
  std::vector<std::vector<int>> residents;  // per buffer: the nodes placed in it
  std::vector<int> writes_left;             // per buffer: steps still to write into it
  std::vector<bool> hosts_concat, freed;
  auto host_of_out = [&](int o) { return kind(o) == OpKind::kConcat ? host[size_t(o)] : member_of[size_t(o)].first; };
  auto new_buffer = [&](const Dims& d, bool concat) {
    p.buffers.push_back(d);
    residents.emplace_back();
    writes_left.push_back(0);
    hosts_concat.push_back(concat);
    freed.push_back(false);
    return int(p.buffers.size()) - 1;
  };
  auto dead = [&](int b) {
    if (b < 0 || freed[size_t(b)] || writes_left[size_t(b)] > 0) return false;
    for (int r : residents[size_t(b)])
      if (reads_left[size_t(r)] > 0) return false;
    return true;
  };
  for (size_t k = 0; k < p.steps.size(); ++k) {
    Step& s = p.steps[k];
    const int o = s.out, h = host_of_out(o);
    int b = -1;
    if (h >= 0) {
      if (buffer_of_host[size_t(h)] < 0) {
        b = buffer_of_host[size_t(h)] = new_buffer(p.dims[size_t(h)], true);
        s.alloc.push_back(b);
        for (size_t j = k; j < p.steps.size(); ++j)
          if (host_of_out(p.steps[j].out) == h) ++writes_left[size_t(b)];
      }
      b = buffer_of_host[size_t(h)];
      p.place[size_t(o)] = {b, kind(o) == OpKind::kConcat ? 0 : member_of[size_t(o)].second};
      --writes_left[size_t(b)];
    } else {
      const bool elementwise = s.kind == StepKind::kBatchNorm || s.kind == StepKind::kRelu || s.kind == StepKind::kAdd;
      const int src = s.sources.empty() ? -1 : s.sources[0];
      const int sb = src > 0 ? p.place[size_t(src)].buffer : -1;
      bool in_place = elementwise && sb >= 0 && !hosts_concat[size_t(sb)] && reads_left[size_t(src)] == 1 &&
                      std::count(s.sources.begin(), s.sources.end(), src) == 1 && p.buffers[size_t(sb)] == p.dims[size_t(o)];
      if (in_place)
        for (int r : residents[size_t(sb)])
          if (r != src && reads_left[size_t(r)] > 0) in_place = false;
      if (in_place) {
        s.in_place = true;
        b = sb;
      } else {
        b = new_buffer(p.dims[size_t(o)], false);
        s.alloc.push_back(b);
      }
      p.place[size_t(o)] = {b, 0};
    }
    residents[size_t(b)].push_back(o);
    for (int src : s.sources) --reads_left[size_t(src)];
    std::vector<int> touched{b};
    for (int src : s.sources) touched.push_back(p.place[size_t(src)].buffer);
    for (int t : touched)
      if (dead(t)) {
        s.release.push_back(t);
        freed[size_t(t)] = true;
      }
  }
  // ---- bf16 features: a concatenation's buffer holds bf16 where every step that writes or reads it is a
  // fused op with a bf16 form (traits.bf16_features), its convs run bf16 (a dense layer's conv2 Winograd),
  // and no node in it is seen or stopped at (observers and the caller get T). A bf16 network's dense
  // layers round their inputs to bf16 for the 1x1 GEMMs anyway; holding the features so halves the bytes
  // the layers read and write, and the buffer. Writers: the stem's conv + max pool (pool0), a dense layer
  // (its 32 new channels), a transition (the next block's first channels); readers: the dense layers'
  // and transitions' 1x1 convs. DenseNet-121's last block stays T (norm5 reads it).
  p.bf16_buffer.assign(p.buffers.size(), false);
  if (traits.bf16_features) {
    std::vector<bool> ok(p.buffers.size(), false);
    for (size_t b = 0; b < p.buffers.size(); ++b) ok[b] = hosts_concat[b];
    for (size_t b = 0; b < p.buffers.size(); ++b)
      for (int r : residents[b])
        if (p.wanted[size_t(r)] || r == stop) ok[b] = false;
    auto writes_bf16 = [&](const Step& s) {
      switch (s.kind) {
        case StepKind::kConvMaxPool: return true;
        case StepKind::kConvPair: return traits.runs_bf16(s.conv) && traits.uses_winograd(s.conv2);
        case StepKind::kPoolConv: return traits.runs_bf16(s.conv);
        case StepKind::kConcat: return s.copy.empty();
        default: return false;
      }
    };
    auto reads_bf16 = [&](const Step& s) {
      return (s.kind == StepKind::kConvPair && traits.runs_bf16(s.conv)) || s.kind == StepKind::kPoolConv;
    };
    for (const Step& s : p.steps) {
      const int ob = p.place[size_t(s.out)].buffer;
      if (ob >= 0 && !writes_bf16(s)) ok[size_t(ob)] = false;
      for (int src : s.sources) {
        const int sb = p.place[size_t(src)].buffer;
        if (sb >= 0 && !reads_bf16(s)) ok[size_t(sb)] = false;
      }
    }
    // A dense layer reads and writes one block's buffer; should it not, both stay T (DenseLayerConvs has
    // no mixed form).
    for (const Step& s : p.steps)
      if (s.kind == StepKind::kConvPair) {
        const int ib = p.place[size_t(s.sources[0])].buffer, ob = p.place[size_t(s.out)].buffer;
        if (ib != ob) {
          if (ib >= 0) ok[size_t(ib)] = false;
          if (ob >= 0) ok[size_t(ob)] = false;
        }
      }
    for (size_t b = 0; b < p.buffers.size(); ++b) p.bf16_buffer[b] = ok[b];
  }
  // A conv pair keeps its scratch for the next one when nothing but in-place concatenations lies
  // between them and it has the same dims (the dense layers of one block).
  for (size_t k = 0; k < p.steps.size(); ++k) {
    Step& s = p.steps[k];
    if (s.kind != StepKind::kConvPair) continue;
    for (size_t j = k + 1; j < p.steps.size(); ++j) {
      const Step& t = p.steps[j];
      if (t.kind == StepKind::kConcat && t.copy.empty()) continue;
      s.keep_scratch = t.kind == StepKind::kConvPair && t.scratch == s.scratch;
      break;
    }
  }
  return p;
}

}  // namespace volfeat
