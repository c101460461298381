// Running out of descriptors (issue 15, items 6 and 8): a worker that must be replaced while the
// program has no descriptor left fails its task with WorkerLostError and the pool starts the
// replacement once descriptors are free again (it aborted the program); a pool that can start
// no worker at all breaks with a PoolStateError naming the cause; terminate() of a pool whose
// pidfds did not fit under RLIMIT_NOFILE is still fast (it took the 5 s shutdown deadline).
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

#include <mproc/pool.hpp>

#include "scenario.hpp"

namespace {
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

int sqr(int x) {
  return x * x;
}
int do_abort(int) {
  std::abort();
}

void limit_descriptors(rlim_t n) {
  rlimit l{n, n};
  if (::setrlimit(RLIMIT_NOFILE, &l) != 0) std::perror("setrlimit");
}

// Takes every free descriptor until release(): fills the table (as the program did),
// then lowers the soft limit below every descriptor number, so that one the pool closes
// meanwhile (a dead worker's socket and pidfd) cannot be taken again by its next attempt
// either: the test does not depend on who wins that race.
struct Exhausted {
  std::vector<int> fds;
  rlimit before{};
};
Exhausted exhaust_descriptors() {
  Exhausted e;
  ::getrlimit(RLIMIT_NOFILE, &e.before);
  e.fds.reserve(1024);  // no allocation once the table is full
  for (int fd; (fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0;) e.fds.push_back(fd);
  rlimit none = e.before;
  none.rlim_cur = 3;
  if (::setrlimit(RLIMIT_NOFILE, &none) != 0) std::perror("setrlimit");
  return e;
}

void release(Exhausted& e) {
  ::setrlimit(RLIMIT_NOFILE, &e.before);
  for (int fd : e.fds) ::close(fd);
  e.fds.clear();
}

// What a task's failure was, by type, as one line.
template <class F>
void report(const char* label, F&& f) {
  try {
    std::printf("%s ok %d\n", label, f());
  } catch (const mproc::WorkerLostError&) {
    std::printf("%s WorkerLostError\n", label);
  } catch (const mproc::PoolStateError& e) {
    std::printf("%s PoolStateError: %s\n", label, e.what());
  } catch (const std::exception& e) {
    std::printf("%s other: %s\n", label, e.what());
  }
  std::fflush(stdout);
}

bool wait_for_workers(const mproc::Pool& pool, std::size_t n, std::chrono::seconds limit) {
  const auto deadline = Clock::now() + limit;
  while (pool.worker_pids().size() < n) {
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(5ms);
  }
  return true;
}
}  // namespace

// The replacement cannot be started while descriptors are exhausted; it is once they are free.
MPROC_SCENARIO(emfile_replace_worker) {
  limit_descriptors(256);
  mproc::Pool pool(2);
  report("warm", [&] { return pool.apply(sqr, 2); });
  auto fds = exhaust_descriptors();
  report("abort", [&] { return pool.apply_async(do_abort, 0).get(10s); });
  report("during", [&] { return pool.apply_async(sqr, 3).get(10s); });  // the other worker
  release(fds);
  std::printf("workers back %s\n", wait_for_workers(pool, 2, 10s) ? "yes" : "no");
  report("after", [&] { return pool.apply_async(sqr, 4).get(10s); });
  return 0;
}

// With one worker, nobody is left to run tasks until the replacement starts.
MPROC_SCENARIO(emfile_replace_only_worker) {
  limit_descriptors(256);
  mproc::Pool pool(1);
  report("warm", [&] { return pool.apply(sqr, 2); });
  auto fds = exhaust_descriptors();
  report("abort", [&] { return pool.apply_async(do_abort, 0).get(10s); });
  auto pending = pool.apply_async(sqr, 5);  // waits for the replacement
  std::this_thread::sleep_for(300ms);       // a few failed attempts to start it
  release(fds);
  report("after", [&] { return pending.get(20s); });
  return 0;
}

// Descriptors never come back: the pool gives up and says why, rather than hanging.
MPROC_SCENARIO(emfile_no_worker_breaks_pool) {
  limit_descriptors(256);
  mproc::Pool pool(1);
  report("warm", [&] { return pool.apply(sqr, 2); });
  auto fds = exhaust_descriptors();
  report("abort", [&] { return pool.apply_async(do_abort, 0).get(10s); });
  report("pending", [&] { return pool.apply_async(sqr, 5).get(20s); });
  release(fds);
  report("later", [&] { return pool.apply_async(sqr, 6).get(10s); });
  return 0;
}

MPROC_SCENARIO(terminate_under_low_nofile) {
  limit_descriptors(64);
  mproc::Pool pool(40);
  std::vector<int> xs(200);
  for (int i = 0; i < 200; ++i) xs[static_cast<std::size_t>(i)] = i;
  const auto squares = pool.map(sqr, xs);
  std::printf("sum %lld\n", [&] {
    long long s = 0;
    for (int v : squares) s += v;
    return s;
  }());
  std::printf("workers %s\n", wait_for_workers(pool, 40, 10s) ? "40" : "fewer");
  const auto t0 = Clock::now();
  pool.terminate();
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0);
  std::printf("terminate ms %lld\n", static_cast<long long>(ms.count()));
  return 0;
}
