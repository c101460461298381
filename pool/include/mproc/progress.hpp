// mproc/progress.hpp — an opt-in progress bar for long map / imap calls (tqdm over imap, built in).
//
//   auto v = pool.map(work, inputs, 0, mproc::progress("render"));
//   for (auto y : pool.imap(work, inputs, 1, mproc::progress("scan"))) { ... }
//
// Shows items done, percentage, rate and ETA (when the total is known). On a terminal it redraws
// one line in place; otherwise (a log file, CI) it prints a plain line at most once a second and
// a final one. Drawing happens on the caller's thread, never on the pool's I/O thread.
//
// Thread safety: add() may be called from any thread; draw() and finish() from one thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdio>
#include <string>

namespace mproc {

struct Progress {
  std::string label;
  std::FILE* stream = stderr;
};

// Python-ish spelling of the option: mproc::progress("label").
inline Progress progress(std::string label = {}, std::FILE* stream = stderr) {
  return Progress{std::move(label), stream};
}

class ProgressBar {
 public:
  // total 0: unknown (no percentage, no ETA).
  ProgressBar(std::size_t total, Progress options);
  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;

  void add(std::size_t n) noexcept { done_.fetch_add(n, std::memory_order_relaxed); }
  std::size_t done() const noexcept { return done_.load(std::memory_order_relaxed); }
  // Redraws if enough time has passed since the last draw (or always with force).
  void draw(bool force = false) noexcept;
  // Draws the final state and ends the line. Idempotent.
  void finish() noexcept;
  // The text of the bar as it would be drawn now (for tests).
  std::string render() const;

 private:
  using Clock = std::chrono::steady_clock;
  std::size_t total_;
  Progress opts_;
  bool tty_;
  std::atomic<std::size_t> done_{0};
  Clock::time_point start_ = Clock::now();
  Clock::time_point last_draw_{};
  bool finished_ = false;
};

}  // namespace mproc
