#pragma once
// `volfeat report --preset NAME`: one of the reports' tables (experiments/reports/NAME.json, compiled
// in), with that report's settings (mask-input, global average pooling, i3d-mean, stem sum, its label
// values), printed in the report's shape, next to the published numbers where there are any. Every
// setting can be overridden on the command line; the outputs are extract's.
#include <CLI/CLI.hpp>
#include <iomanip>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>

#include "extract_command.hpp"

namespace volfeat::cli {

inline const std::map<std::string, std::string>& report_presets() {
  static const std::map<std::string, std::string> presets{
#include "report_presets.inc"
  };
  return presets;
}

inline nlohmann::json report_preset(const std::string& name) {
  auto it = report_presets().find(name);
  if (it == report_presets().end()) {
    std::string known;
    for (const auto& [n, _] : report_presets()) known += (known.empty() ? "" : ", ") + n;
    fail("unknown report preset '", name, "' (known: ", known, ")");
  }
  return nlohmann::json::parse(it->second);
}

// The preset's settings wherever the command line did not set them.
inline void apply_report_preset(CLI::App* cmd, const nlohmann::json& p, CommonArgs& a) {
  ExtractOptions& e = a.extract;
  auto unset = [&](const char* opt) { return cmd->count(opt) == 0; };
  if (unset("--labels")) e.labels = p["labels"];
  if (unset("--mode")) e.mode = ExtractMode(p["mode"].get<std::string>());
  if (unset("--pool")) e.pool = p["pool"];
  if (unset("--normalize")) e.normalize = p["normalize"];
  if (unset("--inflate")) e.inflate.scheme = p["scheme"];
  if (unset("--axis")) e.inflate.axis = p["axis"].get<std::string>()[0];
  if (unset("--stem")) e.inflate.stem = parse_stem_rule(p["stem"].get<std::string>());
  if (unset("--layers")) e.layers = p["layers"].get<std::vector<std::string>>();
}

inline void print_report(std::ostream& os, const nlohmann::json& p, const SimilarityTable& t, bool preset_layers) {
  std::vector<std::string> cols;
  for (size_t l = 0; l < t.layers.size(); ++l)
    cols.push_back(preset_layers ? p["columns"][l].get<std::string>() : short_layer(t.layers[l]));
  size_t w = 26;
  for (const auto& c : cols) w = std::max(w, c.size() + 2);
  const bool published = !p["published"].is_null() && preset_layers;
  os << p["title"].get<std::string>() << "\n\n" << std::left << std::setw(22) << "pair";
  for (const auto& c : cols) os << std::right << std::setw(int(w)) << c;
  os << "\n";
  for (size_t r = 0; r < t.pairs.size(); ++r) {
    os << std::left << std::setw(22) << t.pairs[r];
    for (size_t l = 0; l < cols.size(); ++l) {
      std::ostringstream cell;
      cell << std::fixed << std::setprecision(4) << t.value[r][l];
      if (published && p["published"]["rows"].contains(t.pairs[r]))
        cell << " (pub. " << std::fixed << std::setprecision(4) << p["published"]["rows"][t.pairs[r]][l].get<double>() << ")";
      os << std::right << std::setw(int(w)) << cell.str();
    }
    os << "\n";
  }
  if (published)
    os << "\n(pub.) = the published value, from " << p["published"]["weights"].get<std::string>()
       << ": a different CT and different weights, shown for the table's shape, not for agreement.\n";
}

inline void add_report_command(CLI::App& app, const std::string& command) {
  auto a = std::make_shared<CommonArgs>();
  CLI::App* cmd = app.add_subcommand("report", "Reproduce a report's table: --preset denseblock4-tail | last-3rd-5th | block-outputs");
  add_common_options(cmd, *a);
  cmd->callback([a, cmd, command] {
    if (a->extract.preset.empty()) fail("report needs --preset (denseblock4-tail, last-3rd-5th or block-outputs)");
    const nlohmann::json p = report_preset(a->extract.preset);
    const std::string name = a->extract.preset;
    a->extract.preset.clear();  // the layers come from the preset file, not a layer preset
    finish_common_options(cmd, *a);
    apply_report_preset(cmd, p, *a);
    if (a->out == "volfeat_out") a->out = "volfeat_report_" + name;
    const DirLock lock = lock_out_dir(a->out, a->wait_lock, command);
    Progress progress(a->quiet);
    ExtractRun r = run_extract<CliBackend>(a->extract, progress, command);
    write_extract_outputs(a->out, r);
    print_report(std::cout, p, r.table, cmd->count("--layers") == 0);
    std::cout << "\nweights: " << r.weights.description << "; " << r.features.forward_passes << " forward passes; wrote "
              << a->out << "/\n";
  });
}

}  // namespace volfeat::cli
