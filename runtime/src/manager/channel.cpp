#include "manager/channel.hpp"

#include <sys/socket.h>
#include <sys/uio.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>
#include <system_error>

#include "mproc/errors.hpp"

namespace mproc::detail {
namespace {

constexpr std::uint32_t kMagic = 0x3143504D;  // "MPC1", as Connection's frames
constexpr std::size_t kHeader = 8;
constexpr std::size_t kReadChunk = 64 * 1024;

}  // namespace

void Channel::send(std::span<const char> payload) {
  if (!fd_) throw BrokenPipeError("the manager connection is closed");
  const std::uint32_t h[2] = {kMagic, static_cast<std::uint32_t>(payload.size())};
  iovec iov[2] = {{const_cast<std::uint32_t*>(h), kHeader},
                  {const_cast<char*>(payload.data()), payload.size()}};
  std::size_t left = kHeader + payload.size();
  int first = 0;
  while (left > 0) {
    msghdr mh{};
    mh.msg_iov = iov + first;
    mh.msg_iovlen = static_cast<std::size_t>(2 - first);
    const ssize_t n = ::sendmsg(fd_.get(), &mh, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EPIPE || errno == ECONNRESET) {
        throw BrokenPipeError("the far end of the manager connection is closed");
      }
      throw std::system_error(errno, std::generic_category(), "sendmsg");
    }
    left -= static_cast<std::size_t>(n);
    auto done = static_cast<std::size_t>(n);
    while (first < 2 && done >= iov[first].iov_len) {
      done -= iov[first].iov_len;
      ++first;
    }
    if (first < 2) {
      iov[first].iov_base = static_cast<char*>(iov[first].iov_base) + done;
      iov[first].iov_len -= done;
    }
  }
}

bool Channel::fill(std::size_t n) {
  if (end_ - begin_ >= n) return true;
  if (begin_ > 0) {  // compact: unread bytes to the front
    std::memmove(buf_.data(), buf_.data() + begin_, end_ - begin_);
    end_ -= begin_;
    begin_ = 0;
  }
  if (buf_.size() < std::max(n, kReadChunk)) buf_.resize(std::max(n, kReadChunk));
  const std::size_t start = end_;
  while (end_ < n) {
    const ssize_t got = ::recv(fd_.get(), buf_.data() + end_, buf_.size() - end_, 0);
    if (got < 0) {
      if (errno == EINTR) continue;
      if (errno == ECONNRESET) break;
      throw std::system_error(errno, std::generic_category(), "recv");
    }
    if (got == 0) break;
    end_ += static_cast<std::size_t>(got);
  }
  if (end_ >= n) return true;
  if (end_ == 0 && start == 0) return false;
  throw EOFError("the manager connection closed in the middle of a message");
}

void Channel::recv(Bytes& out, std::size_t cap) {
  if (!fd_) throw EOFError("the manager connection is closed");
  if (!fill(kHeader)) throw EOFError("the far end closed the manager connection");
  std::uint32_t h[2];
  std::memcpy(h, buf_.data() + begin_, kHeader);
  if (h[0] != kMagic || h[1] > cap) {
    close();
    throw SerializationError(h[0] != kMagic
                                 ? std::string("corrupt message header")
                                 : "message of " + std::to_string(h[1]) +
                                       " bytes exceeds the limit of " + std::to_string(cap));
  }
  begin_ += kHeader;
  const std::size_t len = h[1];
  // A large payload is read in steps that double, so the buffer follows what has arrived.
  while (end_ - begin_ < len) {
    const std::size_t step = std::min(len, std::max(kReadChunk, 2 * (end_ - begin_)));
    if (!fill(step)) throw EOFError("the manager connection closed in the middle of a message");
  }
  out.assign(buf_.begin() + static_cast<std::ptrdiff_t>(begin_),
             buf_.begin() + static_cast<std::ptrdiff_t>(begin_ + len));
  begin_ += len;
  if (begin_ == end_) begin_ = end_ = 0;
}

}  // namespace mproc::detail
