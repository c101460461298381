// What logging.cpp shares with the log channel's two ends (private to runtime/src).
#pragma once

#include <spdlog/common.h>

#include <string_view>

namespace mproc::detail {

// The process a relayed record came from. While one is in scope on a thread, mproc's pattern
// flags %N and %P print it instead of the current process.
struct LogOrigin {
  std::string_view name;
  int pid = 0;
};

class LogOriginScope {
 public:
  explicit LogOriginScope(const LogOrigin& origin) noexcept;
  ~LogOriginScope();
  LogOriginScope(const LogOriginScope&) = delete;
  LogOriginScope& operator=(const LogOriginScope&) = delete;

 private:
  const LogOrigin* previous_;
};

// In a new child: mproc's logger gets `sink` (with mproc's pattern) as its only sink; the ones
// it had are kept alive, unused (a fork may have left their mutexes locked). Throws
// std::bad_alloc.
void install_child_sink(spdlog::sink_ptr sink);

}  // namespace mproc::detail
