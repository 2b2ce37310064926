#pragma once
// --mode, parsed once at the edge: shared (one forward pass, regions pooled in their masks) or
// mask-input (one pass per region on CT x mask). The pipeline switches on the enum; the CLI spelling
// comes back only when written (run.json, CSVs, messages), unchanged.
#include <ostream>
#include <string>

#include "volfeat/core/error.hpp"

namespace volfeat {

class ExtractMode {
 public:
  enum Kind { kShared, kMaskInput };
  static constexpr const char* kValid = "shared, mask-input";

  constexpr ExtractMode(Kind k = kShared) : kind_(k) {}
  // From the CLI / Python spelling; anything else fails with one line listing the valid values. Implicit,
  // so a spelling assigned to ExtractOptions::mode is parsed right there (the sweep's per-unit modes).
  ExtractMode(const std::string& s) : kind_(parse(s)) {}
  ExtractMode(const char* s) : ExtractMode(std::string(s)) {}

  constexpr Kind kind() const { return kind_; }
  constexpr const char* name() const { return kind_ == kShared ? "shared" : "mask-input"; }
  operator std::string() const { return name(); }
  friend constexpr bool operator==(ExtractMode a, ExtractMode b) { return a.kind_ == b.kind_; }
  friend constexpr bool operator!=(ExtractMode a, ExtractMode b) { return a.kind_ != b.kind_; }
  friend std::ostream& operator<<(std::ostream& os, ExtractMode m) { return os << m.name(); }

 private:
  static Kind parse(const std::string& s) {
    if (s == "shared") return kShared;
    if (s == "mask-input") return kMaskInput;
    fail("--mode '", s, "': expected one of ", kValid);
  }
  Kind kind_;
};

}  // namespace volfeat
