#pragma once
// One environment variable set (or unset) for a scope, then put back as it was, also when the scope is
// left by an exception (a failed BOOST_TEST_REQUIRE, a constructor that throws): the tests that choose a
// Cpu conv path through VOLFEAT_WINOGRAD or VOLFEAT_CONV_BANDS leave no choice behind for the next case.
#include <cstdlib>
#include <optional>
#include <string>

namespace volfeat::test {

class ScopedEnv {
 public:
  // value nullptr: unset for the scope
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) saved_ = old;
    set(value);
  }
  ~ScopedEnv() { set(saved_ ? saved_->c_str() : nullptr); }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

  void set(const char* value) const {
    if (value) setenv(name_.c_str(), value, 1);
    else unsetenv(name_.c_str());
  }

 private:
  std::string name_;
  std::optional<std::string> saved_;
};

}  // namespace volfeat::test
