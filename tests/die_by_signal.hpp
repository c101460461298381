// die_by_signal: how a test task crashes its worker for real. Shared by gtest suites and the
// plain MPI programs under tests/mpi/, so it needs nothing but the C library.
#pragma once

#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

namespace mproc_test {

// Default disposition (a sanitizer runtime would otherwise catch SIGSEGV and turn it into
// exit(1)), and no core file.
[[noreturn]] inline void die_by_signal(int sig) {
  const rlimit no_core{0, 0};
  ::setrlimit(RLIMIT_CORE, &no_core);
  ::signal(sig, SIG_DFL);
  ::raise(sig);
  ::_exit(99);  // not reached
}

}  // namespace mproc_test
