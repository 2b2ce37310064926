#pragma once
// The pooling registry: how a region's voxel features become one vector. Every pooling weighs voxel
// v by its partial-volume weight w_v (shared mode) or by 1 (mask-input mode, the whole map); only
// voxels with w_v > 0 take part.
//
//   mean          sum w f / sum w
//   max           max over the region of f (per channel)
//   gem[:p]       (sum w max(f, 1e-6)^p / sum w)^(1/p), p = 3 by default (generalised mean)
//   mean+std      [mean, sqrt(sum w (f - mean)^2 / sum w)], 2C values
//   topk[:q]      per channel, the weighted mean of the largest values holding a fraction q of the
//                 region's weight (q = 0.1 by default)
//   percentile[:q]  per channel, the weighted q-th percentile (q = 50 by default): the smallest value
//                 whose cumulative weight (ascending) reaches q% of the total
//   attention[:t] sum a_v f_v with a_v proportional to w_v exp(|f_v| / (sqrt(C) t)): a softmax over the
//                 region's voxels of the feature-vector norm, scaled as in dot-product attention (t = 1)
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "volfeat/core/error.hpp"
#include "volfeat/core/shape.hpp"

namespace volfeat {

struct Pooling {
  enum class Kind { kMean, kMax, kGeM, kMeanStd, kTopK, kPercentile, kAttention } kind = Kind::kMean;
  double param = 0;
  std::string name;  // as given, e.g. "gem:4"
  // mean and max stream through the backend's RegionPool op; the rest gather the region's voxels
  bool streaming() const { return kind == Kind::kMean || kind == Kind::kMax; }
};

inline Pooling parse_pooling(const std::string& s) {
  Pooling p;
  p.name = s;
  const size_t colon = s.find(':');
  const std::string head = s.substr(0, colon);
  const bool has_param = colon != std::string::npos;
  double value = 0;
  if (has_param) {
    try {
      size_t used = 0;
      value = std::stod(s.substr(colon + 1), &used);
      if (used != s.size() - colon - 1) throw std::invalid_argument("");
    } catch (const std::exception&) {
      fail("pooling '", s, "': the parameter after ':' must be a number");
    }
  }
  auto param = [&](double dflt, double lo, double hi, const char* what) {
    p.param = has_param ? value : dflt;
    if (!(p.param >= lo && p.param <= hi)) fail("pooling '", s, "': ", what, " must lie in [", lo, ", ", hi, "]");
  };
  if (head == "mean" && !has_param) p.kind = Pooling::Kind::kMean;
  else if (head == "max" && !has_param) p.kind = Pooling::Kind::kMax;
  else if (head == "gem") p.kind = Pooling::Kind::kGeM, param(3, 0.1, 100, "p");
  else if (head == "mean+std" && !has_param) p.kind = Pooling::Kind::kMeanStd;
  else if (head == "topk") p.kind = Pooling::Kind::kTopK, param(0.1, 1e-9, 1, "the fraction q");
  else if (head == "percentile") p.kind = Pooling::Kind::kPercentile, param(50, 0, 100, "q");
  else if (head == "attention") p.kind = Pooling::Kind::kAttention, param(1, 1e-6, 1e6, "the temperature t");
  else
    fail("unknown pooling '", s, "' (known: mean, max, gem[:p], mean+std, topk[:q], percentile[:q], attention[:t])");
  return p;
}

// A region's voxels on one layer's grid: weights and channels-last features (double).
struct RegionSamples {
  Index channels = 0;
  std::vector<double> weight;    // one per sample, > 0
  std::vector<double> features;  // samples x channels
  Index count() const { return Index(weight.size()); }
  const double* row(Index i) const { return features.data() + i * channels; }
};

namespace detail {
// Weighted sorted values of channel c: (value, weight) ascending.
inline std::vector<std::pair<double, double>> channel_sorted(const RegionSamples& s, Index c) {
  std::vector<std::pair<double, double>> v(size_t(s.count()));
  for (Index i = 0; i < s.count(); ++i) v[size_t(i)] = {s.row(i)[c], s.weight[size_t(i)]};
  std::sort(v.begin(), v.end());
  return v;
}
}  // namespace detail

inline std::vector<double> pool_samples(const RegionSamples& s, const Pooling& p) {
  const Index c = s.channels, n = s.count();
  if (n == 0) fail("pooling ", p.name, ": the region has no voxel on this layer's grid");
  double total = 0;
  for (double w : s.weight) total += w;
  std::vector<double> mean(size_t(c), 0.0);
  for (Index i = 0; i < n; ++i)
    for (Index k = 0; k < c; ++k) mean[size_t(k)] += s.weight[size_t(i)] * s.row(i)[k];
  for (double& m : mean) m /= total;

  switch (p.kind) {
    case Pooling::Kind::kMean:
      return mean;
    case Pooling::Kind::kMax: {
      std::vector<double> out(size_t(c), -INFINITY);
      for (Index i = 0; i < n; ++i)
        for (Index k = 0; k < c; ++k) out[size_t(k)] = std::max(out[size_t(k)], s.row(i)[k]);
      return out;
    }
    case Pooling::Kind::kGeM: {
      std::vector<double> out(size_t(c), 0.0);
      for (Index i = 0; i < n; ++i)
        for (Index k = 0; k < c; ++k) out[size_t(k)] += s.weight[size_t(i)] * std::pow(std::max(s.row(i)[k], 1e-6), p.param);
      for (double& o : out) o = std::pow(o / total, 1.0 / p.param);
      return out;
    }
    case Pooling::Kind::kMeanStd: {
      std::vector<double> out(mean);
      out.resize(size_t(2 * c), 0.0);
      for (Index i = 0; i < n; ++i)
        for (Index k = 0; k < c; ++k) {
          const double d = s.row(i)[k] - mean[size_t(k)];
          out[size_t(c + k)] += s.weight[size_t(i)] * d * d;
        }
      for (Index k = 0; k < c; ++k) out[size_t(c + k)] = std::sqrt(out[size_t(c + k)] / total);
      return out;
    }
    case Pooling::Kind::kTopK: {
      std::vector<double> out(static_cast<size_t>(c));
      const double budget = p.param * total;
      for (Index k = 0; k < c; ++k) {
        const auto v = detail::channel_sorted(s, k);
        double taken = 0, sum = 0;
        for (auto it = v.rbegin(); it != v.rend() && taken < budget; ++it) {
          const double w = std::min(it->second, budget - taken);
          sum += w * it->first;
          taken += w;
        }
        out[size_t(k)] = sum / taken;
      }
      return out;
    }
    case Pooling::Kind::kPercentile: {
      std::vector<double> out(static_cast<size_t>(c));
      const double target = p.param / 100.0 * total;
      for (Index k = 0; k < c; ++k) {
        const auto v = detail::channel_sorted(s, k);
        double cum = 0;
        out[size_t(k)] = v.back().first;
        for (const auto& [value, w] : v)
          if ((cum += w) >= target * (1 - 1e-12)) {
            out[size_t(k)] = value;
            break;
          }
      }
      return out;
    }
    case Pooling::Kind::kAttention: {
      std::vector<double> score(static_cast<size_t>(n));
      double top = -INFINITY;
      for (Index i = 0; i < n; ++i) {
        double sq = 0;
        for (Index k = 0; k < c; ++k) sq += s.row(i)[k] * s.row(i)[k];
        score[size_t(i)] = std::sqrt(sq) / (std::sqrt(double(c)) * p.param);
        top = std::max(top, score[size_t(i)]);
      }
      std::vector<double> out(size_t(c), 0.0);
      double z = 0;
      for (Index i = 0; i < n; ++i) {
        const double a = s.weight[size_t(i)] * std::exp(score[size_t(i)] - top);
        z += a;
        for (Index k = 0; k < c; ++k) out[size_t(k)] += a * s.row(i)[k];
      }
      for (double& o : out) o /= z;
      return out;
    }
  }
  return mean;
}

}  // namespace volfeat
