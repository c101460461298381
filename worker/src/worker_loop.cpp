#include "mproc/worker/worker_loop.hpp"

#include <signal.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <array>
#include <cerrno>

#include "mproc/logging.hpp"
#include "mproc/process_info.hpp"
#include "mproc/runtime/fd.hpp"
#include "mproc/serialize/callable.hpp"
#include "mproc/serialize/exception_wire.hpp"
#include "mproc/serialize/frame.hpp"

#if defined(__has_include)
#if __has_include(<gcov.h>) && defined(MPROC_COVERAGE)
#include <gcov.h>
#define MPROC_GCOV_DUMP() __gcov_dump()
#endif
#endif
#ifndef MPROC_GCOV_DUMP
#define MPROC_GCOV_DUMP() ((void)0)
#endif

namespace mproc::detail {
namespace {

std::uint64_t now_ns() {
  timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ull +
         static_cast<std::uint64_t>(ts.tv_nsec);
}

[[noreturn]] void leave(int code) {
  MPROC_GCOV_DUMP();
  ::_exit(code);
}

void flush(int fd, Bytes& out) {
  if (out.empty()) return;
  try {
    write_all(fd, out.data(), out.size());
  } catch (...) {
    leave(0);  // the coordinator is gone: nobody to answer
  }
  out.clear();
}

// Runs one frame's payload and appends the reply frame (ok or error) to `out`.
void run_frame(const FrameHeader& h, std::span<const char> payload, Bytes& out,
               std::size_t max_frame) {
  const std::size_t at = begin_frame(out);
  const std::uint64_t t0 = now_ns();
  try {
    invoke_payload(payload, out);
    finish_frame(out, at, FrameKind::kResultOk, h.task_id, now_ns() - t0, max_frame);
  } catch (...) {
    out.resize(at + kFrameHeaderSize);
    encode_current_exception(out);
    finish_frame(out, at, FrameKind::kResultErr, h.task_id, now_ns() - t0, max_frame);
  }
}

}  // namespace

void enter_worker_process(int fd, std::string name) {
  set_process_name(std::move(name));
  // A Ctrl-C reaches the whole process group; the coordinator decides what happens to the
  // pool, workers must not die mid-task on their own.
  ::signal(SIGINT, SIG_IGN);
  ::signal(SIGPIPE, SIG_IGN);
  const std::array<int, 1> keep{fd};
  close_fds_except(keep);
}

void run_worker(int fd, const WorkerConfig& config) {
  auto log = get_logger();
  log->debug("worker started");
  const std::size_t cap = config.max_frame_bytes;
  Bytes in(1 << 16);
  std::size_t begin = 0, end = 0;
  Bytes out;
  out.reserve(1 << 16);
  std::size_t tasks_done = 0;

  for (;;) {
    // Run every complete frame already buffered before writing: replies to a batch of tasks
    // leave in one write.
    for (;;) {
      std::optional<FrameHeader> h;
      try {
        h = parse_frame_header({in.data() + begin, end - begin}, cap);
      } catch (const std::exception& e) {
        log->error("refusing corrupt frame from coordinator: {}", e.what());
        flush(fd, out);
        leave(2);
      }
      if (!h) break;
      if (h->kind != FrameKind::kTask && h->kind != FrameKind::kInit) {
        log->error("refusing frame of kind {} from coordinator", static_cast<int>(h->kind));
        flush(fd, out);
        leave(2);
      }
      const std::size_t need = kFrameHeaderSize + h->length;
      if (end - begin < need) {
        if (in.size() - begin < need) {  // make room for a large frame
          std::memmove(in.data(), in.data() + begin, end - begin);
          end -= begin;
          begin = 0;
          if (in.size() < need) in.resize(need);
        }
        break;
      }
      const std::span<const char> payload(in.data() + begin + kFrameHeaderSize, h->length);
      const std::size_t reply_at = out.size();
      run_frame(*h, payload, out, cap);
      begin += need;
      if (h->kind == FrameKind::kInit) {
        FrameHeader reply;
        std::memcpy(&reply, out.data() + reply_at, kFrameHeaderSize);
        if (reply.kind == FrameKind::kResultErr) {  // a worker without its initializer is useless
          flush(fd, out);
          log->debug("worker exiting: initializer failed");
          leave(1);
        }
      } else if (config.maxtasks != 0 && ++tasks_done >= config.maxtasks) {
        flush(fd, out);
        log->debug("worker exiting after {} tasks (maxtasksperchild)", tasks_done);
        leave(0);
      }
    }
    flush(fd, out);
    if (begin == end) begin = end = 0;
    if (end == in.size()) {
      std::memmove(in.data(), in.data() + begin, end - begin);
      end -= begin;
      begin = 0;
    }
    const ssize_t n = ::recv(fd, in.data() + end, in.size() - end, 0);
    if (n == 0) {
      log->debug("worker exiting: coordinator closed the connection");
      leave(0);
    }
    if (n < 0) {
      if (errno == EINTR) continue;
      leave(0);
    }
    end += static_cast<std::size_t>(n);
  }
}

}  // namespace mproc::detail
