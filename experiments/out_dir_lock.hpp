#pragma once
// --wait-lock and the lock that every command writing into --out holds for its whole run
// (include/volfeat/core/dir_lock.hpp has the design): a second run on the same directory waits or
// refuses with one line naming the holder, instead of writing the same rows or files again.
#include <CLI/CLI.hpp>
#include <iostream>
#include <string>

#include "volfeat/core/dir_lock.hpp"

namespace volfeat::cli {

inline void add_wait_lock_option(CLI::App* cmd, double& seconds) {
  cmd->add_option("--wait-lock", seconds,
                  "when another run holds --out, wait up to SECONDS for it to finish (default 0: refuse at once)")
      ->capture_default_str();
}

// Held until the returned lock is destroyed (the end of the command, or an error).
inline DirLock lock_out_dir(const std::string& dir, double wait_seconds, const std::string& command) {
  if (!(wait_seconds >= 0)) fail("--wait-lock ", wait_seconds, ": expected >= 0 seconds");
  LockOptions o;
  o.wait_seconds = wait_seconds;
  o.command = command;
  // Not Progress::note: a stale lock taken over must be reported even with --quiet.
  o.note = [](const std::string& line) { std::cerr << "volfeat: " << line << "\n"; };
  return DirLock(dir, o);
}

}  // namespace volfeat::cli
