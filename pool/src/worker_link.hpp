// worker_link.hpp — the coordinator's end of one worker's socket: the tasks sent to it (or
// waiting to be), written in order and coalesced into one sendmsg, with control frames (kCancel)
// slipped in between; and its replies, read in batches and cut into frames.
//
// It knows frames and the order of tasks, not what they mean for the pool: the coordinator
// decides what a reply does. Runs per task, so it allocates nothing per frame and its small
// members are inline. With the worker's payload buffers (payload_channel.hpp) a large task is
// copied into one when it is handed to the worker, and only a reference crosses the socket (the
// task keeps its own frame: a retry on another worker sends it again); a large result is read
// in place from the worker's buffer.
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
#include "mproc/worker/detail/payload_channel.hpp"

namespace mproc::detail {

class WorkerLink {
 public:
  // Takes `fd` (a connected, non-blocking socket).
  WorkerLink(asio::io_context& io, int fd) : sock_(io, fd) {}

  // The worker's shared payload buffers (null: every frame goes through the socket). Set before
  // any task is held.
  void set_payloads(PayloadChannel* p) noexcept { payloads_ = p; }

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
  void hold(std::unique_ptr<Task> t) {
    held_.push_back(std::move(t));
    try {
      wire_.emplace_back();
    } catch (...) {
      held_.pop_back();
      throw;
    }
    Wire& w = wire_.back();
    w.shared = payloads_ && payloads_->share(held_.back()->frame, w.ref);
  }
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
    wire_.pop_front();  // the worker released its buffer (if shared) before answering
    --write_idx_;
    return t;
  }
  // An unsent task (see unsent()), withdrawn.
  std::unique_ptr<Task> withdraw(std::size_t i) {
    std::unique_ptr<Task> t = std::move(held_[i]);
    held_.erase(held_.begin() + static_cast<std::ptrdiff_t>(i));
    if (wire_[i].shared)
      payloads_->unshare(std::span<const char>(wire_[i].ref).subspan(kFrameHeaderSize));
    wire_.erase(wire_.begin() + static_cast<std::ptrdiff_t>(i));
    return t;
  }
  // Every held task, in order; nothing is written any more.
  void take_all(std::deque<std::unique_ptr<Task>>& out) {
    for (auto& t : held_) out.push_back(std::move(t));
    held_.clear();
    wire_.clear();  // the worker is gone: its slot's buffers are reset before the slot's reuse
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
  // A shared result comes back as an ordinary frame whose payload lies in the worker's buffer,
  // valid until the next call of next_frame() or fill().
  std::optional<Frame> next_frame(std::size_t max_frame_bytes) {
    release_opened();
    reader_.set_max_payload(max_frame_bytes);
    std::optional<Frame> f = reader_.peek();
    if (!f) return std::nullopt;
    const FrameKind kind = f->header.kind;
    if (kind != FrameKind::kResultOk && kind != FrameKind::kResultErr &&
        kind != FrameKind::kRetiring) {
      throw SerializationError("corrupt frame from worker: unexpected kind");
    }
    reader_.pop(*f);
    if (is_shared_frame(f->header)) open_shared(*f, max_frame_bytes);
    return f;
  }
  // An async wait for readability is armed (only one at a time).
  bool reading = false;

 private:
  // How a held task goes on the wire: its own frame, or a reference to a shared buffer.
  struct Wire {
    bool shared = false;
    char ref[kSharedRefFrameBytes];
  };
  std::span<const char> wire_bytes(std::size_t i) const noexcept {
    if (wire_[i].shared) return wire_[i].ref;
    return held_[i]->frame;
  }
  void open_shared(Frame& f, std::size_t max_frame_bytes);
  void release_opened() noexcept {
    if (opened_ != kNone) payloads_->release(std::exchange(opened_, kNone));
  }
  static constexpr unsigned kNone = ~0u;

  asio::posix::stream_descriptor sock_;
  std::deque<std::unique_ptr<Task>> held_;
  std::deque<Wire> wire_;  // parallel to held_
  PayloadChannel* payloads_ = nullptr;
  unsigned opened_ = kNone;    // the worker's buffer the last frame was read from
  std::size_t write_idx_ = 0;  // first task in `held_` not completely written
  std::size_t write_off_ = 0;  // bytes of held_[write_idx_] already written
  Bytes preamble_;
  std::size_t preamble_off_ = 0;
  Bytes ctrl_;  // control frames (kCancel), written between task frames
  std::size_t ctrl_off_ = 0;
  FrameReader reader_{kDefaultMaxFrameBytes};
};

}  // namespace mproc::detail
