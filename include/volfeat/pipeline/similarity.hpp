#pragma once
// The similarity registry. Vector similarities compare two regions' pooled vectors; `cka` compares
// their voxel feature sets directly.
//
//   cosine     a.b / (|a| |b|)
//   pearson    cosine of the mean-centred vectors (correlation over channels)
//   euclidean  |a/|a| - b/|b||, a distance in [0, 2] (0 = same direction)
//   cka        linear CKA with channels as the examples: K = sum_v w_v f_v f_v^T (C x C) over a
//              region's voxels (at most kCkaMaxVoxels, taken at a deterministic stride), centred
//              (H K H); CKA = <Ka, Kb> / (|Ka| |Kb|). Regions have different voxels, so the comparison is
//              of how channels co-activate within each region; it needs no pooling.
#include <cmath>
#include <string>
#include <vector>

#include "volfeat/core/error.hpp"
#include "volfeat/pipeline/fixed_order_gram.hpp"

namespace volfeat {

inline constexpr long kCkaMaxVoxels = 4096;

inline double cosine_similarity(const std::vector<double>& a, const std::vector<double>& b) {
  if (a.size() != b.size()) fail("cosine similarity of vectors of length ", a.size(), " and ", b.size());
  double ab = 0, aa = 0, bb = 0;
  for (size_t i = 0; i < a.size(); ++i) ab += a[i] * b[i], aa += a[i] * a[i], bb += b[i] * b[i];
  if (aa == 0 || bb == 0) return NAN;  // undefined for a zero vector; reported, not hidden
  return ab / std::sqrt(aa * bb);
}

inline double pearson_correlation(std::vector<double> a, std::vector<double> b) {
  double ma = 0, mb = 0;
  for (size_t i = 0; i < a.size(); ++i) ma += a[i], mb += b[i];
  ma /= double(a.size()), mb /= double(b.size());
  for (double& x : a) x -= ma;
  for (double& x : b) x -= mb;
  return cosine_similarity(a, b);
}

inline double normalized_euclidean(const std::vector<double>& a, const std::vector<double>& b) {
  double aa = 0, bb = 0, d = 0;
  for (size_t i = 0; i < a.size(); ++i) aa += a[i] * a[i], bb += b[i] * b[i];
  if (aa == 0 || bb == 0) return NAN;
  const double na = std::sqrt(aa), nb = std::sqrt(bb);
  for (size_t i = 0; i < a.size(); ++i) d += (a[i] / na - b[i] / nb) * (a[i] / na - b[i] / nb);
  return std::sqrt(d);
}

// A region's centred channel Gram matrix (C x C, row-major) for CKA.
struct ChannelGram {
  long channels = 0;
  std::vector<double> k;
};

// rows: `count` samples of `c` channels (row-major), weights one per sample. K is a blocked GEMM
// (fixed_order_gram.hpp) that sums every entry in the plain loop's order (sample by sample), so K, and
// CKA, are the same bits for any thread count and any alignment of `rows`; the Python API and the CLI
// are compared bit for bit. (An Eigen GEMM, tried before, moved the last bits with both.) The plain
// loop streamed all of K once per sample: bench/volfeat_bench's channel_gram entries measure both.
inline ChannelGram channel_gram(const double* rows, const double* weights, long count, long c) {
  const long stride = count > kCkaMaxVoxels ? (count + kCkaMaxVoxels - 1) / kCkaMaxVoxels : 1;
  ChannelGram g{c, fixed_order_weighted_gram(rows, weights, count, stride, c)};
  // H K H: subtract row and column means, add back the grand mean
  std::vector<double> row_mean(size_t(c), 0.0);
  double grand = 0;
  for (long p = 0; p < c; ++p) {
    for (long q = 0; q < c; ++q) row_mean[size_t(p)] += g.k[size_t(p * c + q)];
    row_mean[size_t(p)] /= double(c);
    grand += row_mean[size_t(p)];
  }
  grand /= double(c);
  for (long p = 0; p < c; ++p)
    for (long q = 0; q < c; ++q) g.k[size_t(p * c + q)] += grand - row_mean[size_t(p)] - row_mean[size_t(q)];
  return g;
}

inline double linear_cka(const ChannelGram& a, const ChannelGram& b) {
  if (a.channels != b.channels) fail("CKA of Gram matrices over ", a.channels, " and ", b.channels, " channels");
  double ab = 0, aa = 0, bb = 0;
  for (size_t i = 0; i < a.k.size(); ++i) ab += a.k[i] * b.k[i], aa += a.k[i] * a.k[i], bb += b.k[i] * b.k[i];
  if (aa == 0 || bb == 0) return NAN;
  return ab / std::sqrt(aa * bb);
}

struct Similarity {
  enum class Kind { kCosine, kPearson, kEuclidean, kCka } kind = Kind::kCosine;
  std::string name;
  bool needs_samples() const { return kind == Kind::kCka; }
};

inline Similarity parse_similarity(const std::string& s) {
  if (s == "cosine") return {Similarity::Kind::kCosine, s};
  if (s == "pearson") return {Similarity::Kind::kPearson, s};
  if (s == "euclidean") return {Similarity::Kind::kEuclidean, s};
  if (s == "cka") return {Similarity::Kind::kCka, s};
  fail("unknown similarity '", s, "' (known: cosine, pearson, euclidean, cka)");
}

inline double vector_similarity(const Similarity& s, const std::vector<double>& a, const std::vector<double>& b) {
  if (a.size() != b.size()) fail(s.name, " of vectors of length ", a.size(), " and ", b.size());
  switch (s.kind) {
    case Similarity::Kind::kCosine: return cosine_similarity(a, b);
    case Similarity::Kind::kPearson: return pearson_correlation(a, b);
    case Similarity::Kind::kEuclidean: return normalized_euclidean(a, b);
    case Similarity::Kind::kCka: break;
  }
  fail("similarity ", s.name, " compares voxel sets, not pooled vectors");
}

}  // namespace volfeat
