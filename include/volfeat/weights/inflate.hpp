#pragma once
// Inflation of a 2D torchvision state_dict (any registered architecture: nn/architectures.hpp) to
// 3D: a registry of schemes, each a rule for turning a 2D conv kernel (O, I, a, b) into a 3D one
// (O, I, kD, kH, kW). Every 4-D conv weight is inflated; the stem is the graph's first conv.
//
// The 2D kernel's two axes become the two 3D axes other than the inflated one, in order:
//   axis D: (O, I, k, a, b)    axis H: (O, I, a, k, b)    axis W: (O, I, a, b, k)
// with k = a (the torchvision families' kernels are square). The stem's RGB input collapses to one channel first:
// `sum` (a gray volume then acts like a gray image replicated to RGB) or `mean`; or stays RGB
// (`rgb`), for inputs normalised per channel (ImageNet mean/std) where no collapse is exact.
#include <algorithm>
#include <functional>
#include <map>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "volfeat/core/error.hpp"
#include "volfeat/core/random.hpp"
#include "volfeat/core/shape.hpp"
#include "volfeat/nn/architectures.hpp"
#include "volfeat/weights/seeded_normal.hpp"

namespace volfeat {

// What becomes of the stem's RGB input: collapsed to one gray channel by summing (a gray volume then
// acts like a gray image replicated to RGB) or averaging, or kept (3 channels). Parsed from its name
// at the edge (--stem, the Python API, a report preset) by parse_stem_rule; everything below switches on it.
enum class StemRule { kSum, kMean, kRgb };

inline const char* stem_rule_name(StemRule r) {
  switch (r) {
    case StemRule::kSum: return "sum";
    case StemRule::kMean: return "mean";
    case StemRule::kRgb: return "rgb";
  }
  return "?";
}
inline const std::vector<std::string>& stem_rule_names() {
  static const std::vector<std::string> names{"sum", "mean", "rgb"};
  return names;
}
inline StemRule parse_stem_rule(const std::string& name) {
  if (name == "sum") return StemRule::kSum;
  if (name == "mean") return StemRule::kMean;
  if (name == "rgb") return StemRule::kRgb;
  fail("stem '", name, "': expected sum, mean or rgb");
}
inline std::ostream& operator<<(std::ostream& os, StemRule r) { return os << stem_rule_name(r); }
inline int64_t stem_channels(StemRule r) { return r == StemRule::kRgb ? 3 : 1; }

// How an ensemble's members' features are combined per region and layer (a scheme's property, not an option).
enum class CombineRule { kNone, kConcat, kMean };

struct InflateOptions {
  std::string scheme = "i3d-mean";
  char axis = 'D';                  // the inflated axis: D (slices), H or W
  StemRule stem = StemRule::kSum;   // conv0 input
  uint64_t seed = 0;                // for seeded schemes (random)
};

inline int axis_index(char axis) {
  switch (axis) {
    case 'D': case 'd': return 0;
    case 'H': case 'h': return 1;
    case 'W': case 'w': return 2;
  }
  fail("unknown axis '", axis, "' (expected D, H or W)");
}

// A scheme: how each 2D kernel becomes a 3D one. Most are a per-value rule along the inflated axis;
// ACS picks that axis per output channel; `shuffled` permutes the result; `random` ignores the 2D
// weights; the orientation ensembles are three networks whose features the pipeline combines.
struct InflationScheme {
  std::string formula;  // for --help and the README
  // weight value at inflated index t (of k) given the 2D value; null for `random` and ensembles. A plain
  // function, so that inflate_kernel can inline the registry's own rules.
  double (*rule)(double w2, Index t, Index k) = nullptr;
  // the inflated axis (0=D, 1=H, 2=W) of output channel o of O; empty: the --axis option
  std::function<int(Index o, Index out_channels, int axis)> channel_axis;
  bool shuffle = false;            // permute each inflated conv tensor (seeded)
  std::vector<std::string> members;  // ensemble: member schemes, run as separate networks
  CombineRule combine = CombineRule::kNone;  // ensemble: concat | mean (per region and layer)
};

namespace detail {
inline double mean_rule(double w2, Index, Index k) { return w2 / double(k); }
inline double centre_rule(double w2, Index t, Index k) { return t == k / 2 ? w2 : 0.0; }
inline std::function<int(Index, Index, int)> fixed_axis(int a) {
  return [a](Index, Index, int) { return a; };
}
// ACSConv's split of O output channels into axial, coronal and sagittal groups: sizes
// ceil(O/3), ceil((O - ceil(O/3))/2), and the rest.
inline int acs_group(Index o, Index out) {
  const Index g0 = (out + 2) / 3, g1 = (out - g0 + 1) / 2;
  return o < g0 ? 0 : o < g0 + g1 ? 1 : 2;
}
}  // namespace detail

inline const std::map<std::string, InflationScheme>& inflation_schemes() {
  using detail::centre_rule;
  using detail::mean_rule;
  constexpr CombineRule kNone = CombineRule::kNone;
  static const std::map<std::string, InflationScheme> schemes{
      {"i3d-mean", {"w3[..., t, ...] = w2 / k for every t < k along the inflated axis", mean_rule, {}, false, {}, kNone}},
      {"centre", {"w3[..., k//2, ...] = w2, zero elsewhere along the inflated axis", centre_rule, {}, false, {}, kNone}},
      {"random",
       {"torchvision's init in 3D, seeded: conv ~ N(0, 2/fan) with fan = I*kD*kH*kW (DenseNet) or O*kD*kH*kW "
        "(VGG, ResNet), conv bias 0, BN gamma=1 beta=0 "
        "mean=0 var=1 (no 2D weights used)",
        {}, {}, false, {}, kNone}},
      {"shuffled",
       {"i3d-mean, then each conv tensor's values permuted at random (seeded): same weight statistics, no "
        "learned structure",
        mean_rule, {}, true, {}, kNone}},
      {"acs",
       {"ACSConv: output channels split into 3 groups (ceil(O/3), ceil((O-ceil(O/3))/2), rest) whose 2D kernels "
        "lie in the H-W (axial), D-W (coronal) and D-H (sagittal) planes: centre along D, H and W respectively",
        centre_rule, [](Index o, Index out, int) { return detail::acs_group(o, out); }, false, {}, kNone}},
      {"orientation-D", {"i3d-mean along D (the paper's pseudo-3D transfer, one orientation)", mean_rule, detail::fixed_axis(0), false, {}, kNone}},
      {"orientation-H", {"i3d-mean along H", mean_rule, detail::fixed_axis(1), false, {}, kNone}},
      {"orientation-W", {"i3d-mean along W", mean_rule, detail::fixed_axis(2), false, {}, kNone}},
      {"orientations-concat",
       {"the three orientation-D/H/W networks run separately; features concatenated per region and layer",
        {}, {}, false, {"orientation-D", "orientation-H", "orientation-W"}, CombineRule::kConcat}},
      {"orientations-mean",
       {"the three orientation-D/H/W networks run separately; features averaged per region and layer",
        {}, {}, false, {"orientation-D", "orientation-H", "orientation-W"}, CombineRule::kMean}},
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

// torchvision's own initialisation of `arch`, in 3D: the "untrained" network of Avants et al. Conv
// weights ~ N(0, 2/fan) with fan = I*kD*kH*kW (fan_in, DenseNet) or O*kD*kH*kW (fan_out, VGG and
// ResNet), as kaiming_normal_ does for each family; conv biases 0; BatchNorm weight 1, bias 0,
// running mean 0, running var 1. Conv tensor `key` holds float(std * n_i), n_i the i-th value of the
// normal stream (seed, key) of weights/seeded_normal.hpp: the same whoever computes it, when and on
// how many threads. kNow computes the kernels in parallel (DenseNet-121: 11.3 M values, materialize);
// kOnUse leaves them to the network's build.
inline StateDict random_state_dict(const Graph& g, uint64_t seed, TensorValues when = TensorValues::kNow) {
  StateDict sd;
  sd.origin = "seeded random init (" + g.arch() + ", seed " + std::to_string(seed) + ")";
  const bool fan_in = g.conv_init() == ConvInit::kFanIn;
  for (const ParamSpec& p : g.params(3)) {
    Param& param = sd.params.emplace(p.key, Param{p.shape, {}, {}}).first->second;
    if (p.shape.size() == 5) {
      // fan_in = I*kD*kH*kW = count/O; fan_out = O*kD*kH*kW = count/I
      const int64_t count = element_count(p.shape);
      const int64_t fan = count / (fan_in ? p.shape[0] : p.shape[1]);
      param.compute = [std_dev = std::sqrt(2.0 / double(fan)), normals = SeededNormals(seed, p.key), count](float* v) {
        for (int64_t i = 0; i < count; ++i) v[i] = float(std_dev * normals.normal(size_t(i)));
      };
    } else {
      const auto leaf = p.key.substr(p.key.rfind('.') + 1);
      param.values.assign(size_t(element_count(p.shape)), (leaf == "weight" || leaf == "running_var") ? 1.0f : 0.0f);
    }
  }
  if (when == TensorValues::kNow) materialize(sd);
  return sd;
}
inline StateDict random_state_dict(const std::string& arch, uint64_t seed, int64_t stem_in = 1,
                                   TensorValues when = TensorValues::kNow) {
  return random_state_dict(build_graph(arch, stem_in), seed, when);
}

namespace detail {
// inflate_kernel's loops, for one rule (a lambda the compiler inlines, or a function pointer).
// w2: the 2D values, indexable (const float*, const double*, FloatBytes).
template <class Values, class Rule>
void inflate_kernel_values(const Shape& shape, Values w2, int axis, const InflationScheme& s, Rule rule, float* w3) {
  const int64_t o = shape[0], in = shape[1], k = shape[2];
  // 3D strides (D, H, W) of the kernel's (p, q, t) for inflated axis 0, 1, 2: p and q keep their order in
  // the two axes left, t runs along the inflated one.
  auto strides = [k](int ax) {
    return ax == 0 ? std::array<int64_t, 3>{k, 1, k * k} : ax == 1 ? std::array<int64_t, 3>{k * k, 1, k}
                                                                   : std::array<int64_t, 3>{k * k, k, 1};
  };
  for (int64_t oc = 0; oc < o; ++oc) {
    const auto st = strides(s.channel_axis ? s.channel_axis(oc, o, axis) : axis);
    for (int64_t ic = 0; ic < in; ++ic) {
      const int64_t src = (oc * in + ic) * k * k;     // (p, q) in w2
      float* dst = w3 + (oc * in + ic) * k * k * k;  // (D, H, W)
      for (int64_t p = 0; p < k; ++p)
        for (int64_t q = 0; q < k; ++q) {
          const double v = double(w2[size_t(src + p * k + q)]);
          for (int64_t t = 0; t < k; ++t) dst[p * st[0] + q * st[1] + t * st[2]] = float(rule(v, t, k));
        }
    }
  }
}

// (O, I, a, b) -> (O, I, k, k, k): output channel o's 2D kernel lies in the two axes other than its
// inflated axis, in order, and the rule fills the inflated one. w2: float (a 2D export) or double (a
// collapsed stem); the rule runs in double and each value is rounded once to the StateDict's float.
// The registry's two rules are inlined (through a function pointer, DenseNet-121's 11 M values took
// 0.05 s of its 0.1 s load: perf put 38 % of inflation in the call and the rule). The shape is checked
// by inflated_shape, when the tensor is described.
template <class Values>
void inflate_kernel(const Shape& shape, Values w2, int axis, const InflationScheme& s, float* w3) {
  if (s.rule == &mean_rule)
    inflate_kernel_values(shape, w2, axis, s, [](double v, Index t, Index n) { return mean_rule(v, t, n); }, w3);
  else if (s.rule == &centre_rule)
    inflate_kernel_values(shape, w2, axis, s, [](double v, Index t, Index n) { return centre_rule(v, t, n); }, w3);
  else
    inflate_kernel_values(shape, w2, axis, s, s.rule, w3);
}

// (O, I, k, k, k) for a square 2D kernel (O, I, k, k); I is 1 for a stem collapsed to gray.
inline Shape inflated_shape(const Shape& shape2d, int64_t in) {
  if (shape2d[2] != shape2d[3]) fail("inflation: non-square kernel ", shape_string(shape2d));
  return {shape2d[0], in, shape2d[2], shape2d[2], shape2d[2]};
}

// Fisher-Yates with volfeat's portable Rng.
inline void shuffle_values(std::vector<float>& v, Rng& rng) {
  for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[size_t(rng.below(i))]);
}

// The stem's 2D kernel with its RGB input collapsed (sum, mean: (O, 1, a, b), in double so that the
// inflation rounds once) or kept (rgb).
inline std::vector<double> collapse_stem(const Param& w, StemRule how, Shape& shape) {
  shape = w.shape;
  std::vector<double> out;
  const int64_t o = w.shape[0], in = w.shape[1], area = w.shape[2] * w.shape[3];
  w.with_values([&](auto v) {
    if (how == StemRule::kRgb) {
      for (size_t i = 0, n = w.size(); i < n; ++i) out.push_back(double(v[i]));
      return;
    }
    out.assign(size_t(o * area), 0.0);
    for (int64_t i = 0; i < o; ++i)
      for (int64_t c = 0; c < in; ++c)
        for (int64_t p = 0; p < area; ++p) out[size_t(i * area + p)] += double(v[size_t((i * in + c) * area + p)]);
  });
  if (how == StemRule::kRgb) return out;
  shape[1] = 1;
  if (how == StemRule::kMean)
    for (double& v : out) v /= double(in);
  return out;
}
}  // namespace detail

// sd2d: a torchvision export (validated here). Returns a 3D state_dict (same keys, 5-D conv weights).
// kOnUse: the conv kernels are computed by the network's build, from sd2d, which the result holds
// (`source`); kNow computes them here, in parallel. A shuffled scheme's permutation draws from one seeded
// stream across the kernels in key order, so its kernels are always computed now.
inline StateDict inflate_state_dict(std::shared_ptr<const StateDict> sd2d, const InflateOptions& opt,
                                   TensorValues when = TensorValues::kNow) {
  const Graph g = graph_of(*sd2d);
  const std::string stem = g.node(g.first_conv()).name + ".weight";
  const ArchFamily& family = arch_family(g.arch());
  const InflationScheme& scheme = inflation_scheme(opt.scheme);
  const int axis = axis_index(opt.axis);
  if (!scheme.members.empty())
    fail("inflation scheme ", opt.scheme, " is an ensemble of ", scheme.members.size(),
         " networks: run each member (scheme_members) and combine their features");
  if (!scheme.rule) {
    StateDict r = random_state_dict(g.arch(), opt.seed, stem_channels(opt.stem), when);
    r.origin = sd2d->origin + " (architecture only) -> " + r.origin;
    return r;
  }
  StateDict sd3;
  sd3.origin = sd2d->origin + " inflated " + opt.scheme + " along " + "DHW"[axis];
  std::vector<std::string> kernels;
  for (const auto& [key, p] : sd2d->params) {
    if (is_ignorable_key(family, key)) continue;
    if (p.shape.size() != 4) {
      sd3.params.emplace(key, p);
      continue;
    }
    kernels.push_back(key);
    const Param* w2 = &p;  // in sd3.source, which outlives every computation
    const InflationScheme* rule = &scheme;  // the registry's (static) entry
    if (key == stem) {
      const StemRule how = opt.stem;
      sd3.params[key] = Param{detail::inflated_shape(p.shape, how == StemRule::kRgb ? p.shape[1] : 1), {},
                              [w2, how, axis, rule](float* out) {
                                Shape shape;
                                const std::vector<double> collapsed = detail::collapse_stem(*w2, how, shape);
                                detail::inflate_kernel(shape, collapsed.data(), axis, *rule, out);
                              }};
    } else {
      sd3.params[key] = Param{detail::inflated_shape(p.shape, p.shape[1]), {},
                              [w2, axis, rule](float* out) {
                                w2->with_values([&](auto v) { detail::inflate_kernel(w2->shape, v, axis, *rule, out); });
                              }};
    }
  }
  sd3.source = std::move(sd2d);
  if (when == TensorValues::kNow || scheme.shuffle) materialize(sd3);
  if (scheme.shuffle) {
    Rng rng(opt.seed);
    for (const auto& key : kernels) detail::shuffle_values(sd3.params.at(key).values, rng);
  }
  return sd3;
}

// The same for a StateDict the caller keeps: computed now (copying sd2d would cost more than that).
inline StateDict inflate_state_dict(const StateDict& sd2d, const InflateOptions& opt) {
  // A non-owning pointer: materialize() lets go of it before this returns.
  StateDict sd3 = inflate_state_dict(std::shared_ptr<const StateDict>(&sd2d, [](const StateDict*) {}), opt,
                                     TensorValues::kNow);
  return sd3;
}

// The networks a scheme runs: itself, or an ensemble's members (same axis/stem/seed options).
inline std::vector<InflateOptions> scheme_members(const InflateOptions& opt) {
  const InflationScheme& s = inflation_scheme(opt.scheme);
  if (s.members.empty()) return {opt};
  std::vector<InflateOptions> out;
  for (const auto& m : s.members) {
    InflateOptions o = opt;
    o.scheme = m;
    out.push_back(o);
  }
  return out;
}

// An ensemble's per-region, per-layer feature vector from its members' vectors.
inline std::vector<double> combine_member_features(const std::string& scheme, const std::vector<std::vector<double>>& parts) {
  const InflationScheme& s = inflation_scheme(scheme);
  if (parts.size() == 1 && s.members.empty()) return parts[0];
  std::vector<double> out;
  switch (s.combine) {
    case CombineRule::kConcat:
      for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
      break;
    case CombineRule::kMean:
      out.assign(parts[0].size(), 0.0);
      for (const auto& p : parts)
        for (size_t i = 0; i < p.size(); ++i) out[i] += p[i] / double(parts.size());
      break;
    case CombineRule::kNone:
      fail("inflation scheme ", scheme, " is one network: its ", parts.size(), " feature vectors cannot be combined");
  }
  return out;
}

}  // namespace volfeat
