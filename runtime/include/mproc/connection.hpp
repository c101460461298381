// mproc/connection.hpp — mproc::Pipe<T> and Connection<T>, Python's multiprocessing.Pipe().
//
//   auto [reader, writer] = mproc::Pipe<std::string>(false);   // r, w = Pipe(duplex=False)
//   mproc::Process p(producer, writer);                        // the child writes
//   p.start();
//   writer.close();                                            // our copy: EOF can arrive
//   try { for (;;) use(reader.recv()); } catch (const mproc::EOFError&) {}
//
// A Pipe is a connected pair of AF_UNIX stream sockets. Each message is one frame: an 8-byte
// header (magic, payload length) then the payload, written with one sendmsg; the reader checks
// the length against the connection's cap (1 GiB) before it allocates anything. send(x) encodes
// x with mproc's cereal wire archive; send_bytes/recv_bytes move raw bytes.
//
// Duplex (the default): both ends send and receive. Simplex (duplex = false): the first end only
// receives and the second only sends (as Python); the wrong direction is a ClosedError.
//
// EOF: recv() throws EOFError once every copy of the far end (in every process) is closed and
// everything sent was read. A child keeps the copies it inherited or was given: close yours.
//
// Several writers on one end (the seed pattern: two writer processes, one reader) are safe for
// messages the kernel takes in one piece (tens of KiB on a Unix socket); larger messages from
// concurrent writers can interleave, as in Python. Several readers of one end are not safe.
//
// Passing a Connection to another process: as an argument of mproc::Process (inherited under
// fork, kept open across the exec under spawn). Inside a Pool task, a message or a Queue item it
// is a SerializationError.
//
// A Connection is a handle: copies share one descriptor, and close() closes it for all of them
// (in this process). A default-constructed Connection is closed.
//
// Thread safety: send and recv may run concurrently (each is serialised on its own lock, so
// whole messages never interleave between threads); close must not race with other calls.
//
// Throws: EOFError (recv at end of stream), BrokenPipeError (send after the far end closed),
// ClosedError (closed handle or wrong direction), SerializationError (a message larger than the
// cap, or one that does not decode as T), std::system_error (other socket errors).
#pragma once

#include <chrono>
#include <concepts>
#include <cstddef>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include "mproc/errors.hpp"
#include "mproc/runtime/detail/fd.hpp"
#include "mproc/runtime/detail/fd_transfer.hpp"
#include "mproc/serialize/detail/frame.hpp"
#include "mproc/serialize/detail/wire_archive.hpp"

namespace mproc {

namespace detail {

// The byte-level end of a pipe: framing and direction. Not a template.
class ConnectionCore {
 public:
  ConnectionCore(UniqueFd fd, bool readable, bool writable) noexcept
      : fd_(std::move(fd)), readable_(readable), writable_(writable) {}

  void send_bytes(std::span<const char> data);
  // The next message's payload into `out`. maxlength 0: the connection's cap.
  void recv_bytes(Bytes& out, std::size_t maxlength);
  // Whether recv would not block (data or EOF). timeout_ms < 0: wait forever.
  bool poll(long long timeout_ms);
  int fileno() const;
  void close() noexcept;
  bool closed() const noexcept { return !fd_; }
  bool readable() const noexcept { return readable_; }
  bool writable() const noexcept { return writable_; }

 private:
  void check(bool direction, const char* what) const;

  mutable std::mutex send_mu_, recv_mu_;
  UniqueFd fd_;
  bool readable_, writable_;
};

// Two connected ends; simplex: first reads, second writes.
std::pair<std::shared_ptr<ConnectionCore>, std::shared_ptr<ConnectionCore>> make_pipe(bool duplex);

long long to_timeout_ms(std::chrono::nanoseconds d) noexcept;

}  // namespace detail

template <class T>
class Connection {
  static_assert(is_wire_serializable_v<T> && std::is_default_constructible_v<T>,
                "mproc::Connection<T>: T must be default constructible and serializable with "
                "cereal (arithmetic, std::string, std containers, or a serialize() member)");

 public:
  Connection() = default;
  explicit Connection(std::shared_ptr<detail::ConnectionCore> core) : core_(std::move(core)) {}

  void send(const T& x) {
    detail::Bytes buf;
    buf.reserve(256);
    detail::WireOutputArchive ar(buf);
    ar(x);
    core().send_bytes(buf);
  }

  T recv() {
    detail::Bytes buf;
    core().recv_bytes(buf, 0);
    return detail::decode_exactly<T>(buf, "message");
  }

  // Python's poll(): without a timeout it returns at once.
  bool poll() { return core().poll(0); }
  template <class Rep, class Period>
  bool poll(std::chrono::duration<Rep, Period> timeout) {
    return core().poll(
        detail::to_timeout_ms(std::chrono::duration_cast<std::chrono::nanoseconds>(timeout)));
  }

  // Anything that converts to std::string_view (std::string, a literal, const char*): its
  // characters, without a literal's terminating NUL. Preferred over the span overload, which
  // would otherwise make std::string and literals ambiguous.
  template <class S>
  requires std::convertible_to<const S&, std::string_view>
  void send_bytes(const S& data) {
    const std::string_view v(data);
    core().send_bytes({v.data(), v.size()});
  }
  // Raw bytes (a std::vector<char>, an array, a span).
  void send_bytes(std::span<const char> data) { core().send_bytes(data); }
  // maxlength 0: the cap (1 GiB). A longer message is a SerializationError.
  std::string recv_bytes(std::size_t maxlength = 0) {
    detail::Bytes buf;
    core().recv_bytes(buf, maxlength);
    return std::string(buf.begin(), buf.end());
  }

  int fileno() const { return core().fileno(); }
  void close() noexcept {
    if (core_) core_->close();
  }
  bool closed() const noexcept { return !core_ || core_->closed(); }
  bool readable() const noexcept { return core_ && core_->readable(); }
  bool writable() const noexcept { return core_ && core_->writable(); }

  // cereal: only as a Process argument (see the header comment).
  template <class A>
  void save(A& ar) const {
    const int fd = detail::note_fd(closed() ? -1 : core_->fileno(), "Connection");
    ar(fd, core_->readable(), core_->writable());
  }
  template <class A>
  void load(A& ar) {
    int fd = -1;
    bool r = false, w = false;
    ar(fd, r, w);
    core_ = std::make_shared<detail::ConnectionCore>(detail::UniqueFd(detail::take_fd(fd)), r, w);
  }

 private:
  detail::ConnectionCore& core() const {
    if (!core_) throw ClosedError("connection is closed");
    return *core_;
  }

  std::shared_ptr<detail::ConnectionCore> core_;
};

// Python's multiprocessing.Pipe(duplex=True). Throws std::system_error.
template <class T>
std::pair<Connection<T>, Connection<T>> Pipe(bool duplex = true) {
  auto [a, b] = detail::make_pipe(duplex);
  return {Connection<T>(std::move(a)), Connection<T>(std::move(b))};
}

}  // namespace mproc
