// A Manager connection's framing: the Connection wire format (stream_frame.hpp: 8-byte header,
// then the payload), with a read buffer (frame_reader.hpp) so that a small request or reply costs
// one recv, not two (header, then payload). Only for the Manager: a buffered end must never be
// handed to another process, which a Pipe's Connection can be. Internal.
//
// Thread safety: none; each connection is used by one thread at a time.
#pragma once

#include <chrono>
#include <cstddef>
#include <optional>
#include <span>

#include "mproc/runtime/detail/fd.hpp"
#include "mproc/serialize/detail/frame_reader.hpp"
#include "mproc/serialize/detail/wire_archive.hpp"

namespace mproc::detail {

// recv(..., discard_oversized = true) skipped a message longer than its cap: the stream is
// still in step, so the server can answer with an error and keep the connection.
struct OversizedMessage {
  std::size_t length;
};

class Channel {
 public:
  explicit Channel(UniqueFd fd) : fd_(std::move(fd)) {}

  // Bounds every recv until cleared (nullopt): a peer that trickles bytes cannot stretch a
  // deadline, as a per-recv timeout would let it. Past it, recv throws std::system_error
  // (ETIMEDOUT).
  void set_deadline(std::optional<std::chrono::steady_clock::time_point> d) noexcept {
    deadline_ = d;
  }

  // Before sleeping in recv, poll for up to `d` (0: never). See spin_for_data.
  void set_spin(std::chrono::microseconds d) noexcept { spin_ = d; }

  // Sends one message with one sendmsg (more if the kernel takes it in parts). Throws
  // SerializationError above 1 GiB, BrokenPipeError when the peer is gone, std::system_error
  // otherwise.
  void send(std::span<const char> payload);
  // Receives one message into `out`. Throws EOFError at end of stream (or in mid-message);
  // SerializationError for a corrupt header, or a length above `cap` unless discard_oversized
  // (then the message is read and dropped, and OversizedMessage is thrown); std::system_error
  // (ETIMEDOUT past the deadline, ECONNRESET, ...). After a SerializationError the channel is
  // broken (every later recv throws) but its descriptor stays open: the owner closes it.
  void recv(Bytes& out, std::size_t cap, bool discard_oversized = false);

  int fileno() const noexcept { return fd_.get(); }
  void close() noexcept { fd_.reset(); }
  // Gives up the descriptor without closing it (a forked child's copy of a parent's
  // connection, already closed by the atfork handler).
  void abandon() noexcept { fd_.release(); }

 private:
  // Makes at least `n` unread bytes available in in_; false at a clean EOF before any byte.
  bool fill(std::size_t n);
  void wait_readable();
  bool spin_for_data();

  UniqueFd fd_;
  // Its buffer only: a Manager message is not a task frame, and grows with what arrives.
  FrameReader in_{0, 0};
  bool broken_ = false;
  std::optional<std::chrono::steady_clock::time_point> deadline_;
  std::chrono::microseconds spin_{0};
};

}  // namespace mproc::detail
