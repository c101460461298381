// Manager addresses: parsing, listening and connecting (Unix and TCP sockets).
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <string>

#include "mproc/errors.hpp"
#include "net.hpp"

namespace mproc::detail {
namespace {

struct Endpoint {
  sockaddr_storage addr{};
  socklen_t len = 0;
  int family = AF_UNSPEC;
};

[[noreturn]] void bad(const std::string& address, const std::string& why) {
  throw ManagerError("manager address '" + address + "': " + why);
}

Endpoint unix_endpoint(const std::string& address, const std::string& path) {
  Endpoint e;
  auto* sun = reinterpret_cast<sockaddr_un*>(&e.addr);
  sun->sun_family = AF_UNIX;
  const bool abstract = !path.empty() && path[0] == '@';
  if (path.empty() || path.size() >= sizeof sun->sun_path) bad(address, "bad Unix socket path");
  std::memcpy(sun->sun_path, path.data(), path.size());
  if (abstract) sun->sun_path[0] = '\0';  // Linux's abstract namespace: no file to clean up
  e.len =
      static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + (abstract ? 0 : 1));
  e.family = AF_UNIX;
  return e;
}

Endpoint tcp_endpoint(const std::string& address, std::string hostport, bool passive) {
  const auto colon = hostport.rfind(':');
  if (colon == std::string::npos) bad(address, "expected HOST:PORT");
  std::string host = hostport.substr(0, colon);
  const std::string port = hostport.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  if (port.empty()) bad(address, "missing port");
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
  addrinfo* res = nullptr;
  const int rc = ::getaddrinfo(host.empty() ? nullptr : host.c_str(), port.c_str(), &hints, &res);
  if (rc != 0 || res == nullptr) bad(address, ::gai_strerror(rc));
  Endpoint e;
  std::memcpy(&e.addr, res->ai_addr, res->ai_addrlen);
  e.len = res->ai_addrlen;
  e.family = res->ai_family;
  ::freeaddrinfo(res);
  return e;
}

Endpoint parse(const std::string& address, bool passive) {
  if (address.rfind("unix:", 0) == 0) return unix_endpoint(address, address.substr(5));
  if (address.rfind("tcp:", 0) == 0) return tcp_endpoint(address, address.substr(4), passive);
  if (address.find(':') != std::string::npos) return tcp_endpoint(address, address, passive);
  bad(address, "expected unix:PATH, unix:@NAME, tcp:HOST:PORT or HOST:PORT");
}

std::string describe(const sockaddr_storage& ss) {
  char host[INET6_ADDRSTRLEN] = {};
  if (ss.ss_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(&ss);
    ::inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
    return "tcp:" + std::string(host) + ":" + std::to_string(ntohs(in->sin_port));
  }
  const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&ss);
  ::inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
  return "tcp:[" + std::string(host) + "]:" + std::to_string(ntohs(in6->sin6_port));
}

void tune_tcp(int fd, int family) {
  if (family == AF_UNIX) return;
  const int one = 1;  // requests are small and synchronous: never wait for Nagle
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  // A peer host that vanishes (power loss, partition) sends no FIN: without these a call
  // blocked on it would wait for the kernel's two-hour keepalive. Idle 10 s, then 3 probes 5 s
  // apart; unacknowledged data gives up after 30 s. Either way the call raises ManagerError.
  const int idle = 10, interval = 5, count = 3, user_timeout_ms = 30000;
  ::setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof interval);
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof count);
  ::setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout_ms, sizeof user_timeout_ms);
}

}  // namespace

std::string private_unix_address() {
  static std::atomic<unsigned> counter{0};
  std::string key = random_authkey();
  char suffix[17];
  std::snprintf(suffix, sizeof suffix, "%02x%02x%02x%02x%02x%02x%02x%02x",
                static_cast<unsigned char>(key[0]), static_cast<unsigned char>(key[1]),
                static_cast<unsigned char>(key[2]), static_cast<unsigned char>(key[3]),
                static_cast<unsigned char>(key[4]), static_cast<unsigned char>(key[5]),
                static_cast<unsigned char>(key[6]), static_cast<unsigned char>(key[7]));
  return "unix:@mproc-manager-" + std::to_string(::getpid()) + "-" +
         std::to_string(counter.fetch_add(1)) + "-" + suffix;
}

UniqueFd listen_on(const std::string& address, std::string& bound) {
  const Endpoint e = parse(address, true);
  UniqueFd fd(::socket(e.family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) bad(address, std::strerror(errno));
  if (e.family != AF_UNIX) {
    const int one = 1;
    ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  }
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&e.addr), e.len) != 0) {
    bad(address, std::string("cannot bind: ") + std::strerror(errno));
  }
  if (::listen(fd.get(), 128) != 0) bad(address, std::string("listen: ") + std::strerror(errno));
  if (e.family == AF_UNIX) {
    bound = address;
  } else {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&ss), &len);
    bound = describe(ss);
  }
  return fd;
}

UniqueFd connect_to(const std::string& address, long long timeout_ms) {
  const Endpoint e = parse(address, false);
  UniqueFd fd(::socket(e.family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) bad(address, std::strerror(errno));
  if (timeout_ms > 0) set_io_timeout(fd.get(), timeout_ms);  // Linux bounds connect() by it
  int rc;
  do {
    rc = ::connect(fd.get(), reinterpret_cast<const sockaddr*>(&e.addr), e.len);
  } while (rc != 0 && errno == EINTR);
  if (rc != 0) {
    throw ManagerError("no manager is listening at '" + address + "' (" + std::strerror(errno) +
                       "): it was never started, was shut down, or died");
  }
  tune_tcp(fd.get(), e.family);
  return fd;
}

void set_io_timeout(int fd, long long ms) noexcept {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(ms / 1000);
  tv.tv_usec = static_cast<suseconds_t>((ms % 1000) * 1000);
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

// Accepted TCP sockets need TCP_NODELAY too; the server calls this.
void tune_accepted(int fd) noexcept {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) == 0) tune_tcp(fd, ss.ss_family);
}

}  // namespace mproc::detail
