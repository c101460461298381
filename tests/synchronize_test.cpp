// Lock, RLock, Semaphore, BoundedSemaphore, Event, Condition, Barrier across fork children and
// pool workers (fork and spawn). Every multi-process wait is bounded by a deadline.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <concepts>
#include <mproc/pool.hpp>
#include <mproc/shared_memory.hpp>
#include <mproc/synchronize.hpp>
#include <mutex>
#include <thread>
#include <vector>

#include "fork_children.hpp"
#include "start_methods.hpp"

using namespace std::chrono_literals;
using mproc_test::Children;
using mproc_test::kSlow;

namespace {

// Lockable / TimedLockable, as the standard's named requirements ask.
template <class L>
concept TimedLockable = requires(L& l) {
  l.lock();
  l.unlock();
  { l.try_lock() } -> std::convertible_to<bool>;
  { l.try_lock_for(1ms) } -> std::convertible_to<bool>;
  { l.try_lock_until(std::chrono::steady_clock::now()) } -> std::convertible_to<bool>;
};
static_assert(TimedLockable<mproc::Lock>);
static_assert(TimedLockable<mproc::RLock>);
static_assert(TimedLockable<mproc::Semaphore>);
static_assert(TimedLockable<mproc::BoundedSemaphore>);
static_assert(TimedLockable<mproc::Condition>);
static_assert(mproc::is_wire_serializable_v<mproc::Lock>);
static_assert(mproc::is_wire_serializable_v<mproc::RLock>);
static_assert(mproc::is_wire_serializable_v<mproc::Semaphore>);
static_assert(mproc::is_wire_serializable_v<mproc::Event>);
static_assert(mproc::is_wire_serializable_v<mproc::Condition>);
static_assert(mproc::is_wire_serializable_v<mproc::Barrier>);

int load(const mproc::RawValue<int>& v) {
  return std::atomic_ref<int>(v.get_obj()).load();
}
void store(const mproc::RawValue<int>& v, int x) {
  std::atomic_ref<int>(v.get_obj()).store(x);
}

// Waits in a child until the parent stores a nonzero value (bounded: exits 2 on a hang).
bool await_flag(const mproc::RawValue<int>& v) {
  return mproc_test::eventually([&] { return load(v) != 0; }, 20s);
}

}  // namespace

// ---- Lock ----------------------------------------------------------------------------------

TEST(Lock, AcquireReleaseAndTryLockFromAnotherProcess) {
  mproc::Lock lock;
  EXPECT_TRUE(lock.acquire());
  EXPECT_TRUE(lock.is_owned());
  EXPECT_FALSE(lock.acquire(false));  // already held: a non-blocking attempt fails
  Children kids;
  kids.spawn([lock] {
    if (lock.try_lock()) return 1;
    if (lock.acquire(true, 20ms)) return 2;  // times out: the parent holds it
    return 0;
  });
  kids.join_ok();
  lock.release();
  EXPECT_FALSE(lock.is_owned());
  kids.spawn([lock] {
    if (!lock.acquire(true, 5s)) return 1;
    lock.release();
    return 0;
  });
  kids.join_ok();
}

TEST(Lock, MisuseThrowsLockError) {
  mproc::Lock lock;
  EXPECT_THROW(lock.release(), mproc::LockError);  // not held
  lock.acquire();
  EXPECT_THROW(lock.acquire(), mproc::LockError);  // would deadlock
  std::thread other([&] { EXPECT_THROW(lock.release(), mproc::LockError); });
  other.join();
  Children kids;
  kids.spawn([lock] {
    try {
      lock.release();
    } catch (const mproc::LockError&) {
      return 0;
    }
    return 1;
  });
  kids.join_ok();
  lock.release();
}

TEST(Lock, StdLockGuardUniqueLockAndTryLockFor) {
  mproc::Lock lock;
  {
    std::lock_guard g(lock);
    EXPECT_TRUE(lock.is_owned());
  }
  std::unique_lock u(lock, std::defer_lock);
  EXPECT_TRUE(u.try_lock_for(10ms));
  u.unlock();
  EXPECT_TRUE(u.try_lock_until(std::chrono::steady_clock::now() + 10ms));
  EXPECT_TRUE(lock.is_owned());
}

TEST(Lock, EightProcessesHundredThousandIncrementsEach) {
  mproc::Lock lock;
  mproc::RawValue<long> n(0);
  const int per = kSlow == 1 ? 100000 : 20000;
  Children kids;
  for (int p = 0; p < 8; ++p) {
    kids.spawn([lock, n, per] {
      for (int i = 0; i < per; ++i) {
        std::lock_guard g(lock);
        n.get_obj() += 1;
      }
      return 0;
    });
  }
  kids.join_ok(120s);
  EXPECT_EQ(n.get(), 8L * per);
}

TEST(Lock, HolderKilledThenNextAcquirerGetsItAndLearnsOwnerDied) {
  mproc::Lock lock;
  mproc::RawValue<int> holding(0);
  Children kids;
  kids.spawn([lock, holding] {
    lock.acquire();
    store(holding, 1);
    ::raise(SIGKILL);
    return 1;
  });
  const auto st = kids.join();
  ASSERT_TRUE(WIFSIGNALED(st[0]));
  ASSERT_EQ(load(holding), 1);
  ASSERT_TRUE(lock.acquire(true, 5s * kSlow)) << "the dead holder's lock was never recovered";
  EXPECT_TRUE(lock.previous_owner_died());
  EXPECT_EQ(lock.owner_deaths(), 1u);
  lock.release();
  ASSERT_TRUE(lock.acquire(true, 1s));
  EXPECT_FALSE(lock.previous_owner_died());  // a fresh acquisition from a live owner
  lock.release();
}

TEST(Lock, WaiterBlockedWhileTheHolderDiesIsWokenWithTheLock) {
  mproc::Lock lock;
  mproc::RawValue<int> holding(0), die(0);
  Children holder;
  holder.spawn([lock, holding, die] {
    lock.acquire();
    store(holding, 1);
    if (!await_flag(die)) return 2;
    ::raise(SIGKILL);
    return 1;
  });
  ASSERT_TRUE(mproc_test::eventually([&] { return load(holding) == 1; }));
  Children waiter;
  mproc::RawValue<int> result(0);
  waiter.spawn([lock, result] {
    const bool got = lock.acquire(true, 20s);  // blocks: the holder is alive
    store(result, got ? (lock.previous_owner_died() ? 1 : 2) : 3);
    if (got) lock.release();
    return 0;
  });
  store(die, 1);
  holder.join();
  waiter.join_ok();
  EXPECT_EQ(load(result), 1);
}

// ---- RLock ---------------------------------------------------------------------------------

TEST(RLock, ReentrantForItsOwner) {
  mproc::RLock r;
  r.acquire();
  r.acquire();
  EXPECT_TRUE(r.acquire(false));
  r.release();
  r.release();
  EXPECT_TRUE(r.is_owned());
  Children kids;
  kids.spawn([r] { return r.acquire(true, 20ms) ? 1 : 0; });  // still held once
  kids.join_ok();
  r.release();
  EXPECT_FALSE(r.is_owned());
  EXPECT_THROW(r.release(), mproc::LockError);
  kids.spawn([r] {
    if (!r.acquire(true, 5s)) return 1;
    r.release();
    return 0;
  });
  kids.join_ok();
}

TEST(RLock, ReleaseByANonOwnerIsAnError) {
  mproc::RLock r;
  r.acquire();
  Children kids;
  kids.spawn([r] {
    try {
      r.release();
    } catch (const mproc::LockError&) {
      return 0;
    }
    return 1;
  });
  kids.join_ok();
  std::thread t([&] { EXPECT_THROW(r.release(), mproc::LockError); });
  t.join();
  r.release();
}

TEST(RLock, TenStepCountdownAcrossProcesses) {
  mproc::RLock r;
  mproc::RawValue<int> counter(10);
  Children kids;
  for (int p = 0; p < 10; ++p) {
    kids.spawn([r, counter] {
      std::lock_guard outer(r);
      std::lock_guard inner(r);  // re-entered
      counter.get_obj() -= 1;
      return 0;
    });
  }
  kids.join_ok();
  EXPECT_EQ(counter.get(), 0);
}

TEST(RLock, HolderKilledAtDepthTwoIsRecovered) {
  mproc::RLock r;
  Children kids;
  kids.spawn([r] {
    r.acquire();
    r.acquire();
    ::raise(SIGKILL);
    return 1;
  });
  kids.join();
  ASSERT_TRUE(r.acquire(true, 5s * kSlow));
  EXPECT_TRUE(r.previous_owner_died());
  r.release();  // one level: the dead owner's levels died with it
  EXPECT_FALSE(r.is_owned());
}

// ---- Semaphore -----------------------------------------------------------------------------

namespace {
void run_limited(unsigned limit, int processes) {
  mproc::Semaphore sem(limit);
  mproc::RawValue<int> inside(0), max_inside(0);
  Children kids;
  for (int p = 0; p < processes; ++p) {
    kids.spawn([sem, inside, max_inside] {
      for (int round = 0; round < 20; ++round) {
        std::lock_guard g(sem);
        const int now = std::atomic_ref<int>(inside.get_obj()).fetch_add(1) + 1;
        std::atomic_ref<int> m(max_inside.get_obj());
        int seen = m.load();
        while (now > seen && !m.compare_exchange_weak(seen, now)) {
        }
        std::this_thread::sleep_for(100us);  // widen the window; not a timing assertion
        std::atomic_ref<int>(inside.get_obj()).fetch_sub(1);
      }
      return 0;
    });
  }
  kids.join_ok(60s);
  EXPECT_LE(load(max_inside), static_cast<int>(limit));
  EXPECT_GE(load(max_inside), 1);
  EXPECT_EQ(sem.get_value(), limit);
}
}  // namespace

TEST(Semaphore, TwoLimitsConcurrency) {
  run_limited(2, 8);
}
TEST(Semaphore, ThreeOfTenAtOnce) {
  run_limited(3, 10);
}

TEST(Semaphore, CountsAndTimesOut) {
  mproc::Semaphore sem(2);
  EXPECT_EQ(sem.get_value(), 2u);
  EXPECT_TRUE(sem.acquire());
  EXPECT_TRUE(sem.acquire(false));
  EXPECT_FALSE(sem.acquire(false));
  EXPECT_FALSE(sem.acquire(true, 20ms));
  sem.release();
  sem.release();
  sem.release();  // unbounded: above the initial value is fine
  EXPECT_EQ(sem.get_value(), 3u);
}

TEST(Semaphore, ReleaseFromAnotherProcessWakesAWaiter) {
  mproc::Semaphore sem(0);
  Children kids;
  kids.spawn([sem] { return sem.acquire(true, 20s) ? 0 : 1; });
  sem.release();  // by a process that never acquired it: semaphores have no owner
  kids.join_ok();
  EXPECT_EQ(sem.get_value(), 0u);
}

TEST(BoundedSemaphore, OverReleaseIsAnError) {
  mproc::BoundedSemaphore b(2);
  EXPECT_THROW(b.release(), mproc::LockError);
  b.acquire();
  b.release();
  EXPECT_THROW(b.release(), mproc::LockError);
  EXPECT_EQ(b.get_value(), 2u);
  Children kids;
  kids.spawn([b] {
    try {
      b.release();
    } catch (const mproc::LockError&) {
      return 0;
    }
    return 1;
  });
  kids.join_ok();
}

// ---- Event ---------------------------------------------------------------------------------

TEST(Event, SetClearIsSetAndTimedWait) {
  mproc::Event e;
  EXPECT_FALSE(e.is_set());
  EXPECT_FALSE(e.wait(20ms));  // never set: false after the timeout
  e.set();
  EXPECT_TRUE(e.is_set());
  EXPECT_TRUE(e.wait(0ms));
  e.wait();
  e.clear();
  EXPECT_FALSE(e.is_set());
  EXPECT_FALSE(e.wait(1ms));
}

TEST(Event, WaitersInOtherProcessesWakeOnSet) {
  mproc::Event e;
  mproc::Semaphore ready(0);
  Children kids;
  for (int p = 0; p < 4; ++p) {
    kids.spawn([e, ready, p] {
      ready.release();
      if (p % 2 == 0) {
        e.wait();
        return 0;
      }
      return e.wait(20s) ? 0 : 1;
    });
  }
  for (int p = 0; p < 4; ++p) ASSERT_TRUE(ready.acquire(true, 20s * kSlow));
  e.set();
  kids.join_ok();
}

TEST(Event, SetThenClearStillWakesTheWaiters) {
  mproc::Event e;
  mproc::RawValue<int> woke(0);
  Children kids;
  kids.spawn([e, woke] {
    const bool r = e.wait(20s);
    store(woke, r ? 1 : 2);
    return 0;
  });
  // Give the child a chance to be asleep; correctness does not depend on it.
  std::this_thread::sleep_for(20ms);
  e.set();
  e.clear();
  kids.join_ok();
  EXPECT_EQ(load(woke), 1);
}

// ---- Condition -----------------------------------------------------------------------------

TEST(Condition, Stage1NotifiesTwoStage2Waiters) {
  mproc::Condition cond;
  mproc::RawValue<int> stage(0), done(0);
  Children kids;
  for (int w = 0; w < 2; ++w) {
    kids.spawn([cond, stage, done] {
      std::unique_lock g(cond);
      if (!cond.wait_for([&] { return stage.get() >= 1; }, 20s)) return 1;
      std::atomic_ref<int>(done.get_obj()).fetch_add(1);
      return 0;
    });
  }
  kids.spawn([cond, stage] {
    std::lock_guard g(cond);
    stage.set(1);
    cond.notify_all();
    return 0;
  });
  kids.join_ok();
  EXPECT_EQ(load(done), 2);
}

TEST(Condition, NotifyOneAtATimeWithAGivenLock) {
  mproc::Lock lock;
  mproc::Condition cond(lock);
  mproc::RawValue<int> tickets(0), served(0);
  Children kids;
  for (int w = 0; w < 3; ++w) {
    kids.spawn([cond, tickets, served] {
      std::unique_lock g(cond);
      if (!cond.wait_for([&] { return tickets.get() > 0; }, 20s)) return 1;
      tickets.get_obj() -= 1;
      served.get_obj() += 1;
      return 0;
    });
  }
  for (int i = 0; i < 3; ++i) {
    std::lock_guard g(lock);  // the Condition's lock, through the Lock handle
    tickets.get_obj() += 1;
    cond.notify();
  }
  kids.join_ok();
  EXPECT_EQ(served.get(), 3);
  EXPECT_EQ(tickets.get(), 0);
}

TEST(Condition, TimeoutsAndMisuse) {
  mproc::Condition cond;
  EXPECT_THROW(cond.wait(1ms), mproc::LockError);
  EXPECT_THROW(cond.notify(), mproc::LockError);
  std::lock_guard g(cond);
  EXPECT_FALSE(cond.wait_for([] { return false; }, 20ms));
  EXPECT_TRUE(cond.wait_for([] { return true; }, 0ms));
  cond.acquire();  // its RLock re-enters; wait releases both levels and restores them
  bool timed_out = !cond.wait(5ms);
  (void)timed_out;  // may wake spuriously; the lock must be held twice again either way
  EXPECT_TRUE(cond.previous_owner_died() == false);
  cond.release();
  Children kids;
  kids.spawn([cond] { return cond.acquire(true, 20ms) ? 1 : 0; });  // still held once
  kids.join_ok();
}

// ---- Barrier -------------------------------------------------------------------------------

namespace {
mproc::RawValue<int>* g_actions = nullptr;
void count_action() {
  std::atomic_ref<int>(g_actions->get_obj()).fetch_add(1);
}
}  // namespace

TEST(Barrier, ThreePartiesWithActionOverManyRounds) {
  mproc::RawValue<int> actions(0);
  g_actions = &actions;
  mproc::Barrier b(3, count_action);
  EXPECT_EQ(b.parties(), 3u);
  mproc::RawArray<int> index_seen(3);
  Children kids;
  for (int p = 0; p < 3; ++p) {
    kids.spawn([b, index_seen] {
      for (int round = 0; round < 100; ++round) {
        const unsigned i = b.wait(20s);
        if (i >= 3) return 1;
        std::atomic_ref<int>(index_seen[i]).fetch_add(1);
      }
      return 0;
    });
  }
  kids.join_ok(60s);
  EXPECT_EQ(load(actions), 100);
  for (int x : index_seen) EXPECT_EQ(x, 100);  // each round hands out 0, 1, 2 once
  EXPECT_FALSE(b.broken());
}

TEST(Barrier, FourProcessesHundredRoundsInLockstep) {
  mproc::Barrier b(4);
  mproc::RawArray<int> round_of(4);
  Children kids;
  for (int p = 0; p < 4; ++p) {
    kids.spawn([b, round_of, p] {
      for (int round = 0; round < 100; ++round) {
        round_of[static_cast<std::size_t>(p)] = round;
        b.wait(20s);
        for (int q = 0; q < 4; ++q) {  // nobody is behind after the barrier
          if (std::atomic_ref<int>(round_of[static_cast<std::size_t>(q)]).load() < round) return 3;
        }
        b.wait(20s);
      }
      return 0;
    });
  }
  kids.join_ok(60s);
}

TEST(Barrier, NWaitingAbortBrokenAndReset) {
  mproc::Barrier b(3);
  Children kids;
  for (int p = 0; p < 2; ++p) {
    kids.spawn([b] {
      try {
        b.wait(20s);
      } catch (const mproc::BrokenBarrierError&) {
        return 0;
      }
      return 1;
    });
  }
  ASSERT_TRUE(mproc_test::eventually([&] { return b.n_waiting() == 2; }))
      << "n_waiting: " << b.n_waiting();
  b.abort();
  kids.join_ok();
  EXPECT_TRUE(b.broken());
  EXPECT_THROW(b.wait(1s), mproc::BrokenBarrierError);
  b.reset();
  EXPECT_FALSE(b.broken());
  EXPECT_EQ(b.n_waiting(), 0u);
  for (int p = 0; p < 2; ++p) kids.spawn([b] { return b.wait(20s) < 3 ? 0 : 1; });
  EXPECT_LT(b.wait(20s * kSlow), 3u);  // usable again after reset
  kids.join_ok();
}

TEST(Barrier, ResetWhileWaitingBreaksTheWaiters) {
  mproc::Barrier b(2);
  Children kids;
  kids.spawn([b] {
    try {
      b.wait(20s);
    } catch (const mproc::BrokenBarrierError&) {
      return 0;
    }
    return 1;
  });
  ASSERT_TRUE(mproc_test::eventually([&] { return b.n_waiting() == 1; }));
  b.reset();
  kids.join_ok();
  EXPECT_FALSE(b.broken());
}

TEST(Barrier, TimeoutBreaksIt) {
  mproc::Barrier b(2, nullptr, 10ms);
  EXPECT_THROW(b.wait(), mproc::BrokenBarrierError);  // its default timeout
  EXPECT_TRUE(b.broken());
}

// ---- through a Pool ------------------------------------------------------------------------

namespace {

int locked_adds(mproc::Lock lock, mproc::Value<int> v, int n) {
  for (int i = 0; i < n; ++i) {
    std::lock_guard g(lock);
    v.get_obj() += 1;
  }
  return n;
}

int wait_event(mproc::Event e, mproc::Semaphore started) {
  started.release();
  return e.wait(std::chrono::seconds(30)) ? 1 : 0;
}

int cond_signal(mproc::Condition c, mproc::RawValue<int> flag) {
  std::lock_guard g(c);
  flag.set(1);
  c.notify_all();
  return 1;
}

int barrier_index(mproc::Barrier b) {
  return static_cast<int>(b.wait(std::chrono::seconds(0)));
}

class SyncPool : public mproc_test::WithStartMethod<::testing::TestWithParam<mproc::StartMethod>> {
};

}  // namespace

TEST_P(SyncPool, LockAndValueHandlesAsTaskArguments) {
  mproc::Lock lock;
  mproc::Value<int> v(0, false);
  mproc::Pool pool(options(3));
  std::vector<mproc::AsyncResult<int>> rs;
  for (int i = 0; i < 8; ++i) rs.push_back(pool.apply_async(locked_adds, lock, v, 1000));
  for (auto& r : rs) EXPECT_EQ(r.get(60s * kSlow), 1000);
  EXPECT_EQ(v.get(), 8000);
}

TEST_P(SyncPool, EventSetByTheParentWakesTasks) {
  mproc::Event e;
  mproc::Semaphore started(0);
  mproc::Pool pool(options(2));
  auto a = pool.apply_async(wait_event, e, started);
  ASSERT_TRUE(started.acquire(true, 30s * kSlow)) << "the task never started";
  e.set();
  EXPECT_EQ(a.get(60s * kSlow), 1);
}

TEST_P(SyncPool, ConditionNotifiedFromATask) {
  mproc::Condition c;
  mproc::RawValue<int> flag(0);
  mproc::Pool pool(options(1));
  std::unique_lock g(c);
  auto r = pool.apply_async(cond_signal, c, flag);
  EXPECT_TRUE(c.wait_for([&] { return flag.get() == 1; }, 30s * kSlow));
  g.unlock();
  EXPECT_EQ(r.get(60s * kSlow), 1);
}

TEST_P(SyncPool, BarrierAndItsStateCrossTheWire) {
  mproc::Barrier b(1);  // one party: every wait completes a round at once
  mproc::Pool pool(options(1));
  EXPECT_EQ(pool.apply(barrier_index, b), 0);
  b.abort();
  // mproc's exception wire does not rebuild BrokenBarrierError (yet): it arrives as a
  // RemoteError naming it.
  try {
    pool.apply(barrier_index, b);
    ADD_FAILURE() << "a wait on an aborted barrier returned";
  } catch (const mproc::BrokenBarrierError&) {
  } catch (const mproc::RemoteError& e) {
    EXPECT_NE(e.type_name().find("BrokenBarrierError"), std::string::npos) << e.what();
  }
}

INSTANTIATE_TEST_SUITE_P(StartMethods, SyncPool, mproc_test::all_start_methods(),
                         mproc_test::start_method_name);
