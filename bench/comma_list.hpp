#pragma once
// "a,b,c" -> {"a", "b", "c"} (empty items dropped), for the bench programs' list options.
#include <algorithm>
#include <string>
#include <vector>

inline std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  size_t p = 0;
  while (p <= s.size()) {
    const size_t q = std::min(s.find(',', p), s.size());
    if (q > p) out.push_back(s.substr(p, q - p));
    p = q + 1;
  }
  return out;
}
