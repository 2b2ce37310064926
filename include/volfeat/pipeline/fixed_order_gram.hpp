#pragma once
// A weighted Gram matrix K = sum_i (w_i f_i) f_i^T (C x C) as a blocked GEMM whose every entry is summed
// in ONE fixed order: over the rows i in ascending order, starting from 0, one multiply-add per row,
// exactly as the plain triple loop does. Only where and when each entry is computed changes (register
// tiles of kMr x kNr entries, panels of kKc rows packed into aligned zero-padded buffers, tiles spread
// over OpenMP threads), never the sequence of operations on it, so the result does not depend on the
// thread count, the input's alignment or the blocking. (Eigen's GEMM, tried for channel_gram, splits
// the depth into cache-sized blocks and vectorised partial sums chosen from the buffer's alignment and
// the threads: the last bits of K, and of CKA, moved with them.)
#include <algorithm>
#include <cstddef>
#include <cstdlib>
#include <memory>
#include <new>
#include <vector>

namespace volfeat {

namespace detail::gram {
inline constexpr long kMr = 4;    // rows of K per register tile (4 x 8 doubles: 8 AVX2 accumulators)
inline constexpr long kNr = 8;    // columns of K per register tile
inline constexpr long kKc = 128;  // sample rows per packed panel (a 1024-channel panel is 1 MiB)
inline constexpr std::size_t kAlign = 64;

struct FreeDeleter {
  void operator()(double* p) const { std::free(p); }
};
// n doubles, 64-byte aligned, zeroed.
inline std::unique_ptr<double[], FreeDeleter> aligned_zeros(std::size_t n) {
  const std::size_t bytes = (n * sizeof(double) + kAlign - 1) / kAlign * kAlign;
  auto* p = static_cast<double*>(std::aligned_alloc(kAlign, std::max<std::size_t>(bytes, kAlign)));
  if (!p) throw std::bad_alloc();
  std::fill(p, p + n, 0.0);
  return std::unique_ptr<double[], FreeDeleter>(p);
}

// acc (kMr x kNr, row stride ldk) += sum over kc rows of a[i][r] * b[i][j], row by row.
inline void micro_kernel(const double* a, const double* b, long kc, double* k, long ldk) {
  double acc[kMr][kNr];
  for (long r = 0; r < kMr; ++r)
    for (long j = 0; j < kNr; ++j) acc[r][j] = k[r * ldk + j];
  for (long i = 0; i < kc; ++i) {
    const double* ai = a + i * kMr;
    const double* bi = b + i * kNr;
    for (long r = 0; r < kMr; ++r)
      for (long j = 0; j < kNr; ++j) acc[r][j] += ai[r] * bi[j];
  }
  for (long r = 0; r < kMr; ++r)
    for (long j = 0; j < kNr; ++j) k[r * ldk + j] = acc[r][j];
}
}  // namespace detail::gram

// K[p][q] (row-major, c x c, overwritten) = sum over i = 0, step, 2 step, ... < count, in that order, of
// (weights[i] * rows[i][p]) * rows[i][q]. rows: count x c, row-major.
inline std::vector<double> fixed_order_weighted_gram(const double* rows, const double* weights, long count, long step,
                                                     long c) {
  using namespace detail::gram;
  const long cp = (c + kNr - 1) / kNr * kNr;  // a multiple of kMr and kNr; padded entries stay 0
  const long n = count > 0 ? (count + step - 1) / step : 0;
  auto k = aligned_zeros(std::size_t(cp * cp));
  auto a = aligned_zeros(std::size_t(kKc * cp));  // [p tile][row][kMr]: w_i f_ip
  auto b = aligned_zeros(std::size_t(kKc * cp));  // [q tile][row][kNr]: f_iq
  for (long i0 = 0; i0 < n; i0 += kKc) {
    const long kc = std::min(kKc, n - i0);
    if (cp != c || kc != kKc) {  // the panels' layout follows kc: clear the lanes of the padded channels
      std::fill(a.get(), a.get() + kKc * cp, 0.0);
      std::fill(b.get(), b.get() + kKc * cp, 0.0);
    }
    for (long i = 0; i < kc; ++i) {
      const double* f = rows + (i0 + i) * step * c;
      const double w = weights[(i0 + i) * step];
      for (long p = 0; p < c; ++p) {
        a[std::size_t((p / kMr) * kc * kMr + i * kMr + p % kMr)] = w * f[p];
        b[std::size_t((p / kNr) * kc * kNr + i * kNr + p % kNr)] = f[p];
      }
    }
    // Tiles of K are independent and each is summed row by row: any thread may take any tile. Threads
    // only from about 512 channels on: below, a panel is a few ms of work (bench/README.md) and the
    // region's barrier costs more than it saves on a loaded machine.
    const long tiles_p = cp / kMr, tiles_q = cp / kNr;
#pragma omp parallel for schedule(static) if (tiles_p * tiles_q * kc >= (1L << 20))
    for (long t = 0; t < tiles_p * tiles_q; ++t) {
      const long tp = t / tiles_q, tq = t % tiles_q;
      micro_kernel(a.get() + tp * kc * kMr, b.get() + tq * kc * kNr, kc, k.get() + tp * kMr * cp + tq * kNr, cp);
    }
  }
  std::vector<double> out(std::size_t(c * c));
  for (long p = 0; p < c; ++p) std::copy(k.get() + p * cp, k.get() + p * cp + c, out.begin() + p * c);
  return out;
}

}  // namespace volfeat
