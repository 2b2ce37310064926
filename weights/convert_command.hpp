#pragma once
// `volfeat convert`: a torchvision 2D export -> an inflated 3D .npz with provenance metadata.
#include <CLI/CLI.hpp>
#include <iostream>
#include <memory>

#include "inflate_options.hpp"
#include "volfeat/weights/load.hpp"

namespace volfeat::cli {

struct ConvertArgs {
  std::string in, out;
  InflateOptions inflate;
};

inline void run_convert(const ConvertArgs& a) {
  const StateDict sd2d = read_state_dict(a.in);
  if (conv_spatial_dims(sd2d) != 2)
    fail(a.in, ": already holds 3D conv weights (", stem_key(sd2d), " is ", shape_string(sd2d.at(stem_key(sd2d)).shape),
         "); convert takes a torchvision 2D export");
  check_weights_content(sd2d, graph_of(sd2d).arch(), 2);
  const StateDict sd3 = inflate_with_meta(sd2d, a.inflate, sha256_file(a.in));
  write_state_dict(a.out, sd3);
  const auto meta = state_dict_meta(sd3);
  std::cout << "wrote " << a.out << ": " << meta["arch"].get<std::string>() << " 3D, " << a.inflate.scheme
            << " along " << meta["axis"].get<std::string>() << ", stem " << a.inflate.stem << ", from "
            << weights_kind(sd2d) << " weights " << a.in << " (sha256 " << meta["source_sha256"].get<std::string>()
            << ")\n";
}

inline void add_convert_command(CLI::App& app) {
  auto args = std::make_shared<ConvertArgs>();
  CLI::App* cmd = app.add_subcommand("convert", "Inflate a torchvision .npz export (DenseNet, VGG, ResNet) to a 3D .npz");
  cmd->add_option("--in", args->in, "2D export from weights/export_torchvision.py")->required();
  cmd->add_option("--out", args->out, "3D weights to write (.npz)")->required();
  add_inflate_options(cmd, args->inflate);
  cmd->add_option("--seed", args->inflate.seed, "seed for --inflate random")->capture_default_str();
  cmd->callback([args] { run_convert(*args); });
}

}  // namespace volfeat::cli
