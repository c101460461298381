#include "mproc/runtime/detail/forkserver.hpp"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "mproc/errors.hpp"
#include "mproc/logging.hpp"
#include "mproc/process_info.hpp"
#include "mproc/runtime/detail/before_fork.hpp"
#include "mproc/runtime/detail/exec_bootstrap.hpp"
#include "mproc/runtime/detail/fd.hpp"
#include "mproc/runtime/detail/owner.hpp"

namespace mproc::detail {
namespace {

constexpr std::size_t kMaxRequest = 4096;
// A replacement server is a fresh program: MPROC_FORK_SERVER (exec_bootstrap.hpp, message
// ServerBootstrap) tells its mproc::init to serve instead of returning to main.
constexpr const char* kServerEnv = "MPROC_FORK_SERVER";
// How long a replacement may take to reach mproc::init (a static constructor of the program
// runs first) and say hello.
constexpr int kHelloTimeoutMs = 10'000;
constexpr std::int32_t kHello = 0;

struct ServerBootstrap {
  std::int32_t sock = -1;    // its end of the SOCK_SEQPACKET socket it serves
  std::int32_t program = 0;  // the program's pid: it serves until that process ends

  template <class A>
  void serialize(A& ar) {
    ar(sock, program);
  }
};

struct Server {
  std::mutex mu;
  UniqueFd sock;  // SOCK_SEQPACKET: one request, one reply
  pid_t pid = -1;
  // Readable once the server has exited. Its end of the socket may outlive it in a child that
  // another thread of ours forked meanwhile, so a hang-up alone does not always tell. Empty if
  // pidfd_open failed (then the socket is all we have).
  UniqueFd pidfd;
  ForkServerChild child_main = nullptr;  // set once by init: a dead server can be replaced
  pid_t owner = 0;  // the process whose server it is (a fork() child has a copy of the socket)
};

Server& server() {
  // Outlives static destructors (children may still ask). A fork child gets a fresh lock: the
  // parent's may have been held by another thread at the fork (the server forks under it too,
  // so it cannot be taken across fork() instead).
  static Server* s = [] {
    auto* p = new Server;
    ::pthread_atfork(nullptr, nullptr, [] { ::new (&server().mu) std::mutex; });
    return p;
  }();
  return *s;
}

// `program_pidfd` (or -1): a replacement server is not tied to the program by PDEATHSIG (that
// follows the thread that forked it, here any pool's I/O thread), so it watches the program's
// pidfd instead. The socket alone is not enough: a forked child of the program may hold it.
[[noreturn]] void serve(int sock, ForkServerChild child_main, int program_pidfd) try {
  const std::array<int, 2> keep{sock, program_pidfd};
  close_fds_except(std::span<const int>(keep.data(), program_pidfd >= 0 ? 2 : 1));
  ::signal(SIGCHLD, SIG_IGN);  // the kernel reaps our children; nobody waits for them here
  ::signal(SIGINT, SIG_IGN);   // Ctrl-C is for the program, which decides what to stop
  const pid_t self = ::getpid();
  std::vector<int> fds;
  fds.reserve(8);  // recv_fds then never allocates
  for (;;) {
    pollfd p[2] = {{sock, POLLIN, 0}, {program_pidfd, POLLIN, 0}};
    if (::poll(p, program_pidfd >= 0 ? 2 : 1, -1) < 0) {
      if (errno == EINTR) continue;
      ::_exit(3);
    }
    if (program_pidfd >= 0 && (p[1].revents & POLLIN)) ::_exit(0);  // the program ended
    std::array<char, kMaxRequest> buf;
    fds.clear();
    const ssize_t n = recv_fds(sock, buf.data(), buf.size(), fds, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) ::_exit(0);  // the program closed us or is gone
    const pid_t pid = ::fork();
    if (pid == 0) {
      ::close(sock);  // SIGINT stays ignored: every child is a pool's zygote (zygote.cpp)
      if (program_pidfd >= 0) ::close(program_pidfd);
      die_with_parent(self);
      child_main({buf.data(), static_cast<std::size_t>(n)}, fds);
      ::_exit(0);
    }
    for (int fd : fds) ::close(fd);
    const std::int32_t reply = pid > 0 ? pid : -errno;
    if (!send_fds(sock, &reply, sizeof reply, {})) ::_exit(0);
  }
} catch (...) {
  ::_exit(3);  // the program sees the server gone and replaces it
}

// Why the server at `s.pid` is gone, reaping it (it is our child). Called once its socket
// said so; it may still be on its way out, so this waits a little.
std::string bury(Server& s) {
  std::string how = "died";
  if (s.pid > 0) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(1);
    int status = 0;
    for (;;) {
      const pid_t r = ::waitpid(s.pid, &status, WNOHANG);
      if (r == s.pid) {
        if (WIFSIGNALED(status)) {
          const char* abbrev = sigabbrev_np(WTERMSIG(status));
          how =
              std::string("was killed by ") +
              (abbrev ? std::string("SIG") + abbrev : "signal " + std::to_string(WTERMSIG(status)));
        } else if (WIFEXITED(status)) {
          how = "exited with code " + std::to_string(WEXITSTATUS(status));
        }
        break;
      }
      if (r < 0 && errno != EINTR) break;  // reaped by someone else (SIGCHLD ignored)
      if (std::chrono::steady_clock::now() >= deadline) {
        ::kill(s.pid, SIGKILL);  // it closed its socket yet lives: it is of no use
        while (::waitpid(s.pid, &status, 0) < 0 && errno == EINTR) {
        }
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }
  std::string what = "the fork server (pid " + std::to_string(s.pid) + ") " + how;
  s.sock.reset();
  s.pidfd.reset();
  s.pid = -1;
  return what;
}

// The server died since the last request: its socket is hung up or its pidfd readable.
bool server_died(const Server& s) {
  pollfd p[2] = {{s.sock.get(), 0, 0}, {s.pidfd.get(), POLLIN, 0}};
  if (::poll(p, s.pidfd ? 2 : 1, 0) <= 0) return false;
  return (p[0].revents & (POLLHUP | POLLERR)) != 0 || (p[1].revents & POLLIN) != 0;
}

// Waits for the server's reply: bytes read, or -1 with errno (EPIPE: it died without one).
ssize_t await_reply(const Server& s, std::int32_t& reply) {
  for (;;) {
    pollfd p[2] = {{s.sock.get(), POLLIN, 0}, {s.pidfd.get(), POLLIN, 0}};
    if (::poll(p, s.pidfd ? 2 : 1, -1) < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    if (p[0].revents != 0) break;  // a reply, or a hang-up that recv reports
    if (p[1].revents & POLLIN) {   // gone without a word, its socket still held elsewhere
      errno = EPIPE;
      return -1;
    }
  }
  std::vector<int> none;
  ssize_t n;
  do {
    n = recv_fds(s.sock.get(), &reply, sizeof reply, none, MSG_DONTWAIT);
  } while (n < 0 && errno == EINTR);
  for (int fd : none) ::close(fd);
  return n;
}

// The program is multi-threaded by now, so the replacement is not a fork of it (a lock held by
// another thread would stay held) but a fresh run of it: fork, then only exec.
void replace(Server& s, const std::string& why) {
  get_logger()->warn("{}; starting a new one", why);
  const auto fail = [&](const std::string& detail) {
    return StartMethodError(why + " and a new one could not be started (" + detail +
                            "); use the spawn start method, or make the pool before whatever "
                            "kills the fork server");
  };
  auto [mine, theirs] = make_socketpair(SOCK_SEQPACKET);
  int ep[2];
  if (::pipe2(ep, O_CLOEXEC) != 0) throw fail(std::string("pipe2: ") + std::strerror(errno));
  UniqueFd err_r(ep[0]), err_w(ep[1]);

  const pid_t program = ::getpid();
  ExecBootstrap boot(kServerEnv, "mproc-fork-server");
  try {
    boot.send(ServerBootstrap{theirs.get(), program});  // small: it waits in the socket
  } catch (const std::system_error& e) {
    throw fail(e.what());
  }
  const std::array<int, 3> keep{theirs.get(), err_w.get(), boot.child_fd()};
  sigset_t none;
  sigemptyset(&none);

  const pid_t pid = ::fork();
  if (pid < 0) throw fail(std::string("fork: ") + std::strerror(errno));
  if (pid == 0) {  // nothing here allocates: another thread may hold the allocator's lock
    close_fds_except(keep);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);  // the exec keeps this thread's mask
    boot.exec(std::span<const int>(keep).first(1));
    const int e = errno;
    [[maybe_unused]] ssize_t w = ::write(keep[1], &e, sizeof e);
    ::_exit(127);
  }
  boot.forked();
  theirs.reset();
  err_w.reset();
  const auto reap = [pid] {
    ::kill(pid, SIGKILL);
    while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
    }
  };
  int exec_errno = 0;
  ssize_t got;
  while ((got = ::read(err_r.get(), &exec_errno, sizeof exec_errno)) < 0 && errno == EINTR) {
  }
  if (got == sizeof exec_errno) {
    reap();
    throw fail(std::string("exec /proc/self/exe: ") + std::strerror(exec_errno));
  }
  pollfd p{mine.get(), POLLIN, 0};
  int ready;
  while ((ready = ::poll(&p, 1, kHelloTimeoutMs)) < 0 && errno == EINTR) {
  }
  std::int32_t hello = -1;
  if (ready != 1 || ::recv(mine.get(), &hello, sizeof hello, 0) != sizeof hello ||
      hello != kHello) {
    reap();
    throw fail(ready == 0 ? "it did not reach mproc::init within 10 s"
                          : "it ended before reaching mproc::init, which must be the first "
                            "statement of main()");
  }
  s.sock = std::move(mine);
  s.pid = pid;
  s.owner = current_pid();
  s.pidfd.reset(pidfd_open_fd(pid));
  get_logger()->info("started a new fork server (pid {})", pid);
}

}  // namespace

void start_forkserver(ForkServerChild child_main) {
  Server& s = server();
  std::lock_guard lock(s.mu);
  if (s.sock) return;
  auto [mine, theirs] = make_socketpair(SOCK_SEQPACKET);
  const pid_t program = ::getpid();
  flush_stdio_before_fork();
  const pid_t pid = ::fork();
  if (pid < 0) throw std::system_error(errno, std::generic_category(), "fork the fork server");
  if (pid == 0) {
    die_with_parent(program);
    serve(theirs.release(), child_main, -1);
  }
  s.sock = std::move(mine);
  s.pid = pid;
  s.owner = current_pid();
  s.pidfd.reset(pidfd_open_fd(pid));
  s.child_main = child_main;
}

void enter_if_fork_server(ForkServerChild child_main) noexcept {
  const std::optional<ServerBootstrap> b = read_exec_bootstrap<ServerBootstrap>(kServerEnv, 4096);
  if (!b) return;
  const int sock = b->sock;
  const pid_t program = b->program;
  if (sock < 3 || program <= 0) exec_bootstrap_corrupt(kServerEnv, "not a fork server");
  const int pidfd = pidfd_open_fd(program);
  if (pidfd < 0 || ::getppid() != program) ::_exit(0);  // the program is gone already
  set_cloexec(sock, true);
  if (!send_fds(sock, &kHello, sizeof kHello, {})) ::_exit(0);
  serve(sock, child_main, pidfd);
}

pid_t forkserver_pid() noexcept {
  Server& s = server();
  std::lock_guard lock(s.mu);
  return s.pid;
}

bool forkserver_running() noexcept {
  Server& s = server();
  std::lock_guard lock(s.mu);
  return static_cast<bool>(s.sock);
}

pid_t forkserver_fork(std::span<const char> data, std::span<const int> fds) {
  Server& s = server();
  std::lock_guard lock(s.mu);
  if (!s.child_main) {
    throw StartMethodError(
        "start method 'forkserver' needs mproc::init(argc, argv) at the top of main()");
  }
  if (s.sock && s.owner != current_pid()) {
    // A child made with fork() holds a copy of its parent's socket: requests from both would
    // interleave and each could read the other's reply. The server stays the parent's (owner.hpp);
    // this process gets one of its own.
    s.sock.reset();
    s.pidfd.reset();
    s.pid = -1;
    replace(s, "this process is a fork() child of the program that owns the fork server");
  } else if (!s.sock) {
    replace(s, "the fork server is gone");
  } else if (server_died(s)) {
    replace(s, bury(s));
  }
  for (int attempt = 0;; ++attempt) {
    try {
      send_fds(s.sock.get(), data.data(), data.size(), fds, true);
      break;
    } catch (const std::system_error& e) {
      // Died since the check above: nothing was delivered, so sending again is safe.
      if (attempt > 0 || (e.code().value() != EPIPE && e.code().value() != ECONNRESET)) throw;
      replace(s, bury(s));
    }
  }
  std::int32_t reply = 0;
  if (await_reply(s, reply) != sizeof reply) {
    // It took the request and died: a child it may have forked dies with it (PDEATHSIG), but
    // only a request with fresh descriptors is safe to make again.
    throw ForkServerLost(bury(s) + " while starting a process");
  }
  if (reply < 0) throw std::system_error(-reply, std::generic_category(), "fork server: fork");
  return reply;
}

}  // namespace mproc::detail
