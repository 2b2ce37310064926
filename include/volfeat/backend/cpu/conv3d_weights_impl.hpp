#pragma once
// How Conv3d<Cpu> packs its weights (pack_weights, declared in conv3d.hpp with what it packs for whom): the
// float panels of the direct convs, their bf16 k-pair panels (gemm_bf16.hpp), and the double path's
// (K, C_out) matrix. Included by conv3d.hpp; not meant to be included alone.
#include <algorithm>

#include "volfeat/backend/cpu/conv3d.hpp"

namespace volfeat {

template <class T>
template <class W>
void Conv3d<Cpu, T>::pack_weights(const W* weight, Index taps) {
  const Index ci = spec_.in_channels, co = spec_.out_channels;
  if (taps < 0) taps = spec_.geometry.taps();
  if constexpr (kFast) {
    nv_ = cpu::gemm::panel_vectors(co);
    const Index pw = 16 * nv_, k = ci * taps;
    panels_ = (co + pw - 1) / pw;
    panel_floats_ = k * pw;
    b_unit_ = b_unit(false);
    pair_unit_ = 0;
    if (bf16_) {
      // k-pair rows: (B[k][o], B[k+1][o]) adjacent (gemm_bf16.hpp), each unit of the natural
      // b_unit(false) k steps padded to b_unit(true), an even count, with zeros.
      const Index unit = b_unit(false), kw_n = spec_.geometry.kernel[2];
      b_unit_ = b_unit(true);
      // Tap rows in pairs where a merged tap row (kW * C_in values) is odd-long: a gray stem's row of 7
      // kw taps takes 4 k-pairs, one of them half zeros. The pairs are (kh, kh + 1) = (0, 1), (2, 3), ... of
      // each kd (each group of kH tap rows; depth-factored, the one group): pair P = kd * (kH / 2) + kh / 2
      // holds, at k-pair q = kw * C_in + i, (B of tap row (kd, kh), B of tap row (kd, kh + 1)): 7 k-pairs for
      // both rows, against 8 (rows_fast interleaves the two input rows to match). An odd kH leaves each kd
      // its last row, in its padded unit, after all the pairs. Pairs within a kd start on one row parity
      // where stride_h is even, so that each input plane's pairs can be made once a pass
      // (backend/cpu/paired_tap_rows.hpp); pairs across kd saved 3 of DenseNet's stem's 175 k-pair steps.
      const Index kh_n = spec_.geometry.kernel[1];
      const Index rows_n = unit == kw_n * ci ? taps / kw_n : 0;  // tap rows (kd, kh), or kh depth-factored
      if (unit % 2 == 1 && rows_n >= 2 && kh_n >= 2 && rows_n % kh_n == 0) pair_unit_ = 2 * unit;
      const Index groups = pair_unit_ ? rows_n / kh_n : 0, pairs = groups * (kh_n / 2);
      panel_floats_ = (pairs * pair_unit_ + (k / unit - 2 * pairs) * b_unit_) * pw;
      cpu::Bf16* b = panel16_store_.reserve(size_t(panels_ * panel_floats_));
      std::fill(b, b + panels_ * panel_floats_, cpu::Bf16(0));
      for (Index o = 0; o < co; ++o)
        for (Index i = 0; i < ci; ++i)
          for (Index t = 0; t < taps; ++t) {
            // (tap row kd*kH + kh, kw) when kw taps merge, else one unit per tap
            const Index row = t / kw_n, q = (t % kw_n) * ci + i;  // (merged) tap row, its k step
            Index kk = 0;
            if (pair_unit_) {
              const Index grp = row / kh_n, h = row % kh_n;  // kd (or 0 depth-factored), kh
              kk = h < 2 * (kh_n / 2) ? (grp * (kh_n / 2) + h / 2) * pair_unit_ + 2 * q + h % 2
                                      : pairs * pair_unit_ + grp * b_unit_ + q;  // the kd's odd last row
            } else {
              kk = unit == kw_n * ci ? row * b_unit_ + q : t * b_unit_ + i;
            }
            b[(o / pw) * panel_floats_ + (kk / 2) * 2 * pw + (o % pw) * 2 + kk % 2] =
                cpu::round_to_bf16(static_cast<float>(weight[(o * ci + i) * taps + t]));
          }
      return;
    }
    // rows_fast runs in bands of output rows where the panel outgrows L2 (backend/cpu/conv_bands.hpp)
    bands_ = !pointwise() && cpu::conv_bands::pays(spec_.geometry, panel_floats_ * Index(sizeof(float)));
    float* b = panel_store_.reserve(size_t(panels_ * panel_floats_));
    std::fill(b, b + panels_ * panel_floats_, 0.f);
    for (Index o = 0; o < co; ++o)
      for (Index i = 0; i < ci; ++i)
        for (Index t = 0; t < taps; ++t)
          b[(o / pw) * panel_floats_ + (t * ci + i) * pw + o % pw] =
              static_cast<float>(weight[(o * ci + i) * taps + t]);
  } else {
    packed_.resize(ci * taps, co);
    for (Index o = 0; o < co; ++o)
      for (Index i = 0; i < ci; ++i)
        for (Index t = 0; t < taps; ++t) packed_(t * ci + i, o) = static_cast<T>(weight[(o * ci + i) * taps + t]);
  }
}

}  // namespace volfeat
