// The CUDA backend's tensor-core conv kernel (backend/thrust/conv3d_tensor_core_kernel.hpp), its own
// source run on the host under tests/support/wmma_emulation.hpp (a fiber per CUDA thread), against the
// double reference over the shared conv problems that have 32-channel output tiles: plain, and with
// the fused pre-activation (BN, BN+ReLU, ReLU) and post-activation on strided channel slices of wider tensors
// (the dense block's buffer), both arithmetics (3xTF32 = float32 within 1e-5, TF32 within 1e-2 and
// visibly rounded), and both input paths (32-channel vector loads, and k-by-k gathers).
// It runs in CI, where no GPU exists; on a GPU, test_primitives_cuda runs the same kernel for real.
#define BOOST_TEST_MODULE tensor_core_emulated
#include <boost/test/unit_test.hpp>
#include <map>
#include <set>
#include <utility>

#include "support/primitive_checks.hpp"
#include "support/sanitized.hpp"
#include "volfeat/backend/thrust/batchnorm3d.hpp"
// After Thrust's headers, before the kernel's.
#include "support/wmma_emulation.hpp"
#include "volfeat/backend/thrust/conv3d_tensor_core_kernel.hpp"

using namespace volfeat;
using namespace volfeat::test;
namespace tc = volfeat::thrust_detail::tensor_core;
using thrust_detail::PreAct;

namespace {

// A Conv3d<Thrust>'s packing: (tap, c_in) rows x C_out padded to 32 columns.
std::vector<float> pack(const std::vector<double>& w, Index ci, Index co, Index taps, Index co_padded) {
  std::vector<float> packed(size_t(ci * taps * co_padded), 0.f);
  for (Index o = 0; o < co; ++o)
    for (Index i = 0; i < ci; ++i)
      for (Index t = 0; t < taps; ++t) packed[size_t((t * ci + i) * co_padded + o)] = float(w[size_t((o * ci + i) * taps + t)]);
  return packed;
}

// As the launcher (conv3d_tensor_core.hpp) runs it.
template <tc::Math M, PreAct Pre>
void run(const tc::Problem& p, bool vec) {
  const unsigned blocks = unsigned((p.out.voxels() + tc::kBM - 1) / tc::kBM * p.n_tiles);
  wmma_emulation::launch(blocks, tc::kThreads, [&] {
    if (vec) tc::conv_kernel<M, Pre, true>(p);
    else tc::conv_kernel<M, Pre, false>(p);
  });
}

template <tc::Math M>
void run(const tc::Problem& p, PreAct pre, bool vec) {
  switch (pre) {
    case PreAct::kNone: return run<M, PreAct::kNone>(p, vec);
    case PreAct::kBn: return run<M, PreAct::kBn>(p, vec);
    case PreAct::kBnRelu: return run<M, PreAct::kBnRelu>(p, vec);
    case PreAct::kRelu: return run<M, PreAct::kRelu>(p, vec);
  }
}

std::vector<ConvProblem> tensor_core_problems() {
  std::vector<ConvProblem> out;
  for (const ConvProblem& p : conv_problems())
    if (p.out_channels > 16) out.push_back(p);  // Conv3d<Thrust> packs these 32 columns at a time
  // DenseNet's bottleneck 1x1 over a wide buffer (its growth 3x3x3 conv is dense_3x3x3_c128_long_rows);
  // two input chunks of 32 and two output tiles of 32; a batch of 2; an anisotropic kernel.
  out.push_back({"bottleneck_1x1_c256_128_out", {1, 3, 5, 20, 256}, 128, WindowGeometry::cube(1), false});
  out.push_back({"c64_40_out", {1, 2, 6, 20, 64}, 40, WindowGeometry::cube(3, 1, 1), true});
  out.push_back({"batch2_c32", {2, 2, 9, 17, 32}, 32, WindowGeometry::cube(3, 1, 1), false});
  out.push_back({"anisotropic_1x3x5_c32", {1, 4, 11, 18, 32}, 24, geom({1, 3, 5}, {1, 1, 1}, {0, 1, 2}), true});
  return out;
}

}  // namespace

BOOST_AUTO_TEST_CASE(tensor_core_kernel_matches_reference) {
  double worst[2] = {0, 0};
  int runs = 0, vector_runs = 0;
  std::set<std::pair<int, bool>> covered;  // (pre-activation, vector loads) pairs that ran
  std::map<PreAct, int> vector_capable;   // runs of each pre-activation on a problem with C_in % 32 == 0
  for (const ConvProblem& p : tensor_core_problems()) {
    const ref::Array5 x = random_array(p.in, 21);
    const auto w = random_values(size_t(p.out_channels * p.in.c * p.geometry.taps()), 22);
    const auto b = p.bias ? random_values(size_t(p.out_channels), 23) : std::vector<double>{};
    const Index co_padded = (p.out_channels + tc::kBN - 1) / tc::kBN * tc::kBN;
    const std::vector<float> packed = pack(w, p.in.c, p.out_channels, p.geometry.taps(), co_padded);
    const std::vector<float> bias(b.begin(), b.end());
    const BatchNormParams bn_in = random_bn(p.in.c, 24), bn_out = random_bn(p.out_channels, 25);
    const BatchNorm3d<Thrust, float> pre_bn(bn_in), post_bn(bn_out);
    const Dims od = ConvSpec{p.in.c, p.out_channels, p.geometry}.output_dims(p.in);

    // Plain (dense views), then each pre-activation with BN+ReLU after, on slices: input channels
    // [lead, lead + C) of a wider tensor (lead 0 keeps the vector path where C_in % 32 == 0; lead
    // alternates over such problems, so each pre-activation meets both paths), output channels [3, 3 + O)
    // of a wider one whose other channels must stay untouched. Emulated blocks are slow (each of a warp's
    // 32 lanes computes the whole WMMA tile), so problems of over 48 block-tiles run the plain conv and
    // the dense layer's BN+ReLU one only.
    const Index blocks = (ConvSpec{p.in.c, p.out_channels, p.geometry}.output_dims(p.in).voxels() + tc::kBM - 1) / tc::kBM *
                         ((p.out_channels + tc::kBN - 1) / tc::kBN);
    const bool heavy = blocks * ((p.geometry.taps() * p.in.c + tc::kBK - 1) / tc::kBK) > 48;
    if (heavy && kSanitized) {  // under ASan 111 s alone with them, 7 s without (fibers, Zen 5,
                                // 2026-12-07); the light ones cover both paths
      BOOST_TEST_MESSAGE("SKIP " << p.name << " under the sanitizers (" << blocks << " blocks, too slow emulated)");
      continue;
    }
    for (int variant = 0; variant < 5; ++variant) {
      if (heavy && variant != 0 && variant != 3) continue;
      const PreAct pre = variant == 0 ? PreAct::kNone : static_cast<PreAct>(variant - 1);
      const bool fused = variant > 0;
      const Index lead = !fused || heavy ? 0 : p.in.c % 32 == 0 ? vector_capable[pre]++ % 2 : 1, tail = fused ? 4 : 0;
      std::vector<ref::Array5> parts;
      if (lead > 0) parts.push_back(random_array({p.in.n, p.in.d, p.in.h, p.in.w, lead}, 26));
      parts.push_back(x);
      if (tail > 0) parts.push_back(random_array({p.in.n, p.in.d, p.in.h, p.in.w, tail}, 27));
      const auto in_host = ref::to_channels_last<float>(ref::concat_channels(parts));
      const Index in_ld = p.in.c + lead + tail, out_ld = p.out_channels + (fused ? 5 : 0), out_lead = fused ? 3 : 0;
      Dims wide_od = od;
      wide_od.c = out_ld;
      const ref::Array5 sentinel = random_array(wide_od, 28);
      const std::vector<float> sentinel_host = ref::to_channels_last<float>(sentinel);

      // The wanted result: the reference conv of the activated input, then bias, BN and ReLU.
      ref::Array5 act_in = x;
      if (pre == PreAct::kBn || pre == PreAct::kBnRelu) act_in = ref::batchnorm(x, bn_in);
      if (pre == PreAct::kBnRelu || pre == PreAct::kRelu) act_in = ref::relu(act_in);
      ref::Array5 want = ref::conv3d(act_in, w, b, p.out_channels, p.geometry);
      if (fused) want = ref::relu(ref::batchnorm(want, bn_out));
      const std::vector<double> want_host = ref::to_channels_last<double>(want);

      double err[2];
      for (int m = 0; m < 2; ++m) {
        std::vector<float> out_host = sentinel_host;
        tc::Problem prob;
        prob.in = thrust_detail::DeviceView<const float>(
            TensorView<const float>(in_host.data(), p.in, in_ld).channels(lead, p.in.c));
        prob.out = thrust_detail::DeviceView<float>(TensorView<float>(out_host.data(), od, out_ld).channels(out_lead, p.out_channels));
        prob.g = thrust_detail::DeviceWindow(p.geometry);
        prob.ci = int(p.in.c);
        prob.co = int(p.out_channels);
        prob.co_padded = int(co_padded);
        prob.k_total = int(p.geometry.taps() * p.in.c);
        prob.n_tiles = int(co_padded / tc::kBN);
        prob.weight = packed.data();
        prob.bias = bias.empty() ? nullptr : bias.data();
        if (pre == PreAct::kBn || pre == PreAct::kBnRelu) prob.pre_scale = pre_bn.scale(), prob.pre_shift = pre_bn.shift();
        if (fused) prob.post = thrust_detail::DeviceActivation<float>{post_bn.scale(), post_bn.shift(), true};
        const bool vec = tc::vector_loads(prob.in, prob.ci);
        vector_runs += vec;
        covered.insert({int(pre), vec});
        if (m == 0) run<tc::Math::kTf32x3>(prob, pre, vec);
        else run<tc::Math::kTf32>(prob, pre, vec);

        std::vector<double> got, untouched_got, untouched_want;
        for (Index v = 0; v < od.voxels(); ++v)
          for (Index c = 0; c < out_ld; ++c) {
            const size_t i = size_t(v * out_ld + c);
            if (c >= out_lead && c < out_lead + p.out_channels) got.push_back(out_host[i]);
            else untouched_got.push_back(out_host[i]), untouched_want.push_back(sentinel_host[i]);
          }
        BOOST_TEST_CONTEXT(p.name << ", variant " << variant << (m == 0 ? ", 3xTF32" : ", TF32")
                                  << (vec ? ", vector loads" : ", gathers")) {
          BOOST_TEST((untouched_got == untouched_want));
          err[m] = relative_error(got, want_host);
          BOOST_TEST(err[m] <= (m == 0 ? 1e-5 : 1e-2));
        }
        worst[m] = std::max(worst[m], err[m]);
        ++runs;
      }
      BOOST_TEST(err[1] > err[0], p.name << " variant " << variant << ": TF32's rounding must show");
    }
  }
  BOOST_TEST(vector_runs > 0);
  BOOST_TEST(vector_runs < runs);
  BOOST_TEST(covered.size() == 8u);  // every pre-activation on both paths
  BOOST_TEST_MESSAGE("tensor-core kernel (emulated), " << runs << " runs (" << vector_runs << " with vector loads, "
                                                       << runs - vector_runs << " with gathers): worst relative error "
                                                       << "3xTF32 " << worst[0] << ", TF32 " << worst[1]);
}
