// volfeat as a library: the seeded random DenseNet121-3D on the synthetic knee phantom, femur vs
// tibia vs background at two layers, one forward pass. No files are read or written.
#include <cstdio>
#include <volfeat/backend/cpu.hpp>
#include <volfeat/nn/network.hpp>
#include <volfeat/nn/selectors.hpp>
#include <volfeat/pipeline/normalize.hpp>
#include <volfeat/pipeline/phantom.hpp>
#include <volfeat/pipeline/region_weights.hpp>
#include <volfeat/pipeline/regions.hpp>
#include <volfeat/pipeline/similarity.hpp>
#include <volfeat/weights/load.hpp>

using namespace volfeat;

// Pools each tap over each region, weighted by the region's share of every feature voxel.
struct RegionMeans {
  const std::vector<std::string>& layers;
  const Phantom& phantom;
  const std::vector<Region>& regions;
  std::map<std::string, std::vector<std::vector<double>>> by_layer;  // [layer][region] -> vector

  bool wants(const std::string& name) const { return std::find(layers.begin(), layers.end(), name) != layers.end(); }
  void operator()(const std::string& name, TensorView<const float> f) {
    for (const Region& r : regions) {
      const auto w = region_weights(phantom.labels, r.label, f.dims.spatial());
      by_layer[name].push_back(RegionPool<Cpu, float>::forward(f, w.data(), RegionPoolKind::kMean));
    }
  }
};

int main() {
  const Phantom phantom = make_knee_phantom(0);
  const std::vector<Region> regions = parse_labels("femur=1,tibia=2", true);
  const std::vector<float> x = normalize_volume(phantom.ct.data, parse_normalization(kDefaultNormalize));

  // Built only up to the deepest tap (BuildUpTo); forward() then stops there too.
  const Network<Cpu, float> net(seeded_random_weights("densenet121", 0), Cpu{}, BuildUpTo{{"denseblock2", "transition2"}});
  const std::vector<std::string> layers{resolve_layer(net.graph(), "denseblock2"),
                                        resolve_layer(net.graph(), "transition2")};
  RegionMeans taps{layers, phantom, regions, {}};
  const auto& g = phantom.ct.grid.dims;
  net.forward(TensorView<const float>(x.data(), Dims{1, g[0], g[1], g[2], 1}), taps);

  for (const auto& layer : layers) {
    const auto& v = taps.by_layer.at(layer);
    std::printf("%-22s femur-tibia %.4f  femur-background %.4f  tibia-background %.4f\n", layer.c_str(),
                cosine_similarity(v[0], v[1]), cosine_similarity(v[0], v[2]), cosine_similarity(v[1], v[2]));
  }
  return 0;
}
