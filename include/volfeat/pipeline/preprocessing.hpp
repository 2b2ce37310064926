#pragma once
// The intensity stages before normalisation, in this order: denoise -> contrast (-> normalise, in
// normalize.hpp). Parsed once from the command line into a Preprocessing; nothing downstream sees
// the option strings.
#include <chrono>
#include <nlohmann/json.hpp>
#include <string>

#include "volfeat/pipeline/contrast.hpp"
#include "volfeat/pipeline/denoise.hpp"

namespace volfeat {

inline constexpr const char* kPreprocessingOrder[] = {"denoise", "contrast", "normalize"};

struct Preprocessing {
  Denoise denoise;
  Contrast contrast;
  bool any() const { return denoise.kind != Denoise::Kind::kNone || contrast.kind != Contrast::Kind::kNone; }
};

inline Preprocessing parse_preprocessing(const std::string& denoise, const std::string& contrast) {
  return {parse_denoise(denoise), parse_contrast(contrast)};
}

// Seconds each stage took, for run.json's timings.
struct PreprocessingTimes {
  double denoise = 0, contrast = 0;
};

// HU in, HU-like out: denoise, then contrast (mapped back onto the input's HU range).
inline PreprocessingTimes apply_preprocessing(Volume<float>& v, const Preprocessing& p) {
  using Clock = std::chrono::steady_clock;
  PreprocessingTimes t;
  auto t0 = Clock::now();
  denoise_volume(v, p.denoise);
  t.denoise = std::chrono::duration<double>(Clock::now() - t0).count();
  t0 = Clock::now();
  enhance_contrast(v, p.contrast);
  t.contrast = std::chrono::duration<double>(Clock::now() - t0).count();
  return t;
}

// For run.json's config: the order and each stage as given.
inline nlohmann::json preprocessing_json(const Preprocessing& p, const std::string& normalize) {
  return {{"order", {"denoise", "contrast", "normalize"}},
          {"denoise", p.denoise.text},
          {"contrast", p.contrast.text},
          {"normalize", normalize}};
}

}  // namespace volfeat
