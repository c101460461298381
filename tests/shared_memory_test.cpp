// Value, Array, RawValue, RawArray across fork children and pool workers (fork and spawn).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <mproc/pool.hpp>
#include <mproc/shared_memory.hpp>
#include <mutex>
#include <numeric>
#include <optional>
#include <span>
#include <vector>

#include "fork_children.hpp"
#include "start_methods.hpp"

using namespace std::chrono_literals;
using mproc_test::Children;

namespace {

template <class T>
T round_trip(const T& handle) {
  mproc::detail::Bytes bytes;
  {
    mproc::detail::WireOutputArchive out(bytes);
    out(handle);
  }
  mproc::detail::WireInputArchive in(std::span<const char>(bytes.data(), bytes.size()));
  T copy{mproc::detail::EmptyHandle{}};
  in(copy);
  return copy;
}

}  // namespace

static_assert(mproc::is_wire_serializable_v<mproc::Value<int>>);
static_assert(mproc::is_wire_serializable_v<mproc::Array<double>>);
static_assert(mproc::is_wire_serializable_v<mproc::RawValue<long>>);
static_assert(mproc::is_wire_serializable_v<mproc::RawArray<char>>);

TEST(Value, TenProcessesAddingUnderItsOwnLockGiveAnExactTotal) {
  mproc::Value<int> v(0);
  Children kids;
  for (int p = 0; p < 10; ++p) {
    kids.spawn([v] {
      for (int i = 0; i < 1000; ++i) {
        std::lock_guard g(v);  // a Value is Lockable: its own lock
        ++v.get_obj();
      }
      return 0;
    });
  }
  kids.join_ok();
  EXPECT_EQ(v.get(), 10000);
}

TEST(Value, TenProcessesAddingWithGetLockExplicitly) {
  mproc::Value<int> v(0);
  Children kids;
  for (int p = 0; p < 10; ++p) {
    kids.spawn([v] {
      for (int i = 0; i < 1000; ++i) {
        v.get_lock().acquire();
        v.get_obj() += 1;
        v.get_lock().release();
      }
      return 0;
    });
  }
  kids.join_ok();
  EXPECT_EQ(v.get(), 10000);
}

TEST(Value, WithoutALockUnderASeparateLock) {
  mproc::Value<long> v(0, /*lock=*/false);
  EXPECT_FALSE(v.has_lock());
  EXPECT_THROW(v.get_lock(), mproc::LockError);
  mproc::Lock lock;
  Children kids;
  for (int p = 0; p < 10; ++p) {
    kids.spawn([v, lock] {
      for (int i = 0; i < 1000; ++i) {
        std::lock_guard g(lock);
        v.set(v.get() + 1);
      }
      return 0;
    });
  }
  kids.join_ok();
  EXPECT_EQ(v.get(), 10000);
}

TEST(Value, SharesAGivenRLock) {
  mproc::RLock shared;
  mproc::Value<int> a(1, shared);
  mproc::Value<double> b(2.5, shared);
  std::lock_guard g(a);
  EXPECT_TRUE(b.get_lock().is_owned());  // the same RLock, re-entered by get()
  EXPECT_EQ(b.get(), 2.5);
}

TEST(Value, CopiesAreHandlesToTheSameObject) {
  mproc::Value<int> a(5);
  mproc::Value<int> b = a;
  b.set(7);
  EXPECT_EQ(a.get(), 7);
  mproc::Value<int> c;  // a new shared zero
  EXPECT_EQ(c.get(), 0);
  c.set(1);
  EXPECT_EQ(a.get(), 7);
}

TEST(Value, HandleRoundTripsThroughTheWire) {
  mproc::Value<int> v(41);
  mproc::Value<int> w = round_trip(v);
  w.set(42);
  EXPECT_EQ(v.get(), 42);
  EXPECT_EQ(&v.get_obj(), &w.get_obj());  // this process maps the arena once
  std::lock_guard g(w);
  EXPECT_TRUE(v.get_lock().is_owned());
}

TEST(Value, DecodingAsAnotherTypeIsASerializationError) {
  mproc::Value<int> v(1);
  mproc::detail::Bytes bytes;
  {
    mproc::detail::WireOutputArchive out(bytes);
    out(v);
  }
  mproc::detail::WireInputArchive in(std::span<const char>(bytes.data(), bytes.size()));
  mproc::Value<float> f{mproc::detail::EmptyHandle{}};
  EXPECT_THROW(in(f), mproc::SerializationError);
}

TEST(Value, CorruptHandleIsASerializationError) {
  mproc::detail::ShmHandleWire w;
  w.dev = 1;
  w.ino = 2;
  w.offset = 64;
  w.size = 4;
  w.pid[0] = ::getpid();
  w.fd[0] = 0;  // stdin: not an mproc arena
  mproc::detail::Bytes bytes;
  {
    mproc::detail::WireOutputArchive out(bytes);
    out(false, w);
  }
  mproc::detail::WireInputArchive in(std::span<const char>(bytes.data(), bytes.size()));
  mproc::Value<int> v{mproc::detail::EmptyHandle{}};
  EXPECT_THROW(in(v), mproc::SerializationError);
}

TEST(Value, LockHolderKilledDoesNotDeadlockTheNextAcquirer) {
  mproc::Value<int> v(0);
  mproc::RawValue<int> held(0);
  Children kids;
  kids.spawn([v, held] {
    v.get_lock().acquire();
    v.get_obj() = 123;
    std::atomic_ref<int>(held.get_obj()).store(1);
    ::raise(SIGKILL);
    return 1;
  });
  const auto st = kids.join();
  ASSERT_TRUE(WIFSIGNALED(st[0]) && WTERMSIG(st[0]) == SIGKILL);
  ASSERT_EQ(std::atomic_ref<int>(held.get_obj()).load(), 1);
  ASSERT_TRUE(v.get_lock().acquire(true, 5s * mproc_test::kSlow)) << "dead holder deadlocked";
  EXPECT_TRUE(v.get_lock().previous_owner_died());
  EXPECT_EQ(v.get_lock().owner_deaths(), 1u);
  EXPECT_EQ(v.get_obj(), 123);
  v.get_lock().release();
  EXPECT_EQ(v.get(), 123);  // get() takes the lock afresh
  std::lock_guard g(v);
  EXPECT_FALSE(v.get_lock().previous_owner_died());
}

TEST(Array, ChildrenModifyElementsTheParentReads) {
  mproc::Array<int> a{1, 2, 3, 4};
  ASSERT_EQ(a.size(), 4u);
  Children kids;
  for (std::size_t i = 0; i < a.size(); ++i) {
    kids.spawn([a, i] {
      a.set(i, a.get(i) * 10);
      return 0;
    });
  }
  kids.join_ok();
  EXPECT_EQ(a.to_vector(), (std::vector<int>{10, 20, 30, 40}));
  std::span<int> s = a.span();
  EXPECT_EQ(std::accumulate(s.begin(), s.end(), 0), 100);
  int sum = 0;
  for (int x : a) sum += x;
  EXPECT_EQ(sum, 100);
  EXPECT_THROW(a.get(4), std::out_of_range);
}

TEST(Array, TenProcessesAddingHundredToElementZeroUnderItsLock) {
  mproc::Array<int> a{1, 0, 0};
  Children kids;
  for (int p = 0; p < 10; ++p) {
    kids.spawn([a] {
      for (int i = 0; i < 100; ++i) {
        std::lock_guard g(a.get_lock());
        a[0] += 1;
      }
      return 0;
    });
  }
  kids.join_ok();
  EXPECT_EQ(a[0], 1001);
}

TEST(Array, SizedZeroFilledLargeAndWithoutLock) {
  mproc::Array<double> z(3);
  EXPECT_EQ(z.to_vector(), (std::vector<double>{0, 0, 0}));
  mproc::Array<std::uint32_t> big(1 << 20, false);  // its own arena
  EXPECT_FALSE(big.has_lock());
  Children kids;
  kids.spawn([big] {
    for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<std::uint32_t>(i);
    return 0;
  });
  kids.join_ok();
  EXPECT_EQ(big[12345], 12345u);
  EXPECT_EQ(big[big.size() - 1], big.size() - 1);
  mproc::Array<int> empty(std::size_t{0});
  EXPECT_TRUE(empty.empty());
  EXPECT_EQ(round_trip(empty).size(), 0u);
}

TEST(Array, LockHolderKilledDoesNotDeadlock) {
  mproc::Array<int> a(2);
  Children kids;
  kids.spawn([a] {
    a.get_lock().acquire();
    a[0] = 7;
    ::raise(SIGKILL);
    return 1;
  });
  kids.join();
  ASSERT_TRUE(a.acquire(true, 5s * mproc_test::kSlow));
  EXPECT_TRUE(a.get_lock().previous_owner_died());
  a.release();
  EXPECT_EQ(a.get(0), 7);
}

TEST(RawValue, ChildWritesParentReads) {
  mproc::RawValue<double> x(1.5);
  struct Point {
    int x, y;
  };
  mproc::RawValue<Point> p(Point{1, 2});
  Children kids;
  kids.spawn([x, p] {
    x.set(x.get() * 2);
    p->y = 20;
    return 0;
  });
  kids.join_ok();
  EXPECT_EQ(x.get(), 3.0);
  EXPECT_EQ(p->x, 1);
  EXPECT_EQ((*p).y, 20);
}

TEST(RawValue, AtomicRefCounterAcrossProcesses) {
  mproc::RawValue<int> n(0);
  Children kids;
  for (int p = 0; p < 4; ++p) {
    kids.spawn([n] {
      for (int i = 0; i < 10000; ++i) std::atomic_ref<int>(n.get_obj()).fetch_add(1);
      return 0;
    });
  }
  kids.join_ok();
  EXPECT_EQ(n.get(), 40000);
}

TEST(RawArray, SpanIterationAndChildWrites) {
  mproc::RawArray<int> a(8);
  EXPECT_EQ(a.size(), 8u);
  Children kids;
  for (int i = 0; i < 8; ++i) {
    kids.spawn([a, i] {
      a[static_cast<std::size_t>(i)] = i * i;
      return 0;
    });
  }
  kids.join_ok();
  std::vector<int> got(a.begin(), a.end());
  EXPECT_EQ(got, (std::vector<int>{0, 1, 4, 9, 16, 25, 36, 49}));
  std::span<int> s = a.span();
  EXPECT_EQ(s[7], 49);
  const std::vector<int> src{5, 6};
  mproc::RawArray<int> b{std::span<const int>(src)};
  EXPECT_EQ(b.to_vector(), src);
}

// ---- through a Pool ------------------------------------------------------------------------

namespace {

int add_under_lock(mproc::Value<int> v, int n) {
  for (int i = 0; i < n; ++i) {
    std::lock_guard g(v);
    ++v.get_obj();
  }
  return n;
}

int scale_element(mproc::Array<int> a, int i) {
  a.set(static_cast<std::size_t>(i), a.get(static_cast<std::size_t>(i)) * 10);
  return a.get(static_cast<std::size_t>(i));
}

std::optional<mproc::Value<int>> g_init_value;
void keep_value(mproc::Value<int> v) {
  g_init_value = v;
}
int bump_init_value() {
  std::lock_guard g(*g_init_value);
  return ++g_init_value->get_obj();
}

class SharedMemoryPool
    : public mproc_test::WithStartMethod<::testing::TestWithParam<mproc::StartMethod>> {};

}  // namespace

TEST_P(SharedMemoryPool, ValueHandlesAsTaskArguments) {
  mproc::Value<int> v(0);
  mproc::Pool pool(options(3));
  std::vector<mproc::AsyncResult<int>> rs;
  for (int i = 0; i < 10; ++i) rs.push_back(pool.apply_async(add_under_lock, v, 100));
  for (auto& r : rs) EXPECT_EQ(r.get(60s * mproc_test::kSlow), 100);
  EXPECT_EQ(v.get(), 1000);
}

TEST_P(SharedMemoryPool, ObjectsMadeAfterThePoolStartedReachItsWorkers) {
  mproc::Pool pool(options(2));
  pool.apply(add_under_lock, mproc::Value<int>(0), 1);  // workers are up and running
  mproc::Value<int> v(0);  // in no worker's inherited memory: opened via /proc/<pid>/fd
  std::vector<mproc::AsyncResult<int>> rs;
  for (int i = 0; i < 4; ++i) rs.push_back(pool.apply_async(add_under_lock, v, 50));
  for (auto& r : rs) EXPECT_EQ(r.get(60s * mproc_test::kSlow), 50);
  EXPECT_EQ(v.get(), 200);
}

TEST_P(SharedMemoryPool, ArrayHandlesAsTaskArguments) {
  mproc::Array<int> a{1, 2, 3, 4};
  mproc::Pool pool(options(2));
  std::vector<mproc::AsyncResult<int>> rs;
  for (int i = 0; i < 4; ++i) rs.push_back(pool.apply_async(scale_element, a, i));
  for (int i = 0; i < 4; ++i) EXPECT_EQ(rs[static_cast<std::size_t>(i)].get(60s), (i + 1) * 10);
  EXPECT_EQ(a.to_vector(), (std::vector<int>{10, 20, 30, 40}));
}

TEST_P(SharedMemoryPool, ValueAsAnInitializerArgument) {
  mproc::Value<int> v(0);
  mproc::PoolOptions o = options(2);
  o.initializer(keep_value, v);
  mproc::Pool pool(o);
  std::vector<mproc::AsyncResult<int>> rs;
  for (int i = 0; i < 20; ++i) rs.push_back(pool.apply_async(bump_init_value));
  for (auto& r : rs) r.get(60s * mproc_test::kSlow);
  EXPECT_EQ(v.get(), 20);
}

INSTANTIATE_TEST_SUITE_P(StartMethods, SharedMemoryPool, mproc_test::all_start_methods(),
                         mproc_test::start_method_name);
