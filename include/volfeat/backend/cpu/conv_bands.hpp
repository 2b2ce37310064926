#pragma once
// Where a float32 direct conv runs its output rows in bands (Conv3d<Cpu, float>::bands_fast,
// conv3d_impl.hpp) instead of one output row at a time (rows_fast), and what a band holds: for the conv
// (conv3d.hpp) and the memory estimate (nn/memory_estimate.hpp) alike.
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
// 64x128x128; DenseNet-121 unchanged (none of its convs has such a panel). Below the bound bands lose:
// DenseNet-121's 128 -> 32 convs (442 KB panels) under VOLFEAT_WINOGRAD=0 took 1.08-1.14x the time in
// bands (the dropped columns and the copy out, where B is in L2 already).
#include <algorithm>

#include "volfeat/core/shape.hpp"

namespace volfeat::cpu::conv_bands {

// The smallest B panel that runs in bands (between DenseNet's 442 KB, slower in bands, and ResNet-50's
// 128 -> 128 at 884 KB).
inline constexpr Index kMinPanelBytes = Index(512) << 10;
// K steps per group (a 64-wide panel's 64 KB; 128 to 1024 measured within the VM's noise of it, all of
// K in one group 1.22-1.25x slower on VGG-19).
inline constexpr Index kGroup = 256;
// Voxels of a band's long row, about (256 and 1024 no different).
inline constexpr Index kBandVoxels = 512;

// Whether a float32 direct conv with this geometry and a B panel of panel_bytes runs in bands: stride 1
// along H and W (the long row's constant stride), a kernel wider than one tap, and the panel past L2.
// bf16 convs keep rows_fast (their tap rows in k-pairs).
inline bool pays(const WindowGeometry& g, Index panel_bytes) {
  return g.taps() > 1 && g.stride[1] == 1 && g.stride[2] == 1 && panel_bytes > kMinPanelBytes;
}

// A padded input row's voxels (stride 1 along W: the output width plus the kernel's reach).
inline Index padded_width(const WindowGeometry& g, Index out_w) { return out_w + (g.kernel[2] - 1) * g.dilation[2]; }

// Output rows per band: a long row of about kBandVoxels voxels, at least one row, at most the plane.
inline Index band_rows(const WindowGeometry& g, Index out_h, Index out_w) {
  return std::clamp<Index>(kBandVoxels / padded_width(g, out_w), 1, std::max<Index>(out_h, 1));
}

// A thread's scratch in floats: the slab (slab_planes planes of a band's rows plus the kernel's reach along
// H, whole padded rows of C_in values) and the band's outputs for one panel of pw channels.
struct Scratch {
  Index slab_plane = 0, slab = 0, outputs = 0;
};
inline Scratch scratch(const WindowGeometry& g, Index ci, Index pw, Index slab_planes, Index out_h, Index out_w) {
  const Index wp = padded_width(g, out_w), band = band_rows(g, out_h, out_w);
  Scratch s;
  s.slab_plane = (band + (g.kernel[1] - 1) * g.dilation[1]) * wp * ci;
  s.slab = slab_planes * s.slab_plane;
  s.outputs = band * wp * pw;
  return s;
}

}  // namespace volfeat::cpu::conv_bands
