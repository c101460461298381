#include "mproc/serialize/detail/frame_reader.hpp"

#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <new>

namespace mproc::detail {
namespace {
constexpr std::size_t kMinCapacity = 4096;
}  // namespace

std::optional<FrameReader::Frame> FrameReader::peek(std::size_t offset) {
  const std::span<const char> rest = unread().subspan(offset);
  const std::optional<FrameHeader> h = parse_frame_header(rest, max_payload_);
  if (!h) return std::nullopt;
  const std::size_t need = kFrameHeaderSize + h->length;
  if (rest.size() < need) {
    if (offset == 0) reserve(need);
    return std::nullopt;
  }
  return Frame{*h, rest.subspan(kFrameHeaderSize, h->length)};
}

ssize_t FrameReader::read_from(int fd, int flags) noexcept {
  if (end_ == buf_.size()) {
    if (begin_ > 0) {
      compact();
    } else {
      try {
        buf_.resize(std::max(2 * buf_.size(), kMinCapacity));
      } catch (const std::bad_alloc&) {
        errno = ENOMEM;
        return -1;
      }
    }
  }
  for (;;) {
    const ssize_t n = ::recv(fd, buf_.data() + end_, buf_.size() - end_, flags);
    if (n > 0) end_ += static_cast<std::size_t>(n);
    if (n >= 0 || errno != EINTR) return n;
  }
}

void FrameReader::consume(std::size_t n) noexcept {
  begin_ += n;
  if (begin_ == end_) begin_ = end_ = 0;  // the next read starts at the front: no move needed
}

void FrameReader::reserve(std::size_t n) {
  if (buf_.size() - begin_ >= n) return;
  compact();
  if (buf_.size() < n) buf_.resize(n);
}

void FrameReader::shrink_if_empty(std::size_t keep) noexcept {
  if (begin_ == end_ && buf_.size() > keep) Bytes().swap(buf_);
}

void FrameReader::compact() noexcept {
  if (begin_ == 0) return;
  std::memmove(buf_.data(), buf_.data() + begin_, end_ - begin_);
  end_ -= begin_;
  begin_ = 0;
}

}  // namespace mproc::detail
