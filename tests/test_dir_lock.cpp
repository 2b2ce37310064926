// The output-directory lock (include/volfeat/core/dir_lock.hpp): one holder at a time, a refusal
// that names the holder, release, stale locks (dead pid here, recycled pid, old heartbeat from
// another host) taken over while fresh foreign ones are respected, the heartbeat, and mutual
// exclusion between forked processes that race for it. The row log's duplicate removal is here too.
#define BOOST_TEST_MODULE dir_lock
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/test/unit_test.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "support/paths.hpp"
#include "volfeat/core/dir_lock.hpp"
#include "volfeat/core/row_log.hpp"

using namespace volfeat;
namespace fs = std::filesystem;

namespace {

std::string fresh_dir(const std::string& name) {
  const std::string d = volfeat::test::test_data_dir() + "/dir_lock/" + name;
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void plant(const std::string& path, long pid, const std::string& host, const std::string& extra = "") {
  std::ofstream(path) << "volfeat output-directory lock\npid=" << pid << "\nhost=" << host << "\n" << extra
                      << "started=2020-01-01T00:00:00Z\ncommand=volfeat sweep --planted\n";
}

void age(const std::string& path, double seconds) {
  const auto t = fs::last_write_time(path) - std::chrono::duration_cast<fs::file_time_type::duration>(
                                                 std::chrono::duration<double>(seconds));
  fs::last_write_time(path, t);
}

std::string acquire_error(const std::string& path, LockOptions o) {
  try {
    LockFile::acquire(path, o);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

long dead_pid() {
  const pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  ::waitpid(child, nullptr, 0);
  return long(child);
}

}  // namespace

BOOST_AUTO_TEST_CASE(one_holder_a_refusal_naming_it_and_release) {
  const std::string dir = fresh_dir("basic"), path = dir + "/.volfeat.lock";
  LockOptions o;
  o.command = "volfeat sweep --out " + dir;
  {
    LockFile held = LockFile::acquire(path, o);
    BOOST_TEST(held.held());
    const std::string record = slurp(path);
    BOOST_TEST(record.find("pid=" + std::to_string(::getpid()) + "\n") != std::string::npos);
    BOOST_TEST(record.find("command=volfeat sweep --out " + dir) != std::string::npos);
    const std::string err = acquire_error(path, o);
    BOOST_TEST(err.find(path + ": the output directory is in use") == 0, err);
    BOOST_TEST(err.find("pid " + std::to_string(::getpid()) + " on " + lock_detail::host_name()) != std::string::npos, err);
    BOOST_TEST(err.find("--wait-lock") != std::string::npos, err);
    BOOST_TEST(err.find('\n') == std::string::npos);
    o.wait_seconds = 0.3;
    const auto t0 = std::chrono::steady_clock::now();
    const std::string waited = acquire_error(path, o);
    BOOST_TEST(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() >= 0.3);
    BOOST_TEST(waited.find("still locked after waiting 0.3 s") != std::string::npos, waited);
  }
  BOOST_TEST(!fs::exists(path));
  // nothing but the lock was ever created there: no temporaries left behind
  BOOST_TEST(fs::is_empty(dir));
  LockFile again = LockFile::acquire(path, LockOptions{});
  BOOST_TEST(again.held());
}

BOOST_AUTO_TEST_CASE(stale_locks_are_taken_over_and_live_ones_kept) {
  const std::string dir = fresh_dir("stale"), path = dir + "/.volfeat.lock";
  const std::string here = lock_detail::host_name();
  std::vector<std::string> notes;
  LockOptions o;
  o.note = [&](const std::string& n) { notes.push_back(n); };

  plant(path, dead_pid(), here);  // killed run on this host
  { LockFile l = LockFile::acquire(path, o); }
  BOOST_REQUIRE_EQUAL(notes.size(), 1u);
  BOOST_TEST(notes[0].find("took over a stale lock") != std::string::npos, notes[0]);
  BOOST_TEST(notes[0].find("is gone on this host") != std::string::npos, notes[0]);

  plant(path, ::getpid(), here, "pid_start=1\n");  // our pid, but another process's start time
  { LockFile l = LockFile::acquire(path, o); }
  BOOST_TEST(notes.back().find("now belongs to another process") != std::string::npos, notes.back());

  {  // killed but not yet reaped (a zombie): its pid still answers kill(pid, 0), yet it has exited
    const pid_t zombie = ::fork();
    if (zombie == 0) ::_exit(0);
    for (int i = 0; i < 500 && lock_detail::process_state(zombie) != 'Z'; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    BOOST_REQUIRE_EQUAL(lock_detail::process_state(zombie), 'Z');
    plant(path, zombie, here);
    { LockFile l = LockFile::acquire(path, o); }
    ::waitpid(zombie, nullptr, 0);
    BOOST_TEST(notes.back().find("pid " + std::to_string(zombie) + " has exited on this host") != std::string::npos,
               notes.back());
  }

  plant(path, ::getpid(), here, "boot_id=not-this-boot\n");
  { LockFile l = LockFile::acquire(path, o); }
  BOOST_TEST(notes.back().find("rebooted") != std::string::npos, notes.back());

  plant(path, 4242, "another-host.example");  // another host, heartbeat an hour old
  age(path, 3600);
  { LockFile l = LockFile::acquire(path, o); }
  BOOST_TEST(notes.back().find("no heartbeat for") != std::string::npos, notes.back());
  BOOST_TEST(notes.size() == 5u);

  plant(path, 4242, "another-host.example");  // another host, fresh: respected
  BOOST_TEST(acquire_error(path, o).find("pid 4242 on another-host.example") != std::string::npos);
  age(path, 100);  // younger than the limit: still respected
  BOOST_TEST(!acquire_error(path, o).empty());
  plant(path, ::getpid(), here);  // alive on this host: never stale by age
  age(path, 3600);
  BOOST_TEST(acquire_error(path, o).find("in use") != std::string::npos);
  BOOST_TEST(notes.size() == 5u);
  fs::remove(path);
}

BOOST_AUTO_TEST_CASE(the_heartbeat_refreshes_the_lock_while_held) {
  const std::string dir = fresh_dir("heartbeat"), path = dir + "/.volfeat.lock";
  LockOptions o;
  o.heartbeat_seconds = 0.05;
  LockFile held = LockFile::acquire(path, o);
  age(path, 3600);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  const auto age_s = std::chrono::duration<double>(fs::file_time_type::clock::now() - fs::last_write_time(path)).count();
  BOOST_TEST(age_s < 60, "heartbeat did not refresh the mtime: " << age_s << " s old");
  LockFile moved = std::move(held);  // the heartbeat follows the lock
  BOOST_TEST(!held.held());
  age(path, 3600);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  BOOST_TEST(std::chrono::duration<double>(fs::file_time_type::clock::now() - fs::last_write_time(path)).count() < 60);
}

// Forked processes increment a counter file with a read-sleep-write inside the lock: any overlap
// loses increments.
BOOST_AUTO_TEST_CASE(racing_processes_never_overlap) {
  const std::string dir = fresh_dir("race"), path = dir + "/.volfeat.lock", counter = dir + "/counter";
  std::ofstream(counter) << 0;
  constexpr int kProcesses = 4, kRounds = 8;
  std::vector<pid_t> children;
  for (int p = 0; p < kProcesses; ++p) {
    const pid_t c = ::fork();
    if (c == 0) {
      int code = 0;
      try {
        LockOptions o;
        o.wait_seconds = 60;
        o.poll_seconds = 0.005;
        for (int r = 0; r < kRounds; ++r) {
          LockFile l = LockFile::acquire(path, o);
          int n = 0;
          std::ifstream(counter) >> n;
          std::this_thread::sleep_for(std::chrono::milliseconds(5));
          std::ofstream(counter) << n + 1;
        }
      } catch (...) {
        code = 1;
      }
      ::_exit(code);
    }
    children.push_back(c);
  }
  for (pid_t c : children) {
    int status = 0;
    ::waitpid(c, &status, 0);
    BOOST_TEST((WIFEXITED(status) && WEXITSTATUS(status) == 0));
  }
  int n = 0;
  std::ifstream(counter) >> n;
  BOOST_TEST(n == kProcesses * kRounds);
  BOOST_TEST(!fs::exists(path));
}

BOOST_AUTO_TEST_CASE(dir_lock_removes_a_directory_it_created_for_a_failed_run) {
  const std::string parent = fresh_dir("dirlock"), dir = parent + "/out";
  const std::string lock_path = dir + "/" + kDirLockName;
  {
    DirLock lock(dir, LockOptions{});
    BOOST_TEST(fs::exists(lock_path));
  }
  BOOST_TEST(!fs::exists(dir));  // created for the run, left empty: removed
  fs::create_directories(dir);
  { DirLock lock(dir, LockOptions{}); }
  BOOST_TEST(fs::exists(dir));  // was there before: kept
  BOOST_TEST(fs::is_empty(dir));
}

BOOST_AUTO_TEST_CASE(row_log_removes_duplicate_rows_on_reopening) {
  const std::string dir = fresh_dir("row_log"), path = dir + "/log.csv";
  std::ofstream(path) << "k,v\na,1\nb,2\na,3\nc,4\nb,5\n";
  RowLog log(path, {"k", "v"}, 1);
  BOOST_TEST(log.duplicates_removed() == 2u);
  BOOST_TEST(log.first_duplicate() == std::vector<std::string>{"a"});
  BOOST_TEST(slurp(path) == "k,v\na,1\nb,2\nc,4\n");  // the first of each kept, the file rewritten
  BOOST_TEST(log.rows().size() == 3u);
  log.append({"d", "6"});
  log.append({"a", "7"});  // already there: not appended
  BOOST_TEST(slurp(path) == "k,v\na,1\nb,2\nc,4\nd,6\n");
  RowLog reopened(path, {"k", "v"}, 1);
  BOOST_TEST(reopened.duplicates_removed() == 0u);
}
