// The caller's half of stats(): percentiles and RSS (stats_exchange.hpp).
#include "mproc/pool/detail/stats_exchange.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "mproc/pool/detail/run_time_window.hpp"

namespace mproc::detail {

std::size_t resident_bytes(pid_t pid) noexcept {
  if (pid <= 0) return 0;
  char path[40];
  std::snprintf(path, sizeof path, "/proc/%d/statm", static_cast<int>(pid));
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;  // gone
  char buf[128];
  ssize_t n;
  do {
    n = ::read(fd, buf, sizeof buf - 1);
  } while (n < 0 && errno == EINTR);
  ::close(fd);
  if (n <= 0) return 0;
  buf[n] = 0;
  // "size resident shared text lib data dt", in pages.
  char* end = nullptr;
  std::strtoull(buf, &end, 10);
  const unsigned long long pages = std::strtoull(end, nullptr, 10);
  static const long page = ::sysconf(_SC_PAGESIZE);
  return static_cast<std::size_t>(pages) * static_cast<std::size_t>(page > 0 ? page : 4096);
}

PoolStats finish_snapshot(EngineSnapshot s, bool read_rss) {
  s.stats.run_time = run_time_percentiles(s.run_times);
  if (read_rss) {
    for (auto& w : s.stats.workers) w.rss_bytes = resident_bytes(w.pid);
  }
  return std::move(s.stats);
}

}  // namespace mproc::detail
