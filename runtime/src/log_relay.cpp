// The parent's end of the log channel (log_channel.hpp): a thread that hands each record it
// receives to mproc's logger's sinks.
#include <poll.h>
#include <spdlog/details/log_msg.h>
#include <spdlog/sinks/sink.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <string>
#include <system_error>
#include <vector>

#include "logging_internal.hpp"
#include "mproc/logging.hpp"
#include "mproc/runtime/detail/before_fork.hpp"
#include "mproc/runtime/detail/log_channel.hpp"
#include "mproc/runtime/detail/log_record.hpp"

namespace mproc::detail {
namespace {

// Room for bursts: every sender shares the write end's send buffer, which is what bounds the
// records in flight (net.core.wmem_max caps what is granted; the default is ~200 KiB).
constexpr int kSendBuffer = 1 << 20;

void emit(spdlog::logger& logger, std::string_view origin, const LogRecord& r,
          spdlog::level::level_enum level, std::string_view text) {
  if (!logger.should_log(level)) return;
  const spdlog::log_clock::time_point time(
      std::chrono::duration_cast<spdlog::log_clock::duration>(std::chrono::nanoseconds(r.time_ns)));
  const spdlog::source_loc loc(r.file.empty() ? nullptr : r.file.data(), r.line,
                               r.function.empty() ? nullptr : r.function.data());
  spdlog::details::log_msg msg(time, loc, spdlog::string_view_t(origin.data(), origin.size()),
                               level, spdlog::string_view_t(text.data(), text.size()));
  msg.thread_id = static_cast<std::size_t>(r.thread_id);
  const bool flush = level >= logger.flush_level();
  for (const auto& sink : logger.sinks()) {
    if (!sink->should_log(level)) continue;
    try {
      sink->log(msg);
      if (flush) sink->flush();
    } catch (...) {
      // Logging never throws (spdlog's own error handler would swallow it too).
    }
  }
}

void deliver(const LogRecord& r) {
  auto logger = get_logger();
  const std::string origin = std::string(r.name) + " " + std::to_string(r.pid);
  const LogOrigin who{r.name, r.pid};
  const LogOriginScope scope(who);
  if (r.dropped != 0) {
    const std::string text = std::to_string(r.dropped) + " log record" +
                             (r.dropped == 1 ? " was" : "s were") +
                             " dropped: the parent did not read the log channel for " +
                             std::to_string(LogSendPolicy::kWait.count()) + " ms";
    emit(*logger, origin, r, spdlog::level::warn, text);
  }
  if (r.kind == LogRecordKind::kRecord) emit(*logger, origin, r, r.level, r.text);
}

}  // namespace

LogRelay::LogRelay() {
  auto [rx, tx] = make_socketpair(SOCK_DGRAM);
  ::setsockopt(tx.get(), SOL_SOCKET, SO_SNDBUF, &kSendBuffer, sizeof kSendBuffer);  // best effort
  set_nonblocking(rx.get(), true);  // only ours (the write end's flags are shared: untouched)
  UniqueFd wake(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!wake) throw std::system_error(errno, std::generic_category(), "eventfd for the log relay");
  rx_ = std::move(rx);
  tx_ = std::move(tx);
  wake_ = std::move(wake);
  thread_ = std::thread([this] { run(); });
}

void LogRelay::stop() noexcept {
  if (thread_.joinable()) {
    const std::uint64_t one = 1;
    while (::write(wake_.get(), &one, sizeof one) < 0 && errno == EINTR) {
    }
    thread_.join();
  }
  rx_.reset();
  tx_.reset();
  wake_.reset();
}

void LogRelay::run() noexcept {
  block_sigint_in_this_thread();
  std::vector<char> buf;
  try {
    buf.resize(max_log_datagram() + 1);
  } catch (...) {
    return;  // senders then find the channel full and count their records as dropped
  }
  for (;;) {
    pollfd fds[2] = {{rx_.get(), POLLIN, 0}, {wake_.get(), POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    // Woken by stop(): every record sent before it is queued by now; deliver them and end.
    const bool stopping = (fds[1].revents & POLLIN) != 0;
    if (!drain(buf) || stopping) return;
  }
}

bool LogRelay::drain(std::vector<char>& buf) noexcept {
  for (;;) {
    // MSG_TRUNC: the datagram's real length, so one larger than any record is recognised.
    const ssize_t n = ::recv(rx_.get(), buf.data(), buf.size(), MSG_DONTWAIT | MSG_TRUNC);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno == EAGAIN || errno == EWOULDBLOCK;
    }
    const auto size = static_cast<std::size_t>(n);
    const auto record = size <= buf.size() ? decode_log_record({buf.data(), size}) : std::nullopt;
    if (!record) {
      malformed_.fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    try {
      deliver(*record);
    } catch (...) {
      // No memory for this record's text: it is lost, the next may fare better.
    }
  }
}

}  // namespace mproc::detail
