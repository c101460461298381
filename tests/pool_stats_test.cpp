// pool.stats() and the worker hooks (PoolOptions::on_worker_start / on_worker_exit): counters
// exact after a scripted run of every outcome, per-worker rows, the hooks once per worker start
// and exit with the right cause; and the pure parts (percentiles, the printed block).
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <future>
#include <map>
#include <mproc/mproc.hpp>
#include <mproc/pool/detail/run_time_window.hpp>
#include <mutex>
#include <numeric>
#include <random>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "shared_counters.hpp"
#include "test_support.hpp"

using namespace std::chrono_literals;
using mproc::WorkerExitCause;
using mproc_test::eventually;
using mproc_test::scaled;

namespace {

int identity(int x) {
  return x;
}

int throw_runtime(int x) {
  throw std::runtime_error("task " + std::to_string(x) + " failed");
}

int die_by_sigkill(int) {
  ::raise(SIGKILL);
  return 0;
}

int sleep_ms(int ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  return ms;
}

// Sets flag `i` to 1 (started), then waits until the test sets it to 2 (at most 60 s).
int mark_then_wait(const std::string& flags, int i) {
  auto* f = mproc_test::SharedCounters::attach(flags, 8);
  f[i].store(1);
  const auto end = std::chrono::steady_clock::now() + 60s;
  while (f[i].load() != 2 && std::chrono::steady_clock::now() < end) {
    std::this_thread::sleep_for(1ms);
  }
  return i;
}

// Leaks and touches `mb` megabytes.
int leak_mb(int mb) {
  char* p = static_cast<char*>(std::malloc(static_cast<std::size_t>(mb) << 20));
  for (std::size_t i = 0; i < (static_cast<std::size_t>(mb) << 20); i += 4096) p[i] = 1;
  asm volatile("" : : "r"(p) : "memory");  // the optimiser must not drop the unused block
  return mb;
}

void init_throws() {
  throw std::runtime_error("no database");
}

std::size_t sleep_with_payload(const std::string& payload, int ms) {
  sleep_ms(ms);
  return payload.size();
}

// What the hooks saw, in the order they ran.
struct HookLog {
  std::mutex mu;
  std::vector<mproc::WorkerStarted> starts;
  std::vector<mproc::WorkerExited> exits;
  std::set<std::thread::id> threads;

  // Options for a pool of `processes` workers whose hooks record into this log.
  mproc::PoolOptions options(std::size_t processes) {
    mproc::PoolOptions o;
    o.processes = processes;
    attach(o);
    return o;
  }
  void attach(mproc::PoolOptions& o) {
    o.on_worker_start = [this](const mproc::WorkerStarted& w) {
      std::lock_guard lock(mu);
      starts.push_back(w);
      threads.insert(std::this_thread::get_id());
    };
    o.on_worker_exit = [this](const mproc::WorkerExited& w) {
      std::lock_guard lock(mu);
      exits.push_back(w);
      threads.insert(std::this_thread::get_id());
    };
  }
  std::size_t exits_by(WorkerExitCause c) {
    std::lock_guard lock(mu);
    return static_cast<std::size_t>(
        std::count_if(exits.begin(), exits.end(), [&](const auto& e) { return e.cause == c; }));
  }
  // Every worker started once and exited once, after its start, with the same index and name.
  void expect_each_started_and_exited_once() {
    std::lock_guard lock(mu);
    std::map<pid_t, const mproc::WorkerStarted*> started;
    for (const auto& s : starts) {
      EXPECT_GT(s.pid, 0);
      EXPECT_FALSE(s.name.empty());
      EXPECT_NE(s.name.find(std::to_string(s.index)), std::string::npos) << s.name;
      EXPECT_TRUE(started.emplace(s.pid, &s).second) << "started twice: " << s.pid;
    }
    std::set<pid_t> exited;
    for (const auto& e : exits) {
      EXPECT_TRUE(exited.insert(e.pid).second) << "exited twice: " << e.pid;
      const auto it = started.find(e.pid);
      ASSERT_NE(it, started.end()) << "exit without a start: " << e.pid;
      EXPECT_EQ(e.index, it->second->index);
      EXPECT_EQ(e.name, it->second->name);
    }
    EXPECT_EQ(exited.size(), started.size());
    EXPECT_EQ(threads.count(std::this_thread::get_id()), 0u) << "a hook ran on the caller";
  }
};

// Polls stats() until `pred` holds (bounded); returns the last snapshot.
template <class Pool, class Pred>
mproc::PoolStats stats_when(const Pool& pool, Pred pred, std::chrono::milliseconds limit) {
  mproc::PoolStats s;
  const bool ok = eventually(
      [&] {
        s = pool.stats();
        return pred(s);
      },
      limit);
  EXPECT_TRUE(ok) << "stats never got there; last:\n" << s;
  return s;
}

class PoolStatsTest : public mproc_test::LeakCheck {};

}  // namespace

// ---- the pure parts -----------------------------------------------------------------------

TEST(PoolStatsPercentiles, NearestRankOfOneToAHundred) {
  std::vector<std::uint64_t> v(100);
  std::iota(v.begin(), v.end(), 1);
  std::shuffle(v.begin(), v.end(), std::mt19937(7));
  const auto r = mproc::detail::run_time_percentiles(v);
  EXPECT_EQ(r.samples, 100u);
  EXPECT_EQ(r.p50.count(), 50);
  EXPECT_EQ(r.p90.count(), 90);
  EXPECT_EQ(r.p99.count(), 99);
}

TEST(PoolStatsPercentiles, RanksRoundUp) {
  std::vector<std::uint64_t> v{10, 20, 30, 40, 50, 60, 70, 80, 90, 100};
  EXPECT_EQ(mproc::detail::nearest_rank(v, 500), 50u);   // rank 5
  EXPECT_EQ(mproc::detail::nearest_rank(v, 900), 90u);   // rank 9
  EXPECT_EQ(mproc::detail::nearest_rank(v, 990), 100u);  // rank ceil(9.9) = 10
  EXPECT_EQ(mproc::detail::nearest_rank(v, 0), 10u);     // rank 1
  EXPECT_EQ(mproc::detail::nearest_rank(v, 1000), 100u);
}

TEST(PoolStatsPercentiles, OneSampleAndNone) {
  std::vector<std::uint64_t> one{42};
  const auto r = mproc::detail::run_time_percentiles(one);
  EXPECT_EQ(r.p50.count(), 42);
  EXPECT_EQ(r.p99.count(), 42);
  std::vector<std::uint64_t> none;
  const auto z = mproc::detail::run_time_percentiles(none);
  EXPECT_EQ(z.samples, 0u);
  EXPECT_EQ(z.p50.count(), 0);
  EXPECT_EQ(z.p99.count(), 0);
}

TEST(PoolStatsPercentiles, DuplicatesAndOutliers) {
  std::vector<std::uint64_t> v(1000, 5);
  for (int i = 0; i < 10; ++i) v[static_cast<std::size_t>(i) * 97] = 1'000'000;  // 1% slow
  const auto r = mproc::detail::run_time_percentiles(v);
  EXPECT_EQ(r.p50.count(), 5);
  EXPECT_EQ(r.p90.count(), 5);
  EXPECT_EQ(r.p99.count(), 5);  // rank 990: the 10 outliers are ranks 991..1000
  v[1] = 1'000'000;             // 11 outliers: rank 990 is one of them
  EXPECT_EQ(mproc::detail::run_time_percentiles(v).p99.count(), 1'000'000);
}

TEST(PoolStatsPercentiles, WindowKeepsTheLastThousandTwentyFour) {
  mproc::detail::RunTimeWindow w;
  EXPECT_EQ(w.size(), 0u);
  for (std::uint64_t i = 1; i <= 3000; ++i) w.add(i);
  EXPECT_EQ(w.size(), 1024u);
  auto s = w.samples();
  std::sort(s.begin(), s.end());
  ASSERT_EQ(s.size(), 1024u);
  EXPECT_EQ(s.front(), 3000u - 1023u);
  EXPECT_EQ(s.back(), 3000u);
}

TEST(PoolStatsPrint, AReadableBlock) {
  mproc::PoolStats s;
  s.processes = 2;
  s.tasks.queued = 1;
  s.tasks.running = 2;
  s.tasks.completed = 1520;
  s.tasks.failed.exception = 1;
  s.tasks.failed.timeout = 1;
  s.worker_counts.started = 4;
  s.worker_counts.exited_by_cause[static_cast<std::size_t>(WorkerExitCause::kTimeout)] = 1;
  s.worker_counts.exited_by_cause[static_cast<std::size_t>(WorkerExitCause::kCrash)] = 1;
  s.run_time = {1024, 1'210'000ns, 3'400'000ns, 10'100'000ns};
  mproc::PoolStats::Worker w;
  w.pid = 41071;
  w.index = 4;
  w.name = "ForkPoolWorker-4";
  w.tasks_done = 760;
  w.current_task_age = 2'040'000'000ns;
  w.rss_bytes = 12'900'000;
  s.workers.push_back(w);
  w.name = "ForkPoolWorker-5";
  w.current_task_age.reset();
  s.workers.push_back(w);
  std::ostringstream os;
  os << s;
  const std::string text = os.str();
  std::cout << text;
  EXPECT_NE(text.find("pool: 2 processes"), std::string::npos) << text;
  EXPECT_NE(text.find("1 queued, 2 running, 1520 completed, 2 failed"), std::string::npos) << text;
  EXPECT_NE(text.find("4 started, 2 exited (timeout 1, crash 1)"), std::string::npos) << text;
  EXPECT_NE(text.find("p50 1.21 ms, p90 3.4 ms, p99 10.1 ms"), std::string::npos) << text;
  EXPECT_NE(text.find("ForkPoolWorker-4"), std::string::npos) << text;
  EXPECT_NE(text.find("2.04 s"), std::string::npos) << text;
  EXPECT_NE(text.find("idle"), std::string::npos) << text;
  EXPECT_NE(text.find("12.3 MiB"), std::string::npos) << text;
  EXPECT_EQ(s.tasks.failed.total(), 2u);
  EXPECT_EQ(s.worker_counts.exited(), 2u);
  EXPECT_EQ(s.worker_counts.replaced(), 2u);
  EXPECT_STREQ(mproc::to_string(WorkerExitCause::kMaxTasks), "maxtasksperchild");
}

// ---- through real pools ---------------------------------------------------------------------

// Successes, exceptions, a crash, a timeout and a cancel: every counter exact, every worker's
// start and exit seen once by the hooks, with its cause.
TEST_F(PoolStatsTest, ScriptedRunCountsEveryOutcome) {
  HookLog hooks;
  mproc_test::SharedCounters flags(8);
  {
    mproc::Pool pool(hooks.options(2));
    for (int i = 0; i < 5; ++i) EXPECT_EQ(pool.apply(identity, i), i);
    for (int i = 0; i < 2; ++i) EXPECT_THROW(pool.apply(throw_runtime, i), std::runtime_error);
    EXPECT_THROW(pool.apply(die_by_sigkill, 0), mproc::WorkerLostError);
    EXPECT_THROW(pool.apply(sleep_ms, 60'000, mproc::with_timeout(scaled(300ms))),
                 mproc::TaskTimeoutError);
    auto running = pool.apply_async(mark_then_wait, flags.name(), 0);
    ASSERT_TRUE(eventually([&] { return flags[0].load() == 1; }, scaled(10s)));
    EXPECT_TRUE(running.cancel());
    EXPECT_THROW(running.get(scaled(5s)), mproc::CancelledError);

    // The cancel's kill and the replacements happen on the pool's own time: wait for them.
    const auto s = stats_when(
        pool,
        [](const mproc::PoolStats& s) {
          return s.tasks.failed.cancelled == 1 && s.worker_counts.started == 5 &&
                 s.workers.size() == 2;
        },
        scaled(10s));
    EXPECT_EQ(s.processes, 2u);
    EXPECT_EQ(s.tasks.queued, 0u);
    EXPECT_EQ(s.tasks.running, 0u);
    EXPECT_EQ(s.tasks.completed, 5u);
    EXPECT_EQ(s.tasks.failed.exception, 2u);
    EXPECT_EQ(s.tasks.failed.worker_lost, 1u);
    EXPECT_EQ(s.tasks.failed.timeout, 1u);
    EXPECT_EQ(s.tasks.failed.cancelled, 1u);
    EXPECT_EQ(s.tasks.failed.aborted, 0u);
    EXPECT_EQ(s.worker_counts.exited(WorkerExitCause::kCrash), 1u);
    EXPECT_EQ(s.worker_counts.exited(WorkerExitCause::kTimeout), 1u);
    EXPECT_EQ(s.worker_counts.exited(WorkerExitCause::kCancel), 1u);
    EXPECT_EQ(s.worker_counts.exited(), 3u);
    EXPECT_EQ(s.worker_counts.replaced(), 3u);
    EXPECT_EQ(s.run_time.samples, 7u);  // the tasks that answered: 5 values, 2 exceptions
    EXPECT_GT(s.run_time.p99.count(), 0);
    EXPECT_LE(s.run_time.p50, s.run_time.p90);
    EXPECT_LE(s.run_time.p90, s.run_time.p99);

    const auto pids = pool.worker_pids();
    std::set<pid_t> listed(pids.begin(), pids.end());
    std::set<pid_t> rows;
    for (const auto& w : s.workers) {
      rows.insert(w.pid);
      EXPECT_FALSE(w.current_task_age.has_value()) << w.name << " is idle";
      EXPECT_GT(w.rss_bytes, 0u) << w.name;
      EXPECT_FALSE(w.name.empty());
    }
    EXPECT_EQ(rows, listed);
    std::cout << s;

    pool.close();
    pool.join();
    const auto end = pool.stats();  // the final counts
    EXPECT_EQ(end.worker_counts.exited(WorkerExitCause::kClose), 2u);
    EXPECT_EQ(end.worker_counts.started, 5u);
    EXPECT_EQ(end.worker_counts.exited(), 5u);
    EXPECT_TRUE(end.workers.empty());
    EXPECT_EQ(end.tasks.completed, 5u);
  }
  // join() returned after every hook had run.
  EXPECT_EQ(hooks.starts.size(), 5u);
  EXPECT_EQ(hooks.exits.size(), 5u);
  EXPECT_EQ(hooks.exits_by(WorkerExitCause::kCrash), 1u);
  EXPECT_EQ(hooks.exits_by(WorkerExitCause::kTimeout), 1u);
  EXPECT_EQ(hooks.exits_by(WorkerExitCause::kCancel), 1u);
  EXPECT_EQ(hooks.exits_by(WorkerExitCause::kClose), 2u);
  hooks.expect_each_started_and_exited_once();
  std::uint64_t done = 0;
  for (const auto& e : hooks.exits) {
    done += e.tasks_done;
    switch (e.cause) {
      case WorkerExitCause::kCrash:
        EXPECT_EQ(e.signal, SIGKILL);
        EXPECT_EQ(e.exit_code, -1);
        break;
      case WorkerExitCause::kTimeout:
        EXPECT_EQ(e.signal, SIGTERM);  // sleep_ms does not handle SIGTERM
        break;
      case WorkerExitCause::kCancel:
        EXPECT_EQ(e.signal, SIGKILL);
        break;
      case WorkerExitCause::kClose:
        EXPECT_EQ(e.exit_code, 0);
        EXPECT_EQ(e.signal, 0);
        break;
      default:
        ADD_FAILURE() << "unexpected cause " << e.cause;
    }
  }
  EXPECT_EQ(done, 7u);  // every result received, from whichever worker
}

// Queued and running tasks, and a running task's age, while it runs; terminate() aborts them
// and is each worker's exit cause.
TEST_F(PoolStatsTest, RunningQueuedAgeAndTerminate) {
  HookLog hooks;
  mproc_test::SharedCounters flags(8);
  {
    mproc::Pool pool(hooks.options(2));
    std::vector<mproc::AsyncResult<int>> rs;
    rs.push_back(pool.apply_async(mark_then_wait, flags.name(), 0));
    rs.push_back(pool.apply_async(mark_then_wait, flags.name(), 1));
    ASSERT_TRUE(
        eventually([&] { return flags[0].load() == 1 && flags[1].load() == 1; }, scaled(10s)));
    for (int i = 0; i < 3; ++i) rs.push_back(pool.apply_async(identity, i));
    const auto s = stats_when(
        pool,
        [](const mproc::PoolStats& s) {
          return s.tasks.running == 2 && s.tasks.queued == 3 && s.workers.size() == 2;
        },
        scaled(10s));
    for (const auto& w : s.workers) {
      ASSERT_TRUE(w.current_task_age.has_value()) << w.name;
      EXPECT_GT(w.current_task_age->count(), 0);
      EXPECT_EQ(w.tasks_done, 0u);
    }
    // The age grows while the task runs.
    const auto before = *s.workers.front().current_task_age;
    stats_when(
        pool,
        [&](const mproc::PoolStats& t) {
          return t.workers.size() == 2 && t.workers.front().current_task_age &&
                 *t.workers.front().current_task_age > before + 20ms;
        },
        scaled(10s));

    pool.terminate();
    for (auto& r : rs) EXPECT_THROW(r.get(scaled(5s)), mproc::PoolStateError);
    const auto end = pool.stats();
    EXPECT_EQ(end.tasks.failed.aborted, 5u);
    EXPECT_EQ(end.tasks.failed.total(), 5u);
    EXPECT_EQ(end.tasks.completed, 0u);
    EXPECT_EQ(end.tasks.queued + end.tasks.running, 0u);
    EXPECT_EQ(end.worker_counts.started, 2u);
    EXPECT_EQ(end.worker_counts.exited(WorkerExitCause::kTerminate), 2u);
    EXPECT_EQ(end.worker_counts.replaced(), 0u);
    EXPECT_TRUE(end.workers.empty());
    // terminate() returned after the exit hooks ran.
    EXPECT_EQ(hooks.exits_by(WorkerExitCause::kTerminate), 2u);
  }
  EXPECT_EQ(hooks.starts.size(), 2u);
  EXPECT_EQ(hooks.exits.size(), 2u);
  hooks.expect_each_started_and_exited_once();
}

TEST_F(PoolStatsTest, MaxTasksPerChildRetirementsAreCounted) {
  HookLog hooks;
  auto o = hooks.options(1);
  o.maxtasksperchild = 2;
  {
    mproc::Pool pool(o);
    for (int i = 0; i < 6; ++i) EXPECT_EQ(pool.apply(identity, i), i);
    // Workers 1-3 ran two tasks each and retired; worker 4 waits for work.
    const auto s = stats_when(
        pool,
        [](const mproc::PoolStats& s) {
          return s.worker_counts.exited(WorkerExitCause::kMaxTasks) == 3 &&
                 s.worker_counts.started == 4 && s.workers.size() == 1;
        },
        scaled(10s));
    EXPECT_EQ(s.worker_counts.exited(), 3u);
    EXPECT_EQ(s.tasks.completed, 6u);
    EXPECT_EQ(s.run_time.samples, 6u);
    EXPECT_EQ(s.workers.front().tasks_done, 0u);
  }
  EXPECT_EQ(hooks.starts.size(), 4u);
  EXPECT_EQ(hooks.exits_by(WorkerExitCause::kMaxTasks), 3u);
  EXPECT_EQ(hooks.exits_by(WorkerExitCause::kClose), 1u);
  hooks.expect_each_started_and_exited_once();
  for (const auto& e : hooks.exits) {
    EXPECT_EQ(e.exit_code, 0);
    EXPECT_EQ(e.tasks_done, e.cause == WorkerExitCause::kMaxTasks ? 2u : 0u);
  }
}

TEST_F(PoolStatsTest, MemoryCapRetirementIsCounted) {
  HookLog hooks;
  auto o = hooks.options(1);
  o.max_memory_per_child = 48u << 20;
  {
    mproc::Pool pool(o);
    EXPECT_EQ(pool.apply(leak_mb, 64), 64);  // its peak RSS is then over 48 MiB
    const auto s = stats_when(
        pool,
        [](const mproc::PoolStats& s) {
          return s.worker_counts.exited(WorkerExitCause::kMemoryCap) == 1 &&
                 s.worker_counts.started == 2 && s.workers.size() == 1;
        },
        scaled(10s));
    EXPECT_EQ(s.worker_counts.exited(), 1u);
  }
  EXPECT_EQ(hooks.exits_by(WorkerExitCause::kMemoryCap), 1u);
  EXPECT_EQ(hooks.exits.size(), 2u);
  hooks.expect_each_started_and_exited_once();
}

TEST_F(PoolStatsTest, InitializerThatThrowsIsEachWorkersCause) {
  HookLog hooks;
  auto o = hooks.options(2);
  o.initializer(init_throws);
  {
    mproc::Pool pool(o);
    const auto s = stats_when(
        pool,
        [](const mproc::PoolStats& s) {
          return s.worker_counts.exited(WorkerExitCause::kInitializer) == 2;
        },
        scaled(10s));
    EXPECT_EQ(s.worker_counts.started, 2u);  // a broken pool starts no replacement
    EXPECT_TRUE(s.workers.empty());
    EXPECT_THROW(pool.apply(identity, 1), std::runtime_error);
  }
  EXPECT_EQ(hooks.exits_by(WorkerExitCause::kInitializer), 2u);
  hooks.expect_each_started_and_exited_once();
}

TEST_F(PoolStatsTest, HooksThatThrowAreLoggedAndThePoolGoesOn) {
  std::atomic<int> starts{0}, exits{0};
  mproc::PoolOptions o;
  o.processes = 2;
  o.on_worker_start = [&](const mproc::WorkerStarted&) {
    ++starts;
    throw std::runtime_error("hook failed");
  };
  o.on_worker_exit = [&](const mproc::WorkerExited&) {
    ++exits;
    throw 42;  // not even a std::exception
  };
  {
    mproc::Pool pool(o);
    EXPECT_THROW(pool.apply(die_by_sigkill, 0), mproc::WorkerLostError);
    EXPECT_EQ(pool.apply(identity, 3), 3);
    EXPECT_TRUE(eventually([&] { return starts.load() == 3; }, scaled(10s)));
  }
  EXPECT_EQ(starts.load(), 3);
  EXPECT_EQ(exits.load(), 3);
}

// A task frame too large for one write is sent over several: its time limit starts when the
// last byte is written (and stats() sees it running), not at its worker's next reply.
TEST_F(PoolStatsTest, LargeTaskFramesTimeLimitStartsWhenItIsWritten) {
  mproc::Pool pool(1);
  const std::string payload(8u << 20, 'x');
  const auto t0 = std::chrono::steady_clock::now();
  auto r =
      pool.apply_async(sleep_with_payload, payload, 30'000, mproc::with_timeout(scaled(500ms)));
  stats_when(
      pool,
      [](const mproc::PoolStats& s) {
        return s.tasks.running == 1 && s.workers.size() == 1 &&
               s.workers.front().current_task_age.has_value();
      },
      scaled(10s));
  EXPECT_THROW(r.get(scaled(15s)), mproc::TaskTimeoutError);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, scaled(15s));
}

TEST_F(PoolStatsTest, ThreadPoolCountsTasksAndThreads) {
  mproc::ThreadPool pool(2);
  EXPECT_EQ(pool.apply([] { return 1; }), 1);
  EXPECT_THROW(pool.apply([]() -> int { throw std::invalid_argument("bad"); }),
               std::invalid_argument);
  EXPECT_EQ(pool.map([](int x) { return x; }, std::vector<int>{1, 2, 3, 4}, 2).size(), 4u);

  std::promise<void> release;
  auto gate = release.get_future().share();
  std::atomic<int> entered{0};
  auto blocked = [gate, &entered] {
    ++entered;
    gate.wait();
    return 0;
  };
  auto a = pool.apply_async(blocked);
  auto b = pool.apply_async(blocked);
  ASSERT_TRUE(eventually([&] { return entered.load() == 2; }, scaled(10s)));
  auto queued = pool.apply_async([] { return 2; });
  auto s = pool.stats();
  EXPECT_EQ(s.processes, 2u);
  EXPECT_EQ(s.tasks.running, 2u);
  EXPECT_EQ(s.tasks.queued, 1u);
  EXPECT_EQ(s.tasks.completed, 3u);  // the apply and two map chunks
  EXPECT_EQ(s.tasks.failed.exception, 1u);
  EXPECT_EQ(s.worker_counts.started, 2u);
  ASSERT_EQ(s.workers.size(), 2u);
  std::set<pid_t> tids;
  for (const auto& w : s.workers) {
    EXPECT_GT(w.pid, 0);
    EXPECT_NE(w.pid, ::getpid());  // a thread's own id
    EXPECT_TRUE(w.current_task_age.has_value()) << w.name;
    EXPECT_EQ(w.rss_bytes, 0u);
    tids.insert(w.pid);
  }
  EXPECT_EQ(tids.size(), 2u);
  EXPECT_EQ(s.run_time.samples, 4u);

  pool.shutdown(false, /*cancel_futures=*/true);  // the queued one is cancelled
  release.set_value();
  EXPECT_THROW(queued.get(scaled(5s)), mproc::CancelledError);
  EXPECT_EQ(a.get(scaled(5s)), 0);
  EXPECT_EQ(b.get(scaled(5s)), 0);
  pool.join();
  s = pool.stats();
  EXPECT_EQ(s.tasks.completed, 5u);
  EXPECT_EQ(s.tasks.failed.cancelled, 1u);
  EXPECT_EQ(s.tasks.queued + s.tasks.running, 0u);
  EXPECT_TRUE(s.workers.empty());
}

TEST_F(PoolStatsTest, StatsFromManyThreadsAtOnce) {
  mproc::Pool pool(2);
  std::atomic<bool> stop{false};
  std::vector<std::thread> readers;
  std::atomic<std::uint64_t> calls{0};
  for (int i = 0; i < 3; ++i) {
    readers.emplace_back([&] {
      while (!stop.load()) {
        const auto s = pool.stats();
        EXPECT_LE(s.workers.size(), 2u);
        ++calls;
      }
    });
  }
  std::vector<int> in(2000);
  std::iota(in.begin(), in.end(), 0);
  EXPECT_EQ(pool.map(identity, in, 1), in);
  stop = true;
  for (auto& t : readers) t.join();
  EXPECT_GT(calls.load(), 0u);
  EXPECT_EQ(pool.stats().tasks.completed, 2000u);
  pool.terminate();
  EXPECT_EQ(pool.stats().tasks.completed, 2000u);  // after the I/O thread ended
}
