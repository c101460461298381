// mproc::Manager across real processes: the seed's ten processes on one dict, exact counters
// under contention (update_with and a Lock proxy), every proxy type, proxies inside Pool tasks,
// TCP with the right and the wrong key from a separately started program, 50 clients at once,
// garbage / half-sent / stalled connections, a killed server and a shutdown with clients still
// blocked. Every wait is bounded: a hang fails with a message.
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <fstream>
#include <iterator>
#include <map>
#include <mproc/mproc.hpp>
#include <mutex>
#include <numeric>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "net.hpp"  // the handshake, to act as a misbehaving client
#include "test_support.hpp"

using namespace std::chrono_literals;

extern char** environ;

namespace {

using Dict = mproc::DictProxy<std::string, int>;

constexpr auto kJoin = 60s;

::testing::AssertionResult joined(mproc::Process& p) {
  if (p.join(kJoin)) return ::testing::AssertionSuccess();
  p.kill();
  p.join(5s);
  return ::testing::AssertionFailure() << p.name() << " did not end within 60 s";
}

void sleep_forever_child() {
  for (;;) ::pause();
}

int add_one(int x) {
  return x + 1;
}
std::string shout(std::string s) {
  return s + "!";
}
int fail_on_negative(int x) {
  if (x < 0) throw std::invalid_argument("negative");
  return x - 1;
}

// The seed (001 使用Manager共享数据): each process sets num and checks what items() shows.
void seed_child(int i, Dict d) {
  d.set("num", 100 + i);
  const auto items = d.items();
  const bool ok = items.size() == 1 && items[0].first == "num" && items[0].second == 100 + i;
  mproc::exit(ok ? 0 : 1);
}

void bump_n(Dict d, int n) {
  for (int i = 0; i < n; ++i) d.update_with("count", add_one);
}

void bump_locked(mproc::ValueProxy<int> v, mproc::LockProxy l, int n) {
  for (int i = 0; i < n; ++i) {
    std::lock_guard guard(l);
    v.set(v.get() + 1);
  }
}

int produce(mproc::QueueProxy<int> q, int x) {
  q.put(x * x);
  return x;
}

void hold_lock_then_wait(mproc::LockProxy l, mproc::Connection<int> c) {
  l.acquire();
  c.send(1);
  for (;;) ::pause();
}

void wait_event(mproc::EventProxy ready, mproc::EventProxy reply) {
  const bool got = ready.wait(30s);
  reply.set();
  mproc::exit(got ? 0 : 1);
}

// Blocks on an empty queue; the server dies or shuts down meanwhile: ManagerError, not a hang.
void blocked_get(mproc::QueueProxy<int> q, mproc::Connection<int> c) {
  c.send(1);
  try {
    q.get();
    mproc::exit(1);
  } catch (const mproc::ManagerError&) {
    mproc::exit(0);
  }
}

// Takes the lock, starts a child that outlives it (it inherits the process's connections),
// reports the child's pid, and waits to be killed.
void hold_lock_with_a_child(mproc::LockProxy l, mproc::Connection<int> c) {
  l.acquire();
  mproc::Process child(sleep_forever_child);
  child.start();
  c.send(child.pid());
  for (;;) ::pause();
}

void consume_one(mproc::QueueProxy<int> q, mproc::Connection<int> c) {
  c.send(1);
  q.get();
  mproc::exit(3);  // killed before an item ever arrives: never reached in the test
}

void many_updates(Dict d, int n) {
  for (int i = 0; i < n; ++i) d.update_with("total", add_one);
  mproc::exit(d.get("total") >= n ? 0 : 1);
}

void do_nothing() {}

class ManagerTest : public mproc_test::LeakCheck {
 public:
  // The first Process starts mproc's reaper (an epoll descriptor kept for the program's life):
  // start it before the leak checks count descriptors.
  static void SetUpTestSuite() {
    // Under the sanitizers a child forked from this threaded process may deadlock in the
    // sanitizer's allocator (GCC 12's ASan and TSan are not fork-safe with threads; TSan also
    // refuses threads in such a child) and the server is such a child with threads: start
    // servers and children from the fork server, forked before any thread.
    if (mproc_test::kSanitized && !std::getenv("MPROC_START_METHOD")) {
      mproc::set_start_method("forkserver");
    }
    mproc::Process p(do_nothing);
    p.start();
    p.join();
  }
};

TEST_F(ManagerTest, TenProcessesSetOneKeyAsTheSeedDoes) {
  mproc::Manager manager;
  auto d = manager.dict<std::string, int>();
  for (int i = 0; i < 10; ++i) {
    mproc::Process p(seed_child, i, d);
    p.start();
    ASSERT_TRUE(joined(p));
    EXPECT_EQ(p.exitcode(), 0) << "process " << i << " saw other items than ('num', " << 100 + i
                               << ")";
  }
  EXPECT_EQ(d.get("num"), 109);
  EXPECT_EQ(d.size(), 1u);
}

TEST_F(ManagerTest, EightProcessesIncrementOneKeyWithUpdateWithAndLoseNothing) {
  const int per = mproc_test::kSanitized ? 2000 : 10000;
  mproc::Manager manager;
  auto d = manager.dict<std::string, int>();
  std::deque<mproc::Process> ps;
  for (int i = 0; i < 8; ++i) ps.emplace_back(bump_n, d, per);
  for (auto& p : ps) p.start();
  for (auto& p : ps) {
    ASSERT_TRUE(joined(p));
    EXPECT_EQ(p.exitcode(), 0);
  }
  EXPECT_EQ(d.get("count"), 8 * per);
}

TEST_F(ManagerTest, ALockProxyMakesGetThenSetAtomic) {
  const int per = mproc_test::kSanitized ? 100 : 500;
  mproc::Manager manager;
  auto v = manager.Value<int>(0);
  auto l = manager.Lock();
  std::deque<mproc::Process> ps;
  for (int i = 0; i < 4; ++i) ps.emplace_back(bump_locked, v, l, per);
  for (auto& p : ps) p.start();
  for (auto& p : ps) ASSERT_TRUE(joined(p));
  EXPECT_EQ(v.get(), 4 * per);
  EXPECT_FALSE(l.locked());
}

TEST_F(ManagerTest, DictOperationsKeepInsertionOrder) {
  mproc::Manager manager;
  auto d = manager.dict<std::string, int>();
  d.set("b", 2);
  d.set("a", 1);
  d.set("c", 3);
  d.set("b", 20);  // keeps its place
  EXPECT_EQ(d.keys(), (std::vector<std::string>{"b", "a", "c"}));
  EXPECT_EQ(d.values(), (std::vector<int>{20, 1, 3}));
  EXPECT_EQ(d.items().front(), (std::pair<std::string, int>{"b", 20}));
  EXPECT_TRUE(d.contains("a"));
  EXPECT_FALSE(d.contains("z"));
  EXPECT_THROW(d.get("z"), std::out_of_range);
  EXPECT_EQ(d.get("z", -1), -1);
  EXPECT_EQ(d.setdefault("a", 100), 1);
  EXPECT_EQ(d.setdefault("d", 4), 4);
  EXPECT_TRUE(d.erase("c"));
  EXPECT_FALSE(d.erase("c"));
  EXPECT_EQ(d.pop("d"), 4);
  EXPECT_THROW(d.pop("d"), std::out_of_range);
  EXPECT_EQ(d.pop("d", 7), 7);
  d.update(std::map<std::string, int>{{"x", 10}, {"y", 11}});
  EXPECT_EQ(d.size(), 4u);
  EXPECT_EQ(d.update_with("x", add_one), 11);
  EXPECT_EQ(d.update_with("new", add_one, 41), 42);
  EXPECT_THROW(d.update_with("neg", fail_on_negative, -5), std::invalid_argument);
  EXPECT_FALSE(d.contains("neg"));  // a throwing update leaves the entry as it was
  EXPECT_EQ((d.snapshot()),
            (std::map<std::string, int>{{"a", 1}, {"b", 20}, {"new", 42}, {"x", 11}, {"y", 11}}));
  d.clear();
  EXPECT_EQ(d.size(), 0u);
  // A captureless lambda is named as a Pool task's is.
  auto s = manager.dict<int, std::string>();
  EXPECT_EQ(s.update_with(
                1, [](std::string x) { return x + "?"; }, "why"),
            "why?");
  EXPECT_EQ(s.update_with(1, shout), "why?!");
}

TEST_F(ManagerTest, ListRoundTrip) {
  mproc::Manager manager;
  auto l = manager.list<std::string>();
  l.append("a");
  l.extend(std::vector<std::string>{"b", "c", "d"});
  EXPECT_EQ(l.size(), 4u);
  EXPECT_EQ(l.at(0), "a");
  EXPECT_EQ(l.at(-1), "d");
  l.set(1, "B");
  EXPECT_EQ(l.pop(), "d");
  EXPECT_EQ(l.pop(0), "a");
  EXPECT_EQ(l.snapshot(), (std::vector<std::string>{"B", "c"}));
  EXPECT_THROW(l.at(5), std::out_of_range);
  EXPECT_THROW(l.set(-3, "x"), std::out_of_range);
  l.clear();
  EXPECT_THROW(l.pop(), std::out_of_range);
}

TEST_F(ManagerTest, NamespaceAttributesKeepTheirTypes) {
  mproc::Manager manager;
  auto ns = manager.Namespace();
  ns.set("x", 1);
  ns.set("name", std::string("mproc"));
  ns.set("v", std::vector<double>{1.5, 2.5});
  EXPECT_EQ(ns.get<int>("x"), 1);
  EXPECT_EQ(ns.get<std::string>("name"), "mproc");
  EXPECT_EQ(ns.get<std::vector<double>>("v"), (std::vector<double>{1.5, 2.5}));
  EXPECT_THROW(ns.get<std::string>("x"), mproc::SerializationError);
  EXPECT_THROW(ns.get<int>("missing"), std::out_of_range);
  EXPECT_EQ(ns.get<int>("missing", 5), 5);
  EXPECT_EQ(ns.names(), (std::vector<std::string>{"name", "v", "x"}));
  EXPECT_EQ(ns.update_with<int>("x", add_one), 2);
  EXPECT_THROW(ns.update_with<std::string>("x", shout), mproc::SerializationError);
  EXPECT_TRUE(ns.erase("x"));
  EXPECT_FALSE(ns.contains("x"));
}

TEST_F(ManagerTest, NamedObjectsAreFoundByNameAndTypeChecked) {
  mproc::Manager manager;
  auto a = manager.Queue<int>(0, "jobs");
  auto b = manager.Queue<int>(0, "jobs");
  EXPECT_EQ(a.id(), b.id());
  a.put(5);
  EXPECT_EQ(b.get(), 5);
  EXPECT_THROW(manager.Queue<std::string>(0, "jobs"), mproc::SerializationError);
  EXPECT_THROW((manager.dict<int, int>("jobs")), mproc::SerializationError);
  EXPECT_NE(manager.Queue<int>().id(), a.id());
}

TEST_F(ManagerTest, QueueProxyFedByPoolTasks) {
  mproc::Manager manager;
  auto q = manager.Queue<int>();
  {
    mproc::Pool pool(2);
    std::vector<mproc::AsyncResult<int>> rs;
    for (int i = 0; i < 100; ++i) rs.push_back(pool.apply_async(produce, q, i));
    for (int i = 0; i < 100; ++i) EXPECT_EQ(rs[static_cast<std::size_t>(i)].get(), i);
  }
  std::multiset<int> got;
  for (int i = 0; i < 100; ++i) got.insert(q.get(5s));
  std::multiset<int> want;
  for (int i = 0; i < 100; ++i) want.insert(i * i);
  EXPECT_EQ(got, want);
  EXPECT_THROW(q.get_nowait(), mproc::Empty);
  EXPECT_THROW(q.get(20ms), mproc::Empty);
}

TEST_F(ManagerTest, QueueBoundsAndTaskDone) {
  mproc::Manager manager;
  auto q = manager.Queue<std::string>(2);
  EXPECT_EQ(q.maxsize(), 2);
  q.put("a");
  q.put("b");
  EXPECT_TRUE(q.full());
  EXPECT_THROW(q.put_nowait("c"), mproc::Full);
  EXPECT_THROW(q.put("c", 20ms), mproc::Full);
  EXPECT_FALSE(q.join(10ms));
  EXPECT_EQ(q.get(), "a");
  q.task_done();
  EXPECT_EQ(q.get(), "b");
  q.task_done();
  EXPECT_TRUE(q.join(1s));
  EXPECT_THROW(q.task_done(), mproc::LockError);
}

TEST_F(ManagerTest, LockHeldByADeadProcessIsReleased) {
  mproc::Manager manager;
  auto l = manager.Lock();
  auto [r, w] = mproc::Pipe<int>(false);
  mproc::Process p(hold_lock_then_wait, l, w);
  p.start();
  w.close();
  ASSERT_TRUE(r.poll(30s));
  r.recv();
  EXPECT_TRUE(l.locked());
  EXPECT_FALSE(l.acquire(false));
  p.kill();
  ASSERT_TRUE(joined(p));
  EXPECT_TRUE(l.acquire(true, 10s)) << "the dead holder's lock was never released";
  l.release();
  EXPECT_THROW(l.release(), mproc::LockError);
}

TEST_F(ManagerTest, RLockEventSemaphore) {
  mproc::Manager manager;
  auto rl = manager.RLock();
  EXPECT_TRUE(rl.acquire());
  EXPECT_TRUE(rl.acquire());  // re-entrant for its owner
  rl.release();
  EXPECT_TRUE(rl.locked());
  rl.release();
  EXPECT_FALSE(rl.locked());
  EXPECT_THROW(rl.release(), mproc::LockError);
  auto l = manager.Lock();
  l.acquire();
  EXPECT_THROW(l.acquire(), mproc::LockError);  // would wait for itself forever
  EXPECT_FALSE(l.acquire(true, 10ms));
  l.release();

  auto ready = manager.Event();
  auto reply = manager.Event();
  EXPECT_FALSE(ready.wait(10ms));
  mproc::Process p(wait_event, ready, reply);
  p.start();
  ready.set();
  EXPECT_TRUE(reply.wait(30s));
  ASSERT_TRUE(joined(p));
  EXPECT_EQ(p.exitcode(), 0);
  ready.clear();
  EXPECT_FALSE(ready.is_set());

  auto sem = manager.Semaphore(2);
  EXPECT_TRUE(sem.acquire(false));
  EXPECT_TRUE(sem.acquire(false));
  EXPECT_FALSE(sem.acquire(false));
  EXPECT_FALSE(sem.acquire(true, 10ms));
  sem.release(2);
  EXPECT_EQ(sem.value(), 2);
  auto bounded = manager.BoundedSemaphore(1);
  EXPECT_THROW(bounded.release(), mproc::LockError);
}

TEST_F(ManagerTest, FiftyClientsAtOnce) {
  const int per = 20;
  mproc::Manager manager;
  auto d = manager.dict<std::string, int>();
  std::deque<mproc::Process> ps;
  for (int i = 0; i < 50; ++i) ps.emplace_back(many_updates, d, per);
  for (auto& p : ps) p.start();
  for (auto& p : ps) {
    ASSERT_TRUE(joined(p));
    EXPECT_EQ(p.exitcode(), 0);
  }
  EXPECT_EQ(d.get("total"), 50 * per);
}

TEST_F(ManagerTest, KilledServerMakesEveryCallRaiseInsteadOfHanging) {
  mproc::Manager manager;
  auto d = manager.dict<std::string, int>();
  auto q = manager.Queue<int>();
  d.set("a", 1);
  auto [r, w] = mproc::Pipe<int>(false);
  mproc::Process p(blocked_get, q, w);
  p.start();
  w.close();
  ASSERT_TRUE(r.poll(30s));
  ASSERT_EQ(::kill(manager.pid(), SIGKILL), 0);
  mproc_test::with_deadline(20 * mproc_test::kSlowdown, "proxy calls after the server died", [&] {
    EXPECT_THROW(d.get("a"), mproc::ManagerError);
    EXPECT_THROW(d.set("b", 2), mproc::ManagerError);
    EXPECT_THROW(manager.list<int>(), mproc::ManagerError);
  });
  ASSERT_TRUE(joined(p));
  EXPECT_EQ(p.exitcode(), 0) << "the child blocked in get() did not get ManagerError";
}

TEST_F(ManagerTest, ShutdownWithClientsBlockedIsClean) {
  mproc::Manager manager;
  auto q = manager.Queue<int>();
  std::deque<mproc::Process> ps;
  std::vector<mproc::Connection<int>> readers;
  for (int i = 0; i < 3; ++i) {
    auto [r, w] = mproc::Pipe<int>(false);
    ps.emplace_back(blocked_get, q, w);
    ps.back().start();
    w.close();
    readers.push_back(r);
  }
  for (auto& r : readers) ASSERT_TRUE(r.poll(30s));
  mproc_test::with_deadline(20 * mproc_test::kSlowdown, "shutdown", [&] { manager.shutdown(); });
  EXPECT_FALSE(manager.running());
  for (auto& p : ps) {
    ASSERT_TRUE(joined(p));
    EXPECT_EQ(p.exitcode(), 0);
  }
  EXPECT_THROW(q.put(1), mproc::ManagerError);
}

// ---- TCP, authentication and misbehaving clients ---------------------------------------------

mproc::ManagerOptions tcp_options(std::string key) {
  mproc::ManagerOptions o;
  o.address = "tcp:127.0.0.1:0";
  o.authkey = std::move(key);
  o.handshake_timeout = 500ms;
  return o;
}

// Runs the separately built client program; returns its exit code and output.
std::pair<int, std::string> run_client(const std::string& address, const std::string& key) {
  char out_path[] = "/tmp/mproc-manager-client-XXXXXX";
  const int out = ::mkstemp(out_path);
  posix_spawn_file_actions_t fa;
  ::posix_spawn_file_actions_init(&fa);
  ::posix_spawn_file_actions_adddup2(&fa, out, 1);
  std::vector<std::string> args = {MPROC_MANAGER_CLIENT, address, key};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  const int rc = ::posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), environ);
  ::posix_spawn_file_actions_destroy(&fa);
  ::close(out);
  if (rc != 0) return {-1, "posix_spawn failed"};
  int status = 0;
  const auto deadline = mproc_test::Clock::now() + 60s;
  while (::waitpid(pid, &status, WNOHANG) == 0) {
    if (mproc_test::Clock::now() > deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      return {-2, "client hung"};
    }
    std::this_thread::sleep_for(5ms);
  }
  std::ifstream f(out_path);
  std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  ::unlink(out_path);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), text};
}

TEST_F(ManagerTest, TcpClientProgramWithTheRightKeyWorksAndTheWrongKeyIsRefused) {
  mproc::Manager manager(tcp_options("s3cret"));
  ASSERT_EQ(manager.address().rfind("tcp:127.0.0.1:", 0), 0u) << manager.address();
  auto d = manager.dict<std::string, int>("shared");
  d.set("hits", 10);

  auto [code, out] = run_client(manager.address(), "s3cret");
  EXPECT_EQ(code, 0) << out;
  EXPECT_NE(out.find("hits=11"), std::string::npos) << out;
  EXPECT_NE(out.find("update_with refused"), std::string::npos) << out;

  auto [bad_code, bad_out] = run_client(manager.address(), "wrong");
  EXPECT_EQ(bad_code, 3) << bad_out;
  EXPECT_NE(bad_out.find("refused"), std::string::npos) << bad_out;
  EXPECT_THROW(mproc::Manager::connect(manager.address(), "wrong"), mproc::AuthenticationError);

  // The server still serves the others, with the right key.
  EXPECT_EQ(d.get("hits"), 11);
  auto again = mproc::Manager::connect(manager.address(), "s3cret");
  EXPECT_EQ((again.dict<std::string, int>("shared").get("hits")), 11);
  EXPECT_TRUE(again.running());
}

// Whether the server closed `fd` (EOF or reset) within `limit`.
bool closed_by_server(int fd, std::chrono::milliseconds limit) {
  pollfd p{fd, POLLIN, 0};
  if (::poll(&p, 1, static_cast<int>(limit.count())) != 1) return false;
  char buf[256];
  for (;;) {
    const ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n == 0) return true;
    if (n < 0) return errno != EAGAIN;
    // handshake bytes first (the challenge); keep reading until the close
    if (::poll(&p, 1, static_cast<int>(limit.count())) != 1) return false;
  }
}

// A connection that completed the handshake, for sending raw bytes afterwards.
std::unique_ptr<mproc::detail::Channel> authenticated(const mproc::Manager& m) {
  auto c = std::make_unique<mproc::detail::Channel>(mproc::detail::connect_to(m.address()));
  mproc::detail::answer_challenge(*c, m.authkey(), mproc::detail::kClientRole);
  mproc::detail::deliver_challenge(*c, m.authkey(), mproc::detail::kServerRole);
  const std::string hello = "not the same executable";
  c->send({hello.data(), hello.size()});
  return c;
}

TEST_F(ManagerTest, GarbageHalfFramesAndStallsAffectNoOtherClient) {
  mproc::Manager manager(tcp_options("k"));
  auto d = manager.dict<std::string, int>();
  d.set("x", 1);

  // Garbage instead of the handshake's answer: refused and closed.
  auto g = mproc::detail::connect_to(manager.address());
  const char junk[] = "GET / HTTP/1.0\r\n\r\nxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";
  mproc::detail::write_all(g.get(), junk, sizeof junk);
  EXPECT_TRUE(closed_by_server(g.get(), 5s));

  // A client that connects and says nothing is dropped after the handshake timeout.
  auto silent = mproc::detail::connect_to(manager.address());
  EXPECT_TRUE(closed_by_server(silent.get(), 10s));

  // Authenticated, then garbage: that connection ends, the server goes on.
  auto a = authenticated(manager);
  mproc::detail::write_all(a->fileno(), junk, sizeof junk);
  EXPECT_TRUE(closed_by_server(a->fileno(), 5s));

  // Authenticated, then a frame that claims 1 GiB and sends 16 MiB of it: the server skips it
  // as it arrives (over max_message_bytes) without ever holding it, and serves the others.
  const std::string status = "/proc/" + std::to_string(manager.pid()) + "/status";
  const long rss_before = mproc_test::status_kb("VmRSS", status.c_str());
  auto big = authenticated(manager);
  const std::uint32_t header[2] = {0x3143504D, 1u << 30};
  mproc::detail::write_all(big->fileno(), header, sizeof header);
  const std::string mib(1 << 20, 'z');
  for (int i = 0; i < 16; ++i) mproc::detail::write_all(big->fileno(), mib.data(), mib.size());
  EXPECT_EQ(d.update_with("x", add_one), 2);
  EXPECT_LT(mproc_test::status_kb("VmRSS", status.c_str()) - rss_before, 8 * 1024)
      << "the server holds the oversized message (16 MiB of it were sent)";
  big->close();
  d.set("x", 1);

  // Authenticated, then half a request, and a stall: everyone else is served meanwhile.
  auto half = authenticated(manager);
  const std::uint32_t h2[2] = {0x3143504D, 100};
  mproc::detail::write_all(half->fileno(), h2, sizeof h2);
  mproc::detail::write_all(half->fileno(), "0123456789", 10);
  mproc_test::with_deadline(20 * mproc_test::kSlowdown, "calls while a client stalls", [&] {
    for (int i = 0; i < 100; ++i) d.update_with("x", add_one);
    EXPECT_EQ(d.get("x"), 101);
  });
  // ... and one that disconnects in the middle of its request.
  half->close();
  auto half2 = authenticated(manager);
  mproc::detail::write_all(half2->fileno(), h2, sizeof h2);
  half2->close();
  EXPECT_EQ(d.update_with("x", add_one), 102);
  EXPECT_TRUE(manager.running());
}

TEST_F(ManagerTest, UnreachableAddressesRaiseManagerError) {
  EXPECT_THROW(mproc::Manager::connect("unix:@mproc-nobody-listens-here", "k"),
               mproc::ManagerError);
  mproc::ManagerOptions o;
  o.address = "not an address";
  EXPECT_THROW(mproc::Manager m(o), mproc::ManagerError);
  mproc::DictProxy<int, int> empty;
  EXPECT_THROW(empty.size(), mproc::ClosedError);
}

TEST_F(ManagerTest, ALockIsReleasedWhenItsHolderDiesEvenIfItsChildLives) {
  mproc::Manager manager;
  auto l = manager.Lock();
  auto [r, w] = mproc::Pipe<int>(false);
  mproc::Process p(hold_lock_with_a_child, l, w);
  p.start();
  w.close();
  ASSERT_TRUE(r.poll(30s));
  const pid_t grandchild = r.recv();
  EXPECT_TRUE(l.locked());
  p.kill();
  ASSERT_TRUE(joined(p));
  // The grandchild still runs: it must not have kept its parent's connection open.
  EXPECT_EQ(::kill(grandchild, 0), 0);
  EXPECT_TRUE(l.acquire(true, 10s)) << "a forked child kept the dead holder's connection open";
  l.release();
  ::kill(grandchild, SIGKILL);
  mproc_test::eventually([&] { return ::kill(grandchild, 0) != 0; }, 10s);
}

TEST_F(ManagerTest, AConsumerKilledWhileBlockedTakesNoItem) {
  mproc::Manager manager;
  auto q = manager.Queue<int>();
  auto [r, w] = mproc::Pipe<int>(false);
  mproc::Process p(consume_one, q, w);
  p.start();
  w.close();
  ASSERT_TRUE(r.poll(30s));
  std::this_thread::sleep_for(20ms);  // let it block on the server (either way, nothing is lost)
  p.kill();
  ASSERT_TRUE(joined(p));
  for (int i = 0; i < 20; ++i) q.put(i);
  std::vector<int> got;
  for (int i = 0; i < 20; ++i) got.push_back(q.get(5s));
  std::vector<int> want(20);
  std::iota(want.begin(), want.end(), 0);
  EXPECT_EQ(got, want);
}

TEST_F(ManagerTest, AnOversizedRequestIsASerializationErrorAndTheConnectionSurvives) {
  mproc::ManagerOptions o;
  o.max_message_bytes = 1 << 20;
  mproc::Manager manager(o);
  auto d = manager.dict<int, std::string>();
  auto l = manager.Lock();
  l.acquire();
  EXPECT_THROW(d.set(1, std::string(2 << 20, 'x')), mproc::SerializationError);
  EXPECT_TRUE(l.locked()) << "the connection was dropped and its lock released with it";
  d.set(1, "small");
  EXPECT_EQ(d.get(1), "small");
  l.release();
}

TEST_F(ManagerTest, AHandshakeTricklingBytesIsDroppedAtItsDeadline) {
  mproc::Manager manager(tcp_options("k"));  // 500 ms for the whole handshake
  auto fd = mproc::detail::connect_to(manager.address());
  const auto t0 = mproc_test::Clock::now();
  bool closed = false;
  while (mproc_test::Clock::now() - t0 < 5s && !closed) {
    // One byte of an answer every 100 ms: each read would be within a per-read timeout.
    if (::send(fd.get(), "x", 1, MSG_NOSIGNAL) != 1) closed = true;
    pollfd p{fd.get(), POLLIN, 0};
    if (::poll(&p, 1, 100) == 1) {
      char buf[256];
      while (true) {
        const ssize_t n = ::recv(fd.get(), buf, sizeof buf, MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno != EAGAIN)) {
          closed = true;
          break;
        }
        if (n < 0) break;
      }
    }
  }
  EXPECT_TRUE(closed);
  EXPECT_LT(mproc_test::Clock::now() - t0, 3s) << "the handshake deadline was stretched";
}

TEST_F(ManagerTest, ShuttingDownAStoppedServerIsBounded) {
  mproc::Manager manager;
  auto d = manager.dict<int, int>();
  d.set(1, 1);
  ASSERT_EQ(::kill(manager.pid(), SIGSTOP), 0);
  const auto t0 = mproc_test::Clock::now();
  mproc_test::with_deadline(30, "shutdown of a stopped server", [&] { manager.shutdown(); });
  EXPECT_LT(mproc_test::Clock::now() - t0, 15s);
  EXPECT_FALSE(manager.running());
  EXPECT_THROW(d.get(1), mproc::ManagerError);
}

TEST_F(ManagerTest, MaxClientsRefusesTheRest) {
  mproc::ManagerOptions o;
  o.max_clients = 2;
  mproc::Manager manager(o);
  auto d = manager.dict<int, int>();  // this thread's connection: one of the two
  d.set(1, 1);
  auto second = mproc::detail::connect_to(manager.address());
  auto third = mproc::detail::connect_to(manager.address());
  EXPECT_TRUE(closed_by_server(third.get(), 5s));
  EXPECT_EQ(d.get(1), 1);
}

TEST_F(ManagerTest, AStaticManagerIsDestroyedCleanlyAtExit) {
  auto [code, out] = run_client("--static-manager", "");
  EXPECT_EQ(code, 0) << out;
  EXPECT_NE(out.find("static manager: 42"), std::string::npos) << out;
}

}  // namespace
