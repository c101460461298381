#include "mproc/runtime/zygote.hpp"

#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <system_error>
#include <thread>

#include "mproc/errors.hpp"

namespace mproc::detail {
namespace {

struct Wire {
  std::uint32_t op;
  std::int32_t pid;
  std::int32_t status;
  std::uint32_t index;
  std::uint32_t slot = 0;
};
constexpr std::uint32_t kOpSpawn = 100;

void send_with_fd(int sock, const Wire& msg, int fd) {
  iovec iov{const_cast<Wire*>(&msg), sizeof msg};
  msghdr mh{};
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  alignas(cmsghdr) char ctrl[CMSG_SPACE(sizeof(int))] = {};
  if (fd >= 0) {
    mh.msg_control = ctrl;
    mh.msg_controllen = sizeof ctrl;
    cmsghdr* c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(c), &fd, sizeof(int));
  }
  while (::sendmsg(sock, &mh, MSG_NOSIGNAL) < 0) {
    if (errno == EINTR) continue;
    if (errno == EAGAIN) {
      pollfd p{sock, POLLOUT, 0};
      ::poll(&p, 1, 100);
      continue;
    }
    throw std::system_error(errno, std::generic_category(), "zygote sendmsg");
  }
}

// Returns bytes read (0 on EOF, -1 with errno). Received descriptor, if any, goes to *fd.
ssize_t recv_with_fd(int sock, Wire& msg, int* fd, int flags) {
  iovec iov{&msg, sizeof msg};
  msghdr mh{};
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  alignas(cmsghdr) char ctrl[CMSG_SPACE(sizeof(int))] = {};
  mh.msg_control = ctrl;
  mh.msg_controllen = sizeof ctrl;
  ssize_t n;
  do {
    n = ::recvmsg(sock, &mh, MSG_CMSG_CLOEXEC | flags);
  } while (n < 0 && errno == EINTR);
  *fd = -1;
  if (n > 0) {
    for (cmsghdr* c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
      if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
        std::memcpy(fd, CMSG_DATA(c), sizeof(int));
      }
    }
  }
  return n;
}

// Dies with the process that forked us; exits at once if that already happened.
void die_with_parent(pid_t expected_parent) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != expected_parent) ::_exit(0);
}

[[noreturn]] void zygote_main(int ctl, pid_t coordinator, const Zygote::WorkerMain& worker_main) {
  die_with_parent(coordinator);
  sigset_t chld;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  sigset_t old_mask;
  ::sigprocmask(SIG_BLOCK, &chld, &old_mask);
  const int sfd = ::signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
  const std::array<int, 2> keep{ctl, sfd};
  close_fds_except(keep);
  set_nonblocking(ctl, false);
  const pid_t self = ::getpid();

  for (;;) {
    pollfd fds[2] = {{ctl, POLLIN, 0}, {sfd, POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      ::_exit(3);
    }
    if (fds[1].revents & POLLIN) {
      signalfd_siginfo si;
      while (::read(sfd, &si, sizeof si) == sizeof si) {
      }
      int status = 0;
      pid_t pid;
      while ((pid = ::waitpid(-1, &status, WNOHANG)) > 0) {
        try {
          send_with_fd(ctl, Wire{3, pid, status, 0}, -1);
        } catch (...) {
          ::_exit(0);
        }
      }
    }
    if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
      Wire req{};
      int fd = -1;
      const ssize_t n = recv_with_fd(ctl, req, &fd, 0);
      if (n <= 0) ::_exit(0);  // the coordinator closed us: workers follow via PDEATHSIG
      if (req.op != kOpSpawn || fd < 0) {
        if (fd >= 0) ::close(fd);
        continue;
      }
      const pid_t pid = ::fork();
      if (pid == 0) {
        ::close(ctl);
        ::close(sfd);
        ::sigprocmask(SIG_SETMASK, &old_mask, nullptr);
        die_with_parent(self);
        worker_main(fd, req.index, req.slot);
        ::_exit(0);
      }
      ::close(fd);
      try {
        if (pid < 0) {
          send_with_fd(ctl, Wire{2, 0, errno, req.index}, -1);
        } else {
          const int pfd = pidfd_open_fd(pid);
          send_with_fd(ctl, Wire{1, pid, 0, req.index}, pfd);
          if (pfd >= 0) ::close(pfd);
        }
      } catch (...) {
        ::_exit(0);
      }
    }
  }
}

}  // namespace

Zygote::Zygote(WorkerMain worker_main) {
  auto [mine, theirs] = make_socketpair(SOCK_SEQPACKET);
  const pid_t coordinator = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) throw std::system_error(errno, std::generic_category(), "fork zygote");
  if (pid == 0) {
    mine.release();  // closed by close_fds_except in zygote_main
    zygote_main(theirs.get(), coordinator, worker_main);
  }
  pid_ = pid;
  control_ = std::move(mine);
  set_nonblocking(control_.get(), true);
}

Zygote::~Zygote() {
  stop();
}

void Zygote::request_spawn(int worker_fd, unsigned index, unsigned slot) {
  send_with_fd(control_.get(), Wire{kOpSpawn, 0, 0, index, slot}, worker_fd);
}

std::optional<Zygote::Report> Zygote::receive() {
  Wire msg{};
  int fd = -1;
  const ssize_t n = recv_with_fd(control_.get(), msg, &fd, MSG_DONTWAIT);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return std::nullopt;
    throw EOFError(std::string("zygote control socket: ") + std::strerror(errno));
  }
  if (n == 0) throw EOFError("zygote exited");
  UniqueFd pidfd(fd);
  if (n != sizeof msg) return std::nullopt;
  Report r{};
  r.kind = static_cast<Report::Kind>(msg.op);
  r.pid = msg.pid;
  r.status = msg.status;
  r.index = msg.index;
  r.pidfd = std::move(pidfd);
  return r;
}

void Zygote::stop(int grace_ms) noexcept {
  if (pid_ <= 0) return;
  control_.reset();
  using clock = std::chrono::steady_clock;
  const auto deadline = clock::now() + std::chrono::milliseconds(grace_ms);
  int status = 0;
  for (;;) {
    const pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_ || (r < 0 && errno != EINTR)) break;
    if (clock::now() >= deadline) {
      ::kill(pid_, SIGKILL);
      while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
      }
      break;
    }
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  pid_ = -1;
}

}  // namespace mproc::detail
