// Host memory (include/volfeat/core/host_memory.hpp, host_blocks.hpp): arrays under 2 MiB come from
// the heap, 64-byte aligned; from 2 MiB they are blocks of their own, 2 MiB aligned, whole pages,
// with exactly their whole 2 MiB pages advised as huge (the kernel's VmFlags "hg" in
// /proc/self/smaps) and the tail left in small pages; AlignedArray (packed weights, scratch) takes
// the same route; packed-weight stores up to 8 MiB are cut from shared huge-page chunks (PackArena); a
// retained block is handed out again for the same size, and past the peak resized for another size
// with its pages kept; huge_page_vector advises a large std::vector.
#define BOOST_TEST_MODULE host_memory
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <boost/test/unit_test.hpp>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "support/smaps.hpp"
#include "volfeat/backend/cpu/gemm_types.hpp"
#include "volfeat/backend/cpu/packed_store.hpp"
#include "volfeat/core/host_memory.hpp"

using namespace volfeat;

namespace {

constexpr size_t kMiB = size_t(1) << 20;

uintptr_t address(const void* p) { return reinterpret_cast<uintptr_t>(p); }

// The mapping that holds `p` (lo == hi == 0 when /proc/self/smaps has none).
test::Mapping mapping_at(const void* p) {
  for (const test::Mapping& m : test::read_smaps())
    if (address(p) >= m.lo && address(p) < m.hi) return m;
  return {};
}

bool advised_huge(const void* p) { return mapping_at(p).has_flag("hg"); }

// Whether this kernel has transparent huge pages (then MADV_HUGEPAGE is taken, whatever the mode).
bool kernel_has_thp() { return std::ifstream("/sys/kernel/mm/transparent_hugepage/enabled").good(); }

// Writes a pattern over every byte and reads it back: the whole block is ours.
void check_writable(void* p, size_t bytes) {
  auto* b = static_cast<unsigned char*>(p);
  b[bytes - 1] = 0xAB;  // the last byte, then one per 4 KiB page (the first of them may be the last byte)
  for (size_t i = 0; i < bytes; i += 4096) b[i] = static_cast<unsigned char>(i / 4096 * 7 + 1);
  for (size_t i = 0; i < bytes; i += 4096) BOOST_TEST(b[i] == static_cast<unsigned char>(i / 4096 * 7 + 1));
  if ((bytes - 1) % 4096) BOOST_TEST(b[bytes - 1] == 0xAB);
}

}  // namespace

BOOST_AUTO_TEST_CASE(small_arrays_come_from_the_heap_64_byte_aligned) {
  for (size_t bytes : {size_t(1), size_t(4096), size_t(100000), kHugePageThresholdBytes - 1}) {
    const auto [p, block] = allocate_host_bytes(bytes);
    BOOST_TEST(block == 0u);
    BOOST_TEST(address(p) % 64 == 0u);
    check_writable(p, bytes);
    FreeHostBytes{block}(p);
  }
  BOOST_TEST(allocate_host_bytes(0).first == nullptr);
}

BOOST_AUTO_TEST_CASE(large_arrays_are_aligned_blocks_with_only_their_whole_2mib_pages_advised_huge) {
  const size_t page = size_t(::sysconf(_SC_PAGESIZE));
  // exactly one huge page; a Winograd store's 2.4 MB (one huge page and a small-page tail); 5 huge pages
  for (size_t bytes : {2 * kMiB, size_t(144) * 128 * 32 * 4 + 64, 10 * kMiB}) {
    const auto [p, block] = allocate_host_bytes(bytes);
    BOOST_TEST_CONTEXT("bytes " << bytes) {
      BOOST_TEST(block == (bytes + page - 1) / page * page);
      BOOST_TEST(address(p) % kHugePageBytes == 0u);
      check_writable(p, bytes);
      const size_t whole = bytes / kHugePageBytes * kHugePageBytes;
      if (!kernel_has_thp() || mapping_at(p).vm_flags.empty()) {
        BOOST_TEST_MESSAGE("SKIP the huge-page advice checks: this kernel has no transparent huge pages or "
                           "/proc/self/smaps lists no VmFlags");
      } else {
        BOOST_TEST(advised_huge(p) == huge_pages_wanted());
        BOOST_TEST(advised_huge(static_cast<char*>(p) + whole - 1) == huge_pages_wanted());  // the last whole huge page
        if (whole < bytes) BOOST_TEST(!advised_huge(static_cast<char*>(p) + whole));  // the tail
      }
    }
    FreeHostBytes{block}(p);
  }
}

BOOST_AUTO_TEST_CASE(aligned_array_takes_blocks_from_2mib_and_keeps_them_when_moved) {
  cpu::AlignedArray<float> small;
  BOOST_TEST(address(small.reserve(1000)) % 64 == 0u);
  cpu::AlignedArray<float> a;
  float* p = a.reserve(kHugePageThresholdBytes / sizeof(float) + 5);
  BOOST_TEST(address(p) % kHugePageBytes == 0u);
  BOOST_TEST(a.reserve(16) == p);  // it only grows
  check_writable(p, a.size() * sizeof(float));
  cpu::AlignedArray<float> b(std::move(a));
  BOOST_TEST(b.data() == p);
  BOOST_TEST(a.data() == nullptr);
  a = std::move(b);
  BOOST_TEST(a.data() == p);
  cpu::AlignedArray<float> c(a);  // a copy is a copy
  BOOST_TEST(c.data() != p);
  BOOST_TEST(address(c.data()) % kHugePageBytes == 0u);
  BOOST_TEST(std::equal(p, p + a.size(), c.data()));
}

BOOST_AUTO_TEST_CASE(small_packed_stores_share_a_huge_page_chunk_large_ones_have_blocks) {
  using cpu::PackArena;
  using cpu::PackedStore;
  // like DenseNet's depth-factored Winograd U (0.6 MB), a 1x1 panel, a tiny store, F(4x4x4)'s U of a
  // 128 -> 32 conv (3.4 MiB), then one just past PackArena::kMaxStoreBytes
  const size_t counts[] = {36 * 128 * 32, 128 * 128, 100, 216 * 128 * 32, PackArena::kMaxStoreBytes / sizeof(float) + 1};
  constexpr size_t kStores = std::size(counts);
  std::vector<PackedStore<float>> stores(kStores);
  std::vector<float*> at;
  for (size_t k = 0; k < kStores; ++k) {
    float* p = stores[k].reserve(counts[k]);
    BOOST_TEST(address(p) % 64 == 0u);
    for (size_t i = 0; i < counts[k]; ++i) p[i] = float(k * 1000003 + i);  // each store's own values
    at.push_back(p);
  }
  for (size_t k = 0; k < kStores; ++k)
    for (size_t i = 0; i < counts[k]; i += 997) BOOST_TEST(stores[k].data()[i] == float(k * 1000003 + i));
  // the first four one after another in the arena's first chunk (this process packed nothing before)
  for (size_t k = 1; k < 4; ++k) BOOST_TEST(address(at[k]) >= address(at[k - 1]) + counts[k - 1] * sizeof(float));
  BOOST_TEST(address(at[3]) + counts[3] * sizeof(float) - address(at[0]) <= PackArena::kChunkBytes);
  // the last one a block of its own, outside that chunk
  BOOST_TEST(address(at[4]) % kHugePageBytes == 0u);
  BOOST_TEST((address(at[4]) < address(at[0]) || address(at[4]) >= address(at[0]) + PackArena::kChunkBytes));
  if (kernel_has_thp() && !mapping_at(at[0]).vm_flags.empty()) BOOST_TEST(advised_huge(at[0]) == huge_pages_wanted());
  PackedStore<float> copy(stores[0]);  // reads the same chunk
  BOOST_TEST(copy.data() == at[0]);
  PackedStore<float> moved(std::move(stores[1]));
  BOOST_TEST(moved.data() == at[1]);
  stores.clear();  // the chunk lives on in `copy` and `moved`
  BOOST_TEST(copy.data()[5] == 5.f);
  BOOST_TEST(moved.data()[7] == float(1000003 + 7));
}

// Last: retaining is process-wide.
BOOST_AUTO_TEST_CASE(a_retained_block_serves_the_next_request_of_its_size) {
  retain_freed_host_memory();
  const size_t bytes = 3 * kMiB + 12345;
  auto [p, block] = allocate_host_bytes(bytes);
  FreeHostBytes{block}(p);
  auto [q, block2] = allocate_host_bytes(bytes);
  BOOST_TEST(q == p);
  BOOST_TEST(block2 == block);
  FreeHostBytes{block2}(q);
}

// Whether every page of [p, p + bytes) is mapped (mincore fails with ENOMEM on an unmapped one).
bool mapped(const void* p, size_t bytes) {
  const size_t page = size_t(::sysconf(_SC_PAGESIZE));
  std::vector<unsigned char> resident((bytes + page - 1) / page);
  return ::mincore(const_cast<void*>(p), bytes, resident.data()) == 0;
}

BOOST_AUTO_TEST_CASE(past_its_peak_a_retained_block_is_resized_with_its_pages_kept) {
  // A cache of its own (not the process's): its peak is this test's. A forward pass asks for sizes in a
  // cycle whose distinct sizes add up past the most it holds at once; a block kept for one size then
  // serves another instead of being unmapped, and the pages it had keep their contents (a fresh block
  // would read zero).
  detail::HostBlockCache cache;
  cache.retain();
  const size_t big = 8 * kMiB, small = 4 * kMiB;
  char* a = static_cast<char*>(cache.take(big));
  char* b = static_cast<char*>(cache.take(small));
  std::memset(a, 'a', big);
  std::memset(b, 'b', small);
  cache.give(a, big);
  cache.give(b, small);
  BOOST_TEST(cache.peak_bytes() == big + small);
  BOOST_TEST(cache.held_bytes() == big + small);
  // 10 MiB: no block of its size, and no room for a fresh one under the 12 MiB peak. The 8 MiB block
  // (the largest under it) grows into a fresh 2 MiB-aligned mapping; the 4 MiB one is unmapped.
  const size_t grown = 10 * kMiB;
  char* g = static_cast<char*>(cache.take(grown));
  BOOST_TEST(address(g) % kHugePageBytes == 0u);
  BOOST_TEST(size_t(std::count(g, g + big, 'a')) == big);  // the old pages, moved
  BOOST_TEST(size_t(std::count(g + big, g + grown, 0)) == grown - big);  // the new ones, fresh
  BOOST_TEST(cache.held_bytes() == grown);
  BOOST_TEST(cache.held_bytes() <= cache.peak_bytes());
  // 5 MiB with the 10 MiB block kept (10 + 5 > 12): the smallest at least as large gives back its tail.
  cache.give(g, grown);
  const size_t trimmed = 5 * kMiB;
  char* t = static_cast<char*>(cache.take(trimmed));
  BOOST_TEST(address(t) == address(g));
  BOOST_TEST(size_t(std::count(t, t + trimmed, 'a')) == trimmed);
  BOOST_TEST(mapped(t, trimmed));
  BOOST_TEST(!mapped(t + trimmed, grown - trimmed));
  BOOST_TEST(cache.held_bytes() == trimmed);
  // With room under the peak (5 kept + 6 <= 12) a new size gets a fresh block; the kept one stays.
  cache.give(t, trimmed);
  const size_t fresh = 6 * kMiB;
  char* f = static_cast<char*>(cache.take(fresh));
  BOOST_TEST(address(f) != address(t));
  BOOST_TEST(size_t(std::count(f, f + fresh, 0)) == fresh);
  BOOST_TEST(cache.held_bytes() == trimmed + fresh);
  cache.give(f, fresh);
}

BOOST_AUTO_TEST_CASE(a_cycle_a_little_past_its_peak_keeps_every_block) {
  // A pass whose sizes add up to a little more than its peak (DenseNet's transitions: kHostBlockSlackBytes)
  // keeps a block for each size, so the next pass takes the same blocks back and faults nothing in.
  detail::HostBlockCache cache;
  cache.retain();
  const size_t big = 16 * kMiB, mid = 4 * kMiB, small = 2 * kMiB;  // peak 20 MiB, slack 2.5 MiB
  void* first[3] = {};
  for (int pass = 0; pass < 3; ++pass) {
    BOOST_TEST_CONTEXT("pass " << pass) {
      void* a = cache.take(big);
      void* b = cache.take(mid);
      cache.give(b, mid);
      void* c = cache.take(small);  // 16 + 2 in use and 4 kept: 22 MiB, past the peak, inside the slack
      cache.give(c, small);
      cache.give(a, big);
      if (pass == 0) {
        first[0] = a, first[1] = b, first[2] = c;
        BOOST_TEST(c != b);  // a block of its own, not the 4 MiB one resized
      } else {
        BOOST_TEST(a == first[0]);
        BOOST_TEST(b == first[1]);
        BOOST_TEST(c == first[2]);
      }
      BOOST_TEST(cache.peak_bytes() == big + mid);
      BOOST_TEST(cache.held_bytes() == big + mid + small);
      BOOST_TEST(cache.held_bytes() <= cache.peak_bytes() + cache.peak_bytes() / 8);
    }
  }
}

BOOST_AUTO_TEST_CASE(a_huge_page_vector_is_advised_before_its_first_touch) {
  // huge_page_vector (whole volumes in std::vector: read_nifti_float, read_nifti_labels,
  // normalize_volume): zero-filled, and every whole 2 MiB page of a large one's storage advised huge,
  // from the heap as glibc gives it (mmap here; the programs' brk heap under retain_freed_host_memory).
  const size_t n = 24 * kMiB / sizeof(float) + 3;
  const std::vector<float> v = huge_page_vector<float>(n);
  BOOST_TEST(v.size() == n);
  size_t nonzero = 0;
  for (float x : v) nonzero += x != 0.0f;
  BOOST_TEST(nonzero == 0u);
  const std::vector<int32_t> small = huge_page_vector<int32_t>(1000);
  BOOST_TEST(small.size() == 1000u);
  if (!kernel_has_thp() || mapping_at(v.data()).vm_flags.empty()) {
    BOOST_TEST_MESSAGE("SKIP the huge-page advice checks: this kernel has no transparent huge pages or "
                       "/proc/self/smaps lists no VmFlags");
    return;
  }
  const uintptr_t first = (address(v.data()) + kHugePageBytes - 1) / kHugePageBytes * kHugePageBytes;
  const uintptr_t last = (address(v.data() + n) / kHugePageBytes - 1) * kHugePageBytes;
  for (uintptr_t a = first; a <= last; a += kHugePageBytes)
    BOOST_TEST(advised_huge(reinterpret_cast<const void*>(a)) == huge_pages_wanted(),
               "2 MiB page at +" << (a - address(v.data())));
  // the same allocation without the advice is not advised: the check can fail
  std::vector<float> plain(n);
  const uintptr_t plain_first = (address(plain.data()) + kHugePageBytes - 1) / kHugePageBytes * kHugePageBytes;
  BOOST_TEST(!advised_huge(reinterpret_cast<const void*>(plain_first)));
}

BOOST_AUTO_TEST_CASE(volfeat_huge_pages_parses_auto_on_and_off_and_names_a_bad_value) {
  BOOST_TEST((parse_huge_pages(nullptr) == HugePageMode::kAuto));
  BOOST_TEST((parse_huge_pages("") == HugePageMode::kAuto));
  BOOST_TEST((parse_huge_pages("auto") == HugePageMode::kAuto));
  BOOST_TEST((parse_huge_pages("on") == HugePageMode::kOn));
  BOOST_TEST((parse_huge_pages("1") == HugePageMode::kOn));
  BOOST_TEST((parse_huge_pages("off") == HugePageMode::kOff));
  BOOST_TEST((parse_huge_pages("0") == HugePageMode::kOff));
  for (const char* bad : {"yes", "OFF", "2"}) {
    BOOST_TEST_CONTEXT("VOLFEAT_HUGE_PAGES=" << bad) {
      try {
        parse_huge_pages(bad);
        BOOST_ERROR("accepted");
      } catch (const Error& e) {
        BOOST_TEST(std::string(e.what()) == "VOLFEAT_HUGE_PAGES=" + std::string(bad) + ": expected auto (the default), on or off");
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(the_process_follows_volfeat_huge_pages) {
  // ctest runs this binary three times: as it is, with VOLFEAT_HUGE_PAGES=off (test_host_memory_no_huge_pages),
  // where every advice check above expects none, and with on (test_host_memory_huge_pages_on), where they expect it.
  // Unset (auto), the machine decides: off exactly where it reports free pages to a hypervisor and its fresh
  // 4 KiB pages cost under kSlowSmallPageSecondsPerGiB (the probe runs only where it reports them).
  const char* env = std::getenv("VOLFEAT_HUGE_PAGES");
  const std::string value = env ? env : "";
  const HugePageChoice& c = huge_page_choice();
  BOOST_TEST(huge_pages_problem().empty());
  if (value == "off" || value == "0") {
    BOOST_TEST((c.mode == HugePageMode::kOff));
    BOOST_TEST(!huge_pages_wanted());
  } else if (value == "on" || value == "1") {
    BOOST_TEST((c.mode == HugePageMode::kOn));
    BOOST_TEST(huge_pages_wanted());
  } else {
    BOOST_TEST((c.mode == HugePageMode::kAuto));
    const bool reported = !free_page_reporting().empty();
    BOOST_TEST((c.small_page_seconds_per_gib >= 0) == reported);
    BOOST_TEST(huge_pages_wanted() == (!reported || c.small_page_seconds_per_gib >= kSlowSmallPageSecondsPerGiB));
  }
  BOOST_TEST_MESSAGE("VOLFEAT_HUGE_PAGES=" << (env ? env : "(unset)") << ": " << (c.reason.empty() ? "-" : c.reason)
                                           << "; blocks " << (huge_pages_wanted() ? "" : "not ") << "advised as huge pages");
}

BOOST_AUTO_TEST_CASE(auto_huge_pages_follow_free_page_reporting) {
  // A sysfs tree of our own: page_reporting's count, a balloon's feature bits, neither.
  namespace fs = std::filesystem;
  const fs::path root = fs::temp_directory_path() / ("volfeat_sysfs_" + std::to_string(::getpid()));
  auto put = [&](const std::string& rel, const std::string& text) {
    fs::create_directories((root / rel).parent_path());
    std::ofstream(root / rel) << text << "\n";
  };
  BOOST_TEST(free_page_reporting(root.string()).empty());
  put("bus/virtio/drivers/virtio_balloon/virtio3/features", "0110000000000000");  // no bit 5
  BOOST_TEST(free_page_reporting(root.string()).empty());
  put("module/page_reporting/parameters/reported_kib", "0");  // the module, nothing reported
  BOOST_TEST(free_page_reporting(root.string()).empty());
  put("bus/virtio/drivers/virtio_balloon/virtio3/features", "0110010100000000");  // this VM's: bits 1, 2, 5, 7
  BOOST_TEST(free_page_reporting(root.string()) == "virtio balloon virtio3 reports free pages");
  put("module/page_reporting/parameters/reported_kib", "237915396");
  BOOST_TEST(free_page_reporting(root.string()) == "page_reporting has reported 237915396 KiB of free pages");
  fs::remove_all(root);
  // The choice: auto is off with reporting where small pages are cheap (the Zen 4's 0.4 s/GiB), on where they
  // are not (the Zen 5's 2.8) or nothing is reported; on and off are what they say.
  BOOST_TEST(choose_huge_pages(HugePageMode::kAuto, "").on);
  BOOST_TEST(choose_huge_pages(HugePageMode::kAuto, "").reason == "no free page reporting to a hypervisor");
  BOOST_TEST(!choose_huge_pages(HugePageMode::kAuto, "virtio balloon virtio0 reports free pages", 0.4).on);
  BOOST_TEST(choose_huge_pages(HugePageMode::kAuto, "x", 0.4).reason ==
             "x: fresh huge pages fault in on the host, and a fresh 4 KiB page costs 0.40 s/GiB here (huge pages from 1.5)");
  BOOST_TEST(choose_huge_pages(HugePageMode::kAuto, "x", 2.8).on);
  BOOST_TEST(choose_huge_pages(HugePageMode::kAuto, "x", 2.8).reason ==
             "x, but a fresh 4 KiB page costs 2.80 s/GiB here (huge pages from 1.5): huge pages all the same");
  BOOST_TEST(choose_huge_pages(HugePageMode::kAuto, "x", kSlowSmallPageSecondsPerGiB).on);
  BOOST_TEST(choose_huge_pages(HugePageMode::kAuto, "x", 2.8).small_page_seconds_per_gib == 2.8);
  BOOST_TEST(choose_huge_pages(HugePageMode::kAuto, "", 2.8).small_page_seconds_per_gib == -1);
  BOOST_TEST(choose_huge_pages(HugePageMode::kOn, "x").on);
  BOOST_TEST(!choose_huge_pages(HugePageMode::kOff, "").on);
  BOOST_TEST(choose_huge_pages(HugePageMode::kOn, "x").reason.empty());
}

BOOST_AUTO_TEST_CASE(the_small_page_probe_times_real_faults) {
  // A positive, finite figure; its size on this machine is printed for the log.
  const double s = small_page_first_touch_seconds_per_gib();
  BOOST_TEST(s > 0);
  BOOST_TEST(s < 1e4);
  BOOST_TEST_MESSAGE("fresh 4 KiB pages: " << s << " s/GiB here (huge pages under auto from " << kSlowSmallPageSecondsPerGiB
                                           << " where free pages are reported)");
}
