// Test helper: makes a pool, prints "zygote <pid>" and "worker <pid>" lines, then waits to be
// SIGKILLed by the test (pool_supervision_test checks that no child outlives it).
#include <mproc/mproc.hpp>

#include <unistd.h>

#include <cstdio>

int main(int argc, char** argv) {
  mproc::init(argc, argv);
  mproc::Pool pool(2);
  pool.apply([] { return 0; });
  while (pool.worker_pids().size() < 2) pool.apply([] { return 0; });
  std::printf("zygote %d\n", pool.zygote_pid());
  for (pid_t p : pool.worker_pids()) std::printf("worker %d\n", p);
  std::printf("ready\n");
  std::fflush(stdout);
  for (;;) ::pause();
}
