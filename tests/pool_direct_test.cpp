// Direct calls: a blocking apply() that finds a worker idle writes its task to that worker
// itself and takes the reply from the worker's mailbox (direct_lane.hpp). Everything a queued
// call guarantees holds: every result, every error with its type, a worker dying mid-call fails
// exactly that call, an idle worker dying fails nothing, replies too large for the mailbox
// arrive whole, terminate() ends a waiting call, queued work and direct calls mix, and stats()
// counts each call once. Every wait is bounded.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <fstream>
#include <mproc/mproc.hpp>
#include <numeric>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "die_by_signal.hpp"
#include "test_support.hpp"

using namespace std::chrono_literals;
using mproc_test::eventually;
using mproc_test::with_deadline;

namespace {

int square(int x) {
  return x * x;
}

std::string text_of(std::size_t n, char c) {
  return std::string(n, c);
}

int throws_invalid(int x) {
  throw std::invalid_argument("bad argument " + std::to_string(x));
}

// Kills its worker: by SIGSEGV (how == 0) or _exit(5).
int die(int how) {
  if (how == 0) mproc_test::die_by_signal(SIGSEGV);
  ::_exit(5);
}

// Says it started (a file: workers of every start method see it), then waits for the gate.
int started_then_gated(std::string path) {
  std::ofstream(path + ".started") << 'x';
  return mproc_test::gated(std::move(path), 7);
}

std::uint64_t tasks_done_by_workers(const mproc::PoolStats& s) {
  std::uint64_t n = 0;
  for (const auto& w : s.workers) n += w.tasks_done;
  return n;
}

}  // namespace

class PoolDirect : public mproc_test::LeakCheckWithParam<std::size_t> {
 protected:
  std::size_t n() const { return GetParam(); }

  // Until an apply has gone the direct way (the workers are up and idle); false if none did.
  // A worker serves tasks before the zygote's report of its pid reaches the pool (forkserver,
  // spawn), so worker_pids() can lag the work: tests that kill or name workers wait for all.
  bool all_pids_known(mproc::Pool& pool) const {
    return eventually([&] { return pool.worker_pids().size() == n(); }, mproc_test::scaled(5000ms));
  }
  bool warmed_up(mproc::Pool& pool) const {
    return eventually(
               [&] {
                 EXPECT_EQ(pool.apply(square, 3), 9);
                 return pool.stats().tasks.direct > 0;
               },
               mproc_test::scaled(5000ms)) &&
           all_pids_known(pool);
  }
};

INSTANTIATE_TEST_SUITE_P(Workers, PoolDirect, ::testing::Values(1, 2, 4),
                         mproc_test::WorkersName{});

TEST_P(PoolDirect, SequentialAppliesGetEveryResultAndAreCountedOnce) {
  mproc::Pool pool(n());
  ASSERT_TRUE(warmed_up(pool)) << "no apply took the direct path";
  const auto before = pool.stats();
  const std::uint64_t done_before = before.tasks.completed;
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(pool.apply(square, i), i * i) << i;
  const auto s = pool.stats();
  EXPECT_EQ(s.tasks.completed, done_before + 1000);
  EXPECT_GT(s.tasks.direct, before.tasks.direct) << s;
  EXPECT_EQ(s.tasks.failed.total(), 0u) << s;
  EXPECT_EQ(tasks_done_by_workers(s), s.tasks.completed) << s;
  EXPECT_EQ(s.tasks.running, 0u);
}

TEST_P(PoolDirect, AppliesFromManyThreadsAtOnceAllComplete) {
  mproc::Pool pool(n());
  constexpr int kThreads = 4;
  constexpr int kEach = 300;
  std::vector<std::thread> callers;
  std::atomic<int> wrong{0};
  for (int t = 0; t < kThreads; ++t) {
    callers.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        const int x = t * kEach + i;
        if (pool.apply(square, x) != x * x) wrong.fetch_add(1);
      }
    });
  }
  for (auto& c : callers) c.join();
  EXPECT_EQ(wrong.load(), 0);
  const auto s = pool.stats();
  EXPECT_EQ(s.tasks.completed, static_cast<std::uint64_t>(kThreads * kEach)) << s;
  EXPECT_EQ(tasks_done_by_workers(s), s.tasks.completed) << s;
}

TEST_P(PoolDirect, RepliesAroundAndFarAboveTheMailboxSizeArriveWhole) {
  mproc::Pool pool(n());
  ASSERT_TRUE(warmed_up(pool));
  const std::uint64_t direct_before = pool.stats().tasks.direct;
  // The mailbox holds 8168 bytes of reply frame: a 24-byte header, an 8-byte length, the text.
  const std::size_t edge = 8192 - 24 - 24 - 8;
  std::size_t calls = 0;
  for (std::size_t size : {std::size_t{0}, std::size_t{100}, edge - 1, edge, edge + 1,
                           std::size_t{9000}, std::size_t{100000}, std::size_t{3} << 20}) {
    const char c = static_cast<char>('a' + size % 26);
    const std::string got = pool.apply(text_of, size, c);
    ASSERT_EQ(got.size(), size);
    EXPECT_EQ(got, std::string(size, c)) << size;
    ++calls;
  }
  const auto s = pool.stats();
  EXPECT_GT(s.tasks.direct, direct_before) << s;
  EXPECT_EQ(s.tasks.failed.total(), 0u) << s;
}

TEST_P(PoolDirect, AnExceptionKeepsItsTypeAndThePoolGoesOn) {
  mproc::Pool pool(n());
  ASSERT_TRUE(warmed_up(pool));
  for (int i = 0; i < 20; ++i) {
    try {
      pool.apply(throws_invalid, i);
      FAIL() << "no exception";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find("bad argument " + std::to_string(i)), std::string::npos)
          << e.what();
    }
    EXPECT_EQ(pool.apply(square, i), i * i);
  }
  const auto s = pool.stats();
  EXPECT_EQ(s.tasks.failed.exception, 20u) << s;
}

TEST_P(PoolDirect, AWorkerDyingInACallFailsThatCallAloneAndIsReplaced) {
  mproc::Pool pool(n());
  ASSERT_TRUE(warmed_up(pool));
  for (int how : {0, 1}) {
    const auto before = pool.worker_pids();
    pid_t dead = 0;
    try {
      with_deadline(30, "a direct call whose worker died", [&] { return pool.apply(die, how); });
      FAIL() << "a call that killed its worker returned";
    } catch (const mproc::WorkerLostError& e) {
      dead = e.pid();
      EXPECT_NE(std::find(before.begin(), before.end(), dead), before.end())
          << "pid " << dead << " was not one of the pool's workers: " << e.what();
      if (how == 0) {
        EXPECT_EQ(e.signal(), SIGSEGV) << e.what();
      } else {
        EXPECT_EQ(e.exit_code(), 5) << e.what();
      }
    }
    EXPECT_EQ(pool.apply(square, 11), 121);
    EXPECT_TRUE(eventually(
        [&] {
          const auto pids = pool.worker_pids();
          return pids.size() == n() && std::find(pids.begin(), pids.end(), dead) == pids.end();
        },
        mproc_test::scaled(5000ms)));
  }
  const auto s = pool.stats();
  EXPECT_EQ(s.tasks.failed.worker_lost, 2u) << s;
}

TEST_P(PoolDirect, AnIdleWorkerKilledFromOutsideFailsNoCall) {
  mproc::Pool pool(n());
  ASSERT_TRUE(warmed_up(pool));
  for (int round = 0; round < 5; ++round) {
    ASSERT_TRUE(all_pids_known(pool)) << "round " << round << ": replacements never reported";
    for (pid_t p : pool.worker_pids()) ::kill(p, SIGKILL);
    // The next calls may find a lane whose worker is already dead: they are sent again the
    // ordinary way, never failed, since they never started.
    for (int i = 0; i < 10; ++i) {
      EXPECT_EQ(with_deadline(30, "apply after idle workers died",
                              [&] { return pool.apply(square, round * 10 + i); }),
                (round * 10 + i) * (round * 10 + i));
    }
  }
  const auto s = pool.stats();
  EXPECT_EQ(s.tasks.failed.total(), 0u) << s;
}

TEST_P(PoolDirect, TerminateEndsACallWaitingOnItsWorker) {
  auto pool = std::make_unique<mproc::Pool>(n());
  ASSERT_TRUE(warmed_up(*pool));
  mproc_test::Gate gate;
  std::atomic<bool> threw_state_error{false};
  std::thread caller([&] {
    try {
      pool->apply(started_then_gated, gate.path());
    } catch (const mproc::PoolStateError&) {
      threw_state_error = true;
    } catch (...) {
    }
  });
  const std::string started = gate.path() + ".started";
  ASSERT_TRUE(eventually([&] { return ::access(started.c_str(), F_OK) == 0; },
                         mproc_test::scaled(10000ms)));
  ::unlink(started.c_str());
  with_deadline(30, "terminate() with a direct call waiting", [&] {
    pool->terminate();
    caller.join();
  });
  EXPECT_TRUE(threw_state_error.load());
  gate.open();
}

TEST_P(PoolDirect, DirectCallsMixWithQueuedWork) {
  mproc::Pool pool(n());
  std::atomic<bool> stop{false};
  std::atomic<int> wrong{0};
  std::thread caller([&] {
    for (int i = 0; !stop.load() || i < 200; ++i) {
      if (pool.apply(square, i) != i * i) wrong.fetch_add(1);
    }
  });
  std::vector<mproc::AsyncResult<int>> rs;
  for (int round = 0; round < 20; ++round) {
    for (int i = 0; i < 100; ++i) rs.push_back(pool.apply_async(square, round * 100 + i));
    EXPECT_EQ(pool.map(square, std::vector<int>{1, 2, 3, 4}), (std::vector<int>{1, 4, 9, 16}));
  }
  for (std::size_t i = 0; i < rs.size(); ++i) {
    const int x = static_cast<int>(i);
    EXPECT_EQ(rs[i].get(30s), x * x);
  }
  stop = true;
  with_deadline(60, "the direct caller finishing", [&] { caller.join(); });
  EXPECT_EQ(wrong.load(), 0);
  const auto s = pool.stats();
  EXPECT_EQ(s.tasks.failed.total(), 0u) << s;
  EXPECT_EQ(s.tasks.running + s.tasks.queued, 0u) << s;
}

TEST_P(PoolDirect, AClosedPoolRefusesAnApply) {
  mproc::Pool pool(n());
  ASSERT_TRUE(warmed_up(pool));
  pool.close();
  EXPECT_THROW(pool.apply(square, 2), mproc::PoolStateError);
  pool.join();
}

TEST_P(PoolDirect, PoolsWithTimeLimitsOrQuotasKeepEveryCallOnTheQueue) {
  mproc::PoolOptions o;
  o.processes = n();
  o.maxtasksperchild = 3;
  mproc::Pool pool(o);
  for (int i = 0; i < 30; ++i) ASSERT_EQ(pool.apply(square, i), i * i);
  EXPECT_EQ(pool.stats().tasks.direct, 0u);
}
