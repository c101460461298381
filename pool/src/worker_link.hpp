// worker_link.hpp — the coordinator's end of one worker's socket: the tasks sent to it (or
// waiting to be), written in order and coalesced into one sendmsg, with control frames (kCancel)
// slipped in between; and its replies, read in batches and cut into frames.
//
// It knows frames and the order of tasks, not what they mean for the pool: the coordinator
// decides what a reply does. Runs per task, so it allocates nothing per frame and its small
// members are inline.
//
// Thread safety: the coordinator's I/O thread only.
#pragma once

#include <asio.hpp>
#include <cstddef>
#include <deque>
#include <memory>
#include <optional>
#include <span>

#include "mproc/errors.hpp"
#include "mproc/pool/detail/engine.hpp"
#include "mproc/serialize/detail/frame.hpp"
#include "mproc/serialize/detail/frame_reader.hpp"

namespace mproc::detail {

class WorkerLink {
 public:
  // Takes `fd` (a connected, non-blocking socket).
  WorkerLink(asio::io_context& io, int fd) : sock_(io, fd) {}

  asio::posix::stream_descriptor& socket() noexcept { return sock_; }
  int fd() noexcept { return sock_.native_handle(); }
  void close() noexcept {
    std::error_code ignored;
    sock_.cancel(ignored);
    sock_.close(ignored);
  }

  // ---- tasks held, oldest first ----

  // Sent or waiting to be sent, in order; the worker answers in this order.
  std::deque<std::unique_ptr<Task>>& held() noexcept { return held_; }
  std::size_t held_count() const noexcept { return held_.size(); }
  void hold(std::unique_ptr<Task> t) { held_.push_back(std::move(t)); }
  // The oldest task was written completely: the worker may be running it.
  bool head_sent() const noexcept { return write_idx_ > 0; }
  // Task `i` has not been written at all (the worker cannot have started it).
  bool unsent(std::size_t i) const noexcept {
    return i > write_idx_ || (i == write_idx_ && write_off_ == 0);
  }
  // The oldest task, answered: out of the queue.
  std::unique_ptr<Task> take_answered() noexcept {
    std::unique_ptr<Task> t = std::move(held_.front());
    held_.pop_front();
    --write_idx_;
    return t;
  }
  // An unsent task (see unsent()), withdrawn.
  std::unique_ptr<Task> withdraw(std::size_t i) {
    std::unique_ptr<Task> t = std::move(held_[i]);
    held_.erase(held_.begin() + static_cast<std::ptrdiff_t>(i));
    return t;
  }
  // Every held task, in order; nothing is written any more.
  void take_all(std::deque<std::unique_ptr<Task>>& out) {
    for (auto& t : held_) out.push_back(std::move(t));
    held_.clear();
    write_idx_ = write_off_ = 0;
  }

  // ---- writing ----

  // The init frame, written before any task; answered with task id 0.
  void set_preamble(Bytes frame) { preamble_ = std::move(frame); }
  // Asks the worker to skip task `id`, waiting in its pipe.
  void queue_cancel(std::uint64_t id) {
    const std::size_t at = begin_frame(ctrl_);
    finish_frame(ctrl_, at, FrameKind::kCancel, id, 0);
  }

  enum class Write {
    kDone,     // everything queued is written
    kBlocked,  // the socket is full: wait until it is writable and write again
    kBroken,   // EPIPE/ECONNRESET: the worker is gone; the reader sees EOF and cleans up
  };
  Write write_some();
  // An async wait for writability is armed (only one at a time).
  bool writing = false;

  // ---- reading ----

  enum class Fill { kData, kWouldBlock, kEnded };
  // Reads what is available (one recv) into the buffer.
  Fill fill();

  using Frame = FrameReader::Frame;  // its payload is valid until the next fill()
  // The next complete frame in the buffer, or nullopt (more bytes needed). Throws
  // SerializationError for a corrupt frame or one a worker never sends.
  std::optional<Frame> next_frame(std::size_t max_frame_bytes) {
    reader_.set_max_payload(max_frame_bytes);
    std::optional<Frame> f = reader_.peek();
    if (!f) return std::nullopt;
    const FrameKind kind = f->header.kind;
    if (kind != FrameKind::kResultOk && kind != FrameKind::kResultErr &&
        kind != FrameKind::kRetiring) {
      throw SerializationError("corrupt frame from worker: unexpected kind");
    }
    reader_.pop(*f);
    return f;
  }
  // An async wait for readability is armed (only one at a time).
  bool reading = false;

 private:
  asio::posix::stream_descriptor sock_;
  std::deque<std::unique_ptr<Task>> held_;
  std::size_t write_idx_ = 0;  // first task in `held_` not completely written
  std::size_t write_off_ = 0;  // bytes of held_[write_idx_] already written
  Bytes preamble_;
  std::size_t preamble_off_ = 0;
  Bytes ctrl_;  // control frames (kCancel), written between task frames
  std::size_t ctrl_off_ = 0;
  FrameReader reader_{kDefaultMaxFrameBytes};
};

}  // namespace mproc::detail
