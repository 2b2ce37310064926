// Google Benchmark suite: every Cpu primitive at the shapes DenseNet121-3D runs it on (a 128^3 input),
// and the whole network at several volumes. Counters: GFLOP/s from analytic FLOP counts (2*MACs of the
// convs as torch computes them), GB/s for the memory-bound ops. Every benchmark checks its output outside
// the timed loop (convs: sampled voxels against a double-precision direct sum; network: finite and
// identical across iterations) and reports an error instead of a number if it is wrong.
//
//   volfeat_bench [--full] [google benchmark flags, e.g. --benchmark_filter=conv]
// --full adds the whole network at 216x512x512 (2.3 TFLOP, ~1.5 GB).
#include <benchmark/benchmark.h>
#include <linux/perf_event.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "volfeat/backend/cpu.hpp"
#include "volfeat/core/random.hpp"
#include "volfeat/core/sha256.hpp"
#include "volfeat/nn/network.hpp"
#include "volfeat/pipeline/fixed_order_gram.hpp"
#include "volfeat/weights/inflate.hpp"

using namespace volfeat;

namespace {

// Core cycles of the calling thread (perf_event_open), so that a 1-thread run reports FLOP/cycle,
// which unlike GFLOP/s does not depend on what else the machine runs. -1 when perf is unavailable.
class CycleCounter {
 public:
  CycleCounter() {
    perf_event_attr a{};
    a.type = PERF_TYPE_HARDWARE;
    a.size = sizeof(a);
    a.config = PERF_COUNT_HW_CPU_CYCLES;
    a.exclude_kernel = 1;
    a.exclude_hv = 1;
    fd_ = int(syscall(SYS_perf_event_open, &a, 0, -1, -1, 0));
  }
  ~CycleCounter() {
    if (fd_ >= 0) close(fd_);
  }
  double read() const {
    long long v = 0;
    if (fd_ < 0 || ::read(fd_, &v, sizeof(v)) != sizeof(v)) return -1;
    return double(v);
  }

 private:
  int fd_ = -1;
};

// Adds FLOP/cycle (main thread's cycles; meaningful with OMP_NUM_THREADS=1) to a benchmark.
void flop_per_cycle(benchmark::State& st, double flop, double c0, double c1) {
  if (c0 >= 0 && c1 > c0) st.counters["FLOP/cycle"] = flop * double(st.iterations()) / (c1 - c0);
}

std::vector<double> normals(size_t n, uint64_t seed, double scale = 1.0) {
  Rng rng(seed);
  std::vector<double> v(n);
  for (double& x : v) x = scale * rng.normal();
  return v;
}

Tensor<Cpu, float> random_tensor(const Dims& d, uint64_t seed) {
  Tensor<Cpu, float> t(d);
  Rng rng(seed);
  for (Index i = 0; i < d.size(); ++i) t.data()[i] = float(rng.normal());
  return t;
}

BatchNorm3d<Cpu, float> random_bn(Index c, uint64_t seed) {
  const auto r = normals(size_t(4 * c), seed, 0.3);
  BatchNormParams p;
  for (Index i = 0; i < c; ++i) {
    p.gamma.push_back(1.0 + r[size_t(i)]);
    p.beta.push_back(r[size_t(c + i)]);
    p.running_mean.push_back(r[size_t(2 * c + i)]);
    p.running_var.push_back(1.0 + std::abs(r[size_t(3 * c + i)]));
  }
  return BatchNorm3d<Cpu, float>(p);
}

// Output voxel v of conv(act(in)) computed directly in double.
double direct_conv(const TensorView<const float>& in, const ConvSpec& s, const std::vector<double>& w,
                   const BatchNorm3d<Cpu, float>* pre, const Dims& od, Index v, Index o) {
  const Index x = v % od.w, y = (v / od.w) % od.h, z = (v / (od.w * od.h)) % od.d, n = v / (od.w * od.h * od.d);
  const WindowGeometry& g = s.geometry;
  const Index ci = s.in_channels, taps = g.taps();
  double acc = 0;
  for (Index kd = 0; kd < g.kernel[0]; ++kd)
    for (Index kh = 0; kh < g.kernel[1]; ++kh)
      for (Index kw = 0; kw < g.kernel[2]; ++kw) {
        const Index id = z * g.stride[0] - g.padding[0] + kd * g.dilation[0];
        const Index ih = y * g.stride[1] - g.padding[1] + kh * g.dilation[1];
        const Index iw = x * g.stride[2] - g.padding[2] + kw * g.dilation[2];
        if (id < 0 || ih < 0 || iw < 0 || id >= in.dims.d || ih >= in.dims.h || iw >= in.dims.w) continue;
        const float* p = in.voxel(n, id, ih, iw);
        const Index t = (kd * g.kernel[1] + kh) * g.kernel[2] + kw;
        for (Index c = 0; c < ci; ++c) {
          double a = p[c];
          if (pre) a = std::max(0.0, a * double(pre->scale()[c]) + double(pre->shift()[c]));
          acc += a * w[size_t((o * ci + c) * taps + t)];
        }
      }
  return acc;
}

// Sampled voxels (and the corners) of out against direct_conv; true when all agree to `tolerance`
// relative (1e-4; bf16 operands: 1e-2, issue #17's bound).
bool check_conv(const TensorView<const float>& in, const ConvSpec& s, const std::vector<double>& w,
                const BatchNorm3d<Cpu, float>* pre, const TensorView<const float>& out, std::string& why,
                double tolerance = 1e-4) {
  Rng rng(99);
  const Index vox = out.dims.voxels();
  double worst = 0, scale = 1e-30;
  for (int i = 0; i < 64; ++i) {
    const Index v = i == 0 ? 0 : i == 1 ? vox - 1 : Index(rng.uniform() * double(vox)) % vox;
    for (Index o = 0; o < s.out_channels; o += std::max<Index>(1, s.out_channels / 7)) {
      const double want = direct_conv(in, s, w, pre, out.dims, v, o);
      worst = std::max(worst, std::abs(want - double(out.voxel(v)[o])));
      scale = std::max(scale, std::abs(want));
    }
  }
  if (worst / scale > tolerance) {
    why = "conv output differs from the direct sum: relative error " + std::to_string(worst / scale);
    return false;
  }
  return true;
}

// A conv at DenseNet's shapes: grid (the 128^3 input's grid for that block), channels, kernel.
// winograd: the conv runs as 3D Winograd F(2x4x4, 3x3x3) (backend/cpu/winograd3d.hpp); GFLOP/s stays counted
// in the direct conv's FLOPs (the "effective" rate), and GEMM_GFLOP/s counts what its GEMMs compute.
// inflated: the weights are a random 2D kernel inflated along D by i3d-mean (each kd slice w2 / kD, in
// float), so the conv runs depth-factored (backend/cpu/depth_factor.hpp: 2D rows, or Winograd F(4x4, 3x3)).
// precision kBf16: bf16 operands (the Winograd tile F(2x2x2)); skipped where bf16 cannot run.
void bm_conv_weights(benchmark::State& st, Dims in_dims, Index co, WindowGeometry g, bool fused_pre, bool fused_post,
                     bool winograd, bool inflated, Precision precision = Precision::kFloat32) {
  if (precision == Precision::kBf16 && !cpu::gemm::bf16_available()) {
    st.SkipWithError(cpu::gemm::bf16_unavailable_reason().c_str());
    return;
  }
  const ConvSpec spec{in_dims.c, co, g};
  auto w = normals(size_t(spec.weight_count()), 2, std::sqrt(2.0 / double(in_dims.c * g.taps())));
  if (inflated) {
    const Index kd_n = g.kernel[0], plane = g.kernel[1] * g.kernel[2];
    for (Index u = 0; u < in_dims.c * co; ++u)  // slice 0 of each kernel, divided by kD, kD times
      for (Index j = 0; j < plane; ++j) {
        const double v = double(float(w[size_t(u * kd_n * plane + j)] / double(kd_n)));
        for (Index kd = 0; kd < kd_n; ++kd) w[size_t((u * kd_n + kd) * plane + j)] = v;
      }
  }
  const std::vector<float> wf(w.begin(), w.end());
  Conv3d<Cpu, float> conv(spec, wf.data(), wf.size(), nullptr, 0, precision);
  if (winograd) {
    auto wino = std::make_shared<const cpu::Winograd3d<float>>(spec, wf, std::vector<float>{}, precision);
    const int points = wino->points();
    conv.set_winograd(std::move(wino));
    const Dims od = conv.output_dims(in_dims);
    const double tiles = double(od.n * cpu::winograd::tiles_of(points, od.d, od.h, od.w));
    st.counters["GEMM_GFLOP/s"] = benchmark::Counter(2.0 * tiles * points * double(in_dims.c * co),
                                                      benchmark::Counter::kIsIterationInvariantRate);
  }
  if (inflated && !conv.depth_factored()) st.SkipWithError("inflated weights not depth-factored");
  const auto bn_in = random_bn(in_dims.c, 3);
  const auto bn_out = random_bn(co, 4);
  auto x = random_tensor(in_dims, 1);
  Tensor<Cpu, float> y(conv.output_dims(in_dims));
  Activation<Cpu, float> pre, post;
  if (fused_pre) pre = {&bn_in, true};
  if (fused_post) post = {&bn_out, true};
  CycleCounter cycles;
  const double c0 = cycles.read();
  for (auto _ : st) {
    conv.forward(x.view(), y.view(), pre, post);
    benchmark::ClobberMemory();
  }
  flop_per_cycle(st, spec.flops(in_dims), c0, cycles.read());
  // Check (outside the timed loop): without the post-activation, whose BN+ReLU the spot check lacks.
  conv.forward(x.view(), y.view(), pre, {});
  std::string why;
  if (!check_conv(x.view(), spec, w, fused_pre ? &bn_in : nullptr, y.view(), why,
                  precision == Precision::kBf16 ? 1e-2 : 1e-4))
    st.SkipWithError(why.c_str());
  st.counters["GFLOP/s"] = benchmark::Counter(spec.flops(in_dims), benchmark::Counter::kIsIterationInvariantRate);
}
// ResNet's conv3 -> bn3 -> += identity -> relu (Conv3d::forward_residual, what ConvAddAct runs), pointwise:
// the residual added per voxel tile once its panels are in, while it is in L2. GFLOP/s of the conv's FLOPs.
void bm_conv_residual(benchmark::State& st, Dims in_dims, Index co) {
  const ConvSpec spec{in_dims.c, co, WindowGeometry::cube(1, 1, 0)};
  const auto w = normals(size_t(spec.weight_count()), 2, std::sqrt(2.0 / double(in_dims.c)));
  const std::vector<float> wf(w.begin(), w.end());
  const Conv3d<Cpu, float> conv(spec, wf.data(), wf.size());
  const auto bn_out = random_bn(co, 4);
  const auto x = random_tensor(in_dims, 1);
  const auto r = random_tensor(conv.output_dims(in_dims), 5);
  Tensor<Cpu, float> y(conv.output_dims(in_dims));
  for (auto _ : st) {
    conv.forward_residual(x.view(), r.view(), y.view(), {}, {&bn_out, false}, true);
    benchmark::ClobberMemory();
  }
  // spot check: one output value against the composition, in double
  const Index v = conv.output_dims(in_dims).voxels() / 2, o = co / 3;
  double acc = 0;
  for (Index i = 0; i < in_dims.c; ++i) acc += double(x.view().voxel(v)[i]) * w[size_t(o * in_dims.c + i)];
  const double want =
      std::max(0.0, acc * double(bn_out.scale()[o]) + double(bn_out.shift()[o]) + double(r.view().voxel(v)[o]));
  if (std::abs(double(y.view().voxel(v)[o]) - want) > 1e-4 * (1 + std::abs(want))) st.SkipWithError("residual conv wrong");
  st.counters["GFLOP/s"] = benchmark::Counter(spec.flops(in_dims), benchmark::Counter::kIsIterationInvariantRate);
}

void bm_conv(benchmark::State& st, Dims in_dims, Index co, WindowGeometry g, bool fused_pre, bool fused_post,
             bool winograd) {
  bm_conv_weights(st, in_dims, co, g, fused_pre, fused_post, winograd, false);
}
void bm_conv_bf16(benchmark::State& st, Dims in_dims, Index co, WindowGeometry g, bool fused_pre, bool fused_post,
                  bool winograd) {
  bm_conv_weights(st, in_dims, co, g, fused_pre, fused_post, winograd, false, Precision::kBf16);
}
void bm_conv_inflated(benchmark::State& st, Dims in_dims, Index co, WindowGeometry g, bool fused_pre,
                      bool fused_post, bool winograd) {
  bm_conv_weights(st, in_dims, co, g, fused_pre, fused_post, winograd, true);
}

void bm_maxpool0(benchmark::State& st) {
  const Dims d{1, 64, 64, 64, 64};
  auto x = random_tensor(d, 1);
  const MaxPool3d<Cpu, float> pool(WindowGeometry::cube(3, 2, 1));
  Tensor<Cpu, float> y(pool.output_dims(d));
  for (auto _ : st) {
    pool.forward(x.view(), y.view());
    benchmark::ClobberMemory();
  }
  // output voxel (1,1,1): window input [1,3]^3
  float m = -INFINITY;
  for (Index a = 1; a <= 3; ++a)
    for (Index b = 1; b <= 3; ++b)
      for (Index c = 1; c <= 3; ++c) m = std::max(m, x.view().voxel(0, a, b, c)[5]);
  if (y.view().voxel(0, 1, 1, 1)[5] != m) st.SkipWithError("maxpool output wrong");
  st.counters["GB/s"] = benchmark::Counter(double(d.size() + y.dims().size()) * 4, benchmark::Counter::kIsIterationInvariantRate);
}

void bm_avgpool(benchmark::State& st) {
  const Dims d{1, 32, 32, 32, 128};
  auto x = random_tensor(d, 1);
  const AvgPool3d<Cpu, float> pool(WindowGeometry::cube(2, 2, 0), true);
  Tensor<Cpu, float> y(pool.output_dims(d));
  for (auto _ : st) {
    pool.forward(x.view(), y.view());
    benchmark::ClobberMemory();
  }
  double s = 0;
  for (Index a = 2; a <= 3; ++a)
    for (Index b = 2; b <= 3; ++b)
      for (Index c = 2; c <= 3; ++c) s += x.view().voxel(0, a, b, c)[7];
  if (std::abs(y.view().voxel(0, 1, 1, 1)[7] - s / 8) > 1e-5) st.SkipWithError("avgpool output wrong");
  st.counters["GB/s"] = benchmark::Counter(double(d.size() + y.dims().size()) * 4, benchmark::Counter::kIsIterationInvariantRate);
}

void bm_bn_relu(benchmark::State& st) {
  const Dims d{1, 32, 32, 32, 256};
  auto x = random_tensor(d, 1);
  const auto bn = random_bn(256, 3);
  Tensor<Cpu, float> y(d);
  for (auto _ : st) {
    bn.forward(x.view(), y.view(), true);
    benchmark::ClobberMemory();
  }
  const Index v = 12345, c = 77;
  const float want = std::max(0.f, x.view().voxel(v)[c] * bn.scale()[c] + bn.shift()[c]);
  if (std::abs(y.view().voxel(v)[c] - want) > 1e-5f * (1 + std::abs(want))) st.SkipWithError("bn-relu output wrong");
  st.counters["GB/s"] = benchmark::Counter(double(d.size()) * 8, benchmark::Counter::kIsIterationInvariantRate);
}

double network_gflop(Index d, Index h, Index w) {
  auto out = [](Index n, Index k, Index s, Index p) { return (n + 2 * p - k) / s + 1; };
  std::array<Index, 3> g{out(d, 7, 2, 3), out(h, 7, 2, 3), out(w, 7, 2, 3)};
  double f = 2.0 * double(g[0] * g[1] * g[2]) * 64 * 343;
  for (auto& e : g) e = out(e, 3, 2, 1);
  Index ch = 64;
  const int layers[4] = {6, 12, 24, 16};
  for (int b = 0; b < 4; ++b) {
    const double vox = double(g[0] * g[1] * g[2]);
    for (int l = 0; l < layers[b]; ++l, ch += 32) f += 2 * vox * 128 * double(ch) + 2 * vox * 32 * 128 * 27;
    if (b < 3) {
      f += 2 * vox * double(ch / 2) * double(ch);
      ch /= 2;
      for (auto& e : g) e /= 2;
    }
  }
  return f;
}

struct Checksum {
  std::vector<float> out;
  bool wants(const std::string& n) const { return n == "features.norm5"; }
  void operator()(const std::string&, TensorView<const float> v) { out = to_host(Cpu{}, v); }
};

const Network<Cpu, float>& network() {
  static const Network<Cpu, float> net(random_state_dict("densenet121", 0, 1));
  return net;
}

void bm_network(benchmark::State& st, Index d, Index h, Index w) {
  const auto& net = network();
  auto x = random_tensor({1, d, h, w, 1}, 1);
  Checksum first, now;
  net.forward(x.view(), first);
  CycleCounter cycles;
  const double c0 = cycles.read();
  for (auto _ : st) {
    net.forward(x.view(), now);
    benchmark::ClobberMemory();
  }
  flop_per_cycle(st, network_gflop(d, h, w), c0, cycles.read());
  bool finite = true;
  for (float v : first.out) finite = finite && std::isfinite(v);
  if (!finite || first.out.empty()) st.SkipWithError("network output not finite");
  else if (now.out != first.out) st.SkipWithError("network output changed between iterations");
  st.counters["GFLOP/s"] = benchmark::Counter(network_gflop(d, h, w), benchmark::Counter::kIsIterationInvariantRate);
  st.counters["GFLOP"] = network_gflop(d, h, w) / 1e9;
}

// channel_gram's K = sum_i (w_i f_i) f_i^T over kCkaMaxVoxels samples of c channels: the plain loop it
// used to be (all of K streamed once per sample) against the fixed-order GEMM (same bits, test_gram).
std::vector<double> plain_gram(const std::vector<double>& f, const std::vector<double>& w, long n, long c) {
  std::vector<double> k(size_t(c * c), 0.0);
  for (long i = 0; i < n; ++i)
    for (long p = 0; p < c; ++p) {
      const double wf = w[size_t(i)] * f[size_t(i * c + p)];
      for (long q = 0; q < c; ++q) k[size_t(p * c + q)] += wf * f[size_t(i * c + q)];
    }
  return k;
}
void bm_gram(benchmark::State& st, long c, bool gemm) {
  const long n = 4096;
  Rng rng(3);
  std::vector<double> f(static_cast<size_t>(n * c)), w(static_cast<size_t>(n));
  for (double& v : f) v = rng.normal();
  for (double& v : w) v = 0.5 + std::abs(rng.normal());
  std::vector<double> k;
  for (auto _ : st) {
    k = gemm ? fixed_order_weighted_gram(f.data(), w.data(), n, 1, c) : plain_gram(f, w, n, c);
    benchmark::DoNotOptimize(k.data());
  }
  if (gemm && k != plain_gram(f, w, n, c)) st.SkipWithError("the GEMM is not the plain loop's bits");
  st.counters["GFLOP/s"] = benchmark::Counter(2.0 * double(n) * double(c * c), benchmark::Counter::kIsIterationInvariantRate);
}

// SHA-256 of 32 MB (DenseNet-121's torchvision export) in memory, per kernel this CPU runs.
void bm_sha256(benchmark::State& st, Sha256Kernel kernel) {
  if (!sha256_kernel_supported(kernel)) {
    st.SkipWithError("this CPU has no SHA extensions");
    return;
  }
  std::vector<unsigned char> bytes(size_t(32) << 20);
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<unsigned char>(i * 2654435761u >> 13);
  for (auto _ : st) {
    Sha256 h(kernel);
    h.update(bytes.data(), bytes.size());
    benchmark::DoNotOptimize(h.hex_digest());
  }
  st.SetBytesProcessed(int64_t(st.iterations()) * int64_t(bytes.size()));
}

// One panel of the bf16 GEMM (rows x K x 16*nv, K in segments of 128 as the pointwise convs' chunks and
// Winograd's 128-channel points), on `which` kernels: AVX512-BF16 against AMX tiles in one run. The AMX
// result is checked against the AVX512-BF16 one (the same bf16 operands: 1e-5) outside the timed loop.
void bm_bf16_gemm(benchmark::State& st, cpu::gemm::Bf16Kernels which, Index rows, Index k, int nv) {
  namespace gemm = cpu::gemm;
  if (const std::string why = gemm::bf16_unavailable_reason(); !why.empty()) return st.SkipWithError(why.c_str());
  if (which == gemm::Bf16Kernels::kAmx)
    if (const std::string why = cpu::amx_unavailable_reason(); !why.empty()) return st.SkipWithError(why.c_str());
  const Index pw = 16 * nv;
  Rng rng(5);
  std::vector<cpu::Bf16> a(size_t(rows * k));
  for (auto& v : a) v = cpu::round_to_bf16(float(rng.normal()));
  cpu::AlignedArray<cpu::Bf16> b_store;
  cpu::Bf16* b = b_store.reserve(size_t(k * pw));
  for (Index i = 0; i < k * pw; ++i) b[i] = cpu::round_to_bf16(float(rng.normal()));
  std::vector<gemm::Bf16Segment> segs;
  for (Index k0 = 0; k0 < k; k0 += 128) segs.push_back({a.data() + k0, b + k0 * pw, std::min<Index>(128, k - k0)});
  std::vector<float> c(size_t(rows * pw)), want(c.size());
  gemm::Epilogue ep;
  ep.cols = int(pw);
  auto run = [&](gemm::Bf16Kernels w, float* out) { gemm::gemm_rows_bf16(w, segs.data(), int(segs.size()), k, nv, rows, out, pw, ep); };
  run(gemm::Bf16Kernels::kAvx512Bf16, want.data());
  run(which, c.data());
  double err = 0, scale = 0;
  for (size_t i = 0; i < c.size(); ++i) err = std::max(err, double(std::abs(c[i] - want[i]))), scale = std::max(scale, double(std::abs(want[i])));
  if (err > 1e-5 * scale) return st.SkipWithError("the result differs from the AVX512-BF16 kernels'");
  CycleCounter cycles;
  const double c0 = cycles.read();
  for (auto _ : st) {
    run(which, c.data());
    benchmark::DoNotOptimize(c.data());
  }
  const double flop = 2.0 * double(rows) * double(k) * double(pw);
  flop_per_cycle(st, flop, c0, cycles.read());
  st.counters["GFLOP/s"] = benchmark::Counter(flop, benchmark::Counter::kIsIterationInvariantRate);
}

void register_all(bool full) {
  using benchmark::RegisterBenchmark;
  const auto k1 = WindowGeometry::cube(1);
  const auto k3 = WindowGeometry::cube(3, 1, 1);
  // 1x1x1 conv1 of a dense layer (fused norm1+relu1) at each block's grid and a typical width, 128^3 input.
  RegisterBenchmark("conv1x1/block1_c64_to128_32^3", bm_conv, Dims{1, 32, 32, 32, 64}, 128, k1, true, false, false)->UseRealTime();
  RegisterBenchmark("conv1x1/block1_c224_to128_32^3", bm_conv, Dims{1, 32, 32, 32, 224}, 128, k1, true, false, false)->UseRealTime();
  RegisterBenchmark("conv1x1/block2_c320_to128_16^3", bm_conv, Dims{1, 16, 16, 16, 320}, 128, k1, true, false, false)->UseRealTime();
  RegisterBenchmark("conv1x1/block3_c640_to128_8^3", bm_conv, Dims{1, 8, 8, 8, 640}, 128, k1, true, false, false)->UseRealTime();
  RegisterBenchmark("conv1x1/block4_c768_to128_4^3", bm_conv, Dims{1, 4, 4, 4, 768}, 128, k1, true, false, false)->UseRealTime();
  RegisterBenchmark("conv1x1/transition1_c256_to128_32^3", bm_conv, Dims{1, 32, 32, 32, 256}, 128, k1, true, false, false)->UseRealTime();
  RegisterBenchmark("conv1x1/block1_c160_to128_post_32^3", bm_conv, Dims{1, 32, 32, 32, 160}, 128, k1, true, true, false)->UseRealTime();
  // ResNet-50's bottleneck 1x1 convs at 128^3 (post-activation: BN+ReLU in the epilogue, none before)
  for (auto [c_in, c_out, s] : std::vector<std::array<Index, 3>>{{256, 64, 32}, {64, 256, 32}, {512, 128, 16}, {1024, 256, 8}})
    RegisterBenchmark(("conv1x1/resnet_c" + std::to_string(c_in) + "_to" + std::to_string(c_out) + "_" +
                       std::to_string(s) + "^3").c_str(),
                      bm_conv, Dims{1, s, s, s, c_in}, c_out, k1, false, true, false)
        ->UseRealTime();
  // and their conv3 with the residual add (ConvAddAct)
  for (auto [c_in, c_out, s] : std::vector<std::array<Index, 3>>{{64, 256, 32}, {128, 512, 16}, {256, 1024, 8}})
    RegisterBenchmark(("conv1x1/resnet_c" + std::to_string(c_in) + "_to" + std::to_string(c_out) + "_residual_" +
                       std::to_string(s) + "^3").c_str(),
                      bm_conv_residual, Dims{1, s, s, s, c_in}, c_out)
        ->UseRealTime();
  // 3x3x3 conv2 (128 -> 32) at each block's grid.
  RegisterBenchmark("conv3x3x3/128_to32_32^3", bm_conv, Dims{1, 32, 32, 32, 128}, 32, k3, false, false, false)->UseRealTime();
  RegisterBenchmark("conv3x3x3/128_to32_16^3", bm_conv, Dims{1, 16, 16, 16, 128}, 32, k3, false, false, false)->UseRealTime();
  RegisterBenchmark("conv3x3x3/128_to32_8^3", bm_conv, Dims{1, 8, 8, 8, 128}, 32, k3, false, false, false)->UseRealTime();
  RegisterBenchmark("conv3x3x3/128_to32_prebnrelu_32^3", bm_conv, Dims{1, 32, 32, 32, 128}, 32, k3, true, false, false)->UseRealTime();
  // The same 3x3x3 convs as 3D Winograd, and VGG's 3x3x3 convs (64x128x128 input: each block's width on a
  // smaller grid of the same kind), direct and Winograd, so each pair's ratio comes from one run.
  RegisterBenchmark("winograd/128_to32_32^3", bm_conv, Dims{1, 32, 32, 32, 128}, 32, k3, false, false, true)->UseRealTime();
  RegisterBenchmark("winograd/128_to32_16^3", bm_conv, Dims{1, 16, 16, 16, 128}, 32, k3, false, false, true)->UseRealTime();
  RegisterBenchmark("winograd/128_to32_8^3", bm_conv, Dims{1, 8, 8, 8, 128}, 32, k3, false, false, true)->UseRealTime();
  RegisterBenchmark("winograd/128_to32_prebnrelu_32^3", bm_conv, Dims{1, 32, 32, 32, 128}, 32, k3, true, false, true)->UseRealTime();
  // The same in bf16 (F(2x2x2), bf16 GEMMs), with the direct bf16 conv beside it.
  RegisterBenchmark("winograd_bf16/128_to32_prebnrelu_32^3", bm_conv_bf16, Dims{1, 32, 32, 32, 128}, 32, k3, true, false, true)->UseRealTime();
  RegisterBenchmark("winograd_bf16/128_to32_prebnrelu_16^3", bm_conv_bf16, Dims{1, 16, 16, 16, 128}, 32, k3, true, false, true)->UseRealTime();
  RegisterBenchmark("conv3x3x3_bf16/128_to32_prebnrelu_32^3", bm_conv_bf16, Dims{1, 32, 32, 32, 128}, 32, k3, true, false, false)->UseRealTime();
  // The same with weights inflated by i3d-mean: Winograd F(4x4, 3x3) on the depth sum, and the
  // depth-factored direct conv.
  RegisterBenchmark("winograd_inflated/128_to32_32^3", bm_conv_inflated, Dims{1, 32, 32, 32, 128}, 32, k3, false, false, true)->UseRealTime();
  RegisterBenchmark("winograd_inflated/128_to32_16^3", bm_conv_inflated, Dims{1, 16, 16, 16, 128}, 32, k3, false, false, true)->UseRealTime();
  RegisterBenchmark("winograd_inflated/128_to32_prebnrelu_32^3", bm_conv_inflated, Dims{1, 32, 32, 32, 128}, 32, k3, true, false, true)->UseRealTime();
  RegisterBenchmark("conv3x3x3_inflated/128_to32_prebnrelu_32^3", bm_conv_inflated, Dims{1, 32, 32, 32, 128}, 32, k3, true, false, false)->UseRealTime();
  for (auto [c_in, c_out, d, hw] : std::vector<std::array<Index, 4>>{
           {3, 64, 16, 64}, {64, 64, 16, 64}, {128, 128, 16, 32}, {256, 256, 8, 16}, {512, 512, 8, 16}, {512, 512, 4, 8}}) {
    const std::string name = std::to_string(c_in) + "_to" + std::to_string(c_out) + "_" + std::to_string(d) + "x" +
                             std::to_string(hw) + "x" + std::to_string(hw);
    for (bool wino : {false, true})
      RegisterBenchmark(((wino ? "winograd/vgg_" : "conv3x3x3/vgg_") + name).c_str(), bm_conv, Dims{1, d, hw, hw, c_in},
                        c_out, k3, false, true, wino)
          ->UseRealTime();
    // bf16's F(2x2x2) against float32's F(2x4x4) above (winograd3d_select.hpp, winograd_precision), and
    // the direct conv in bf16 (row by row: bf16 convs take no bands, bench/README.md, session 46)
    if (c_in >= 16)
      for (bool wino : {false, true})
        RegisterBenchmark(((wino ? "winograd_bf16/vgg_" : "conv3x3x3_bf16/vgg_") + name).c_str(), bm_conv_bf16,
                          Dims{1, d, hw, hw, c_in}, c_out, k3, false, true, wino)
            ->UseRealTime();
  }
  // Stem: 7^3 stride 2 pad 3, 1 -> 64, with norm0+relu0 fused.
  RegisterBenchmark("stem/conv0_7^3_s2_128^3", bm_conv, Dims{1, 128, 128, 128, 1}, 64, WindowGeometry::cube(7, 2, 3), false, true, false)->UseRealTime();
  // VGG's conv1_1 after the stem collapse (1 input channel -> 64, 3x3x3 pad 1, ReLU), the 64x128x128 input's
  // full grid at a quarter of its depth.
  RegisterBenchmark("stem/vgg_conv1_1_1_to64_16x128x128", bm_conv, Dims{1, 16, 128, 128, 1}, 64, k3, false, true, false)
      ->UseRealTime();
  for (Sha256Kernel k : {Sha256Kernel::kPortable, Sha256Kernel::kShaNi})
    RegisterBenchmark((std::string("sha256/") + sha256_kernel_name(k) + "_32MB").c_str(), bm_sha256, k)
        ->Unit(benchmark::kMillisecond);
  // The bf16 GEMM's kernels side by side (one thread's work: OMP_NUM_THREADS does not matter here).
  for (const auto which : {cpu::gemm::Bf16Kernels::kAvx512Bf16, cpu::gemm::Bf16Kernels::kAmx})
    for (auto [rows, k, nv] : std::vector<std::array<Index, 3>>{{512, 128, 2}, {512, 512, 4}, {96, 128, 2}, {17, 256, 4}})
      RegisterBenchmark((std::string("bf16_gemm/") + cpu::gemm::bf16_kernels_name(which) + "_" + std::to_string(rows) + "x" +
                         std::to_string(k) + "x" + std::to_string(16 * nv))
                            .c_str(),
                        bm_bf16_gemm, which, rows, k, int(nv));
  RegisterBenchmark("pool/maxpool0_64^3x64", bm_maxpool0)->UseRealTime();
  RegisterBenchmark("pool/avgpool_32^3x128", bm_avgpool)->UseRealTime();
  RegisterBenchmark("bn_relu/32^3x256", bm_bn_relu)->UseRealTime();
  for (long c : {64L, 256L, 1024L}) {
    const std::string n = std::to_string(c);
    RegisterBenchmark(("gram/plain_loop_4096x" + n).c_str(), bm_gram, c, false)->Unit(benchmark::kMillisecond)->UseRealTime();
    RegisterBenchmark(("gram/fixed_order_gemm_4096x" + n).c_str(), bm_gram, c, true)->Unit(benchmark::kMillisecond)->UseRealTime();
  }
  for (auto [d, h, w] : std::vector<std::array<Index, 3>>{{64, 64, 64}, {128, 128, 128}, {54, 128, 128}, {108, 256, 256}})
    RegisterBenchmark(("network/" + std::to_string(d) + "x" + std::to_string(h) + "x" + std::to_string(w)).c_str(),
                      bm_network, d, h, w)
        ->Unit(benchmark::kMillisecond)
        ->MinTime(2.0)->UseRealTime();
  if (full) RegisterBenchmark("network/216x512x512", bm_network, 216, 512, 512)->Unit(benchmark::kMillisecond)->Iterations(2);
}

}  // namespace

int main(int argc, char** argv) {
  bool full = false;
  std::vector<char*> args;
  for (int i = 0; i < argc; ++i) {
    if (std::strcmp(argv[i], "--full") == 0) full = true;
    else args.push_back(argv[i]);
  }
  int n = int(args.size());
  benchmark::Initialize(&n, args.data());
  register_all(full);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
