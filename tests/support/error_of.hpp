#pragma once
// The message a call throws (any std::exception), or "" when it returns: for tests that check an
// error's one line names the file and the problem.
#include <exception>
#include <functional>
#include <string>

namespace volfeat::test {

inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

}  // namespace volfeat::test
