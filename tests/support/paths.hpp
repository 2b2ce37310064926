#pragma once
// Where the tests find their data: compiled in by tests/CMakeLists.txt (VOLFEAT_TEST_DATA, the build's
// generated references; VOLFEAT_SHARED_DIR, the shared/ folder beside the checkout), each overridable by
// the environment variable of the same name, so a built test can run on another machine (the GPU
// machine of ../shared/gpu) where the paths differ.
#include <cstdlib>
#include <string>

namespace volfeat::test {

inline std::string path_setting(const char* variable, const char* compiled_in) {
  const char* e = std::getenv(variable);
  return e && *e ? std::string(e) : std::string(compiled_in);
}
inline std::string test_data_dir() { return path_setting("VOLFEAT_TEST_DATA", VOLFEAT_TEST_DATA); }
inline std::string shared_dir() { return path_setting("VOLFEAT_SHARED_DIR", VOLFEAT_SHARED_DIR); }

}  // namespace volfeat::test
