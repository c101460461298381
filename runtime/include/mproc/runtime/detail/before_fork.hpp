// mproc/runtime/detail/before_fork.hpp — what every fork of the user's program does first.
// Internal (namespace detail).
//
// A child made by fork() inherits the program's unwritten stdio buffers; when it flushes them
// at exit, what the program printed before the fork appears again — once per worker when
// stdout is a pipe or a file (fully buffered), as in `./app | tee log`. So, as Python flushes
// sys.stdout and sys.stderr before each fork, mproc flushes every C stdio output stream (std::cout
// writes through them unless sync_with_stdio(false) was called) before it forks the program:
// for a pool's zygote, the fork server, and a Process.
//
// Thread safety: any thread (stdio locks each stream; the signal mask is per thread).
#pragma once

#include <signal.h>

#include <cstdio>

namespace mproc::detail {

inline void flush_stdio_before_fork() {
  std::fflush(nullptr);
}

// For mproc's own threads (a pool's I/O and callback threads): SIGINT is for the program's
// threads, which decide what Ctrl-C means; a handler run on ours could call into the pool it
// interrupted. It also closes a window: the zygote, forked from the I/O thread, starts with
// SIGINT blocked and ignores it before unblocking, so a Ctrl-C that arrives between its fork and
// that moment cannot kill it.
inline void block_sigint_in_this_thread() noexcept {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  ::pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

}  // namespace mproc::detail
