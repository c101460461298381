#include "mproc/runtime/detail/exec_bootstrap.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <utility>

#include "mproc/process_info.hpp"

namespace mproc::detail {
ExecBootstrap::ExecBootstrap(const char* env_name, const char* arg0)
    : ExecBootstrap(make_socketpair(SOCK_STREAM), env_name, arg0) {}

ExecBootstrap::ExecBootstrap(std::pair<UniqueFd, UniqueFd> ends, const char* env_name,
                             const char* arg0)
    : mine_(std::move(ends.first)),
      theirs_(std::move(ends.second)),
      env_(env_name, std::to_string(theirs_.get())),
      path_(program_path().empty() ? std::string(arg0) : program_path()),
      argv_{path_.data(), nullptr} {}

void ExecBootstrap::exec(std::span<const int> inherit) const noexcept {
  for (int fd : inherit) set_cloexec(fd, false);
  set_cloexec(theirs_.get(), false);
  ::execve("/proc/self/exe", argv_.data(), env_.envp());
}

void ExecBootstrap::send_bytes(std::span<const char> msg) {
  const std::uint64_t len = msg.size();
  write_all(mine_.get(), &len, sizeof len);
  write_all(mine_.get(), msg.data(), msg.size());
}

void exec_bootstrap_corrupt(const char* env_name, const char* why) noexcept {
  std::fprintf(stderr, "mproc: %s: %s\n", env_name, why);
  ::_exit(2);
}

std::optional<Bytes> read_exec_bootstrap(const char* env_name, std::size_t max_size) noexcept {
  const char* v = std::getenv(env_name);
  if (v == nullptr) return std::nullopt;
  char* end = nullptr;
  const long fd = std::strtol(v, &end, 10);
  ::unsetenv(env_name);  // v is gone with it
  if (end == nullptr || *end != '\0' || fd < 3 || fd > INT32_MAX) {
    exec_bootstrap_corrupt(env_name, "malformed descriptor");
  }
  try {
    std::uint64_t len = 0;
    if (read_exact(static_cast<int>(fd), &len, sizeof len) != sizeof len) {
      exec_bootstrap_corrupt(env_name, "no bootstrap message");
    }
    if (len > max_size) exec_bootstrap_corrupt(env_name, "bootstrap message too long");
    Bytes msg(len);
    if (read_exact(static_cast<int>(fd), msg.data(), msg.size()) != msg.size()) {
      exec_bootstrap_corrupt(env_name, "truncated bootstrap message");
    }
    ::close(static_cast<int>(fd));
    return msg;
  } catch (const std::exception& e) {
    exec_bootstrap_corrupt(env_name, e.what());
  }
}

}  // namespace mproc::detail
