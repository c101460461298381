#include "mproc/runtime/detail/fd.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include "mproc/errors.hpp"

namespace mproc::detail {
namespace {
constexpr std::size_t kMaxFdsPerMessage = 4;
}  // namespace

void UniqueFd::reset(int fd) noexcept {
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
}

std::pair<UniqueFd, UniqueFd> make_socketpair(int type) {
  int sv[2];
  if (::socketpair(AF_UNIX, type | SOCK_CLOEXEC, 0, sv) != 0) {
    throw std::system_error(errno, std::generic_category(), "socketpair");
  }
  return {UniqueFd(sv[0]), UniqueFd(sv[1])};
}

void set_nonblocking(int fd, bool on) {
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0 || ::fcntl(fd, F_SETFL, on ? flags | O_NONBLOCK : flags & ~O_NONBLOCK) < 0) {
    throw std::system_error(errno, std::generic_category(), "fcntl(O_NONBLOCK)");
  }
}

void set_cloexec(int fd, bool on) noexcept {
  const int flags = ::fcntl(fd, F_GETFD);
  if (flags >= 0) ::fcntl(fd, F_SETFD, on ? flags | FD_CLOEXEC : flags & ~FD_CLOEXEC);
}

std::size_t read_exact(int fd, void* data, std::size_t size) {
  char* p = static_cast<char*>(data);
  std::size_t got = 0;
  while (got < size) {
    const ssize_t n = ::read(fd, p + got, size - got);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == ECONNRESET) break;
      throw std::system_error(errno, std::generic_category(), "read");
    }
    if (n == 0) break;
    got += static_cast<std::size_t>(n);
  }
  return got;
}

void write_all(int fd, const void* data, std::size_t size) {
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t n = ::send(fd, p, size, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw std::system_error(errno, std::generic_category(), "send");
    }
    p += n;
    size -= static_cast<std::size_t>(n);
  }
}

int pidfd_open_fd(int pid) noexcept {
  return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
}

int pidfd_signal(int pidfd, int sig) noexcept {
  return static_cast<int>(::syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0));
}

bool send_fds(int sock, const void* data, std::size_t size, std::span<const int> fds, bool wait) {
  iovec iov{const_cast<void*>(data), size};
  msghdr mh{};
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  alignas(cmsghdr) char ctrl[CMSG_SPACE(kMaxFdsPerMessage * sizeof(int))] = {};
  if (fds.size() > kMaxFdsPerMessage) throw std::invalid_argument("send_fds: too many descriptors");
  if (!fds.empty()) {
    mh.msg_control = ctrl;
    mh.msg_controllen = CMSG_SPACE(fds.size() * sizeof(int));
    cmsghdr* c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(fds.size() * sizeof(int));
    std::memcpy(CMSG_DATA(c), fds.data(), fds.size() * sizeof(int));
  }
  while (::sendmsg(sock, &mh, MSG_NOSIGNAL) < 0) {
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      if (!wait) return false;
      pollfd p{sock, POLLOUT, 0};
      ::poll(&p, 1, 100);
      continue;
    }
    throw std::system_error(errno, std::generic_category(), "sendmsg");
  }
  return true;
}

ssize_t recv_fds(int sock, void* data, std::size_t size, std::vector<int>& fds, int flags) {
  iovec iov{data, size};
  msghdr mh{};
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  alignas(cmsghdr) char ctrl[CMSG_SPACE(kMaxFdsPerMessage * sizeof(int))] = {};
  mh.msg_control = ctrl;
  mh.msg_controllen = sizeof ctrl;
  ssize_t n;
  do {
    n = ::recvmsg(sock, &mh, MSG_CMSG_CLOEXEC | flags);
  } while (n < 0 && errno == EINTR);
  if (n >= 0) {
    for (cmsghdr* c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
      const std::size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (std::size_t i = 0; i < count; ++i) {
        int fd;
        std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
        fds.push_back(fd);
      }
    }
  }
  return n;
}

void die_with_parent(pid_t expected_parent, int sig) noexcept {
  ::prctl(PR_SET_PDEATHSIG, sig);
  if (::getppid() != expected_parent) ::_exit(0);
}

void close_fds_except(std::span<const int> keep) noexcept {
  // No allocation: this runs in a child between fork and exec, where another thread of the
  // parent may have held the allocator's lock (fatal for sanitizer allocators and some others).
  constexpr std::size_t kMax = 256;
  int k[kMax];
  std::size_t n = 0;
  for (int fd : keep) {
    if (n == kMax) return;  // more than we can sort here: close nothing rather than too much
    std::size_t i = n++;
    for (; i > 0 && k[i - 1] > fd; --i) k[i] = k[i - 1];  // insertion sort: a handful of fds
    k[i] = fd;
  }
  unsigned lo = 3;
  for (int fd : std::span<const int>(k, n)) {
    if (fd < static_cast<int>(lo)) continue;
    if (static_cast<unsigned>(fd) > lo) ::close_range(lo, static_cast<unsigned>(fd) - 1, 0);
    lo = static_cast<unsigned>(fd) + 1;
  }
  ::close_range(lo, ~0U, 0);
}

void send_head_and_body(int fd, std::span<const char> head, std::span<const char> body,
                        const char* what) {
  iovec iov[2] = {{const_cast<char*>(head.data()), head.size()},
                  {const_cast<char*>(body.data()), body.size()}};
  std::size_t left = head.size() + body.size();
  int first = 0;
  while (left > 0) {
    msghdr mh{};
    mh.msg_iov = iov + first;
    mh.msg_iovlen = static_cast<std::size_t>(2 - first);
    const ssize_t n = ::sendmsg(fd, &mh, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EPIPE || errno == ECONNRESET) {
        throw BrokenPipeError(std::string("the far end of the ") + what + " is closed");
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

}  // namespace mproc::detail
