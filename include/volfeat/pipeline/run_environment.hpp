#pragma once
// The fields every run.json shares (extract's run.json, preprocess's run.json, landmarks_run.json):
// which volfeat computed the outputs, on which backend and kernels, with how many threads. The same
// numbers can differ in their last bits between backends and between the Cpu kernel sets
// (VOLFEAT_CPU_ISA), so a result file that is to be compared with another has to say which it used.
// huge_pages (VOLFEAT_HUGE_PAGES) changes no number, only the time per stage, which run.json records too.
#include <nlohmann/json.hpp>
#include <string>

#include "volfeat/backend/cpu/isa.hpp"
#include "volfeat/core/host_blocks.hpp"
#include "volfeat/version.hpp"

namespace volfeat {

inline nlohmann::json run_environment(const std::string& backend, int threads) {
  return {{"volfeat_version", VOLFEAT_VERSION_STRING},
          {"backend", backend},
          {"threads", threads},
          {"cpu_isa", cpu::isa_name(cpu::cpu_isa())},  // the Cpu kernels' instruction set (VOLFEAT_CPU_ISA forces one)
          {"huge_pages", huge_pages_wanted()}};         // large blocks advised as huge pages (VOLFEAT_HUGE_PAGES)
}

}  // namespace volfeat
