#pragma once
// Where a float32 direct conv runs its output rows in bands (Conv3d<Cpu, float>::bands_fast,
// conv3d_impl.hpp) instead of one output row at a time (rows_fast), and how a band is laid out: for the
// conv (conv3d.hpp) and the memory estimate (nn/memory_estimate.hpp) alike.
//
// Why: rows_fast reuses each k step of B only over one output row's voxels, and each block of up to 8 of
// them reads the whole K x 16*NV panel (its kgroup() is 0: K groups measured no faster where the panel
// is in L2). Once the panel outgrows L2 it comes from L3 for every block: VGG-19's 512-channel convs
// (3.5 MB panels) ran at about 117 GFLOP/s against its Winograd convs' 520-600 effective
// (volfeat_forward --profile, 64x128x128, Intel Ice Lake, 2 threads). A band's input rows are copied
// once into a slab of whole padded rows, so that the band is one long row of constant stride that a
// single GEMM takes, with B in K groups reused over all of it.
// Whole forwards with bands against without (alternating volfeat_forward --serve workers, one median of
// paired ratios per order, Ice Lake, session 45): VGG-19 seeded 0.76-0.80 of the time at 64x128x128 and
// 128^3, inflated (depth-factored) 0.95 at 64x128x128; ResNet-50 0.89-0.90 at 128^3, 0.91-0.97 at
// 64x128x128 (stride-1 convs in bands, with a bound of 512 KiB); DenseNet-121 unchanged (none of its
// convs has such a panel). Below L2 bands lose: DenseNet-121's 128 -> 32 convs (442 KB panels) under
// VOLFEAT_WINOGRAD=0 took 1.08-1.14x the time in bands (the dropped columns and the copy out, where B is
// in L2 already).
//
// The layout. The slab holds, per input plane the band reads (kD of them, or 1 depth-factored: the
// planes summed), stride_h row phases: phase q's row r is padded input row stride_h*(y0 + r) + q (zeros
// where it is padding), each a padded row of wpe voxels of C_in values, wpe a multiple of stride_w. Then
// output (y, x) of the band reads tap (kh, kw) in phase (kh*dil_h) % stride_h, row (y - y0) +
// (kh*dil_h) / stride_h, voxel stride_w*x + kw*dil_w; that is row_voxels = wpe / stride_w positions of
// stride stride_w*C_in per output row, so the band is one long row of (rows - 1)*row_voxels + W_out
// positions, the row_voxels - W_out after each row but the last computed and dropped.
#include <algorithm>
#include <cstdlib>
#include <string>

#include "volfeat/core/error.hpp"
#include "volfeat/core/shape.hpp"

namespace volfeat::cpu::conv_bands {

// The smallest B panel that runs in bands: past Ice Lake's 1.25 MB L2 bands won (VGG-19's 256 -> 256,
// 1.77 MB: 1.5x the GFLOP/s), below it they lost (DenseNet-121's 128 -> 32, 442 KB; ResNet-50's stride-2
// 128 -> 128, 884 KB: its layer2.0 block about 10 % slower). Where a Zen 3 (512 KB L2) or a Zen 4 (1 MB) would
// put it is unmeasured.
inline constexpr Index kMinPanelBytes = Index(1) << 20;
// K steps per group (a 64-wide panel's 64 KB; 128 to 1024 measured within the VM's noise of it, all of
// K in one group 1.22-1.25x slower on VGG-19).
inline constexpr Index kGroup = 256;
// Positions of a band's long row, about (256 and 1024 no different).
inline constexpr Index kBandVoxels = 512;

// VOLFEAT_CONV_BANDS, parsed here at the edge: 0 (or off) never (every direct conv row by row, for A/B
// runs), all for every float32 direct conv wider than one tap (what the tests run the shared shapes
// through), 1/auto/unset where B's panel passes kMinPanelBytes.
enum class Mode { kOff, kAuto, kAll };
inline Mode parse_mode(const std::string& s) {
  if (s.empty() || s == "1" || s == "auto") return Mode::kAuto;
  if (s == "0" || s == "off") return Mode::kOff;
  if (s == "all") return Mode::kAll;
  fail("VOLFEAT_CONV_BANDS=", s, ": expected 0 (off), 1 (auto, the default) or all");
}
// Read as each conv is built (not cached, as VOLFEAT_WINOGRAD: a test builds the same conv both ways).
inline Mode mode() {
  const char* v = std::getenv("VOLFEAT_CONV_BANDS");
  return parse_mode(v ? v : "");
}

// Whether a float32 direct conv with this geometry and a B panel of panel_bytes runs in bands: a kernel
// wider than one tap, and under auto the panel past kMinPanelBytes. bf16 convs keep rows_fast (their tap
// rows in k-pairs).
inline bool pays(const WindowGeometry& g, Index panel_bytes, Mode m = mode()) {
  if (g.taps() <= 1 || m == Mode::kOff) return false;
  return m == Mode::kAll || panel_bytes > kMinPanelBytes;
}

struct Layout {
  Index wpe = 0;         // voxels of a padded row, a multiple of stride_w
  Index row_voxels = 0;  // long-row positions per output row (wpe / stride_w)
  Index band = 0;        // output rows per band
  Index phase_rows = 0;  // rows of a row phase
  Index slab_plane = 0;  // floats of one input plane's phases
  Index slab = 0;        // floats of the slab (slab_planes planes)
  Index outputs = 0;     // floats of a band's outputs for one panel of pw channels
};

// in_w: the input's width; out_h, out_w: the output plane's extents.
inline Layout layout(const WindowGeometry& g, Index ci, Index pw, Index slab_planes, Index in_w, Index out_h,
                     Index out_w) {
  const Index sh = g.stride[1], sw = g.stride[2];
  const Index wp = std::max(in_w + 2 * g.padding[2], (out_w - 1) * sw + (g.kernel[2] - 1) * g.dilation[2] + 1);
  Layout l;
  l.wpe = (wp + sw - 1) / sw * sw;
  l.row_voxels = l.wpe / sw;
  l.band = std::clamp<Index>(kBandVoxels / l.row_voxels, 1, std::max<Index>(out_h, 1));
  l.phase_rows = l.band + (g.kernel[1] - 1) * g.dilation[1] / sh;
  l.slab_plane = sh * l.phase_rows * l.wpe * ci;
  l.slab = slab_planes * l.slab_plane;
  l.outputs = l.band * l.row_voxels * pw;
  return l;
}

}  // namespace volfeat::cpu::conv_bands
