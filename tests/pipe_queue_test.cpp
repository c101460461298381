// Pipe/Connection and Queue/SimpleQueue/JoinableQueue, in one process and across processes
// (fork and spawn). Every blocking call in a test has a deadline.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <memory>
#include <mproc/connection.hpp>
#include <mproc/process.hpp>
#include <mproc/queue.hpp>
#include <mproc/start_method.hpp>
#include <string>
#include <vector>

using namespace std::chrono_literals;

namespace {

constexpr auto kLimit = 60s;

::testing::AssertionResult joined(mproc::Process& p, std::chrono::seconds limit = kLimit) {
  if (p.join(limit)) return ::testing::AssertionSuccess();
  p.kill();
  p.join(5s);
  return ::testing::AssertionFailure()
         << p.name() << " did not end within " << limit.count() << " s";
}

struct Point {
  int x = 0;
  std::string label;
  template <class A>
  void serialize(A& ar) {
    ar(x, label);
  }
  bool operator==(const Point&) const = default;
};

template <class T>
void round_trip(const T& v) {
  auto [a, b] = mproc::Pipe<T>();
  a.send(v);
  EXPECT_TRUE(b.poll(kLimit));
  EXPECT_EQ(b.recv(), v);
  b.send(v);
  EXPECT_EQ(a.recv(), v);
}

TEST(Pipe, RoundTripsOfSeveralTypes) {
  round_trip(42);
  round_trip(3.5);
  round_trip(std::string("hello"));
  round_trip(std::string(200'000, 'x'));  // larger than a socket buffer's first gulp
  round_trip(std::vector<double>{1.0, 2.5, -3.0});
  round_trip(std::map<std::string, int>{{"a", 1}, {"b", 2}});
  round_trip(Point{7, "seven"});
}

TEST(Pipe, SimplexRefusesTheWrongDirection) {
  auto [r, w] = mproc::Pipe<int>(false);
  EXPECT_TRUE(r.readable());
  EXPECT_FALSE(r.writable());
  EXPECT_FALSE(w.readable());
  EXPECT_THROW(r.send(1), mproc::ClosedError);
  EXPECT_THROW(w.recv(), mproc::ClosedError);
  w.send(5);
  EXPECT_EQ(r.recv(), 5);
}

TEST(Pipe, EOFErrorWhenTheFarEndIsClosedAndDrained) {
  auto [a, b] = mproc::Pipe<int>();
  a.send(1);
  a.close();
  EXPECT_TRUE(a.closed());
  EXPECT_THROW(a.send(2), mproc::ClosedError);
  EXPECT_EQ(b.recv(), 1);
  EXPECT_THROW(b.recv(), mproc::EOFError);
  EXPECT_THROW(b.send(3), mproc::BrokenPipeError);
}

TEST(Pipe, PollWithTimeoutReturnsWithinIt) {
  auto [a, b] = mproc::Pipe<int>();
  EXPECT_FALSE(b.poll());
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_FALSE(b.poll(100ms));
  const auto dt = std::chrono::steady_clock::now() - t0;
  EXPECT_GE(dt, 100ms);
  EXPECT_LT(dt, 10s);
  a.send(1);
  EXPECT_TRUE(b.poll(0s));
}

TEST(Pipe, BytesAndMaxLength) {
  auto [a, b] = mproc::Pipe<int>();
  a.send_bytes(std::string_view("raw bytes"));
  EXPECT_EQ(b.recv_bytes(), "raw bytes");
  a.send_bytes(std::string_view(std::string(100, 'z')));
  EXPECT_THROW(b.recv_bytes(10), mproc::SerializationError);
}

TEST(Pipe, ConnectionInsideAMessageIsRefused) {
  auto [a, b] = mproc::Pipe<mproc::Connection<int>>();
  auto [c, d] = mproc::Pipe<int>();
  EXPECT_THROW(a.send(c), mproc::SerializationError);
}

// ---- across processes ----------------------------------------------------------------------

void writer(mproc::Connection<std::string> w, int id, int n) {
  for (int i = 0; i < n; ++i) w.send("w" + std::to_string(id) + ":" + std::to_string(i));
  w.send("end");
}

void echo(mproc::Connection<Point> c) {
  for (;;) {
    Point p = c.recv();
    if (p.label == "stop") return;
    p.x *= 2;
    c.send(p);
  }
}

void producer(mproc::Queue<int> q, int from, int to) {
  for (int i = from; i < to; ++i) q.put(i);
}

void consumer(mproc::Queue<int> q, mproc::Queue<std::vector<int>> out) {
  std::vector<int> got;
  for (;;) {
    const int v = q.get();
    if (v < 0) break;
    got.push_back(v);
  }
  out.put(got);
}

void consumer_until_empty(mproc::Queue<int> q, mproc::Queue<int> count) {
  int n = 0;
  try {
    for (;;) {
      q.get(2s);
      ++n;
    }
  } catch (const mproc::Empty&) {
  }
  count.put(n);
}

void joinable_worker(mproc::JoinableQueue<int> q, mproc::Queue<int> sum) {
  int s = 0;
  for (;;) {
    const int v = q.get();
    if (v < 0) {
      q.task_done();
      break;
    }
    s += v;
    q.task_done();
  }
  sum.put(s);
}

void blocked_getter(mproc::Queue<int> q) {
  q.get();
}

void big_item(mproc::Queue<std::string> q) {
  q.put(std::string(3 << 20, 'b'));
}

class CrossProcess : public ::testing::TestWithParam<const char*> {
 protected:
  void SetUp() override { mproc::set_start_method(GetParam()); }
  void TearDown() override { mproc::set_start_method("fork"); }
};

// Seed 003: two writers and one reader on a simplex pipe; the reader counts "end" markers, and
// after the writers are gone recv() raises EOFError.
TEST_P(CrossProcess, TwoWritersOneReaderOnASimplexPipe) {
  auto [r, w] = mproc::Pipe<std::string>(false);
  mproc::Process p1(writer, w, 1, 50), p2(writer, w, 2, 50);
  p1.start();
  p2.start();
  w.close();  // ours: EOF can only come once both writers are done
  int messages = 0, ends = 0;
  for (;;) {
    ASSERT_TRUE(r.poll(kLimit)) << "no message within the limit";
    try {
      const std::string m = r.recv();
      if (m == "end") {
        ++ends;
      } else {
        ++messages;
      }
    } catch (const mproc::EOFError&) {
      break;
    }
  }
  EXPECT_EQ(ends, 2);
  EXPECT_EQ(messages, 100);
  ASSERT_TRUE(joined(p1));
  ASSERT_TRUE(joined(p2));
}

TEST_P(CrossProcess, DuplexEchoWithAChild) {
  auto [mine, theirs] = mproc::Pipe<Point>();
  mproc::Process p(echo, theirs);
  p.start();
  theirs.close();
  for (int i = 0; i < 20; ++i) {
    mine.send(Point{i, "n"});
    ASSERT_TRUE(mine.poll(kLimit));
    EXPECT_EQ(mine.recv(), (Point{2 * i, "n"}));
  }
  mine.send(Point{0, "stop"});
  ASSERT_TRUE(joined(p));
  EXPECT_EQ(p.exitcode(), 0);
}

TEST_P(CrossProcess, QueueFourProducersFourConsumersEveryItemOnce) {
  constexpr int kItems = 100'000, kProducers = 4, kConsumers = 4;
  mproc::Queue<int> q;
  mproc::Queue<std::vector<int>> out;
  std::vector<std::unique_ptr<mproc::Process>> ps, cs;
  for (int i = 0; i < kProducers; ++i) {
    ps.push_back(std::make_unique<mproc::Process>(producer, q, i * kItems / kProducers,
                                                  (i + 1) * kItems / kProducers));
  }
  for (int i = 0; i < kConsumers; ++i)
    cs.push_back(std::make_unique<mproc::Process>(consumer, q, out));
  for (auto& c : cs) c->start();
  for (auto& p : ps) p->start();
  for (auto& p : ps) ASSERT_TRUE(joined(*p));
  for (int i = 0; i < kConsumers; ++i) q.put(-1);
  std::vector<int> all;
  for (int i = 0; i < kConsumers; ++i) {
    const auto part = out.get(kLimit);
    all.insert(all.end(), part.begin(), part.end());
  }
  for (auto& c : cs) ASSERT_TRUE(joined(*c));
  std::sort(all.begin(), all.end());
  ASSERT_EQ(all.size(), static_cast<std::size_t>(kItems));
  for (int i = 0; i < kItems; ++i) ASSERT_EQ(all[static_cast<std::size_t>(i)], i);
  EXPECT_TRUE(q.empty());
}

TEST_P(CrossProcess, ProducerConsumerEndingOnEmpty) {
  mproc::Queue<int> q, count;
  mproc::Process c(consumer_until_empty, q, count);
  mproc::Process p(producer, q, 0, 500);
  p.start();
  c.start();
  ASSERT_TRUE(joined(p));
  EXPECT_EQ(count.get(kLimit), 500);
  ASSERT_TRUE(joined(c));
}

TEST_P(CrossProcess, JoinableQueueJoinWaitsForEveryTaskDone) {
  mproc::JoinableQueue<int> q;
  mproc::Queue<int> sum;
  for (int i = 1; i <= 100; ++i) q.put(i);
  q.put(-1);
  mproc::Process w(joinable_worker, q, sum);
  w.start();
  EXPECT_TRUE(q.join(kLimit)) << "join did not return";
  EXPECT_EQ(sum.get(kLimit), 5050);
  ASSERT_TRUE(joined(w));
  EXPECT_THROW(q.task_done(), mproc::ProcessError);
}

TEST_P(CrossProcess, KilledConsumerLosesNothing) {
  mproc::Queue<int> q;
  mproc::Process blocked(blocked_getter, q);
  blocked.start();
  blocked.kill();
  ASSERT_TRUE(joined(blocked));
  for (int i = 0; i < 100; ++i) q.put(i);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(q.get(kLimit), i);
}

TEST_P(CrossProcess, LargeItemThroughAQueue) {
  mproc::Queue<std::string> q;
  mproc::Process p(big_item, q);
  p.start();
  const std::string s = q.get(kLimit);
  EXPECT_EQ(s.size(), std::size_t{3} << 20);
  EXPECT_EQ(s.find_first_not_of('b'), std::string::npos);
  ASSERT_TRUE(joined(p));
}

INSTANTIATE_TEST_SUITE_P(StartMethods, CrossProcess, ::testing::Values("fork", "spawn"),
                         [](const auto& info) { return std::string(info.param); });

// ---- queues in one process -----------------------------------------------------------------

TEST(Queue, FifoInOneProcess) {
  mproc::Queue<std::string> q;
  EXPECT_TRUE(q.empty());
  q.put("a");
  q.put("b");
  EXPECT_EQ(q.qsize(), 2u);
  EXPECT_EQ(q.get(), "a");
  EXPECT_EQ(q.get_nowait(), "b");
  EXPECT_TRUE(q.empty());
}

TEST(Queue, GetWithTimeoutRaisesEmptyWithinIt) {
  mproc::Queue<int> q;
  EXPECT_THROW(q.get_nowait(), mproc::Empty);
  EXPECT_THROW(q.get(false), mproc::Empty);
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_THROW(q.get(150ms), mproc::Empty);
  const auto dt = std::chrono::steady_clock::now() - t0;
  EXPECT_GE(dt, 150ms);
  EXPECT_LT(dt, 10s);
}

TEST(Queue, BoundedPutWithTimeoutRaisesFull) {
  mproc::Queue<int> q(2);
  q.put(1);
  q.put(2, 1s);
  EXPECT_TRUE(q.full());
  EXPECT_THROW(q.put_nowait(3), mproc::Full);
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_THROW(q.put(3, 150ms), mproc::Full);
  const auto dt = std::chrono::steady_clock::now() - t0;
  EXPECT_GE(dt, 150ms);
  EXPECT_LT(dt, 10s);
  EXPECT_EQ(q.get(), 1);
  q.put(3, 1s);
  EXPECT_EQ(q.get(), 2);
  EXPECT_EQ(q.get(), 3);
  EXPECT_EQ(q.qsize(), 0u);
}

TEST(Queue, ClosedQueueRaises) {
  mproc::Queue<int> q;
  mproc::Queue<int> copy = q;
  q.close();
  EXPECT_THROW(copy.put(1), mproc::ClosedError);
  EXPECT_THROW(q.get(), mproc::ClosedError);
}

TEST(Queue, SimpleQueue) {
  mproc::SimpleQueue<int> q;
  EXPECT_TRUE(q.empty());
  q.put(5);
  EXPECT_FALSE(q.empty());
  EXPECT_EQ(q.get(), 5);
}

TEST(Queue, JoinableTaskDoneTooOften) {
  mproc::JoinableQueue<int> q;
  EXPECT_TRUE(q.join(0s));
  q.put(1);
  EXPECT_FALSE(q.join(50ms));
  q.get();
  q.task_done();
  EXPECT_TRUE(q.join(1s));
  EXPECT_THROW(q.task_done(), mproc::ProcessError);
}

}  // namespace
