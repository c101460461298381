#include "mproc/worker/detail/worker_loop.hpp"

#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <vector>

#include "mproc/logging.hpp"
#include "mproc/process_info.hpp"
#include "mproc/runtime/detail/fd.hpp"
#include "mproc/runtime/detail/futex.hpp"
#include "mproc/runtime/detail/log_channel.hpp"
#include "mproc/serialize/detail/callable.hpp"
#include "mproc/serialize/detail/exception_wire.hpp"
#include "mproc/serialize/detail/frame.hpp"
#include "mproc/serialize/detail/frame_reader.hpp"
#include "mproc/worker/detail/payload_channel.hpp"
#include "mproc/worker/detail/task_stop.hpp"
#include "mproc/worker/detail/throw_capture.hpp"

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
  // What tasks printed is still in stdio's buffers when stdout is a pipe or a file; _exit
  // would drop it (Python's workers flush too). The logger's flush reports log records the
  // parent was too slow to take (log_channel.hpp).
  std::fflush(nullptr);
  get_logger()->flush();
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

}  // namespace

std::uint64_t run_frame(const FrameHeader& h, std::span<const char> payload, Bytes& out,
                        std::size_t max_frame, PayloadChannel* payloads, std::uint64_t started_ns) {
  const std::size_t at = begin_frame(out);
  const std::uint64_t t0 = started_ns != 0 ? started_ns : now_ns();
  std::uint64_t t1 = 0;
  ThrowCapture capture(__builtin_frame_address(0));  // the task's throws record their stacks
  try {
    if (is_shared_frame(h)) {
      if (!payloads) throw SerializationError("corrupt frame: a shared payload without buffers");
      payload = payloads->open(payload, max_frame).payload;
    }
    invoke_payload(payload, out, max_frame);
    t1 = now_ns();
    finish_frame(out, at, FrameKind::kResultOk, h.task_id, t1 - t0, max_frame);
    if (payloads) payloads->share_in_place(out, at);
  } catch (...) {
    if (t1 == 0) t1 = now_ns();
    out.resize(at + kFrameHeaderSize);
    encode_current_exception(out, capture.traceback());
    try {
      finish_frame(out, at, FrameKind::kResultErr, h.task_id, t1 - t0, max_frame);
    } catch (...) {  // the error itself is too large to send (a huge message)
      out.resize(at + kFrameHeaderSize);
      encode_error(out, "SerializationError", "the task's error exceeds max_frame_bytes");
      finish_frame(out, at, FrameKind::kResultErr, h.task_id, t1 - t0);
    }
  }
  return t1;
}

void enter_worker_process(int fd, std::string name, int log_fd, int shared_fd) {
  set_process_name(std::move(name));
  if (log_fd >= 0) {
    forward_logging_to(log_fd);
  } else {
    reset_logging_after_fork();
  }
  // A Ctrl-C reaches the whole process group; the coordinator decides what happens to the
  // pool, workers must not die mid-task on their own.
  ::signal(SIGINT, SIG_IGN);
  ::signal(SIGPIPE, SIG_IGN);
  const std::array<int, 3> keep{fd, log_fd, shared_fd};
  close_fds_except(keep);
}

namespace {

// The worker's inbound byte stream: frames are parsed in place; kCancel frames are looked for
// ahead of the task about to run, so a task cancelled while it waited in the pipe never starts.
class Inbox {
 public:
  using Frame = FrameReader::Frame;

  // The buffer starts at one page and doubles up to kBatchBytes when a read fills it: a fresh
  // worker's first pages each cost a page fault (~15 us on a paravirtualized guest), and a
  // maxtasksperchild=1 worker reads one small frame in its whole life, so a 64 KiB buffer
  // zeroed up front cost it 16 faults; a busy worker still reaches batch-sized reads.
  Inbox(int fd, std::size_t cap, PayloadChannel* payloads)
      : fd_(fd), reader_(cap, kFirstBytes), payloads_(payloads) {}

  // The next complete frame (header validated), or nullopt when more bytes are needed.
  // Exits the process on a corrupt frame.
  std::optional<Frame> peek() { return frame_at(0); }
  // Done with the front frame (run or skipped): a shared payload's buffer goes back to the
  // coordinator.
  void pop(const Frame& f) {
    if (payloads_ && is_shared_frame(f.header)) payloads_->release(f.payload);
    reader_.pop(f);
    scanned_ = scanned_ > f.size() ? scanned_ - f.size() : 0;
  }

  // Reads more bytes (blocking or not); false on EOF or error.
  bool fill(bool block) {
    const std::size_t room = reader_.free_space();
    const ssize_t n = reader_.read_from(fd_, block ? 0 : MSG_DONTWAIT);
    if (n > 0) {
      if (static_cast<std::size_t>(n) >= room && reader_.capacity() < kBatchBytes) {
        try {
          reader_.reserve(2 * reader_.capacity());  // more was probably waiting
        } catch (const std::bad_alloc&) {
          // Reads stay smaller; nothing is lost.
        }
      }
      return true;
    }
    if (n == 0) return false;
    return !block && (errno == EAGAIN || errno == EWOULDBLOCK);
  }

  // Whether task `id` has been cancelled by a frame that is already buffered.
  bool cancelled(std::uint64_t id) {
    while (auto f = frame_at(scanned_)) {
      if (f->header.kind == FrameKind::kCancel) cancelled_.push_back(f->header.task_id);
      scanned_ += f->size();
    }
    for (std::size_t i = 0; i < cancelled_.size(); ++i) {
      if (cancelled_[i] == id) {
        cancelled_.erase(cancelled_.begin() + static_cast<std::ptrdiff_t>(i));
        return true;
      }
    }
    return false;
  }

 private:
  std::optional<Frame> frame_at(std::size_t offset) {
    try {
      return reader_.peek(offset);
    } catch (const std::exception& e) {
      get_logger()->error("refusing corrupt frame from coordinator: {}", e.what());
      leave(2);
    }
  }

  int fd_;
  static constexpr std::size_t kFirstBytes = 4096;
  static constexpr std::size_t kBatchBytes = 1 << 16;
  FrameReader reader_;
  PayloadChannel* payloads_;
  std::size_t scanned_ = 0;  // bytes from the front already looked at for kCancel frames
  std::vector<std::uint64_t> cancelled_;
};

std::size_t peak_rss_bytes() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  return static_cast<std::size_t>(ru.ru_maxrss) * 1024;
}

// The reply to a direct call (the frame at `at` in `out`) goes to its caller's mailbox when it
// fits; a larger one stays in `out` for the socket, where the coordinator passes it on.
void answer_directly(DirectMailbox& box, Bytes& out, std::size_t at) {
  const Delivered d = mail_reply(box, std::span<const char>(out.data() + at, out.size() - at));
  if (!d.fits) return;
  out.resize(at);
  if (d.wake) futex_wake(&box.word, 1, FutexScope::kShared);
}

void append_control(Bytes& out, FrameKind kind, std::uint64_t id) {
  const std::size_t at = begin_frame(out);
  finish_frame(out, at, kind, id, 0);
}

}  // namespace

void run_worker(int fd, const WorkerConfig& config) {
  auto log = get_logger();
  log->debug("worker started");
  if (config.max_address_space != 0) {
    const rlimit lim{config.max_address_space, config.max_address_space};
    ::setrlimit(RLIMIT_AS, &lim);
  }
  // Soft time limits: the coordinator asks a task to stop through this worker's slot
  // (task_stop.hpp). Set before any task runs, dropping what a zygote forked inside another
  // pool's task inherited; a worker without a slot is never asked.
  g_task_stop.running.store(0, std::memory_order_relaxed);
  g_task_stop.posted = config.progress ? &config.progress->stop_task : nullptr;
  if (config.progress) mail_own(config.progress->mailbox, static_cast<std::int32_t>(::getpid()));
  const std::size_t cap = config.max_frame_bytes;
  Inbox inbox(fd, cap, config.payloads);
  Bytes out;
  out.reserve(1 << 16);
  std::size_t tasks_done = 0;
  std::uint64_t last_read = now_ns();
  // Past this much time without reading, look at the socket before starting a task: a cancel
  // for it may be waiting there.
  constexpr std::uint64_t kRecheckNs = 100'000;
  // Replies to a batch of frames leave together, but never wait longer than this for the rest
  // of the batch: a result should not sit behind slower tasks, and if a later task crashes the
  // worker, only results younger than this die with it.
  constexpr std::uint64_t kFlushAfterNs = 20'000;
  std::uint64_t batch_started = 0;
  std::uint64_t spin_ns = 0;  // after a direct call: how long to poll for the next one
  // The clock is read once per task (~40 ns a read here, and there were four): the end of one
  // task is the start of the next, and of the checks between them. 0: read it afresh.
  std::uint64_t now = 0;

  for (;;) {
    // Run every complete frame already buffered before writing: replies to a batch of tasks
    // leave in one write.
    while (auto f = inbox.peek()) {
      const FrameHeader* h = &f->header;
      if (h->kind == FrameKind::kCancel) {
        inbox.pop(*f);
        continue;
      }
      if (h->kind != FrameKind::kTask && h->kind != FrameKind::kInit &&
          h->kind != FrameKind::kTaskDirect) {
        log->error("refusing frame of kind {} from coordinator", static_cast<int>(h->kind));
        flush(fd, out);
        leave(2);
      }
      if (now == 0) now = now_ns();
      if (now - last_read > kRecheckNs) {
        if (!inbox.fill(false)) leave(0);
        last_read = now = now_ns();
        f = inbox.peek();  // the buffer may have moved
        h = &f->header;
      }
      if (h->kind == FrameKind::kTask && inbox.cancelled(h->task_id)) {
        if (config.progress) {
          config.progress->started.fetch_add(1, std::memory_order_release);
          config.progress->finished.fetch_add(1, std::memory_order_release);
        }
        const std::size_t at = begin_frame(out);
        encode_error(out, "CancelledError", "the task was cancelled before it started");
        finish_frame(out, at, FrameKind::kResultErr, h->task_id, 0, cap);
        inbox.pop(*f);
        continue;
      }
      // The batch's clock starts with the work of its first reply, not when that reply is
      // done: a task that ran longer than kFlushAfterNs sends its reply before the next task
      // runs, instead of holding it for as long as the next task takes.
      if (out.empty()) {
        batch_started = now;
      } else if (now - batch_started > kFlushAfterNs) {
        flush(fd, out);  // may wait on a full socket: the clock is read again
        batch_started = now = now_ns();
      }
      const bool counted = h->kind == FrameKind::kTask;
      const bool direct = h->kind == FrameKind::kTaskDirect;
      if (direct) {
        // Its caller waits for exactly this reply: nothing queued may sit behind it.
        if (!out.empty()) {
          flush(fd, out);  // may wait on a full socket: the clock is read again
          now = now_ns();
        }
        batch_started = now;
        spin_ns = h->aux;
        if (config.progress) mail_begin(config.progress->mailbox, h->task_id);
      }
      if (counted && config.progress) {
        config.progress->started.fetch_add(1, std::memory_order_release);
      }
      const std::size_t reply_at = out.size();
      // Which task a stop request must name (0 for the initializer: never asked).
      if (g_task_stop.posted) g_task_stop.running.store(h->task_id, std::memory_order_relaxed);
      // A direct call's reply goes to its caller's mailbox or inline: its caller cannot read the
      // coordinator's shared buffers.
      now = run_frame(*h, f->payload, out, cap, direct ? nullptr : config.payloads, now);
      if (counted && config.progress) {
        config.progress->finished.fetch_add(1, std::memory_order_release);
      }
      if (direct && config.progress) answer_directly(config.progress->mailbox, out, reply_at);
      const bool init = h->kind == FrameKind::kInit;
      inbox.pop(*f);
      if (init) {
        FrameHeader reply;
        std::memcpy(&reply, out.data() + reply_at, kFrameHeaderSize);
        if (reply.kind == FrameKind::kResultErr) {  // a worker without its initializer is useless
          flush(fd, out);
          log->debug("worker exiting: initializer failed");
          leave(1);
        }
        continue;
      }
      ++tasks_done;
      if (config.max_memory != 0 && peak_rss_bytes() > config.max_memory) {
        append_control(out, FrameKind::kRetiring, 0);
        flush(fd, out);
        log->debug("worker retiring: peak RSS {} bytes is over the cap", peak_rss_bytes());
        leave(0);
      }
      if (config.maxtasks != 0 && tasks_done >= config.maxtasks) {
        flush(fd, out);
        log->debug("worker exiting after {} tasks (maxtasksperchild)", tasks_done);
        leave(0);
      }
    }
    flush(fd, out);
    batch_started = 0;
    now = 0;  // what follows may wait
    if (spin_ns != 0) {
      // The caller of a direct call polls for its reply and will likely call again at once:
      // look for that call for a while rather than sleep and be woken on another CPU (tens of
      // µs on a VM). The caller asks for this only while the machine has CPUs to spare.
      const std::uint64_t until = now_ns() + spin_ns;
      spin_ns = 0;
      while (!inbox.peek() && now_ns() < until) {
        if (!inbox.fill(false)) leave(0);
      }
      if (inbox.peek()) continue;
    }
    if (!inbox.fill(true)) {
      log->debug("worker exiting: coordinator closed the connection");
      leave(0);
    }
    last_read = now_ns();
  }
}

}  // namespace mproc::detail
