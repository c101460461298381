// mpi_test.cpp — mproc::Pool over MPI ranks: run by ctest as `mpirun --oversubscribe -n 3
// mpi_test` (rank 0 runs these tests, ranks 1 and 2 are the workers), and once without mpirun,
// where the MPI tests skip and the error for a program not started by mpirun is checked.
//
// Every test runs under a watchdog: a hang ends the job with a message naming the test (rank 0
// exits, and mpirun then stops the worker ranks).
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <mproc/mproc.hpp>
#include <numeric>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "die_by_signal.hpp"
#include "test_support.hpp"

namespace {

using namespace std::chrono_literals;
using mproc_test::Clock;
using mproc_test::Watchdog;

int square(int x) {
  return x * x;
}
int add(int a, int b) {
  return a + b;
}
pid_t where(int) {
  return ::getpid();
}
// The MPI rank whose local pool runs this worker (its environment comes from mpirun).
int rank_of_worker(int) {
  const char* r = std::getenv("OMPI_COMM_WORLD_RANK");
  return r != nullptr ? std::atoi(r) : -1;
}
int slow_square(int x) {
  std::this_thread::sleep_for(20ms);
  return x * x;
}
void sleep_ms(int ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
}
int throws_runtime(int x) {
  throw std::runtime_error("bad input " + std::to_string(x));
}
int throws_invalid(int) {
  throw std::invalid_argument("not a number");
}
int throws_mproc(int) {
  throw mproc::TimeoutError("an mproc error raised inside a task");
}
struct Custom {};
int throws_custom(int) {
  throw Custom{};
}

// The initializer's effect, per rank: which token it last ran with and how often.
int g_token = 0;
int g_init_runs = 0;
void remember(int token) {
  if (token != g_token) {
    g_token = token;
    g_init_runs = 0;
  }
  ++g_init_runs;
}
std::pair<int, int> init_state(int) {
  return {g_token, g_init_runs};
}
void failing_init() {
  throw std::runtime_error("initializer refused");
}

// Files shared by rank 0's test and the ranks' workers (one host under ctest): a task marks
// that it started, or waits for a mark, so no assertion depends on how long anything took.
std::string mark_path(const std::string& name) {
  return "/tmp/mproc_mpi_test_" + std::to_string(::getpid()) + "_" + name;
}
void make_mark(const std::string& path) {
  std::ofstream(path) << 'x';
}
bool wait_mark(const std::string& path, std::chrono::milliseconds limit) {
  const auto end = Clock::now() + limit;
  while (::access(path.c_str(), F_OK) != 0) {
    if (Clock::now() > end) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}
// A task that holds its worker until the test opens `gate` (at most 10 s).
void hold_until(std::string gate) {
  wait_mark(gate, 10s);
}
// The same, marking `started` first so the test knows a worker runs it.
void mark_then_hold(std::string started, std::string gate) {
  make_mark(started);
  wait_mark(gate, 10s);
}

class Mpi : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!mproc::mpi::active()) {
      GTEST_SKIP() << "not started by mpirun: ctest runs this binary as `mpirun --oversubscribe "
                      "-n 3 mpi_test` (test mpi_test); here only the no-mpirun checks run";
    }
    ASSERT_GE(mproc::mpi::world_size(), 3) << "these tests expect mpirun -n 3 (two worker ranks)";
    dog_ = std::make_unique<Watchdog>(
        mproc_test::seconds_ms(20 * mproc_test::kSlowdown),
        "MPI test " + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
  }
  void TearDown() override { dog_.reset(); }

 private:
  std::unique_ptr<Watchdog> dog_;
};

TEST(MpiWithoutMpirun, PoolSaysHowToStartTheProgram) {
  if (mproc::mpi::active()) GTEST_SKIP() << "running under mpirun";
  try {
    mproc::mpi::Pool pool;
    FAIL() << "an MPI pool outside mpirun must not be made";
  } catch (const mproc::StartMethodError& e) {
    EXPECT_NE(std::string(e.what()).find("mpirun"), std::string::npos) << e.what();
  }
  EXPECT_THROW(mproc::get_context("mpi").Pool(), mproc::StartMethodError);
  EXPECT_EQ(mproc::mpi::world_size(), 1);
}

TEST_F(Mpi, MapOfTenThousandIntsIsCorrectAndRunsOnTheRanks) {
  mproc::mpi::Pool pool;
  EXPECT_EQ(pool.processes(), static_cast<std::size_t>(mproc::mpi::world_size() - 1));
  EXPECT_TRUE(pool.worker_pids().empty());
  std::vector<int> in(10'000);
  std::iota(in.begin(), in.end(), 0);
  const std::vector<int> out = pool.map(square, in);
  ASSERT_EQ(out.size(), in.size());
  for (int i = 0; i < 10'000; ++i) ASSERT_EQ(out[static_cast<std::size_t>(i)], i * i);
  // Both ranks take work, in worker processes of their own (not this process).
  const std::vector<int> ranks = pool.map(rank_of_worker, std::vector<int>(64, 0), 1);
  EXPECT_EQ(std::set<int>(ranks.begin(), ranks.end()), (std::set<int>{1, 2}));
  const std::vector<pid_t> pids = pool.map(where, std::vector<int>(64, 0), 1);
  EXPECT_EQ(std::set<pid_t>(pids.begin(), pids.end()).count(::getpid()), 0u);
}

TEST_F(Mpi, ContextMpiGivesTheSamePoolType) {
  mproc::Pool pool = mproc::get_context("mpi").Pool();
  EXPECT_EQ(pool.apply(square, 12), 144);
  EXPECT_EQ(pool.map(square, std::vector<int>{1, 2, 3}), (std::vector<int>{1, 4, 9}));
}

TEST_F(Mpi, ApplyAndApplyAsyncWithCallbacks) {
  mproc::mpi::Pool pool;
  EXPECT_EQ(pool.apply(add, 2, 3), 5);
  std::atomic<int> got{0};
  std::atomic<int> errors{0};
  auto r = pool.apply_async(
      square, 9, mproc::callbacks([&](int v) { got = v; }, [&](std::exception_ptr) { ++errors; }));
  EXPECT_EQ(r.get(5s), 81);
  EXPECT_TRUE(r.successful());
  EXPECT_EQ(got.load(), 81);
  auto bad = pool.apply_async(throws_runtime, 1,
                              mproc::callbacks([&](int) {}, [&](std::exception_ptr) { ++errors; }));
  EXPECT_THROW(bad.get(5s), std::runtime_error);
  EXPECT_EQ(errors.load(), 1);
}

TEST_F(Mpi, ImapAndImapUnordered) {
  mproc::mpi::Pool pool;
  std::vector<int> ordered;
  for (int y : pool.imap(square, std::views::iota(0, 500))) ordered.push_back(y);
  ASSERT_EQ(ordered.size(), 500u);
  for (int i = 0; i < 500; ++i) EXPECT_EQ(ordered[static_cast<std::size_t>(i)], i * i);
  std::multiset<int> unordered;
  for (int y : pool.imap_unordered(slow_square, std::views::iota(0, 20), 2)) unordered.insert(y);
  std::multiset<int> want;
  for (int i = 0; i < 20; ++i) want.insert(i * i);
  EXPECT_EQ(unordered, want);
}

TEST_F(Mpi, StarmapAndChunksizes) {
  mproc::mpi::Pool pool;
  std::vector<std::tuple<int, int>> pairs;
  for (int i = 0; i < 300; ++i) pairs.emplace_back(i, 2 * i);
  const std::vector<int> sums = pool.starmap(add, pairs);
  for (int i = 0; i < 300; ++i) ASSERT_EQ(sums[static_cast<std::size_t>(i)], 3 * i);
  std::vector<int> in(1000);
  std::iota(in.begin(), in.end(), -500);
  for (std::size_t chunksize : {1u, 7u, 999u, 1000u, 5000u}) {
    const std::vector<int> out = pool.map(square, in, chunksize);
    for (std::size_t i = 0; i < in.size(); ++i) ASSERT_EQ(out[i], in[i] * in[i]) << chunksize;
  }
  EXPECT_TRUE(pool.map(square, std::vector<int>{}).empty());
}

TEST_F(Mpi, TaskExceptionsComeBackTyped) {
  mproc::mpi::Pool pool;
  try {
    pool.apply(throws_runtime, 7);
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "bad input 7");
  }
  EXPECT_THROW(pool.apply(throws_invalid, 0), std::invalid_argument);
  EXPECT_THROW(pool.apply(throws_mproc, 0), mproc::TimeoutError);
  try {
    pool.apply(throws_custom, 0);
    FAIL();
  } catch (const mproc::RemoteError& e) {
    EXPECT_NE(e.type_name().find("Custom"), std::string::npos) << e.type_name();
  }
  EXPECT_THROW(pool.map(throws_runtime, std::vector<int>{1, 2, 3}), std::runtime_error);
  EXPECT_EQ(pool.apply(square, 3), 9);  // the ranks are fine
}

TEST_F(Mpi, InitializerRunsOncePerRank) {
  const int token = 1000 + static_cast<int>(::getpid() % 1000);
  mproc::PoolOptions o;
  o.initializer(remember, token);
  mproc::mpi::Pool pool(o);
  const auto states = pool.map(init_state, std::vector<int>(200, 0), 1);
  for (const auto& [t, runs] : states) {
    EXPECT_EQ(t, token);
    EXPECT_EQ(runs, 1);
  }
}

TEST_F(Mpi, InitializerThatThrowsBreaksThePool) {
  mproc::PoolOptions o;
  o.initializer(failing_init);
  mproc::mpi::Pool pool(o);
  EXPECT_THROW(pool.apply(square, 2), std::runtime_error);
  pool.terminate();
  mproc::mpi::Pool next;  // the ranks serve the next pool
  EXPECT_EQ(next.apply(square, 4), 16);
}

TEST_F(Mpi, CloseJoinFinishesEverything) {
  mproc::mpi::Pool pool;
  std::vector<mproc::AsyncResult<int>> rs;
  for (int i = 0; i < 50; ++i) rs.push_back(pool.apply_async(square, i));
  pool.close();
  EXPECT_THROW(pool.apply_async(square, 1), mproc::PoolStateError);
  pool.join();
  for (int i = 0; i < 50; ++i) {
    ASSERT_TRUE(rs[static_cast<std::size_t>(i)].ready());
    EXPECT_EQ(rs[static_cast<std::size_t>(i)].get(), i * i);
  }
}

TEST_F(Mpi, TerminateFailsUnfinishedWorkAtOnce) {
  const std::string gate = mark_path("terminate_gate");  // never opened: no task ends by itself
  ::unlink(gate.c_str());
  std::vector<mproc::AsyncResult<void>> rs;
  Clock::time_point t0;
  {
    mproc::mpi::Pool pool;
    for (int i = 0; i < 40; ++i) rs.push_back(pool.apply_async(hold_until, gate));
    t0 = Clock::now();
    pool.terminate();
  }
  EXPECT_LT(Clock::now() - t0, mproc_test::scaled(1s));
  int failed = 0;
  for (auto& r : rs) {
    ASSERT_TRUE(r.ready());
    try {
      r.get();
    } catch (const mproc::PoolStateError&) {
      ++failed;
    }
  }
  EXPECT_GE(failed, 30);
  mproc::mpi::Pool next;  // the ranks killed the workers that held tasks, then serve this one
  EXPECT_EQ(next.apply(square, 5), 25);
}

TEST_F(Mpi, TaskTimeoutIsATaskTimeoutErrorNotAHang) {
  mproc::mpi::Pool pool;
  const auto t0 = Clock::now();
  auto slow = pool.apply_async(sleep_ms, 1500, mproc::with_timeout(200ms));
  try {
    slow.get(5s);
    FAIL() << "the task should have timed out";
  } catch (const mproc::TaskTimeoutError& e) {
    EXPECT_NE(std::string(e.what()).find("MPI rank"), std::string::npos) << e.what();
  }
  EXPECT_LT(Clock::now() - t0, mproc_test::scaled(1s));
  // The other rank keeps working meanwhile.
  EXPECT_EQ(pool.map(square, std::vector<int>{1, 2, 3, 4}), (std::vector<int>{1, 4, 9, 16}));
}

TEST_F(Mpi, StatsCountTasksAndRanks) {
  mproc::mpi::Pool pool;
  for (int i = 0; i < 3; ++i) EXPECT_EQ(pool.apply(square, i), i * i);
  EXPECT_THROW(pool.apply(throws_runtime, 1), std::runtime_error);
  auto slow = pool.apply_async(sleep_ms, 1500, mproc::with_timeout(200ms));
  EXPECT_THROW(slow.get(5s), mproc::TaskTimeoutError);
  const mproc::PoolStats s = pool.stats();
  EXPECT_EQ(s.processes, 2u);
  EXPECT_EQ(s.tasks.completed, 3u);
  EXPECT_EQ(s.tasks.failed.exception, 1u);
  EXPECT_EQ(s.tasks.failed.timeout, 1u);
  EXPECT_EQ(s.tasks.failed.total(), 2u);
  EXPECT_EQ(s.tasks.queued + s.tasks.running, 0u);
  EXPECT_EQ(s.worker_counts.started, 2u);
  EXPECT_EQ(s.worker_counts.exited(), 0u);
  EXPECT_EQ(s.run_time.samples, 4u);  // the timed-out task has no run time of its own
  ASSERT_EQ(s.workers.size(), 2u);
  std::uint64_t done = 0;
  for (std::size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(s.workers[i].pid, 0);  // ranks may live on other hosts
    EXPECT_EQ(s.workers[i].index, i + 1);
    done += s.workers[i].tasks_done;
  }
  EXPECT_EQ(done, 5u);  // every task a rank answered, the one its pool timed out included
}

TEST_F(Mpi, SecondPoolWhileTheFirstIsAliveIsRefused) {
  mproc::mpi::Pool pool;
  EXPECT_THROW(mproc::mpi::Pool(), mproc::PoolStateError);
  EXPECT_THROW(mproc::mpi::Pool(5), mproc::StartMethodError);  // more than the ranks
  EXPECT_EQ(pool.apply(square, 6), 36);
}

TEST_F(Mpi, ResultsFromSeveralCallerThreads) {
  mproc::mpi::Pool pool;
  std::vector<std::thread> callers;
  std::atomic<int> wrong{0};
  for (int t = 0; t < 4; ++t) {
    callers.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) {
        const int x = t * 1000 + i;
        if (pool.apply(square, x) != x * x) ++wrong;
      }
      const auto v = pool.map(square, std::vector<int>(100, t));
      for (int y : v)
        if (y != t * t) ++wrong;
    });
  }
  for (auto& c : callers) c.join();
  EXPECT_EQ(wrong.load(), 0);
}

TEST_F(Mpi, CancelQueuedWork) {
  mproc::mpi::Pool pool(1);
  auto busy = pool.apply_async(sleep_ms, 200);
  std::vector<mproc::AsyncResult<int>> queued;
  for (int i = 0; i < 20; ++i) queued.push_back(pool.apply_async(square, i));
  queued.back().cancel();
  EXPECT_THROW(queued.back().get(5s), mproc::CancelledError);
  busy.get(5s);
  for (int i = 0; i < 19; ++i) EXPECT_EQ(queued[static_cast<std::size_t>(i)].get(5s), i * i);
}

TEST_F(Mpi, ShutdownCancelFuturesCancelsWhatNoRankStarted) {
  const std::string started = mark_path("shutdown_started"), gate = mark_path("shutdown_gate");
  ::unlink(started.c_str());
  ::unlink(gate.c_str());
  mproc::mpi::Pool pool(1, 1);  // one worker: while `busy` holds it, the queue cannot drain
  auto busy = pool.submit(mark_then_hold, started, gate);
  ASSERT_TRUE(wait_mark(started, 10s)) << "the busy task never started";  // it runs to the end
  std::vector<mproc::AsyncResult<int>> queued;
  for (int i = 0; i < 200; ++i) queued.push_back(pool.submit(square, i));
  // `busy` ends once shutdown has cancelled the queue (its last task never left rank 0).
  std::thread opener([&] {
    const auto end = Clock::now() + 10s;
    while (!queued.back().cancelled() && Clock::now() < end) std::this_thread::sleep_for(1ms);
    make_mark(gate);
  });
  pool.shutdown(/*wait=*/true, /*cancel_futures=*/true);
  opener.join();
  ::unlink(started.c_str());
  ::unlink(gate.c_str());
  EXPECT_NO_THROW(busy.get(5s));
  int cancelled = 0;
  for (std::size_t i = 0; i < queued.size(); ++i) {
    ASSERT_TRUE(queued[i].ready());
    if (queued[i].cancelled()) {
      ++cancelled;
      EXPECT_THROW(queued[i].get(), mproc::CancelledError);
    } else {
      EXPECT_EQ(queued[i].get(), static_cast<int>(i * i));
    }
  }
  EXPECT_GT(cancelled, 0);
}

}  // namespace

namespace {

bool mpi_pool_possible_here(int) {
  return mproc::mpi::active();
}

TEST_F(Mpi, LocalPoolsStillWorkOnRankZero) {
  mproc::mpi::Pool ranks;
  mproc::Pool local(2);  // forked workers of rank 0 next to the ranks; they never touch MPI
  EXPECT_EQ(local.map(square, std::vector<int>{1, 2, 3}), (std::vector<int>{1, 4, 9}));
  EXPECT_EQ(ranks.map(square, std::vector<int>{4, 5}), (std::vector<int>{16, 25}));
  const auto pids = local.map(where, std::vector<int>(8, 0), 1);
  for (pid_t p : pids) EXPECT_NE(p, ::getpid());
  // Only rank 0 itself may drive MPI: not its forked workers, not the worker ranks.
  EXPECT_FALSE(local.apply(mpi_pool_possible_here, 0));
  EXPECT_FALSE(ranks.apply(mpi_pool_possible_here, 0));
}

}  // namespace

namespace {

std::vector<char> echo(std::vector<char> v) {
  return v;
}

TEST_F(Mpi, LargePayloadsCrossIntact) {
  mproc::mpi::Pool pool;
  std::vector<char> big(8 << 20);
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 131 + 7);
  std::vector<mproc::AsyncResult<std::vector<char>>> rs;
  for (int i = 0; i < 4; ++i) rs.push_back(pool.apply_async(echo, big));
  for (auto& r : rs) EXPECT_TRUE(r.get(10s) == big);
}

}  // namespace

namespace {

TEST_F(Mpi, PoolEndedBeforeItsInitFramesLeftDoesNotStrandTheRanks) {
  for (int i = 0; i < 20; ++i) {
    mproc::PoolOptions o;
    o.initializer(remember, i);
    mproc::mpi::Pool pool(o);
    pool.terminate();  // possibly before the I/O thread sent anything
  }
  mproc::mpi::Pool next;
  EXPECT_EQ(next.map(square, std::vector<int>{2, 3}), (std::vector<int>{4, 9}));
}

}  // namespace

// ---- crash isolation: each rank runs its tasks in a local pool ----------------------------------

namespace {

int crash(int x) {
  if (x >= 0) mproc_test::die_by_signal(SIGSEGV);
  return x;
}
int crash_some(int x) {  // the inputs the test marks negative crash their worker
  if (x < 0) std::raise(SIGKILL);
  return x * 2;
}
int never_ends(int) {
  for (;;) std::this_thread::sleep_for(1s);
}

// Marks `me`, then waits for `other`: both return true only if they ran at the same time.
bool meet(std::string me, std::string other) {
  make_mark(me);
  return wait_mark(other, 10s);
}
int mark_then_sleep(std::string path) {
  make_mark(path);
  for (;;) std::this_thread::sleep_for(1s);
}
// Crashes its worker the first time it runs (no mark yet), returns the second time.
int crash_once(std::string path) {
  if (::access(path.c_str(), F_OK) != 0) {
    make_mark(path);
    std::raise(SIGKILL);
  }
  return 7;
}

TEST_F(Mpi, SegfaultOnARankIsAWorkerLostErrorNamingTheRankAndTheRankGoesOn) {
  mproc::mpi::Pool pool(2, 1);
  try {
    pool.apply(crash, 1);
    FAIL() << "the task should have crashed its worker";
  } catch (const mproc::WorkerLostError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("MPI rank"), std::string::npos) << what;
    EXPECT_NE(what.find("on host"), std::string::npos) << what;
    EXPECT_NE(what.find("SIGSEGV"), std::string::npos) << what;
  }
  // Both ranks still serve, the one that lost a worker included.
  const std::vector<int> ranks = pool.map(rank_of_worker, std::vector<int>(64, 0), 1);
  EXPECT_EQ(std::set<int>(ranks.begin(), ranks.end()), (std::set<int>{1, 2}));
  EXPECT_EQ(pool.apply(square, 9), 81);
}

TEST_F(Mpi, AThousandTasksWithFivePercentCrashingLoseOnlyThose) {
  mproc::mpi::Pool pool(2, 2);
  std::mt19937 rng(static_cast<unsigned>(::getpid()));
  std::vector<int> in(1000);
  std::size_t crashing = 0;
  for (int i = 0; i < 1000; ++i) {
    const bool c = rng() % 100 < 5;
    crashing += c;
    in[static_cast<std::size_t>(i)] = c ? -1 - i : i;
  }
  std::vector<mproc::AsyncResult<int>> rs;
  for (int x : in) rs.push_back(pool.apply_async(crash_some, x));
  std::size_t lost = 0, innocent_lost = 0;
  for (std::size_t i = 0; i < in.size(); ++i) {
    if (in[i] < 0) {
      EXPECT_THROW(rs[i].get(10s), mproc::WorkerLostError) << "input " << in[i];
      ++lost;
      continue;
    }
    try {
      EXPECT_EQ(rs[i].get(10s), in[i] * 2);
    } catch (const mproc::WorkerLostError& e) {
      // As in a local pool: it ran (once) on a worker that died before its batched reply left.
      EXPECT_NE(std::string(e.what()).find("before sending its result"), std::string::npos)
          << "task " << i << ": " << e.what();
      ++innocent_lost;
    }
  }
  EXPECT_EQ(lost, crashing);
  const mproc::PoolStats s = pool.stats();
  EXPECT_EQ(s.tasks.failed.worker_lost, crashing + innocent_lost);
  EXPECT_EQ(s.tasks.completed, 1000 - crashing - innocent_lost);
  std::printf("[info] %zu tasks crashed their workers; %zu others finished unsent\n", crashing,
              innocent_lost);
  EXPECT_EQ(pool.map(square, std::vector<int>{1, 2, 3}), (std::vector<int>{1, 4, 9}));
}

TEST_F(Mpi, MaxtasksperchildAppliesOnRanks) {
  mproc::PoolOptions o;
  o.maxtasksperchild = 1;
  mproc::mpi::Pool pool(o, 1);
  const std::vector<pid_t> pids = pool.map(where, std::vector<int>(12, 0), 1);
  EXPECT_EQ(std::set<pid_t>(pids.begin(), pids.end()).size(), pids.size())
      << "each worker ran one task, so every task ran in a new process";
}

TEST_F(Mpi, MaxRetriesRerunsACrashedTaskOnTheRank) {
  const std::string path = mark_path("retry");
  ::unlink(path.c_str());
  mproc::PoolOptions o;
  o.max_retries = 1;
  mproc::mpi::Pool pool(o, 1);
  EXPECT_EQ(pool.apply(crash_once, path), 7);
  ::unlink(path.c_str());
}

TEST_F(Mpi, TaskOverItsLimitIsKilledOnItsHost) {
  mproc::PoolOptions o;
  o.task_timeout = 300ms;
  mproc::mpi::Pool pool(o, 1);
  try {
    pool.apply(never_ends, 0);
    FAIL() << "the task should have timed out";
  } catch (const mproc::TaskTimeoutError& e) {
    EXPECT_NE(std::string(e.what()).find("MPI rank"), std::string::npos) << e.what();
  }
  // Its worker was killed and replaced: the rank's one worker is free again.
  EXPECT_EQ(pool.map(square, std::vector<int>(10, 3)), std::vector<int>(10, 9));
}

TEST_F(Mpi, CancelOfARunningTaskKillsItsWorkerOnTheRank) {
  const std::string started = mark_path("cancel");
  ::unlink(started.c_str());
  mproc::mpi::Pool pool(1, 1);  // one rank, one worker: the next task needs that worker back
  auto r = pool.apply_async(mark_then_sleep, started);
  ASSERT_TRUE(wait_mark(started, 10s)) << "the task never started";
  EXPECT_TRUE(r.cancel());
  EXPECT_THROW(r.get(1s), mproc::CancelledError);
  EXPECT_EQ(pool.apply(square, 5), 25);  // within the watchdog: the endless task was killed
  ::unlink(started.c_str());
}

TEST_F(Mpi, TwoWorkersPerRankRunTwoTasksAtOnce) {
  const std::string a = mark_path("meet_a"), b = mark_path("meet_b");
  ::unlink(a.c_str());
  ::unlink(b.c_str());
  mproc::mpi::Pool pool(1, 2);
  auto first = pool.apply_async(meet, a, b);
  auto second = pool.apply_async(meet, b, a);
  EXPECT_TRUE(first.get(15s)) << "the second task did not start while the first ran";
  EXPECT_TRUE(second.get(15s));
  const std::vector<int> ranks = pool.map(rank_of_worker, std::vector<int>(8, 0), 1);
  EXPECT_EQ(std::set<int>(ranks.begin(), ranks.end()), std::set<int>{1});
  ::unlink(a.c_str());
  ::unlink(b.c_str());
}

}  // namespace
