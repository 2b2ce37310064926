#pragma once
// An analytic estimate of the peak memory of DenseNet3d::forward (nn/densenet3d.hpp), so a run that
// cannot fit is refused before it starts instead of being killed halfway.
//
// The estimate replays the forward pass's allocations without computing anything: it walks the same
// module sequence and keeps a running total of the buffers the CURRENT implementation holds at each
// step (the stem output, each block's preallocated concatenation buffer, the bottleneck `mid`, a
// transition's squeezed map and the next block's buffer, a temporary for each materialised norm/relu
// tap, norm5's output) plus what the observer keeps per tap. It must stay an upper-ish bound of
// densenet3d.hpp: when that file changes how it allocates, change simulate_densenet_forward() below
// in the same way (each allocation there names the line of forward() it mirrors) and re-check with
//   /usr/bin/time -v volfeat extract ... (Maximum resident set size) against `volfeat: memory:`.
#include <algorithm>
#include <array>
#include <cstddef>
#include <string>
#include <vector>

#include "volfeat/core/shape.hpp"
#include "volfeat/nn/densenet_spec.hpp"

namespace volfeat {

// Bytes an observer holds while module `module` (output grid `grid`, `channels` channels) is shown
// to it: `transient` only during the call, `kept` until the forward pass returns.
struct TapBytes {
  double transient = 0;
  double kept = 0;
};

struct ForwardMemory {
  double peak_bytes = 0;       // activations + observer + per-thread scratch at the peak
  std::string peak_module;     // the module being produced when the peak is reached
  double scratch_bytes = 0;    // per-thread conv tiles and GEMM blocking, included in peak_bytes
  std::array<Index, 3> stop_grid{{0, 0, 0}};  // spatial size of the stop module's output
};

// Per-thread working memory of a conv: one packed tile of A (~256 KiB for float, conv3d.hpp) plus
// Eigen's GEMM blocking buffers (sized to the caches, a few MiB at most).
inline constexpr double kConvScratchBytesPerThread = 4.0 * (1 << 20);

// Packed weights the network holds: one T per conv weight and 4 T per BN channel (plus their
// folded scale/shift), for a DenseNet with a `stem_in`-channel stem.
inline double densenet_weight_values(const DenseNetConfig& c, Index stem_in) {
  double n = 0;
  for (const ParamSpec& p : densenet_params(c, 3, stem_in)) n += double(element_count(p.shape));
  return n;
}

namespace detail {

// Running total of live bytes with its maximum.
struct LiveBytes {
  double live = 0, peak = 0;
  std::string peak_at;
  void alloc(double bytes, const std::string& at) {
    live += bytes;
    if (live > peak) peak = live, peak_at = at;
  }
  void release(double bytes) { live -= bytes; }
};

}  // namespace detail

// Peak memory of forward(x, observer, stop) for an input of spatial size `input` (D, H, W) with
// `in_channels` channels, T of `elem_bytes` bytes; `wanted` lists the modules the observer asks for
// (full torchvision names) and tap_cost(module_index, grid, channels) -> TapBytes what it holds for
// each. The input tensor itself is the caller's and is not counted.
template <class TapCost>
// planewise_bottleneck: the backend's DenseLayerConvs keeps a ring of 3 bottleneck planes
// (kPlanewiseDenseLayer) instead of the whole bottleneck.
ForwardMemory simulate_densenet_forward(const DenseNetConfig& c, std::array<Index, 3> input, Index in_channels,
                                        int stop, const std::vector<std::string>& wanted, size_t elem_bytes,
                                        int threads, bool planewise_bottleneck, TapCost&& tap_cost) {
  (void)in_channels;  // conv0's input is the caller's tensor; its tiles are in the scratch term
  const std::vector<ModuleInfo> modules = densenet_modules(c);
  const int last = int(modules.size()) - 1;
  if (stop < 0 || stop > last) stop = last;
  const double e = double(elem_bytes);
  auto vox = [](const std::array<Index, 3>& g) { return double(g[0]) * double(g[1]) * double(g[2]); };
  auto wants = [&](int i) {
    return i <= last && std::find(wanted.begin(), wanted.end(), modules[size_t(i)].name) != wanted.end();
  };

  detail::LiveBytes m;
  ForwardMemory out;
  out.scratch_bytes = kConvScratchBytesPerThread * std::max(1, threads);
  m.alloc(out.scratch_bytes, modules[0].name);
  int next = 0;
  double kept = 0;
  // Walker::emit: the observer sees module `next`; true when it was the stop module.
  auto emit = [&](const std::array<Index, 3>& grid, Index ch) {
    if (wants(next)) {
      const TapBytes t = tap_cost(next, grid, ch);
      m.alloc(t.transient + t.kept, modules[size_t(next)].name);
      m.release(t.transient);
      kept += t.kept;
    }
    if (next == stop) out.stop_grid = grid;
    return next++ == stop;
  };
  // Walker::bn_relu: a fused norm+relu, materialised into a temporary only when tapped.
  auto bn_relu = [&](const std::array<Index, 3>& grid, Index ch) {
    if (!wants(next) && !wants(next + 1)) {
      if (next == stop || next + 1 == stop) out.stop_grid = grid;
      if (next++ == stop) return true;
      return next++ == stop;
    }
    const double tmp = vox(grid) * double(ch) * e;  // Buffer tmp(in.dims)
    m.alloc(tmp, modules[size_t(next)].name);
    const bool done = emit(grid, ch) || emit(grid, ch);
    m.release(tmp);
    return done;
  };
  auto finish = [&] {
    out.peak_bytes = m.peak;
    out.peak_module = m.peak_at;
    return out;
  };

  // ---- stem. Block 1's buffer first: Buffer block(with_channels(grid, block_output_channels(c, 0)))
  const std::array<Index, 3> conv0_grid = WindowGeometry::cube(7, 2, 3).out_spatial(input);
  std::array<Index, 3> grid = WindowGeometry::cube(3, 2, 1).out_spatial(conv0_grid);
  double block = vox(grid) * double(block_output_channels(c, 0)) * e;
  m.alloc(block, modules[0].name);
  if (wants(0) || wants(1) || wants(2) || stop < 3) {
    const double stem = vox(conv0_grid) * double(c.init_features) * e;  // Buffer stem(conv0_.output_dims(...))
    m.alloc(stem, modules[0].name);
    for (int i = 0; i < 3; ++i)
      if (emit(conv0_grid, c.init_features)) return finish();
    m.release(stem);
  } else {
    // ConvActMaxPool: a ring of 3 conv0 output planes instead of the whole stem output.
    const double ring = 3.0 * double(conv0_grid[1]) * double(conv0_grid[2]) * double(c.init_features) * e;
    m.alloc(ring, modules[0].name);
    m.release(ring);
    next += 3;
  }
  if (emit(grid, c.init_features)) return finish();  // pool0

  const Index growth = c.growth_rate;
  const Index bottleneck = Index(c.bn_size) * growth;
  for (int b = 0; b < 4; ++b) {
    Index ch = block_input_channels(c, b);
    // Buffer mid: DenseLayerConvs' scratch (a ring of planes, or the whole bottleneck), resized to
    // the whole bottleneck for a layer with a tap inside.
    const double whole_mid = vox(grid) * double(bottleneck) * e;
    const double ring_mid = planewise_bottleneck ? 3.0 * double(grid[1]) * double(grid[2]) * double(bottleneck) * e : whole_mid;
    double mid = 0;
    auto hold_mid = [&](double bytes) {
      if (mid == bytes) return;
      m.release(mid);
      mid = bytes;
      m.alloc(mid, modules[size_t(next)].name);
    };
    for (int l = 0; l < c.block_layers[size_t(b)]; ++l) {
      if (bn_relu(grid, ch)) return finish();
      const int c1 = next;  // conv1, norm2, relu2
      if (!wants(c1) && !wants(c1 + 1) && !wants(c1 + 2) && stop > c1 + 2) {
        hold_mid(ring_mid);
        next += 3;  // DenseLayerConvs: norm2+relu2 in conv1's epilogue
      } else {
        hold_mid(whole_mid);
        if (emit(grid, bottleneck)) return finish();  // conv1 into mid
        if (bn_relu(grid, bottleneck)) return finish();
      }
      if (emit(grid, growth)) return finish();  // conv2 into the block buffer
      if (emit(grid, growth)) return finish();  // the dense layer
      ch += growth;
    }
    if (emit(grid, ch)) return finish();  // the block
    m.release(mid);  // mid = Buffer() (at b == 3: out of scope at the break)
    if (b == 3) break;

    if (bn_relu(grid, ch)) return finish();
    const std::array<Index, 3> pooled_grid = WindowGeometry::cube(2, 2, 0).out_spatial(grid);
    const double next_block = vox(pooled_grid) * double(block_output_channels(c, b + 1)) * e;  // Buffer next(...)
    m.alloc(next_block, modules[size_t(next)].name);
    if (wants(next) || next == stop) {
      const double squeezed = vox(grid) * double(ch / 2) * e;  // Buffer squeezed(t.conv.output_dims(...))
      m.alloc(squeezed, modules[size_t(next)].name);
      if (emit(grid, ch / 2)) return finish();
      m.release(squeezed);
    } else {
      const double act_pooled = vox(pooled_grid) * double(ch) * e;  // pool first, then the 1x1 conv
      m.alloc(act_pooled, modules[size_t(next)].name);
      m.release(act_pooled);
      next += 1;
    }
    grid = pooled_grid;
    if (emit(grid, ch / 2)) return finish();  // pool
    if (emit(grid, ch / 2)) return finish();  // transition
    m.release(block);  // block = std::move(next)
    block = next_block;
  }
  m.alloc(block, modules[size_t(next)].name);  // Buffer out(block.dims()) for norm5
  emit(grid, block_output_channels(c, 3));
  (void)kept;
  return finish();
}

// The network alone (no observer cost).
inline ForwardMemory simulate_densenet_forward(const DenseNetConfig& c, std::array<Index, 3> input, Index in_channels,
                                               int stop, const std::vector<std::string>& wanted = {},
                                               size_t elem_bytes = 4, int threads = 1, bool planewise_bottleneck = false) {
  return simulate_densenet_forward(c, input, in_channels, stop, wanted, elem_bytes, threads, planewise_bottleneck,
                                   [](int, const std::array<Index, 3>&, Index) { return TapBytes{}; });
}

}  // namespace volfeat
