#pragma once
// Reading the PyTorch reference files written by tests/torch/densenet_reference.py at test time.
#include <boost/test/unit_test.hpp>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "support/compare.hpp"
#include "support/paths.hpp"
#include "volfeat/io/npz.hpp"
#include "volfeat/reference/naive.hpp"

namespace volfeat::test {

inline std::string torch_ref_dir() { return volfeat::test::test_data_dir() + "/torch"; }

// Exit 77 (ctest: skipped) with the reason, when the PyTorch step could not produce its files.
inline void require_torch_refs() {
  const std::string probe = torch_ref_dir() + "/dn121_2d.npz";
  if (!std::filesystem::exists(probe)) {
    std::cout << "SKIP: " << probe
              << " is missing: the torch_reference step did not run or was skipped (needs /usr/bin/python3 with "
                 "python3-torch and python3-torchvision)"
              << std::endl;
    std::exit(77);
  }
}

// An NCDHW (or NCHW) float array from a reference file as a reference::Array5.
inline reference::Array5 ref_array(const NpyArray& a) {
  const auto& s = a.shape;
  reference::Array5 r;
  if (s.size() == 5) r = reference::Array5(s[0], s[1], s[2], s[3], s[4]);
  else if (s.size() == 4) r = reference::Array5(s[0], s[1], 1, s[2], s[3]);
  else BOOST_FAIL("reference array of rank " << s.size());
  r.v = a.to_vector<double>();
  return r;
}

inline nlohmann::json ref_meta(const NpzMap& z) {
  const auto bytes = z.at("meta").to_vector<uint8_t>();
  return nlohmann::json::parse(std::string(bytes.begin(), bytes.end()));
}

// Every module a reference file recorded (`out/<name>`, NCDHW) against the recorder's tap of the same
// name: present, same shape, within `tolerance` relative (max abs error / max abs value).
struct TorchComparison {
  size_t compared = 0;
  double worst = 0;
  std::string worst_name;
};

template <class Recorder>
TorchComparison compare_with_torch(const NpzMap& z, const Recorder& rec, const std::string& what, double tolerance) {
  TorchComparison c;
  for (const auto& [key, arr] : z) {
    if (key.rfind("out/", 0) != 0) continue;
    const std::string name = key.substr(4);
    BOOST_TEST_CONTEXT(what << " module " << name) {
      BOOST_TEST_REQUIRE(rec.has(name));
      const auto& tap = rec.at(name);
      const reference::Array5 want = ref_array(arr);
      BOOST_TEST_REQUIRE((tap.dims == want.dims()), to_string(tap.dims) << " vs torch " << to_string(want.dims()));
      const double err = relative_error(tap.data, reference::to_channels_last<double>(want));
      BOOST_TEST(err <= tolerance);
      if (err > c.worst) c.worst = err, c.worst_name = name;
      ++c.compared;
    }
  }
  return c;
}

}  // namespace volfeat::test
