// The volfeat command-line program: one binary, one subcommand per task.
#include <CLI/CLI.hpp>
#include <iostream>
#include <new>

#include "../weights/convert_command.hpp"
#include "cohort/merge_command.hpp"
#include "extract_command.hpp"
#include "report_command.hpp"
#include "sweep_command.hpp"
#include "landmarks_command.hpp"
#include "preprocess_command.hpp"
#include "volfeat/backend/cpu/isa.hpp"
#include "volfeat/core/error.hpp"
#include "volfeat/core/host_memory.hpp"
#include "volfeat/version.hpp"

// Before anything else runs (static initialisers included): a CPU without the instructions this
// binary was compiled for (a VOLFEAT_NATIVE=ON build moved to a lesser CPU) gets one line, not SIGILL.
VOLFEAT_TARGET_BASELINE __attribute__((constructor(101))) static void volfeat_check_cpu() {
  volfeat::cpu::exit_if_below_build_baseline("volfeat");
}

int main(int argc, char** argv) {
  volfeat::retain_freed_host_memory();  // freed activations stay for the next pass (core/host_memory.hpp)
  // VOLFEAT_CPU_ISA naming a level this CPU lacks, or no level at all, and VOLFEAT_HUGE_PAGES neither auto, on
  // nor off: one line.
  for (const std::string& problem : {volfeat::cpu::cpu_isa_problem(), volfeat::huge_pages_problem()})
    if (!problem.empty()) {
      std::cerr << "volfeat: error: " << problem << "\n";
      return 1;
    }
  CLI::App app{"volfeat " VOLFEAT_VERSION_STRING " - deep volumetric features from inflated 2D CNNs"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string(VOLFEAT_VERSION_STRING " (Cpu kernels: ") +
                                         volfeat::cpu::isa_name(volfeat::cpu::cpu_isa()) + ")");
  const std::string command = volfeat::cli::command_line(argc, argv);
  volfeat::cli::add_extract_command(app, command);
  volfeat::cli::add_sweep_command(app, command);
  volfeat::cli::add_report_command(app, command);
  volfeat::cli::add_convert_command(app);
  volfeat::cli::add_phantom_command(app);
  volfeat::cli::add_info_command(app);
  volfeat::cli::add_landmarks_command(app, command);
  volfeat::cli::add_preprocess_command(app, command);
  volfeat::cli::add_merge_command(app);
  try {
    app.parse(argc, argv);
  } catch (const volfeat::cli::CohortExit& e) {
    return e.status;  // a cohort in which some units failed (DIR/failures.csv): kExitSomeFailed
  } catch (const CLI::ParseError& e) {
    // --help and --version arrive as "errors" with exit code 0; a real one gets the one-line form.
    if (e.get_exit_code() == 0) return app.exit(e);
    std::cerr << "volfeat: error: " << e.what() << " (see --help)\n";
    return 1;
  } catch (const volfeat::Error& e) {
    std::cerr << "volfeat: error: " << e.what() << "\n";
    return 1;
  } catch (const std::bad_alloc&) {
    std::cerr << "volfeat: error: out of memory; shrink the input (--resample MM, --crop-to-labels MARGIN_MM) "
                 "or set --max-memory to be stopped before a run starts\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "volfeat: internal error: " << e.what() << "\n";
    return 2;
  }
  return 0;
}
