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
#include "mproc/serialize/detail/frame.hpp"
#include "mproc/serialize/detail/stream_frame.hpp"

namespace mproc::detail {
namespace {

constexpr std::size_t kReadChunk = 64 * 1024;
constexpr std::size_t kKeepBuffer = std::size_t{1} << 20;

}  // namespace

void Channel::send(std::span<const char> payload) {
  if (!fd_) throw BrokenPipeError("the manager connection is closed");
  const StreamHeader h = make_stream_header(payload.size(), kDefaultMaxFrameBytes, "manager");
  send_head_and_body(fd_.get(), h.bytes(), payload, "manager connection");
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
// bytes arrived (appended to in_) or the peer closed (then the blocking recv reports it).
bool Channel::spin_for_data() {
  const auto until = std::chrono::steady_clock::now() + spin_;
  do {
    const ssize_t got = in_.read_from(fd_.get(), MSG_DONTWAIT);
    if (got > 0) return true;
    if (got == 0 || errno != EAGAIN) return false;
  } while (std::chrono::steady_clock::now() < until);
  return false;
}

bool Channel::fill(std::size_t n) {
  if (in_.buffered() >= n) return true;
  in_.reserve(std::max(n, kReadChunk));
  const bool had_bytes = in_.buffered() > 0;
  while (in_.buffered() < n) {
    if (spin_.count() > 0 && !deadline_ && spin_for_data()) continue;
    wait_readable();
    const ssize_t got = in_.read_from(fd_.get(), 0);
    if (got < 0) {
      if (errno == ECONNRESET) break;
      throw std::system_error(errno, std::generic_category(), "recv");
    }
    if (got == 0) break;
  }
  if (in_.buffered() >= n) return true;
  if (in_.buffered() == 0 && !had_bytes) return false;
  throw EOFError("the manager connection closed in the middle of a message");
}

void Channel::recv(Bytes& out, std::size_t cap, bool discard_oversized) {
  if (!fd_ || broken_) throw EOFError("the manager connection is closed");
  if (!fill(kStreamHeaderSize)) throw EOFError("the far end closed the manager connection");
  std::optional<StreamHeader> h;
  try {
    h = parse_stream_header(in_.unread(), discard_oversized ? SIZE_MAX : cap);
  } catch (const SerializationError&) {
    broken_ = true;  // the stream can no longer be parsed
    throw;
  }
  in_.consume(kStreamHeaderSize);
  const std::size_t len = h->length;
  if (len > cap) {  // read and drop it, chunk by chunk, to stay in step with the stream
    std::size_t left = len;
    while (left > 0) {
      if (in_.buffered() == 0 && !fill(std::min(left, kReadChunk))) {
        throw EOFError("the manager connection closed in the middle of a message");
      }
      const std::size_t take = std::min(left, in_.buffered());
      in_.consume(take);
      left -= take;
    }
    throw OversizedMessage{len};
  }
  // A large payload is read in steps that double, so the buffer follows what has arrived.
  while (in_.buffered() < len) {
    const std::size_t step = std::min(len, std::max(kReadChunk, 2 * in_.buffered()));
    if (!fill(step)) throw EOFError("the manager connection closed in the middle of a message");
  }
  const std::span<const char> body = in_.unread().first(len);
  out.assign(body.begin(), body.end());
  in_.consume(len);
  in_.shrink_if_empty(kKeepBuffer);  // one huge message must not pin memory
}

}  // namespace mproc::detail
