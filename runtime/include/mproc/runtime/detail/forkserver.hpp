// mproc/runtime/detail/forkserver.hpp — the fork server behind the "forkserver" start method.
// Internal (namespace detail).
//
// mproc::init forks it at the top of main, while the program is still single threaded; later,
// each forkserver pool asks it for a zygote. Everything forked from it is a copy of the
// program as it was at init: no thread, no lock and no global set afterwards comes along.
// It dies with the program (PR_SET_PDEATHSIG) and has its children reaped (SIGCHLD ignored).
//
// A server that dies (OOM killer, kill -9) is replaced on the next request. The program is
// multi-threaded by then, so the replacement is not a fork of it but a fresh run of the program
// (fork + exec of /proc/self/exe) whose mproc::init becomes the server (enter_if_fork_server):
// like the original, it is the program as it was at init. It dies with the program through a
// pidfd it watches (PDEATHSIG would tie it to the thread that happened to start it).
//
// Thread safety: forkserver_fork may be called from any thread (requests are serialised);
// start_forkserver and enter_if_fork_server only from init.
#pragma once

#include <sys/types.h>

#include <span>

#include "mproc/errors.hpp"

namespace mproc::detail {

// The server died after it had taken a request: the request may be made again, once, with
// fresh descriptors (a child it had forked may still hold the old ones while it dies).
class ForkServerLost : public StartMethodError {
 public:
  using StartMethodError::StartMethodError;
};

// What a child of the fork server runs with the request's bytes and descriptors (which it
// owns). Must not return.
using ForkServerChild = void (*)(std::span<const char> data, std::span<const int> fds);

// Forks the server; `child_main` is what its children run. Throws std::system_error.
void start_forkserver(ForkServerChild child_main);
// In a program exec'd as a replacement server (MPROC_FORK_SERVER in its environment): serves
// with `child_main` and never returns. Otherwise returns at once.
void enter_if_fork_server(ForkServerChild child_main) noexcept;
bool forkserver_running() noexcept;
// The server's pid (a child of the program), or -1 when none runs.
pid_t forkserver_pid() noexcept;

// Asks the server to fork a child running child_main(data, fds); returns the child's pid.
// At most 4 descriptors and 4 KiB of data. A server found dead is replaced first. Throws
// StartMethodError when init was not called or a dead server cannot be replaced,
// ForkServerLost when the server died while serving this request, std::system_error when
// the fork fails.
pid_t forkserver_fork(std::span<const char> data, std::span<const int> fds);

}  // namespace mproc::detail
