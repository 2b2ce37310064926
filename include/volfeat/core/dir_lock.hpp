#pragma once
// One run at a time per output directory: DIR/.volfeat.lock. Two runs that share an --out would
// otherwise each see the same rows missing and both append them (issue #18), or interleave the
// files of two extract runs.
//
// Design: a lock, not shared work. A second run waits (--wait-lock SECONDS) or refuses with one line
// naming the holder. Sharing the units of a sweep between runs would also need the null networks'
// rows of every (volume, mode) finished before any scheme unit that places its value among them,
// and extract/report/landmarks write one set of files that cannot be split; a lock gives every
// command the same guarantee with one mechanism. LockFile is the reusable part: a future --shard or
// MPI mode can claim a unit with LockFile(DIR/claims/UNIT.lock) under the same staleness rules.
//
// Why link(2) and not flock(2): flock is not coherent across NFS clients (and on old kernels not on
// NFS at all), and O_EXCL was only atomic from NFSv3 on. The record is written and fsync'ed under a
// unique temporary name, then link()ed to the lock name: link is atomic on local disks and on every
// NFS version, fails with EEXIST when the lock is taken, and the lock appears with its whole record
// (a reader never sees it empty). On NFS a lost reply can turn a successful link into an error, so a
// failed link is checked with stat: a link count of 2 on the temporary means it did succeed (the
// recipe in open(2)).
//
// Stale locks (a run killed with kill -9, a crashed host):
//  * same host (hostname and kernel boot id): stale when the pid is gone, or now belongs to another
//    process (its start time in /proc differs), or the host rebooted since;
//  * other hosts: the holder touches the lock's mtime every heartbeat_seconds; the lock is stale
//    once the heartbeat is older than stale_after_seconds. Ages are measured against the mtime of a
//    file this process just created in DIR, i.e. the file server's clock, not this host's.
// Taking a stale lock over is done under a second, short-lived lock (.volfeat.lock.break) with the
// staleness checked again inside it, so two runs that both found it stale cannot remove each
// other's fresh lock.
//
// Cohorts (--shard i/N, mpirun; experiments/cohort/cohort_dir.hpp) extend this with finer locks of
// the same kind: each unit of work is claimed with LockFile::claim(DIR/cohort/claims/UNIT.lock), so
// shards and ranks share one DIR, and a killed one's claims go stale by the rules above.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>

#include "volfeat/core/error.hpp"

namespace volfeat {

struct LockOptions {
  double wait_seconds = 0;            // 0: refuse at once when the lock is held
  double stale_after_seconds = 300;   // other hosts: heartbeat older than this = stale
  double heartbeat_seconds = 30;      // how often the holder refreshes the lock's mtime
  double poll_seconds = 0.2;          // while waiting
  std::string command;                // recorded for whoever finds the lock taken
  std::function<void(const std::string&)> note;  // one-line messages (waiting, stale take-over)
};

// Who holds a lock, as recorded in its file.
struct LockHolder {
  long pid = 0;
  std::string host, boot_id, pid_start, started, command;
  bool parsed = false;

  std::string describe() const {
    if (!parsed) return "an unreadable lock record";
    return "pid " + std::to_string(pid) + " on " + host + ", started " + started + ", command: " + command;
  }
};

namespace lock_detail {

inline std::string host_name() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0) return "unknown-host";
  return buf;
}

inline std::string read_small_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return {};
  std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return s;
}

inline std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

// Changes with every reboot: pids from before it mean nothing.
inline std::string boot_id() { return trim(read_small_file("/proc/sys/kernel/random/boot_id")); }

// Field 22 of /proc/PID/stat: when the process started, in clock ticks since boot. With the pid it
// names one process, so a recycled pid is not mistaken for the holder. Empty where /proc is absent.
inline std::string process_start(long pid) {
  const std::string stat = read_small_file("/proc/" + std::to_string(pid) + "/stat");
  const size_t paren = stat.rfind(')');
  if (paren == std::string::npos) return {};
  std::istringstream fields(stat.substr(paren + 2));
  std::string f;
  for (int i = 3; i <= 22 && (fields >> f); ++i)
    if (i == 22) return f;
  return {};
}

// Field 3 of /proc/PID/stat: R, S, D, Z (exited, not yet reaped), ...; 0 where /proc is absent.
inline char process_state(long pid) {
  const std::string stat = read_small_file("/proc/" + std::to_string(pid) + "/stat");
  const size_t paren = stat.rfind(')');
  return paren == std::string::npos || paren + 2 >= stat.size() ? 0 : stat[paren + 2];
}

inline std::string utc_text(std::time_t t) {
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buf;
}

inline LockHolder parse_record(const std::string& text) {
  LockHolder h;
  std::map<std::string, std::string> kv;
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    const size_t eq = line.find('=');
    if (eq != std::string::npos) kv[line.substr(0, eq)] = line.substr(eq + 1);
  }
  if (!kv.count("pid") || !kv.count("host")) return h;
  try {
    h.pid = std::stol(kv["pid"]);
  } catch (const std::exception&) {
    return h;
  }
  h.host = kv["host"], h.boot_id = kv["boot_id"], h.pid_start = kv["pid_start"];
  h.started = kv["started"], h.command = kv["command"];
  h.parsed = h.pid > 0;
  return h;
}

inline double mtime_seconds(const struct stat& st) { return double(st.st_mtim.tv_sec) + 1e-9 * double(st.st_mtim.tv_nsec); }

}  // namespace lock_detail

// An exclusive lock held as long as the object lives (movable, not copyable).
class LockFile {
 public:
  LockFile() = default;
  LockFile(const LockFile&) = delete;
  LockFile& operator=(const LockFile&) = delete;
  LockFile(LockFile&& o) noexcept { *this = std::move(o); }
  LockFile& operator=(LockFile&& o) noexcept {
    if (this != &o) {
      release();
      o.stop_heartbeat();  // its thread points at o: restart it here
      path_ = std::move(o.path_), fd_ = o.fd_, dev_ = o.dev_, ino_ = o.ino_, heartbeat_seconds_ = o.heartbeat_seconds_;
      o.fd_ = -1;
      start_heartbeat();
    }
    return *this;
  }
  ~LockFile() { release(); }

  // Takes the lock at `path` (its directory must exist), waiting up to options.wait_seconds.
  // Throws Error with one line naming the path, the holder and what to do when it cannot.
  static LockFile acquire(const std::string& path, const LockOptions& options) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(options.wait_seconds);
    bool told_waiting = false;
    int busy_breaks = 0;
    for (;;) {
      LockFile lock;
      if (lock.try_link(path, options)) return lock;
      const std::string record = lock_detail::read_small_file(path);
      struct stat st {};
      if (record.empty() && ::stat(path.c_str(), &st) != 0) continue;  // released meanwhile: try again
      const LockHolder holder = lock_detail::parse_record(record);
      std::string why;
      if (is_stale(path, holder, options, &why)) {
        if (break_stale(path, options)) {
          if (options.note) options.note(path + ": took over a stale lock (" + why + "; it was held by " + holder.describe() + ")");
          continue;
        }
        // Another run is taking it over right now: its fresh lock decides, not the stale one.
        if (++busy_breaks < 50) {
          std::this_thread::sleep_for(std::chrono::duration<double>(options.poll_seconds));
          continue;
        }
      }
      if (std::chrono::steady_clock::now() >= deadline) {
        if (options.wait_seconds > 0)
          fail(path, ": still locked after waiting ", options.wait_seconds, " s by ", holder.describe(),
               "; wait longer (--wait-lock SECONDS), or use another --out");
        fail(path, ": the output directory is in use by another volfeat run (", holder.describe(),
             "); wait for it (--wait-lock SECONDS), or use another --out; remove the lock file only if that run is gone");
      }
      if (!told_waiting && options.note) {
        std::ostringstream wait;
        wait << options.wait_seconds;  // 0.5 stays 0.5, 300 stays 300
        options.note(path + ": waiting up to " + wait.str() + " s for " + holder.describe());
        told_waiting = true;
      }
      std::this_thread::sleep_for(std::chrono::duration<double>(options.poll_seconds));
    }
  }

  // Tries once; false when another holds the lock (stale or not: no take-over here).
  static bool try_acquire(const std::string& path, const LockOptions& options, LockFile& out) {
    LockFile lock;
    if (!lock.try_link(path, options)) return false;
    out = std::move(lock);
    return true;
  }

  // Takes the lock when it is free or stale (a stale one is taken over as acquire() does, and
  // reported through options.note); false when a live run holds it. Never waits: the claims of
  // cohort units (experiments/cohort/cohort_dir.hpp) skip a held unit and go on to the next.
  static bool claim(const std::string& path, const LockOptions& options, LockFile& out) {
    for (int busy_breaks = 0; busy_breaks < 50; ++busy_breaks) {
      if (try_acquire(path, options, out)) return true;
      const std::string record = lock_detail::read_small_file(path);
      struct stat st {};
      if (record.empty() && ::stat(path.c_str(), &st) != 0) continue;  // released meanwhile
      const LockHolder holder = lock_detail::parse_record(record);
      std::string why;
      if (!is_stale(path, holder, options, &why)) return false;
      if (break_stale(path, options)) {
        if (options.note) options.note(path + ": took over a stale lock (" + why + "; it was held by " + holder.describe() + ")");
        continue;
      }
      std::this_thread::sleep_for(std::chrono::duration<double>(options.poll_seconds));
    }
    return false;
  }

  // Whether the lock's holder is gone (why says how it was judged).
  static bool is_stale(const std::string& path, const LockHolder& h, const LockOptions& options, std::string* why) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return false;  // gone already: the next try_link takes it
    if (h.parsed && h.host == lock_detail::host_name()) {
      const std::string boot = lock_detail::boot_id();
      if (!h.boot_id.empty() && !boot.empty() && h.boot_id != boot) {
        if (why) *why = "this host rebooted since";
        return true;
      }
      if (::kill(pid_t(h.pid), 0) != 0 && errno == ESRCH) {
        if (why) *why = "pid " + std::to_string(h.pid) + " is gone on this host";
        return true;
      }
      if (lock_detail::process_state(h.pid) == 'Z') {  // killed, not yet reaped (an orphan's parent is slow)
        if (why) *why = "pid " + std::to_string(h.pid) + " has exited on this host";
        return true;
      }
      const std::string start = lock_detail::process_start(h.pid);
      if (!h.pid_start.empty() && !start.empty() && start != h.pid_start) {
        if (why) *why = "pid " + std::to_string(h.pid) + " now belongs to another process";
        return true;
      }
      return false;  // alive here: never stale by age (a stopped run still holds its directory)
    }
    // Another host (or an unreadable record): by the age of the heartbeat on the server's clock.
    const double age = server_now(path) - lock_detail::mtime_seconds(st);
    if (age > options.stale_after_seconds) {
      if (why) *why = "no heartbeat for " + std::to_string(long(age)) + " s (limit " + std::to_string(long(options.stale_after_seconds)) + " s)";
      return true;
    }
    return false;
  }

  // Releases early (the destructor does it otherwise). Removes the lock only if it is still ours.
  void release() {
    stop_heartbeat();
    if (fd_ < 0) return;
    struct stat st {};
    if (::stat(path_.c_str(), &st) == 0 && st.st_dev == dev_ && st.st_ino == ino_) ::unlink(path_.c_str());
    ::close(fd_);
    fd_ = -1;
  }

  bool held() const { return fd_ >= 0; }
  const std::string& path() const { return path_; }

 private:
  // The record is complete before the lock name exists: write a unique temporary, link it.
  bool try_link(const std::string& path, const LockOptions& options) {
    static std::atomic<unsigned> counter{0};
    const std::string host = lock_detail::host_name();
    const std::string temp = path + "." + host + "." + std::to_string(::getpid()) + "." + std::to_string(counter++);
    const int fd = ::open(temp.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) fail(path, ": cannot create the lock's temporary file ", temp, " (", std::strerror(errno), ")");
    std::string command = options.command;
    for (char& c : command)
      if (c == '\n' || c == '\r') c = ' ';
    const std::string record = "volfeat output-directory lock\npid=" + std::to_string(::getpid()) + "\nhost=" + host +
                               "\nboot_id=" + lock_detail::boot_id() + "\npid_start=" +
                               lock_detail::process_start(::getpid()) + "\nstarted=" +
                               lock_detail::utc_text(std::time(nullptr)) + "\ncommand=" + command + "\n";
    const bool written = ::write(fd, record.data(), record.size()) == ssize_t(record.size()) && ::fsync(fd) == 0;
    const int saved = errno;
    if (!written) {
      ::close(fd);
      ::unlink(temp.c_str());
      fail(path, ": cannot write the lock's temporary file ", temp, " (", std::strerror(saved), ")");
    }
    bool linked = ::link(temp.c_str(), path.c_str()) == 0;
    struct stat st {};
    if (!linked && errno != EEXIST && ::fstat(fd, &st) == 0 && st.st_nlink == 2) linked = true;  // NFS lost reply
    const int link_errno = errno;
    if (!linked && link_errno != EEXIST) {
      ::close(fd);
      ::unlink(temp.c_str());
      fail(path, ": cannot create the lock (", std::strerror(link_errno), ")");
    }
    ::unlink(temp.c_str());
    if (!linked) {
      ::close(fd);
      return false;
    }
    ::fstat(fd, &st);
    path_ = path, fd_ = fd, dev_ = st.st_dev, ino_ = st.st_ino, heartbeat_seconds_ = options.heartbeat_seconds;
    start_heartbeat();
    return true;
  }

  // "Now" on the clock that stamps the lock's mtime: that of a file just created beside it.
  static double server_now(const std::string& path) {
    const std::string probe = path + ".clock." + lock_detail::host_name() + "." + std::to_string(::getpid());
    const int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    struct stat st {};
    const bool ok = fd >= 0 && ::fstat(fd, &st) == 0;
    if (fd >= 0) ::close(fd);
    ::unlink(probe.c_str());
    if (ok) return lock_detail::mtime_seconds(st);
    const auto now = std::chrono::system_clock::now().time_since_epoch();
    return std::chrono::duration<double>(now).count();
  }

  // Removes a stale lock under a short-lived break lock, checking staleness again inside it.
  static bool break_stale(const std::string& path, const LockOptions& options) {
    const std::string break_path = path + ".break";
    LockOptions bo = options;
    bo.command = "taking over the stale lock " + path;
    bo.heartbeat_seconds = 0;
    // A breaker killed inside its few syscalls leaves the break lock; judge it like any lock.
    bo.stale_after_seconds = std::min(options.stale_after_seconds, 60.0);
    LockFile guard;
    if (!try_acquire(break_path, bo, guard)) {
      const LockHolder bh = lock_detail::parse_record(lock_detail::read_small_file(break_path));
      if (is_stale(break_path, bh, bo, nullptr)) ::unlink(break_path.c_str());
      return false;  // the caller retries
    }
    const LockHolder holder = lock_detail::parse_record(lock_detail::read_small_file(path));
    if (!is_stale(path, holder, options, nullptr)) return false;
    return ::unlink(path.c_str()) == 0 || errno == ENOENT;
  }

  void start_heartbeat() {
    if (heartbeat_seconds_ <= 0 || fd_ < 0) return;
    stop_ = false;
    heartbeat_ = std::thread([this, fd = fd_, period = heartbeat_seconds_] {
      std::unique_lock<std::mutex> lk(mutex_);
      while (!cv_.wait_for(lk, std::chrono::duration<double>(period), [this] { return stop_; })) {
        // UTIME_NOW: on NFS the server stamps its own time, the clock server_now() reads.
        const struct timespec now[2] = {{0, UTIME_NOW}, {0, UTIME_NOW}};
        ::futimens(fd, now);
      }
    });
  }
  void stop_heartbeat() {
    if (!heartbeat_.joinable()) return;
    {
      std::lock_guard<std::mutex> lk(mutex_);
      stop_ = true;
    }
    cv_.notify_all();
    heartbeat_.join();
  }

  std::string path_;
  int fd_ = -1;
  dev_t dev_ = 0;
  ino_t ino_ = 0;
  double heartbeat_seconds_ = 0;
  std::thread heartbeat_;
  std::mutex mutex_;
  std::condition_variable cv_;
  bool stop_ = false;
};

inline constexpr const char* kDirLockName = ".volfeat.lock";

// The lock on an output directory, created (with the directory) for the length of a run. A
// directory this run created and left empty (the run failed before writing) is removed again.
class DirLock {
 public:
  DirLock(const std::string& dir, const LockOptions& options) : dir_(dir) {
    std::error_code ec;
    created_dir_ = !std::filesystem::exists(dir, ec);
    std::filesystem::create_directories(dir, ec);
    if (ec) fail(dir, ": cannot create output directory (", ec.message(), ")");
    try {
      lock_ = LockFile::acquire(dir + "/" + kDirLockName, options);
    } catch (...) {
      remove_dir_if_empty();
      throw;
    }
  }
  DirLock(const DirLock&) = delete;
  DirLock& operator=(const DirLock&) = delete;
  ~DirLock() {
    lock_.release();
    remove_dir_if_empty();
  }

  const std::string& path() const { return lock_.path(); }

 private:
  void remove_dir_if_empty() {
    if (created_dir_) ::rmdir(dir_.c_str());  // fails, harmlessly, unless empty
  }
  std::string dir_;
  bool created_dir_ = false;
  LockFile lock_;
};

}  // namespace volfeat
