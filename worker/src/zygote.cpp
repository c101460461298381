#include "mproc/worker/detail/zygote.hpp"

#include <malloc.h>
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
#include <deque>
#include <system_error>
#include <thread>

#include "mproc/errors.hpp"
#include "mproc/runtime/detail/before_fork.hpp"

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
constexpr std::uint32_t kOpKill = 101;

// False when the socket is full and `wait` is false.
bool send_with_fd(int sock, const Wire& msg, int fd, bool wait = false) {
  const int one[1] = {fd};
  return send_fds(sock, &msg, sizeof msg,
                  fd >= 0 ? std::span<const int>(one) : std::span<const int>(), wait);
}

// Returns bytes read (0 on EOF, -1 with errno). The received descriptor, if any, goes to *fd.
ssize_t recv_with_fd(int sock, Wire& msg, int* fd, int flags) {
  std::vector<int> fds;
  const ssize_t n = recv_fds(sock, &msg, sizeof msg, fds, flags);
  *fd = fds.empty() ? -1 : fds.front();
  for (std::size_t i = 1; i < fds.size(); ++i) ::close(fds[i]);
  return n;
}

}  // namespace

[[noreturn]] void run_zygote(int ctl, pid_t parent, const Zygote::WorkerMain& worker_main,
                             std::span<const int> keep_fds) {
  die_with_parent(parent);
  // Ctrl-C reaches the whole process group. The program decides what it means: a program that
  // handles it keeps its pool (close(); join() finishes the work), one that does not dies and
  // takes the zygote with it (PR_SET_PDEATHSIG). Under fork the zygote would otherwise inherit
  // whatever handler the program had when the pool was made; under forkserver, the default.
  ::signal(SIGINT, SIG_IGN);
  {
    sigset_t intr;  // blocked by the thread that forked us (before_fork.hpp)
    sigemptyset(&intr);
    sigaddset(&intr, SIGINT);
    ::sigprocmask(SIG_UNBLOCK, &intr, nullptr);
  }
  // A fork server ignores SIGCHLD to have its children reaped; the zygote reports them instead.
  ::signal(SIGCHLD, SIG_DFL);
  sigset_t chld;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  sigset_t old_mask;
  ::sigprocmask(SIG_BLOCK, &chld, &old_mask);
  const int sfd = ::signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
  std::vector<int> keep(keep_fds.begin(), keep_fds.end());
  keep.push_back(ctl);
  keep.push_back(sfd);
  close_fds_except(keep);
  // Reports wait in an outbox and leave when the socket has room: the zygote never blocks on
  // a full socket, so it always goes on reading requests, and a coordinator busy sending
  // requests can never deadlock against a zygote busy sending reports.
  set_nonblocking(ctl, true);
  const pid_t self = ::getpid();
  struct Outgoing {
    Wire msg;
    UniqueFd fd;
  };
  std::deque<Outgoing> outbox;
  // The only allocations here are the outbox's and recv_fds's; without memory the zygote can
  // neither report nor go on, and it says so rather than dying of an uncaught bad_alloc (the
  // coordinator then reports the zygote lost).
  const auto out_of_memory = [] {
    static const char msg[] = "mproc zygote: out of memory; exiting\n";
    [[maybe_unused]] ssize_t w = ::write(2, msg, sizeof msg - 1);
    ::_exit(4);
  };
  const auto report = [&](const Wire& msg, int fd) {
    UniqueFd owned(fd);
    try {
      outbox.push_back({msg, std::move(owned)});
    } catch (const std::bad_alloc&) {
      out_of_memory();
    }
  };

  for (;;) {
    pollfd fds[2] = {{ctl, static_cast<short>(POLLIN | (outbox.empty() ? 0 : POLLOUT)), 0},
                     {sfd, POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      ::_exit(3);
    }
    if (fds[0].revents & (POLLHUP | POLLERR)) ::_exit(0);  // workers follow via PDEATHSIG
    if (fds[1].revents & POLLIN) {
      signalfd_siginfo si;
      while (::read(sfd, &si, sizeof si) == sizeof si) {
      }
      int status = 0;
      pid_t pid;
      while ((pid = ::waitpid(-1, &status, WNOHANG)) > 0) {
        report(Wire{3, pid, status, 0}, -1);
      }
    }
    if (fds[0].revents & POLLIN) {
      for (;;) {  // every request waiting, then the reports
        Wire req{};
        int fd = -1;
        ssize_t n = -1;
        try {
          n = recv_with_fd(ctl, req, &fd, 0);
        } catch (const std::bad_alloc&) {
          out_of_memory();
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
        if (n <= 0) ::_exit(0);  // the coordinator closed us: workers follow via PDEATHSIG
        if (req.op == kOpKill) {
          // For a worker whose pidfd did not reach the coordinator (its descriptor table was
          // full). The pid is safe to signal while it is our unreaped child: a zombie cannot be
          // reused, and one already reaped fails waitid with ECHILD.
          if (fd >= 0) ::close(fd);
          siginfo_t info{};
          if (req.pid > 0 && ::waitid(P_PID, static_cast<id_t>(req.pid), &info,
                                      WEXITED | WNOHANG | WNOWAIT) == 0) {
            ::kill(req.pid, req.status);
          }
          continue;
        }
        if (req.op != kOpSpawn) {
          if (fd >= 0) ::close(fd);
          continue;
        }
        if (fd < 0) {
          // The worker's socket was dropped on the way in (MSG_CTRUNC: our descriptor table
          // is full): say so, or the coordinator would wait for this worker forever.
          report(Wire{2, 0, EMFILE, req.index}, -1);
          continue;
        }
        const pid_t pid = ::fork();
        const int fork_errno = errno;
        if (pid == 0) {
          ::close(ctl);
          ::close(sfd);
          ::sigprocmask(SIG_SETMASK, &old_mask, nullptr);
          die_with_parent(self);
          try {
            worker_main(fd, req.index, req.slot);
          } catch (...) {
            ::_exit(70);  // the worker could not set itself up; its exit status tells
          }
          ::_exit(0);
        }
        ::close(fd);
        if (pid < 0) {
          report(Wire{2, 0, fork_errno, req.index}, -1);
        } else {
          report(Wire{1, pid, 0, req.index}, pidfd_open_fd(pid));
        }
      }
    }
    while (!outbox.empty()) {
      Outgoing& o = outbox.front();
      try {
        if (!send_with_fd(ctl, o.msg, o.fd.get())) break;  // full: wait for POLLOUT
      } catch (...) {
        ::_exit(0);  // the coordinator is gone
      }
      outbox.pop_front();
    }
  }
}

Zygote::Zygote(WorkerMain worker_main, std::span<const int> keep_fds) {
  auto [mine, theirs] = make_socketpair(SOCK_SEQPACKET);
  const pid_t coordinator = ::getpid();
  flush_stdio_before_fork();
  // The zygote lives as long as the pool: every heap page it shares costs this program a
  // copy-on-write fault at its next write (19-110 us on a VM, with a TLB flush on every CPU).
  // Memory malloc holds free is written again soon (a map's frames and results) and is of no use
  // to the zygote, so it goes back to the kernel first and returns as zero-fill faults (~2 us).
  // Measured on a map of 10^6 ints in a fresh pool: the caller's encoding took 6 ms of its 24.
  ::malloc_trim(0);
  const pid_t pid = ::fork();
  if (pid < 0) throw std::system_error(errno, std::generic_category(), "fork zygote");
  if (pid == 0) {
    mine.release();  // closed by close_fds_except in zygote_main
    run_zygote(theirs.get(), coordinator, worker_main, keep_fds);
  }
  pid_ = pid;
  control_ = std::move(mine);
  set_nonblocking(control_.get(), true);
}

Zygote::~Zygote() {
  stop();
}

void Zygote::request_spawn(int worker_fd, unsigned index, unsigned slot) {
  send_with_fd(control_.get(), Wire{kOpSpawn, 0, 0, index, slot}, worker_fd, true);
}

void Zygote::request_kill(pid_t pid, int sig) {
  send_with_fd(control_.get(), Wire{kOpKill, pid, sig, 0}, -1, true);
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
  if (!child_) {
    pid_ = -1;
    return;
  }
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
