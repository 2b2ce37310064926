#pragma once
// scripts/sanitize.sh's build (-fsanitize=address,undefined), where a forward pass runs 6-40x slower:
// a check that repeats code another check of the same executable already drives through the
// sanitizers returns early there, printing which check covers it (the normal suite runs it).
// The CLI scripts do the same through tests/cli/harness.py's normal_suite_only.
#include <iostream>

namespace volfeat::test {

#if defined(__SANITIZE_ADDRESS__)
inline constexpr bool kSanitized = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
inline constexpr bool kSanitized = true;
#else
inline constexpr bool kSanitized = false;
#endif
#else
inline constexpr bool kSanitized = false;
#endif

// true (and a SKIP line naming `covered_by`) under the sanitizers.
inline bool normal_suite_only(const char* check, const char* covered_by) {
  if (kSanitized)
    std::cout << "SKIP " << check << " under the sanitizers (normal suite only): " << covered_by << std::endl;
  return kSanitized;
}

}  // namespace volfeat::test
