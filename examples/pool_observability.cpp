// What the pool is doing, seen from the parent (README "Observability"): worker start and exit
// hooks, a worker's log line in the parent's log, a remote traceback, a soft time limit, a hard
// one, a crash, a cancel, and pool.stats() at the end.
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <iostream>
#include <mproc/mproc.hpp>
#include <stdexcept>
#include <vector>

using namespace std::chrono_literals;

[[gnu::noinline]] int parse_digit(char c) {
  if (c < '0' || c > '9') throw std::invalid_argument(std::string("not a digit: ") + c);
  return c - '0';
}
[[gnu::noinline]] int parse_number(const std::string& s) {
  int n = 0;
  for (char c : s) n = n * 10 + parse_digit(c);
  return n;
}
[[gnu::noinline]] int load_record(std::string field) {
  return 1000 + parse_number(field);  // not a tail call: this frame stays on the stack
}

int work(int x) {
  if (x == 7) mproc::get_logger()->info("task {} says hello from its worker", x);
  return x * x;
}

int polite_slow_task(int) {  // checks its stop request, as a long task should
  for (;;) {
    mproc::this_task::throw_if_stop_requested();
    ::usleep(1000);
  }
}

int stubborn_slow_task(int) {  // never checks: killed at the hard limit
  for (;;) ::usleep(1000);
}

int crash(int) {
  std::raise(SIGSEGV);
  return 0;
}

int main(int argc, char** argv) {
  mproc::init(argc, argv);
  mproc::log_to_stderr(spdlog::level::info);  // workers' lines come here too
  mproc::PoolOptions o;
  o.processes = 2;
  o.on_worker_start = [](const mproc::WorkerStarted& w) {
    std::printf("hook: %s (pid %d) started\n", w.name.c_str(), static_cast<int>(w.pid));
  };
  o.on_worker_exit = [](const mproc::WorkerExited& w) {
    std::printf("hook: %s exited: %s after %llu tasks\n", w.name.c_str(), mproc::to_string(w.cause),
                static_cast<unsigned long long>(w.tasks_done));
  };
  mproc::Pool pool(o);

  long sum = 0;
  for (int y : pool.map(work, std::vector<int>{1, 2, 3, 4, 5, 6, 7, 8})) sum += y;
  std::printf("sum of squares: %ld\n", sum);

  try {
    pool.apply(load_record, std::string("12x4"));
  } catch (const std::invalid_argument& e) {
    std::cout << "remote error: " << e.what() << "\n" << mproc::remote_traceback(e);
  }
  try {
    pool.apply(polite_slow_task, 0, mproc::with_soft_timeout(100ms));
  } catch (const mproc::SoftTimeLimitExceeded& e) {
    std::printf("soft limit: %s\n", e.what());
  }
  try {
    pool.apply(stubborn_slow_task, 0, mproc::with_timeout(200ms));
  } catch (const mproc::TaskTimeoutError& e) {
    std::printf("hard limit: %s\n", e.what());
  }
  try {
    pool.apply(crash, 0);
  } catch (const mproc::WorkerLostError& e) {
    std::printf("crash: %s\n", e.what());
  }
  auto slow = pool.apply_async(stubborn_slow_task, 0);
  while (!slow.running()) ::usleep(1000);
  slow.cancel();
  try {
    slow.get();
  } catch (const mproc::CancelledError&) {
    std::printf("cancelled\n");
  }
  pool.close();
  pool.join();
  std::cout << std::flush;
  std::cout << pool.stats();  // after join(): every worker's exit is counted
  std::printf("done\n");
}
