// The error 3D Winograd adds, per layer of a whole network on a real CT crop (README.md, "Winograd").
//
//   winograd_error ARCH CT.nii.gz D H W [--seed S] [--sized] [--mode all|wide|1]
//
// ARCH (vgg19, densenet121, ...) with volfeat's seeded torchvision-style random weights; the input is the
// centre D x H x W crop of the CT, windowed as `--normalize window:400,2000` does (level 400, width 2000
// HU -> [0, 1]). Three forwards record every module: float with Winograd on every applicable conv
// (VOLFEAT_WINOGRAD=all; --mode picks another), float with direct convs only (=0), and double (the
// reference). Printed per conv module: its relative error (max |got - want| / max |want|, the tests'
// measure) against double, for Winograd and for the direct convs, and whether that conv ran as Winograd
// (3D tiles, or along W) with which tile. --sized builds the networks for the crop (BuildUpTo::input, as
// `volfeat extract` does), so each Winograd conv takes the tile its output planes suit (F(4x6x6) or
// F(4x4x4) on AVX-512, winograd3d_select.hpp; a float32 network takes F(4x6x6) under --mode wide only);
// without it every 3D conv takes the tile of unknown planes.
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "volfeat/backend/cpu.hpp"
#include "volfeat/io/nifti.hpp"
#include "volfeat/nn/network.hpp"
#include "volfeat/nn/taps.hpp"
#include "volfeat/weights/inflate.hpp"

using namespace volfeat;

namespace {

double relative_error(const std::vector<float>& got, const std::vector<double>& want) {
  double err = 0, scale = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    err = std::max(err, std::abs(double(got[i]) - want[i]));
    scale = std::max(scale, std::abs(want[i]));
  }
  return scale > 0 ? err / scale : err;
}

// The tile of a Winograd conv with `points` transformed points per tile (winograd3d_tile.hpp).
const char* tile_name(int points) {
  switch (points) {
    case cpu::winograd::TileF32::kPoints: return "F(2x4x4)";
    case cpu::winograd::TileF32Deep::kPoints: return "F(4x4x4)";
    case cpu::winograd::TileF32Wide::kPoints: return "F(4x6x6)";
    case cpu::winograd::TileF32Depth::kPoints: return "F(4x4), depth-summed";
    case cpu::winograd::TileBf16::kPoints: return "F(2x2x2)";
    default: return "?";
  }
}

// The forward's every module, and each node's Winograd points (0: not a 3D Winograd conv).
template <class T>
Recorder<Cpu, T> run(const StateDict& sd, const char* winograd, const std::vector<double>& x, const Dims& xd, bool sized,
                     std::vector<int>* points = nullptr) {
  setenv("VOLFEAT_WINOGRAD", winograd, 1);
  const Network<Cpu, T> net(StateDict(sd), Cpu{}, sized ? BuildUpTo{{}, xd} : BuildUpTo{});
  if (points) *points = net.plan_traits().winograd_points;
  const std::vector<T> xt(x.begin(), x.end());
  auto rec = Recorder<Cpu, T>::everything();
  net.forward(TensorView<const T>(xt.data(), xd), rec);
  return rec;
}

}  // namespace

int main(int argc, char** argv) try {
  if (argc < 6) {
    std::cerr << "usage: winograd_error ARCH CT.nii.gz D H W [--seed S]\n";
    return 2;
  }
  const std::string arch = argv[1], ct = argv[2];
  const Index d = std::stol(argv[3]), h = std::stol(argv[4]), w = std::stol(argv[5]);
  uint64_t seed = 0;
  bool sized = false;
  std::string mode = "all";
  for (int i = 6; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--seed" && i + 1 < argc) seed = std::stoull(argv[++i]);
    else if (a == "--sized") sized = true;
    else if (a == "--mode" && i + 1 < argc) mode = argv[++i];
    else fail("winograd_error: unknown argument ", a);
  }
  const Volume<float> v = read_nifti_float(ct);
  const auto& g = v.grid.dims;
  if (g[0] < d || g[1] < h || g[2] < w) fail(ct, ": ", g[0], "x", g[1], "x", g[2], " is smaller than the crop");
  const Dims xd{1, d, h, w, 1};
  std::vector<double> x(size_t(d * h * w));
  const int64_t z0 = (g[0] - d) / 2, y0 = (g[1] - h) / 2, x0 = (g[2] - w) / 2;
  for (Index a = 0; a < d; ++a)
    for (Index b = 0; b < h; ++b)
      for (Index c = 0; c < w; ++c) {
        const double hu = v.at(z0 + a, y0 + b, x0 + c);
        x[size_t((a * h + b) * w + c)] = std::clamp((hu - (400.0 - 1000.0)) / 2000.0, 0.0, 1.0);
      }
  const StateDict sd = random_state_dict(arch, seed, 1);
  const Graph graph = build_graph(arch, 1);
  std::vector<int> points;
  auto wino = run<float>(sd, mode.c_str(), x, xd, sized, &points);
  auto direct = run<float>(sd, "0", x, xd, sized);
  auto ref = run<double>(sd, "0", x, xd, sized);
  std::printf("| module | C_in -> C_out | grid | Winograd | error, Winograd | error, direct |\n|---|---|---|---|---:|---:|\n");
  double worst_w = 0, worst_d = 0;
  for (const Node& n : graph.nodes()) {
    if (n.kind != OpKind::kConv) continue;
    const auto& r = ref.at(n.name);
    const double ew = relative_error(wino.at(n.name).data, r.data), ed = relative_error(direct.at(n.name).data, r.data);
    const ConvSpec spec{graph.node(n.inputs[0]).channels, n.channels, n.window};
    const bool applies = cpu::Winograd3d<float>::applicable(spec);
    // 3D tiles (their shape; "all only": the channel rule would leave the conv direct), direct where the
    // mode or the network's output size leaves it so, or 1D along W for a stem (winograd_along_w.hpp)
    const int p = points[size_t(graph.node_of(n.name))];
    const std::string how = !applies           ? (stem_like(spec) ? "along W" : "no")
                            : p == 0           ? "direct"
                            : winograd_wins(spec) ? tile_name(p)
                                                  : std::string(tile_name(p)) + ", all only";
    std::printf("| %s | %ld -> %ld | %ldx%ldx%ld | %s | %.2e | %.2e |\n", n.name.c_str(), long(spec.in_channels),
                long(spec.out_channels), long(r.dims.d), long(r.dims.h), long(r.dims.w), how.c_str(), ew, ed);
    worst_w = std::max(worst_w, ew), worst_d = std::max(worst_d, ed);
  }
  const std::string last = graph.modules().back().name;
  std::printf("\n%s on a %ldx%ldx%ld crop of %s: worst conv error %.2e with Winograd, %.2e direct; last module %s: "
              "%.2e with Winograd, %.2e direct\n",
              arch.c_str(), long(d), long(h), long(w), ct.c_str(), worst_w, worst_d, last.c_str(),
              relative_error(wino.at(last).data, ref.at(last).data), relative_error(direct.at(last).data, ref.at(last).data));
  return 0;
} catch (const std::exception& e) {
  std::cerr << "winograd_error: " << e.what() << "\n";
  return 1;
}
