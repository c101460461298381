#include "mproc/connection.hpp"

#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <system_error>

#include "mproc/serialize/detail/stream_frame.hpp"

namespace mproc::detail {
namespace {

constexpr std::size_t kCap = kDefaultMaxFrameBytes;

// Reads exactly `size` bytes; false on EOF before the first byte; EOFError on EOF after it.
bool read_part(int fd, char* p, std::size_t size) {
  const std::size_t got = read_exact(fd, p, size);
  if (got == size) return true;
  if (got == 0) return false;
  throw EOFError("connection closed in the middle of a message");
}

}  // namespace

void ConnectionCore::check(bool direction, const char* what) const {
  if (!fd_) throw ClosedError("connection is closed");
  if (!direction) throw ClosedError(what);
}

int ConnectionCore::fileno() const {
  if (!fd_) throw ClosedError("connection is closed");
  return fd_.get();
}

void ConnectionCore::close() noexcept {
  fd_.reset();
}

void ConnectionCore::send_bytes(std::span<const char> data) {
  check(writable_, "connection is read-only (the receiving end of a simplex Pipe)");
  const StreamHeader h = make_stream_header(data.size(), kCap, "connection");
  std::lock_guard lock(send_mu_);
  send_head_and_body(fd_.get(), h.bytes(), data, "connection");
}

void ConnectionCore::recv_bytes(Bytes& out, std::size_t maxlength) {
  check(readable_, "connection is write-only (the sending end of a simplex Pipe)");
  std::lock_guard lock(recv_mu_);
  char head[kStreamHeaderSize];
  if (!read_part(fd_.get(), head, sizeof head)) {
    throw EOFError("the far end of the connection is closed and nothing is left to read");
  }
  const std::size_t cap = maxlength == 0 ? kCap : std::min(maxlength, kCap);
  StreamHeader h;
  try {
    h = *parse_stream_header(head, cap);
  } catch (const SerializationError&) {
    fd_.reset();  // the stream can no longer be parsed
    throw;
  }
  // The buffer grows with what actually arrives: a header that promises a large message and a
  // sender that stalls (or lies) cost what was sent, not what was promised.
  constexpr std::size_t kStep = std::size_t{1} << 20;
  out.clear();
  std::size_t got = 0;
  while (got < h.length) {
    const std::size_t want = std::min<std::size_t>(h.length, std::max(2 * got, kStep));
    out.resize(want);
    if (!read_part(fd_.get(), out.data() + got, want - got)) {
      throw EOFError("connection closed in the middle of a message");
    }
    got = want;
  }
}

bool ConnectionCore::poll(long long timeout_ms) {
  check(readable_, "connection is write-only (the sending end of a simplex Pipe)");
  pollfd p{fd_.get(), POLLIN, 0};
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    int wait = -1;
    if (timeout_ms >= 0) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      wait = static_cast<int>(std::max<long long>(0, std::min<long long>(left.count(), 1 << 30)));
    }
    const int n = ::poll(&p, 1, wait);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw std::system_error(errno, std::generic_category(), "poll");
    if (n > 0) return true;
    if (timeout_ms >= 0 && std::chrono::steady_clock::now() >= deadline) return false;
  }
}

std::pair<std::shared_ptr<ConnectionCore>, std::shared_ptr<ConnectionCore>> make_pipe(bool duplex) {
  auto [a, b] = make_socketpair(SOCK_STREAM);
  if (!duplex) {
    ::shutdown(a.get(), SHUT_WR);  // the reading end
    ::shutdown(b.get(), SHUT_RD);  // the writing end
  }
  return {std::make_shared<ConnectionCore>(std::move(a), true, duplex),
          std::make_shared<ConnectionCore>(std::move(b), duplex, true)};
}

long long to_timeout_ms(std::chrono::nanoseconds d) noexcept {
  if (d <= std::chrono::nanoseconds::zero()) return 0;
  return (d.count() + 999'999) / 1'000'000;  // round up: never return before the timeout
}

}  // namespace mproc::detail
