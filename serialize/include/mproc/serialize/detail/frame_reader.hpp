// mproc/serialize/detail/frame_reader.hpp — the read side of a framed byte stream: one growable
// buffer that socket reads append to, and complete frames handed out of it in place.
// Internal (namespace detail).
//
//   FrameReader r(max_frame_bytes);
//   while (r.read_from(fd, MSG_DONTWAIT) > 0) {
//     while (auto f = r.peek()) {   // throws SerializationError on a corrupt frame
//       r.pop(*f);                  // f->payload stays valid until the next peek or read
//       handle(f->header, f->payload);
//     }
//   }
//
// A frame is handed out as a span into the buffer: no copy, and no allocation once the buffer
// has grown to the largest frame seen. peek() parses task frames (frame.hpp); a stream of other
// frames (the Manager's, stream_frame.hpp) uses the buffer below it: unread, consume, reserve.
//
// Thread safety: none; one reader per stream, used by one thread at a time.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <optional>
#include <span>

#include "mproc/serialize/detail/frame.hpp"
#include "mproc/serialize/detail/wire_archive.hpp"

namespace mproc::detail {

class FrameReader {
 public:
  struct Frame {
    FrameHeader header;
    std::span<const char> payload;
    std::size_t size() const noexcept { return kFrameHeaderSize + payload.size(); }
  };

  // `max_payload`: the cap a frame's declared length is checked against, from its header
  // alone. `initial_capacity`: the buffer allocated now (0: at the first read).
  explicit FrameReader(std::size_t max_payload, std::size_t initial_capacity = 1 << 16)
      : buf_(initial_capacity), max_payload_(max_payload) {}

  // The complete frame `offset` bytes past the front (0: the front frame; a larger offset, at
  // most buffered(), looks ahead from the end of an earlier frame), not consumed; nullopt when more
  // bytes are needed. An incomplete front frame makes the buffer large enough for all of it, once,
  // when its header arrives. Throws SerializationError for a corrupt header or a length above the
  // cap.
  std::optional<Frame> peek(std::size_t offset = 0);
  // Consumes the front frame, as peek() returned it.
  void pop(const Frame& f) noexcept { consume(f.size()); }

  // One recv from `fd` into the free space (a full buffer is first compacted, or doubled when
  // it holds one incomplete frame). Returns recv's count: > 0, 0 at EOF, or -1 with errno
  // (EAGAIN under MSG_DONTWAIT; EINTR is retried).
  ssize_t read_from(int fd, int flags) noexcept;

  // The bytes read and not consumed.
  std::span<const char> unread() const noexcept { return {buf_.data() + begin_, end_ - begin_}; }
  std::size_t buffered() const noexcept { return end_ - begin_; }
  // The buffer's size, and how much the next read_from() may take without compacting.
  std::size_t capacity() const noexcept { return buf_.size(); }
  std::size_t free_space() const noexcept { return buf_.size() - end_; }
  // Drops `n` unread bytes from the front (n <= buffered()). Moves nothing.
  void consume(std::size_t n) noexcept;
  // Makes room for `n` unread bytes from the front: compacts, then grows the buffer to `n`.
  void reserve(std::size_t n);
  // With nothing unread, frees a buffer larger than `keep` bytes: one huge message must not
  // pin its memory for the life of the stream.
  void shrink_if_empty(std::size_t keep) noexcept;

  std::size_t max_payload() const noexcept { return max_payload_; }
  void set_max_payload(std::size_t cap) noexcept { max_payload_ = cap; }

 private:
  void compact() noexcept;

  Bytes buf_;
  std::size_t begin_ = 0, end_ = 0;  // unread bytes: buf_[begin_, end_)
  std::size_t max_payload_;
};

}  // namespace mproc::detail
