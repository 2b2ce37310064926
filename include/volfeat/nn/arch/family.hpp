#pragma once
// What the registry (nn/architectures.hpp) knows of one torchvision family: its configs, how to tell
// them apart from a state_dict's keys, how to build each one's graph, its layer presets. Each family
// is described once, in its own file under nn/arch/.
#include <array>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "volfeat/nn/graph.hpp"
#include "volfeat/nn/state_dict.hpp"

namespace volfeat {

struct ArchFamily {
  std::string name;                 // "DenseNet"
  std::vector<std::string> archs;   // the --arch names, e.g. densenet121
  std::string stem_key;             // the first conv's weight: how a state_dict says it is of this family
  std::vector<std::string> head_prefixes;  // torchvision keys outside the feature extractor (classifier, fc)
  // The config a state_dict of this family holds (fails with a message naming what it saw).
  std::function<std::string(const StateDict&)> detect;
  // The graph of `arch` with a stem taking `stem_in` channels.
  std::function<Graph(const std::string& arch, Index stem_in)> build;
  // What distinguishes `arch` within the family, for messages ("dense layers per block 6,12,24,16").
  std::function<std::string(const std::string& arch)> describe;
  // Named layer sets (--preset); the first is the default.
  std::vector<std::pair<std::string, std::vector<std::string>>> presets;
  // The landmark experiment's depth aliases shallow, mid and deep (--layers), as selectors.
  std::array<std::string, 3> depth_layers;
  std::string selector_hint;        // for "unknown layer" messages: the short forms this family takes
  std::string layer_doc;            // for the README and --help: how its modules are named
};

// The number of consecutive `prefix<i>suffix` keys from i = first.
inline int count_keys(const StateDict& sd, const std::string& prefix, const std::string& suffix, int first = 1) {
  int n = 0;
  while (sd.has(prefix + std::to_string(first + n) + suffix)) ++n;
  return n;
}

}  // namespace volfeat
