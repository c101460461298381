#include "mproc/progress.hpp"

#include <unistd.h>

#include <algorithm>
#include <cmath>

namespace mproc {
namespace {

std::string human(double v) {
  char buf[32];
  if (v >= 1e6) {
    std::snprintf(buf, sizeof buf, "%.2fM", v / 1e6);
  } else if (v >= 1e3) {
    std::snprintf(buf, sizeof buf, "%.1fk", v / 1e3);
  } else {
    std::snprintf(buf, sizeof buf, "%.1f", v);
  }
  return buf;
}

std::string clock_text(double seconds) {
  const long s = std::lround(seconds);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", s / 3600, s / 60 % 60, s % 60);
  return buf;
}

}  // namespace

ProgressBar::ProgressBar(std::size_t total, Progress options)
    : total_(total), opts_(std::move(options)), tty_(::isatty(::fileno(opts_.stream)) == 1) {}

std::string ProgressBar::render() const {
  const std::size_t done = this->done();
  const double secs = std::chrono::duration<double>(Clock::now() - start_).count();
  const double rate = secs > 0 ? static_cast<double>(done) / secs : 0;
  std::string line;
  line.reserve(160);
  if (!opts_.label.empty()) line.append(opts_.label).append(" ");
  char buf[128];
  if (total_ > 0) {
    const double frac = std::min(1.0, static_cast<double>(done) / static_cast<double>(total_));
    constexpr std::size_t kWidth = 24;
    const auto filled = static_cast<std::size_t>(frac * kWidth);
    line.append("[").append(filled, '#').append(kWidth - filled, '.').append("] ");
    std::snprintf(buf, sizeof buf, "%zu/%zu %5.1f%% %s it/s", done, total_, frac * 100,
                  human(rate).c_str());
    line.append(buf);
    if (rate > 0 && done < total_) {
      line.append(" ETA ").append(clock_text(static_cast<double>(total_ - done) / rate));
    }
  } else {
    std::snprintf(buf, sizeof buf, "%zu items %s it/s", done, human(rate).c_str());
    line.append(buf);
  }
  line.append(" elapsed ").append(clock_text(secs));
  return line;
}

void ProgressBar::draw(bool force) noexcept {
  if (finished_) return;
  const auto now = Clock::now();
  const auto every = tty_ ? std::chrono::milliseconds(100) : std::chrono::milliseconds(1000);
  if (!force && now - last_draw_ < every) return;
  last_draw_ = now;
  try {
    const std::string line = render();
    if (tty_) {
      std::fprintf(opts_.stream, "\r%s\033[K", line.c_str());
    } else {
      std::fprintf(opts_.stream, "%s\n", line.c_str());
    }
    std::fflush(opts_.stream);
  } catch (...) {
  }
}

void ProgressBar::finish() noexcept {
  if (finished_) return;
  draw(true);
  finished_ = true;
  if (tty_) {
    std::fputc('\n', opts_.stream);
    std::fflush(opts_.stream);
  }
}

}  // namespace mproc
