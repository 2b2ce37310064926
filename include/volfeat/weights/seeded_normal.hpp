#pragma once
// Seeded standard normals for volfeat's random networks, counter-based: value i of a named stream is a
// pure function of (seed, stream name, i), so tensors and elements are generated in parallel and the
// result does not depend on the thread count or on the order tensors are drawn in.
//
// Bits: a SplitMix64 hash of the stream key plus i (and, for the ~1 % of draws the ziggurat rejects, a
// SplitMix64 chain from there). Normals: the 256-layer ziggurat of Marsaglia & Tsang, in the form of
// Doornik (2005) / rand_distr: the layer index and the 52-bit uniform come from disjoint bits of the same
// 64-bit word, and the fast path is one multiplication and one comparison (IEEE-exact, so the values are
// the same with or without FMA contraction). The tail and the wedges use std::exp/std::log.
//
// Why not the Box-Muller over mt19937_64 that core/random.hpp keeps (and that the networks used before):
// it is sequential and spends ~80 ns per pair in glibc's sin/cos, 0.6 s for DenseNet-121-3D's 11.3 M
// weights on this project's Zen 3 VM; this generator takes ~4 ns per value and runs on every thread.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>

namespace volfeat {

// The generator's name, recorded with every seeded random network (volfeat_meta "generator", hence
// run.json's weights.meta; landmarks' run.json "seeded_normal"): numbers from a random network without
// it were drawn by the Box-Muller generator used before and differ. Bump it if the stream ever changes.
inline constexpr const char* kSeededNormalGenerator = "splitmix64-ziggurat-1";

namespace detail::seeded_normal {

constexpr uint64_t kGamma = 0x9e3779b97f4a7c15ULL;

inline uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// The ziggurat's 257 layer edges x[0] (the base strip's virtual width) > x[1] = R > ... > x[256] = 0 and
// f[i] = exp(-x[i]^2 / 2), each layer of area V.
struct Tables {
  static constexpr double kR = 3.6541528853610088;   // right edge of the base layer
  static constexpr double kV = 0.00492867323399;     // area of each layer
  std::array<double, 257> x{}, f{};
  Tables() {
    const double fr = std::exp(-0.5 * kR * kR);
    x[0] = kV / fr;
    x[1] = kR;
    for (int i = 2; i < 256; ++i) x[size_t(i)] = std::sqrt(-2.0 * std::log(kV / x[size_t(i - 1)] + std::exp(-0.5 * x[size_t(i - 1)] * x[size_t(i - 1)])));
    x[256] = 0;
    for (int i = 0; i < 257; ++i) f[size_t(i)] = std::exp(-0.5 * x[size_t(i)] * x[size_t(i)]);
  }
};

inline const Tables& tables() {
  static const Tables t;
  return t;
}

// Uniform in (0, 1): 52 bits, never 0 (for the logarithms of the tail).
inline double open01(uint64_t bits) { return (double(bits >> 12) + 0.5) * 0x1.0p-52; }

}  // namespace detail::seeded_normal

// A named stream of seeded standard normals; normal(i) is the i-th value.
class SeededNormals {
 public:
  SeededNormals(uint64_t seed, const std::string& stream) {
    using detail::seeded_normal::mix64;
    uint64_t h = 0xcbf29ce484222325ULL;  // FNV-1a of the name
    for (unsigned char c : stream) h = (h ^ c) * 0x100000001b3ULL;
    key_ = mix64(mix64(seed) ^ h);
  }

  double normal(uint64_t i) const {
    const Draw d = first_draw(i);
    return d.accepted() ? d.x : slow(d);
  }

 private:
  struct Draw {
    uint64_t bits;
    double u, x, edge;  // u in [-1, 1), x = u * x[layer], edge = x[layer + 1]
    bool accepted() const { return std::fabs(x) < edge; }
  };

  static Draw draw(uint64_t bits) {
    const auto& t = detail::seeded_normal::tables();
    const size_t layer = size_t(bits & 0xff);
    // 52 bits as a uniform in [-1, 1): 2 * [1, 2) - 3
    const uint64_t m = (bits >> 12) | 0x3ff0000000000000ULL;
    double one_two;
    static_assert(sizeof one_two == sizeof m);
    std::memcpy(&one_two, &m, sizeof m);
    const double u = 2.0 * one_two - 3.0;
    return {bits, u, u * t.x[layer], t.x[layer + 1]};
  }

  Draw first_draw(uint64_t i) const {
    using namespace detail::seeded_normal;
    return draw(mix64(key_ + (i + 1) * kGamma));
  }

  // A draw outside the layer's rectangle: the base layer's tail, a wedge test, or a fresh draw.
  static double slow(Draw d) {
    using namespace detail::seeded_normal;
    const Tables& t = tables();
    for (;;) {
      if (d.accepted()) return d.x;
      const size_t layer = size_t(d.bits & 0xff);
      uint64_t bits = mix64(d.bits + kGamma);
      if (layer == 0) return tail(bits, d.u < 0);
      if (t.f[layer + 1] + (t.f[layer] - t.f[layer + 1]) * open01(bits) < std::exp(-0.5 * d.x * d.x)) return d.x;
      d = draw(mix64(bits + kGamma));
    }
  }

  // Marsaglia's tail beyond R.
  static double tail(uint64_t bits, bool negative) {
    using namespace detail::seeded_normal;
    for (;;) {
      const double x = std::log(open01(bits)) / Tables::kR;
      bits = mix64(bits + kGamma);
      const double y = std::log(open01(bits));
      bits = mix64(bits + kGamma);
      if (-2.0 * y >= x * x) return negative ? x - Tables::kR : Tables::kR - x;
    }
  }

  uint64_t key_ = 0;
};

}  // namespace volfeat
