#pragma once
// A torch-style state_dict held on the host: name -> shaped array of doubles (C order).
// Doubles hold every float32 value exactly, so loading, inflating and re-saving never rounds twice.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "volfeat/core/error.hpp"
#include "volfeat/io/npy.hpp"

namespace volfeat {

using Shape = std::vector<int64_t>;  // shape_string() (numpy's repr) comes from npy.hpp

inline int64_t element_count(const Shape& s) {
  int64_t n = 1;
  for (int64_t e : s) n *= e;
  return n;
}

struct Param {
  Shape shape;
  std::vector<double> values;
};

struct StateDict {
  std::map<std::string, Param> params;
  std::string meta_json;  // the `volfeat_meta` entry, "" when the file has none
  std::string origin;     // where it came from, for messages (a path, or "seeded random init")

  const Param& at(const std::string& key) const {
    auto it = params.find(key);
    if (it == params.end()) fail(origin, ": missing key ", key);
    return it->second;
  }
  bool has(const std::string& key) const { return params.count(key) != 0; }
};

}  // namespace volfeat
