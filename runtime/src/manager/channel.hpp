// A Manager connection's framing: the Connection wire format (8-byte header: magic, length;
// then the payload), with a read buffer so that a small request or reply costs one recv, not
// two (header, then payload). Only for the Manager: a buffered end must never be handed to
// another process, which a Pipe's Connection can be. Internal.
//
// Thread safety: none; each connection is used by one thread at a time.
#pragma once

#include <cstddef>
#include <span>

#include "mproc/runtime/fd.hpp"
#include "mproc/serialize/wire_archive.hpp"

namespace mproc::detail {

class Channel {
 public:
  explicit Channel(UniqueFd fd) : fd_(std::move(fd)) {}

  // Sends one message with one sendmsg (more if the kernel takes it in parts). Throws
  // BrokenPipeError when the peer is gone, std::system_error otherwise.
  void send(std::span<const char> payload);
  // Receives one message into `out`. Throws EOFError at end of stream (or in mid-message),
  // SerializationError for a corrupt header or a length above `cap` (the channel is then
  // closed: the stream cannot be parsed any more), std::system_error (EAGAIN after a receive
  // timeout, ECONNRESET, ...).
  void recv(Bytes& out, std::size_t cap);

  int fileno() const noexcept { return fd_.get(); }
  void close() noexcept { fd_.reset(); }

 private:
  // Makes at least `n` unread bytes available in buf_; false at a clean EOF before any byte.
  bool fill(std::size_t n);

  UniqueFd fd_;
  Bytes buf_;
  std::size_t begin_ = 0, end_ = 0;  // unread bytes: buf_[begin_, end_)
};

}  // namespace mproc::detail
