#pragma once
// A torch-style state_dict held on the host: name -> shaped array of floats (C order).
// float32 is what torchvision exports, what volfeat writes (write_state_dict) and what the fast
// network packs, so a float32 file is held exactly; derived values (an inflated kernel, a seeded
// draw) are computed in double and rounded once when stored. Floats halve the memory a seeded
// DenseNet-121 first-touches (11.3 M values: 45 MB instead of 90 MB) and the float network packs them
// without a double copy (bench/README.md, "The fixed cost"). Double networks (the reference tests)
// widen each value exactly when they pack it; a float64 file is rounded to float32 on load.
#include <algorithm>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
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

// A tensor: its values, or how to compute them when they are used (`compute`, with `values` empty). A
// seeded or inflated conv kernel can be deferred (TensorValues::kOnUse): the network's build computes
// each into a buffer its thread reuses and packs it from there, so a whole 3D network of values is never
// written beside the packed one. (DenseNet-121: 45 MB that a fresh process no longer first-touches;
// bench/README.md, "Conv kernels computed where they are packed".) materialize() computes them in place.
struct Param {
  Shape shape;
  std::vector<float> values;
  std::function<void(float* out)> compute;  // writes element_count(shape) floats; empty: `values` hold them
  // Or the values where they lie in a mapped file (a 2D export's stored float32 conv kernel, read in
  // place for a deferred inflation): little-endian float32 at any address (an .npz member's data need
  // not be 4-byte aligned); `in_place` points at them and keeps the mapping alive.
  std::shared_ptr<const unsigned char> in_place;

  Param() = default;
  Param(Shape s, std::vector<float> v, std::function<void(float*)> c = {})
      : shape(std::move(s)), values(std::move(v)), compute(std::move(c)) {}

  bool deferred() const { return bool(compute); }
  // How many values are held, wherever they are (0 when deferred, or a head tensor never read).
  size_t size() const { return in_place ? size_t(element_count(shape)) : values.size(); }
  // f(v) with v[i] the i-th value held: a const float*, or FloatBytes for values in place.
  template <class F>
  decltype(auto) with_values(F&& f) const;
};

// float32 values at any address, read as npy.hpp reads them (load_le: one unaligned load on x86).
struct FloatBytes {
  const unsigned char* p;
  float operator[](size_t i) const { return detail::load_le<float>(p + i * sizeof(float)); }
};

template <class F>
decltype(auto) Param::with_values(F&& f) const {
  return in_place ? f(FloatBytes{in_place.get()}) : f(static_cast<const float*>(values.data()));
}

// Whether a StateDict's seeded or inflated conv kernels are computed when it is made, or when they are used.
enum class TensorValues { kNow, kOnUse };

struct StateDict {
  std::map<std::string, Param> params;
  std::string meta_json;  // the `volfeat_meta` entry, "" when the file has none
  std::string origin;     // where it came from, for messages (a path, or "seeded random init")
  // What deferred tensors compute from (a 2D export, for inflated kernels), held while any is deferred;
  // its values count in the memory guard's estimate.
  std::shared_ptr<const StateDict> source;

  const Param& at(const std::string& key) const {
    auto it = params.find(key);
    if (it == params.end()) fail(origin, ": missing key ", key);
    return it->second;
  }
  bool has(const std::string& key) const { return params.count(key) != 0; }
};

// Computes one deferred tensor into its values (a tensor with values already is left as it is).
inline void materialize(Param& p) {
  if (!p.deferred()) return;
  p.values.resize(size_t(element_count(p.shape)));
  p.compute(p.values.data());
  p.compute = nullptr;
}

// Computes every deferred tensor, in parallel, largest first (the last a thread takes is a small one),
// each first-touched by the thread that fills it; then lets go of `source`. An exception must not leave
// the OpenMP region: the first (out of memory, a bad kernel) is rethrown after it.
inline void materialize(StateDict& sd) {
  std::vector<Param*> todo;
  for (auto& [key, p] : sd.params)
    if (p.deferred()) todo.push_back(&p);
  std::stable_sort(todo.begin(), todo.end(),
                   [](const Param* a, const Param* b) { return element_count(a->shape) > element_count(b->shape); });
  std::string error;
#pragma omp parallel for schedule(dynamic, 1)
  for (size_t k = 0; k < todo.size(); ++k) {
    try {
      materialize(*todo[k]);
    } catch (const std::exception& e) {
#pragma omp critical(volfeat_materialize)
      if (error.empty()) error = e.what();
    }
  }
  if (!error.empty()) fail(sd.origin, ": ", error);
  sd.source.reset();
}

}  // namespace volfeat
