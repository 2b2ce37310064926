#pragma once
// The peak memory of Network::forward (nn/network.hpp) without computing anything, so a run that
// cannot fit is refused before it starts instead of being killed halfway.
//
// It replays the same plan the executor runs (nn/plan.hpp): each step's buffer allocations, its
// temporaries (a conv pair's scratch ring, a conv+pool's ring of conv planes, a pooled transition
// input), what the observer holds per tap, and the frees after it. The executor and the estimate read
// one list of steps, so a change of fusion or lifetime changes both. Check against a real run with
//   /usr/bin/time -v volfeat extract ... (Maximum resident set size) against `volfeat: memory:`.
#include <algorithm>
#include <array>
#include <cstddef>
#include <string>
#include <vector>

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
};

// Per-thread working memory of a conv: one packed tile of A (~256 KiB for float, conv3d.hpp) plus
// Eigen's GEMM blocking buffers (sized to the caches, a few MiB at most).
inline constexpr double kConvScratchBytesPerThread = 4.0 * (1 << 20);

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
  out.scratch_bytes = kConvScratchBytesPerThread * std::max(1, threads);
  touch(out.scratch_bytes, plan.steps.empty() ? 0 : plan.steps.front().out);
  double held_scratch = 0;  // a conv pair's scratch kept for the next pair
  for (const Step& s : plan.steps) {
    for (int b : s.alloc) touch(bytes(plan.buffers[size_t(b)]), s.out);
    double transient = 0;
    if (s.kind == StepKind::kConvPair) {
      if (held_scratch != bytes(s.scratch)) {
        live -= held_scratch;
        held_scratch = bytes(s.scratch);
        touch(held_scratch, s.out);
      }
    } else if (s.kind == StepKind::kConvMaxPool || s.kind == StepKind::kPoolConv ||
               s.kind == StepKind::kConvPairMaxPool) {
      transient = bytes(s.scratch) + bytes(s.scratch2);
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
    for (int b : s.release) live -= bytes(plan.buffers[size_t(b)]);
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
