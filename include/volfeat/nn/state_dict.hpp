#pragma once
// A torch-style state_dict held on the host: name -> shaped array of floats (C order).
// float32 is what torchvision exports, what volfeat writes (write_state_dict) and what the fast
// network packs, so a float32 file is held exactly; derived values (an inflated kernel, a seeded
// draw) are computed in double and rounded once when stored. Floats halve the memory a seeded
// DenseNet-121 first-touches (11.3 M values: 45 MB instead of 90 MB) and the float network packs them
// without a double copy (bench/README.md, "The fixed cost"). Double networks (the reference tests)
// widen each value exactly when they pack it; a float64 file is rounded to float32 on load.
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
  std::vector<float> values;
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
