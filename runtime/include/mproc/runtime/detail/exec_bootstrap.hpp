// mproc/runtime/detail/exec_bootstrap.hpp — how a fresh run of this program (an exec of
// /proc/self/exe) learns what to become: a spawned Process, a spawn pool worker, a replacement
// fork server. Internal (namespace detail).
//
// One format for all of them: the environment names a descriptor (NAME=<fd>, ExecEnv), and on
// it comes one message, a u64 length then the role's struct in the wire archive. mproc::init in
// the new program asks each role in turn; the one whose NAME is set reads the message.
//
//   before the fork:  ExecBootstrap boot("MPROC_X", "mproc-x");  boot.send(x) if x is small
//   in the child:     close_fds_except({..., boot.child_fd()});  boot.exec(inherit);
//   after the fork:   boot.forked();  boot.send(x) if x is large (the child reads meanwhile)
//   new program:      if (auto x = read_exec_bootstrap<X>("MPROC_X", cap)) become(*x);
//
// A message sent before the fork waits in the socket: the child, which must not allocate when
// the program has threads, only execs. Only small messages (a few KiB) fit there.
//
// Thread safety: distinct objects are independent; environ must not change while one is built.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <utility>

#include "mproc/runtime/detail/exec_env.hpp"
#include "mproc/runtime/detail/fd.hpp"
#include "mproc/serialize/detail/wire_archive.hpp"

namespace mproc::detail {

class ExecBootstrap {
 public:
  // A socket pair, and the environment naming the child's end under `env_name`. `arg0`: the new
  // program's argv[0] when this program's path is unknown. Throws std::system_error.
  ExecBootstrap(const char* env_name, const char* arg0);

  // The descriptor the child must keep open (in its close_fds_except list).
  int child_fd() const noexcept { return theirs_.get(); }

  // In the child: clears CLOEXEC of child_fd() and of `inherit`, then execs /proc/self/exe.
  // Returns only if the exec failed (errno says why). No allocation.
  void exec(std::span<const int> inherit) const noexcept;

  // In the parent, after the fork: closes its copy of the child's end.
  void forked() noexcept { theirs_.reset(); }

  // Sends the message: its length, then `msg` (already encoded), or `x` encoded. Throws
  // std::system_error (EPIPE when the child is gone).
  void send_bytes(std::span<const char> msg);
// GCC 12 reports a false -Wstringop-overflow in the vector growth of a small encoding,
// depending on the caller it is inlined into (process_spawn.cpp has another).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wstringop-overflow"
  template <class T>
  void send(const T& x) {
    Bytes msg;
    msg.reserve(256);
    WireOutputArchive ar(msg);
    ar(x);
    send_bytes(msg);
  }
#pragma GCC diagnostic pop

 private:
  ExecBootstrap(std::pair<UniqueFd, UniqueFd> ends, const char* env_name, const char* arg0);

  UniqueFd mine_, theirs_;
  ExecEnv env_;
  std::string path_;
  std::array<char*, 2> argv_;
};

// In the new program: nullopt when `env_name` is not in the environment; else the message on
// the descriptor it names. Removes the variable (the program's own children are ordinary
// programs) and closes the descriptor. Exits with code 2 and a line on stderr when the message
// is missing, truncated, longer than `max_size` or (the template) does not decode as T.
std::optional<Bytes> read_exec_bootstrap(const char* env_name, std::size_t max_size) noexcept;

[[noreturn]] void exec_bootstrap_corrupt(const char* env_name, const char* why) noexcept;

template <class T>
std::optional<T> read_exec_bootstrap(const char* env_name, std::size_t max_size) noexcept {
  std::optional<Bytes> msg = read_exec_bootstrap(env_name, max_size);
  if (!msg) return std::nullopt;
  try {
    return decode_exactly<T>(*msg, env_name);
  } catch (const std::exception& e) {
    exec_bootstrap_corrupt(env_name, e.what());
  }
}

}  // namespace mproc::detail
