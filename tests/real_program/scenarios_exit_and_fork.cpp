// mproc objects in processes that did not make them: exit() in a task or a Process target runs
// the child's copies of static destructors, and a program's own fork() copies its pools. Such a
// copy must touch nothing shared (owner.hpp); using it is an error that names the owner.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include <mproc/manager.hpp>
#include <mproc/pool.hpp>
#include <mproc/process.hpp>
#include <mproc/thread_pool.hpp>

#include "scenario.hpp"

using namespace std::chrono_literals;

namespace {
int bye(int code) {
  std::exit(code);
}
int sqr(int x) {
  return x * x;
}
int do_abort(int) {
  std::abort();
}
int slow(int ms) {
  ::usleep(static_cast<useconds_t>(ms) * 1000);
  return ms;
}
void exit_from_process(int code) {
  std::exit(code);
}

// Statics made before any pool: every worker forked later holds copies of them.
mproc::Manager& static_manager() {
  static mproc::Manager m;
  return m;
}
mproc::ThreadPool& static_thread_pool() {
  static mproc::ThreadPool tp(2);
  return tp;
}

// Waits for a fork child, bounded; prints how it ended.
void reap(pid_t pid, const char* what) {
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  int status = 0;
  while (::waitpid(pid, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      std::printf("%s: hung\n", what);
      return;
    }
    ::usleep(1000);
  }
  std::printf("%s: exit %d\n", what, WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status));
}
}  // namespace

MPROC_SCENARIO(exit_in_task_with_static_manager_and_pools) {
  auto d = static_manager().dict<std::string, int>();
  d.set("k", 7);
  (void)static_thread_pool().apply(sqr, 2);
  static mproc::Pool static_pool(1);
  (void)static_pool.apply(sqr, 2);
  mproc::Pool pool(2);
  try {
    (void)pool.apply_async(bye, 3).get(20s);
    std::printf("no error\n");
  } catch (const mproc::WorkerLostError& e) {
    std::printf("WorkerLostError: %s\n", e.what());
  } catch (const std::exception& e) {
    std::printf("other error: %s\n", e.what());
  }
  std::printf("value %d\n", d.get("k"));
  std::printf("still works %d\n", pool.apply(sqr, 5));
  std::printf("static pool works %d\n", static_pool.apply(sqr, 6));
  return 0;
}

MPROC_SCENARIO(exit_in_process_with_static_manager) {
  auto d = static_manager().dict<std::string, int>();
  d.set("k", 8);
  static mproc::Pool static_pool(1);
  (void)static_pool.apply(sqr, 2);
  mproc::Process p(exit_from_process, 4);
  p.start();
  if (!p.join(20s)) std::printf("process hung\n");
  std::printf("exit code %d\n", p.exitcode().value_or(-100));
  std::printf("value %d\n", d.get("k"));
  std::printf("static pool works %d\n", static_pool.apply(sqr, 6));
  return 0;
}

// The program forks; the child destroys its copies; the parent's pool must be untouched (it
// still notices a crashed worker and terminates promptly).
MPROC_SCENARIO(pool_destroyed_in_fork_child) {
  auto pool = std::make_unique<mproc::Pool>(2);
  auto tp = std::make_unique<mproc::ThreadPool>(2);
  std::printf("warm %d %d\n", pool->apply(sqr, 2), tp->apply(sqr, 3));
  std::fflush(stdout);
  const pid_t child = ::fork();
  if (child == 0) {
    pool.reset();
    tp.reset();
    ::_exit(0);
  }
  reap(child, "child");
  try {
    (void)pool->apply_async(do_abort, 0).get(10s);
    std::printf("no error\n");
  } catch (const mproc::WorkerLostError&) {
    std::printf("crash noticed\n");
  } catch (const std::exception& e) {
    std::printf("other error: %s\n", e.what());
  }
  std::printf("after %d %d\n", pool->apply(sqr, 4), tp->apply(sqr, 5));
  const auto t0 = std::chrono::steady_clock::now();
  (void)pool->apply_async(sqr, 1);
  pool->terminate();
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0)
          .count();
  std::printf("terminate ms %lld\n", static_cast<long long>(ms));  // bound: owner_test.cpp
  return 0;
}

// The same with exit() in the child: static and automatic copies alike.
MPROC_SCENARIO(exit_in_fork_child_with_live_pool) {
  mproc::Pool pool(2);
  (void)pool.apply(sqr, 2);
  std::fflush(stdout);
  const pid_t child = ::fork();
  if (child == 0) std::exit(0);  // runs the child's static destructors; ~pool never runs here
  reap(child, "child");
  std::printf("after %d\n", pool.apply(sqr, 4));
  return 0;
}

// Using the parent's objects in a fork child: a clear error at once, never a hang.
MPROC_SCENARIO(pool_used_in_fork_child) {
  mproc::Pool pool(2);
  mproc::ThreadPool tp(2);
  (void)pool.apply(sqr, 2);
  mproc::Process p(exit_from_process, 0);
  p.start();
  auto pending = pool.apply_async(slow, 500);
  std::fflush(stdout);
  const pid_t child = ::fork();
  if (child == 0) {
    int errors = 0;
    const auto expect_error = [&](const char* what, auto&& call) {
      try {
        call();
        std::printf("child %s: no error\n", what);
      } catch (const std::exception& e) {
        const bool named =
            std::string(e.what()).find(std::to_string(::getppid())) != std::string::npos;
        std::printf("child %s: %s\n", what, named ? "names the owner" : e.what());
        ++errors;
      }
    };
    expect_error("pool.apply", [&] { (void)pool.apply(sqr, 5); });
    expect_error("pool.map", [&] { (void)pool.map(sqr, std::vector<int>{1, 2}); });
    expect_error("thread_pool.apply", [&] { (void)tp.apply(sqr, 5); });
    expect_error("process.join", [&] { p.join(); });
    expect_error("result.get", [&] { (void)pending.get(); });
    std::fflush(stdout);
    ::_exit(errors);
  }
  reap(child, "child");
  p.join();
  std::printf("parent %d %d %d\n", pool.apply(sqr, 3), tp.apply(sqr, 4), pending.get());
  return 0;
}

// A fork() child makes pools of its own while its parent goes on making pools: under
// forkserver each process must get its own fork server's replies (the child has a copy of the
// parent's socket to the server).
MPROC_SCENARIO(new_pools_in_fork_child_and_parent) {
  mproc::Pool pool(1);
  (void)pool.apply(sqr, 2);
  std::fflush(stdout);
  const pid_t child = ::fork();
  int sum = 0;
  for (int i = 0; i < 5; ++i) {
    mproc::Pool p(1);
    sum += p.apply(sqr, i + 1);
  }
  if (child == 0) {
    std::printf("child sum %d\n", sum);
    std::fflush(stdout);
    ::_exit(sum == 55 ? 0 : 1);
  }
  reap(child, "child");
  std::printf("parent sum %d %d\n", sum, pool.apply(sqr, 3));
  return 0;
}
