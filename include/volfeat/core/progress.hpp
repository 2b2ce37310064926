#pragma once
// Progress of long steps on stderr: a redrawn bar with ETA on a terminal, plain lines otherwise
// (logs and CI), nothing with quiet.
#include <chrono>
#include <cstdio>
#include <functional>
#include <string>
#include <unistd.h>

namespace volfeat {

class Progress {
 public:
  explicit Progress(bool quiet = false, std::FILE* out = stderr)
      : quiet_(quiet), out_(out), tty_(isatty(fileno(out)) != 0) {}

  void begin(const std::string& stage) {
    stage_ = stage;
    start_ = Clock::now();
    last_line_fraction_ = -1;
    if (!quiet_ && !tty_) std::fprintf(out_, "volfeat: %s ...\n", stage_.c_str());
    update(0.0);
  }

  // A process-wide hook called at every begin/update/end, also when quiet. It may throw to abort
  // the run: the Python module checks for Ctrl-C there, between the steps of a forward pass.
  static std::function<void()>& interrupt_check() {
    static std::function<void()> check;
    return check;
  }

  // fraction in [0, 1]
  void update(double fraction, const std::string& detail = {}) {
    if (interrupt_check()) interrupt_check()();
    if (quiet_) return;
    const double elapsed = seconds();
    const double eta = fraction > 0.01 ? elapsed / fraction * (1 - fraction) : -1;
    if (tty_) {
      const int width = 30, filled = int(fraction * width + 0.5);
      std::string bar(size_t(filled), '#');
      bar.resize(size_t(width), '.');
      std::fprintf(out_, "\r\033[K%s [%s] %3.0f%% %5.1fs", stage_.c_str(), bar.c_str(), fraction * 100, elapsed);
      if (eta >= 0) std::fprintf(out_, " ETA %5.1fs", eta);
      if (!detail.empty()) std::fprintf(out_, "  %s", detail.c_str());
      std::fflush(out_);
    } else if (fraction > 0 && fraction - last_line_fraction_ >= 0.25 && fraction < 1) {
      last_line_fraction_ = fraction;
      // No ETA until 1 % is done: one extrapolated from less is noise (and was once printed as -1.0 s).
      std::fprintf(out_, "volfeat: %s %3.0f%% after %.1fs", stage_.c_str(), fraction * 100, elapsed);
      if (eta >= 0) std::fprintf(out_, ", ETA %.1fs", eta);
      std::fprintf(out_, "%s%s\n", detail.empty() ? "" : " ", detail.c_str());
    }
  }

  // Returns the stage's wall time in seconds.
  double end() {
    if (interrupt_check()) interrupt_check()();
    const double t = seconds();
    if (!quiet_) {
      if (tty_) std::fprintf(out_, "\r\033[K");
      std::fprintf(out_, "volfeat: %s done in %.2fs\n", stage_.c_str(), t);
    }
    return t;
  }

  void note(const std::string& line) const {
    if (!quiet_) std::fprintf(out_, "volfeat: %s\n", line.c_str());
  }
  // The same, shown with quiet too: the run does something else than was asked (--precision bf16 on a
  // CPU without it runs float32).
  void warn(const std::string& line) const { std::fprintf(out_, "volfeat: %s\n", line.c_str()); }
  double seconds() const { return std::chrono::duration<double>(Clock::now() - start_).count(); }

 using Clock = std::chrono::steady_clock;
  static double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

 private:
  bool quiet_;
  std::FILE* out_;
  bool tty_;
  std::string stage_;
  Clock::time_point start_ = Clock::now();
  double last_line_fraction_ = -1;
};

}  // namespace volfeat
