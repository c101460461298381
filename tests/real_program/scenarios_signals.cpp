// Ctrl-C in a real program: the terminal sends SIGINT to the whole process group. A program
// that handles it keeps every helper process (zygote, fork server, workers, Manager server) and
// finishes the work in flight; one that does not dies at once and leaves nothing behind.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>

#include <mproc/manager.hpp>
#include <mproc/pool.hpp>

#include "scenario.hpp"

namespace {
volatile sig_atomic_t g_stop = 0;

int sleep_ms(int ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  return ms;
}

void wait_for_sigint() {
  while (!g_stop) ::pause();
}
}  // namespace

// The handler is installed after the Pool is made: the zygote must not depend on what the
// program's disposition was at that moment.
MPROC_SCENARIO(handled_sigint_keeps_the_pool) {
  mproc::Pool pool(2);
  ::signal(SIGINT, [](int) { g_stop = 1; });
  auto r = pool.apply_async(sleep_ms, 300);
  mproc_scenario::ready();
  wait_for_sigint();
  std::printf("got SIGINT\n");
  pool.close();
  pool.join();
  std::printf("result %d\n", r.get());
  return 0;
}

// And the pool still takes new work after the Ctrl-C, with the same workers.
MPROC_SCENARIO(handled_sigint_pool_still_works) {
  ::signal(SIGINT, [](int) { g_stop = 1; });
  mproc::Pool pool(2);
  for (int i = 0; i < 20; ++i) (void)pool.apply(sleep_ms, 1);  // both workers up and reported
  auto before = pool.worker_pids();
  std::sort(before.begin(), before.end());
  std::printf("workers %zu\n", before.size());
  mproc_scenario::ready();
  wait_for_sigint();
  int sum = 0;
  for (int i = 0; i < 20; ++i) sum += pool.apply(sleep_ms, 1);
  auto after = pool.worker_pids();
  std::sort(after.begin(), after.end());
  std::printf("sum %d same workers %d\n", sum, after == before ? 1 : 0);
  return 0;
}

MPROC_SCENARIO(handled_sigint_keeps_the_manager) {
  mproc::Manager m;
  auto d = m.dict<std::string, int>();
  d.set("k", 7);
  ::signal(SIGINT, [](int) { g_stop = 1; });
  mproc_scenario::ready();
  wait_for_sigint();
  std::printf("value %d\n", d.get("k"));
  return 0;
}

// No handler: the program dies of SIGINT, promptly, and takes every helper with it.
MPROC_SCENARIO(unhandled_sigint_ends_everything) {
  mproc::Manager m;
  mproc::Pool pool(2);
  auto r = pool.apply_async(sleep_ms, 60'000);
  mproc_scenario::ready();
  (void)r.get();
  std::printf("not reached\n");
  return 3;
}
