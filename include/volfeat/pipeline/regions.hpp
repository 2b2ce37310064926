#pragma once
// Regions of a label mask (the reports' Task I): `femur=1,tibia=2` names label values in order, and
// the background (label 0) comes last unless the user opts out. Label values are configurable
// because the reports disagree on them.
#include <cctype>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "volfeat/core/error.hpp"
#include "volfeat/io/volume.hpp"

namespace volfeat {

struct Region {
  std::string name;
  int32_t label = 0;
  int64_t voxels = 0;
};

inline std::vector<Region> parse_labels(const std::string& spec, bool add_background) {
  std::vector<Region> regions;
  std::set<std::string> names;
  std::set<int32_t> values;
  size_t start = 0;
  while (start <= spec.size()) {
    const size_t end = std::min(spec.find(',', start), spec.size());
    const std::string item = spec.substr(start, end - start);
    const size_t eq = item.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == item.size())
      fail("--labels '", spec, "': expected name=value pairs such as femur=1,tibia=2 (got '", item, "')");
    const std::string name = item.substr(0, eq), value = item.substr(eq + 1);
    for (char ch : name)
      if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '_')
        fail("--labels: region name '", name, "' may hold only letters, digits and _");
    size_t used = 0;
    long long v = 0;
    try {
      v = std::stoll(value, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != value.size() || v < INT32_MIN || v > INT32_MAX) fail("--labels: '", value, "' is not an integer label value");
    if (!names.insert(name).second) fail("--labels: region name '", name, "' appears twice");
    if (!values.insert(int32_t(v)).second) fail("--labels: label value ", v, " appears twice");
    regions.push_back({name, int32_t(v), 0});
    start = end + 1;
  }
  if (add_background && !values.count(0)) {
    if (names.count("background")) fail("--labels: 'background' names a non-zero label; pass --no-background");
    regions.push_back({"background", 0, 0});
  }
  if (regions.size() < 2) fail("--labels '", spec, "': similarity needs at least two regions");
  return regions;
}

inline std::map<int32_t, int64_t> count_labels(const Volume<int32_t>& mask) {
  std::map<int32_t, int64_t> counts;
  // Label maps come in long runs of one value: count each run, then look its label up once.
  const int32_t* m = mask.data.data();
  const size_t n = mask.data.size();
  for (size_t i = 0; i < n;) {
    size_t j = i + 1;
    while (j < n && m[j] == m[i]) ++j;
    counts[m[i]] += int64_t(j - i);
    i = j;
  }
  return counts;
}

inline std::string label_census(const std::map<int32_t, int64_t>& counts) {
  std::string s;
  for (const auto& [v, n] : counts) s += (s.empty() ? "" : ", ") + std::to_string(v) + " (" + std::to_string(n) + " voxels)";
  return s;
}

// Fills each region's voxel count; a requested label that is absent is an error. Returns the mask's
// labels nobody asked for (they are reported, and count as neither region nor background).
// `preprocessed`: the counts are after --crop-to-labels/--resample, where a small region can vanish.
inline std::vector<int32_t> match_regions(std::vector<Region>& regions, const std::map<int32_t, int64_t>& counts,
                                          const std::string& mask_name, bool preprocessed = false) {
  std::set<int32_t> requested;
  for (Region& r : regions) {
    auto it = counts.find(r.label);
    if ((it == counts.end() || it->second == 0) && preprocessed)
      fail(mask_name, ": region ", r.name, "=", r.label, " has no voxels left (labels present: ", label_census(counts),
           "); resample less coarsely or crop with a larger margin");
    if (it == counts.end() || it->second == 0)
      fail(mask_name, ": region ", r.name, "=", r.label, " is not in the mask (labels present: ", label_census(counts),
           ")");
    r.voxels = it->second;
    requested.insert(r.label);
  }
  std::vector<int32_t> unknown;
  for (const auto& [v, n] : counts)
    if (!requested.count(v)) unknown.push_back(v);
  return unknown;
}

}  // namespace volfeat
