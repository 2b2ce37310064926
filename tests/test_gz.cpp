// Whole-buffer gzip decoding (io/gz.hpp) and the .nii.gz reader's fast path over it: libdeflate and zlib
// agree byte for byte on single- and multi-member streams and on buffers sized too small; a truncated
// stream, a damaged CRC and non-gzip data are refused; and a NIfTI volume gzipped as several members, or
// truncated, reads (or fails) exactly as through zlib's streaming path.
#define BOOST_TEST_MODULE gz
#include <zlib.h>

#include <boost/test/unit_test.hpp>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "support/paths.hpp"
#include "support/error_of.hpp"
#include "volfeat/io/gz.hpp"
#include "volfeat/io/nifti.hpp"
#include "volfeat/pipeline/phantom.hpp"

using namespace volfeat;
using volfeat::test::error_of;
namespace fs = std::filesystem;
using Bytes = std::vector<unsigned char>;

namespace {

const std::string kScratch = volfeat::test::test_data_dir() + "/gz_scratch";

std::string scratch(const std::string& name) {
  fs::create_directories(kScratch);
  return kScratch + "/" + name;
}

// One gzip member holding `data` (zlib's gzip wrapper: header, deflate, CRC-32 and ISIZE trailer).
Bytes gzip_member(const Bytes& data, int level = 6) {
  z_stream zs{};
  BOOST_REQUIRE(deflateInit2(&zs, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) == Z_OK);
  Bytes out(deflateBound(&zs, uLong(data.size())) + 64);
  zs.next_in = const_cast<Bytef*>(data.data());
  zs.avail_in = uInt(data.size());
  zs.next_out = out.data();
  zs.avail_out = uInt(out.size());
  BOOST_REQUIRE(deflate(&zs, Z_FINISH) == Z_STREAM_END);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

// Compressible but not trivial: a seeded walk, like CT rows.
Bytes sample(size_t n, uint32_t seed) {
  Bytes b(n);
  uint32_t s = seed;
  int v = 0;
  for (auto& x : b) {
    s = s * 1664525u + 1013904223u;
    v += int(s >> 29) - 3;
    x = static_cast<unsigned char>(v);
  }
  return b;
}

Bytes cat(std::initializer_list<Bytes> parts) {
  Bytes out;
  for (const Bytes& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

using Decoder = bool (*)(const unsigned char*, size_t, size_t, GzBytes&, std::string&);

std::vector<std::pair<std::string, Decoder>> decoders() {
  std::vector<std::pair<std::string, Decoder>> d{{"zlib", &gunzip_zlib}};
#if VOLFEAT_HAVE_LIBDEFLATE
  d.emplace_back("libdeflate", &gunzip_libdeflate);
#endif
  return d;
}

Bytes bytes_of(const GzBytes& g) { return Bytes(g.data(), g.data() + g.size); }

void write_bytes(const std::string& path, const Bytes& b) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(b.data()), std::streamsize(b.size()));
  BOOST_REQUIRE(f.good());
}

Bytes read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(f), {});
}

}  // namespace

BOOST_AUTO_TEST_CASE(build_says_which_decoder_it_has) {
  BOOST_TEST_MESSAGE("libdeflate in this build: " << (kHaveLibdeflate ? "yes" : "no (zlib only)"));
  BOOST_TEST(decoders().size() == (kHaveLibdeflate ? 2u : 1u));
}

BOOST_AUTO_TEST_CASE(single_and_multi_member_streams_decode_to_the_concatenation) {
  const Bytes a = sample(300000, 1), b = sample(70001, 2), c = sample(1, 3);
  const Bytes one = gzip_member(a), three = cat({gzip_member(a), gzip_member(b, 1), gzip_member(c, 9)});
  const Bytes whole = cat({a, b, c});
  for (const auto& [name, decode] : decoders()) {
    for (size_t expected : {size_t(0), size_t(1000), a.size(), whole.size(), whole.size() * 3}) {
      GzBytes out;
      std::string error;
      BOOST_TEST(decode(one.data(), one.size(), expected, out, error), name << " " << error);
      BOOST_TEST((bytes_of(out) == a), name << ", one member, buffer sized " << expected);
      BOOST_TEST(decode(three.data(), three.size(), expected, out, error), name << " " << error);
      BOOST_TEST((bytes_of(out) == whole), name << ", three members, buffer sized " << expected);
    }
  }
}

BOOST_AUTO_TEST_CASE(trailing_bytes_that_start_no_member_are_ignored_as_zlib_does) {
  const Bytes a = sample(5000, 4);
  const Bytes padded = cat({gzip_member(a), Bytes(37, 0)});
  for (const auto& [name, decode] : decoders()) {
    GzBytes out;
    std::string error;
    BOOST_TEST(decode(padded.data(), padded.size(), a.size(), out, error), name << " " << error);
    BOOST_TEST((bytes_of(out) == a), name);
  }
}

BOOST_AUTO_TEST_CASE(truncated_corrupt_and_non_gzip_streams_are_refused) {
  const Bytes a = sample(200000, 5);
  const Bytes good = cat({gzip_member(a), gzip_member(a)});
  Bytes truncated_first(good.begin(), good.begin() + std::ptrdiff_t(good.size() / 4));
  Bytes truncated_second(good.begin(), good.end() - 100);      // the second member loses its end
  Bytes no_trailer(good.begin(), good.end() - 4);              // the last ISIZE is missing
  Bytes bad_crc = good;
  bad_crc[bad_crc.size() - 6] ^= 0x40;                         // the last member's CRC-32
  Bytes bad_data = good;
  bad_data[good.size() / 8] ^= 0xff;
  const Bytes plain = a;
  for (const auto& [name, decode] : decoders()) {
    for (const auto& [what, bytes] : std::vector<std::pair<std::string, Bytes>>{
             {"truncated in the first member", truncated_first},
             {"truncated in the second member", truncated_second},
             {"no trailer", no_trailer},
             {"damaged CRC", bad_crc},
             {"damaged data", bad_data},
             {"not gzip", plain}}) {
      GzBytes out;
      std::string error;
      BOOST_TEST(!decode(bytes.data(), bytes.size(), a.size() * 2, out, error), name << ": " << what << " accepted");
      BOOST_TEST(!error.empty(), name << ": " << what << " without a reason");
    }
  }
}

BOOST_AUTO_TEST_CASE(a_nifti_gzipped_as_several_members_reads_as_the_single_member_file) {
  const Phantom p = make_knee_phantom(3, {24, 30, 28});
  const std::string one = scratch("one_member.nii.gz"), plain = scratch("plain.nii"), multi = scratch("three_members.nii.gz");
  write_nifti(one, p.ct);
  write_nifti(plain, p.ct);
  const Bytes raw = read_bytes(plain);
  const size_t cut1 = 200, cut2 = raw.size() / 2;  // the header alone, then the voxels split in two
  write_bytes(multi, cat({gzip_member(Bytes(raw.begin(), raw.begin() + cut1)),
                          gzip_member(Bytes(raw.begin() + cut1, raw.begin() + std::ptrdiff_t(cut2))),
                          gzip_member(Bytes(raw.begin() + std::ptrdiff_t(cut2), raw.end()))}));
  const Volume<float> a = read_nifti_float(one), b = read_nifti_float(multi);
  BOOST_TEST(a.data == p.ct.data);
  BOOST_TEST(b.data == p.ct.data);
  const std::string labels_plain = scratch("labels.nii"), labels_two = scratch("labels_two_members.nii.gz");
  write_nifti(labels_plain, p.labels);
  const Bytes r = read_bytes(labels_plain);
  const auto third = std::ptrdiff_t(r.size() / 3);
  write_bytes(labels_two, cat({gzip_member(Bytes(r.begin(), r.begin() + third)), gzip_member(Bytes(r.begin() + third, r.end()))}));
  const Volume<int32_t> labels = read_nifti_labels(labels_two);
  BOOST_TEST(labels.data == p.labels.data);
}

BOOST_AUTO_TEST_CASE(a_truncated_nifti_gz_fails_with_the_streaming_readers_message) {
  const Phantom p = make_knee_phantom(4, {20, 24, 24});
  const std::string good = scratch("good.nii.gz"), cut = scratch("cut.nii.gz");
  write_nifti(good, p.ct);
  const Bytes b = read_bytes(good);
  write_bytes(cut, Bytes(b.begin(), b.begin() + std::ptrdiff_t(b.size() * 2 / 3)));
  const std::string e = error_of([&] { read_nifti_float(cut); });
  BOOST_TEST_MESSAGE(e);
  BOOST_TEST(e.rfind(cut + ": ", 0) == 0);
  BOOST_TEST((e.find("truncated") != std::string::npos || e.find("corrupt") != std::string::npos ||
              e.find("damaged") != std::string::npos));
  // A damaged last CRC (every voxel delivered, the stream still wrong) is refused too.
  Bytes crc = b;
  crc[crc.size() - 6] ^= 0x10;
  const std::string bad = scratch("bad_crc.nii.gz");
  write_bytes(bad, crc);
  const std::string e2 = error_of([&] { read_nifti_float(bad); });
  BOOST_TEST_MESSAGE(e2);
  BOOST_TEST(e2.rfind(bad + ": ", 0) == 0);
  // zlib names it where its buffered reading meets the trailer (small files: before the voxel data)
  BOOST_TEST((e2.find("gzip") != std::string::npos && e2.find("incorrect data check") != std::string::npos));
}
