// concurrent.futures over mproc pools (issue 18): submit, as_completed, wait, done callbacks,
// running / cancelled / exception, shutdown(cancel_futures), PoolOptions::max_queued, imap's
// buffersize and an imap source that throws part-way. Each runs on Pool (real worker processes)
// and on ThreadPool; every test checks that it leaves no child process and no descriptor behind.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mproc/mproc.hpp>
#include <mutex>
#include <optional>
#include <ranges>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "test_support.hpp"

using namespace std::chrono_literals;
using mproc_test::Clock;
using mproc_test::eventually;
using mproc_test::Gate;
using mproc_test::gated;
using mproc_test::wait_for_gate;

namespace {

int sleep_ms(int ms) {
  ::usleep(static_cast<useconds_t>(ms) * 1000);
  return ms;
}

int fail_after_ms(int ms) {
  ::usleep(static_cast<useconds_t>(ms) * 1000);
  throw std::runtime_error("failed after " + std::to_string(ms) + " ms");
}

int square(int x) {
  return x * x;
}

// Whether every one of `rs` has started, polled for long enough that only a hang says no (a
// spawned worker under a sanitizer on a loaded machine can take seconds to start).
bool all_running(const std::vector<mproc::AsyncResult<int>>& rs) {
  return eventually(
      [&] { return std::all_of(rs.begin(), rs.end(), [](const auto& r) { return r.running(); }); },
      mproc_test::scaled(30s));
}

double elapsed_ms(Clock::time_point since) {
  return std::chrono::duration<double, std::milli>(Clock::now() - since).count();
}

template <class P>
std::size_t count_unfinished(const std::vector<mproc::AsyncResult<int>>& rs) {
  return static_cast<std::size_t>(
      std::count_if(rs.begin(), rs.end(), [](const auto& r) { return !r.ready(); }));
}

template <class P>
class Futures : public mproc_test::LeakCheck {};

using PoolKinds = ::testing::Types<mproc::Pool, mproc::ThreadPool>;
struct KindName {
  template <class P>
  static std::string GetName(int) {
    return std::is_same_v<P, mproc::Pool> ? "Pool" : "ThreadPool";
  }
};
TYPED_TEST_SUITE(Futures, PoolKinds, KindName);

TYPED_TEST(Futures, SubmitIsApplyAsync) {
  for (std::size_t n : {1, 2, 4}) {
    TypeParam pool(n);
    auto r = pool.submit(square, 7);
    static_assert(std::is_same_v<decltype(r), mproc::AsyncResult<int>>);
    EXPECT_EQ(r.get(), 49);
    std::atomic<int> seen{0};
    auto c = pool.submit(square, 3, mproc::callbacks([&seen](int v) { seen = v; }));
    EXPECT_EQ(c.get(), 9);
    EXPECT_EQ(seen.load(), 9);  // ready only after the callback ran
  }
}

TYPED_TEST(Futures, AsCompletedYieldsInCompletionOrder) {
  TypeParam pool(4);
  Gate gates[4];
  std::vector<mproc::AsyncResult<int>> rs;
  for (int i = 0; i < 4; ++i) rs.push_back(pool.submit(gated, gates[i].path(), i));
  // All four at once, one per worker: the order in which the test opens the gates is then the
  // order in which they complete (none of them waits behind another).
  ASSERT_TRUE(all_running(rs)) << "the pool did not start its four tasks at once";
  const std::vector<int> opening{2, 0, 3, 1};
  std::size_t opened = 0;
  gates[opening[opened++]].open();
  std::vector<int> order;
  for (const auto& r : mproc::as_completed(rs, 60s)) {
    order.push_back(r.get());
    // Lazy: each result is yielded while the ones whose gates are still shut run on.
    for (std::size_t k = opened; k < opening.size(); ++k) {
      EXPECT_FALSE(rs[static_cast<std::size_t>(opening[k])].ready())
          << "as_completed must yield each result as soon as it is ready";
    }
    if (opened < opening.size()) gates[opening[opened++]].open();
  }
  EXPECT_EQ(order, opening);
}

TYPED_TEST(Futures, AsCompletedCoversEveryResultOnceWithOneAndTwoWorkers) {
  for (std::size_t n : {1, 2}) {
    TypeParam pool(n);
    std::vector<mproc::AsyncResult<int>> rs;
    for (int i = 0; i < 20; ++i) rs.push_back(pool.submit(square, i));
    rs.push_back(rs.front());  // a duplicate counts once, as in Python's set
    std::multiset<int> got;
    for (const auto& r : mproc::as_completed(rs)) got.insert(r.get());
    std::multiset<int> want;
    for (int i = 0; i < 20; ++i) want.insert(i * i);
    EXPECT_EQ(got, want) << n << " workers";
  }
}

// as_completed and wait de-duplicate by marking each result; threads registering on the same
// results at once (some still running, some listed twice) must each still see every result
// exactly once, and a done callback added while they come and go still runs once, in order.
TYPED_TEST(Futures, ConcurrentRegistrationsOnSharedResultsEachSeeASet) {
  TypeParam pool(2);
  std::vector<mproc::AsyncResult<int>> rs;
  for (int i = 0; i < 200; ++i)
    rs.push_back(pool.submit(i % 20 == 0 ? sleep_ms : square, i % 20 == 0 ? 5 : i));
  std::vector<mproc::AsyncResult<int>> listed = rs;
  for (int i = 0; i < 200; i += 3) listed.push_back(rs[static_cast<std::size_t>(i)]);
  std::vector<int> callback_order;
  std::mutex callback_mu;
  for (int k = 0; k < 3; ++k)
    rs.back().add_done_callback([&, k] {
      std::lock_guard lock(callback_mu);
      callback_order.push_back(k);
    });
  std::atomic<int> bad{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < 5; ++round) {
        if ((t + round) % 2 == 0) {
          std::size_t n = 0;
          for (const auto& r : mproc::as_completed(listed, 30s)) {
            r.get();
            ++n;
          }
          if (n != rs.size()) ++bad;
        } else {
          auto [done, not_done] = mproc::wait(listed, 30s);
          if (done.size() != rs.size() || !not_done.empty()) ++bad;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(bad.load(), 0) << "a registration saw a result twice or missed one";
  // Done callbacks run on the callback thread, after the result became ready.
  EXPECT_TRUE(eventually([&] {
    std::lock_guard lock(callback_mu);
    return callback_order.size() == 3;
  })) << "the done callbacks did not all run";
  std::lock_guard lock(callback_mu);
  EXPECT_EQ(callback_order, (std::vector<int>{0, 1, 2}));
}

// The slow path, made certain: a result another registration holds a mark on at the moment
// (a mark nobody releases here) makes the registration de-duplicate by sorting, and the set
// and its input order still come out right.
TEST(FuturesDedup, AForeignMarkFallsBackToExactDeduplication) {
  mproc::ThreadPool pool(2);
  std::vector<mproc::AsyncResult<int>> rs;
  for (int i = 0; i < 10; ++i) rs.push_back(pool.submit(square, i));
  for (auto& r : rs) r.wait();
  rs[3].state()->dedup_mark().store(~std::uint64_t{0});  // "another registration"
  std::vector<mproc::AsyncResult<int>> listed = {rs[3], rs[1], rs[3], rs[0], rs[1], rs[9]};
  auto [done, not_done] = mproc::wait(listed);
  ASSERT_EQ(done.size(), 4u);
  EXPECT_TRUE(not_done.empty());
  EXPECT_EQ(done[0].get(), 9);  // input order, first occurrences
  EXPECT_EQ(done[1].get(), 1);
  EXPECT_EQ(done[2].get(), 0);
  EXPECT_EQ(done[3].get(), 81);
  std::vector<int> seen;
  for (const auto& r : mproc::as_completed(listed)) seen.push_back(r.get());
  EXPECT_EQ(seen, (std::vector<int>{9, 1, 0, 81}));  // all complete: in input order
  EXPECT_EQ(rs[3].state()->dedup_mark().load(), ~std::uint64_t{0}) << "a foreign mark was taken";
  EXPECT_EQ(rs[1].state()->dedup_mark().load(), 0u) << "a registration left its mark behind";
}

TYPED_TEST(Futures, AsCompletedHonoursItsTimeout) {
  TypeParam pool(2);
  Gate gate;
  std::vector<mproc::AsyncResult<int>> rs{pool.submit(sleep_ms, 0),
                                          pool.submit(wait_for_gate, gate.path())};
  rs[0].wait();  // the workers are up: the deadline below measures as_completed, not startup
  const auto t0 = Clock::now();
  auto range = mproc::as_completed(rs, 300ms);
  auto it = range.begin();
  ASSERT_FALSE(it == range.end());
  EXPECT_EQ(it->get(), 0);
  EXPECT_THROW(++it, mproc::TimeoutError);
  EXPECT_GE(elapsed_ms(t0), 250.0);  // never before its deadline
  EXPECT_FALSE(rs[1].ready());
  gate.open();
  EXPECT_EQ(rs[1].get(), 1);  // the gated one still completes
}

// The slow tasks are gated: each wait below can only return as asked while they still run, and
// no wait has a timeout it could reach instead (with one, a wait that ignored its return_when
// would come back with the same sets). One that waited for all would see the gated ones end
// (the gate's own 30 s) and report them done.
TYPED_TEST(Futures, WaitWithEachReturnWhen) {
  TypeParam pool(4);
  {
    Gate gate;
    std::vector<mproc::AsyncResult<int>> rs{pool.submit(sleep_ms, 0),
                                            pool.submit(wait_for_gate, gate.path())};
    auto [done, not_done] = mproc::wait(rs, std::nullopt, mproc::FIRST_COMPLETED);
    ASSERT_EQ(done.size(), 1u);
    EXPECT_EQ(done[0].get(), 0);
    EXPECT_EQ(not_done.size(), 1u);
    EXPECT_FALSE(rs[1].ready());
    gate.open();
    auto all = mproc::wait(rs);  // ALL_COMPLETED, no timeout
    EXPECT_EQ(all.done.size(), 2u);
    EXPECT_TRUE(all.not_done.empty());
  }
  {
    // (The failing task first: a process pool may queue a task behind a long one on the same
    // worker.)
    Gate gate;
    std::vector<mproc::AsyncResult<int>> rs{pool.submit(fail_after_ms, 50),
                                            pool.submit(wait_for_gate, gate.path()),
                                            pool.submit(wait_for_gate, gate.path())};
    auto [done, not_done] = mproc::wait(rs, std::nullopt, mproc::FIRST_EXCEPTION);
    EXPECT_EQ(not_done.size(), 2u);
    ASSERT_EQ(done.size(), 1u);
    EXPECT_NE(done[0].exception(), nullptr);
    EXPECT_THROW(rs[0].get(), std::runtime_error);
    EXPECT_FALSE(rs[1].ready());
    EXPECT_FALSE(rs[2].ready());
    gate.open();
    EXPECT_EQ(mproc::wait(rs).done.size(), 3u);
  }
  {
    // FIRST_EXCEPTION with none failing waits for all; a timeout returns what is done.
    std::vector<mproc::AsyncResult<int>> rs{pool.submit(sleep_ms, 0), pool.submit(sleep_ms, 100)};
    auto r1 = mproc::wait(rs, 20s, mproc::FIRST_EXCEPTION);
    EXPECT_EQ(r1.done.size(), 2u);
    Gate gate;
    std::vector<mproc::AsyncResult<int>> slow{pool.submit(wait_for_gate, gate.path())};
    const auto t0 = Clock::now();
    auto r2 = mproc::wait(slow, 100ms);
    EXPECT_GE(elapsed_ms(t0), 90.0);  // never before its deadline
    EXPECT_TRUE(r2.done.empty());
    EXPECT_EQ(r2.not_done.size(), 1u);
    EXPECT_FALSE(slow[0].ready()) << "the timeout passed while the task ran on";
    gate.open();
    EXPECT_EQ(slow[0].get(), 1);
  }
}

TYPED_TEST(Futures, DoneCallbacksRunExactlyOnceBeforeAndAfterCompletion) {
  std::atomic<int> before{0}, after{0}, failed{0}, nullary{0};
  std::atomic<bool> before_on_main{true};
  const auto main_id = std::this_thread::get_id();
  {
    TypeParam pool(2);
    // Gated: the first two callbacks are surely added while it runs.
    Gate gate;
    auto r = pool.submit(wait_for_gate, gate.path());
    r.add_done_callback([&](const mproc::AsyncResult<int>& x) {
      EXPECT_TRUE(x.ready());
      EXPECT_EQ(x.get(), 1);
      before_on_main = std::this_thread::get_id() == main_id;
      ++before;
    });
    r.add_done_callback([&] { ++nullary; });
    EXPECT_FALSE(r.ready());
    gate.open();
    EXPECT_EQ(r.get(), 1);
    EXPECT_TRUE(eventually([&] { return before.load() == 1; }, mproc_test::scaled(5000ms)));
    // Already complete: runs at once, here.
    r.add_done_callback([&](const mproc::AsyncResult<int>&) { ++after; });
    EXPECT_EQ(after.load(), 1);

    auto f = pool.submit(fail_after_ms, 20);
    f.add_done_callback([&](const mproc::AsyncResult<int>& x) {
      if (x.exception()) ++failed;
    });
    EXPECT_THROW(f.get(), std::runtime_error);
    pool.close();
    pool.join();  // waits for callbacks
  }
  EXPECT_EQ(before.load(), 1);
  EXPECT_EQ(nullary.load(), 1);
  EXPECT_EQ(after.load(), 1);
  EXPECT_EQ(failed.load(), 1);
  EXPECT_FALSE(before_on_main.load()) << "a pending result's callback runs on the callback thread";
}

TYPED_TEST(Futures, RunningCancelledAndException) {
  TypeParam pool(1);
  // Gated: `queued` surely waits behind it, so cancel() surely finds it not started.
  Gate gate;
  auto slow = pool.submit(wait_for_gate, gate.path());
  auto queued = pool.submit(sleep_ms, 0);
  ASSERT_TRUE(all_running({slow})) << "the first task never started";
  EXPECT_FALSE(queued.running());
  EXPECT_TRUE(queued.cancel());
  EXPECT_TRUE(queued.cancelled());
  EXPECT_TRUE(queued.ready());
  EXPECT_THROW(queued.get(), mproc::CancelledError);
  EXPECT_NE(queued.exception(), nullptr);
  EXPECT_TRUE(slow.running());
  gate.open();
  EXPECT_EQ(slow.exception(), nullptr);  // waits; success: empty
  EXPECT_FALSE(slow.running());
  EXPECT_FALSE(slow.cancelled());
  auto bad = pool.submit(fail_after_ms, 0);
  auto e = bad.exception(mproc_test::scaled(5s));
  ASSERT_NE(e, nullptr);
  EXPECT_THROW(std::rethrow_exception(e), std::runtime_error);
  EXPECT_FALSE(bad.cancelled());
  Gate pending_gate;
  auto pending = pool.submit(wait_for_gate, pending_gate.path());
  EXPECT_THROW(pending.exception(10ms), mproc::TimeoutError);
  pending_gate.open();
  EXPECT_EQ(pending.get(), 1);
}

// Both workers are held on gated tasks while the queue is filled and cancelled, so none of the
// queued tasks can start: every one of them must come back cancelled, and only the two gated
// ones run. The gate opens once the queue is seen cancelled (shutdown(wait=true) blocks until
// the running tasks end).
TYPED_TEST(Futures, ShutdownCancelFuturesCancelsTheQueue) {
  this->set_test_deadline(90);
  TypeParam pool(2);
  Gate gate;
  std::vector<mproc::AsyncResult<int>> running{pool.submit(wait_for_gate, gate.path()),
                                               pool.submit(wait_for_gate, gate.path())};
  ASSERT_TRUE(all_running(running)) << "the two gated tasks did not both start";
  constexpr int kTasks = 10'000;
  std::vector<mproc::AsyncResult<int>> rs;
  rs.reserve(kTasks);
  for (int i = 0; i < kTasks; ++i) rs.push_back(pool.submit(square, i));
  const auto t0 = Clock::now();
  double cancel_ms = -1;
  std::thread opener([&] {
    const bool all_cancelled = eventually(
        [&] {
          return std::all_of(rs.begin(), rs.end(), [](const auto& r) { return r.cancelled(); });
        },
        mproc_test::scaled(30s));
    if (all_cancelled) cancel_ms = elapsed_ms(t0);
    gate.open();  // also when they were not: the test goes on to say which ran
  });
  pool.shutdown(/*wait=*/true, /*cancel_futures=*/true);
  opener.join();
  int ok = 0, cancelled = 0;
  for (auto& r : rs) {
    ASSERT_TRUE(r.ready());
    if (r.cancelled()) {
      ++cancelled;
      EXPECT_THROW(r.get(), mproc::CancelledError);
    } else {
      r.get();
      ++ok;
    }
  }
  EXPECT_EQ(cancelled, kTasks) << ok << " queued tasks ran";
  for (auto& r : running) {
    EXPECT_FALSE(r.cancelled()) << "a running task was cancelled";
    EXPECT_EQ(r.get(), 1);
  }
  EXPECT_THROW(pool.submit(square, 1), mproc::PoolStateError);
  std::printf("[ measure  ] shutdown(cancel_futures) of %d queued: all cancelled after %.1f ms\n",
              kTasks, cancel_ms);
}

TYPED_TEST(Futures, MaxQueuedHoldsTheOutstandingCountAtTheBound) {
  for (std::size_t n : {1, 2, 4}) {
    mproc::PoolOptions o;
    o.processes = n;
    o.max_queued = 3;
    TypeParam pool(o);
    std::vector<mproc::AsyncResult<int>> rs;
    std::size_t peak = 0;
    const auto t0 = Clock::now();
    for (int i = 0; i < 24; ++i) {
      rs.push_back(pool.submit(sleep_ms, 20));
      const std::size_t out = count_unfinished<TypeParam>(rs);
      peak = std::max(peak, out);
      ASSERT_LE(out, 3u) << "after submission " << i << " with " << n << " workers";
    }
    EXPECT_EQ(peak, 3u);
    for (auto& r : rs) EXPECT_EQ(r.get(), 20);
    // 24 tasks of 20 ms, at most 3 at once: at least 8 rounds.
    EXPECT_GE(elapsed_ms(t0), 150.0);
  }
}

TYPED_TEST(Futures, MaxQueuedWithATimeoutThrowsFull) {
  mproc::PoolOptions o;
  o.processes = 2;
  o.max_queued = 1;
  o.max_queued_timeout = 100ms;
  TypeParam pool(o);
  // Gated: the pool stays full for as long as the test needs. A submit that ignored its timeout
  // would wait for the gate's own 30 s and then succeed, failing the EXPECT_THROW.
  Gate gate;
  auto slow = pool.submit(wait_for_gate, gate.path());
  const auto t0 = Clock::now();
  EXPECT_THROW(pool.submit(square, 2), mproc::Full);
  EXPECT_GE(elapsed_ms(t0), 90.0);  // never before its timeout
  EXPECT_FALSE(slow.ready());
  gate.open();
  EXPECT_EQ(slow.get(), 1);
  EXPECT_EQ(pool.submit(square, 2).get(), 4);  // room again
}

TYPED_TEST(Futures, ImapBuffersizeBoundsTheReadAhead) {
  for (std::size_t chunksize : {1, 3}) {
    for (bool ordered : {true, false}) {
      TypeParam pool(2);
      std::atomic<int> reads{0};
      auto counted = std::views::iota(0, 60) | std::views::transform([&reads](int i) {
                       reads.fetch_add(1);
                       return i;
                     });
      constexpr std::size_t kBuffer = 2;
      const int bound = static_cast<int>(kBuffer * chunksize);
      int consumed = 0;
      int worst = 0;
      std::multiset<int> got;
      auto run = [&](auto&& range) {
        for (int y : range) {
          ++consumed;
          got.insert(y);
          worst = std::max(worst, reads.load() - consumed);
          ASSERT_LE(reads.load() - consumed, bound) << "chunksize " << chunksize;
        }
      };
      if (ordered) {
        run(pool.imap(square, counted, chunksize, kBuffer));
      } else {
        run(pool.imap_unordered(square, counted, chunksize, kBuffer));
      }
      EXPECT_EQ(consumed, 60);
      EXPECT_EQ(reads.load(), 60);
      EXPECT_EQ(got.size(), 60u);
      EXPECT_GT(worst, 0);
    }
  }
}

TYPED_TEST(Futures, ImapOverASourceThatThrowsPartWay) {
  // CPython's test_imap_handle_iterable_exception: results before the bad element, then its
  // exception once, then the end.
  for (bool ordered : {true, false}) {
    for (std::size_t chunksize : {1, 2}) {
      TypeParam pool(2);
      auto source = std::views::iota(0, 10) | std::views::transform([](int i) {
                      if (i == 6) throw std::runtime_error("bad element");
                      return i;
                    });
      auto it = ordered ? pool.imap(square, source, chunksize)
                        : pool.imap_unordered(square, source, chunksize);
      std::multiset<int> got;
      std::vector<int> in_order;
      bool threw = false;
      for (int step = 0; step < 20; ++step) {
        try {
          auto v = it.next();
          if (!v) break;
          EXPECT_FALSE(threw) << "a value after the source's exception";
          got.insert(*v);
          in_order.push_back(*v);
        } catch (const std::runtime_error& e) {
          EXPECT_FALSE(threw) << "thrown twice";
          EXPECT_STREQ(e.what(), "bad element");
          threw = true;
        }
      }
      EXPECT_TRUE(threw);
      EXPECT_EQ(got, (std::multiset<int>{0, 1, 4, 9, 16, 25}))
          << "ordered " << ordered << " chunksize " << chunksize;
      if (ordered) {
        EXPECT_EQ(in_order, (std::vector<int>{0, 1, 4, 9, 16, 25}));
      }
      EXPECT_FALSE(it.next().has_value());  // still ended
    }
  }
}

// The plain get() path: how long 20,000 apply_async + get take (printed; compared by hand with
// main's numbers, since this machine is shared).
TYPED_TEST(Futures, MeasureApplyAsyncGet) {
  TypeParam pool(2);
  constexpr int kTasks = 20'000;
  std::vector<mproc::AsyncResult<int>> rs;
  rs.reserve(kTasks);
  const auto t0 = Clock::now();
  for (int i = 0; i < kTasks; ++i) rs.push_back(pool.apply_async(square, i));
  long long sum = 0;
  for (auto& r : rs) sum += r.get();
  const double ms = elapsed_ms(t0);
  EXPECT_GT(sum, 0);
  std::printf("[ measure  ] %d apply_async+get: %.1f ms (%.2f us/task)\n", kTasks, ms,
              ms * 1000 / kTasks);
}

}  // namespace
