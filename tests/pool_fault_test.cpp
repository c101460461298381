// Faults: tasks that kill their worker (abort, SIGSEGV, _exit, std::exit, SIGKILL from outside).
// The task that was running fails with WorkerLostError naming the signal or exit code; tasks
// queued behind it are neither lost nor run twice; max_retries re-runs a crashing task on a new
// worker; the pool keeps its size and keeps working. Every wait is bounded.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <map>
#include <mproc/mproc.hpp>
#include <mutex>
#include <optional>
#include <ranges>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "die_by_signal.hpp"
#include "test_support.hpp"

using namespace std::chrono_literals;
using mproc_test::eventually;
using mproc_test::with_deadline;

// LeakSanitizer runs at exit() in every process, forked workers included; a worker that
// std::exit()s from inside a task would report the coordinator's memory (whose owners are
// threads that do not exist in the child) as leaked and exit with LSan's code instead of its
// own. This hook turns that check off in such a worker only.
namespace {
volatile int g_no_leak_check_at_exit = 0;
}
extern "C" int __lsan_is_turned_off() {
  return g_no_leak_check_at_exit;
}

namespace {

constexpr auto kGet = 20s;

// Shared with the workers: slot 0 holds the pid of the last worker that crashed on purpose,
// slot 1 counts started sleepers, the rest are per-task counters.
std::atomic<int>* g_shared = nullptr;
constexpr std::size_t kPidSlot = 0;
constexpr std::size_t kStartedSlot = 1;
constexpr std::size_t kFirstCounter = 8;
constexpr std::size_t kSlots = 4096;

std::atomic<int>& counter(int i) {
  return g_shared[kFirstCounter + static_cast<std::size_t>(i)];
}

enum Crash : int { kAbort, kSegv, kUnderscoreExit3, kStdExit7 };

int crash(int how) {
  g_shared[kPidSlot].store(static_cast<int>(::getpid()));
  switch (how) {
    case kAbort: {
      const rlimit no_core{0, 0};
      ::setrlimit(RLIMIT_CORE, &no_core);
      ::signal(SIGABRT, SIG_DFL);
      std::abort();
    }
    case kSegv:
      mproc_test::die_by_signal(SIGSEGV);
    case kUnderscoreExit3:
      ::_exit(3);
    default:
      g_no_leak_check_at_exit = 1;
      std::exit(7);
  }
}

int square(int x) {
  return x * x;
}

// Counts its runs in counter(i), returns i.
int counted(int i) {
  counter(i).fetch_add(1);
  return i;
}

// Counts its runs in counter(i) and crashes when i == bad.
int counted_or_crash(int i, int bad) {
  counter(i).fetch_add(1);
  if (i == bad) mproc_test::die_by_signal(SIGSEGV);
  return i;
}

int crash_at_13(int i) {
  if (i == 13) mproc_test::die_by_signal(SIGSEGV);
  return i * i;
}

// Crashes on the first attempt only; returns the attempt number.
int crash_on_first_attempt(int slot) {
  const int attempt = counter(slot).fetch_add(1) + 1;
  if (attempt == 1) mproc_test::die_by_signal(SIGSEGV);
  return attempt;
}

int always_crash(int slot) {
  counter(slot).fetch_add(1);
  mproc_test::die_by_signal(SIGSEGV);
}

int started_then_sleep(int ms) {
  g_shared[kPidSlot].store(static_cast<int>(::getpid()));
  g_shared[kStartedSlot].fetch_add(1);
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  return ms;
}

void crashing_init() {
  mproc_test::die_by_signal(SIGABRT);
}

std::vector<int> squares_of(int n) {
  std::vector<int> v;
  for (int i = 0; i < n; ++i) v.push_back(i * i);
  return v;
}

}  // namespace

// Shared counters exist before the pool (so its workers inherit them) and outlive it.
class FaultFixture {
 protected:
  FaultFixture() : shared_(kSlots) { g_shared = shared_.data(); }
  ~FaultFixture() { g_shared = nullptr; }
  mproc_test::SharedCounters shared_;
};

class PoolFault : public mproc_test::LeakCheckWithParam<std::size_t>, protected FaultFixture {
 protected:
  std::size_t n() const { return GetParam(); }

  // After a crash: the pool is back to n() workers, none of them `dead`, and it computes.
  void expect_pool_recovered(mproc::Pool& pool, pid_t dead) {
    EXPECT_EQ(pool.map(square, std::views::iota(0, 100)), squares_of(100));
    EXPECT_TRUE(eventually(
        [&] {
          const auto pids = pool.worker_pids();
          return pids.size() == n() && std::find(pids.begin(), pids.end(), dead) == pids.end();
        },
        mproc_test::scaled(2000ms)))
        << "the pool has " << pool.worker_pids().size() << " workers, expected " << n();
  }
};

INSTANTIATE_TEST_SUITE_P(Workers, PoolFault, ::testing::Values(1, 2, 4), mproc_test::WorkersName{});

// ---- each way of dying ----------------------------------------------------------------------

struct CrashCase {
  Crash how;
  const char* name;
  const char* text;  // expected in what()
  int exit_code;     // -1 when killed by a signal
  int signal;        // 0 when it exited
};

// Shown in test names and ctest listings.
void PrintTo(const CrashCase& c, std::ostream* os) {
  *os << c.name;
}

class PoolFaultCrash : public mproc_test::LeakCheck,
                       public ::testing::WithParamInterface<std::tuple<CrashCase, std::size_t>>,
                       protected FaultFixture {};

TEST_P(PoolFaultCrash, TaskKillingItsWorkerFailsWithWorkerLostErrorAndThePoolRecovers) {
  const auto [c, workers] = GetParam();
  mproc::Pool pool(workers);
  ASSERT_TRUE(
      eventually([&] { return pool.worker_pids().size() == workers; }, mproc_test::scaled(2000ms)));
  const std::vector<pid_t> before = pool.worker_pids();
  auto r = pool.apply_async(crash, static_cast<int>(c.how));
  try {
    r.get(kGet);
    FAIL() << "a task that killed its worker returned a value";
  } catch (const mproc::WorkerLostError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find(c.text), std::string::npos) << what;
    EXPECT_EQ(e.pid(), static_cast<pid_t>(g_shared[kPidSlot].load())) << what;
    EXPECT_GT(e.pid(), 0);
    EXPECT_NE(std::find(before.begin(), before.end(), e.pid()), before.end())
        << "pid " << e.pid() << " was not one of the pool's workers";
    EXPECT_EQ(e.exit_code(), c.exit_code) << what;
    EXPECT_EQ(e.signal(), c.signal) << what;
  } catch (const mproc::TimeoutError&) {
    FAIL() << "the crashed task did not complete within " << kGet.count() << " s";
  }
  EXPECT_TRUE(r.ready());
  EXPECT_FALSE(r.successful());
  const pid_t dead = static_cast<pid_t>(g_shared[kPidSlot].load());
  EXPECT_EQ(pool.map(square, std::views::iota(0, 100)), squares_of(100));
  EXPECT_TRUE(eventually(
      [&] {
        const auto pids = pool.worker_pids();
        return pids.size() == workers && std::find(pids.begin(), pids.end(), dead) == pids.end();
      },
      mproc_test::scaled(2000ms)))
      << "the pool has " << pool.worker_pids().size() << " workers, expected " << workers;
  // And it can lose another one the same way.
  EXPECT_THROW(pool.apply_async(crash, static_cast<int>(c.how)).get(kGet), mproc::WorkerLostError);
  EXPECT_EQ(pool.apply(square, 12), 144);
}

const CrashCase kCrashCases[] = {
    {kAbort, "abort", "SIGABRT", -1, SIGABRT},
    {kSegv, "SIGSEGV", "SIGSEGV", -1, SIGSEGV},
    {kUnderscoreExit3, "_exit3", "exited with code 3", 3, 0},
    {kStdExit7, "std_exit7", "exited with code 7", 7, 0},
};

INSTANTIATE_TEST_SUITE_P(
    Kinds, PoolFaultCrash,
    ::testing::Combine(::testing::ValuesIn(kCrashCases), ::testing::Values(1, 2, 4)),
    [](const ::testing::TestParamInfo<std::tuple<CrashCase, std::size_t>>& info) {
      return std::string(std::get<0>(info.param).name) + "_" +
             std::to_string(std::get<1>(info.param)) + "_workers";
    });

// ---- what happens to the other tasks ---------------------------------------------------------

TEST_P(PoolFault, TasksQueuedBehindACrashAreNeitherLostNorRunTwice) {
  mproc::Pool pool(n());
  constexpr int kTasks = 400;
  // The crasher is the first task its worker gets: everything else is behind it or elsewhere.
  auto bad = pool.apply_async(counted_or_crash, 0, 0);
  std::vector<mproc::AsyncResult<int>> rs;
  for (int i = 1; i <= kTasks; ++i) rs.push_back(pool.apply_async(counted, i));
  EXPECT_THROW(bad.get(kGet), mproc::WorkerLostError);
  for (int i = 1; i <= kTasks; ++i) {
    EXPECT_EQ(rs[static_cast<std::size_t>(i - 1)].get(kGet), i);
    EXPECT_EQ(counter(i).load(), 1) << "task " << i;
  }
  EXPECT_EQ(counter(0).load(), 1) << "the crashing task was retried without max_retries";
  expect_pool_recovered(pool, static_cast<pid_t>(-1));
}

TEST_P(PoolFault, ACrashInTheMiddleRunsEveryOtherTaskExactlyOnce) {
  mproc::Pool pool(n());
  constexpr int kTasks = 401;
  constexpr int kBad = 200;
  std::vector<mproc::AsyncResult<int>> rs;
  for (int i = 0; i < kTasks; ++i) rs.push_back(pool.apply_async(counted_or_crash, i, kBad));
  int ok = 0;
  int lost = 0;
  for (int i = 0; i < kTasks; ++i) {
    auto& r = rs[static_cast<std::size_t>(i)];
    ASSERT_TRUE(r.wait(kGet)) << "task " << i << " never completed";
    EXPECT_EQ(counter(i).load(), 1) << "task " << i;
    if (i == kBad) {
      EXPECT_THROW(r.get(), mproc::WorkerLostError);
      continue;
    }
    try {
      EXPECT_EQ(r.get(), i);
      ++ok;
    } catch (const mproc::WorkerLostError& e) {
      // Allowed by design: it ran (once) on the dying worker, but its result had not left it.
      EXPECT_NE(std::string(e.what()).find("before sending its result"), std::string::npos)
          << "task " << i << ": " << e.what();
      ++lost;
    }
  }
  EXPECT_EQ(ok + lost, kTasks - 1);
  expect_pool_recovered(pool, static_cast<pid_t>(-1));
  // Tasks that finished on the dying worker in its last reply batch (at most ~20 us of work)
  // fail too: they ran exactly once, and mproc never runs a task twice.
  std::printf("[info] %d of %d other tasks finished unsent on the crashing worker\n", lost,
              kTasks - 1);
}

TEST_P(PoolFault, ErrorCallbackRunsOnceForACrashedTask) {
  mproc::Pool pool(n());
  std::atomic<int> values{0};
  std::atomic<int> errors{0};
  std::atomic<int> lost_errors{0};
  auto r = pool.apply_async(crash, static_cast<int>(kSegv),
                            mproc::callbacks([&](int) { ++values; },
                                             [&](std::exception_ptr e) {
                                               ++errors;
                                               try {
                                                 std::rethrow_exception(e);
                                               } catch (const mproc::WorkerLostError&) {
                                                 ++lost_errors;
                                               } catch (...) {
                                               }
                                             }));
  EXPECT_THROW(r.get(kGet), mproc::WorkerLostError);
  EXPECT_EQ(values.load(), 0);
  EXPECT_EQ(errors.load(), 1);
  EXPECT_EQ(lost_errors.load(), 1);
  pool.close();
  with_deadline(10 * mproc_test::kSlowdown, "join", [&] { pool.join(); });
  EXPECT_EQ(errors.load(), 1);
}

TEST_P(PoolFault, ManyCrashesInterleavedWithWork) {
  mproc::Pool pool(n());
  constexpr int kTasks = 300;
  std::vector<mproc::AsyncResult<int>> rs;
  for (int i = 0; i < kTasks; ++i)
    rs.push_back(i % 15 == 7 ? pool.apply_async(always_crash, i) : pool.apply_async(counted, i));
  int crashed = 0;
  int innocent_lost = 0;
  for (int i = 0; i < kTasks; ++i) {
    auto& r = rs[static_cast<std::size_t>(i)];
    ASSERT_TRUE(r.wait(kGet)) << "task " << i << " never completed";
    EXPECT_EQ(counter(i).load(), 1) << "task " << i;
    if (i % 15 == 7) {
      EXPECT_THROW(r.get(), mproc::WorkerLostError) << i;
      ++crashed;
    } else {
      try {
        EXPECT_EQ(r.get(), i);
      } catch (const mproc::WorkerLostError& e) {
        EXPECT_NE(std::string(e.what()).find("before sending its result"), std::string::npos)
            << "task " << i << ": " << e.what();
        ++innocent_lost;
      }
    }
  }
  EXPECT_EQ(crashed, kTasks / 15);
  expect_pool_recovered(pool, static_cast<pid_t>(-1));
  std::printf("[info] %d tasks finished unsent on crashing workers\n", innocent_lost);
}

// ---- max_retries ------------------------------------------------------------------------------

TEST_P(PoolFault, MaxRetriesOneRescuesATaskThatCrashesOnce) {
  mproc::PoolOptions o;
  o.processes = n();
  o.max_retries = 1;
  mproc::Pool pool(o);
  EXPECT_EQ(pool.apply_async(crash_on_first_attempt, 0).get(kGet), 2);
  EXPECT_EQ(counter(0).load(), 2);
  expect_pool_recovered(pool, static_cast<pid_t>(-1));
}

TEST_P(PoolFault, MaxRetriesZeroReportsTheFirstCrash) {
  mproc::PoolOptions o;
  o.processes = n();
  o.max_retries = 0;
  mproc::Pool pool(o);
  EXPECT_THROW(pool.apply_async(crash_on_first_attempt, 0).get(kGet), mproc::WorkerLostError);
  EXPECT_EQ(counter(0).load(), 1);
  expect_pool_recovered(pool, static_cast<pid_t>(-1));
  EXPECT_EQ(counter(0).load(), 1);
}

TEST_P(PoolFault, MaxRetriesTwoGivesUpAfterExactlyThreeAttempts) {
  mproc::PoolOptions o;
  o.processes = n();
  o.max_retries = 2;
  mproc::Pool pool(o);
  try {
    pool.apply_async(always_crash, 0).get(kGet);
    FAIL() << "always_crash returned";
  } catch (const mproc::WorkerLostError& e) {
    EXPECT_EQ(e.signal(), SIGSEGV) << e.what();
    EXPECT_NE(std::string(e.what()).find("3 attempts"), std::string::npos) << e.what();
  }
  EXPECT_EQ(counter(0).load(), 3);
  // Other work is unaffected by the retries, and nothing re-runs the failed task later.
  EXPECT_EQ(pool.map(counted, std::views::iota(1, 50)).size(), 49u);
  for (int i = 1; i < 50; ++i) EXPECT_EQ(counter(i).load(), 1) << i;
  pool.close();
  with_deadline(10 * mproc_test::kSlowdown, "join", [&] { pool.join(); });
  EXPECT_EQ(counter(0).load(), 3);
}

// ---- map and imap -----------------------------------------------------------------------------

TEST_P(PoolFault, ACrashInsideMapFailsTheMapAndThePoolGoesOn) {
  mproc::Pool pool(n());
  for (std::size_t chunksize : {0u, 1u, 5u}) {
    SCOPED_TRACE("chunksize " + std::to_string(chunksize));
    EXPECT_THROW(pool.map(crash_at_13, std::views::iota(0, 100), chunksize),
                 mproc::WorkerLostError);
    auto r = pool.map_async(crash_at_13, std::views::iota(0, 100), chunksize);
    EXPECT_THROW(r.get(kGet), mproc::WorkerLostError);
    EXPECT_EQ(pool.map(square, std::views::iota(0, 100), chunksize), squares_of(100));
  }
  expect_pool_recovered(pool, static_cast<pid_t>(-1));
}

TEST_P(PoolFault, ACrashInsideImapFailsOnlyThatElement) {
  mproc::Pool pool(n());
  auto range = pool.imap(crash_at_13, std::views::iota(0, 50));
  std::vector<int> got;
  int errors = 0;
  with_deadline(20 * mproc_test::kSlowdown, "imap with a crashing element", [&] {
    for (int guard = 0; guard < 60; ++guard) {
      try {
        const std::optional<int> v = range.next();
        if (!v) break;
        got.push_back(*v);
      } catch (const mproc::WorkerLostError& e) {
        EXPECT_EQ(e.signal(), SIGSEGV) << e.what();
        ++errors;
      }
    }
  });
  // Every element but 13 that did not come back lost its result to the crash (see below).
  EXPECT_GE(errors, 1);
  EXPECT_EQ(got.size() + static_cast<std::size_t>(errors), 50u);
  for (int v : got) EXPECT_NE(v, 13 * 13);
  expect_pool_recovered(pool, static_cast<pid_t>(-1));
  std::vector<int> want;
  for (int i = 0; i < 50; ++i)
    if (i != 13) want.push_back(i * i);
  // Elements that finished unsent on the crashing worker fail with it (never run twice).
  EXPECT_TRUE(std::includes(want.begin(), want.end(), got.begin(), got.end()));
  if (errors == 1) {
    EXPECT_EQ(got, want);
  }
}

// ---- killed from outside, and a crashing initializer ----------------------------------------

TEST_P(PoolFault, AWorkerKilledFromOutsideFailsItsTask) {
  mproc::Pool pool(n());
  auto sleeper = pool.apply_async(started_then_sleep, 30'000);
  ASSERT_TRUE(
      eventually([&] { return g_shared[kStartedSlot].load() == 1; }, mproc_test::scaled(5000ms)));
  const pid_t victim = static_cast<pid_t>(g_shared[kPidSlot].load());
  ASSERT_GT(victim, 0);
  ASSERT_EQ(::kill(victim, SIGKILL), 0);
  try {
    sleeper.get(kGet);
    ADD_FAILURE() << "a 30 s sleeper returned";
  } catch (const mproc::WorkerLostError& e) {
    EXPECT_EQ(e.pid(), victim);
    EXPECT_EQ(e.signal(), SIGKILL);
    EXPECT_EQ(e.exit_code(), -1);
    EXPECT_NE(std::string(e.what()).find("SIGKILL"), std::string::npos) << e.what();
  }
  expect_pool_recovered(pool, victim);
}

TEST_P(PoolFault, AnInitializerThatCrashesBreaksThePoolWithoutHanging) {
  mproc::PoolOptions o;
  o.processes = n();
  o.initializer(crashing_init);
  with_deadline(20 * mproc_test::kSlowdown, "a pool whose initializer crashes", [&] {
    std::optional<mproc::Pool> pool;
    try {
      pool.emplace(o);
    } catch (const std::exception& e) {
      GTEST_SKIP() << "constructor threw (acceptable): " << e.what();
    }
    try {
      auto r = pool->apply_async(square, 3);
      try {
        r.get(10s);
        ADD_FAILURE() << "a task ran although every worker dies in its initializer";
      } catch (const mproc::TimeoutError&) {
        ADD_FAILURE() << "a task on a pool whose initializer crashes did not complete in 10 s";
      } catch (const mproc::WorkerLostError& e) {
        EXPECT_NE(std::string(e.what()).find("initializer"), std::string::npos) << e.what();
        EXPECT_EQ(e.signal(), SIGABRT) << e.what();
      }
    } catch (const mproc::WorkerLostError& e) {
      // Broken before we submitted: the submission fails with the reason.
      EXPECT_NE(std::string(e.what()).find("initializer"), std::string::npos) << e.what();
    } catch (const mproc::PoolStateError&) {
      // Broken before we submitted: acceptable.
    }
    EXPECT_ANY_THROW(pool->apply(square, 4));
    pool.reset();
  });
}
