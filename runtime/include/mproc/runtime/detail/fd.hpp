// mproc/runtime/detail/fd.hpp — descriptor plumbing shared by the coordinator, zygote and workers.
// Internal (namespace detail); not part of the public API.
//
// Thread safety: UniqueFd is a value type (distinct objects independent). The free functions
// are thread-safe; they retry on EINTR.
#pragma once

#include <signal.h>
#include <sys/types.h>

#include <cstddef>
#include <span>
#include <utility>
#include <vector>

namespace mproc::detail {

class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) noexcept : fd_(fd) {}
  UniqueFd(UniqueFd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept {
    if (this != &o) reset(std::exchange(o.fd_, -1));
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { reset(); }

  int get() const noexcept { return fd_; }
  explicit operator bool() const noexcept { return fd_ >= 0; }
  int release() noexcept { return std::exchange(fd_, -1); }
  void reset(int fd = -1) noexcept;

 private:
  int fd_ = -1;
};

// A socketpair with SOCK_CLOEXEC on both ends (Asio's connect_pair does not set it, and a
// descriptor leaked into a sibling worker would keep EOF from ever arriving).
std::pair<UniqueFd, UniqueFd> make_socketpair(int type);

void set_nonblocking(int fd, bool on);

// Sets or clears FD_CLOEXEC: what crosses an exec is chosen descriptor by descriptor, in the
// child just before it. No allocation (safe between fork and exec).
void set_cloexec(int fd, bool on) noexcept;

// Reads until `size` bytes arrived or the stream ended (EOF, or ECONNRESET: a peer that is gone
// ended it too), retrying EINTR. Returns the count read: less than `size` only at the end.
// Works on sockets and pipes. Throws std::system_error for another error.
std::size_t read_exact(int fd, void* data, std::size_t size);

// Writes everything or throws std::system_error (EPIPE included; SIGPIPE is never raised).
void write_all(int fd, const void* data, std::size_t size);

// pidfd_open / pidfd_send_signal by syscall (glibc 2.36's <sys/pidfd.h> lacks extern "C").
// Return -1 with errno on failure.
int pidfd_open_fd(int pid) noexcept;
int pidfd_signal(int pidfd, int sig) noexcept;

// One datagram (SOCK_SEQPACKET) with descriptors attached (SCM_RIGHTS). send_fds waits while
// the socket is full if `wait` (else returns false), and throws std::system_error on failure.
// recv_fds returns the byte count (0 on EOF, -1 with errno) and appends received descriptors,
// CLOEXEC, to `fds`.
bool send_fds(int sock, const void* data, std::size_t size, std::span<const int> fds,
              bool wait = true);
ssize_t recv_fds(int sock, void* data, std::size_t size, std::vector<int>& fds, int flags);

// In a new child: get `sig` when the process that forked it dies (PR_SET_PDEATHSIG; it survives
// an exec), and exit at once if that already happened between fork and here.
void die_with_parent(pid_t expected_parent, int sig = SIGKILL) noexcept;

// Writes `head` then `body` with sendmsg (one call unless the kernel takes them in parts),
// MSG_NOSIGNAL. Throws BrokenPipeError (naming `what`) when the peer is gone (EPIPE,
// ECONNRESET), std::system_error otherwise. The framing of Pipes and Manager connections.
void send_head_and_body(int fd, std::span<const char> head, std::span<const char> body,
                        const char* what);

// Closes every descriptor above 2 except those listed.
void close_fds_except(std::span<const int> keep) noexcept;

}  // namespace mproc::detail
