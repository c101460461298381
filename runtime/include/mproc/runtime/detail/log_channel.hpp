// mproc/runtime/detail/log_channel.hpp — how a pool worker's log records reach the parent's
// sinks (Python's QueueHandler and QueueListener). Internal (namespace detail).
//
// The parent makes a LogRelay: an AF_UNIX SOCK_DGRAM socket pair and a thread. Every worker of
// the pool holds the write end (inherited through the zygote; under spawn it crosses the exec
// with the worker's socket, under forkserver it goes to the fork server with the zygote
// request) and calls forward_logging_to(fd), which gives mproc's logger one sink that sends
// each record, whole, as one datagram (log_record.hpp). The relay's thread reads them and hands
// each to the parent logger's sinks as a spdlog log_msg whose logger name is the worker's name
// and pid ("ForkPoolWorker-2 4711"); mproc's own pattern flags %N and %P print the worker, not
// the parent, while it does.
//
// Why datagrams on one shared socket: a record is never torn or interleaved with another
// worker's, a send is one system call with no framing, and the parent needs one descriptor
// and one thread per pool, whatever the number of workers. Why a thread of its own rather than
// the coordinator's I/O thread: the parent's sinks (a file, a network sink) run there, and a
// slow one must delay other log lines, never a task's result.
//
// Thread safety: a LogRelay belongs to the thread that made it (the pool's owner); its own
// thread is internal. forward_logging_to is for a new child process before it runs anything
// else; the sink it installs may then be used from any thread, like any spdlog sink.
#pragma once

#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

#include "mproc/runtime/detail/fd.hpp"

namespace mproc::detail {

// Parent side: the channel and the thread that drains it into get_logger()'s sinks.
class LogRelay {
 public:
  // Makes the channel and starts the thread. Until a worker logs, the thread waits in poll()
  // and holds no lock, so a zygote may be forked while it exists. Throws std::system_error.
  LogRelay();
  ~LogRelay() { stop(); }
  LogRelay(const LogRelay&) = delete;
  LogRelay& operator=(const LogRelay&) = delete;

  // The write end, for the pool's processes; valid until stop().
  int child_fd() const noexcept { return tx_.get(); }

  // Delivers every record already sent (so call it once the senders have exited), then ends
  // the thread and closes the channel. Records sent later are lost. Idempotent.
  void stop() noexcept;

  // Datagrams that were not a well-formed record (a task that wrote to the descriptor).
  std::uint64_t malformed() const noexcept { return malformed_.load(std::memory_order_relaxed); }

 private:
  void run() noexcept;
  bool drain(std::vector<char>& buf) noexcept;  // delivers what is queued; false if it broke

  UniqueFd rx_, tx_, wake_;
  std::atomic<std::uint64_t> malformed_{0};
  std::thread thread_;
};

// Child side: mproc's logger sends its records to `fd` (a LogRelay's child_fd()) instead of
// writing them; its earlier sinks are retired unused (a fork may have left their mutexes
// locked). Keeps the logger's level. Never throws: without memory the logger keeps stderr.
void forward_logging_to(int fd) noexcept;

}  // namespace mproc::detail
