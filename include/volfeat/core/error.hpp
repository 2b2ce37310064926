#pragma once
// One exception type for every user-facing failure. Its message is the single line the CLI prints:
// it names the file (or option) and the problem, so callers never need to add context by catching.
#include <sstream>
#include <stdexcept>
#include <string>

namespace volfeat {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
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

}  // namespace volfeat
