// mproc/runtime/forkserver.hpp — the fork server behind the "forkserver" start method.
// Internal (namespace detail).
//
// mproc::init forks it at the top of main, while the program is still single threaded; later,
// each forkserver pool asks it for a zygote. Everything forked from it is a copy of the
// program as it was at init: no thread, no lock and no global set afterwards comes along.
// It dies with the program (PR_SET_PDEATHSIG) and has its children reaped (SIGCHLD ignored).
//
// Thread safety: forkserver_fork may be called from any thread (requests are serialised);
// start_forkserver only from init.
#pragma once

#include <sys/types.h>

#include <span>

namespace mproc::detail {

// What a child of the fork server runs with the request's bytes and descriptors (which it
// owns). Must not return.
using ForkServerChild = void (*)(std::span<const char> data, std::span<const int> fds);

// Forks the server; `child_main` is what its children run. Throws std::system_error.
void start_forkserver(ForkServerChild child_main);
bool forkserver_running() noexcept;
// The server's pid (a child of the program), or -1 when none runs.
pid_t forkserver_pid() noexcept;

// Asks the server to fork a child running child_main(data, fds); returns the child's pid.
// At most 4 descriptors and 4 KiB of data. Throws StartMethodError when no server runs,
// std::system_error when the fork fails or the server is gone.
pid_t forkserver_fork(std::span<const char> data, std::span<const int> fds);

}  // namespace mproc::detail
