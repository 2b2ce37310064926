#pragma once
// Large host arrays (activations, HostArray, and packed weights, AlignedArray, from 2 MiB): a mapping of
// their own, 2 MiB aligned, its whole 2 MiB pages advised as transparent huge pages (the tail, under
// 2 MiB, stays in 4 KiB pages: a huge page there would hold memory nobody asked for), and, once a
// program asks for it (retain_freed_host_memory in core/host_memory.hpp), kept after they are freed
// for the next block of the same size.
//
// Why not the heap: a forward pass frees and allocates the same activation sizes every time, and
// glibc's heap (told to keep freed memory, M_MMAP_MAX 0) served those 2 MiB-aligned requests by
// memalign, yet it did not reuse them. ResNet-50 at 128^3 (2 threads bound with OMP_PROC_BIND=close,
// Zen 4): the main arena grew by 71 MB a pass with 11 MB in use (malloc_stats), peak RSS 0.18 GB after
// one pass and 0.51 GB after six. The likely cause is small blocks that outlive a pass settling in the
// gaps memalign leaves, so a freed chunk no longer holds the next pass's aligned request. Session 11
// saw the same at 216x512x512 (1,537 MiB after one pass, 1,969 MiB after three). Blocks of their own
// mapping share nothing with small ones, and a cache by exact size serves every pass after the first
// without a fault.
//
// The cache is bounded: freed blocks are kept only while the blocks in use plus those kept stay
// within the most ever in use at once and a small slack (kHostBlockSlackBytes), so the process never
// holds much more than its own peak. A request of a size none is kept for gets a fresh block while
// that fits; past it, a kept block of another size is resized to serve it, its pages kept
// (resize_host_block), and then the blocks kept longest are unmapped. Why: a pass's sizes in a cycle
// can add up to more than its peak, even with the slack (bf16 DenseNet-121 at 108x256x256: 108, 12,
// 12, 26, 13, 3 and 6 MiB over a 239 MiB peak), and unmapping a kept block to map the next size
// afresh zeroed 30 huge pages a pass, forever. Resized: 516 -> 254 page faults a
// pass (13 passes; AMD EPYC Zen 5, 2 threads); the time it saves, a few ms of a 0.4 s pass, is under
// this VM's noise.
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <list>
#include <mutex>
#include <new>
#include <string>
#include <utility>

#include "volfeat/core/error.hpp"

namespace volfeat {

// Buffers from this size up, one huge page or more, get blocks of their own; smaller ones come from the
// heap. Until session 23 the threshold was 4 MiB and blocks whole 2 MiB pages. A Winograd conv's
// transformed weights (DenseNet-121's 128 -> 32: 2.4 MB) then came from the heap in 4 KiB pages: the
// 58 convs' 137 MB first-touched page by page, in an order that visits 144 pages per input channel,
// were 31 % of the CPU samples of a whole 128^3 extract (perf; AMD EPYC Zen 5 VM, where a fault costs
// about 10 us). As blocks: 48 K -> 17 K minor faults, build_network 0.25 -> 0.09-0.17 s, the whole
// extract 0.61-0.69 -> 0.45-0.61 s wall, peak RSS 246 -> 241 MB (6 alternating runs; bench/README.md).
inline constexpr size_t kHugePageThresholdBytes = size_t(2) << 20;

// Kept and live blocks may together pass the peak by an eighth of it, at most this much. Why: with no
// slack, DenseNet-121 at 128^3 (bf16, 143 MB peak) resized or mapped four of its five blocks of 2 to 8
// MiB every pass, past the peak at transition1 (its 32 MiB block 1 and 8 MiB block 2 in use). The 4 MiB
// the transition pools into got a 3 MiB block resized, whose last MiB faulted in: 256 of the pass's
// 260 faults, and the pool took 5-8 ms instead of 1-1.3 (AMD EPYC Zen 5, 2 threads). With the slack:
// no fault a pass, peak RSS 143 -> 148 MB; at 108x256x256 (265 MB peak) 16 MiB still left 261 faults a
// pass, 32 MiB about 7 (peak RSS 293 MB). Alternating forwards, this slack and the vector pool
// (backend/cpu/activated_avg_pool.hpp) against neither: bf16 1.10-1.16x and float32 1.02-1.07x at 128^3,
// 1.03x both at 108x256x256.
inline constexpr size_t kHostBlockSlackBytes = size_t(32) << 20;
inline constexpr size_t kHugePageBytes = size_t(2) << 20;

// The size of a block for `bytes`: whole pages of the system's size.
inline size_t host_block_bytes(size_t bytes) {
  static const size_t page = size_t(::sysconf(_SC_PAGESIZE));
  return (bytes + page - 1) / page * page;
}

// VOLFEAT_HUGE_PAGES, parsed here at the edge: whether large blocks and volumes are advised as huge
// pages. "on" or "1": advised; "off" or "0": left in 4 KiB pages; unset, empty or "auto" (the default):
// advised unless the machine hands its free 2 MiB pages back to a hypervisor (free_page_reporting) and
// its fresh 4 KiB pages are cheap (small_page_first_touch_seconds_per_gib).
// Why: what a huge page costs to fault in is the machine's, and it can be the main cost of a one-pass
// process. On the Zen 3 VM of session 9 a first touch took 0.05 s/GiB in huge pages and 0.33-0.94 in small
// ones. The Zen 4 VMs of sessions 34-35 (family 25 model 17) report free pages to their host (Linux's
// page_reporting, order 9: every free 2 MiB block, which the host then discards), so a fresh huge page
// faults in on the host as well: 1 GiB first touched in 4.6-5.6 s in huge pages against 0.39-0.43 s in
// small ones (0.12 s when the process before had just freed its huge pages), and the whole 216x512x512
// extract took 9.8-10.7 s with the advice against 7.3-7.4 s without (bench/README.md, session 35). A short
// timed probe of huge pages cannot tell: a few MiB come from blocks not yet reported (0.09 s/GiB in 7 of 8
// probes there). A probe of small pages can, and it tells the other half: the Zen 5 VM of session 43
// (family 26 model 2) reports free pages too, but there every fresh 4 KiB page costs about 12 us (2.8-3.9
// s/GiB, in 4 MiB as in 1 GiB) and a cold huge page less (1.8-2.2 s/GiB, 5 s after the last process), so
// the whole 216x512x512 extract took 8.4-11.5 s without the advice and 6.2-7.3 s with it (one process at a
// time, 5 s apart; bench/README.md, session 43). So where pages are reported, auto probes the first touch
// of kSmallPageProbeBytes of small pages (small_page_first_touch_seconds_per_gib) and keeps the advice
// where it costs at least kSlowSmallPageSecondsPerGiB: above the Zen 3's 0.33-0.94 and the Zen 4's
// 0.39-0.43, below the Zen 5's 2.8. A probe that cannot map its memory reads 0: no advice, as before.
enum class HugePageMode { kAuto, kOn, kOff };
inline HugePageMode parse_huge_pages(const char* v) {
  const std::string s = v ? v : "";
  if (s.empty() || s == "auto") return HugePageMode::kAuto;
  if (s == "on" || s == "1") return HugePageMode::kOn;
  if (s == "off" || s == "0") return HugePageMode::kOff;
  fail("VOLFEAT_HUGE_PAGES=", s, ": expected auto (the default), on or off");
}
inline const char* huge_page_mode_name(HugePageMode m) {
  return m == HugePageMode::kOn ? "on" : m == HugePageMode::kOff ? "off" : "auto";
}

// The first line of a small sysfs file, or "" where it cannot be read.
inline std::string sysfs_line(const std::string& path) {
  std::ifstream f(path);
  std::string line;
  std::getline(f, line);
  return line;
}
// Whether this machine reports its free pages to a hypervisor, and what says so ("" where it does not):
// Linux's page_reporting with KiB reported so far (where the kernel exports the count), or a virtio
// balloon bound with feature bit 5, VIRTIO_BALLOON_F_REPORTING. `sys`: the sysfs root (tests pass their own).
inline std::string free_page_reporting(const std::string& sys = "/sys") {
  const std::string kib = sysfs_line(sys + "/module/page_reporting/parameters/reported_kib");
  if (!kib.empty() && kib.find_first_not_of('0') != std::string::npos && kib.find_first_not_of("0123456789") == std::string::npos)
    return "page_reporting has reported " + kib + " KiB of free pages";
  for (int i = 0; i < 64; ++i) {
    const std::string bits = sysfs_line(sys + "/bus/virtio/drivers/virtio_balloon/virtio" + std::to_string(i) + "/features");
    if (bits.size() > 5 && bits[5] == '1') return "virtio balloon virtio" + std::to_string(i) + " reports free pages";
  }
  return "";
}

// Seconds per GiB that the first write to fresh 4 KiB pages costs now: kSmallPageProbeBytes mapped,
// advised not huge, one write per page, unmapped. 4 MiB takes about 1.6 ms at the Zen 4's 0.4 s/GiB and
// 11-15 ms at the Zen 5's 2.8-3.9 s/GiB, which it measured in 4 MiB as in 1 GiB.
inline constexpr size_t kSmallPageProbeBytes = size_t(4) << 20;
inline constexpr double kSlowSmallPageSecondsPerGiB = 1.5;
inline double small_page_first_touch_seconds_per_gib() {
  void* m = ::mmap(nullptr, kSmallPageProbeBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) return 0;
#ifdef MADV_NOHUGEPAGE
  ::madvise(m, kSmallPageProbeBytes, MADV_NOHUGEPAGE);
#endif
  volatile char* p = static_cast<volatile char*>(m);
  const size_t page = size_t(::sysconf(_SC_PAGESIZE));
  const auto t0 = std::chrono::steady_clock::now();
  for (size_t i = 0; i < kSmallPageProbeBytes; i += page) p[i] = 1;
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ::munmap(m, kSmallPageProbeBytes);
  return s * double(size_t(1) << 30) / double(kSmallPageProbeBytes);
}

// The process's choice, made once: VOLFEAT_HUGE_PAGES, and under auto what the machine says.
struct HugePageChoice {
  HugePageMode mode = HugePageMode::kAuto;
  bool on = true;
  std::string reason;                     // auto: why on or off
  double small_page_seconds_per_gib = -1;  // auto where pages are reported: the probe's figure; else -1
};
// reporting: free_page_reporting()'s line; small_page_seconds_per_gib: the probe's figure, read only
// under auto with reporting.
inline HugePageChoice choose_huge_pages(HugePageMode mode, const std::string& reporting,
                                        double small_page_seconds_per_gib = -1) {
  HugePageChoice r;
  r.mode = mode;
  if (mode != HugePageMode::kAuto) {
    r.on = mode == HugePageMode::kOn;
    return r;
  }
  if (reporting.empty()) {
    r.on = true;
    r.reason = "no free page reporting to a hypervisor";
    return r;
  }
  r.small_page_seconds_per_gib = small_page_seconds_per_gib;
  r.on = small_page_seconds_per_gib >= kSlowSmallPageSecondsPerGiB;
  char cost[112];
  std::snprintf(cost, sizeof cost, "a fresh 4 KiB page costs %.2f s/GiB here (huge pages from %.1f)",
                small_page_seconds_per_gib, kSlowSmallPageSecondsPerGiB);
  r.reason = reporting + (r.on ? ", but " + std::string(cost) + ": huge pages all the same"
                               : ": fresh huge pages fault in on the host, and " + std::string(cost));
  return r;
}
inline const HugePageChoice& huge_page_choice() {
  static const HugePageChoice c = [] {
    const HugePageMode mode = parse_huge_pages(std::getenv("VOLFEAT_HUGE_PAGES"));
    if (mode != HugePageMode::kAuto) return choose_huge_pages(mode, "");
    const std::string reporting = free_page_reporting();
    return choose_huge_pages(mode, reporting, reporting.empty() ? -1 : small_page_first_touch_seconds_per_gib());
  }();
  return c;
}
inline bool huge_pages_wanted() { return huge_page_choice().on; }

// For a program's entry: "" when VOLFEAT_HUGE_PAGES is valid, else the one line to print.
inline std::string huge_pages_problem() {
  return error_line_of([] { huge_page_choice(); });
}

// Advises transparent huge pages over the whole 2 MiB pages inside [p, p + bytes), for memory about to
// be touched for the first time; the partial pages at either end keep small pages. Advice only: a range
// already resident keeps its pages, and the kernel ignores it where THP is off. Nothing where the
// process's choice is off (huge_page_choice).
inline void advise_huge_pages(void* p, size_t bytes) {
  if (!huge_pages_wanted()) return;
#ifdef MADV_HUGEPAGE
  const uintptr_t begin = (reinterpret_cast<uintptr_t>(p) + kHugePageBytes - 1) / kHugePageBytes * kHugePageBytes;
  const uintptr_t end = (reinterpret_cast<uintptr_t>(p) + bytes) / kHugePageBytes * kHugePageBytes;
  if (end > begin) ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);
#else
  (void)p, (void)bytes;
#endif
}

// `bytes` (from host_block_bytes) of fresh, 2 MiB-aligned anonymous memory.
inline void* map_host_block(size_t bytes) {
  const size_t span = bytes + kHugePageBytes;  // room to align the start
  void* m = ::mmap(nullptr, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) throw std::bad_alloc();
  char* p = static_cast<char*>(m);
  const uintptr_t at = (reinterpret_cast<uintptr_t>(p) + kHugePageBytes - 1) / kHugePageBytes * kHugePageBytes;
  char* a = reinterpret_cast<char*>(at);
  if (a > p) ::munmap(p, size_t(a - p));
  if (p + span > a + bytes) ::munmap(a + bytes, size_t(p + span - (a + bytes)));
  advise_huge_pages(a, bytes);  // a is 2 MiB aligned: every whole huge page, the tail in small pages
  return a;
}

inline void unmap_host_block(void* p, size_t bytes) { ::munmap(p, bytes); }

// Block p of `from` bytes (from map_host_block) as one of `to` bytes, its resident pages kept: a larger
// one gives its tail back; a smaller one moves into the start of a fresh mapping (mremap moves the page
// tables, whole huge pages included, as both ends are 2 MiB aligned), whose rest faults in on first touch.
inline void* resize_host_block(void* p, size_t from, size_t to) {
  if (to <= from) {
    if (to < from) unmap_host_block(static_cast<char*>(p) + to, from - to);
    return p;
  }
  void* q = map_host_block(to);
  if (::mremap(p, from, from, MREMAP_MAYMOVE | MREMAP_FIXED, q) == MAP_FAILED) {  // q's start replaced
    unmap_host_block(q, to);
    unmap_host_block(p, from);
    throw std::bad_alloc();
  }
  return q;
}

namespace detail {

class HostBlockCache {
 public:
  static HostBlockCache& instance() {
    static HostBlockCache* c = new HostBlockCache;  // never destroyed: blocks may be freed at exit
    return *c;
  }

  void retain() {
    std::lock_guard<std::mutex> lock(mutex_);
    retain_ = true;
  }

  void* take(size_t bytes) {
    Kept adapt{nullptr, 0};
    {
      std::lock_guard<std::mutex> lock(mutex_);
      for (auto it = kept_.begin(); it != kept_.end(); ++it)
        if (it->second == bytes) {
          void* p = it->first;
          kept_.erase(it);
          kept_bytes_ -= bytes;
          note_live(bytes);
          return p;
        }
      // A miss. Under the peak with room to spare: a fresh block, and the kept ones stay for their sizes.
      // Without room, a kept block of another size is resized to serve it (adapt) rather than unmapped:
      // its pages stay, and only what it lacks is faulted in. The smallest at least as large, else the
      // largest: the fewest new pages, the fewest resident ones given back. Then room is made under the
      // peak, oldest first (what the old sizes were for is over).
      if (live_ + kept_bytes_ + bytes > bound() && !kept_.empty()) {
        // whether a block of a bytes serves the request better than one of b
        const auto better = [bytes](size_t a, size_t b) { return b < bytes ? a > b : a >= bytes && a < b; };
        auto best = kept_.begin();
        for (auto it = std::next(best); it != kept_.end(); ++it)
          if (better(it->second, best->second)) best = it;
        adapt = *best;
        kept_bytes_ -= best->second;
        kept_.erase(best);
      }
      while (!kept_.empty() && live_ + kept_bytes_ + bytes > bound()) {
        unmap_host_block(kept_.front().first, kept_.front().second);
        kept_bytes_ -= kept_.front().second;
        kept_.pop_front();
      }
      note_live(bytes);
    }
    try {
      if (!adapt.first) return map_host_block(bytes);
      return resize_host_block(adapt.first, adapt.second, bytes);
    } catch (...) {
      std::lock_guard<std::mutex> lock(mutex_);
      live_ -= bytes;
      throw;
    }
  }

  // What the cache holds, in use and kept, and the most ever in use at once (what it keeps under).
  size_t held_bytes() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return live_ + kept_bytes_;
  }
  size_t peak_bytes() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return peak_;
  }

  void give(void* p, size_t bytes) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      live_ -= bytes;
      if (retain_) {
        kept_.emplace_back(p, bytes);
        kept_bytes_ += bytes;
        return;
      }
    }
    unmap_host_block(p, bytes);
  }

 private:
  // What live and kept blocks may add up to: the peak, and a little slack for a cycle's sizes (below).
  size_t bound() const { return peak_ + std::min(peak_ / 8, kHostBlockSlackBytes); }

  void note_live(size_t bytes) {
    live_ += bytes;
    if (live_ > peak_) peak_ = live_;
  }

  using Kept = std::pair<void*, size_t>;  // a block and its bytes
  mutable std::mutex mutex_;
  bool retain_ = false;
  std::list<Kept> kept_;  // oldest first
  size_t kept_bytes_ = 0, live_ = 0, peak_ = 0;
};

}  // namespace detail

// A large block (bytes from host_block_bytes, by the caller: allocate_host_bytes).
inline void* take_host_block(size_t bytes) { return detail::HostBlockCache::instance().take(bytes); }
inline void give_host_block(void* p, size_t bytes) { detail::HostBlockCache::instance().give(p, bytes); }

}  // namespace volfeat
