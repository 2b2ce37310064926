#pragma once
#include <cmath>
#include <vector>

#include "volfeat/core/error.hpp"

namespace volfeat {

inline double cosine_similarity(const std::vector<double>& a, const std::vector<double>& b) {
  if (a.size() != b.size()) fail("cosine similarity of vectors of length ", a.size(), " and ", b.size());
  double ab = 0, aa = 0, bb = 0;
  for (size_t i = 0; i < a.size(); ++i) ab += a[i] * b[i], aa += a[i] * a[i], bb += b[i] * b[i];
  if (aa == 0 || bb == 0) return NAN;  // undefined for a zero vector; reported, not hidden
  return ab / std::sqrt(aa * bb);
}

}  // namespace volfeat
