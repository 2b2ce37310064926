#pragma once
// Layer selectors, for any architecture: a torchvision module name (with or without "features."),
// an alias the architecture defines (VGG's `conv2_2`), `conv[-k]` (the k-th conv from the end), or a
// container name such as `denseblock2` or `layer3` (that container's output).
#include <algorithm>
#include <cctype>
#include <string>
#include <string_view>
#include <vector>

#include "volfeat/core/error.hpp"
#include "volfeat/nn/architectures.hpp"
#include "volfeat/nn/graph.hpp"

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

// A module's name without DenseNet's `features.` prefix, for tables and messages. VGG's modules are
// numbered (`features.34`): a bare number would say nothing, so they keep it.
inline std::string short_module_name(const std::string& name) {
  if (name.rfind("features.", 0) != 0 || name.size() == 9 || std::isdigit(static_cast<unsigned char>(name[9]))) return name;
  return name.substr(9);
}

// The full module name a selector means; an unknown selector is an error naming close matches.
inline std::string resolve_layer(const Graph& g, std::string_view selector) {
  const std::string s(selector);
  const auto& modules = g.modules();
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
  if (g.find_module(s) >= 0) return s;
  if (g.find_module("features." + s) >= 0) return "features." + s;
  auto alias = g.aliases().find(s);
  if (alias != g.aliases().end()) {
    // The module the alias stands for (the paper's conv2_2 is torchvision's ReLU after that conv).
    for (const auto& m : modules)
      if (m.node == alias->second) return m.name;
  }

  auto short_name = [](const std::string& n) { return n.rfind("features.", 0) == 0 ? n.substr(9) : n; };
  std::vector<std::pair<size_t, std::string>> scored;
  for (const auto& m : modules)
    scored.emplace_back(std::min(edit_distance(s, m.name), edit_distance(s, short_name(m.name))), short_name(m.name));
  for (const auto& [a, node] : g.aliases()) scored.emplace_back(edit_distance(s, a), a);
  std::sort(scored.begin(), scored.end());
  std::string close;
  for (size_t i = 0; i < std::min<size_t>(3, scored.size()); ++i) close += (i ? ", " : "") + scored[i].second;
  fail("unknown layer '", s, "'; close matches: ", close, " (in ", g.arch(), "; also ", arch_family(g.arch()).selector_hint, ")");
}

// Named sets of layers (--preset) for `arch`'s family.
inline std::vector<std::string> layer_preset(const std::string& arch, const std::string& name) {
  const ArchFamily& f = arch_family(arch);
  std::string known;
  for (const auto& [n, layers] : f.presets) {
    if (n == name) return layers;
    known += (known.empty() ? "" : ", ") + n;
  }
  fail("unknown layer preset '", name, "' for ", arch, " (known: ", known, ")");
}

// The family's default preset (the first).
inline const std::string& default_preset(const std::string& arch) { return arch_family(arch).presets.front().first; }

}  // namespace volfeat
