// volfeat's extract pipeline in a program of your own, against the installed package (volfeat::io:
// the library plus NIfTI, PNG and zlib): CT + label mask (NIfTI) -> one forward pass of volfeat's
// seeded random DenseNet-121 -> cosine similarity of the regions' mean features per layer.
//   extract_regions CT.nii.gz MASK.nii.gz femur=1,hip=2 denseblock1,transition1
#include <cstdio>
#include <volfeat/backend/cpu.hpp>
#include <volfeat/pipeline/extract.hpp>

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: %s CT MASK LABELS LAYERS (e.g. femur=1,hip=2 denseblock1,transition1)\n", argv[0]);
    return 2;
  }
  try {
    volfeat::ExtractOptions o;
    o.ct = argv[1];
    o.mask = argv[2];
    o.labels = argv[3];
    for (std::string s = argv[4]; !s.empty();) {  // comma list
      const size_t comma = s.find(',');
      o.layers.push_back(s.substr(0, comma));
      s = comma == std::string::npos ? "" : s.substr(comma + 1);
    }
    volfeat::Progress quiet(true);
    const volfeat::PreparedVolume v = volfeat::prepare_volume(o, quiet);
    const volfeat::NetworkWeights w = volfeat::load_network_weights(o, int(v.normalization.channels()));
    const volfeat::Network<volfeat::Cpu, float> net(w.state);
    const auto layers = volfeat::resolve_layers(o, net.graph());
    const auto features = volfeat::extract_features(net, v, layers, "shared", "mean", quiet);
    const volfeat::SimilarityTable t = volfeat::similarity_table(v.regions, features);
    for (size_t p = 0; p < t.pairs.size(); ++p) {
      std::printf("%s", t.pairs[p].c_str());
      for (double x : t.value[p]) std::printf(" %.4f", x);
      std::printf("\n");
    }
  } catch (const volfeat::Error& e) {
    std::fprintf(stderr, "extract_regions: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
