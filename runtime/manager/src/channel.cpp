#include "channel.hpp"

#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>
#include <system_error>

#include "mproc/errors.hpp"
#include "mproc/serialize/frame.hpp"

namespace mproc::detail {
namespace {

constexpr std::uint32_t kMagic = 0x3143504D;  // "MPC1", as Connection's frames
constexpr std::size_t kHeader = 8;
constexpr std::size_t kReadChunk = 64 * 1024;
constexpr std::size_t kKeepBuffer = std::size_t{1} << 20;

}  // namespace

void Channel::send(std::span<const char> payload) {
  if (!fd_) throw BrokenPipeError("the manager connection is closed");
  if (payload.size() > kDefaultMaxFrameBytes) {
    throw SerializationError("a manager message of " + std::to_string(payload.size()) +
                             " bytes exceeds the 1 GiB limit");
  }
  const std::uint32_t h[2] = {kMagic, static_cast<std::uint32_t>(payload.size())};
  send_head_and_body(fd_.get(), {reinterpret_cast<const char*>(h), kHeader}, payload,
                     "manager connection");
}

void Channel::wait_readable() {
  if (!deadline_) return;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        *deadline_ - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      throw std::system_error(ETIMEDOUT, std::generic_category(), "manager connection deadline");
    }
    pollfd p{fd_.get(), POLLIN, 0};
    const int n = ::poll(&p, 1, static_cast<int>(std::min<long long>(left.count(), 1 << 30)));
    if (n > 0) return;
    if (n < 0 && errno != EINTR) throw std::system_error(errno, std::generic_category(), "poll");
  }
}

// Polls the socket without sleeping for up to spin_: a reply that comes back within it is
// taken without the cost of being woken on another core (tens of µs on a VM). Returns whether
// bytes arrived (appended to buf_) or the peer closed (then the blocking recv reports it).
bool Channel::spin_for_data() {
  const auto until = std::chrono::steady_clock::now() + spin_;
  do {
    const ssize_t got = ::recv(fd_.get(), buf_.data() + end_, buf_.size() - end_, MSG_DONTWAIT);
    if (got > 0) {
      end_ += static_cast<std::size_t>(got);
      return true;
    }
    if (got == 0 || (errno != EAGAIN && errno != EINTR)) return false;
  } while (std::chrono::steady_clock::now() < until);
  return false;
}

bool Channel::fill(std::size_t n) {
  if (end_ - begin_ >= n) return true;
  if (begin_ > 0) {  // compact: unread bytes to the front
    std::memmove(buf_.data(), buf_.data() + begin_, end_ - begin_);
    end_ -= begin_;
    begin_ = 0;
  }
  if (buf_.size() < std::max(n, kReadChunk)) buf_.resize(std::max(n, kReadChunk));
  const bool had_bytes = end_ > 0;
  while (end_ < n) {
    if (spin_.count() > 0 && !deadline_ && spin_for_data()) continue;
    wait_readable();
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
  if (end_ == 0 && !had_bytes) return false;
  throw EOFError("the manager connection closed in the middle of a message");
}

void Channel::recv(Bytes& out, std::size_t cap, bool discard_oversized) {
  if (!fd_ || broken_) throw EOFError("the manager connection is closed");
  if (!fill(kHeader)) throw EOFError("the far end closed the manager connection");
  std::uint32_t h[2];
  std::memcpy(h, buf_.data() + begin_, kHeader);
  if (h[0] != kMagic || (h[1] > cap && !discard_oversized)) {
    broken_ = true;  // the stream can no longer be parsed
    throw SerializationError(h[0] != kMagic
                                 ? std::string("corrupt message header")
                                 : "message of " + std::to_string(h[1]) +
                                       " bytes exceeds the limit of " + std::to_string(cap));
  }
  begin_ += kHeader;
  const std::size_t len = h[1];
  if (len > cap) {  // read and drop it, chunk by chunk, to stay in step with the stream
    std::size_t left = len;
    while (left > 0) {
      if (begin_ == end_ && !fill(std::min(left, kReadChunk))) {
        throw EOFError("the manager connection closed in the middle of a message");
      }
      const std::size_t take = std::min(left, end_ - begin_);
      begin_ += take;
      left -= take;
    }
    throw OversizedMessage{len};
  }
  // A large payload is read in steps that double, so the buffer follows what has arrived.
  while (end_ - begin_ < len) {
    const std::size_t step = std::min(len, std::max(kReadChunk, 2 * (end_ - begin_)));
    if (!fill(step)) throw EOFError("the manager connection closed in the middle of a message");
  }
  out.assign(buf_.begin() + static_cast<std::ptrdiff_t>(begin_),
             buf_.begin() + static_cast<std::ptrdiff_t>(begin_ + len));
  begin_ += len;
  if (begin_ == end_) {
    begin_ = end_ = 0;
    if (buf_.size() > kKeepBuffer) Bytes().swap(buf_);  // one huge message must not pin memory
  }
}

}  // namespace mproc::detail
