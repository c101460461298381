// Soft time limits (issue 19, item 2): past its soft limit a task is asked to stop
// (mproc::this_task::stop_requested()); one that stops itself fails with SoftTimeLimitExceeded
// and keeps its worker, one that does not is killed at the hard limit (TaskTimeoutError).
// Runs under fork, forkserver and spawn (tests/CMakeLists.txt).
//
// No test waits on a guess: a task that waits for its stop request polls for it with a bound
// far above the soft limit (30 s), and the test's own get() is bounded too, so a stop request
// that never came fails with a message instead of hanging.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <mproc/mproc.hpp>
#include <mproc/pool/detail/time_limits.hpp>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "test_support.hpp"

using namespace std::chrono_literals;
using mproc_test::scaled;
namespace d = mproc::detail;

namespace {

constexpr auto kNeverComes = 30s;  // a bound on waiting for a stop request that must come

int worker_pid(int) {
  return static_cast<int>(::getpid());
}

// Polls for the stop request in slices (as a task blocked in waits should); false if it did not
// come within `bound`.
bool wait_for_stop(std::chrono::milliseconds bound) {
  const auto end = std::chrono::steady_clock::now() + bound;
  while (!mproc::this_task::stop_requested()) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

// Cleans up and stops itself once asked: SoftTimeLimitExceeded. A stop request that never
// comes is a std::logic_error (not the error the test expects).
int stop_when_asked(int) {
  if (!wait_for_stop(kNeverComes)) throw std::logic_error("no stop request came");
  mproc::this_task::throw_if_stop_requested();
  throw std::logic_error("throw_if_stop_requested did not throw");
}

// Returns early when asked: its value is its result. -1 if no request came.
int return_when_asked(int x) {
  return wait_for_stop(kNeverComes) ? x : -1;
}

// Polls for `ms` milliseconds; says whether it was asked to stop.
bool asked_within(int ms) {
  return wait_for_stop(std::chrono::milliseconds(ms));
}

bool stop_requested_now(int) {
  return mproc::this_task::stop_requested();
}

// Never checks.
int sleep_ms(int ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  return ms;
}

// A thread the task starts sees the request too.
int helper_thread_sees_stop(int x) {
  std::atomic<bool> seen{false};
  std::thread t([&] { seen = wait_for_stop(kNeverComes); });
  t.join();
  return seen ? x : -1;
}

class SoftTimeout : public mproc_test::LeakCheck {};

}  // namespace

// ---- the decision: which limits a task runs under, what its timer waits for ---------------

TEST(SoftTimeLimits, CallLimitsOverrideThePoolsEachKindOnItsOwn) {
  const d::TimeLimits pool{2s, 10s};
  auto l = d::effective_time_limits({}, pool);
  EXPECT_EQ(l.soft, 2s);
  EXPECT_EQ(l.hard, 10s);
  l = d::effective_time_limits({1s, 0s}, pool);  // with_soft_timeout(1s)
  EXPECT_EQ(l.soft, 1s);
  EXPECT_EQ(l.hard, 10s);
  l = d::effective_time_limits({0s, 5s}, pool);  // with_timeout(5s)
  EXPECT_EQ(l.soft, 2s);
  EXPECT_EQ(l.hard, 5s);
  l = d::effective_time_limits({3s, 4s}, pool);  // both
  EXPECT_EQ(l.soft, 3s);
  EXPECT_EQ(l.hard, 4s);
  l = d::effective_time_limits({}, {});  // none
  EXPECT_EQ(l.soft, 0s);
  EXPECT_EQ(l.hard, 0s);
}

TEST(SoftTimeLimits, ASoftLimitAtOrPastTheHardOneIsDropped) {
  EXPECT_EQ(d::effective_time_limits({}, {5s, 5s}).soft, 0s);
  EXPECT_EQ(d::effective_time_limits({}, {6s, 5s}).soft, 0s);
  EXPECT_EQ(d::effective_time_limits({}, {6s, 5s}).hard, 5s);
  // A call's hard limit below the pool's soft one drops the soft one for that call.
  EXPECT_EQ(d::effective_time_limits({0s, 1s}, {2s, 10s}).soft, 0s);
  // No hard limit: the soft one stands (the task is asked, never killed).
  const auto l = d::effective_time_limits({}, {5s, 0s});
  EXPECT_EQ(l.soft, 5s);
  EXPECT_EQ(l.hard, 0s);
}

TEST(SoftTimeLimits, NegativeLimitsAreNone) {
  const auto l = d::effective_time_limits({-1s, -1s}, {-2s, -3s});
  EXPECT_EQ(l.soft, 0s);
  EXPECT_EQ(l.hard, 0s);
  EXPECT_EQ(d::effective_time_limits({}, {1s, -3s}).soft, 1s);
}

TEST(SoftTimeLimits, TheTimerWaitsForTheSoftLimitThenTheHardOne) {
  const d::TimeLimits both{1s, 3s};
  auto s = d::next_time_limit(both, false);
  ASSERT_TRUE(s);
  EXPECT_TRUE(s->soft);
  EXPECT_EQ(s->after, 1s);
  s = d::next_time_limit(both, true);
  ASSERT_TRUE(s);
  EXPECT_FALSE(s->soft);
  EXPECT_EQ(s->after, 3s);  // measured from the task's start, not from the soft limit

  s = d::next_time_limit({0s, 3s}, false);  // hard only: exactly as before soft limits
  ASSERT_TRUE(s);
  EXPECT_FALSE(s->soft);
  EXPECT_EQ(s->after, 3s);

  s = d::next_time_limit({1s, 0s}, false);  // soft only: asked, never killed
  ASSERT_TRUE(s);
  EXPECT_TRUE(s->soft);
  EXPECT_FALSE(d::next_time_limit({1s, 0s}, true));

  EXPECT_FALSE(d::next_time_limit({}, false));
}

// ---- through real workers --------------------------------------------------------------------

namespace {
// One worker with a soft limit and, when given, a hard limit and its grace (otherwise the pool's
// defaults: no hard limit, the default grace).
mproc::PoolOptions one_worker(std::chrono::nanoseconds soft, std::chrono::nanoseconds hard = {},
                              std::chrono::nanoseconds grace = mproc::PoolOptions{}.timeout_grace) {
  mproc::PoolOptions o;
  o.processes = 1;
  o.soft_timeout = soft;
  o.task_timeout = hard;
  o.timeout_grace = grace;
  return o;
}
}  // namespace

TEST_F(SoftTimeout, ATaskThatStopsItselfRaisesSoftTimeLimitExceededAndKeepsItsWorker) {
  // The hard limit far away: the task must stop on its own, not be killed.
  mproc::Pool pool(one_worker(scaled(200ms), 60s));
  const int pid = pool.apply(worker_pid, 0);
  auto r = pool.apply_async(stop_when_asked, 0);
  try {
    r.get(scaled(20s));
    FAIL() << "expected SoftTimeLimitExceeded";
  } catch (const mproc::SoftTimeLimitExceeded& e) {
    EXPECT_NE(std::string(e.what()).find("soft time limit"), std::string::npos) << e.what();
  }
  // The same worker runs the next task: it was not replaced.
  EXPECT_EQ(pool.apply(worker_pid, 0), pid);
  EXPECT_EQ(pool.worker_pids(), std::vector<pid_t>{static_cast<pid_t>(pid)});
}

TEST_F(SoftTimeout, ATaskThatReturnsWhenAskedGivesItsValueAndNoHardLimitMeansNoKill) {
  mproc::Pool pool(one_worker(scaled(150ms)));  // no task_timeout: asked to stop, never killed
  const int pid = pool.apply(worker_pid, 0);
  EXPECT_EQ(pool.apply_async(return_when_asked, 7).get(scaled(20s)), 7);
  EXPECT_EQ(pool.apply(worker_pid, 0), pid);
}

TEST_F(SoftTimeout, ATaskThatNeverChecksIsKilledAtTheHardLimit) {
  mproc::Pool pool(one_worker(scaled(100ms), scaled(400ms), scaled(200ms)));
  const int pid = pool.apply(worker_pid, 0);
  auto r = pool.apply_async(sleep_ms, 30'000);
  EXPECT_THROW(r.get(scaled(20s)), mproc::TaskTimeoutError);
  // A new worker runs the next task.
  const int next = pool.apply_async(worker_pid, 0).get(scaled(20s));
  EXPECT_NE(next, pid);
  EXPECT_TRUE(mproc_test::eventually(
      [&] { return pool.worker_pids() == std::vector<pid_t>{static_cast<pid_t>(next)}; },
      scaled(2000ms)));
}

TEST_F(SoftTimeout, ASoftLimitNotBelowTheHardOneIsIgnored) {
  mproc::Pool pool(one_worker(scaled(300ms), scaled(300ms), scaled(200ms)));
  // It checks, but is never asked: the hard limit comes first.
  EXPECT_THROW(pool.apply_async(stop_when_asked, 0).get(scaled(20s)), mproc::TaskTimeoutError);
}

TEST_F(SoftTimeout, APerCallSoftLimitOverridesThePools) {
  mproc::Pool pool(one_worker(60s));
  EXPECT_THROW(pool.apply_async(stop_when_asked, 0, mproc::with_soft_timeout(scaled(150ms)))
                   .get(scaled(20s)),
               mproc::SoftTimeLimitExceeded);
  // Combined with a per-call hard limit, and the other way round: a long per-call soft limit
  // over a short pool one (the task polls for 300 ms and is not asked).
  EXPECT_THROW(pool.apply_async(stop_when_asked, 0,
                                mproc::with_timeout(60s).with_soft_timeout(scaled(150ms)))
                   .get(scaled(20s)),
               mproc::SoftTimeLimitExceeded);
  mproc::PoolOptions short_soft;
  short_soft.processes = 1;
  short_soft.soft_timeout = scaled(50ms);
  mproc::Pool other(short_soft);
  EXPECT_TRUE(other.apply_async(asked_within, 10'000).get(scaled(20s)));
  EXPECT_FALSE(
      other.apply_async(asked_within, 300, mproc::with_soft_timeout(60s)).get(scaled(20s)));
}

TEST_F(SoftTimeout, AMapsSoftLimitAppliesToEachChunk) {
  mproc::Pool pool(2);
  const std::vector<int> in{1, 2, 3};
  auto r = pool.map_async(return_when_asked, in, 1,
                          mproc::with_soft_timeout(scaled(100ms)).with_timeout(60s));
  EXPECT_EQ(r.get(scaled(20s)), in);
}

TEST_F(SoftTimeout, AFastTaskIsUnaffectedAndTheRequestDoesNotOutliveItsTask) {
  mproc::Pool pool(one_worker(scaled(150ms)));
  EXPECT_FALSE(pool.apply(stop_requested_now, 0));
  EXPECT_EQ(pool.apply(worker_pid, 0), pool.apply(worker_pid, 0));
  const int pid = pool.apply(worker_pid, 0);
  EXPECT_THROW(pool.apply_async(stop_when_asked, 0).get(scaled(20s)), mproc::SoftTimeLimitExceeded);
  // The next task on the same worker starts with no request (and one queued behind it too).
  auto a = pool.apply_async(stop_requested_now, 0);
  auto b = pool.apply_async(stop_requested_now, 0);
  EXPECT_FALSE(a.get(scaled(20s)));
  EXPECT_FALSE(b.get(scaled(20s)));
  EXPECT_EQ(pool.apply(worker_pid, 0), pid);
}

TEST_F(SoftTimeout, AThreadTheTaskStartsSeesTheRequest) {
  mproc::Pool pool(1);
  EXPECT_EQ(pool.apply(helper_thread_sees_stop, 5, mproc::with_soft_timeout(scaled(100ms))), 5);
}

TEST_F(SoftTimeout, FalseOutsideAProcessPoolsTask) {
  EXPECT_FALSE(mproc::this_task::stop_requested());
  EXPECT_NO_THROW(mproc::this_task::throw_if_stop_requested());
  mproc::ThreadPool threads(1);
  EXPECT_FALSE(threads.apply(stop_requested_now, 0));
  // A task that ends before its soft limit is never asked.
  mproc::Pool pool(one_worker(scaled(50ms)));
  EXPECT_FALSE(pool.apply(stop_requested_now, 0));
}

TEST(SoftTimeLimitExceededWire, CrossesAsItself) {
  mproc::Pool pool(1);
  try {
    pool.apply(stop_when_asked, 0, mproc::with_soft_timeout(scaled(50ms)));
    FAIL() << "expected SoftTimeLimitExceeded";
  } catch (const mproc::SoftTimeLimitExceeded& e) {
    EXPECT_TRUE(typeid(e) == typeid(mproc::SoftTimeLimitExceeded));
    EXPECT_FALSE(mproc::remote_traceback(e).empty());
  }
}
