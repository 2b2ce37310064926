// Progress on stderr when it is not a terminal (logs, CI, the tests' own runs): plain lines at each
// quarter, an ETA only once 1 % is done, nothing when quiet except warnings (core/progress.hpp).
#define BOOST_TEST_MODULE progress
#include <boost/test/unit_test.hpp>
#include <cstdio>
#include <string>
#include <vector>

#include "volfeat/core/progress.hpp"

using volfeat::Progress;

namespace {

// What a Progress writing to a temporary file (never a terminal) printed, one entry per line.
template <class Steps>
std::vector<std::string> lines_of(bool quiet, Steps steps) {
  std::FILE* f = std::tmpfile();
  BOOST_REQUIRE(f);
  {
    Progress p(quiet, f);
    steps(p);
  }
  std::rewind(f);
  std::vector<std::string> lines;
  char buf[512];
  while (std::fgets(buf, sizeof buf, f)) {
    std::string l(buf);
    if (!l.empty() && l.back() == '\n') l.pop_back();
    lines.push_back(l);
  }
  std::fclose(f);
  return lines;
}

bool has(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

}  // namespace

BOOST_AUTO_TEST_CASE(plain_lines_give_an_eta_only_once_one_percent_is_done) {
  const auto lines = lines_of(false, [](Progress& p) {
    p.begin("forward pass");
    p.update(0.01, "pool0");  // the first step of a forward at 128^3: 1 %, too little to extrapolate from
    p.update(0.2, "not shown");  // under a quarter past the last line
    p.update(0.3, "denseblock2");
    p.update(0.6);
    p.end();
  });
  BOOST_REQUIRE_EQUAL(lines.size(), 5u);
  BOOST_TEST(lines[0] == "volfeat: forward pass ...");
  // "after 0.0s" on an idle machine; a loaded one may show 0.1 s, so the elapsed time is not pinned.
  BOOST_TEST((lines[1].rfind("volfeat: forward pass   1% after ", 0) == 0 && lines[1].size() > 6 &&
              lines[1].compare(lines[1].size() - 7, 7, "s pool0") == 0 && !has(lines[1], "ETA")),
             lines[1]);
  BOOST_TEST((has(lines[2], "forward pass  30% after ") && has(lines[2], ", ETA ") && has(lines[2], "s denseblock2")),
             lines[2]);
  BOOST_TEST((has(lines[3], "forward pass  60% after ") && has(lines[3], ", ETA ") && lines[3].back() == 's'), lines[3]);
  BOOST_TEST(has(lines[4], "volfeat: forward pass done in "), lines[4]);
  for (const auto& l : lines) BOOST_TEST(!has(l, "ETA -"), l);
}

BOOST_AUTO_TEST_CASE(quiet_prints_only_warnings) {
  const auto lines = lines_of(true, [](Progress& p) {
    p.begin("forward pass");
    p.update(0.5, "x");
    p.note("a note");
    p.warn("--precision bf16: this CPU lacks AVX512-BF16; running float32");
    p.end();
  });
  BOOST_REQUIRE_EQUAL(lines.size(), 1u);
  BOOST_TEST(lines[0] == "volfeat: --precision bf16: this CPU lacks AVX512-BF16; running float32");
}
