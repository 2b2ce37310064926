#pragma once
// One exception type for every user-facing failure. Its message is the single line the CLI prints:
// it names the file (or option) and the problem, so callers never need to add context by catching.
#include <cerrno>
#include <cstring>
#include <sstream>
#include <stdexcept>
#include <string>

namespace volfeat {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Two kinds of Error that a caller may want to tell apart (the Python module raises them as
// FileNotFoundError and MemoryError); the CLI prints every Error alike.
class MissingFileError : public Error {
 public:
  using Error::Error;
};
class MemoryLimitError : public Error {
 public:
  using Error::Error;
};

namespace detail {
inline void append(std::ostringstream&) {}
template <class Head, class... Tail>
void append(std::ostringstream& os, const Head& head, const Tail&... tail) {
  os << head;
  append(os, tail...);
}
}  // namespace detail

// fail("weights ", path, ": missing key ", key) — builds the message from pieces and throws.
template <class... Parts>
[[noreturn]] void fail(const Parts&... parts) {
  std::ostringstream os;
  detail::append(os, parts...);
  throw Error(os.str());
}

// fail_as<MemoryLimitError>(...): the same, as a subtype of Error.
template <class E, class... Parts>
[[noreturn]] void fail_as(const Parts&... parts) {
  std::ostringstream os;
  detail::append(os, parts...);
  throw E(os.str());
}

// The line check() fails with, or "" when it returns: for a program's entry, which prints it and stops
// before any work (cpu_isa_problem, huge_pages_problem: the settings read from the environment).
template <class F>
std::string error_line_of(F&& check) {
  try {
    check();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// "PATH: WHAT: strerror(err)", a MissingFileError when the file does not exist.
[[noreturn]] inline void fail_open(const std::string& path, const std::string& what, int err) {
  const std::string message = path + ": " + what + ": " + std::strerror(err);
  if (err == ENOENT) throw MissingFileError(message);
  throw Error(message);
}

}  // namespace volfeat
