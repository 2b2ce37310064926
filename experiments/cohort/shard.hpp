#pragma once
// --shard i/N: job-array task i of N takes a deterministic, disjoint share of a cohort's units.
// Groups (the units that must run in order on one worker: a (volume, mode)'s null networks before
// its schemes) are dealt round-robin in the order largest first, so every shard gets a similar mix
// of big and small volumes; the union over i = 1..N is every unit exactly once.
#include <algorithm>
#include <cstdint>
#include <numeric>
#include <string>
#include <vector>

#include "volfeat/core/error.hpp"

namespace volfeat::cli {

struct Shard {
  int index = 1, count = 1;  // 1-based, as SLURM_ARRAY_TASK_ID usually is
};

inline Shard parse_shard(const std::string& text) {
  const size_t slash = text.find('/');
  Shard s;
  try {
    size_t used_i = 0, used_n = 0;
    if (slash == std::string::npos) throw std::invalid_argument(text);
    s.index = std::stoi(text.substr(0, slash), &used_i);
    s.count = std::stoi(text.substr(slash + 1), &used_n);
    if (used_i != slash || used_n != text.size() - slash - 1) throw std::invalid_argument(text);
  } catch (const std::exception&) {
    fail("--shard ", text, ": expected i/N, e.g. 3/10 (task 3 of 10, counted from 1)");
  }
  if (s.count < 1 || s.index < 1 || s.index > s.count)
    fail("--shard ", text, ": expected 1 <= i <= N");
  return s;
}

// The order units are worked in: groups largest first (ties: the manifest's order), each group's
// units in their own order. `size` and `group` are per unit; a group's size is its first unit's.
inline std::vector<size_t> largest_first(const std::vector<uint64_t>& size, const std::vector<size_t>& group) {
  std::vector<size_t> order(size.size());
  std::iota(order.begin(), order.end(), size_t(0));
  std::vector<uint64_t> group_size(size.empty() ? 0 : *std::max_element(group.begin(), group.end()) + 1, 0);
  for (size_t u = 0; u < size.size(); ++u) group_size[group[u]] = std::max(group_size[group[u]], size[u]);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    if (group_size[group[a]] != group_size[group[b]]) return group_size[group[a]] > group_size[group[b]];
    return group[a] < group[b];
  });
  return order;
}

// The units of shard s, in the order to work them.
inline std::vector<size_t> shard_units(const std::vector<uint64_t>& size, const std::vector<size_t>& group, Shard s) {
  const std::vector<size_t> order = largest_first(size, group);
  std::vector<size_t> out;
  size_t rank = 0, last_group = size_t(-1);
  for (size_t u : order) {
    if (group[u] != last_group) ++rank, last_group = group[u];  // rank of the group, from 1
    if (int((rank - 1) % size_t(s.count)) == s.index - 1) out.push_back(u);
  }
  return out;
}

}  // namespace volfeat::cli
