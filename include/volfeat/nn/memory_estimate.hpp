#pragma once
// The peak memory of Network::forward (nn/network.hpp) without computing anything, so a run that
// cannot fit is refused before it starts instead of being killed halfway.
//
// It replays the same plan the executor runs (nn/plan.hpp): each step's buffer allocations, its
// temporaries (a conv pair's scratch ring, a conv+pool's ring of conv planes, a pooled transition
// input, the stem's ring of transformed input planes where it runs along W), what the observer holds per
// tap, and the frees after it; the per-thread conv scratch of the convs it runs; and network_weight_bytes,
// the packed weights with Winograd's transformed ones. The executor and the estimate read one list of
// steps, so a change of fusion or lifetime changes both. Check against a real run with
//   /usr/bin/time -v volfeat extract ... (Maximum resident set size) against `volfeat: memory:`.
#include <algorithm>
#include <array>
#include <cstddef>
#include <string>
#include <vector>

#include "volfeat/backend/cpu/conv_bands.hpp"
#include "volfeat/backend/cpu/paired_tap_rows_layout.hpp"
#include "volfeat/backend/cpu/winograd3d_tile.hpp"
#include "volfeat/core/shape.hpp"
#include "volfeat/nn/graph.hpp"
#include "volfeat/nn/plan.hpp"

namespace volfeat {

// Bytes an observer holds while a module is shown to it: `transient` only during the call, `kept`
// until the forward pass returns.
struct TapBytes {
  double transient = 0;
  double kept = 0;
};

struct ForwardMemory {
  double peak_bytes = 0;       // activations + observer + per-thread scratch at the peak
  std::string peak_module;     // the module being produced when the peak is reached
  double scratch_bytes = 0;    // per-thread conv tiles and GEMM blocking, included in peak_bytes
  std::array<Index, 3> stop_grid{{0, 0, 0}};  // spatial size of the stop node's output
  double step_weight_bytes = 0;  // streamed weights: the most one step maps in (included in peak_bytes)
};

// Per-thread working memory of a conv on the double (Eigen) path: one packed tile of A plus Eigen's
// GEMM blocking buffers (sized to the caches, a few MiB at most).
inline constexpr double kConvScratchBytesPerThread = 4.0 * (1 << 20);

// Per-thread working memory of the float convs a plan runs (backend/cpu): thread-local buffers that
// only grow and live across layers and passes, so each is the largest any conv of the plan asks for:
//   * the pointwise conv's packed A tile: chunks of 128 input channels x a tile of 32-512 voxels
//     (conv3d.hpp, forward_pointwise), and a bf16 conv's float tile of outputs, the tile x C_out;
//   * the direct conv's activated, zero-padded input rows: kD x kH rows of the padded width
//     (conv3d.hpp, rows_fast), or in bands a slab of kD planes of stride_h row phases of a band's rows and
//     the kernel's reach, and the band's outputs for one panel (backend/cpu/conv_bands.hpp);
//   * Winograd's V and M blocks: its points (144, 216 or 384 float32, bf16 64, depth-factored 36) x a block of
//     tiles x C_in (bf16 values for the bf16 tile), and x C_out (winograd3d.hpp: winograd::block_tiles of the
//     whole output's tiles, at most block_budget);
//   * a depth-factored Winograd conv's depth sums: 6 input rows x (4 * block + 2) columns x C_in
//     (winograd3d_run_impl.hpp, depth_summed_input: at most one row of tiles of the block at a time);
//   * a conv along W's input plane in blocks (P) and a chunk's GEMM outputs (M) (winograd_along_w.hpp, by
//     winograd_w::layout; M at AVX-512's panel width, the widest);
//   * a conv + max pool into a bf16 buffer (Plan::bf16_buffer): one output row of the pool in float before it
//     is rounded (backend/cpu/fused.hpp, ConvActMaxPool::pool_ring).
inline double float_conv_scratch_bytes(const Graph& g, const Plan& plan, const PlanTraits& traits, int threads) {
  const auto& nodes = g.nodes();
  double a_tile = 0, c_tile = 0, rows = 0, band_outputs = 0, v = 0, m = 0, sums = 0, along_w = 0, pool_row = 0;
  auto conv = [&](int c, const Dims& in) {
    const Node& nd = nodes[size_t(c)];
    const WindowGeometry& w = nd.window;
    const Index ci = in.c, co = nd.channels;
    const Index pw = co <= 16 ? 16 : co <= 32 ? 32 : 64;  // GEMM panel: AVX-512's width, the widest
    if (traits.uses_winograd(c)) {
      const int points = traits.winograd_points_of(c);
      const auto o = w.out_spatial(in.spatial());
      const Index block = cpu::winograd::block_tiles(in.n * cpu::winograd::tiles_of(points, o[0], o[1], o[2]), threads,
                                                     ci, co, points);
      // V in floats; the bf16 tile's V is bf16 (rounded as the input transform stores it), half as many bytes
      const double v_floats = points == cpu::winograd::TileBf16::kPoints ? 0.5 : 1.0;
      v = std::max(v, v_floats * double(points) * double(block * ci));
      m = std::max(m, double(points) * double(block * co));
      using Depth = cpu::winograd::TileF32Depth;
      if (points == Depth::kPoints)
        sums = std::max(sums, double(Depth::kInY) * double(cpu::winograd::depth_sum_columns<Depth>(block)) * double(ci));
    } else if (traits.runs_along_w(c)) {
      const auto o = w.out_spatial(in.spatial());
      const cpu::winograd_w::Layout l = cpu::winograd_w::layout(w, ci, o[1], o[2]);
      along_w = std::max(along_w, double(l.p_floats() + l.m_floats(pw)));
    } else if (detail::pointwise(w)) {
      const Index chunks = (ci + 127) / 128;
      const Index tile = std::clamp<Index>(Index(65536) / (chunks * 128), 32, 512);
      a_tile = std::max(a_tile, double(chunks * tile * 128));
      // a bf16 conv1 writing a dense layer's bf16 ring on AMX tiles computes each tile's outputs into a float
      // tile first (conv3d_impl.hpp, forward_pointwise); its A tile is bf16, counted above as float
      if (traits.runs_bf16(c) && traits.bf16_staging) c_tile = std::max(c_tile, double(tile * co));
    } else {
      const Index ow = (in.w + 2 * w.padding[2] - w.dilation[2] * (w.kernel[2] - 1) - 1) / w.stride[2] + 1;
      rows = std::max(rows, double(w.kernel[0] * w.kernel[1] * cpu::padded_row_values(w, ci, in.w, ow)));
      // In bands where B's panel (all kD taps, as if not depth-factored) outgrows L2: the slab in the rows'
      // slot, and a band's outputs for one panel.
      if (!traits.runs_bf16(c) && cpu::conv_bands::pays(w, w.taps() * ci * pw * Index(sizeof(float)))) {
        const auto o = w.out_spatial(in.spatial());
        const cpu::conv_bands::Layout b = cpu::conv_bands::layout(w, ci, pw, w.kernel[0], in.w, o[1], o[2]);
        rows = std::max(rows, double(b.slab));
        band_outputs = std::max(band_outputs, double(b.outputs));
      }
    }
  };
  for (const Step& s : plan.steps) {
    if (s.conv < 0) continue;
    const int ob = plan.place[size_t(s.out)].buffer;
    if (s.kind == StepKind::kConvMaxPool && ob >= 0 && plan.bf16_buffer[size_t(ob)])
      pool_row = std::max(pool_row, double(plan.dims[size_t(s.out)].w * plan.dims[size_t(s.out)].c));
    Dims in = plan.dims[size_t(s.sources[0])];
    if (s.kind == StepKind::kPoolConv) in = s.scratch;  // the conv runs on the pooled input
    conv(s.conv, in);
    if (s.conv2 >= 0) conv(s.conv2, plan.dims[size_t(nodes[size_t(s.conv2)].inputs[0])]);
  }
  return 4.0 * (a_tile + c_tile + rows + band_outputs + v + m + sums + along_w + pool_row);
}

// Transformed weights of a conv along W per input-output channel pair: its points for each (kd, kh) row.
inline double along_w_values_per_pair(const WindowGeometry& w) {
  return double(cpu::winograd_w::points(w)) * double(w.kernel[0] * w.kernel[1]);
}

// Bytes per packed weight value of conv node i in a network of `elem_bytes` values: Winograd's U is bf16
// in the bf16 tile (64 points) only; the float32 tiles (144, and 36 depth-factored) keep float U in a
// bf16 network too (winograd3d_select.hpp, winograd_precision).
inline double conv_value_bytes(const PlanTraits& traits, int i, double elem_bytes) {
  if (traits.runs_along_w(i)) return double(sizeof(float));  // along W: float U in any network
  if (!traits.uses_winograd(i)) return elem_bytes;
  return traits.winograd_points_of(i) == cpu::winograd::TileBf16::kPoints ? 2.0 : double(sizeof(float));
}

// Packed bytes of conv node i: its kernel, Winograd's transformed one (144 values per channel pair, bf16
// 64), or along W's (13 x kD x kH for the stem, float), at `elem_bytes` per direct value.
inline double conv_weight_bytes(const Graph& g, const PlanTraits& traits, int i, double elem_bytes) {
  const Node& n = g.node(i);
  const double io = double(g.node(n.inputs[0]).channels) * double(n.channels);
  const double per_pair = traits.uses_winograd(i)   ? double(traits.winograd_points_of(i))
                         : traits.runs_along_w(i) ? along_w_values_per_pair(n.window)
                                                  : double(n.window.taps());
  return io * per_pair * conv_value_bytes(traits, i, elem_bytes);
}

// Bytes of a built network's parameters: every conv's packed weights and folded batchnorms (as many
// values as torch's), except that a conv that runs Winograd (3D, or along W) holds its transformed weights U instead
// (144 C_in C_out values against 27 in float32, 64 in bf16, 36 depth-factored: 224 MB for ResNet-50's
// 3D convs of layer1-3 in float32; conv3d.hpp frees the direct ones). `elem_bytes`: the network's value
// type. `last`: the last node the network built (Network::built_last; -1: all).
inline double network_weight_bytes(const Graph& g, const PlanTraits& traits, size_t elem_bytes, int last = -1) {
  if (last < 0 || last > g.last_node()) last = g.last_node();
  double bytes = double(g.param_values(last)) * double(elem_bytes);
  const auto& nodes = g.nodes();
  for (size_t i = 0; i <= size_t(last); ++i)
    if (nodes[i].kind == OpKind::kConv && (traits.uses_winograd(int(i)) || traits.runs_along_w(int(i))))  // U instead
      bytes += conv_weight_bytes(g, traits, int(i), double(elem_bytes)) -
               double(nodes[i].window.taps()) * double(elem_bytes) * double(nodes[size_t(nodes[i].inputs[0])].channels) *
                   double(nodes[i].channels);
  return bytes;
}

// What a network that streams its weights (core/weight_file.hpp) holds of them outside a pass: its
// batchnorms and biases. Each step's packed conv weights are counted in the pass, while the step runs
// (simulate_forward with traits.streamed_weight_bytes): ResNet-50 28 MB at most (one layer4 3x3x3 conv
// a step), VGG-19 57 MB (its pair steps run two 512-channel convs), of 242 and 278 MB.
inline double resident_weight_bytes(const Graph& g, size_t elem_bytes, int last = -1) {
  if (last < 0 || last > g.last_node()) last = g.last_node();
  double resident = double(g.param_values(last));
  const auto& nodes = g.nodes();
  for (size_t i = 0; i <= size_t(last); ++i)
    if (nodes[i].kind == OpKind::kConv)  // the kernels live in the file
      resident -= double(g.node(nodes[i].inputs[0]).channels) * double(nodes[i].channels) * double(nodes[i].window.taps());
  return resident * double(elem_bytes);
}

// Peak memory of forward(x, observer, stop) for an input of spatial size `input` (D, H, W); `wanted`
// lists the modules the observer asks for (full names) and tap_cost(node, grid, channels) ->
// TapBytes what it holds for each. The input tensor itself is the caller's and is not counted.
template <class TapCost>
ForwardMemory simulate_forward(const Graph& g, std::array<Index, 3> input, int stop,
                               const std::vector<std::string>& wanted, size_t elem_bytes, int threads,
                               const PlanTraits& traits, TapCost&& tap_cost) {
  if (stop < 0 || stop > g.last_node()) stop = g.last_node();
  std::vector<bool> want(g.nodes().size(), false);
  for (const auto& name : wanted) {
    const int n = g.find_module(name);
    if (n >= 0 && n <= stop) want[size_t(n)] = true;
  }
  const Plan plan = make_plan(g, Dims{1, input[0], input[1], input[2], g.input_channels()}, want, stop, traits);
  const double e = double(elem_bytes);
  auto bytes = [&](const Dims& d) { return double(d.voxels()) * double(d.c) * e; };
  auto buffer_bytes = [&](int b) { return bytes(plan.storage_dims(b)); };  // bf16: half the channels
  auto module_name = [&](int node) {
    const auto m = g.modules_of(node);
    return m.empty() ? g.node(node).name : m.front()->name;
  };

  ForwardMemory out;
  double live = 0, peak = 0;
  auto touch = [&](double add, int node) {
    live += add;
    if (live > peak) peak = live, out.peak_module = module_name(node);
  };
  const double per_thread = elem_bytes == 4 ? float_conv_scratch_bytes(g, plan, traits, std::max(1, threads)) : kConvScratchBytesPerThread;
  out.scratch_bytes = per_thread * std::max(1, threads);
  touch(out.scratch_bytes, plan.steps.empty() ? 0 : plan.steps.front().out);
  double held_scratch = 0;  // a conv pair's scratch kept for the next pair
  for (const Step& s : plan.steps) {
    for (int b : s.alloc) touch(buffer_bytes(b), s.out);
    double transient = 0;
    if (s.kind == StepKind::kConvPair) {
      if (held_scratch != bytes(s.scratch)) {
        live -= held_scratch;
        held_scratch = bytes(s.scratch);
        touch(held_scratch, s.out);
      }
    } else if (s.kind == StepKind::kConvMaxPool || s.kind == StepKind::kPoolConv ||
               s.kind == StepKind::kConvPairMaxPool || s.kind == StepKind::kSpatialConvPair) {
      transient = bytes(s.scratch) + bytes(s.scratch2);
    }
    // kConvAdd: none (the Cpu op adds the residual in the conv's loop; the default adds in place).
    if (traits.streamed_weight_bytes > 0 && s.conv >= 0) {  // streamed weights: this step's, mapped in while it runs
      const double w = conv_weight_bytes(g, traits, s.conv, traits.streamed_weight_bytes) +
                       (s.conv2 >= 0 ? conv_weight_bytes(g, traits, s.conv2, traits.streamed_weight_bytes) : 0.0);
      transient += w;
      out.step_weight_bytes = std::max(out.step_weight_bytes, w);
    }

    if (s.conv >= 0 && traits.runs_along_w(s.conv)) {  // its ring of transformed input planes, while the step runs
      const Node& c = g.node(s.conv);
      const Dims& od = plan.dims[size_t(s.conv)];
      transient += 4.0 * double(cpu::winograd_w::layout(c.window, g.node(c.inputs[0]).channels, od.h, od.w).ring_floats());
    }
    if (const Index slots = s.kind == StepKind::kConvMaxPool ? traits.paired_plane_slots(s.conv) : 0) {
      // its ring of paired input planes, or of one plane of depth-summed rows (a plane's table the same size)
      const Node& c = g.node(s.conv);
      const Dims& od = plan.dims[size_t(s.conv)];
      const Dims& id = plan.dims[size_t(c.inputs[0])];
      transient += 2.0 * double(slots * cpu::paired_rows::layout(c.window, id.c, id.w, od.h, od.w, false).plane_values());
    }
    touch(transient, s.out);
    live -= transient;
    if (plan.wanted[size_t(s.out)]) {
      const Dims& d = plan.dims[size_t(s.out)];
      const TapBytes t = tap_cost(s.out, d.spatial(), d.c);
      touch(t.transient + t.kept, s.out);
      live -= t.transient;
    }
    if (s.kind == StepKind::kConvPair && !s.keep_scratch) live -= held_scratch, held_scratch = 0;
    for (int b : s.release) live -= buffer_bytes(b);
  }
  out.peak_bytes = peak;
  const Dims sd = plan.dims[size_t(stop)];
  out.stop_grid = {sd.d, sd.h, sd.w};
  return out;
}

// The network alone (no observer cost).
inline ForwardMemory simulate_forward(const Graph& g, std::array<Index, 3> input, int stop,
                                      const std::vector<std::string>& wanted = {}, size_t elem_bytes = 4,
                                      int threads = 1, const PlanTraits& traits = {}) {
  return simulate_forward(g, input, stop, wanted, elem_bytes, threads, traits,
                          [](int, const std::array<Index, 3>&, Index) { return TapBytes{}; });
}

}  // namespace volfeat
