#pragma once
// This process's mappings as /proc/self/smaps lists them: address range, resident bytes and the
// kernel's VmFlags (e.g. "hg": advised as huge pages). For tests that check where memory lives.
#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace volfeat::test {

struct Mapping {
  std::uintptr_t lo = 0, hi = 0;  // [lo, hi)
  double rss_bytes = 0;
  std::string vm_flags;  // space-separated two-letter flags; empty where the kernel does not list them
  bool has_flag(const std::string& flag) const {
    std::istringstream in(vm_flags);
    for (std::string f; in >> f;)
      if (f == flag) return true;
    return false;
  }
};

inline std::vector<Mapping> read_smaps() {
  std::ifstream f("/proc/self/smaps");
  std::vector<Mapping> out;
  std::string line;
  while (std::getline(f, line)) {
    std::uintptr_t a = 0, b = 0;
    char dash = 0;
    std::istringstream head(line);
    if (head >> std::hex >> a >> dash >> b && dash == '-') {
      out.push_back({a, b, 0, ""});
      continue;
    }
    if (out.empty()) continue;
    if (line.rfind("Rss:", 0) == 0) out.back().rss_bytes = std::stod(line.substr(4)) * 1024;
    else if (line.rfind("VmFlags:", 0) == 0) out.back().vm_flags = line.substr(8);
  }
  return out;
}

}  // namespace volfeat::test
