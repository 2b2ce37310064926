#pragma once
// The fields every run.json shares (extract's run.json, preprocess's run.json, landmarks_run.json):
// which volfeat computed the outputs, on which backend and kernels, with how many threads. The same
// numbers can differ in their last bits between backends and between the Cpu kernel sets
// (VOLFEAT_CPU_ISA), so a result file that is to be compared with another has to say which it used.
// huge_pages (VOLFEAT_HUGE_PAGES) changes no number, only the time per stage, which run.json records too;
// under auto, with what decided it.
#include <nlohmann/json.hpp>
#include <string>

#include "volfeat/backend/cpu/isa.hpp"
#include "volfeat/core/host_blocks.hpp"
#include "volfeat/version.hpp"

namespace volfeat {

inline nlohmann::json run_environment(const std::string& backend, int threads) {
  const HugePageChoice& hp = huge_page_choice();
  nlohmann::json j = {{"volfeat_version", VOLFEAT_VERSION_STRING},
                      {"backend", backend},
                      {"threads", threads},
                      {"cpu_isa", cpu::isa_name(cpu::cpu_isa())},  // the Cpu kernels' instruction set (VOLFEAT_CPU_ISA forces one)
                      {"huge_pages", hp.on},  // large blocks advised as huge pages
                      {"huge_pages_mode", huge_page_mode_name(hp.mode)}};  // VOLFEAT_HUGE_PAGES
  if (hp.mode == HugePageMode::kAuto) j["huge_pages_reason"] = hp.reason;
  return j;
}

}  // namespace volfeat
