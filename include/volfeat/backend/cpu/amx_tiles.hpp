#pragma once
// Intel AMX tiles for the bf16 GEMM (gemm_amx.hpp): the tile configuration, the process's permission
// to use tile data, and two implementations of the five tile operations the GEMM uses, behind one
// interface:
//  * AmxTiles, the instructions (ldtilecfg, tilezero, tileloadd, tilestored, tdpbf16ps), compiled under
//    VOLFEAT_TARGET_AMX whatever the build's -march and run only where amx_unavailable_reason() is "";
//  * EmulatedTiles, a software model of the same instructions, with the same shape rules (a shape the
//    hardware would fault on aborts here, naming it). It runs on any CPU, so the GEMM's blocking, its
//    strides, its row tails and its epilogue are tested on every machine (VOLFEAT_BF16_KERNELS=
//    amx-emulated runs whole networks through it); what it cannot test is the instructions themselves,
//    which run only on an AMX CPU (tests/test_gemm_kernels.cpp runs both there).
//
// A tile is up to 16 rows of up to 64 bytes. tdpbf16ps C += A.B, with C an M x N tile of floats (N <= 16),
// A an M x 2K tile of bf16 (K pairs, K <= 16) and B a K x N tile of bf16 pairs: row p of B holds, for each
// column n, the pair (B[2p][n], B[2p+1][n]) as one 32-bit lane, the layout the AVX512-BF16 kernels'
// panels already have (gemm_bf16.hpp), so the same packed weights feed both.
//   C[m][n] += A[m][2p] * B[p][n].lo + A[m][2p+1] * B[p][n].hi   for p < K, in float
// (the instruction flushes denormal inputs and outputs to zero and rounds to nearest even).
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "volfeat/backend/cpu/gemm_types.hpp"
#include "volfeat/backend/cpu/isa.hpp"

#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

#if VOLFEAT_HAVE_ISA_VARIANTS
#include <immintrin.h>
#define VOLFEAT_TARGET_AMX \
  __attribute__((target("amx-tile,amx-bf16,avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,avx2,fma")))
#else
#define VOLFEAT_TARGET_AMX
#endif

namespace volfeat::cpu {

// bf16 values in one tile row of A (64 bytes): the bf16 GEMM on tiles steps along K by this.
constexpr Index kAmxTileK = 32;

// Whether the tiles take these segments of the bf16 GEMM: every length a multiple of kAmxTileK (the
// convs' channel counts are, except the stems' and the first convs'; those run the AVX512-BF16 kernels).
inline bool amx_takes(const gemm::Bf16Segment* segs, int nseg) {
  for (int s = 0; s < nseg; ++s)
    if (segs[s].len % kAmxTileK != 0) return false;
  return true;
}

// ldtilecfg's 64-byte operand, palette 1: rows and bytes per row of each of the 8 tiles (an unused tile
// has both 0).
struct alignas(64) TileConfig {
  std::uint8_t palette = 1;
  std::uint8_t start_row = 0;
  std::uint8_t reserved[14] = {};
  std::uint16_t colsb[16] = {};
  std::uint8_t rows[16] = {};

  void set(int tile, int nrows, int bytes_per_row) {
    rows[tile] = std::uint8_t(nrows);
    colsb[tile] = std::uint16_t(nrows > 0 ? bytes_per_row : 0);
  }
  bool operator==(const TileConfig& o) const { return std::memcmp(this, &o, sizeof *this) == 0; }
};
static_assert(sizeof(TileConfig) == 64, "ldtilecfg reads 64 bytes");

// The CPU has AMX tiles with bf16 dot products (Sapphire Rapids and later).
inline bool cpu_has_amx_bf16() {
#if VOLFEAT_HAVE_ISA_VARIANTS
  __builtin_cpu_init();
  return cpu_has_avx512_bf16() && __builtin_cpu_supports("amx-tile") && __builtin_cpu_supports("amx-bf16");
#else
  return false;
#endif
}

// Why this process cannot run AMX tiles, or "" when it can. Linux keeps the 8 KB of tile data out of a
// process's saved state until the process asks for it (arch_prctl ARCH_REQ_XCOMP_PERM for
// XFEATURE_XTILEDATA, kernel 5.16 and later); a tile instruction before that dies of SIGILL. Asked once,
// for the whole process (threads started before and after share the permission).
inline std::string amx_unavailable_reason() {
  static const std::string why = [] {
    if (!cpu_has_amx_bf16()) return std::string("this CPU lacks AMX tiles with bf16 (amx-tile, amx-bf16)");
#if defined(__linux__) && defined(SYS_arch_prctl)
    constexpr long kArchReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
    if (syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) != 0)
      return std::string("the kernel did not grant AMX tile data (arch_prctl ARCH_REQ_XCOMP_PERM: ") +
             std::strerror(errno) + "; Linux 5.16 or later is needed)";
    return std::string();
#else
    return std::string("AMX tile data needs Linux's arch_prctl permission, which this system lacks");
#endif
  }();
  return why;
}

#if VOLFEAT_HAVE_ISA_VARIANTS
// The instructions. Tile numbers must be literals in the instructions, hence the chains of if constexpr.
// GCC's tile intrinsics are asm statements that tell the compiler nothing about the memory they read
// and write (_tile_loadconfig names 8 of its 64 bytes, _tile_stored none), so configure() passes the whole
// configuration as its operand and fence() orders memory around them: after tilestored, before the
// stored values are read.
#define VOLFEAT_AMX_INLINE VOLFEAT_TARGET_AMX inline __attribute__((always_inline))
struct AmxTiles {
  // ldtilecfg (it also zeroes every tile). Other code on the thread (oneDNN in the same process) may
  // have configured other shapes, so every GEMM configures its own and releases them (release()).
  static VOLFEAT_AMX_INLINE void configure(const TileConfig& cfg) {
    __asm__ volatile("ldtilecfg\t%X0" ::"m"(cfg) : "memory");
  }
  // tilerelease: the tiles back to their initial state, so that the thread's context switches stop
  // saving 8 KB of tile data.
  static VOLFEAT_AMX_INLINE void release() { _tile_release(); }
  static VOLFEAT_AMX_INLINE void fence() { __asm__ volatile("" ::: "memory"); }
  template <int T>
  static VOLFEAT_AMX_INLINE void zero() {
    static_assert(T >= 0 && T < 4, "the GEMM's accumulators are tiles 0-3");
    if constexpr (T == 0) _tile_zero(0);
    else if constexpr (T == 1) _tile_zero(1);
    else if constexpr (T == 2) _tile_zero(2);
    else _tile_zero(3);
  }
  template <int T>
  static VOLFEAT_AMX_INLINE void load(const void* p, Index stride_bytes) {
    static_assert(T >= 4 && T < 8, "the GEMM loads its operands into tiles 4-7");
    if constexpr (T == 4) _tile_loadd(4, p, stride_bytes);
    else if constexpr (T == 5) _tile_loadd(5, p, stride_bytes);
    else if constexpr (T == 6) _tile_loadd(6, p, stride_bytes);
    else _tile_loadd(7, p, stride_bytes);
  }
  template <int T>
  static VOLFEAT_AMX_INLINE void store(void* p, Index stride_bytes) {
    static_assert(T >= 0 && T < 4, "the GEMM stores its accumulators, tiles 0-3");
    if constexpr (T == 0) _tile_stored(0, p, stride_bytes);
    else if constexpr (T == 1) _tile_stored(1, p, stride_bytes);
    else if constexpr (T == 2) _tile_stored(2, p, stride_bytes);
    else _tile_stored(3, p, stride_bytes);
  }
  // Tile C += tile A . tile B. The GEMM's pairs: C = 2*(A-4) + (B-6), A in 4-5, B in 6-7.
  template <int C, int A, int B>
  static VOLFEAT_AMX_INLINE void dot() {
    static_assert(A >= 4 && A < 6 && B >= 6 && B < 8 && C == 2 * (A - 4) + (B - 6), "the GEMM's tile pairs only");
    if constexpr (C == 0) _tile_dpbf16ps(0, 4, 6);
    else if constexpr (C == 1) _tile_dpbf16ps(1, 4, 7);
    else if constexpr (C == 2) _tile_dpbf16ps(2, 5, 6);
    else _tile_dpbf16ps(3, 5, 7);
  }
};
#endif  // VOLFEAT_HAVE_ISA_VARIANTS

// The software model: the same operations on this thread's 8 tiles in memory.
struct EmulatedTiles {
  struct State {
    TileConfig cfg{0};
    alignas(64) unsigned char tile[8][16][64];
  };
  static State& state() {
    thread_local State s;
    return s;
  }
  [[noreturn]] static void fault(const char* what, int t) {
    std::fprintf(stderr, "volfeat: emulated AMX: %s (tile %d): the instruction would fault\n", what, t);
    std::abort();
  }
  static void check(int t) {
    const TileConfig& c = state().cfg;
    if (c.palette != 1) fault("tiles used before a configuration", t);
    if (c.rows[t] == 0 || c.rows[t] > 16 || c.colsb[t] == 0 || c.colsb[t] > 64) fault("tile not configured", t);
  }
  static void release() { state().cfg = TileConfig{0}; }
  static void fence() {}
  static void configure(const TileConfig& cfg) {
    for (int t = 0; t < 8; ++t)
      if (cfg.rows[t] > 16 || cfg.colsb[t] > 64 || (cfg.rows[t] == 0) != (cfg.colsb[t] == 0))
        fault("bad configuration", t);
    State& s = state();
    s.cfg = cfg;
    std::memset(s.tile, 0, sizeof s.tile);
  }
  template <int T>
  static void zero() {
    check(T);
    std::memset(state().tile[T], 0, sizeof state().tile[T]);
  }
  template <int T>
  static void load(const void* p, Index stride_bytes) {
    check(T);
    State& s = state();
    const auto* src = static_cast<const unsigned char*>(p);
    for (int r = 0; r < s.cfg.rows[T]; ++r) std::memcpy(s.tile[T][r], src + r * stride_bytes, s.cfg.colsb[T]);
  }
  template <int T>
  static void store(void* p, Index stride_bytes) {
    check(T);
    State& s = state();
    auto* dst = static_cast<unsigned char*>(p);
    for (int r = 0; r < s.cfg.rows[T]; ++r) std::memcpy(dst + r * stride_bytes, s.tile[T][r], s.cfg.colsb[T]);
  }
  template <int C, int A, int B>
  static void dot() {
    check(C), check(A), check(B);
    State& s = state();
    const TileConfig& c = s.cfg;
    // tdpbf16ps's shape rules: C and A have the same rows, A's pairs are B's rows, C and B the same width.
    if (c.rows[C] != c.rows[A] || c.colsb[A] / 4 != c.rows[B] || c.colsb[C] != c.colsb[B] || c.colsb[A] % 4)
      fault("tdpbf16ps shapes do not match", C);
    const int m_rows = c.rows[C], n_cols = c.colsb[C] / 4, pairs = c.colsb[A] / 4;
    for (int m = 0; m < m_rows; ++m) {
      float out[16];
      std::memcpy(out, s.tile[C][m], sizeof(float) * size_t(n_cols));
      for (int p = 0; p < pairs; ++p) {
        Bf16 a[2];
        std::memcpy(a, s.tile[A][m] + 4 * p, sizeof a);
        const float a0 = flush(bf16_to_float(a[0])), a1 = flush(bf16_to_float(a[1]));
        for (int n = 0; n < n_cols; ++n) {
          Bf16 b[2];
          std::memcpy(b, s.tile[B][p] + 4 * n, sizeof b);
          out[n] = flush(out[n] + a0 * flush(bf16_to_float(b[0])));
          out[n] = flush(out[n] + a1 * flush(bf16_to_float(b[1])));
        }
      }
      std::memcpy(s.tile[C][m], out, sizeof(float) * size_t(n_cols));
    }
  }

 private:
  static float flush(float x) { return std::fabs(x) < 1.17549435e-38f ? std::copysign(0.f, x) : x; }
};

}  // namespace volfeat::cpu
