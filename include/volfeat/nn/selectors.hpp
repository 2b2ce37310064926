#pragma once
// Layer selectors: a torchvision module name (with or without "features."), `conv[-k]` (the k-th
// conv from the end), or a container name such as `denseblock2` (that block's concatenated output).
#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

#include "volfeat/core/error.hpp"
#include "volfeat/nn/densenet_spec.hpp"

namespace volfeat {

inline size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

// The full module name a selector means; an unknown selector is an error naming close matches.
inline std::string resolve_layer(const std::vector<ModuleInfo>& modules, std::string_view selector) {
  const std::string s(selector);
  if (s.rfind("conv[-", 0) == 0 && s.size() > 7 && s.back() == ']') {
    const std::string digits = s.substr(6, s.size() - 7);
    if (!digits.empty() && std::all_of(digits.begin(), digits.end(), ::isdigit) && digits.size() < 5) {
      const size_t k = std::stoul(digits);
      std::vector<const ModuleInfo*> convs;
      for (const auto& m : modules)
        if (m.kind == ModuleKind::kConv) convs.push_back(&m);
      if (k >= 1 && k <= convs.size()) return convs[convs.size() - k]->name;
      fail("layer selector '", s, "': the network has ", convs.size(), " convs (conv[-1] .. conv[-", convs.size(), "])");
    }
  }
  const std::string full = s.rfind("features.", 0) == 0 ? s : "features." + s;
  for (const auto& m : modules)
    if (m.name == full) return m.name;

  std::vector<std::pair<size_t, std::string>> scored;
  for (const auto& m : modules) {
    const std::string shortname = m.name.substr(9);
    scored.emplace_back(std::min(edit_distance(full, m.name), edit_distance(s, shortname)), shortname);
  }
  std::sort(scored.begin(), scored.end());
  std::string close;
  for (size_t i = 0; i < std::min<size_t>(3, scored.size()); ++i) close += (i ? ", " : "") + scored[i].second;
  fail("unknown layer '", s, "'; close matches: ", close, " (also conv[-k], denseblockN, transitionN)");
}

// Named sets of layers from the reports.
inline std::vector<std::string> layer_preset(const std::string& name) {
  if (name == "denseblock4-tail")
    return {"denseblock4.denselayer15.conv2", "denseblock4.denselayer16.conv1", "denseblock4.denselayer16.conv2"};
  if (name == "last-3rd-5th") return {"conv[-1]", "conv[-3]", "conv[-5]"};
  if (name == "block-outputs") return {"denseblock2", "denseblock3", "denseblock4"};
  fail("unknown layer preset '", name, "' (known: denseblock4-tail, last-3rd-5th, block-outputs)");
}

}  // namespace volfeat
