// Raw socketpair floors: a forked child echoes; the parent times.
#include "floor.hpp"

#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <system_error>
#include <thread>
#include <vector>

namespace bench {
namespace {

using Clock = std::chrono::steady_clock;

[[noreturn]] void fail(const char* what) {
  throw std::system_error(errno, std::generic_category(), what);
}

// Both return false on EOF or error (in the child that simply means: stop).
bool write_all(int fd, const char* p, std::size_t n) {
  while (n > 0) {
    const ssize_t w = ::write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    n -= static_cast<std::size_t>(w);
  }
  return true;
}

bool read_all(int fd, char* p, std::size_t n) {
  while (n > 0) {
    const ssize_t r = ::read(fd, p, n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    p += r;
    n -= static_cast<std::size_t>(r);
  }
  return true;
}

// A child process on one end of a socketpair, running `echo(fd, buffer)` until EOF.
// The buffer is allocated before fork: the child never touches the allocator.
class EchoChild {
 public:
  template <class Echo>
  EchoChild(std::size_t buffer_bytes, Echo echo) : buf_(buffer_bytes) {
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) fail("socketpair");
    const pid_t parent = ::getpid();
    pid_ = ::fork();
    if (pid_ < 0) fail("fork");
    if (pid_ == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(1);
      ::close(sv[0]);
      echo(sv[1], buf_.data(), buf_.size());
      ::_exit(0);
    }
    ::close(sv[1]);
    fd_ = sv[0];
  }
  EchoChild(const EchoChild&) = delete;
  EchoChild& operator=(const EchoChild&) = delete;
  ~EchoChild() {
    ::close(fd_);  // the child sees EOF and exits
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
  }
  int fd() const { return fd_; }

 private:
  std::vector<char> buf_;
  pid_t pid_ = -1;
  int fd_ = -1;
};

// Echoes fixed-size messages: read one whole, write it back whole.
auto fixed_echo(std::size_t bytes) {
  return [bytes](int fd, char* buf, std::size_t) {
    while (read_all(fd, buf, bytes) && write_all(fd, buf, bytes)) {
    }
  };
}

// Echoes whatever arrives, as it arrives.
void stream_echo(int fd, char* buf, std::size_t cap) {
  for (;;) {
    const ssize_t r = ::read(fd, buf, cap);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0 || !write_all(fd, buf, static_cast<std::size_t>(r))) return;
  }
}

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

}  // namespace

double socketpair_rtt_us(std::size_t round_trips) {
  constexpr std::size_t kMsg = 16;
  EchoChild child(kMsg, fixed_echo(kMsg));
  char msg[kMsg] = "ping-pong-16-b";
  for (int i = 0; i < 100; ++i) {  // warm-up: both processes scheduled, pages touched
    if (!write_all(child.fd(), msg, kMsg) || !read_all(child.fd(), msg, kMsg)) fail("echo");
  }
  const auto t0 = Clock::now();
  for (std::size_t i = 0; i < round_trips; ++i) {
    if (!write_all(child.fd(), msg, kMsg) || !read_all(child.fd(), msg, kMsg)) fail("echo");
  }
  return seconds_since(t0) * 1e6 / static_cast<double>(round_trips);
}

double socketpair_stream_msgs_per_s(std::size_t messages) {
  constexpr std::size_t kMsg = 16;
  constexpr std::size_t kBatch = 256;  // messages per write
  EchoChild child(64 << 10, stream_echo);
  const std::size_t total = messages * kMsg;
  std::vector<char> out(kBatch * kMsg, 'x');
  std::vector<char> in(64 << 10);
  const auto t0 = Clock::now();
  std::thread writer([&] {
    for (std::size_t sent = 0; sent < total;) {
      const std::size_t n = std::min(out.size(), total - sent);
      if (!write_all(child.fd(), out.data(), n)) return;
      sent += n;
    }
  });
  std::size_t got = 0;
  while (got < total) {
    const ssize_t r = ::read(child.fd(), in.data(), std::min(in.size(), total - got));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    got += static_cast<std::size_t>(r);
  }
  const double s = seconds_since(t0);
  writer.join();
  if (got < total) fail("stream echo");
  return static_cast<double>(messages) / s;
}

double socketpair_echo_gb_per_s(std::size_t count, std::size_t bytes) {
  EchoChild child(bytes, fixed_echo(bytes));
  std::vector<char> buf(bytes, 'p');
  for (int i = 0; i < 3; ++i) {  // warm-up
    if (!write_all(child.fd(), buf.data(), bytes) || !read_all(child.fd(), buf.data(), bytes))
      fail("echo");
  }
  const auto t0 = Clock::now();
  for (std::size_t i = 0; i < count; ++i) {
    if (!write_all(child.fd(), buf.data(), bytes) || !read_all(child.fd(), buf.data(), bytes))
      fail("echo");
  }
  return static_cast<double>(count * bytes) / seconds_since(t0) / 1e9;
}

}  // namespace bench
