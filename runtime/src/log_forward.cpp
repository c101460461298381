// The child's end of the log channel (log_channel.hpp): a sink that sends each record to the
// parent as one datagram.
#include <poll.h>
#include <spdlog/sinks/base_sink.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <mutex>
#include <string>

#include "logging_internal.hpp"
#include "mproc/logging.hpp"
#include "mproc/process_info.hpp"
#include "mproc/runtime/detail/log_channel.hpp"
#include "mproc/runtime/detail/log_record.hpp"

namespace mproc::detail {
namespace {

std::int64_t ns_since_epoch(spdlog::log_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

// base_sink's mutex orders the records of a process's threads and guards the policy and the
// buffer; the send itself needs no lock (a datagram is whole or not sent).
class ForwardSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  explicit ForwardSink(int fd) : fd_(fd), name_(current_process().name()), pid_(::getpid()) {}

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    LogRecord r;
    r.kind = LogRecordKind::kRecord;
    r.level = msg.level;
    r.pid = pid_;
    r.line = msg.source.line;
    r.thread_id = msg.thread_id;
    r.time_ns = ns_since_epoch(msg.time);
    r.dropped = policy_.dropped();
    r.name = name_;
    if (msg.source.filename != nullptr) r.file = msg.source.filename;
    if (msg.source.funcname != nullptr) r.function = msg.source.funcname;
    r.text = std::string_view(msg.payload.data(), msg.payload.size());
    if (send(r, policy_.wait_for_room())) {
      policy_.sent();
    } else {
      policy_.lost();
    }
  }

  // At a worker's exit (its logger is flushed): a loss no later record reported is reported
  // now, with the full wait even if the channel was congested — it is the last word.
  void flush_() override {
    if (policy_.dropped() == 0) return;
    LogRecord r;
    r.kind = LogRecordKind::kDropped;
    r.level = spdlog::level::warn;
    r.pid = pid_;
    r.time_ns = ns_since_epoch(spdlog::log_clock::now());
    r.dropped = policy_.dropped();
    r.name = name_;
    if (send(r, LogSendPolicy::kWait)) policy_.sent();
  }

 private:
  // Whether the record went within `wait`.
  bool send(const LogRecord& r, std::chrono::milliseconds wait) {
    encode_log_record(r, buf_);
    const auto deadline = std::chrono::steady_clock::now() + wait;
    for (;;) {
      // MSG_DONTWAIT: the descriptor is shared with the parent and every other worker, so its
      // file status flags are not ours to change.
      if (::send(fd_, buf_.data(), buf_.size(), MSG_DONTWAIT | MSG_NOSIGNAL) >= 0) return true;
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) return false;  // the parent is gone
      const auto left =
          std::chrono::ceil<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return false;
      pollfd p{fd_, POLLOUT, 0};
      ::poll(&p, 1, static_cast<int>(left.count()));
    }
  }

  int fd_;
  std::string name_;
  std::int32_t pid_;
  LogSendPolicy policy_;
  spdlog::memory_buf_t buf_;
};

}  // namespace

void forward_logging_to(int fd) noexcept {
  try {
    install_child_sink(std::make_shared<ForwardSink>(fd));
  } catch (...) {
    reset_logging_after_fork();  // no memory: the child logs to its own stderr
  }
}

}  // namespace mproc::detail
