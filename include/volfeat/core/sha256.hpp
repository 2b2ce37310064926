#pragma once
// SHA-256 (FIPS 180-4) for pinning weight files and reference data. Written out here rather than
// pulled from OpenSSL so the header-only library gains no link dependency for a checksum.
//
// Two compression kernels: portable C++, and x86's SHA extensions (SHA-NI: Zen and later, Intel since
// Ice Lake / Sapphire Rapids), chosen once per process at run time. The CLI hashes every weights file
// it loads, beside the parsing: portable, DenseNet-121's 32 MB export took 0.12-0.15 s, the longest part
// of the load; SHA-NI 29 ms (Zen 3; bench/README.md, "Weights released while the network is built").
#include <algorithm>
#include <array>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>

#include "volfeat/core/error.hpp"
#include "volfeat/core/x86.hpp"

#if VOLFEAT_X86_TARGETS
#include <immintrin.h>
#define VOLFEAT_HAVE_SHA_NI 1
#else
#define VOLFEAT_HAVE_SHA_NI 0
#endif

namespace volfeat {

enum class Sha256Kernel { kPortable, kShaNi };

inline const char* sha256_kernel_name(Sha256Kernel k) { return k == Sha256Kernel::kShaNi ? "sha-ni" : "portable"; }

// Whether this CPU runs `k` (the portable kernel runs everywhere).
inline bool sha256_kernel_supported(Sha256Kernel k) {
#if VOLFEAT_HAVE_SHA_NI
  if (k == Sha256Kernel::kShaNi)
    return __builtin_cpu_supports("sha") && __builtin_cpu_supports("sse4.1") && __builtin_cpu_supports("ssse3");
#endif
  return k == Sha256Kernel::kPortable;
}

inline Sha256Kernel best_sha256_kernel() {
  static const Sha256Kernel best =
      sha256_kernel_supported(Sha256Kernel::kShaNi) ? Sha256Kernel::kShaNi : Sha256Kernel::kPortable;
  return best;
}

namespace detail {
inline constexpr uint32_t kSha256Round[64] = {
    0x428a2f98u, 0x71374491u, 0xb5c0fbcfu, 0xe9b5dba5u, 0x3956c25bu, 0x59f111f1u, 0x923f82a4u, 0xab1c5ed5u,
    0xd807aa98u, 0x12835b01u, 0x243185beu, 0x550c7dc3u, 0x72be5d74u, 0x80deb1feu, 0x9bdc06a7u, 0xc19bf174u,
    0xe49b69c1u, 0xefbe4786u, 0x0fc19dc6u, 0x240ca1ccu, 0x2de92c6fu, 0x4a7484aau, 0x5cb0a9dcu, 0x76f988dau,
    0x983e5152u, 0xa831c66du, 0xb00327c8u, 0xbf597fc7u, 0xc6e00bf3u, 0xd5a79147u, 0x06ca6351u, 0x14292967u,
    0x27b70a85u, 0x2e1b2138u, 0x4d2c6dfcu, 0x53380d13u, 0x650a7354u, 0x766a0abbu, 0x81c2c92eu, 0x92722c85u,
    0xa2bfe8a1u, 0xa81a664bu, 0xc24b8b70u, 0xc76c51a3u, 0xd192e819u, 0xd6990624u, 0xf40e3585u, 0x106aa070u,
    0x19a4c116u, 0x1e376c08u, 0x2748774cu, 0x34b0bcb5u, 0x391c0cb3u, 0x4ed8aa4au, 0x5b9cca4fu, 0x682e6ff3u,
    0x748f82eeu, 0x78a5636fu, 0x84c87814u, 0x8cc70208u, 0x90befffau, 0xa4506cebu, 0xbef9a3f7u, 0xc67178f2u};

inline uint32_t sha256_rotr(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

// `blocks` 64-byte blocks into state (a..h), as FIPS 180-4 section 6.2.2 writes it.
inline void sha256_compress_portable(uint32_t* state, const unsigned char* p, size_t blocks) {
  for (; blocks > 0; --blocks, p += 64) {
    uint32_t w[64];
    for (int i = 0; i < 16; ++i)
      w[i] = (uint32_t(p[4 * i]) << 24) | (uint32_t(p[4 * i + 1]) << 16) | (uint32_t(p[4 * i + 2]) << 8) |
             uint32_t(p[4 * i + 3]);
    for (int i = 16; i < 64; ++i) {
      const uint32_t s0 = sha256_rotr(w[i - 15], 7) ^ sha256_rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
      const uint32_t s1 = sha256_rotr(w[i - 2], 17) ^ sha256_rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
      w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = state[0], b = state[1], c = state[2], d = state[3];
    uint32_t e = state[4], f = state[5], g = state[6], h = state[7];
    for (int i = 0; i < 64; ++i) {
      const uint32_t s1 = sha256_rotr(e, 6) ^ sha256_rotr(e, 11) ^ sha256_rotr(e, 25);
      const uint32_t ch = (e & f) ^ (~e & g);
      const uint32_t t1 = h + s1 + ch + kSha256Round[i] + w[i];
      const uint32_t s0 = sha256_rotr(a, 2) ^ sha256_rotr(a, 13) ^ sha256_rotr(a, 22);
      const uint32_t maj = (a & b) ^ (a & c) ^ (b & c);
      h = g;
      g = f;
      f = e;
      e = d + t1;
      d = c;
      c = b;
      b = a;
      a = t1 + s0 + maj;
    }
    state[0] += a;
    state[1] += b;
    state[2] += c;
    state[3] += d;
    state[4] += e;
    state[5] += f;
    state[6] += g;
    state[7] += h;
  }
}

#if VOLFEAT_HAVE_SHA_NI
// The same with the SHA extensions. sha256rnds2 does two rounds on the state split as ABEF / CDGH
// (two xmm of 4 words); sha256msg1/msg2 extend the message schedule four words at a time. Round group
// g (rounds 4g..4g+3) uses the words held in msg[g % 4]; groups 4..15 compute their words in the
// register that group g-4 used, starting (msg1) at g-3 and finishing (msg2) at g-1.
__attribute__((target("sha,sse4.1,ssse3"))) inline void sha256_compress_sha_ni(uint32_t* state, const unsigned char* p,
                                                                              size_t blocks) {
  const __m128i kByteSwap = _mm_set_epi64x(0x0c0d0e0f08090a0bLL, 0x0405060700010203LL);  // big-endian words
  __m128i tmp = _mm_shuffle_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(state)), 0xB1);  // C D A B
  __m128i cdgh = _mm_shuffle_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(state + 4)), 0x1B);  // E F G H
  __m128i abef = _mm_alignr_epi8(tmp, cdgh, 8);  // A B E F
  cdgh = _mm_blend_epi16(cdgh, tmp, 0xF0);       // C D G H
  for (; blocks > 0; --blocks, p += 64) {
    const __m128i abef_in = abef, cdgh_in = cdgh;
    __m128i msg[4];
    // Unrolled, msg[] lives in registers: 32 MB hashed in 27 ms instead of 50 (Zen 3, g++ 12 -O3,
    // fread included; OpenSSL's SHA-NI code: 1.48 GB/s on the same machine). (nvcc's front end does not
    // know the pragma: volfeat-cuda hashes at the rolled speed.)
#if !defined(__CUDACC__)
#pragma GCC unroll 16
#endif
    for (int g = 0; g < 16; ++g) {
      __m128i& cur = msg[g % 4];
      if (g < 4) cur = _mm_shuffle_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 16 * g)), kByteSwap);
      __m128i wk = _mm_add_epi32(cur, _mm_loadu_si128(reinterpret_cast<const __m128i*>(kSha256Round + 4 * g)));
      cdgh = _mm_sha256rnds2_epu32(cdgh, abef, wk);
      if (g >= 3 && g < 15) {  // finish the words of group g+1
        __m128i& next = msg[(g + 1) % 4];
        next = _mm_sha256msg2_epu32(_mm_add_epi32(next, _mm_alignr_epi8(cur, msg[(g + 3) % 4], 4)), cur);
      }
      abef = _mm_sha256rnds2_epu32(abef, cdgh, _mm_shuffle_epi32(wk, 0x0E));
      if (g >= 1 && g < 13) msg[(g + 3) % 4] = _mm_sha256msg1_epu32(msg[(g + 3) % 4], cur);  // start group g+3's
    }
    abef = _mm_add_epi32(abef, abef_in);
    cdgh = _mm_add_epi32(cdgh, cdgh_in);
  }
  tmp = _mm_shuffle_epi32(abef, 0x1B);                  // F E B A
  cdgh = _mm_shuffle_epi32(cdgh, 0xB1);                 // D C H G
  abef = _mm_blend_epi16(tmp, cdgh, 0xF0);              // D C B A
  cdgh = _mm_alignr_epi8(cdgh, tmp, 8);                 // H G F E
  _mm_storeu_si128(reinterpret_cast<__m128i*>(state), abef);
  _mm_storeu_si128(reinterpret_cast<__m128i*>(state + 4), cdgh);
}
#endif
}  // namespace detail

class Sha256 {
 public:
  // kernel: best_sha256_kernel() unless a test asks for one (it must be supported: sha256_kernel_supported).
  explicit Sha256(Sha256Kernel kernel = best_sha256_kernel()) : kernel_(kernel) {
    if (!sha256_kernel_supported(kernel))
      fail("sha256: this CPU has no ", sha256_kernel_name(kernel), " instructions");
    reset();
  }

  void reset() {
    state_ = {0x6a09e667u, 0xbb67ae85u, 0x3c6ef372u, 0xa54ff53au,
              0x510e527fu, 0x9b05688cu, 0x1f83d9abu, 0x5be0cd19u};
    total_bytes_ = 0;
    buffered_ = 0;
  }

  void update(const void* data, size_t n) {
    const auto* p = static_cast<const unsigned char*>(data);
    total_bytes_ += n;
    if (buffered_ > 0) {
      const size_t take = std::min(n, kBlockBytes - buffered_);
      std::memcpy(buffer_.data() + buffered_, p, take);
      buffered_ += take;
      p += take;
      n -= take;
      if (buffered_ < kBlockBytes) return;
      compress(buffer_.data(), 1);
      buffered_ = 0;
    }
    const size_t blocks = n / kBlockBytes;
    if (blocks > 0) compress(p, blocks);
    p += blocks * kBlockBytes;
    n -= blocks * kBlockBytes;
    if (n > 0) {
      std::memcpy(buffer_.data(), p, n);
      buffered_ = n;
    }
  }

  // Pads, finishes and returns the lowercase hex digest; the object is reset for reuse afterwards.
  std::string hex_digest() {
    const uint64_t bit_length = total_bytes_ * 8u;
    const unsigned char pad_start = 0x80;
    update(&pad_start, 1);
    const unsigned char zero = 0;
    while (buffered_ != kBlockBytes - 8) update(&zero, 1);
    unsigned char length_be[8];
    for (int i = 0; i < 8; ++i) length_be[i] = static_cast<unsigned char>(bit_length >> (56 - 8 * i));
    update(length_be, 8);

    static const char kHex[] = "0123456789abcdef";
    std::string out;
    out.reserve(64);
    for (uint32_t word : state_) {
      for (int shift = 28; shift >= 0; shift -= 4) out.push_back(kHex[(word >> shift) & 0xfu]);
    }
    reset();
    return out;
  }

 private:
  static constexpr size_t kBlockBytes = 64;

  void compress(const unsigned char* p, size_t blocks) {
#if VOLFEAT_HAVE_SHA_NI
    if (kernel_ == Sha256Kernel::kShaNi) return detail::sha256_compress_sha_ni(state_.data(), p, blocks);
#endif
    detail::sha256_compress_portable(state_.data(), p, blocks);
  }

  Sha256Kernel kernel_;
  std::array<uint32_t, 8> state_{};
  std::array<unsigned char, kBlockBytes> buffer_{};
  uint64_t total_bytes_ = 0;
  size_t buffered_ = 0;
};

inline std::string sha256_hex(const void* data, size_t n) {
  Sha256 hasher;
  hasher.update(data, n);
  return hasher.hex_digest();
}

// Streams in chunks: weight files can be hundreds of MB and need not sit in memory to be checked.
inline std::string sha256_file(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) fail_open(path, "cannot open for hashing", errno);
  Sha256 hasher;
  unsigned char chunk[1 << 16];
  for (;;) {
    const size_t got = std::fread(chunk, 1, sizeof chunk, f);
    if (got > 0) hasher.update(chunk, got);
    if (got < sizeof chunk) {
      if (std::ferror(f)) {
        const int err = errno;
        std::fclose(f);
        fail(path, ": read error while hashing: ", std::strerror(err));
      }
      break;
    }
  }
  std::fclose(f);
  return hasher.hex_digest();
}

}  // namespace volfeat
