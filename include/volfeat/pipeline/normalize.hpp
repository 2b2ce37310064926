#pragma once
// CT intensity normalisation before the network. The default, window:400,2000, maps
// [-600, 1400] HU (a bone window) linearly onto [0, 1] and clips, so bone, marrow and soft tissue
// all stay distinguishable and air saturates at 0.
#include <cmath>
#include <string>
#include <vector>

#include "volfeat/core/error.hpp"
#include "volfeat/core/host_memory.hpp"

namespace volfeat {

inline constexpr const char* kDefaultNormalize = "window:400,2000";
inline constexpr double kDefaultWindowLevel = 400, kDefaultWindowWidth = 2000;
// torchvision's ImageNet statistics, per RGB channel.
inline constexpr double kImageNetMean[3] = {0.485, 0.456, 0.406};
inline constexpr double kImageNetStd[3] = {0.229, 0.224, 0.225};

struct Normalization {
  enum class Kind { kNone, kWindow, kMinMax, kZScore, kImageNet } kind = Kind::kWindow;
  double level = kDefaultWindowLevel, width = kDefaultWindowWidth;
  std::string text;  // as given, for run.json

  // ImageNet normalisation is per RGB channel, so the network sees 3 channels.
  int channels() const { return kind == Kind::kImageNet ? 3 : 1; }
};

inline Normalization parse_normalization(const std::string& s) {
  Normalization n;
  n.text = s;
  auto parse_window = [&](const std::string& args) {
    const size_t comma = args.find(',');
    try {
      size_t a = 0, b = 0;
      n.level = std::stod(args.substr(0, comma), &a);
      n.width = std::stod(args.substr(comma + 1), &b);
      if (comma == std::string::npos || a != comma || b != args.size() - comma - 1) throw std::invalid_argument("");
    } catch (const std::exception&) {
      fail("--normalize '", s, "': expected window:LEVEL,WIDTH in HU, e.g. window:400,2000");
    }
    if (!(n.width > 0) || !std::isfinite(n.level)) fail("--normalize '", s, "': the window width must be > 0");
  };
  if (s == "none") n.kind = Normalization::Kind::kNone;
  else if (s == "minmax") n.kind = Normalization::Kind::kMinMax;
  else if (s == "zscore") n.kind = Normalization::Kind::kZScore;
  else if (s == "imagenet") n.kind = Normalization::Kind::kImageNet;
  else if (s.rfind("imagenet:", 0) == 0) n.kind = Normalization::Kind::kImageNet, parse_window(s.substr(9));
  else if (s.rfind("window:", 0) == 0) n.kind = Normalization::Kind::kWindow, parse_window(s.substr(7));
  else fail("--normalize '", s, "': expected none, window:L,W, minmax, zscore, imagenet or imagenet:L,W");
  return n;
}

// Channels-last values for the network: 1 channel, or for ImageNet 3 (the windowed gray value
// replicated to RGB and normalised per channel, as torchvision's transforms would).
inline std::vector<float> normalize_volume(const std::vector<float>& hu, const Normalization& n) {
  const size_t count = hu.size();
  double lo = 0, div = 1;  // x' = (x - lo) / div, then clipped to [0,1] for windows
  bool clip = false;
  switch (n.kind) {
    case Normalization::Kind::kNone: break;
    case Normalization::Kind::kWindow:
    case Normalization::Kind::kImageNet:
      lo = n.level - n.width / 2, div = n.width, clip = true;
      break;
    case Normalization::Kind::kMinMax: {
      double mn = INFINITY, mx = -INFINITY;
      for (float v : hu) mn = std::min(mn, double(v)), mx = std::max(mx, double(v));
      if (!(mx > mn)) fail("--normalize minmax: the volume is constant (", mn, ")");
      lo = mn, div = mx - mn;
      break;
    }
    case Normalization::Kind::kZScore: {
      double sum = 0, sq = 0;
      for (float v : hu) sum += v;
      const double mean = sum / double(count);
      for (float v : hu) sq += (v - mean) * (v - mean);
      const double sd = std::sqrt(sq / double(count));
      if (!(sd > 0)) fail("--normalize zscore: the volume is constant (", mean, ")");
      lo = mean, div = sd;
      break;
    }
  }
  const int c = n.channels();
  std::vector<float> out = huge_page_vector<float>(count * size_t(c));
#pragma omp parallel for schedule(static) if (count > (size_t(1) << 20))
  for (size_t i = 0; i < count; ++i) {
    double x = (double(hu[i]) - lo) / div;
    if (clip) x = std::min(1.0, std::max(0.0, x));
    if (c == 1) {
      out[i] = float(x);
    } else {
      for (int k = 0; k < 3; ++k) out[i * 3 + size_t(k)] = float((x - kImageNetMean[k]) / kImageNetStd[k]);
    }
  }
  return out;
}

}  // namespace volfeat
