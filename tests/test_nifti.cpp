// NIfTI reading against nibabel-written files (every datatype, scaling, both versions, qform and
// sform, byte order), the axis convention, write -> read round trips, the one-line failure messages
// on damaged files, the real pelvis CT when present, the knee phantom and the PNG writer.
#define BOOST_TEST_MODULE nifti
#include <png.h>

#include <boost/test/unit_test.hpp>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "support/paths.hpp"
#include "volfeat/io/nifti.hpp"
#include "volfeat/io/png.hpp"
#include "volfeat/io/volume.hpp"
#include "volfeat/pipeline/phantom.hpp"

using namespace volfeat;
namespace fs = std::filesystem;
using Bytes = std::vector<char>;
using Affine = std::array<std::array<double, 4>, 4>;

namespace {

const std::string kFixtures = volfeat::test::test_data_dir() + "/nifti";
const std::string kScratch = volfeat::test::test_data_dir() + "/nifti_scratch";
const std::string kPelvis = volfeat::test::shared_dir() + "/data/pelvis_ct";

// Skips (with the reason) instead of failing when the python fixture step could not run.
struct FixturesPresent {
  boost::test_tools::assertion_result operator()(boost::unit_test::test_unit_id) const {
    boost::test_tools::assertion_result r(fs::exists(kFixtures + "/value_float32.nii"));
    r.message() << "NIfTI fixtures missing in " << kFixtures
                << " (run through ctest so nifti_fixtures writes them; it needs python3-nibabel)";
    return r;
  }
};
const auto needs_fixtures = boost::unit_test::precondition(FixturesPresent{});

std::string fixture(const std::string& name) { return kFixtures + "/" + name; }

std::string scratch(const std::string& name) {
  fs::create_directories(kScratch);
  return kScratch + "/" + name;
}

Bytes read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  BOOST_REQUIRE_MESSAGE(f, "cannot read " << path);
  return Bytes(std::istreambuf_iterator<char>(f), {});
}

void write_bytes(const std::string& path, const Bytes& b) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(b.data(), static_cast<std::streamsize>(b.size()));
  BOOST_REQUIRE_MESSAGE(f, "cannot write " << path);
}

template <class T>
void poke(Bytes& b, size_t offset, T value) {
  std::memcpy(b.data() + offset, &value, sizeof value);
}

// Copies a fixture to the scratch dir under `name`, with `patch` applied to its bytes.
std::string patched(const std::string& from, const std::string& name, const std::function<void(Bytes&)>& patch) {
  Bytes b = read_bytes(fixture(from));
  patch(b);
  const std::string out = scratch(name);
  write_bytes(out, b);
  return out;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  BOOST_ERROR("expected a volfeat::Error");
  return {};
}

// Every user-facing failure is one line that names the file and the problem.
void check_error(const std::function<void()>& f, const std::vector<std::string>& parts) {
  const std::string msg = error_of(f);
  BOOST_TEST_MESSAGE("error text: " << msg);
  BOOST_CHECK_MESSAGE(msg.find('\n') == std::string::npos, "message is not one line: " << msg);
  for (const auto& p : parts) BOOST_CHECK_MESSAGE(msg.find(p) != std::string::npos, "'" << p << "' not in: " << msg);
}

// The fixtures' NIfTI value i + 10*j + 100*k at (d,h,w) = (k,j,i).
double expected_value(int64_t d, int64_t h, int64_t w) { return static_cast<double>(w + 10 * h + 100 * d); }

template <class T>
void check_values(const Volume<T>& v, const std::function<double(double)>& f, const std::string& what) {
  BOOST_REQUIRE_MESSAGE((v.grid.dims == std::array<int64_t, 3>{3, 4, 5}), what << ": dims " << describe(v.grid));
  BOOST_REQUIRE_EQUAL(v.data.size(), 60u);
  int wrong = 0;
  for (int64_t d = 0; d < 3; ++d)
    for (int64_t h = 0; h < 4; ++h)
      for (int64_t w = 0; w < 5; ++w)
        if (static_cast<double>(v.at(d, h, w)) != f(expected_value(d, h, w))) ++wrong;
  BOOST_CHECK_MESSAGE(wrong == 0, what << ": " << wrong << " voxels differ");
}

void check_affine(const Affine& got, const Affine& want, double tol, const std::string& what) {
  for (int r = 0; r < 4; ++r)
    for (int c = 0; c < 4; ++c)
      BOOST_CHECK_MESSAGE(std::fabs(got[r][c] - want[r][c]) <= tol,
                          what << ": affine[" << r << "][" << c << "] = " << got[r][c] << ", want " << want[r][c]);
}

const Affine kIdentity = {{{{1, 0, 0, 0}}, {{0, 1, 0, 0}}, {{0, 0, 1, 0}}, {{0, 0, 0, 1}}}};
const Affine kFixtureAffine = {{{{2.5, 0, 0, -10}}, {{0, 1.5, 0, 20}}, {{0, 0, 3, 30.5}}, {{0, 0, 0, 1}}}};
const Affine kLps = {{{{-2, 0, 0, 100}}, {{0, -2, 0, 50}}, {{0, 0, 2, -20}}, {{0, 0, 0, 1}}}};

uint64_t fnv1a(const void* p, size_t n, uint64_t h = 1469598103934665603ull) {
  const auto* b = static_cast<const unsigned char*>(p);
  for (size_t i = 0; i < n; ++i) h = (h ^ b[i]) * 1099511628211ull;
  return h;
}

// A float volume that does not compress to nothing, on a rotated anisotropic grid.
Volume<float> noisy_volume(std::array<int64_t, 3> dims, uint32_t seed) {
  Volume<float> v;
  const double a = 30.0 * M_PI / 180.0, sp[3] = {0.8, 1.5, 2.0};  // spacing along i, j, k
  v.grid.dims = dims;
  v.grid.spacing = {sp[2], sp[1], sp[0]};
  v.grid.affine = {{{{std::cos(a) * sp[0], -std::sin(a) * sp[1], 0, -12.5}},
                    {{std::sin(a) * sp[0], std::cos(a) * sp[1], 0, 40.25}},
                    {{0, 0, sp[2], -300}},
                    {{0, 0, 0, 1}}}};
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1024.0f, 3000.0f);
  v.data.resize(static_cast<size_t>(v.grid.voxels()));
  for (auto& x : v.data) x = u(rng);
  return v;
}

}  // namespace

// ---- reading nibabel's files --------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(every_datatype_reads_the_same_values, *needs_fixtures) {
  for (const std::string dt : {"uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64", "float32", "float64"}) {
    const std::string path = fixture("value_" + dt + ".nii");
    check_values(read_nifti_float(path), [](double x) { return x; }, path);
    BOOST_CHECK_EQUAL(read_nifti_header(path).datatype_name, dt);
    check_values(read_nifti_labels(path), [](double x) { return x; }, path + " as labels");
  }
  // int8 cannot hold 234: the fixture stores value - 128.
  check_values(read_nifti_float(fixture("value_int8.nii")), [](double x) { return x - 128; }, "int8");
  check_values(read_nifti_labels(fixture("value_int8.nii")), [](double x) { return x - 128; }, "int8 labels");
  BOOST_CHECK_EQUAL(read_nifti_header(fixture("value_int8.nii")).datatype_name, "int8");
}

BOOST_AUTO_TEST_CASE(axis_convention_is_d_h_w_equals_k_j_i, *needs_fixtures) {
  const Volume<float> v = read_nifti_float(fixture("value_float32.nii"));
  BOOST_TEST(v.grid.dims[0] == 3);  // nk
  BOOST_TEST(v.grid.dims[1] == 4);  // nj
  BOOST_TEST(v.grid.dims[2] == 5);  // ni
  BOOST_TEST(v.at(0, 0, 1) == 1.0f);    // i (W) runs fastest
  BOOST_TEST(v.at(0, 1, 0) == 10.0f);   // j = H
  BOOST_TEST(v.at(1, 0, 0) == 100.0f);  // k = D
  BOOST_TEST(v.at(2, 3, 4) == 234.0f);
  BOOST_TEST(v.data[1] == 1.0f);  // buffer order = NIfTI's on-disk order
  BOOST_TEST(v.data[5] == 10.0f);
  BOOST_TEST(v.data[20] == 100.0f);
  BOOST_TEST(v.grid.voxels() == 60);
  BOOST_TEST(v.grid.index(2, 3, 4) == 59);
}

BOOST_AUTO_TEST_CASE(gzip_big_endian_and_4d_singleton, *needs_fixtures) {
  const NiftiInfo gz = read_nifti_header(fixture("value_float32.nii.gz"));
  BOOST_TEST(gz.gzipped);
  BOOST_TEST(!read_nifti_header(fixture("value_float32.nii")).gzipped);
  BOOST_CHECK(read_nifti_float(fixture("value_float32.nii.gz")).data == read_nifti_float(fixture("value_float32.nii")).data);

  const NiftiInfo be = read_nifti_header(fixture("value_int16_be.nii"));
  BOOST_TEST(be.big_endian);
  BOOST_TEST(!gz.big_endian);
  check_values(read_nifti_float(fixture("value_int16_be.nii")), [](double x) { return x; }, "big-endian int16");

  check_values(read_nifti_float(fixture("fourd_nt1.nii")), [](double x) { return x; }, "4D with nt=1");
  check_error([] { read_nifti_float(fixture("fourd_nt2.nii")); }, {"fourd_nt2.nii", "nt=2", "single 3D volume"});
}

BOOST_AUTO_TEST_CASE(scl_slope_and_inter_are_applied, *needs_fixtures) {
  const NiftiInfo info = read_nifti_header(fixture("scaled.nii"));
  BOOST_TEST(info.scaled);
  BOOST_TEST(info.scl_slope == 2.0);
  BOOST_TEST(info.scl_inter == -1024.0);
  BOOST_TEST(info.datatype_name == "int16");
  check_values(read_nifti_float(fixture("scaled.nii")), [](double x) { return 2 * x - 1024; }, "scaled");
  check_values(read_nifti_labels(fixture("scaled.nii")), [](double x) { return 2 * x - 1024; }, "scaled labels");

  // NaN slope = unscaled (nibabel's rule), not "multiply by NaN".
  const NiftiInfo nan_slope = read_nifti_header(fixture("slope_nan.nii"));
  BOOST_TEST(!nan_slope.scaled);
  check_values(read_nifti_float(fixture("slope_nan.nii")), [](double x) { return x; }, "slope NaN");
}

BOOST_AUTO_TEST_CASE(spacing_order_affine_and_versions, *needs_fixtures) {
  for (const std::string name : {"affine.nii.gz", "nifti2.nii"}) {
    const NiftiInfo info = read_nifti_header(fixture(name));
    BOOST_TEST_CONTEXT(name) {
      BOOST_TEST(info.version == (name == "nifti2.nii" ? 2 : 1));
      // pixdim (2.5, 1.5, 3) along (i,j,k) -> spacing along (D,H,W) = (3, 1.5, 2.5)
      BOOST_TEST(info.grid.spacing[0] == 3.0);
      BOOST_TEST(info.grid.spacing[1] == 1.5);
      BOOST_TEST(info.grid.spacing[2] == 2.5);
      BOOST_TEST(info.sform_code == 2);
      BOOST_TEST(info.affine_source == "sform");
      BOOST_TEST(info.orientation == "RAS");
      check_affine(info.grid.affine, kFixtureAffine, 1e-6, name);
      check_values(read_nifti_float(fixture(name)), [](double x) { return x; }, name);
    }
  }
}

BOOST_AUTO_TEST_CASE(qform_sform_precedence, *needs_fixtures) {
  const NiftiInfo q = read_nifti_header(fixture("qform_only.nii"));
  BOOST_TEST(q.affine_source == "qform");
  BOOST_TEST(q.qform_code == 1);
  BOOST_TEST(q.sform_code == 0);
  BOOST_TEST(q.orientation == "LPS");
  check_affine(q.grid.affine, kLps, 1e-5, "qform_only");

  const NiftiInfo s = read_nifti_header(fixture("sform_wins.nii"));
  BOOST_TEST(s.affine_source == "sform");
  check_affine(s.grid.affine, kFixtureAffine, 1e-6, "sform_wins");

  // Neither code set: nibabel's base affine (x flipped, centre voxel at the origin).
  const std::string none = patched("value_int16.nii", "no_xform.nii", [](Bytes& b) {
    poke<int16_t>(b, 252, 0);  // qform_code
    poke<int16_t>(b, 254, 0);  // sform_code
  });
  const NiftiInfo n = read_nifti_header(none);
  BOOST_TEST(n.affine_source == "pixdim");
  const Affine base = {{{{-1, 0, 0, 2}}, {{0, 1, 0, -1.5}}, {{0, 0, 1, -1}}, {{0, 0, 0, 1}}}};
  check_affine(n.grid.affine, base, 1e-12, "no xform");
}

BOOST_AUTO_TEST_CASE(nan_and_inf_are_counted_or_replaced, *needs_fixtures) {
  check_error([] { read_nifti_float(fixture("nan.nii")); },
              {"nan.nii", "3 voxels are NaN or infinite", "(d,h,w)=(0,0,1)", "[i,j,k]=[1,0,0]"});
  ReadOptions opt;
  opt.nan_to = -1000.0f;
  const Volume<float> v = read_nifti_float(fixture("nan.nii"), opt);
  BOOST_TEST(v.at(0, 0, 1) == -1000.0f);
  BOOST_TEST(v.at(0, 0, 2) == -1000.0f);
  BOOST_TEST(v.at(2, 1, 0) == -1000.0f);
  BOOST_TEST(v.at(0, 0, 3) == 3.0f);
  BOOST_TEST(v.at(2, 3, 4) == 234.0f);
  check_error([] { read_nifti_labels(fixture("nan.nii")); }, {"nan.nii", "not an integer", "(d,h,w)=(0,0,1)"});
}

BOOST_AUTO_TEST_CASE(labels, *needs_fixtures) {
  const Volume<int32_t> lab = read_nifti_labels(fixture("labels.nii.gz"));
  std::map<int32_t, int> count;
  for (int32_t x : lab.data) ++count[x];
  BOOST_TEST(count[1] == 8);
  BOOST_TEST(count[2] == 4);
  BOOST_TEST(count[0] == 48);
  BOOST_TEST(lab.at(1, 2, 2) == 1);  // lab[1:3, 1:3, 0:2] = 1 in nibabel's [i,j,k]
  BOOST_TEST(lab.at(2, 1, 4) == 2);  // lab[3:5, 0:2, 2] = 2
  BOOST_TEST(lab.at(2, 2, 2) == 0);

  check_error([] { read_nifti_labels(fixture("labels_nonint.nii")); },
              {"labels_nonint.nii", "not a label map", "(d,h,w)=(1,2,3)", "[i,j,k]=[3,2,1]", "2.5", "not an integer"});
}

// ---- writing ------------------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(float_round_trip_nii_and_gz) {
  const Volume<float> v = noisy_volume({7, 9, 11}, 1);
  for (const std::string name : {"round.nii", "round.nii.gz"}) {
    const std::string path = scratch(name);
    write_nifti(path, v);
    const Volume<float> back = read_nifti_float(path);
    BOOST_TEST_CONTEXT(name) {
      BOOST_CHECK(back.grid.dims == v.grid.dims);
      BOOST_CHECK(back.data == v.data);  // float32 on disk: bit-exact
      for (int i = 0; i < 3; ++i) BOOST_TEST(std::fabs(back.grid.spacing[i] - v.grid.spacing[i]) < 1e-6);
      check_affine(back.grid.affine, v.grid.affine, 1e-4, name);  // header stores float32
      BOOST_CHECK_NO_THROW(require_same_grid(v.grid, "written", back.grid, "read back"));
      const NiftiInfo info = read_nifti_header(path);
      BOOST_TEST(info.version == 1);
      BOOST_TEST(info.gzipped == (name == "round.nii.gz"));
      BOOST_TEST(info.datatype_name == "float32");
      BOOST_TEST(info.sform_code == 1);
      BOOST_TEST(info.qform_code == 1);
    }
  }
  // The qform (the library's quaternion fit) must describe the same rigid grid as the sform.
  const std::string q = scratch("round_qform.nii");
  write_bytes(q, [] {
    Bytes b = read_bytes(scratch("round.nii"));
    poke<int16_t>(b, 254, 0);  // sform_code = 0
    return b;
  }());
  const NiftiInfo qi = read_nifti_header(q);
  BOOST_TEST(qi.affine_source == "qform");
  check_affine(qi.grid.affine, v.grid.affine, 1e-4, "qform of written file");

  // An axis longer than NIfTI-1's int16 dims forces NIfTI-2.
  Volume<float> line;
  line.grid = make_grid({1, 1, 40000}, {1.0, 1.0, 0.25}, {5, 6, 7});
  line.data.resize(40000);
  for (size_t i = 0; i < line.data.size(); ++i) line.data[i] = static_cast<float>(i) * 0.5f;
  write_nifti(scratch("line.nii.gz"), line);
  BOOST_TEST(read_nifti_header(scratch("line.nii.gz")).version == 2);
  const Volume<float> line_back = read_nifti_float(scratch("line.nii.gz"));
  BOOST_CHECK(line_back.data == line.data);
  BOOST_CHECK_NO_THROW(require_same_grid(line.grid, "written", line_back.grid, "read back"));

  // Overwriting works, and no temporary is left behind.
  write_nifti(scratch("round.nii.gz"), noisy_volume({7, 9, 11}, 2));
  BOOST_CHECK(read_nifti_float(scratch("round.nii.gz")).data != v.data);
  for (const auto& e : fs::directory_iterator(kScratch))
    BOOST_CHECK_MESSAGE(e.path().filename().string().find(".tmp") == std::string::npos, "left over: " << e.path());
}

BOOST_AUTO_TEST_CASE(label_round_trip_picks_the_smallest_type) {
  Volume<int32_t> lab;
  lab.grid = make_grid({4, 5, 6}, {2.0, 1.0, 0.5}, {10, 20, 30});
  lab.data.resize(static_cast<size_t>(lab.grid.voxels()));
  for (size_t i = 0; i < lab.data.size(); ++i) lab.data[i] = static_cast<int32_t>(i % 3);
  const std::vector<std::pair<int32_t, std::string>> cases = {
      {2, "uint8"}, {255, "uint8"}, {300, "int16"}, {-5, "int16"}, {70000, "int32"}, {-70000, "int32"}};
  for (const auto& [extra, dtype] : cases) {
    lab.data[7] = extra;
    const std::string path = scratch("labels_rt.nii.gz");
    write_nifti(path, lab);
    BOOST_TEST_CONTEXT("label " << extra) {
      BOOST_TEST(read_nifti_header(path).datatype_name == dtype);
      const Volume<int32_t> back = read_nifti_labels(path);
      BOOST_CHECK(back.data == lab.data);
      BOOST_CHECK_NO_THROW(require_same_grid(lab.grid, "written", back.grid, "read back"));
      check_affine(back.grid.affine, lab.grid.affine, 1e-6, "labels");
    }
  }
}

BOOST_AUTO_TEST_CASE(write_errors) {
  Volume<float> v = noisy_volume({2, 3, 4}, 3);
  check_error([&] { write_nifti(kScratch + "/no/such/dir/x.nii.gz", v); }, {"no/such/dir/x.nii.gz", "temporary"});
  check_error([&] { write_nifti(scratch("x.img"), v); }, {"x.img", ".nii"});
  v.data.pop_back();
  check_error([&] { write_nifti(scratch("short.nii"), v); }, {"short.nii", "23 values", "needs 24"});
  BOOST_TEST(!fs::exists(scratch("short.nii")));
}

// ---- grids --------------------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(describe_and_require_same_grid) {
  const Grid a = make_grid({112, 101, 122}, {3, 3, 3}, {-177.5, 11.25, 94.5});
  BOOST_TEST(describe(a) == "122x101x112 (i,j,k) spacing 3x3x3 mm, affine [[3,0,0,-177.5],[0,3,0,11.25],[0,0,3,94.5]]");
  BOOST_CHECK_NO_THROW(require_same_grid(a, "ct.nii.gz", a, "labels.nii.gz"));

  Grid nearly = a;
  nearly.affine[0][3] += 1e-5;  // header float round-off is still the same grid
  BOOST_CHECK_NO_THROW(require_same_grid(a, "ct.nii.gz", nearly, "labels.nii.gz"));

  Grid other = a;
  other.dims = {112, 101, 121};
  check_error([&] { require_same_grid(a, "ct.nii.gz", other, "labels.nii.gz"); },
              {"grid mismatch", "dimensions differ", "ct.nii.gz is 122x101x112", "labels.nii.gz is 121x101x112"});
  Grid moved = a;
  moved.affine[2][3] += 1.5;
  check_error([&] { require_same_grid(a, "ct.nii.gz", moved, "seg.nii"); }, {"origin differs", "ct.nii.gz", "seg.nii", "96"});
  Grid finer = a;
  finer.spacing[0] = 2.5;
  check_error([&] { require_same_grid(a, "a.nii", finer, "b.nii"); }, {"spacing differs", "a.nii", "b.nii"});
}

// ---- damaged files ------------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(truncated_files, *needs_fixtures) {
  // Big enough and random enough that half the .gz bytes leave the header intact but not the data.
  const std::string big = scratch("big.nii.gz");
  write_nifti(big, noisy_volume({32, 40, 48}, 4));
  const Bytes whole = read_bytes(big);

  const std::string half = scratch("half.nii.gz");
  write_bytes(half, Bytes(whole.begin(), whole.begin() + static_cast<long>(whole.size() / 2)));
  check_error([&] { read_nifti_float(half); }, {"half.nii.gz", "truncated"});

  // Only the gzip trailer (CRC + length) missing: every voxel decompresses, the file is still cut.
  const std::string no_trailer = scratch("no_trailer.nii.gz");
  write_bytes(no_trailer, Bytes(whole.begin(), whole.end() - 8));
  check_error([&] { read_nifti_float(no_trailer); }, {"no_trailer.nii.gz", "truncated"});

  // A flipped byte in the compressed data.
  Bytes flipped = whole;
  flipped[whole.size() * 3 / 4] ^= 0x5a;
  const std::string corrupt = scratch("corrupt.nii.gz");
  write_bytes(corrupt, flipped);
  check_error([&] { read_nifti_float(corrupt); }, {"corrupt.nii.gz", "gzip"});

  const Bytes plain = read_bytes(fixture("value_float32.nii"));
  const std::string short_data = scratch("short_data.nii");
  write_bytes(short_data, Bytes(plain.begin(), plain.begin() + 400));
  check_error([&] { read_nifti_float(short_data); }, {"short_data.nii", "truncated", "has 400 bytes", "needs 592"});

  const std::string short_header = scratch("short_header.nii");
  write_bytes(short_header, Bytes(plain.begin(), plain.begin() + 100));
  check_error([&] { read_nifti_header(short_header); }, {"short_header.nii", "truncated header", "100 of 348"});

  const std::string empty = scratch("empty.nii");
  write_bytes(empty, {});
  check_error([&] { read_nifti_float(empty); }, {"empty.nii", "not a NIfTI file"});
}

BOOST_AUTO_TEST_CASE(bad_headers, *needs_fixtures) {
  const std::string magic = patched("value_float32.nii", "bad_magic.nii", [](Bytes& b) { std::memcpy(&b[344], "xyz", 4); });
  check_error([&] { read_nifti_float(magic); }, {"bad_magic.nii", "bad magic"});

  // NIfTI-2's EOL-check bytes: zeros (what the nifti C library writes) pass, mangled ones do not.
  const std::string eol_zero = patched("nifti2.nii", "nifti2_eol_zero.nii", [](Bytes& b) { std::memset(&b[8], 0, 4); });
  check_values(read_nifti_float(eol_zero), [](double x) { return x; }, "NIfTI-2 with zero EOL bytes");
  const std::string eol_bad = patched("nifti2.nii", "nifti2_eol_bad.nii", [](Bytes& b) { std::memcpy(&b[8], "\n\032\n\0", 4); });
  check_error([&] { read_nifti_header(eol_bad); }, {"nifti2_eol_bad.nii", "damaged NIfTI-2 magic"});

  const std::string zero = patched("value_float32.nii", "zero_spacing.nii", [](Bytes& b) { poke<float>(b, 80, 0.0f); });
  check_error([&] { read_nifti_float(zero); }, {"zero_spacing.nii", "invalid voxel spacing", "pixdim[1]", "i axis"});
  const std::string nan_sp =
      patched("value_float32.nii", "nan_spacing.nii", [](Bytes& b) { poke<float>(b, 88, std::nanf("")); });
  check_error([&] { read_nifti_header(nan_sp); }, {"nan_spacing.nii", "pixdim[3]"});

  const std::string zero_dim = patched("value_float32.nii", "zero_dim.nii", [](Bytes& b) { poke<int16_t>(b, 44, 0); });
  check_error([&] { read_nifti_float(zero_dim); }, {"zero_dim.nii", "dimension nj is 0"});

  const std::string huge = patched("value_float32.nii", "huge.nii", [](Bytes& b) {
    for (size_t off : {42, 44, 46}) poke<int16_t>(b, off, 32767);
  });
  check_error([&] { read_nifti_header(huge); }, {"huge.nii", "2^34"});

  const std::string two_d = patched("value_float32.nii", "two_d.nii", [](Bytes& b) { poke<int16_t>(b, 40, 2); });
  check_error([&] { read_nifti_header(two_d); }, {"two_d.nii", "2D", "3D volume"});

  const std::string rgb = patched("value_uint8.nii", "rgb.nii", [](Bytes& b) {
    poke<int16_t>(b, 70, 128);  // DT_RGB24
    poke<int16_t>(b, 72, 24);
  });
  check_error([&] { read_nifti_header(rgb); }, {"rgb.nii", "unsupported datatype RGB24"});

  const std::string bad_scale = patched("value_int16.nii", "bad_scale.nii", [](Bytes& b) {
    poke<float>(b, 112, 2.0f);
    poke<float>(b, 116, std::nanf(""));
  });
  check_error([&] { read_nifti_header(bad_scale); }, {"bad_scale.nii", "scl_inter"});

  // Names and kinds of files the reader refuses before touching the library.
  check_error([] { read_nifti_float(kScratch + "/does_not_exist.nii.gz"); }, {"does_not_exist.nii.gz", "no such file"});
  const std::string img = scratch("volume.img");
  write_bytes(img, read_bytes(fixture("value_float32.nii")));
  check_error([&] { read_nifti_float(img); }, {"volume.img", ".nii or .nii.gz"});
  const std::string gz_named_nii = scratch("compressed.nii");
  write_bytes(gz_named_nii, read_bytes(fixture("value_float32.nii.gz")));
  check_error([&] { read_nifti_float(gz_named_nii); }, {"compressed.nii", "gzip-compressed", ".nii.gz"});
  check_error([] { read_nifti_float(kScratch); }, {"nifti_scratch", "not a regular file"});

  // A plain file named .nii.gz is read as what it is.
  const std::string plain_gz = scratch("plain.nii.gz");
  write_bytes(plain_gz, read_bytes(fixture("value_float32.nii")));
  check_values(read_nifti_float(plain_gz), [](double x) { return x; }, "uncompressed .nii.gz");
}

// ---- the real CT (shared data, optional) --------------------------------------------------------

BOOST_AUTO_TEST_CASE(pelvis_ct) {
  const std::string ct_path = kPelvis + "/ct.nii.gz", seg_path = kPelvis + "/femur1_hip2.nii.gz";
  if (!fs::exists(ct_path) || !fs::exists(seg_path)) {
    BOOST_TEST_MESSAGE("skipping pelvis_ct: " << kPelvis << " has no ct.nii.gz / femur1_hip2.nii.gz");
    return;
  }
  const NiftiInfo info = read_nifti_header(ct_path);
  BOOST_TEST(info.orientation == "RAS");
  BOOST_TEST(info.datatype_name == "int32");
  const Volume<float> ct = read_nifti_float(ct_path);
  BOOST_CHECK((ct.grid.dims == std::array<int64_t, 3>{112, 101, 122}));
  for (double s : ct.grid.spacing) BOOST_TEST(s == 3.0);
  const auto [lo, hi] = std::minmax_element(ct.data.begin(), ct.data.end());
  BOOST_TEST(*lo == -1207.0f);
  BOOST_TEST(*hi == 3382.0f);
  // Values nibabel reads at data[i,j,k]: the same voxels as (d,h,w) = (k,j,i).
  BOOST_TEST(ct.at(30, 20, 10) == -132.0f);
  BOOST_TEST(ct.at(40, 50, 60) == -72.0f);
  BOOST_TEST(ct.at(111, 100, 121) == -997.0f);
  check_affine(ct.grid.affine, {{{{3, 0, 0, -177.95632935}}, {{0, 3, 0, 11.31900024}}, {{0, 0, 3, 94.30175781}}, {{0, 0, 0, 1}}}},
               1e-4, "pelvis CT");

  const Volume<int32_t> seg = read_nifti_labels(seg_path);
  BOOST_CHECK_NO_THROW(require_same_grid(ct.grid, ct_path, seg.grid, seg_path));
  std::map<int32_t, int64_t> count;
  for (int32_t x : seg.data) ++count[x];
  BOOST_TEST(count[1] == 8884);
  BOOST_TEST(count[2] == 26214);
  BOOST_TEST(count.size() == 3u);
}

// ---- the synthetic knee ------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(knee_phantom_anatomy_and_intensities) {
  namespace kp = knee_phantom;
  const Phantom p = make_knee_phantom(0);
  BOOST_CHECK((p.ct.grid.dims == std::array<int64_t, 3>{128, 160, 160}));
  check_affine(p.ct.grid.affine, kIdentity, 0, "phantom");
  for (double s : p.ct.grid.spacing) BOOST_TEST(s == 1.0);
  BOOST_CHECK_NO_THROW(require_same_grid(p.ct.grid, "ct", p.labels.grid, "labels"));

  std::map<int32_t, int64_t> count;
  int64_t femur_lowest = 1 << 30, tibia_highest = -1;
  double bone_hi_sum[3] = {}, bone_lo_sum[3] = {};
  int64_t bone_hi_n[3] = {}, bone_lo_n[3] = {};
  const auto& g = p.ct.grid;
  for (int64_t d = 0; d < g.dims[0]; ++d)
    for (int64_t h = 0; h < g.dims[1]; ++h)
      for (int64_t w = 0; w < g.dims[2]; ++w) {
        const int32_t l = p.labels.at(d, h, w);
        ++count[l];
        if (l == 1) femur_lowest = std::min(femur_lowest, d);
        if (l == 2) tibia_highest = std::max(tibia_highest, d);
        if (l == 1 || l == 2) {
          const float x = p.ct.at(d, h, w);
          // Cortex and marrow are 900 HU apart, 45 noise sigmas: the midpoint separates them.
          if (x > 750) bone_hi_sum[l] += x, ++bone_hi_n[l];
          else bone_lo_sum[l] += x, ++bone_lo_n[l];
        }
      }
  BOOST_TEST(count.size() == 3u);
  BOOST_TEST(count[1] > 20000);
  BOOST_TEST(count[2] > 20000);
  BOOST_TEST_MESSAGE("phantom voxels: femur " << count[1] << ", tibia " << count[2]);
  // Femur above the tibia along D with a 4-6 mm joint gap.
  const int64_t gap = femur_lowest - tibia_highest - 1;
  BOOST_TEST(gap >= 4);
  BOOST_TEST(gap <= 6);
  for (int l : {1, 2}) {
    BOOST_TEST_CONTEXT("label " << l) {
      BOOST_TEST(bone_hi_n[l] > 0);
      BOOST_TEST(bone_lo_n[l] > 0);
      BOOST_TEST(std::fabs(bone_hi_sum[l] / bone_hi_n[l] - kp::kCortexHu) < 2.0);
      BOOST_TEST(std::fabs(bone_lo_sum[l] / bone_lo_n[l] - kp::kMarrowHu) < 2.0);
    }
  }

  // Air in a corner column, soft tissue in the joint gap beside the bones.
  double s = 0, s2 = 0;
  int64_t n = 0;
  for (int64_t d = 0; d < 128; ++d)
    for (int64_t h = 0; h < 10; ++h)
      for (int64_t w = 0; w < 10; ++w) {
        const double x = p.ct.at(d, h, w);
        s += x, s2 += x * x, ++n;
      }
  const double air_mean = s / n, air_sd = std::sqrt(s2 / n - air_mean * air_mean);
  BOOST_TEST(std::fabs(air_mean - kp::kAirHu) < 2.0);
  BOOST_TEST(std::fabs(air_sd - kp::kNoiseSigmaHu) < 1.0);
  s = 0, n = 0;
  for (int64_t d = tibia_highest + 1; d < femur_lowest; ++d)
    for (int64_t h = 70; h < 90; ++h)
      for (int64_t w = 70; w < 90; ++w) s += p.ct.at(d, h, w), ++n;
  BOOST_TEST(std::fabs(s / n - kp::kSoftTissueHu) < 3.0);
}

BOOST_AUTO_TEST_CASE(knee_phantom_is_deterministic_per_seed) {
  const Phantom a = make_knee_phantom(0), b = make_knee_phantom(0), c = make_knee_phantom(1);
  const auto hash = [](const Phantom& p) {
    return fnv1a(p.labels.data.data(), p.labels.data.size() * sizeof(int32_t),
                 fnv1a(p.ct.data.data(), p.ct.data.size() * sizeof(float)));
  };
  BOOST_TEST(hash(a) == hash(b));
  BOOST_TEST(hash(a) != hash(c));
  BOOST_CHECK(a.labels.data == c.labels.data);  // the seed only moves the noise
  BOOST_TEST_MESSAGE("phantom seed 0 hash " << std::hex << hash(a));

  const std::string ct = scratch("knee_ct.nii.gz"), lab = scratch("knee_labels.nii.gz");
  write_nifti(ct, a.ct);
  write_nifti(lab, a.labels);
  const Volume<float> ct_back = read_nifti_float(ct);
  const Volume<int32_t> lab_back = read_nifti_labels(lab);
  BOOST_CHECK(ct_back.data == a.ct.data);
  BOOST_CHECK(lab_back.data == a.labels.data);
  BOOST_TEST(read_nifti_header(lab).datatype_name == "uint8");
  BOOST_TEST(read_nifti_header(ct).orientation == "RAS");
  BOOST_CHECK_NO_THROW(require_same_grid(ct_back.grid, ct, lab_back.grid, lab));
}

// ---- PNG ----------------------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(png_round_trip_and_errors) {
  const int w = 5, h = 3;
  std::vector<uint8_t> rgb(static_cast<size_t>(w * h * 3));
  for (size_t i = 0; i < rgb.size(); ++i) rgb[i] = static_cast<uint8_t>(i * 17);
  const std::string path = scratch("slice.png");
  write_png_rgb(path, w, h, rgb);

  // libpng's simplified reader: no setjmp needed on this side.
  png_image img;
  std::memset(&img, 0, sizeof img);
  img.version = PNG_IMAGE_VERSION;
  BOOST_REQUIRE(png_image_begin_read_from_file(&img, path.c_str()));
  BOOST_TEST(img.width == 5u);
  BOOST_TEST(img.height == 3u);
  img.format = PNG_FORMAT_RGB;
  std::vector<uint8_t> back(PNG_IMAGE_SIZE(img));
  BOOST_REQUIRE(png_image_finish_read(&img, nullptr, back.data(), 0, nullptr));
  BOOST_CHECK(back == rgb);

  check_error([&] { write_png_rgb(scratch("bad.png"), w, h, std::vector<uint8_t>(10)); }, {"bad.png", "10 bytes", "needs 45"});
  check_error([&] { write_png_rgb(scratch("empty.png"), 0, h, {}); }, {"empty.png", "0x3"});
  check_error([&] { write_png_rgb(kScratch + "/missing_dir/x.png", w, h, rgb); }, {"missing_dir/x.png"});
  BOOST_TEST(!fs::exists(scratch("bad.png")));
}
