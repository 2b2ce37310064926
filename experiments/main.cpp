// The volfeat command-line program: one binary, one subcommand per task.
#include <CLI/CLI.hpp>
#include <iostream>

#include "../weights/convert_command.hpp"
#include "extract_command.hpp"
#include "volfeat/core/error.hpp"
#include "volfeat/version.hpp"

int main(int argc, char** argv) {
  CLI::App app{"volfeat " VOLFEAT_VERSION_STRING " - deep volumetric features from inflated 2D CNNs"};
  app.require_subcommand(1);
  app.set_version_flag("--version", VOLFEAT_VERSION_STRING);
  const std::string command = volfeat::cli::command_line(argc, argv);
  volfeat::cli::add_extract_command(app, command);
  volfeat::cli::add_convert_command(app);
  volfeat::cli::add_phantom_command(app);
  volfeat::cli::add_info_command(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const volfeat::Error& e) {
    std::cerr << "volfeat: error: " << e.what() << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "volfeat: internal error: " << e.what() << "\n";
    return 2;
  }
  return 0;
}
