#pragma once
// The inflation options shared by `volfeat convert` and every command that takes --weights, so the
// two always have the same names and defaults.
#include <CLI/CLI.hpp>
#include <string>

#include "volfeat/weights/inflate.hpp"

namespace volfeat::cli {

inline std::string scheme_list() {
  std::string s;
  for (const auto& [name, scheme] : inflation_schemes()) s += "\n  " + name + ": " + scheme.formula;
  return s;
}

// --stem NAME parsed here, at the edge, into the StemRule the inflation switches on; CLI11's IsMember
// check names an unknown value in one line before the callback runs.
inline CLI::Option* add_stem_option(CLI::App* cmd, StemRule& stem, const std::string& help) {
  return cmd
      ->add_option_function<std::string>(
          "--stem", [&stem](const std::string& name) { stem = parse_stem_rule(name); }, help)
      ->default_str(stem_rule_name(stem))
      ->check(CLI::IsMember(stem_rule_names()));
}

inline void add_inflate_options(CLI::App* cmd, InflateOptions& opt) {
  cmd->add_option("--inflate", opt.scheme, "2D->3D inflation scheme (for 2D exports):" + scheme_list())
      ->capture_default_str()
      ->check(CLI::IsMember([] {
        std::vector<std::string> names;
        for (const auto& [n, _] : inflation_schemes()) names.push_back(n);
        return names;
      }()));
  cmd->add_option("--axis", opt.axis, "inflated axis: D (slices), H or W")->capture_default_str()->check(
      CLI::IsMember({'D', 'H', 'W'}));
  add_stem_option(cmd, opt.stem, "conv0 input: sum (gray = replicated RGB), mean, or rgb (3 channels, for --normalize imagenet)");
}

}  // namespace volfeat::cli
