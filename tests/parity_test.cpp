// Python parity and value semantics (issue 18): Pool(-1), Connection::send_bytes of strings and
// literals, Lock/RLock::locked, Event::wait's result, ListProxy's list methods, Queue::shutdown,
// movable Pool / ThreadPool / Process (std::vector<Process>, a Pool returned from a factory).
// Every test checks that it leaves no child process and no descriptor behind.
#include <gtest/gtest.h>

#include <unistd.h>
#include <cstdlib>

#include <chrono>
#include <mproc/mproc.hpp>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "test_support.hpp"

using namespace std::chrono_literals;
using mproc_test::Clock;
using mproc_test::eventually;

namespace {

class Parity : public mproc_test::LeakCheck {};

void do_nothing() {}

// The first child starts this process's reaper, whose epoll descriptor lives as long as the
// process: start it before any leak check counts descriptors.
class StartReaper : public ::testing::Environment {
 public:
  void SetUp() override {
    mproc::Process p(do_nothing);
    p.start();
    p.join();
  }
};
[[maybe_unused]] auto* const kStartReaper = ::testing::AddGlobalTestEnvironment(new StartReaper);

int square(int x) {
  return x * x;
}

// ---- Pool(-1) ----------------------------------------------------------------------------------

TEST_F(Parity, NegativeOrAbsurdProcessCountsThrowInvalidArgument) {
  EXPECT_THROW(mproc::Pool(-1), std::invalid_argument);
  EXPECT_THROW(mproc::Pool(100'000), std::invalid_argument);
  EXPECT_THROW(mproc::ThreadPool(-1), std::invalid_argument);
  EXPECT_THROW(mproc::ThreadPool(100'000), std::invalid_argument);
  mproc::PoolOptions o;
  o.processes = static_cast<std::size_t>(-3);
  EXPECT_THROW(mproc::Pool{o}, std::invalid_argument);
  EXPECT_THROW(mproc::ThreadPool{o}, std::invalid_argument);
  try {
    mproc::Pool p(-1);
    FAIL() << "no exception";
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "Pool: the number of processes must be at least 1 (got -1)");
  }
  mproc::Pool ok(1);  // sane counts still work
  EXPECT_EQ(ok.apply(square, 3), 9);
}

// ---- Connection::send_bytes --------------------------------------------------------------------

TEST_F(Parity, SendBytesTakesStringsAndLiterals) {
  auto [a, b] = mproc::Pipe<int>();
  const std::string s("hello\0world", 11);
  a.send_bytes(s);
  a.send_bytes("literal");
  a.send_bytes(std::string_view("view"));
  const char* cstr = "cstr";
  a.send_bytes(cstr);
  const std::vector<char> raw{'r', 'a', 'w'};
  a.send_bytes(raw);
  EXPECT_EQ(b.recv_bytes(), s);
  EXPECT_EQ(b.recv_bytes(), "literal");  // no terminating NUL
  EXPECT_EQ(b.recv_bytes(), "view");
  EXPECT_EQ(b.recv_bytes(), "cstr");
  EXPECT_EQ(b.recv_bytes(), "raw");
}

// ---- Lock::locked, Event::wait -----------------------------------------------------------------

void report_locked(mproc::Lock l, mproc::RLock r, mproc::Queue<int> q) {
  q.put((l.locked() ? 1 : 0) + (r.locked() ? 2 : 0));
}

TEST_F(Parity, LockedAndEventWaitResults) {
  mproc::Lock l;
  mproc::RLock r;
  EXPECT_FALSE(l.locked());
  EXPECT_FALSE(r.locked());
  l.acquire();
  r.acquire();
  r.acquire();
  EXPECT_TRUE(l.locked());
  EXPECT_TRUE(r.locked());
  mproc::Queue<int> q;
  mproc::Process p(report_locked, l, r, q);  // another process sees them held
  p.start();
  EXPECT_EQ(q.get(10s), 3);
  p.join();
  l.release();
  r.release();
  EXPECT_TRUE(r.locked());  // one level left
  r.release();
  EXPECT_FALSE(l.locked());
  EXPECT_FALSE(r.locked());

  mproc::Event e;
  EXPECT_FALSE(e.wait(10ms));
  e.set();
  EXPECT_TRUE(e.wait());
  EXPECT_TRUE(e.wait(10ms));
}

// ---- ListProxy ---------------------------------------------------------------------------------

TEST_F(Parity, ListProxyListMethods) {
  // As manager_test does: under the sanitizers the server (a child with threads, forked from
  // this threaded process) may deadlock in GCC 12's sanitizer allocator; the fork server forks
  // it from a process that has no threads.
  if (mproc_test::kSanitized && !std::getenv("MPROC_START_METHOD")) {
    mproc::set_start_method("forkserver");
  }
  mproc::Manager manager;
  auto l = manager.list<int>();
  l.extend(std::vector<int>{1, 2, 3, 2});
  l.insert(0, 0);    // [0 1 2 3 2]
  l.insert(-1, 9);   // [0 1 2 3 9 2]
  l.insert(100, 7);  // [0 1 2 3 9 2 7]
  EXPECT_EQ(l.snapshot(), (std::vector<int>{0, 1, 2, 3, 9, 2, 7}));
  EXPECT_EQ(l.count(2), 2u);
  EXPECT_EQ(l.count(5), 0u);
  EXPECT_EQ(l.index(2), 2u);
  EXPECT_EQ(l.index(2, 3), 5u);
  EXPECT_THROW(l.index(2, 3, 5), std::invalid_argument);
  EXPECT_THROW(l.index(42), std::invalid_argument);
  l.remove(2);  // the first one
  EXPECT_EQ(l.snapshot(), (std::vector<int>{0, 1, 3, 9, 2, 7}));
  EXPECT_THROW(l.remove(42), std::invalid_argument);
  l.reverse();
  std::vector<int> iterated;
  for (int x : l) iterated.push_back(x);
  EXPECT_EQ(iterated, (std::vector<int>{7, 2, 9, 3, 1, 0}));

  auto names = manager.list<std::string>();
  names.append("b");
  names.insert(0, "a");
  EXPECT_EQ(names.index("b"), 1u);
  names.remove("a");
  EXPECT_EQ(names.size(), 1u);
}

// ---- Queue::shutdown ---------------------------------------------------------------------------

void blocked_getter(mproc::Queue<int> q, mproc::Queue<int> report) {
  try {
    q.get();
    report.put(0);
  } catch (const mproc::ShutDown&) {
    report.put(1);
  }
}

TEST_F(Parity, QueueShutdownDrainsThenRaises) {
  mproc::Queue<int> q;
  q.put(1);
  q.put(2);
  EXPECT_FALSE(q.is_shutdown());
  q.shutdown();
  EXPECT_TRUE(q.is_shutdown());
  EXPECT_THROW(q.put(3), mproc::ShutDown);
  EXPECT_EQ(q.get(), 1);
  EXPECT_EQ(q.get(), 2);
  EXPECT_THROW(q.get(), mproc::ShutDown);
  EXPECT_THROW(q.get(10ms), mproc::ShutDown);
  EXPECT_THROW(q.get_nowait(), mproc::ShutDown);
}

TEST_F(Parity, QueueShutdownImmediateDropsItems) {
  mproc::JoinableQueue<int> q(4);
  for (int i = 0; i < 4; ++i) q.put(i);
  q.shutdown(/*immediate=*/true);
  EXPECT_EQ(q.qsize(), 0u);
  EXPECT_THROW(q.get(), mproc::ShutDown);
  EXPECT_TRUE(q.join(1s));  // dropped items count as done
}

TEST_F(Parity, QueueShutdownWakesBlockedGettersAndPutters) {
  mproc::Queue<int> q;
  mproc::Queue<int> report;
  mproc::Process p(blocked_getter, q, report);  // a getter in another process
  p.start();
  std::optional<bool> thread_woke;
  std::thread t([&] {
    try {
      q.get();
      thread_woke = false;
    } catch (const mproc::ShutDown&) {
      thread_woke = true;
    }
  });
  ::usleep(200'000);
  q.shutdown();
  t.join();
  EXPECT_EQ(thread_woke, std::optional<bool>(true));
  EXPECT_EQ(report.get(10s), 1);
  p.join();

  mproc::Queue<int> full(1);
  full.put(0);
  std::optional<bool> putter_woke;
  std::thread putter([&] {
    try {
      full.put(1);
      putter_woke = false;
    } catch (const mproc::ShutDown&) {
      putter_woke = true;
    }
  });
  ::usleep(100'000);
  full.shutdown();
  putter.join();
  EXPECT_EQ(putter_woke, std::optional<bool>(true));
  EXPECT_EQ(full.get(), 0);
}

// ---- value semantics ---------------------------------------------------------------------------

void exit_with(int code) {
  mproc::exit(code);
}

TEST_F(Parity, VectorOfTenProcesses) {
  static_assert(std::is_nothrow_move_constructible_v<mproc::Process>);
  std::vector<mproc::Process> ps;  // no reserve: moved while running as the vector grows
  for (int i = 0; i < 10; ++i) {
    ps.emplace_back(exit_with, i);
    ps.back().start();
  }
  for (auto& p : ps) p.join();
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(ps[static_cast<std::size_t>(i)].exitcode(), std::optional<int>(i));
  }
  EXPECT_TRUE(mproc::active_children().empty());

  mproc::Process a(exit_with, 3);
  a.start();
  mproc::Process b = std::move(a);
  EXPECT_THROW(a.join(), mproc::ProcessError);
  EXPECT_THROW((void)a.exitcode(), mproc::ProcessError);
  try {
    a.start();
  } catch (const mproc::ProcessError& e) {
    EXPECT_STREQ(e.what(), "use of a moved-from Process");
  }
  bool found = false;
  for (auto* c : mproc::active_children()) found = found || c == &b;
  b.join();
  EXPECT_EQ(b.exitcode(), std::optional<int>(3));
  (void)found;  // may have ended already; when listed, it is listed as b
}

}  // namespace

namespace named_demo {
struct Worker : mproc::Process {
  void run() override {}
  template <class A>
  void serialize(A&) {}
};
}  // namespace named_demo
MPROC_REGISTER_PROCESS(named_demo::Worker);

namespace {

TEST_F(Parity, SubclassNamedAfterItsClassAndPrintable) {
  named_demo::Worker w;
  EXPECT_EQ(w.name().rfind("Worker-", 0), 0u) << w.name();
  std::ostringstream before;
  before << w;
  EXPECT_EQ(before.str().rfind("<Worker name='Worker-", 0), 0u) << before.str();
  EXPECT_NE(before.str().find(" initial>"), std::string::npos) << before.str();
  w.start();
  w.join();
  std::ostringstream after;
  after << w;
  EXPECT_NE(after.str().find(" pid=" + std::to_string(w.pid())), std::string::npos) << after.str();
  EXPECT_NE(after.str().find(" stopped exitcode=0>"), std::string::npos) << after.str();

  mproc::Process plain;
  EXPECT_EQ(plain.name().rfind("Process-", 0), 0u);
  named_demo::Worker renamed;
  renamed.name("custom");
  EXPECT_EQ(renamed.name(), "custom");
}

mproc::Pool make_pool(std::size_t n) {
  mproc::Pool pool(n);
  EXPECT_EQ(pool.apply(square, 2), 4);
  return pool;
}

struct Service {
  mproc::Pool pool;
  int offset = 0;
};

TEST_F(Parity, PoolFromAFactoryMovedIntoAStruct) {
  Service s{make_pool(2), 1};
  EXPECT_EQ(s.pool.processes(), 2u);
  EXPECT_EQ(s.pool.map(square, std::vector<int>{1, 2, 3}), (std::vector<int>{1, 4, 9}));

  std::optional<mproc::Pool> held;
  held.emplace(make_pool(1));
  auto r = held->apply_async(square, 5);
  mproc::Pool moved = std::move(*held);
  EXPECT_EQ(r.get(), 25);  // a result outlives the move
  EXPECT_THROW(held->apply(square, 1), mproc::PoolStateError);
  EXPECT_THROW(held->close(), mproc::PoolStateError);
  EXPECT_EQ(held->processes(), 0u);
  held.reset();  // destroying the moved-from pool does nothing
  EXPECT_EQ(moved.apply(square, 6), 36);

  moved = make_pool(1);  // move assignment joins the replaced pool first
  EXPECT_EQ(moved.apply(square, 7), 49);

  mproc::ThreadPool tp(2);
  mproc::ThreadPool tp2 = std::move(tp);
  EXPECT_THROW(tp.apply(square, 1), mproc::PoolStateError);
  EXPECT_EQ(tp2.apply(square, 8), 64);
}

}  // namespace
