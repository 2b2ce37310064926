#pragma once
// The networks of the landmark grid: per inflation scheme, one network or an ensemble's members,
// inflated from one 2D state_dict (torchvision's export or volfeat's seeded 2D init).
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "volfeat/core/error.hpp"
#include "volfeat/core/random.hpp"
#include "volfeat/nn/network.hpp"
#include "volfeat/weights/load.hpp"

namespace volfeat {

// One network of a scheme (an ensemble has several).
template <class Backend, class T>
struct SchemeNetworks {
  std::string scheme;
  std::vector<std::string> members;  // member scheme names, one per network
  std::vector<std::shared_ptr<const Network<Backend, T>>> nets;
  std::string description;           // what the weights are
};


// torchvision's initialisation of `arch` in 2D (kaiming-normal convs, N(0, 2 / fan) with the family's
// fan as in random_state_dict; BN gamma=1, beta=0, mean 0, var 1), seeded with volfeat's portable Rng,
// with an RGB stem: the 2D network the inflation schemes start from when no --weights are given. NOT
// pretrained, and not torchvision's own draw either (weights/export_torchvision.py --seed writes that one).
inline StateDict seeded_2d_init(const std::string& arch, uint64_t seed) {
  const Graph g = build_graph(arch, 3);
  StateDict sd;
  sd.origin = "volfeat's seeded 2D init (" + arch + ", seed " + std::to_string(seed) + ")";
  Rng rng(seed ^ 0x9e3779b97f4a7c15ULL);  // a different stream from the 3D random scheme's
  for (const ParamSpec& p : g.params(2)) {
    Param param{p.shape, std::vector<float>(size_t(element_count(p.shape)))};
    const auto leaf = p.key.substr(p.key.rfind('.') + 1);
    if (p.shape.size() == 4) {
      const int64_t fan = element_count(p.shape) / (g.conv_init() == ConvInit::kFanIn ? p.shape[0] : p.shape[1]);
      const double std_dev = std::sqrt(2.0 / double(fan));
      for (float& v : param.values) v = float(std_dev * rng.normal());
    } else {
      std::fill(param.values.begin(), param.values.end(), (leaf == "weight" || leaf == "running_var") ? 1.0f : 0.0f);
    }
    sd.params.emplace(p.key, std::move(param));
  }
  const nlohmann::json meta{{"format", "volfeat-weights"}, {"dims", 2},  {"arch", arch},
                            {"source", "volfeat-seeded-2d-init"}, {"seed", seed}, {"weights_kind", "volfeat-seeded-2d-init"}};
  sd.meta_json = meta.dump();
  return sd;
}

// The networks of each scheme, inflated from one 2D state_dict: a single network, or an ensemble's
// members (scheme_members) whose features are combined per patch (combine_member_features).
template <class Backend, class T>
std::vector<SchemeNetworks<Backend, T>> inflate_scheme_networks(const StateDict& sd2d, const std::vector<std::string>& schemes,
                                                                const InflateOptions& base, const std::string& source_sha256,
                                                                const Backend& device = {}, const BuildUpTo& extent = {}) {
  std::vector<SchemeNetworks<Backend, T>> out;
  for (const auto& name : schemes) {
    inflation_scheme(name);  // an unknown name is an error that lists the known ones
    InflateOptions opt = base;
    opt.scheme = name;
    SchemeNetworks<Backend, T> s;
    s.scheme = name;
    for (const InflateOptions& m : scheme_members(opt)) {
      StateDict sd3 = inflate_with_meta(sd2d, m, source_sha256);
      s.members.push_back(m.scheme);
      s.nets.push_back(std::make_shared<const Network<Backend, T>>(sd3, kReleaseWeights, device, extent));
      if (s.description.empty()) s.description = weights_kind(sd3);
    }
    s.description = name + (s.members.size() > 1 ? " (" + std::to_string(s.members.size()) + " networks)" : "") +
                    ": " + s.description;
    out.push_back(std::move(s));
  }
  return out;
}


}  // namespace volfeat
