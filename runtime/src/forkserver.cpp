#include "mproc/runtime/forkserver.hpp"

#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdint>
#include <mutex>
#include <system_error>
#include <vector>

#include "mproc/errors.hpp"
#include "mproc/runtime/before_fork.hpp"
#include "mproc/runtime/fd.hpp"

namespace mproc::detail {
namespace {

constexpr std::size_t kMaxRequest = 4096;

struct Server {
  std::mutex mu;
  UniqueFd sock;  // SOCK_SEQPACKET: one request, one reply
  pid_t pid = -1;
};

Server& server() {
  static Server* s = new Server;  // outlives static destructors; children may still ask
  return *s;
}

[[noreturn]] void serve(int sock, ForkServerChild child_main) {
  const std::array<int, 1> keep{sock};
  close_fds_except(keep);
  ::signal(SIGCHLD, SIG_IGN);  // the kernel reaps our children; nobody waits for them here
  ::signal(SIGINT, SIG_IGN);   // Ctrl-C is for the program, which decides what to stop
  const pid_t self = ::getpid();
  for (;;) {
    std::array<char, kMaxRequest> buf;
    std::vector<int> fds;
    const ssize_t n = recv_fds(sock, buf.data(), buf.size(), fds, 0);
    if (n <= 0) ::_exit(0);  // the program closed us or is gone
    const pid_t pid = ::fork();
    if (pid == 0) {
      ::close(sock);  // SIGINT stays ignored: every child is a pool's zygote (zygote.cpp)
      die_with_parent(self);
      child_main({buf.data(), static_cast<std::size_t>(n)}, fds);
      ::_exit(0);
    }
    for (int fd : fds) ::close(fd);
    const std::int32_t reply = pid > 0 ? pid : -errno;
    try {
      send_fds(sock, &reply, sizeof reply, {});
    } catch (...) {
      ::_exit(0);
    }
  }
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
    serve(theirs.release(), child_main);
  }
  s.sock = std::move(mine);
  s.pid = pid;
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
  if (!s.sock) {
    throw StartMethodError(
        "start method 'forkserver' needs mproc::init(argc, argv) at the top of main()");
  }
  send_fds(s.sock.get(), data.data(), data.size(), fds);
  std::int32_t reply = 0;
  std::vector<int> none;
  const ssize_t n = recv_fds(s.sock.get(), &reply, sizeof reply, none, 0);
  for (int fd : none) ::close(fd);
  if (n != sizeof reply) {
    throw std::system_error(n < 0 ? errno : EPIPE, std::generic_category(),
                            "the fork server is gone");
  }
  if (reply < 0) throw std::system_error(-reply, std::generic_category(), "fork server: fork");
  return reply;
}

}  // namespace mproc::detail
