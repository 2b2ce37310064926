#pragma once
// One list of problem shapes shared by every backend's primitive tests (as CUTLASS's tests share
// theirs): odd sizes, stride 2 on even and odd inputs, padding, dilation, size-1 dims, batch > 1,
// and the shapes DenseNet itself uses.
#include <string>
#include <vector>

#include "volfeat/core/shape.hpp"

namespace volfeat::test {

struct ConvProblem {
  std::string name;
  Dims in;           // (N, D, H, W, C_in)
  Index out_channels;
  WindowGeometry geometry;
  bool bias;
};

struct PoolProblem {
  std::string name;
  Dims in;
  WindowGeometry geometry;
};

inline WindowGeometry geom(std::array<Index, 3> k, std::array<Index, 3> s, std::array<Index, 3> p,
                           std::array<Index, 3> d = {1, 1, 1}) {
  return {k, s, p, d};
}

// Element-wise ops (batchnorm, relu, add): odd extents, a batch of 2, a single voxel, a single channel.
inline std::vector<Dims> elementwise_shapes() {
  return {Dims{1, 3, 5, 7, 6}, Dims{2, 1, 1, 1, 33}, Dims{1, 4, 1, 3, 1}};
}

inline std::vector<ConvProblem> conv_problems() {
  return {
      {"pointwise_odd", {1, 5, 7, 3, 13}, 9, WindowGeometry::cube(1), false},
      {"pointwise_bias_batch2", {2, 3, 4, 5, 6}, 7, WindowGeometry::cube(1), true},
      {"dense_3x3x3_p1", {1, 6, 5, 7, 16}, 8, WindowGeometry::cube(3, 1, 1), false},
      {"stride2_even", {1, 8, 10, 6, 3}, 5, WindowGeometry::cube(3, 2, 1), true},
      {"stride2_odd", {1, 9, 11, 7, 3}, 4, WindowGeometry::cube(3, 2, 1), false},
      {"stem_7_s2_p3_odd", {1, 13, 11, 9, 1}, 8, WindowGeometry::cube(7, 2, 3), false},
      {"stem_batch2_5_s2_p2", {2, 9, 5, 8, 2}, 6, WindowGeometry::cube(5, 2, 2), true},
      {"dilation2_pad2", {1, 9, 8, 10, 4}, 6, WindowGeometry::cube(3, 1, 2, 2), true},
      {"anisotropic", {1, 7, 9, 12, 5}, 3, geom({1, 3, 5}, {1, 2, 3}, {0, 1, 2}, {1, 2, 1}), true},
      {"size1_dims", {1, 1, 6, 1, 4}, 5, geom({1, 3, 1}, {1, 1, 1}, {0, 1, 0}), false},
      {"kernel_equals_input_no_pad", {1, 3, 3, 3, 2}, 4, WindowGeometry::cube(3), true},
      {"pad_larger_than_needed", {1, 2, 3, 2, 3}, 2, WindowGeometry::cube(3, 2, 2), false},
      {"wide_channels", {1, 3, 4, 5, 70}, 33, WindowGeometry::cube(3, 1, 1), false},
      // Edges of the Cpu AVX-512 kernels: k chunks of 128 with a tail, partial output panels, two
      // panels, several voxel tiles, row blocks of unequal length, the constant row strides (128, 2).
      {"pointwise_k_chunk_tail_partial_panel", {1, 3, 5, 37, 200}, 40, WindowGeometry::cube(1), true},
      {"pointwise_two_panels", {1, 2, 3, 50, 96}, 128, WindowGeometry::cube(1), false},
      {"dense_3x3x3_c128_long_rows", {1, 3, 4, 31, 128}, 32, WindowGeometry::cube(3, 1, 1), false},
      {"stem_like_c1_stride2_64_out", {1, 9, 10, 40, 1}, 64, WindowGeometry::cube(7, 2, 3), false},
      {"stride2_48_out", {1, 5, 6, 17, 3}, 48, WindowGeometry::cube(3, 2, 1), true},
      {"out_channels_17", {1, 4, 3, 15, 20}, 17, WindowGeometry::cube(3, 1, 1), true},
      // Panels of B past 1 MiB (K = 27 x 640: 1.1 MB at 16 channels), which the Cpu direct conv runs in
      // bands of output rows (backend/cpu/conv_bands.hpp; VOLFEAT_CONV_BANDS=all runs every shape here in
      // bands): two panels (the second partial) in bands of several rows with the padded columns dropped;
      // stride 2 (two row phases) on an odd input with batch 2. Then several bands per plane (3 + 1 rows of
      // 130 positions) with stride 2 along D only, which runs in bands under VOLFEAT_CONV_BANDS=all.
      {"bands_c640_two_panels", {1, 2, 3, 5, 640}, 72, WindowGeometry::cube(3, 1, 1), true},
      {"bands_c640_stride2_batch2", {2, 3, 5, 7, 640}, 20, WindowGeometry::cube(3, 2, 1), false},
      {"stride_d2_two_bands_a_plane", {1, 2, 4, 128, 8}, 8, geom({3, 3, 3}, {2, 1, 1}, {1, 1, 1}), true},
  };
}

inline std::vector<PoolProblem> pool_problems() {
  return {
      {"densenet_pool0_odd", {1, 9, 11, 7, 4}, WindowGeometry::cube(3, 2, 1)},
      {"densenet_pool0_even", {2, 8, 6, 10, 3}, WindowGeometry::cube(3, 2, 1)},
      {"transition_even", {1, 8, 6, 4, 5}, WindowGeometry::cube(2, 2, 0)},
      {"transition_odd", {1, 7, 9, 5, 3}, WindowGeometry::cube(2, 2, 0)},
      {"pad_and_stride1", {1, 5, 4, 6, 2}, WindowGeometry::cube(3, 1, 1)},
      {"anisotropic", {1, 6, 9, 7, 3}, geom({1, 3, 2}, {1, 2, 2}, {0, 1, 1})},
      {"size1_dims", {1, 1, 7, 1, 3}, geom({1, 3, 1}, {1, 2, 1}, {0, 1, 0})},
  };
}

// Dilated windows exist only for max pooling in torch.
inline std::vector<PoolProblem> maxpool_only_problems() {
  return {{"dilated", {1, 9, 8, 7, 2}, geom({3, 2, 3}, {2, 1, 1}, {1, 1, 0}, {2, 3, 1})}};
}

struct AdaptiveProblem {
  std::string name;
  Dims in;
  std::array<Index, 3> out;
};

inline std::vector<AdaptiveProblem> adaptive_problems() {
  return {
      {"global", {1, 5, 7, 3, 4}, {1, 1, 1}},
      {"uneven_bins", {1, 7, 10, 5, 3}, {3, 4, 2}},
      {"upsampling_bins", {1, 2, 3, 2, 2}, {5, 4, 3}},
      {"identity", {2, 3, 4, 5, 2}, {3, 4, 5}},
  };
}

}  // namespace volfeat::test
