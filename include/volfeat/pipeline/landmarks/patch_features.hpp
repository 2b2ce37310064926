#pragma once
// Patch features: a cubic patch of P voxels around a voxel, run through the network up to the chosen
// layer (forward's early stop), global average of that layer's map (the paper's way); and the fast
// approximation (--dense), one pass over a box and footprint averages on the layer's grid.
#include <algorithm>
#include <array>
#include <cstdint>
#include <limits>
#include <map>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "volfeat/backend/cpu_tensor.hpp"
#include "volfeat/core/error.hpp"
#include "volfeat/nn/network.hpp"
#include "volfeat/nn/selectors.hpp"
#include "volfeat/pipeline/landmarks/geometry.hpp"

namespace volfeat {

// A normalised network input (channels-last (D, H, W, C)) and the value of every channel outside it.
struct PatchSource {
  const float* data = nullptr;
  std::array<int64_t, 3> dims{};
  int channels = 1;
  std::vector<float> pad;  // per channel
};

// The cube of P voxels per axis whose voxel P/2 (per axis) is `centre`: indices centre - P/2 ..
// centre - P/2 + P - 1. Voxels outside the volume take the pad value. out: P^3 * C floats.
inline void extract_patch(const PatchSource& s, const Voxel& centre, int p, float* out) {
  const int64_t c = s.channels, P = p;
  const int64_t lo[3] = {centre[0] - P / 2, centre[1] - P / 2, centre[2] - P / 2};
  for (int64_t a = 0; a < P; ++a)
    for (int64_t b = 0; b < P; ++b)
      for (int64_t e = 0; e < P; ++e) {
        const int64_t d = lo[0] + a, h = lo[1] + b, w = lo[2] + e;
        float* dst = out + ((a * P + b) * P + e) * c;
        if (d >= 0 && d < s.dims[0] && h >= 0 && h < s.dims[1] && w >= 0 && w < s.dims[2]) {
          const float* src = s.data + ((d * s.dims[1] + h) * s.dims[2] + w) * c;
          std::copy(src, src + c, dst);
        } else {
          std::copy(s.pad.begin(), s.pad.end(), dst);
        }
      }
}

// The names of --layers' depth aliases, per family (ArchFamily::depth_layers): shallow, mid and deep are
// DenseNet's dense blocks 1, 2 and 3 (their concatenated channels: 256, 512 and 1024 for DenseNet121),
// the paper's VGG conv2_2, conv4_2 and conv5_4 (a shallower VGG's last conv of block 2, second of block
// 4, last of block 5), ResNet's layer1, layer2 and layer3.
// landmark_layer_selector: the selector a depth alias stands for in `arch` (any other selector as it is).
inline std::string landmark_layer_selector(const std::string& arch, const std::string& selector) {
  const int k = selector == "shallow" ? 0 : selector == "mid" ? 1 : selector == "deep" ? 2 : -1;
  return k >= 0 ? arch_family(arch).depth_layers[size_t(k)] : selector;
}
inline std::string landmark_layer_module(const Graph& g, const std::string& selector) {
  return resolve_layer(g, landmark_layer_selector(g.arch(), selector));
}

namespace detail::lm {
// Global average of each wanted module's map (per channel, in double), for one sample.
template <class Backend, class T>
struct GlobalAverage {
  const Backend* device;
  const std::vector<std::string>* names;
  std::vector<std::vector<double>>* out;  // [name index]
  bool wants(const std::string& n) const { return std::find(names->begin(), names->end(), n) != names->end(); }
  void operator()(const std::string& n, TensorView<const T> v) {
    const size_t i = size_t(std::find(names->begin(), names->end(), n) - names->begin());
    const Index c = v.dims.c, voxels = v.dims.voxels();
    std::vector<double> s(size_t(c), 0.0);
    if constexpr (std::is_same_v<Backend, Cpu>) {
      for (Index k = 0; k < voxels; ++k) {
        const T* p = v.voxel(k);
        for (Index j = 0; j < c; ++j) s[size_t(j)] += double(p[j]);
      }
    } else {
      const auto host = to_host(*device, v);
      for (Index k = 0; k < voxels; ++k)
        for (Index j = 0; j < c; ++j) s[size_t(j)] += double(host[size_t(k * c + j)]);
    }
    for (double& x : s) x /= double(voxels);
    (*out)[i] = std::move(s);
  }
};

// (stride, offset) along D of node `node`'s grid in input voxels: output voxel i is centred on input
// s*i + o. Follows each node's first input back to the graph's input (every conv and pool on the way).
inline std::pair<double, double> module_sampling(const Graph& g, int node) {
  std::vector<const WindowGeometry*> chain;
  for (int i = node; i > 0; i = g.node(i).inputs[0]) {
    const Node& n = g.node(i);
    if (n.kind == OpKind::kConv || n.kind == OpKind::kMaxPool || n.kind == OpKind::kAvgPool) chain.push_back(&n.window);
  }
  double s = 1, o = 0;
  for (auto it = chain.rbegin(); it != chain.rend(); ++it) {
    o += s * (double((*it)->kernel[0] - 1) / 2 - double((*it)->padding[0]));
    s *= double((*it)->stride[0]);
  }
  return {s, o};
}
}  // namespace detail::lm

// Features of patches: runs each P^3 patch through `net` up to `stop` and returns, per job, the global
// average of each of `modules` (full names). Jobs run one patch per forward pass (batch 1); on the Cpu
// backend the patches are spread over the OpenMP threads, each forward then running single-threaded
// (tiny patches parallelise far better across patches than within one).
template <class Backend, class T>
std::vector<std::vector<std::vector<double>>> patch_features(const Network<Backend, T>& net,
                                                             const std::vector<std::pair<const PatchSource*, Voxel>>& jobs,
                                                             int p, const std::vector<std::string>& modules, int stop) {
  std::vector<std::vector<std::vector<double>>> out(jobs.size(), std::vector<std::vector<double>>(modules.size()));
  const Index c = net.input_channels();
  const Dims dims{1, p, p, p, c};
  auto one = [&](size_t j, std::vector<T>& buf, std::vector<float>& patch) {
    if (jobs[j].first->channels != c)
      fail("landmarks: the input has ", jobs[j].first->channels, " channel(s) but the network takes ", c);
    extract_patch(*jobs[j].first, jobs[j].second, p, patch.data());
    std::copy(patch.begin(), patch.end(), buf.begin());
    const auto on_device = from_host(net.device(), dims, buf.data());
    detail::lm::GlobalAverage<Backend, T> obs{&net.device(), &modules, &out[j]};
    net.forward(on_device.view(), obs, stop);
  };
  const int64_t count = int64_t(jobs.size());
  if constexpr (std::is_same_v<Backend, Cpu>) {
    std::string error;
#pragma omp parallel
    {
      std::vector<T> buf(size_t(dims.size()));
      std::vector<float> patch(size_t(dims.size()));
#pragma omp for schedule(dynamic, 1)
      for (int64_t j = 0; j < count; ++j) {
        try {
          one(size_t(j), buf, patch);
        } catch (const std::exception& e) {
#pragma omp critical(volfeat_landmarks_error)
          if (error.empty()) error = e.what();
        }
      }
    }
    if (!error.empty()) fail(error);
  } else {
    std::vector<T> buf(size_t(dims.size()));
    std::vector<float> patch(size_t(dims.size()));
    for (int64_t j = 0; j < count; ++j) one(size_t(j), buf, patch);
  }
  return out;
}

// The fast approximation (--dense): ONE forward pass over the box covering the patches around every
// voxel of `box_centres` (voxels outside the volume padded), then, per voxel of `centres` and module, the
// mean of the module's map over that voxel's patch footprint: map voxel i stands for input voxels [s*i + o - s/2, s*i + o + s/2) (module_sampling), and
// is weighted by the fraction of that interval inside the patch, per axis. NOT equivalent to the patch
// approach: the map sees context beyond each patch and none of a patch's zero padding.
template <class Backend, class T>
std::vector<std::vector<std::vector<double>>> dense_features(const Network<Backend, T>& net, const PatchSource& src,
                                                             const std::vector<Voxel>& box_centres,
                                                             const std::vector<Voxel>& centres, int p,
                                                             const std::vector<std::string>& modules, int stop) {
  const Index c = net.input_channels();
  if (src.channels != c) fail("landmarks: the input has ", src.channels, " channel(s) but the network takes ", c);
  Voxel lo{}, hi{};
  for (size_t a = 0; a < 3; ++a) {
    lo[a] = std::numeric_limits<int64_t>::max(), hi[a] = std::numeric_limits<int64_t>::min();
    for (const Voxel& v : box_centres) lo[a] = std::min(lo[a], v[a] - p / 2), hi[a] = std::max(hi[a], v[a] - p / 2 + p);
  }
  for (const Voxel& v : centres)
    for (size_t a = 0; a < 3; ++a)
      if (v[a] - p / 2 < lo[a] || v[a] - p / 2 + p > hi[a]) fail("dense_features: a patch leaves the box");
  const Dims dims{1, hi[0] - lo[0], hi[1] - lo[1], hi[2] - lo[2], c};
  std::vector<T> box(size_t(dims.size()));
  for (int64_t d = 0; d < dims.d; ++d)
    for (int64_t h = 0; h < dims.h; ++h)
      for (int64_t w = 0; w < dims.w; ++w) {
        const int64_t sd = lo[0] + d, sh = lo[1] + h, sw = lo[2] + w;
        T* dst = box.data() + ((d * dims.h + h) * dims.w + w) * c;
        if (sd >= 0 && sd < src.dims[0] && sh >= 0 && sh < src.dims[1] && sw >= 0 && sw < src.dims[2]) {
          const float* s = src.data + ((sd * src.dims[1] + sh) * src.dims[2] + sw) * c;
          std::copy(s, s + c, dst);
        } else {
          std::copy(src.pad.begin(), src.pad.end(), dst);
        }
      }
  struct Maps {
    const Backend* device;
    const std::vector<std::string>* names;
    std::vector<HostTensor<T>> maps;
    bool wants(const std::string& n) const { return std::find(names->begin(), names->end(), n) != names->end(); }
    void operator()(const std::string& n, TensorView<const T> v) {
      maps[size_t(std::find(names->begin(), names->end(), n) - names->begin())] = HostTensor<T>{v.dims, to_host(*device, v)};
    }
  } obs{&net.device(), &modules, std::vector<HostTensor<T>>(modules.size())};
  const auto on_device = from_host(net.device(), dims, box.data());
  net.forward(on_device.view(), obs, stop);

  std::vector<std::vector<std::vector<double>>> out(centres.size(), std::vector<std::vector<double>>(modules.size()));
  for (size_t m = 0; m < modules.size(); ++m) {
    const HostTensor<T>& map = obs.maps[m];
    const auto [s, o] = detail::lm::module_sampling(net.graph(), net.node_of(modules[m]));
    const std::array<Index, 3> n{map.dims.d, map.dims.h, map.dims.w};
    for (size_t j = 0; j < centres.size(); ++j) {
      // per axis: weight of map index i = overlap of [s*i+o-s/2, s*i+o+s/2) with the patch [a-0.5, a+P-0.5)
      std::array<std::vector<double>, 3> wt;
      for (size_t a = 0; a < 3; ++a) {
        const double p0 = double(centres[j][a] - p / 2 - lo[a]) - 0.5, p1 = p0 + double(p);
        wt[a].resize(size_t(n[a]));
        for (Index i = 0; i < n[a]; ++i) {
          const double c0 = s * double(i) + o - s / 2, c1 = c0 + s;
          wt[a][size_t(i)] = std::max(0.0, std::min(c1, p1) - std::max(c0, p0)) / s;
        }
      }
      std::vector<double> f(size_t(map.dims.c), 0.0);
      double total = 0;
      for (Index d = 0; d < n[0]; ++d)
        for (Index h = 0; h < n[1]; ++h) {
          const double wdh = wt[0][size_t(d)] * wt[1][size_t(h)];
          if (wdh == 0) continue;
          for (Index w = 0; w < n[2]; ++w) {
            const double wgt = wdh * wt[2][size_t(w)];
            if (wgt == 0) continue;
            const T* v = map.voxel((d * n[1] + h) * n[2] + w);
            for (Index k = 0; k < map.dims.c; ++k) f[size_t(k)] += wgt * double(v[k]);
            total += wgt;
          }
        }
      if (total > 0)
        for (double& x : f) x /= total;
      out[j][m] = std::move(f);
    }
  }
  return out;
}


}  // namespace volfeat
