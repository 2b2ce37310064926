#pragma once
// The architecture registry: every family volfeat can build (one file each under nn/arch/), and what
// reads a state_dict against them: which architecture it holds, whether its keys and shapes are
// exactly that architecture's, 2D or 3D. Adding an architecture: a file like nn/arch/vgg.hpp and
// its line in arch_families().
#include <map>
#include <string>
#include <vector>

#include "volfeat/nn/arch/densenet.hpp"
#include "volfeat/nn/arch/resnet.hpp"
#include "volfeat/nn/arch/vgg.hpp"
#include "volfeat/nn/graph.hpp"
#include "volfeat/nn/state_dict.hpp"

namespace volfeat {

inline const std::vector<ArchFamily>& arch_families() {
  static const std::vector<ArchFamily> families{densenet_family(), vgg_family(), resnet_family()};
  return families;
}

inline std::string known_archs() {
  std::string s;
  for (const auto& f : arch_families())
    for (const auto& a : f.archs) s += (s.empty() ? "" : ", ") + a;
  return s;
}

inline const ArchFamily& arch_family(const std::string& arch) {
  for (const auto& f : arch_families())
    for (const auto& a : f.archs)
      if (a == arch) return f;
  fail("unknown architecture '", arch, "' (known: ", known_archs(), ")");
}

inline Graph build_graph(const std::string& arch, Index stem_in = 1) { return arch_family(arch).build(arch, stem_in); }

// The family whose stem key the state_dict holds.
inline const ArchFamily& state_dict_family(const StateDict& sd) {
  for (const auto& f : arch_families())
    if (sd.has(f.stem_key)) return f;
  std::string stems;
  for (const auto& f : arch_families()) stems += (stems.empty() ? "" : ", ") + f.stem_key + " (" + f.name + ")";
  fail(sd.origin, ": not a state_dict of a known architecture: it has none of the stem keys ", stems);
}

// Which architecture a state_dict holds (torchvision's keys; volfeat metadata not needed).
inline std::string detect_arch(const StateDict& sd) { return state_dict_family(sd).detect(sd); }

// Keys a torchvision state_dict may hold beyond the feature extractor's tensors: BN step counters,
// the classifier / fc head (unused here) and volfeat's metadata entry.
inline bool is_ignorable_key(const ArchFamily& f, const std::string& key) {
  const std::string tail = ".num_batches_tracked";
  if (key.size() >= tail.size() && key.compare(key.size() - tail.size(), tail.size(), tail) == 0) return true;
  for (const auto& p : f.head_prefixes)
    if (key.rfind(p, 0) == 0) return true;
  return key == "volfeat_meta";
}

// The stem conv's weight key of the state_dict's family.
inline const std::string& stem_key(const StateDict& sd) { return state_dict_family(sd).stem_key; }

// 2 for a torchvision export, 3 for an inflated one; a file mixing the two is rejected.
inline int conv_spatial_dims(const StateDict& sd) {
  const std::string& key = stem_key(sd);
  const Param& stem = sd.at(key);
  const int dims = static_cast<int>(stem.shape.size()) - 2;
  if (dims != 2 && dims != 3)
    fail(sd.origin, ": ", key, " has shape ", shape_string(stem.shape), ", expected a 4-D (2D export) or 5-D (3D) conv weight");
  for (const auto& [k, p] : sd.params) {
    const bool conv = k.size() > 7 && k.compare(k.size() - 7, 7, ".weight") == 0 && p.shape.size() >= 4;
    if (conv && static_cast<int>(p.shape.size()) - 2 != dims)
      fail(sd.origin, ": mixes 2D and 3D conv weights (", key, " is ", dims + 2, "-D, ", k, " is ", p.shape.size(), "-D)");
  }
  return dims;
}

// Every key of the graph present with its exact shape, nothing unexpected; errors name the file,
// the key and both shapes.
inline void validate_state_dict(const StateDict& sd, const Graph& g, int spatial_dims) {
  const ArchFamily& family = arch_family(g.arch());
  const auto specs = g.params(spatial_dims);
  std::map<std::string, const Shape*> expected;
  for (const auto& s : specs) expected[s.key] = &s.shape;
  for (const auto& s : specs) {
    auto it = sd.params.find(s.key);
    if (it == sd.params.end())
      fail(sd.origin, ": missing key ", s.key, " (expected shape ", shape_string(s.shape), ")");
    if (it->second.shape != s.shape)
      fail(sd.origin, ": key ", s.key, " has shape ", shape_string(it->second.shape), ", expected ", shape_string(s.shape));
    if (!it->second.deferred() && static_cast<int64_t>(it->second.size()) != element_count(s.shape))
      fail(sd.origin, ": key ", s.key, " holds ", it->second.size(), " values for shape ", shape_string(s.shape));
  }
  for (const auto& [key, p] : sd.params)
    if (!expected.count(key) && !is_ignorable_key(family, key))
      fail(sd.origin, ": unexpected key ", key, " (shape ", shape_string(p.shape), ") for ", g.arch());
}

// The graph a state_dict's tensors describe (architecture detected, stem channels read), validated.
inline Graph graph_of(const StateDict& sd) {
  const ArchFamily& f = state_dict_family(sd);
  const int dims = conv_spatial_dims(sd);
  Graph g = f.build(f.detect(sd), sd.at(f.stem_key).shape[1]);
  validate_state_dict(sd, g, dims);
  return g;
}

}  // namespace volfeat
