#pragma once
// SHA-256 (FIPS 180-4) for pinning weight files and reference data. Written out here rather than
// pulled from OpenSSL so the header-only library gains no link dependency for a checksum.
#include <algorithm>
#include <array>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>

#include "volfeat/core/error.hpp"

namespace volfeat {

class Sha256 {
 public:
  Sha256() { reset(); }

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
      compress(buffer_.data());
      buffered_ = 0;
    }
    for (; n >= kBlockBytes; p += kBlockBytes, n -= kBlockBytes) compress(p);
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

  static uint32_t rotr(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

  void compress(const unsigned char* block) {
    static constexpr uint32_t kRound[64] = {
        0x428a2f98u, 0x71374491u, 0xb5c0fbcfu, 0xe9b5dba5u, 0x3956c25bu, 0x59f111f1u, 0x923f82a4u,
        0xab1c5ed5u, 0xd807aa98u, 0x12835b01u, 0x243185beu, 0x550c7dc3u, 0x72be5d74u, 0x80deb1feu,
        0x9bdc06a7u, 0xc19bf174u, 0xe49b69c1u, 0xefbe4786u, 0x0fc19dc6u, 0x240ca1ccu, 0x2de92c6fu,
        0x4a7484aau, 0x5cb0a9dcu, 0x76f988dau, 0x983e5152u, 0xa831c66du, 0xb00327c8u, 0xbf597fc7u,
        0xc6e00bf3u, 0xd5a79147u, 0x06ca6351u, 0x14292967u, 0x27b70a85u, 0x2e1b2138u, 0x4d2c6dfcu,
        0x53380d13u, 0x650a7354u, 0x766a0abbu, 0x81c2c92eu, 0x92722c85u, 0xa2bfe8a1u, 0xa81a664bu,
        0xc24b8b70u, 0xc76c51a3u, 0xd192e819u, 0xd6990624u, 0xf40e3585u, 0x106aa070u, 0x19a4c116u,
        0x1e376c08u, 0x2748774cu, 0x34b0bcb5u, 0x391c0cb3u, 0x4ed8aa4au, 0x5b9cca4fu, 0x682e6ff3u,
        0x748f82eeu, 0x78a5636fu, 0x84c87814u, 0x8cc70208u, 0x90befffau, 0xa4506cebu, 0xbef9a3f7u,
        0xc67178f2u};
    uint32_t w[64];
    for (int i = 0; i < 16; ++i) {
      w[i] = (uint32_t(block[4 * i]) << 24) | (uint32_t(block[4 * i + 1]) << 16) |
             (uint32_t(block[4 * i + 2]) << 8) | uint32_t(block[4 * i + 3]);
    }
    for (int i = 16; i < 64; ++i) {
      const uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
      const uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
      w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = state_[0], b = state_[1], c = state_[2], d = state_[3];
    uint32_t e = state_[4], f = state_[5], g = state_[6], h = state_[7];
    for (int i = 0; i < 64; ++i) {
      const uint32_t s1 = rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25);
      const uint32_t ch = (e & f) ^ (~e & g);
      const uint32_t t1 = h + s1 + ch + kRound[i] + w[i];
      const uint32_t s0 = rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22);
      const uint32_t maj = (a & b) ^ (a & c) ^ (b & c);
      const uint32_t t2 = s0 + maj;
      h = g;
      g = f;
      f = e;
      e = d + t1;
      d = c;
      c = b;
      b = a;
      a = t1 + t2;
    }
    state_[0] += a;
    state_[1] += b;
    state_[2] += c;
    state_[3] += d;
    state_[4] += e;
    state_[5] += f;
    state_[6] += g;
    state_[7] += h;
  }

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
