// .npy/.npz reading and writing against numpy's own files, the zip and npy failure messages on
// corrupt input, plus the sha256 and AtomicFile helpers the writers rely on.
#define BOOST_TEST_MODULE npz
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/test/unit_test.hpp>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "support/paths.hpp"
#include "volfeat/core/atomic_file.hpp"
#include "volfeat/core/sha256.hpp"
#include "volfeat/io/npy.hpp"
#include "volfeat/io/npz.hpp"
#include "volfeat/io/zip.hpp"

using namespace volfeat;
using Bytes = std::vector<unsigned char>;

namespace {

const std::string kFixtures = volfeat::test::test_data_dir() + "/npz";
const std::string kScratch = volfeat::test::test_data_dir() + "/npz_scratch";

std::string fixture(const std::string& name) {
  const std::string path = kFixtures + "/" + name;
  struct stat st;
  BOOST_REQUIRE_MESSAGE(::stat(path.c_str(), &st) == 0,
                        path << " is missing: run through ctest so npz_fixtures writes it first");
  return path;
}

std::string scratch(const std::string& name) {
  ::mkdir(kScratch.c_str(), 0777);
  return kScratch + "/" + name;
}

bool exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

Bytes slurp(const std::string& path) { return detail::read_file_bytes(path); }

Bytes to_bytes(const std::string& s) { return Bytes(s.begin(), s.end()); }

// The message of the volfeat::Error `f` throws; every one must be a single line.
std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    const std::string msg = e.what();
    BOOST_CHECK_MESSAGE(msg.find('\n') == std::string::npos, "multi-line message: " << msg);
    return msg;
  }
  return "(no error)";
}

std::string npz_error(const Bytes& b, const std::string& origin = "bad.npz") {
  return error_of([&] { parse_npz(b.data(), b.size(), origin); });
}

std::string npy_error(const Bytes& b, const std::string& origin = "bad.npy") {
  return error_of([&] { parse_npy(b.data(), b.size(), origin); });
}

bool contains(const std::string& hay, const std::string& needle) {
  return hay.find(needle) != std::string::npos;
}

// An archive built in memory by our writer, for corrupting.
Bytes zip_of(const std::vector<std::pair<std::string, std::string>>& members, bool compress,
             bool force_zip64 = false) {
  const std::string path = scratch("zip_of.zip");
  {
    AtomicFile file(path);
    ZipWriter zip(file, force_zip64);
    for (const auto& [name, bytes] : members) zip.add(name, bytes, compress);
    zip.finish();
    file.commit();
  }
  return slurp(path);
}

std::string vol_npy() {
  std::vector<float> v(24);
  for (size_t i = 0; i < v.size(); ++i) v[i] = float(i);
  return serialize_npy(NpyArray::from<float>({2, 3, 4}, v.data()));
}

// Offset of the first central-directory entry (its fields are patched to forge corruption).
size_t central_entry(const Bytes& b) {
  for (size_t i = 0; i + 4 <= b.size(); ++i) {
    if (b[i] == 'P' && b[i + 1] == 'K' && b[i + 2] == 1 && b[i + 3] == 2) return i;
  }
  BOOST_FAIL("no central directory entry");
  return 0;
}

void put32(Bytes& b, size_t at, uint32_t v) {
  for (int i = 0; i < 4; ++i) b[at + i] = static_cast<unsigned char>(v >> (8 * i));
}

// Replaces `from` with `to` (same length) inside serialized npy bytes.
std::string patched(std::string s, const std::string& from, const std::string& to) {
  BOOST_REQUIRE_EQUAL(from.size(), to.size());
  const size_t at = s.find(from);
  BOOST_REQUIRE(at != std::string::npos);
  s.replace(at, from.size(), to);
  return s;
}

// A v1 npy file with an arbitrary header text, padded like numpy's.
std::string npy_with_header(std::string header, const std::string& data) {
  while ((10 + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';
  std::string out("\x93NUMPY\x01\x00", 8);
  out.push_back(static_cast<char>(header.size() & 0xff));
  out.push_back(static_cast<char>(header.size() >> 8));
  return out + header + data;
}

// Must match expected() in tests/fixtures/check_npz_written.py.
NpzMap reference_arrays() {
  NpzMap m;
  std::vector<float> ramp(24);
  for (int i = 0; i < 24; ++i) ramp[i] = float(i) * 0.5f - 3.0f;
  m["ramp"] = NpyArray::from<float>({2, 3, 4}, ramp.data());
  std::vector<int64_t> ids(6);
  for (int i = 0; i < 6; ++i) ids[i] = (int64_t(i) - 3) * 10000000000LL;
  m["ids"] = NpyArray::from<int64_t>({6}, ids.data());
  const double scalar = 2.5;
  m["scalar"] = NpyArray::from<double>({}, &scalar);
  std::vector<uint8_t> bytes(256);
  for (int i = 0; i < 256; ++i) bytes[i] = uint8_t(i);
  m["bytes"] = NpyArray::from<uint8_t>({256}, bytes.data());
  const int32_t labels[] = {0, -9, -18, -27};
  m["labels"] = NpyArray::from<int32_t>({2, 2}, labels);
  m["empty"] = NpyArray::from<float>({0, 4}, static_cast<const float*>(nullptr));
  return m;
}

// Runs numpy on a file we wrote. Returns false (after saying why) when numpy is unavailable.
bool numpy_reads(const std::string& path) {
  const std::string script = std::string(VOLFEAT_SOURCE_DIR) + "/tests/fixtures/check_npz_written.py";
  const std::string cmd = "/usr/bin/python3 '" + script + "' '" + path + "'";
  const int status = std::system(cmd.c_str());
  BOOST_REQUIRE_MESSAGE(status != -1 && WIFEXITED(status), "could not run " << cmd);
  if (WEXITSTATUS(status) == 77) {
    BOOST_TEST_MESSAGE("skipping numpy cross-check: /usr/bin/python3 has no numpy");
    return false;
  }
  BOOST_CHECK_MESSAGE(WEXITSTATUS(status) == 0, "numpy rejected " << path << " (see stderr)");
  return true;
}

}  // namespace

// ---------------------------------------------------------------- reading numpy's files ------

BOOST_AUTO_TEST_CASE(reads_savez_and_savez_compressed) {
  for (const char* name : {"plain.npz", "compressed.npz", "zip64.npz"}) {
    BOOST_TEST_CONTEXT(name) {
      const NpzMap m = read_npz(fixture(name));
      const NpyArray& vol = m.at("vol");
      BOOST_TEST(vol.dtype == DType::F32);
      BOOST_TEST(vol.shape == (std::vector<int64_t>{2, 3, 4, 5}), boost::test_tools::per_element());
      const std::vector<float> v = vol.to_vector<float>();
      BOOST_REQUIRE_EQUAL(v.size(), 120u);
      // vol[1, 2, 3, 4] = 1000 + 200 + 30 + 4 + 0.25
      BOOST_TEST(v[((1 * 3 + 2) * 4 + 3) * 5 + 4] == 1234.25f);
      for (int i = 0; i < 2; ++i)
        for (int j = 0; j < 3; ++j)
          for (int k = 0; k < 4; ++k)
            for (int l = 0; l < 5; ++l)
              BOOST_REQUIRE_EQUAL(v[((i * 3 + j) * 4 + k) * 5 + l], 1000 * i + 100 * j + 10 * k + l + 0.25f);

      const std::vector<int64_t> ids = m.at("ids").to_vector<int64_t>();
      BOOST_TEST(m.at("ids").dtype == DType::I64);
      BOOST_REQUIRE_EQUAL(ids.size(), 10u);
      for (int i = 0; i < 10; ++i) BOOST_TEST(ids[i] == (int64_t(i) - 5) * 3000000000LL);
      if (std::string(name) == "zip64.npz") continue;  // holds only vol and ids

      const NpyArray& wave = m.at("wave");
      BOOST_TEST(wave.dtype == DType::F64);
      const std::vector<double> w = wave.to_vector<double>();
      BOOST_REQUIRE_EQUAL(w.size(), 35u);
      BOOST_TEST(w[3 * 7 + 4] == std::sin(25.0), boost::test_tools::tolerance(1e-15));

      const NpyArray& scalar = m.at("scalar");
      BOOST_TEST(scalar.shape.empty());
      BOOST_TEST(scalar.size() == 1);
      BOOST_TEST(scalar.to_vector<double>().at(0) == 3.5);

      const NpyArray& fortran = m.at("fortran");
      BOOST_TEST(fortran.fortran_order);
      const std::vector<float> f = fortran.to_vector<float>();
      for (int i = 0; i < 24; ++i) BOOST_REQUIRE_EQUAL(f[i], float(i));

      const std::vector<float> half = m.at("half").to_vector<float>();
      BOOST_TEST(m.at("half").dtype == DType::F16);
      BOOST_TEST(half == (std::vector<float>{1.0f, -2.5f, 65504.0f, std::ldexp(1.0f, -24)}),
                 boost::test_tools::per_element());
      BOOST_TEST(m.at("small").to_vector<int>() == (std::vector<int>{-128, 127, 0, -1}),
                 boost::test_tools::per_element());
      const std::vector<int32_t> labels = m.at("labels").to_vector<int32_t>();
      BOOST_TEST(m.at("labels").dtype == DType::I32);
      BOOST_TEST(labels.at(2 * 4 + 3) == -77);
      BOOST_TEST(m.at("mask").dtype == DType::Bool);
      BOOST_TEST(m.at("mask").to_vector<uint8_t>() == (std::vector<uint8_t>{1, 0, 1}),
                 boost::test_tools::per_element());
      BOOST_TEST(m.at("bytes").to_vector<int>().at(200) == 200);
      BOOST_TEST(m.at("empty").size() == 0);
      BOOST_TEST(m.at("empty").shape == (std::vector<int64_t>{0, 3}), boost::test_tools::per_element());
      BOOST_TEST(m.size() == 11u);
    }
  }
}

BOOST_AUTO_TEST_CASE(reads_npy_versions_1_2_3) {
  const NpyArray vol = read_npy(fixture("vol.npy"));
  BOOST_TEST(vol.to_vector<double>().at(((1 * 3 + 0) * 4 + 2) * 5 + 1) == 1021.25);
  const NpyArray fortran = read_npy(fixture("fortran.npy"));
  BOOST_TEST(fortran.fortran_order);
  BOOST_TEST(fortran.to_vector<int64_t>().at(17) == 17);
  for (const char* name : {"wave_v2.npy", "wave_v3.npy"}) {
    BOOST_TEST_CONTEXT(name) {
      const Bytes raw = slurp(fixture(name));
      BOOST_TEST(int(raw.at(6)) == (std::string(name) == "wave_v2.npy" ? 2 : 3));
      const std::vector<double> w = read_npy(fixture(name)).to_vector<double>();
      for (int i = 0; i < 5; ++i)
        for (int j = 0; j < 7; ++j)
          BOOST_TEST(w.at(i * 7 + j) == std::sin(7.0 * i + j), boost::test_tools::tolerance(1e-15));
    }
  }
}

BOOST_AUTO_TEST_CASE(conversion_refuses_values_that_do_not_fit) {
  const float values[] = {1.0f, NAN};
  NpyArray a = NpyArray::from<float>({2}, values);
  a.origin = "w.npz: member x.npy";
  BOOST_TEST(error_of([&] { a.to_vector<int32_t>(); }) ==
             "w.npz: member x.npy: float32 value nan does not fit the requested integer type");
  const double big[] = {3e9};
  BOOST_TEST(contains(error_of([&] { NpyArray::from<double>({1}, big).to_vector<int32_t>(); }),
                      "does not fit"));
  BOOST_TEST(NpyArray::from<double>({1}, big).to_vector<int64_t>().at(0) == 3000000000LL);
}

// ---------------------------------------------------------------- writing ---------------------

BOOST_AUTO_TEST_CASE(round_trips_stored_and_compressed) {
  const NpzMap ref = reference_arrays();
  for (bool compress : {false, true}) {
    BOOST_TEST_CONTEXT("compress=" << compress) {
      const std::string path = scratch(compress ? "ours_deflated.npz" : "ours_stored.npz");
      write_npz(path, ref, compress);
      BOOST_TEST(!exists(path + ".tmp-" + std::to_string(::getpid())));
      const NpzMap back = read_npz(path);
      BOOST_REQUIRE_EQUAL(back.size(), ref.size());
      for (const auto& [key, a] : ref) {
        const NpyArray& b = back.at(key);
        BOOST_TEST(b.dtype == a.dtype);
        BOOST_TEST(b.shape == a.shape, boost::test_tools::per_element());
        BOOST_TEST(b.bytes == a.bytes, boost::test_tools::per_element());
        BOOST_TEST(b.origin == path + ": member " + key + ".npy");
      }
      BOOST_TEST(back.at("ids").to_vector<int64_t>().at(5) == 20000000000LL);
      // Fixed timestamps: the same arrays always give the same bytes.
      const std::string first = sha256_file(path);
      write_npz(path, ref, compress);
      BOOST_TEST(sha256_file(path) == first);
      numpy_reads(path);
    }
  }
}

BOOST_AUTO_TEST_CASE(forced_zip64_output_is_read_by_us_and_numpy) {
  const NpzMap ref = reference_arrays();
  for (bool compress : {false, true}) {
    const std::string path = scratch(compress ? "ours_zip64_deflated.npz" : "ours_zip64.npz");
    {
      AtomicFile file(path);
      ZipWriter zip(file, /*force_zip64=*/true);
      for (const auto& [key, a] : ref) zip.add(key + ".npy", serialize_npy(a), compress);
      zip.finish();
      file.commit();
    }
    const Bytes raw = slurp(path);
    const std::string text(raw.begin(), raw.end());
    BOOST_TEST(contains(text, std::string("PK\x06\x06", 4)));
    const NpzMap back = read_npz(path);
    BOOST_TEST(back.at("ramp").to_vector<float>().at(23) == 8.5f);
    numpy_reads(path);
  }
}

BOOST_AUTO_TEST_CASE(npy_serialisation_matches_numpy_layout) {
  const Bytes ours = to_bytes(serialize_npy(read_npy(fixture("vol.npy"))));
  BOOST_TEST(ours == slurp(fixture("vol.npy")), boost::test_tools::per_element());
  const std::string s = vol_npy();
  BOOST_TEST((s.size() - 24 * 4) % 64 == 0u);  // data 64-byte aligned, as numpy writes it
  const NpyArray back = parse_npy(reinterpret_cast<const unsigned char*>(s.data()), s.size(), "x");
  BOOST_TEST(back.to_vector<float>().at(13) == 13.0f);
  NpyArray bad = NpyArray::from<float>({2}, std::vector<float>{1, 2}.data());
  bad.bytes.pop_back();
  BOOST_TEST(error_of([&] { write_npz(scratch("never.npz"), {{"w", bad}}); }) ==
             scratch("never.npz") + ": array w: holds 7 bytes but shape (2,) of float32 needs 8");
  BOOST_TEST(!exists(scratch("never.npz")));
}

// ---------------------------------------------------------------- corrupt input -------------

BOOST_AUTO_TEST_CASE(not_a_zip_and_truncated_archives) {
  BOOST_TEST(npz_error(to_bytes("hello, this is not an archive at all")) ==
             "bad.npz: not a zip file (no end-of-central-directory record)");
  BOOST_TEST(npz_error({}) == "bad.npz: not a zip file (no end-of-central-directory record)");
  const Bytes good = slurp(fixture("plain.npz"));
  for (size_t keep : {size_t(0), size_t(30), good.size() / 2, good.size() - 23, good.size() - 1}) {
    BOOST_TEST_CONTEXT("kept " << keep << " of " << good.size()) {
      const Bytes cut(good.begin(), good.begin() + keep);
      // A cut that keeps the first local header is named for what it is: a truncated archive.
      BOOST_TEST(npz_error(cut) == (keep >= 4 ? "bad.npz: truncated zip (starts like a zip archive but has no "
                                                "end-of-central-directory record; an incomplete download or copy?)"
                                              : "bad.npz: not a zip file (no end-of-central-directory record)"));
    }
  }
  // Cutting out the middle but keeping the end record: the directory now points past the file.
  Bytes holed(good.begin(), good.end() - 22);
  holed.resize(100);
  holed.insert(holed.end(), good.end() - 22, good.end());
  BOOST_TEST(contains(npz_error(holed), "bad.npz: truncated zip (central directory at "));
}

BOOST_AUTO_TEST_CASE(crc_mismatch_in_directory_or_data) {
  const std::string npy = vol_npy();
  Bytes b = zip_of({{"a.npy", npy}}, false);
  const size_t cd = central_entry(b);
  Bytes bad_crc = b;
  bad_crc[cd + 16] ^= 0x01;
  BOOST_TEST(npz_error(bad_crc) == "bad.npz: member a.npy: CRC mismatch");
  Bytes bad_data = b;
  bad_data[30 + 5 + npy.size() - 1] ^= 0x40;  // last byte of the stored array
  BOOST_TEST(npz_error(bad_data) == "bad.npz: member a.npy: CRC mismatch");
}

BOOST_AUTO_TEST_CASE(unsupported_method_encryption_duplicates) {
  const std::string npy = vol_npy();
  Bytes b = zip_of({{"a.npy", npy}}, false);
  const size_t cd = central_entry(b);
  Bytes method = b;
  method[cd + 10] = 12;  // bzip2
  BOOST_TEST(npz_error(method) == "bad.npz: member a.npy: unsupported compression method 12");
  Bytes encrypted = b;
  encrypted[cd + 8] |= 1;
  BOOST_TEST(npz_error(encrypted) == "bad.npz: member a.npy: encrypted members are not supported");
  BOOST_TEST(npz_error(zip_of({{"a.npy", npy}, {"a.npy", npy}}, false)) ==
             "bad.npz: member a.npy: duplicate member name");
  BOOST_TEST(npz_error(zip_of({{"notes.txt", "hi"}}, false)) ==
             "bad.npz: member notes.txt: not a .npy member");
}

BOOST_AUTO_TEST_CASE(corrupt_deflate_streams) {
  const std::string npy = vol_npy();
  const Bytes b = zip_of({{"a.npy", npy}}, true);
  const size_t cd = central_entry(b);
  const uint32_t csize = b[cd + 20] | b[cd + 21] << 8 | b[cd + 22] << 16 | uint32_t(b[cd + 23]) << 24;
  const size_t data = 30 + 5;
  Bytes garbage = b;
  for (size_t i = 0; i < csize; ++i) garbage[data + i] = 0xff;  // block type 3 is reserved
  BOOST_TEST(npz_error(garbage) ==
             "bad.npz: member a.npy: corrupt deflate data (zlib: invalid block type)");

  // Declared smaller than the stream inflates to.
  Bytes small = b;
  put32(small, cd + 24, uint32_t(npy.size() - 10));
  BOOST_TEST(npz_error(small) == "bad.npz: member a.npy: inflates to more than its declared " +
                                     std::to_string(npy.size() - 10) + " bytes");
  // Declared larger than the whole stream; then a stream whose end is missing.
  Bytes large = b;
  put32(large, cd + 24, uint32_t(npy.size() + 10));
  BOOST_TEST(npz_error(large) == "bad.npz: member a.npy: inflates to " + std::to_string(npy.size()) +
                                     " bytes but the directory declares " + std::to_string(npy.size() + 10));
  Bytes short_stream = b;
  put32(short_stream, cd + 20, csize / 2);
  BOOST_TEST(contains(npz_error(short_stream), "bad.npz: member a.npy: truncated (deflate stream ends early"));
}

BOOST_AUTO_TEST_CASE(huge_declared_sizes_rejected_before_allocating) {
  const std::string npy = vol_npy();
  Bytes deflated = zip_of({{"a.npy", npy}}, true);
  const size_t cd = central_entry(deflated);
  const uint32_t csize = deflated[cd + 20] | deflated[cd + 21] << 8 | deflated[cd + 22] << 16 |
                         uint32_t(deflated[cd + 23]) << 24;
  put32(deflated, cd + 24, 0xfffffff0u);
  BOOST_TEST(npz_error(deflated) == "bad.npz: member a.npy: declared size 4294967280 bytes is impossible for " +
                                        std::to_string(csize) + " bytes of deflate data");

  // ZIP64 lets a header claim 100 GB; the cap refuses it outright.
  Bytes z64 = zip_of({{"a.npy", npy}}, false, /*force_zip64=*/true);
  const size_t cd64 = central_entry(z64);
  const size_t extra = cd64 + 46 + 5 + 4;  // after the name and the extra field's id/size
  const uint64_t claim = 100000000000ULL;
  for (int i = 0; i < 8; ++i) z64[extra + i] = static_cast<unsigned char>(claim >> (8 * i));
  BOOST_TEST(npz_error(z64) ==
             "bad.npz: member a.npy: declared size 100000000000 bytes exceeds the 16 GiB limit per member");

  // A stored member that claims more data than the file holds.
  Bytes stored = zip_of({{"a.npy", npy}}, false);
  const size_t cds = central_entry(stored);
  put32(stored, cds + 20, 5000000);
  put32(stored, cds + 24, 5000000);
  BOOST_TEST(contains(npz_error(stored),
                      "bad.npz: member a.npy: truncated (expected 5000000 bytes of stored data, found "));
  // A local header offset past the end.
  Bytes offset = zip_of({{"a.npy", npy}}, false);
  put32(offset, central_entry(offset) + 42, 0x7fffffff);
  BOOST_TEST(npz_error(offset) ==
             "bad.npz: member a.npy: truncated (local header at offset 2147483647 is past the end of the file)");
}

BOOST_AUTO_TEST_CASE(npy_inside_npz_is_validated) {
  const std::string npy = vol_npy();
  const std::string cut = npy.substr(0, npy.size() - 40);
  BOOST_TEST(npz_error(zip_of({{"features.conv0.weight.npy", cut}}, true), "weights.npz") ==
             "weights.npz: member features.conv0.weight.npy: truncated (expected 96 bytes of data, found 56)");
  BOOST_TEST(npz_error(zip_of({{"a.npy", "hello world"}}, false)) ==
             "bad.npz: member a.npy: not a .npy file (bad magic)");
}

BOOST_AUTO_TEST_CASE(npy_header_errors) {
  const std::string npy = vol_npy();
  auto bytes = [](const std::string& s) { return to_bytes(s); };
  BOOST_TEST(npy_error(bytes(patched(npy, "\x93NUMPY", "\x93NUMPZ"))) == "bad.npy: not a .npy file (bad magic)");
  BOOST_TEST(npy_error(bytes(patched(npy, "Y\x01", "Y\x09"))) == "bad.npy: unsupported npy format version 9.0");
  BOOST_TEST(npy_error(bytes(patched(npy, "'<f4'", "'|O' "))) ==
             "bad.npy: object arrays (pickled) are not supported");
  BOOST_TEST(npy_error(bytes(patched(npy, "'<f4'", "'>f4'"))) ==
             "bad.npy: big-endian dtype '>f4' is not supported (convert with .astype('<f4'))");
  BOOST_TEST(npy_error(bytes(patched(npy, "'<f4'", "'<c8'"))) ==
             "bad.npy: unsupported dtype '<c8' (supported: float16/32/64, int8/16/32/64, uint8/16/32/64, bool)");
  BOOST_TEST(npy_error(bytes(patched(npy, "(2, 3, 4)", "(2, 3, 5)"))) ==
             "bad.npy: truncated (expected 120 bytes of data, found 96)");
  BOOST_TEST(npy_error(bytes(npy_with_header(
                 "{'descr': '<f4', 'fortran_order': False, 'shape': (2, -3, 4), }", ""))) ==
             "bad.npy: negative dimension in npy header shape");
  BOOST_TEST(contains(npy_error(bytes(patched(npy, "{'descr'", "['descr'"))),
                      "bad.npy: malformed npy header (expected '{' at offset 0): ['descr': '<f4'"));
  BOOST_TEST(npy_error(bytes(patched(npy, "False", "Flase"))).rfind(
                 "bad.npy: malformed npy header (expected True or False at offset", 0) == 0);
  BOOST_TEST(npy_error(bytes(patched(npy, "'shape'", "'shapf'"))) == "bad.npy: unexpected key 'shapf' in npy header");
  BOOST_TEST(npy_error(bytes(npy_with_header("{'descr': '<f4', 'fortran_order': False, }", ""))) ==
             "bad.npy: npy header has no 'shape'");
  BOOST_TEST(npy_error(bytes(npy_with_header(
                 "{'descr': '<f8', 'fortran_order': False, 'shape': (4294967296, 4294967296), }", ""))) ==
             "bad.npy: shape (4294967296, 4294967296) has too many elements");
  BOOST_TEST(npy_error(bytes(npy_with_header(
                 "{'descr': '<f8', 'fortran_order': False, 'shape': (99999999999999999999,), }", ""))) ==
             "bad.npy: dimension in npy header shape is too large");
  BOOST_TEST(npy_error(bytes(npy_with_header(
                 "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,), }", "abcd"))) ==
             "bad.npy: structured dtypes are not supported");
  // Header length pointing past the end of the file.
  std::string long_header = npy;
  long_header[8] = '\xff';
  long_header[9] = '\x7f';
  BOOST_TEST(contains(npy_error(bytes(long_header)), "bad.npy: truncated npy header (declares 32767 bytes"));
  for (size_t keep : {size_t(3), size_t(7), size_t(9), size_t(40)}) {
    const std::string msg = npy_error(bytes(npy.substr(0, keep)));
    BOOST_TEST_CONTEXT("kept " << keep) { BOOST_TEST(contains(msg, "bad.npy: ")); }
  }
  BOOST_TEST(npy_error(bytes(npy.substr(0, 9))) == "bad.npy: truncated npy header");
  // Python 2 era headers wrote longs as 3L; numpy still reads them, so do we.
  const std::string py2 = npy_with_header("{'descr': '<i8', 'fortran_order': False, 'shape': (2L,), }",
                                          std::string(16, '\0'));
  BOOST_TEST(parse_npy(reinterpret_cast<const unsigned char*>(py2.data()), py2.size(), "x").shape ==
                 (std::vector<int64_t>{2}),
             boost::test_tools::per_element());
}

// Every prefix and every single-byte corruption of small valid files must either parse or throw
// volfeat::Error: never crash, hang or read out of bounds (run under ASan for the real proof).
BOOST_AUTO_TEST_CASE(every_prefix_and_byte_flip_fails_cleanly) {
  const std::string npy = vol_npy();
  std::vector<Bytes> inputs = {zip_of({{"a.npy", npy}, {"b.npy", npy}}, false),
                               zip_of({{"a.npy", npy}, {"b.npy", npy}}, true),
                               zip_of({{"a.npy", npy}}, true, true)};
  size_t thrown = 0, parsed = 0;
  auto attempt = [&](const Bytes& b) {
    try {
      parse_npz(b.data(), b.size(), "fuzz.npz");
      ++parsed;
    } catch (const Error&) {
      ++thrown;
    }
  };
  for (const Bytes& good : inputs) {
    for (size_t keep = 0; keep < good.size(); ++keep) attempt(Bytes(good.begin(), good.begin() + keep));
    for (size_t i = 0; i < good.size(); ++i) {
      for (unsigned char mask : {0x01, 0x80, 0xff}) {
        Bytes b = good;
        b[i] ^= mask;
        attempt(b);
      }
    }
  }
  for (size_t keep = 0; keep <= npy.size(); ++keep) {
    const Bytes b(npy.begin(), npy.begin() + keep);
    try {
      parse_npy(b.data(), b.size(), "fuzz.npy");
      ++parsed;
    } catch (const Error&) {
      ++thrown;
    }
  }
  BOOST_TEST_MESSAGE("fuzz-ish sweep: " << thrown << " rejected, " << parsed << " parsed");
  BOOST_TEST(thrown > 0u);
}

// ---------------------------------------------------------------- sha256 ----------------------

// Every kernel this CPU runs (the SHA-NI one is said to be skipped where the CPU lacks it) against the
// FIPS 180-4 vectors, then against the portable kernel over lengths around every block boundary.
BOOST_AUTO_TEST_CASE(sha256_kernels_agree) {
  if (!sha256_kernel_supported(Sha256Kernel::kShaNi)) {
    BOOST_TEST_MESSAGE("sha256 SHA-NI kernel: SKIPPED, this CPU has no SHA extensions (the portable kernel is tested)");
    BOOST_TEST(error_of([] { Sha256 h(Sha256Kernel::kShaNi); }) == "sha256: this CPU has no sha-ni instructions");
  }
  const std::string two_blocks = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
  const std::string million(1000000, 'a');
  std::vector<unsigned char> bytes(4096 + 7);
  uint32_t x = 12345;
  for (unsigned char& b : bytes) b = static_cast<unsigned char>((x = x * 1664525u + 1013904223u) >> 24);
  for (Sha256Kernel k : {Sha256Kernel::kPortable, Sha256Kernel::kShaNi}) {
    if (!sha256_kernel_supported(k)) continue;
    BOOST_TEST_CONTEXT(sha256_kernel_name(k)) {
      auto hex = [k](const void* p, size_t n) {
        Sha256 h(k);
        h.update(p, n);
        return h.hex_digest();
      };
      BOOST_TEST(hex("abc", 3) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
      BOOST_TEST(hex(two_blocks.data(), two_blocks.size()) ==
                 "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
      BOOST_TEST(hex(million.data(), million.size()) == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
      int differ = 0;
      for (size_t n = 0; n <= bytes.size(); n += (n < 300 ? 1 : 61)) {
        Sha256 portable(Sha256Kernel::kPortable), split(k);
        portable.update(bytes.data(), n);
        split.update(bytes.data(), n / 3);  // a partial block, then whole blocks from the buffer's edge
        split.update(bytes.data() + n / 3, n - n / 3);
        differ += portable.hex_digest() != split.hex_digest();
      }
      BOOST_TEST(differ == 0);
    }
  }
}

BOOST_AUTO_TEST_CASE(sha256_known_vectors) {
  BOOST_TEST(sha256_hex("", 0) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  BOOST_TEST(sha256_hex("abc", 3) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  const std::string two_blocks = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
  BOOST_TEST(sha256_hex(two_blocks.data(), two_blocks.size()) ==
             "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  const std::string million(1000000, 'a');
  BOOST_TEST(sha256_hex(million.data(), million.size()) ==
             "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  // Incremental updates at awkward split points agree with one-shot hashing.
  Sha256 h;
  for (size_t at = 0; at < million.size();) {
    const size_t take = std::min<size_t>(1 + at % 127, million.size() - at);
    h.update(million.data() + at, take);
    at += take;
  }
  BOOST_TEST(h.hex_digest() == sha256_hex(million.data(), million.size()));
}

BOOST_AUTO_TEST_CASE(sha256_file_matches_python_hashlib) {
  std::ifstream list(fixture("sha256.txt"));
  std::string hex, name;
  int checked = 0;
  while (list >> hex >> name) {
    BOOST_TEST_CONTEXT(name) { BOOST_TEST(sha256_file(fixture(name)) == hex); }
    ++checked;
  }
  BOOST_TEST(checked == 3);
  BOOST_TEST(error_of([] { sha256_file("/nonexistent/w.npz"); }) ==
             "/nonexistent/w.npz: cannot open for hashing: No such file or directory");
}

// ---------------------------------------------------------------- AtomicFile ------------------

BOOST_AUTO_TEST_CASE(atomic_file_uncommitted_leaves_nothing) {
  const std::string path = scratch("atomic_uncommitted.bin");
  ::unlink(path.c_str());
  std::string temp;
  {
    AtomicFile f(path);
    temp = f.temp_path();
    f.write("partial");
    BOOST_TEST(exists(temp));
    BOOST_TEST(!exists(path));
  }
  BOOST_TEST(!exists(temp));
  BOOST_TEST(!exists(path));
}

BOOST_AUTO_TEST_CASE(atomic_file_replaces_only_on_commit) {
  const std::string path = scratch("atomic_replace.bin");
  write_file_atomic(path, "old contents");
  {
    AtomicFile f(path);
    f.write("new contents");
    BOOST_TEST(to_bytes("old contents") == slurp(path), boost::test_tools::per_element());
    f.commit();
    BOOST_TEST(!exists(f.temp_path()));
  }
  BOOST_TEST(to_bytes("new contents") == slurp(path), boost::test_tools::per_element());
  // A writer that throws halfway leaves the previous file intact.
  NpyArray bad = NpyArray::from<float>({1}, std::vector<float>{1}.data());
  bad.bytes.clear();
  const NpzMap arrays = {{"a", reference_arrays().at("ramp")}, {"z", bad}};
  BOOST_TEST(contains(error_of([&] { write_npz(path, arrays); }), path + ": array z: holds 0 bytes"));
  BOOST_TEST(to_bytes("new contents") == slurp(path), boost::test_tools::per_element());
  BOOST_TEST(!exists(path + ".tmp-" + std::to_string(::getpid())));
}

BOOST_AUTO_TEST_CASE(atomic_file_errors_name_the_path) {
  BOOST_TEST(error_of([] { write_file_atomic("/nonexistent-dir/out.npz", "x"); }) ==
             "/nonexistent-dir/out.npz: cannot create temporary file /nonexistent-dir/out.npz.tmp-" +
                 std::to_string(::getpid()) + ": No such file or directory");
  BOOST_TEST(error_of([] { read_npz("/nonexistent-dir/in.npz"); }) ==
             "/nonexistent-dir/in.npz: cannot open: No such file or directory");
}
