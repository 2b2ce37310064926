#pragma once
// Where the Cpu backend runs a conv as Winograd F(2x4x4, 3x3x3) (winograd3d.hpp): the network's
// per-layer choice (ConvAlgorithm, called once per conv when the network is built).
//
// Rule (fp32 only; double keeps the direct conv as the exact path): a 3x3x3 conv with stride 1 and
// dilation 1 whose channels (and, where the network knows its input, output size) pass
// winograd_wins(). VOLFEAT_WINOGRAD overrides it for the whole process: 0 (or off) never, all every
// applicable conv (whatever its size), 1/auto/unset the rule, wide the rule without its cap on the
// transformed weights and with F(4x6x6) for float32 networks too (winograd_float_tile; faster, more memory:
// bench/README.md). Every other conv is direct.
// Either kind runs depth-factored where its weights are (backend/cpu/depth_factor.hpp; Winograd then
// takes 2D tiles on depth-summed input; VOLFEAT_DEPTH_FACTOR=0: never).
// A wide kernel on few input channels (the stem) runs as 1D Winograd along W (winograd_along_w.hpp) on
// AVX-512 CPUs, under the same VOLFEAT_WINOGRAD: winograd_along_w_wins below.
#include <algorithm>
#include <cstdlib>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "volfeat/backend/cpu/conv3d.hpp"
#include "volfeat/backend/cpu/isa.hpp"
#include "volfeat/backend/cpu/winograd3d.hpp"
#include "volfeat/core/error.hpp"
#include "volfeat/ops/conv_algorithm.hpp"

namespace volfeat {

enum class WinogradMode { kOff, kAuto, kWide, kAll };

// VOLFEAT_WINOGRAD, parsed once here at the edge.
inline WinogradMode winograd_mode_from_env() {
  const char* v = std::getenv("VOLFEAT_WINOGRAD");
  if (!v || !*v) return WinogradMode::kAuto;
  const std::string s(v);
  if (s == "0" || s == "off") return WinogradMode::kOff;
  if (s == "1" || s == "auto") return WinogradMode::kAuto;
  if (s == "wide") return WinogradMode::kWide;
  if (s == "all") return WinogradMode::kAll;
  fail("VOLFEAT_WINOGRAD=", s, ": expected 0 (off), 1 (auto, the default), wide or all");
}

// The measured rule (bench/README.md, "3D Winograd"): Winograd where both channel counts are at
// least kMinChannels (below that the transforms cost more than the GEMM saves) and the transformed
// weights stay small (C_in * C_out at most 256 * 256: 144 * 256 * 256 floats, 38 MB, where the direct
// weights are 7 MB; VGG's 512-channel convs would hold 151 MB each instead of their 28 MB). `capped`
// false (WinogradMode::kWide) drops the cap: on Zen 3, 1 thread, VGG-19 at 64x128x128, its
// 512-channel convs then took 0.63 instead of 1.95 CPU s per forward with F(2x2x2) (conv4_x 3.2x,
// conv5_x 2.4x less) for +480 MB of peak RSS (with F(2x4x4) the transformed weights are 2.25x that).
//
// use.output_voxels, where the network knows its input (BuildUpTo::input): Winograd only for a conv
// with at least kMinWinogradOutputVoxels outputs per forward. Below that its transformed weights
// (144 floats per channel pair for F(2x4x4) against 27 direct, each page first touched at the build)
// cost more than its forward saves, and on small planes its padded tiles waste most of their points.
// DenseNet-121 at 128^3 has 32^3, 16^3, 8^3 and 4^3 outputs in its four blocks; Zen 5, 2 threads, the
// threshold at 0 (every conv) / 4096 / 8192, alternated:
//   whole seeded `volfeat extract` (run.json total, 6 runs): 0.40-0.57 s / 0.36-0.39 s / 0.36-0.38 s,
//     process CPU 0.79-1.12 / 0.72-0.75 / 0.72-0.74 s; inflated (5 runs) 0.32-0.39 / 0.31-0.42 / 0.32-0.41 s
//   the forward alone (volfeat_forward --reps 7, two runs): seeded 0.205/0.198 against 0.202/0.185 s at 4096,
//     inflated 0.140/0.131 against 0.130/0.126 s; peak RSS 214 -> 139 MB seeded, 125 -> 107 MB inflated.
// So 16^3: DenseNet's blocks 3 and 4 run direct at 128^3 (40 of its 58 3x3x3 convs), block 2 Winograd.
inline constexpr Index kMinWinogradOutputVoxels = 16 * 16 * 16;
inline bool winograd_wins(const ConvSpec& s, bool capped = true, const ConvUse& use = {}) {
  constexpr Index kMinChannels = 16;
  constexpr Index kMaxChannelProduct = Index(256) * 256;
  return cpu::Winograd3d<float>::applicable(s) && s.in_channels >= kMinChannels && s.out_channels >= kMinChannels &&
         (!capped || s.in_channels * s.out_channels <= kMaxChannelProduct) &&
         (use.output_voxels == 0 || use.output_voxels >= kMinWinogradOutputVoxels);
}

// Whether `mode` runs the conv `s` as Winograd (fp32 only: double keeps the direct conv).
template <class T>
bool uses_winograd(const ConvSpec& s, WinogradMode mode, const ConvUse& use = {}) {
  if constexpr (!std::is_same_v<T, float>) {
    (void)s, (void)mode, (void)use;
    return false;
  } else {
    return mode == WinogradMode::kAll    ? cpu::Winograd3d<T>::applicable(s)
           : mode == WinogradMode::kAuto ? winograd_wins(s, true, use)
           : mode == WinogradMode::kWide ? winograd_wins(s, false, use)
                                         : false;
  }
}

// 1D Winograd along W (winograd_along_w.hpp) where it wins: a float32 conv on at most
// kMaxAlongWChannels input channels with a kernel at least 5 wide (DenseNet's and ResNet's 7x7x7 stride-2
// stems, 1 or 3 channels), whose weights are not depth-factored (a depth-factored stem sums its 7 input
// rows along D and runs 49 taps instead of 343: cheaper still, and it keeps that). In a bf16 network the
// stem keeps the bf16 direct kernels: the float32 stem along W was no faster (conv+pool at 108x256x256,
// Zen 4: 0.136 s against bf16's 0.132 s). Along W on bf16 operands (transformed input and weights rounded,
// bf16 GEMMs; built in session 36, bench/README.md) took conv+pool from 0.115 to 0.097 s, 3 % of a bf16
// pass, and DenseNet-121's pool0 from 1.6e-3 to 8.4e-3 of float32 (test_bf16's small networks): most of
// the features' 1e-2 bound for the stem alone, so it was dropped.
// VOLFEAT_WINOGRAD=all takes every stem-like conv, whatever its precision and weights; 0 none.
//
// Only on AVX-512 CPUs (along_w_pays). With AVX2 kernels the direct stem is faster: DenseNet-121's
// conv0+norm0+relu0+pool0 (volfeat_forward --stop pool0, alternating --serve workers, one median of paired
// ratios per order, AVX2-only AMD EPYC Zen 3, session 42) took along W / direct 1.228 and 1.190 at 128^3,
// 1.117 and 1.097 at 108x256x256, 1.070 and 1.031 at 216x512x512. There a 16-float panel of the 64
// channels is the widest the 16 ymm registers hold, so each output row runs 4 panels x 13 points of short
// GEMMs (K = 7 per kd), mostly in 5-row blocks (32 tiles: 5+5+6+5+5+6), against AVX-512's one 64-wide
// panel; their segments' length compiled in (7) gained 5 %, not enough.
inline constexpr Index kMaxAlongWChannels = 4;
inline bool stem_like(const ConvSpec& s) {
  return cpu::WinogradAlongW::applicable(s) && s.in_channels <= kMaxAlongWChannels && s.geometry.kernel[2] >= 5;
}
inline bool along_w_pays() { return cpu::cpu_isa() >= cpu::CpuIsa::kAvx512; }
inline bool winograd_along_w_wins(const ConvSpec& s, Precision precision, bool depth_factored) {
  return stem_like(s) && along_w_pays() && !(precision == Precision::kBf16 && cpu::gemm::bf16_available()) &&
         !depth_factored;
}
template <class T>
bool uses_winograd_along_w(const ConvSpec& s, WinogradMode mode, Precision precision, bool depth_factored) {
  if constexpr (!std::is_same_v<T, float>) {
    (void)s, (void)mode, (void)precision, (void)depth_factored;
    return false;
  } else {
    return mode == WinogradMode::kAll   ? stem_like(s)
           : mode == WinogradMode::kOff ? false
                                        : winograd_along_w_wins(s, precision, depth_factored);
  }
}

// VOLFEAT_DEPTH_FACTOR, parsed once here at the edge: 0 (or off) keeps every conv 3D (for A/B runs);
// unset, 1 or auto: depth-factored kernels run as 2D ones (backend/cpu/depth_factor.hpp).
inline DepthFactoring depth_factoring_from_env() {
  const char* v = std::getenv("VOLFEAT_DEPTH_FACTOR");
  if (!v || !*v) return DepthFactoring::kAuto;
  const std::string s(v);
  if (s == "0" || s == "off") return DepthFactoring::kOff;
  if (s == "1" || s == "auto") return DepthFactoring::kAuto;
  fail("VOLFEAT_DEPTH_FACTOR=", s, ": expected 0 (off) or 1 (auto, the default)");
}

// The precision a Winograd conv `s` is built with when the network asks for `asked`. bf16 has its own
// tile, F(2x2x2): 64 points per 8 outputs at bf16's GEMM rate, against float32's F(2x4x4), 144 points
// per 32 outputs at float32's. Where the bf16 GEMMs run on AMX tiles every 3D Winograd conv takes it.
// With AVX512-BF16 alone (twice float32's rate), F(2x2x2)'s transforms, twice as many per output, cost
// more than its GEMMs save unless both channel counts are large: per conv, 1 thread, medians of 3, two
// runs (volfeat_bench winograd/ against winograd_bf16/, Zen 4, session 17):
//   128 -> 32 with BN+ReLU on the input, 32^3 (DenseNet):  float32 27.7-33.2 ms, bf16 36.2-41.7 ms
//   64 -> 64, 16x64x64 (VGG, ResNet's layer1):             float32 57.5-65.3 ms, bf16 68.7-76.8 ms
//   128 -> 128, 16x32x32:                                  float32 67.8-73.2 ms, bf16 40.6-45.2 ms
//   256 -> 256, 8x16x16:                                   float32 25.7 ms,      bf16 24.8 ms
// so there the bf16 tile takes the convs with at least kMinBf16TileChannels on both sides (it also
// holds 2 x 64 bytes of U per channel pair against 4 x 144), float32's the others. On AMX the bf16
// tile's GEMMs (30 % of its time on AVX512-BF16) run several times faster: unmeasured, no AMX machine
// yet. Depth-factored convs run float32 F(4x4) in either case (Winograd3d's constructor).
inline constexpr Index kMinBf16TileChannels = 128;
inline Precision winograd_precision(const ConvSpec& s, Precision asked) {
  if (asked != Precision::kBf16 || !cpu::gemm::bf16_available() || cpu::gemm::bf16_gemms_on_tiles()) return asked;
  return std::min(s.in_channels, s.out_channels) >= kMinBf16TileChannels ? Precision::kBf16 : Precision::kFloat32;
}

// Whether F(4x6x6) beats F(4x4x4) on output planes of h x w: its transformed points over the planes
// padded to whole tiles (384 per 144 outputs on a 6-multiple, 216 per 64 on a 4-multiple) at most
// kWideTileMaxPoints of F(4x4x4)'s. Its transforms cost more per point (8-point axes), so equal points
// lose: 64 x 64 planes give 0.84 (DenseNet-121's block 1 at 108x256x256, block 2 at 216x512x512), 32 x 32
// and 16 x 16 exactly 1, 8 x 8 1.78. h or w 0 (planes unknown): no.
inline constexpr double kWideTileMaxPoints = 0.9;
inline bool wide_tile_wins(Index h, Index w) {
  if (h <= 0 || w <= 0) return false;
  using cpu::winograd::TileF32Deep, cpu::winograd::TileF32Wide;
  // Tl's transformed points per output, times the h x w planes padded to whole tiles
  auto points = [h, w](auto tile) {
    using Tl = decltype(tile);
    const auto padded = [](Index n, Index m) { return double((n + m - 1) / m * m); };
    return double(Tl::kPoints) / Tl::kOutputs * padded(h, Tl::kOutY) * padded(w, Tl::kOutX);
  };
  return points(TileF32Wide{}) <= kWideTileMaxPoints * points(TileF32Deep{});
}

// The float32 tile of a network's Winograd convs: F(4x4x4) (216 points per 64 outputs, 3.4 multiplies per
// output against F(2x4x4)'s 4.5) on AVX-512 and AVX2 CPUs, F(2x4x4) on the generic kernels (unmeasured
// there: no CPU without AVX2 has been timed). Its extra rounding
// (winograd3d_tile.hpp: about 3x F(2x4x4)'s; a conv at most 3.0e-5 from the naive reference over the shared
// shapes, held to 1e-4 by test_winograd) stays far inside the networks' 1e-4 against torch. A bf16 network's
// float32 convs took it first (session 27): DenseNet-121 (seeded; every 3x3x3 Winograd conv is 128 -> 32),
// Zen 5, 2 threads, bf16 at 128^3 0.137 / 0.117, 0.136 / 0.122, 0.129 / 0.147 s; at 108x256x256
// 0.516 / 0.458, 0.512 / 0.460 s (F(2x4x4) / F(4x4x4) binaries alternating, bench/README.md). float32
// followed in session 35: alternating volfeat_forward --serve workers, paired ratios F(2x4x4) / F(4x4x4)
// (medians of 16-20 pairs, AMD EPYC Zen 4): 1.083 at 128^3, 1.059 at 108x256x256. AVX2 in session 42
// (AVX2-only AMD EPYC Zen 3, the same paired ratios, one per order): 1.010 and 1.013 at 128^3, 1.091 and
// 1.121 at 108x256x256, 1.098 and 1.028 at 216x512x512. F(4x6x6) under VOLFEAT_WINOGRAD=wide there was no
// faster than F(4x4x4) at 108x256x256 (0.5 % faster, 1.6 % slower).
//
// In a bf16 network, F(4x6x6) (F(6,3) along y and x: 384 points per 144 outputs, 2.7 multiplies per
// output) replaces F(4x4x4) where the output planes are known (ConvUse) and wide_tile_wins: its tiles
// cover y and x in sixes, so a 32 x 32 plane takes 36 x 36 outputs of them and its points per output no
// longer win. Seeded DenseNet-121 in bf16 (alternating volfeat_forward --serve workers, one median of
// paired ratios per order, AMD EPYC Zen 4, session 40): 2.4-4.1 % faster at 108x256x256 (block 1), 2.8 and
// 4.0 % at 216x512x512 (blocks 1-2), 128^3 unchanged. On Zen 5 (family 26 model 2, session 48), time with
// F(4x6x6) over F(4x4x4) at 108x256x256: 0.97 and 1.01 (6 pairs per order), no worse. A float32 network
// keeps F(4x4x4): F(4x6x6) made its forward 1.6-6.1 % faster too, but its transformed weights (384 floats
// per channel pair against 216, +47 MiB at 216x512x512) took that whole extract's peak RSS from 1.83 to
// 1.87 GiB (2.01 GB), past issue #17's 2 GB; a bf16 extract peaks at 1.39 GiB. VOLFEAT_WINOGRAD=wide
// (WinogradMode::kWide), which trades memory for speed already, gives float32 networks F(4x6x6) too (on that
// Zen 5 no faster at 108x256x256: default / wide 0.98 and 1.00, 6 pairs per order).
inline cpu::winograd::FloatTile winograd_float_tile(Precision asked, const ConvUse& use = {},
                                                    WinogradMode mode = WinogradMode::kAuto) {
  using cpu::winograd::FloatTile;
  const bool bf16 = asked == Precision::kBf16 && cpu::gemm::bf16_available();
  if (!bf16 && cpu::cpu_isa() < cpu::CpuIsa::kAvx2) return FloatTile::kF2x4x4;
  const bool wide = bf16 || mode == WinogradMode::kWide;
  return wide && wide_tile_wins(use.output_height, use.output_width) ? FloatTile::kF4x6x6 : FloatTile::kF4x4x4;
}

template <class T>
struct ConvAlgorithm<Cpu, T> {
  // A Winograd conv never packs its direct weights: the network used to pack them and drop them again
  // (DenseNet-121: 58 of its 120 convs), part of the 6 % of a fresh process's samples in packing
  // (Zen 3, perf, bench/README.md "The fixed cost of a fresh process").
  // device.precision: bf16 where each conv can (Conv3d<Cpu, float>::runs_bf16), Winograd or direct by
  // the same rule as float32, a Winograd conv's tile by winograd_precision. device.weight_file: streamed
  // weights (core/weight_file.hpp), each conv's moved there as soon as they are packed.
  static std::unique_ptr<Conv3d<Cpu, T>> make(const ConvSpec& spec, const std::vector<float>& weight,
                                              const std::vector<float>& bias, const Cpu& device = {},
                                              const ConvUse& use = {}, WinogradMode mode = winograd_mode_from_env()) {
    static const DepthFactoring factoring = depth_factoring_from_env();
    if constexpr (std::is_same_v<T, float>) {
      if (uses_winograd<T>(spec, mode, use)) {
        auto w = std::make_shared<cpu::Winograd3d<T>>(spec, weight, bias, winograd_precision(spec, device.precision),
                                                      factoring, winograd_float_tile(device.precision, use, mode));
        w->move_weights_to(device.weight_file);
        return std::make_unique<Conv3d<Cpu, T>>(spec, std::shared_ptr<const cpu::Winograd3d<T>>(std::move(w)));
      }
      if (stem_like(spec) && uses_winograd_along_w<T>(spec, mode, device.precision,
                                                factoring == DepthFactoring::kAuto &&
                                                    cpu::depth_factor(spec, weight.data()).factored())) {
        auto w = std::make_shared<cpu::WinogradAlongW>(spec, weight.data(), weight.size(), bias.data(), bias.size());
        w->move_weights_to(device.weight_file);
        return std::make_unique<Conv3d<Cpu, T>>(spec, std::shared_ptr<const cpu::WinogradAlongW>(std::move(w)));
      }
    }
    auto conv = std::make_unique<Conv3d<Cpu, T>>(spec, weight.data(), weight.size(), bias.data(), bias.size(),
                                                 device.precision, factoring);
    conv->move_weights_to(device.weight_file);
    return conv;
  }
};

}  // namespace volfeat
