#pragma once
// Inflation of a 2D torchvision DenseNet state_dict to 3D: a registry of schemes, each a rule for
// turning a 2D conv kernel (O, I, a, b) into a 3D one (O, I, kD, kH, kW).
//
// The 2D kernel's two axes become the two 3D axes other than the inflated one, in order:
//   axis D: (O, I, k, a, b)    axis H: (O, I, a, k, b)    axis W: (O, I, a, b, k)
// with k = a (DenseNet's kernels are square). The stem's RGB input collapses to one channel first:
// `sum` (a gray volume then acts like a gray image replicated to RGB) or `mean`; or stays RGB
// (`rgb`), for inputs normalised per channel (ImageNet mean/std) where no collapse is exact.
#include <functional>
#include <map>
#include <string>

#include "volfeat/core/error.hpp"
#include "volfeat/core/random.hpp"
#include "volfeat/core/shape.hpp"
#include "volfeat/nn/densenet_spec.hpp"

namespace volfeat {

struct InflateOptions {
  std::string scheme = "i3d-mean";
  char axis = 'D';           // the inflated axis: D (slices), H or W
  std::string stem = "sum";  // conv0 input: sum | mean (collapsed to gray) | rgb (kept, 3 channels)
  uint64_t seed = 0;         // for seeded schemes (random)
};

inline int axis_index(char axis) {
  switch (axis) {
    case 'D': case 'd': return 0;
    case 'H': case 'h': return 1;
    case 'W': case 'w': return 2;
  }
  fail("unknown axis '", axis, "' (expected D, H or W)");
}

// One scheme's rule for one 2D kernel. `t` is the index along the inflated axis, `k` its length.
struct InflationScheme {
  std::string formula;  // for --help and the README
  // weight value at inflated index t given the 2D value; empty for schemes that ignore 2D weights
  std::function<double(double w2, Index t, Index k)> rule;
};

inline const std::map<std::string, InflationScheme>& inflation_schemes() {
  static const std::map<std::string, InflationScheme> schemes{
      {"i3d-mean", {"w3[..., t, ...] = w2 / k for every t < k along the inflated axis",
                    [](double w2, Index, Index k) { return w2 / double(k); }}},
      {"centre", {"w3[..., k//2, ...] = w2, zero elsewhere along the inflated axis",
                  [](double w2, Index t, Index k) { return t == k / 2 ? w2 : 0.0; }}},
      {"random", {"torchvision's init in 3D, seeded: conv ~ N(0, 2/fan_in) with fan_in = I*kD*kH*kW, "
                  "BN gamma=1 beta=0 mean=0 var=1 (no 2D weights used)",
                  {}}},
  };
  return schemes;
}

inline const InflationScheme& inflation_scheme(const std::string& name) {
  const auto& s = inflation_schemes();
  auto it = s.find(name);
  if (it == s.end()) {
    std::string known;
    for (const auto& [n, _] : s) known += (known.empty() ? "" : ", ") + n;
    fail("unknown inflation scheme '", name, "' (known: ", known, ")");
  }
  return it->second;
}

// torchvision's own initialisation, in 3D: the "untrained" network of Avants et al.
inline StateDict random_state_dict(const DenseNetConfig& c, uint64_t seed, int64_t stem_in = 1) {
  StateDict sd;
  sd.origin = std::string("seeded random init (") + c.name + ", seed " + std::to_string(seed) + ")";
  Rng rng(seed);
  for (const ParamSpec& p : densenet_params(c, 3, stem_in)) {
    Param param{p.shape, std::vector<double>(size_t(element_count(p.shape)))};
    const auto leaf = p.key.substr(p.key.rfind('.') + 1);
    if (p.shape.size() == 5) {
      const double std_dev = std::sqrt(2.0 / double(element_count(p.shape) / p.shape[0]));
      for (double& v : param.values) v = std_dev * rng.normal();
    } else {
      const double fill = (leaf == "weight" || leaf == "running_var") ? 1.0 : 0.0;
      std::fill(param.values.begin(), param.values.end(), fill);
    }
    sd.params.emplace(p.key, std::move(param));
  }
  return sd;
}

namespace detail {
inline Param inflate_kernel(const Param& w2, int axis, const InflationScheme& s) {
  const int64_t o = w2.shape[0], in = w2.shape[1], a = w2.shape[2], b = w2.shape[3];
  const int64_t k = a;
  Shape shape3{o, in, a, b};
  shape3.insert(shape3.begin() + 2 + axis, k);
  Param w3{shape3, std::vector<double>(size_t(element_count(shape3)))};
  for (int64_t oi = 0; oi < o * in; ++oi)
    for (int64_t p = 0; p < a; ++p)
      for (int64_t q = 0; q < b; ++q) {
        const double v = w2.values[size_t((oi * a + p) * b + q)];
        for (int64_t t = 0; t < k; ++t) {
          // 3D index (i0, i1, i2) with the inflated axis at position `axis`
          const std::array<int64_t, 3> idx = axis == 0 ? std::array<int64_t, 3>{t, p, q}
                                             : axis == 1 ? std::array<int64_t, 3>{p, t, q}
                                                         : std::array<int64_t, 3>{p, q, t};
          w3.values[size_t(((oi * shape3[2] + idx[0]) * shape3[3] + idx[1]) * shape3[4] + idx[2])] = s.rule(v, t, k);
        }
      }
  return w3;
}

inline Param collapse_stem(const Param& w, const std::string& how) {
  if (how == "rgb") return w;
  if (how != "sum" && how != "mean") fail("unknown stem collapse '", how, "' (expected sum, mean or rgb)");
  const int64_t o = w.shape[0], in = w.shape[1], area = w.shape[2] * w.shape[3];
  Param out{{o, 1, w.shape[2], w.shape[3]}, std::vector<double>(size_t(o * area), 0.0)};
  for (int64_t i = 0; i < o; ++i)
    for (int64_t c = 0; c < in; ++c)
      for (int64_t p = 0; p < area; ++p) out.values[size_t(i * area + p)] += w.values[size_t((i * in + c) * area + p)];
  if (how == "mean")
    for (double& v : out.values) v /= double(in);
  return out;
}
}  // namespace detail

// sd2d: a validated torchvision export. Returns a 3D state_dict (same keys, 5-D conv weights).
inline StateDict inflate_state_dict(const StateDict& sd2d, const InflateOptions& opt) {
  const DenseNetConfig& c = detect_densenet(sd2d);
  validate_densenet_state_dict(sd2d, c, 2, sd2d.at("features.conv0.weight").shape[1]);
  const InflationScheme& scheme = inflation_scheme(opt.scheme);
  const int axis = axis_index(opt.axis);
  if (!scheme.rule) {
    StateDict r = random_state_dict(c, opt.seed, opt.stem == "rgb" ? 3 : 1);
    r.origin = sd2d.origin + " (architecture only) -> " + r.origin;
    return r;
  }
  StateDict sd3;
  sd3.origin = sd2d.origin + " inflated " + opt.scheme + " along " + "DHW"[axis];
  for (const auto& [key, p] : sd2d.params) {
    if (is_ignorable_key(key)) continue;
    if (p.shape.size() == 4) {
      const Param w2 = key == "features.conv0.weight" ? detail::collapse_stem(p, opt.stem) : p;
      sd3.params.emplace(key, detail::inflate_kernel(w2, axis, scheme));
    } else {
      sd3.params.emplace(key, p);
    }
  }
  return sd3;
}

}  // namespace volfeat
