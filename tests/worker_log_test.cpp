// Pool workers' log records reach the parent's sinks (issue 19, item 5): under fork here, and
// forkserver and spawn in the reruns (tests/CMakeLists.txt). The parent adds a recording sink
// to mproc::get_logger(); tasks log with mproc::get_logger() as user code does.
#include <gtest/gtest.h>
#include <signal.h>
#include <spdlog/sinks/base_sink.h>
#include <unistd.h>

#include <condition_variable>
#include <memory>
#include <mproc/mproc.hpp>
#include <mutex>
#include <ranges>
#include <string>
#include <vector>

#include "mproc/runtime/detail/log_record.hpp"
#include "test_support.hpp"

namespace {

struct Captured {
  std::string logger;  // the logger name the sink was given: a worker's name and pid
  std::string text;
  std::string line;  // formatted with mproc::log_formatter()
  spdlog::level::level_enum level = spdlog::level::off;
  std::string file;
  int source_line = 0;
};

// Records every log_msg. With hold(), the first record from a worker blocks the thread that
// delivers it until release(): a parent that stops reading.
class RecordingSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  std::vector<Captured> records() {
    std::lock_guard lock(mutex_);
    return records_;
  }
  void hold() {
    std::lock_guard lock(gate_mu_);
    held_ = true;
  }
  void release() {
    {
      std::lock_guard lock(gate_mu_);
      held_ = false;
    }
    gate_cv_.notify_all();
  }

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    spdlog::memory_buf_t line;
    formatter_->format(msg, line);
    records_.push_back({std::string(msg.logger_name.data(), msg.logger_name.size()),
                        std::string(msg.payload.data(), msg.payload.size()),
                        std::string(line.data(), line.size()), msg.level,
                        msg.source.filename ? msg.source.filename : "", msg.source.line});
    std::unique_lock lock(gate_mu_);
    gate_cv_.wait(lock, [&] { return !held_ || records_.back().logger == "mproc"; });
  }
  void flush_() override {}

 private:
  std::vector<Captured> records_;
  std::mutex gate_mu_;
  std::condition_variable gate_cv_;
  bool held_ = false;
};

class WorkerLog : public mproc_test::LeakCheck {
 protected:
  void SetUp() override {
    LeakCheck::SetUp();
    auto log = mproc::get_logger();
    saved_level_ = log->level();
    saved_sinks_ = log->sinks();
    sink_ = std::make_shared<RecordingSink>();
    sink_->set_formatter(mproc::log_formatter());
    log->sinks() = {sink_};  // stderr would print every line the tests log
    log->set_level(spdlog::level::info);
  }
  void TearDown() override {
    auto log = mproc::get_logger();
    log->set_level(saved_level_);
    log->sinks() = saved_sinks_;
    LeakCheck::TearDown();
  }

  // The records whose text starts with `prefix`.
  std::vector<Captured> with_prefix(const std::string& prefix) {
    std::vector<Captured> out;
    for (auto& c : sink_->records()) {
      if (c.text.rfind(prefix, 0) == 0) out.push_back(c);
    }
    return out;
  }

  std::shared_ptr<RecordingSink> sink_;
  spdlog::level::level_enum saved_level_ = spdlog::level::off;
  std::vector<spdlog::sink_ptr> saved_sinks_;
};

// "ForkPoolWorker-3 4711": the name and pid of the process it runs in.
std::string who_am_i() {
  return mproc::current_process().name() + " " + std::to_string(::getpid());
}

std::string log_token(std::string token) {
  mproc::get_logger()->info("task says {}", token);
  return who_am_i();
}

int log_then_exit(int how) {
  mproc::get_logger()->warn("last words {}", how);
  if (how == 0) ::_exit(0);
  ::raise(SIGKILL);
  return how;
}

int log_when_off(int i) {
  mproc::get_logger()->info("off {}", i);
  mproc::get_logger()->error("off {}", i);
  return mproc::get_logger()->should_log(spdlog::level::critical) ? 1 : 0;
}

constexpr int kLinesPerTask = 20;
constexpr std::size_t kFiller = 1000;

std::string bulk_line(int task, int line) {
  return "bulk " + std::to_string(task) + " " + std::to_string(line) + " " +
         std::string(kFiller, static_cast<char>('a' + (task * 7 + line) % 26));
}

int log_bulk(int task) {
  for (int j = 0; j < kLinesPerTask; ++j) mproc::get_logger()->info("{}", bulk_line(task, j));
  return task;
}

int log_flood(int lines) {
  for (int j = 0; j < lines; ++j) mproc::get_logger()->info("{}", bulk_line(0, j));
  return lines;
}

int log_long(int size) {
  mproc::get_logger()->info("long {}", std::string(static_cast<std::size_t>(size), 'z'));
  return size;
}

int log_with_location(int x) {
  SPDLOG_LOGGER_INFO(mproc::get_logger(), "located {}", x);
  return x;
}

int square(int x) {
  return x * x;
}

const char* expected_prefix() {
  switch (mproc::get_start_method()) {
    case mproc::StartMethod::kForkserver:
      return "ForkServerPoolWorker-";
    case mproc::StartMethod::kSpawn:
      return "SpawnPoolWorker-";
    case mproc::StartMethod::kFork:
      break;
  }
  return "ForkPoolWorker-";
}

TEST_F(WorkerLog, TaskLineReachesTheParentsSinkTaggedWithTheWorker) {
  std::string who;
  {
    mproc::Pool pool(2);
    who = pool.apply(log_token, std::string("token-1"));
    pool.close();
    pool.join();  // every record its workers sent is delivered when join() returns
  }
  EXPECT_EQ(who.rfind(expected_prefix(), 0), 0u) << who;
  const auto got = with_prefix("task says token-1");
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].logger, who);  // spdlog's %n: the worker
  EXPECT_EQ(got[0].level, spdlog::level::info);
  EXPECT_NE(got[0].line.find("[info] [" + who + "] task says token-1"), std::string::npos)
      << got[0].line;  // mproc's %N %P: the worker, not the parent
}

TEST_F(WorkerLog, MprocsOwnWorkerLinesArriveToo) {
  mproc::get_logger()->set_level(spdlog::level::debug);
  {
    mproc::Pool pool(2);
    EXPECT_EQ(pool.apply(square, 3), 9);
  }
  const auto started = with_prefix("worker started");
  ASSERT_GE(started.size(), 2u);
  for (const auto& c : started) {
    EXPECT_EQ(c.logger.rfind(expected_prefix(), 0), 0u) << c.logger;
    EXPECT_EQ(c.level, spdlog::level::debug);
  }
  EXPECT_NE(started[0].logger, started[1].logger);
}

TEST_F(WorkerLog, ALineLoggedRightBeforeTheWorkerDiesArrives) {
  mproc::Pool pool(1);
  EXPECT_THROW(pool.apply(log_then_exit, 0), mproc::WorkerLostError);  // _exit(0)
  EXPECT_THROW(pool.apply(log_then_exit, 1), mproc::WorkerLostError);  // SIGKILL
  pool.close();
  pool.join();
  EXPECT_EQ(with_prefix("last words 0").size(), 1u);
  EXPECT_EQ(with_prefix("last words 1").size(), 1u);
}

TEST_F(WorkerLog, WorkersThatExitAfterEachTaskLoseNothing) {
  mproc::PoolOptions o;
  o.processes = 2;
  o.maxtasksperchild = 1;
  mproc::Pool pool(o);
  std::vector<mproc::AsyncResult<std::string>> rs;
  // Two digits each: no token is a prefix of another.
  for (int i = 10; i < 30; ++i)
    rs.push_back(pool.apply_async(log_token, "each-" + std::to_string(i)));
  std::vector<std::string> who;
  for (auto& r : rs) who.push_back(r.get());
  pool.close();
  pool.join();
  for (int i = 10; i < 30; ++i) {
    const std::string text = "task says each-" + std::to_string(i);
    const auto got = with_prefix(text);
    ASSERT_EQ(got.size(), 1u) << i;
    EXPECT_EQ(got[0].text, text);
    EXPECT_EQ(got[0].logger, who[static_cast<std::size_t>(i - 10)]);
  }
}

// The parent's level when the pool is made is the workers' level: off there means no record
// is made, even once the parent's own level is raised.
TEST_F(WorkerLog, LoggingOffSendsNothing) {
  auto log = mproc::get_logger();
  log->set_level(spdlog::level::off);
  mproc::Pool pool(2);
  log->set_level(spdlog::level::trace);  // the parent would take anything now
  const std::vector<int> enabled = pool.map(log_when_off, std::views::iota(0, 50));
  pool.close();
  pool.join();
  ASSERT_EQ(enabled.size(), 50u);
  for (int e : enabled) EXPECT_EQ(e, 0);
  EXPECT_TRUE(with_prefix("off ").empty());
  for (const auto& c : sink_->records()) EXPECT_EQ(c.logger, "mproc") << c.text;
}

TEST_F(WorkerLog, ConcurrentWorkersKeepEveryRecordWhole) {
  constexpr int kTasks = 100;
  mproc::Pool pool(4);
  const std::vector<int> done = pool.map(log_bulk, std::views::iota(0, kTasks), 1);
  pool.close();
  pool.join();
  ASSERT_EQ(done.size(), static_cast<std::size_t>(kTasks));
  std::vector<int> seen(kTasks * kLinesPerTask, 0);
  for (const auto& c : with_prefix("bulk ")) {
    int task = -1, line = -1;
    ASSERT_EQ(std::sscanf(c.text.c_str(), "bulk %d %d", &task, &line), 2) << c.text;
    ASSERT_TRUE(task >= 0 && task < kTasks && line >= 0 && line < kLinesPerTask) << c.text;
    EXPECT_EQ(c.text, bulk_line(task, line));  // whole, not torn or interleaved
    ++seen[static_cast<std::size_t>(task * kLinesPerTask + line)];
  }
  for (std::size_t i = 0; i < seen.size(); ++i) ASSERT_EQ(seen[i], 1) << "record " << i;
  for (const auto& c : sink_->records()) {
    EXPECT_EQ(c.text.find("were dropped"), std::string::npos) << c.text;
  }
}

// A parent that stops reading: the logging task waits for room once, then drops (never blocks
// for good), and the parent learns how many records were lost.
TEST_F(WorkerLog, AParentThatStopsReadingDelaysATaskButNeverBlocksIt) {
  constexpr int kLines = 6000;  // ~6 MB: more than the channel holds
  mproc::Pool pool(1);
  sink_->hold();
  EXPECT_EQ(pool.apply(log_flood, kLines), kLines);  // returns although nothing was read
  sink_->release();
  pool.close();
  pool.join();
  const auto delivered = with_prefix("bulk ");
  std::uint64_t reported = 0;
  for (const auto& c : sink_->records()) {
    unsigned long n = 0;
    if (std::sscanf(c.text.c_str(), "%lu log record", &n) == 1 &&
        c.text.find("dropped") != std::string::npos) {
      EXPECT_EQ(c.level, spdlog::level::warn);
      EXPECT_EQ(c.logger.rfind(expected_prefix(), 0), 0u) << c.logger;
      reported += n;
    }
  }
  EXPECT_GT(reported, 0u);
  EXPECT_LT(delivered.size(), static_cast<std::size_t>(kLines));
  EXPECT_EQ(delivered.size() + reported, static_cast<std::size_t>(kLines));
  for (const auto& c : delivered) {
    int task = -1, line = -1;
    ASSERT_EQ(std::sscanf(c.text.c_str(), "bulk %d %d", &task, &line), 2);
    EXPECT_EQ(c.text, bulk_line(task, line));
  }
}

TEST_F(WorkerLog, ATextOverTheCapIsCutAndMarked) {
  {
    mproc::Pool pool(1);
    pool.apply(log_long, 100'000);
  }
  const auto got = with_prefix("long zzz");
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].text.size(), mproc::detail::kMaxLogText);
  EXPECT_TRUE(got[0].text.ends_with(mproc::detail::kLogTextCutMark));
}

TEST_F(WorkerLog, SourceLocationTravels) {
  {
    mproc::Pool pool(1);
    pool.apply(log_with_location, 5);
  }
  const auto got = with_prefix("located 5");
  ASSERT_EQ(got.size(), 1u);
  EXPECT_NE(got[0].file.find("worker_log_test.cpp"), std::string::npos) << got[0].file;
  EXPECT_GT(got[0].source_line, 0);
}

// Nothing a task logs reaches a sink whose own level is above it.
TEST_F(WorkerLog, ParentSinkLevelsStillApply) {
  sink_->set_level(spdlog::level::err);
  {
    mproc::Pool pool(1);
    pool.apply(log_token, std::string("filtered"));
    pool.apply(log_when_off, 7);  // logs "off 7" at info and at error
  }
  EXPECT_TRUE(with_prefix("task says filtered").empty());
  const auto got = with_prefix("off 7");
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].level, spdlog::level::err);
}

}  // namespace
