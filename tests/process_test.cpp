// mproc::Process under fork and spawn: exit codes, join with a timeout, terminate/kill, misuse,
// zombies, daemons, sentinels, names, subclasses. Every wait is bounded: a hang fails with a
// message instead of reaching ctest's timeout.
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <spdlog/sinks/ostream_sink.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <mproc/connection.hpp>
#include <mproc/logging.hpp>
#include <mproc/process.hpp>
#include <mproc/queue.hpp>
#include <mproc/runtime/detail/fd.hpp>
#include <mproc/start_method.hpp>
#include <sstream>
#include <string>
#include <thread>

#include "test_support.hpp"

using namespace std::chrono_literals;

namespace {

constexpr auto kLimit = 30s;

// Joins within the limit, or kills the child and fails.
::testing::AssertionResult joined(mproc::Process& p, std::chrono::seconds limit = kLimit) {
  if (p.join(limit)) return ::testing::AssertionSuccess();
  p.kill();
  p.join(5s);
  return ::testing::AssertionFailure()
         << p.name() << " did not end within " << limit.count() << " s";
}

bool readable_within(int fd, std::chrono::milliseconds limit) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, static_cast<int>(limit.count())) == 1;
}

void do_nothing() {}
void exit_with(int code) {
  std::exit(code);
}
void mproc_exit_with(int code) {
  mproc::exit(code);
}
void throw_runtime(std::string msg) {
  throw std::runtime_error(msg);
}
struct Custom {};
void throw_custom() {
  throw Custom{};
}
void sleep_forever() {
  for (;;) ::pause();
}
void wait_for_message(mproc::Connection<int> c) {
  c.recv();
}
void square_to(int i, mproc::Queue<std::pair<int, int>> q) {
  q.put({i, i * i});
}
void report_identity(mproc::Connection<std::string> w) {
  w.send(mproc::current_process().name());
  auto parent = mproc::parent_process();
  w.send(parent ? parent->name() : "none");
  w.send(parent ? std::to_string(parent->pid()) : "0");
  w.send(mproc::current_process_is_daemon() ? "daemon" : "not daemon");
}
void start_daemon_grandchild(mproc::Connection<int> w) {
  mproc::Process d(sleep_forever);
  d.daemon(true);
  d.start();
  w.send(d.pid());
  // Returning ends this process with _exit: PR_SET_PDEATHSIG must take the daemon down.
}
void daemon_tries_child() {
  mproc::Process c(do_nothing);
  try {
    c.start();
  } catch (const mproc::ProcessError&) {
    mproc::exit(7);
  }
  c.join();
  mproc::exit(0);
}

// Redirects this process's stderr to a file while alive; children started meanwhile inherit it.
class StderrCapture {
 public:
  StderrCapture() {
    char tmpl[] = "/tmp/mproc-stderr-XXXXXX";
    fd_ = ::mkstemp(tmpl);
    path_ = tmpl;
    std::fflush(stderr);
    saved_ = ::dup(2);
    ::dup2(fd_, 2);
  }
  void restore() {
    if (saved_ < 0) return;
    std::fflush(stderr);
    ::dup2(saved_, 2);
    ::close(saved_);
    saved_ = -1;
  }
  std::string text() const {
    std::ifstream in(path_);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  ~StderrCapture() {
    restore();
    ::close(fd_);
    ::unlink(path_.c_str());
  }

 private:
  int fd_ = -1, saved_ = -1;
  std::string path_;
};

class ProcessTest : public ::testing::TestWithParam<const char*> {
 protected:
  void SetUp() override { mproc::set_start_method(GetParam()); }
  void TearDown() override { mproc::set_start_method("fork"); }
};

TEST_P(ProcessTest, ExitCodes) {
  mproc::Process ok(do_nothing), ex3(exit_with, 3), mx4(mproc_exit_with, 4);
  mproc::Process term(sleep_forever), kil(sleep_forever);
  EXPECT_FALSE(ok.exitcode().has_value());
  for (mproc::Process* p : {&ok, &ex3, &mx4, &term, &kil}) p->start();
  term.terminate();
  kil.kill();
  for (mproc::Process* p : {&ok, &ex3, &mx4, &term, &kil}) ASSERT_TRUE(joined(*p));
  EXPECT_EQ(ok.exitcode(), 0);
  EXPECT_EQ(ex3.exitcode(), 3);
  EXPECT_EQ(mx4.exitcode(), 4);
  EXPECT_EQ(term.exitcode(), -SIGTERM);
  EXPECT_EQ(kil.exitcode(), -SIGKILL);
}

// Python logs a child's start and exit at debug level; so do we, as for pool workers, in the
// parent (the lines say which process, its pid and its exit code).
TEST_P(ProcessTest, StartAndExitAreLoggedAtDebugLevel) {
  auto log = mproc::get_logger();
  std::ostringstream lines;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(lines);
  const auto saved_level = log->level();
  log->sinks().push_back(sink);
  log->set_level(spdlog::level::debug);
  mproc::Process p(exit_with, 3);
  p.start();
  const pid_t pid = p.pid();
  const bool ended = joined(p);
  log->set_level(saved_level);
  log->sinks().pop_back();
  ASSERT_TRUE(ended);
  const std::string text = lines.str();
  EXPECT_NE(text.find("started " + p.name() + " (pid " + std::to_string(pid) + ")"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find(p.name() + " (pid " + std::to_string(pid) + ") exited with code 3"),
            std::string::npos)
      << text;
}

TEST_P(ProcessTest, UncaughtExceptionIsExitCodeOneWithMessageOnStderr) {
  StderrCapture cap;
  mproc::Process p(throw_runtime, "boom from the child");
  mproc::Process q(throw_custom);
  p.start();
  q.start();
  cap.restore();
  ASSERT_TRUE(joined(p));
  ASSERT_TRUE(joined(q));
  EXPECT_EQ(p.exitcode(), 1);
  EXPECT_EQ(q.exitcode(), 1);
  const std::string err = cap.text();
  EXPECT_NE(err.find("Process " + p.name() + ":"), std::string::npos) << err;
  EXPECT_NE(err.find("std::runtime_error: boom from the child"), std::string::npos) << err;
  EXPECT_NE(err.find("Custom"), std::string::npos) << err;
}

TEST_P(ProcessTest, JoinWithTimeoutOnASleepingProcess) {
  mproc::Process p(sleep_forever);
  p.start();
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_FALSE(p.join(200ms));
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 10s);
  EXPECT_TRUE(p.is_alive());
  EXPECT_FALSE(p.exitcode().has_value());
  p.terminate();
  ASSERT_TRUE(joined(p));
  EXPECT_FALSE(p.is_alive());
}

TEST_P(ProcessTest, Misuse) {
  mproc::Process p(sleep_forever);
  EXPECT_THROW(p.join(), mproc::ProcessError);
  EXPECT_THROW(p.sentinel(), mproc::ProcessError);
  EXPECT_EQ(p.pid(), 0);
  p.start();
  EXPECT_THROW(p.start(), mproc::ProcessError);
  EXPECT_THROW(p.close(), mproc::ProcessError);
  EXPECT_THROW(p.daemon(true), mproc::ProcessError);
  p.kill();
  ASSERT_TRUE(joined(p));
  p.close();
  EXPECT_THROW(p.pid(), mproc::ProcessError);
  EXPECT_THROW(p.start(), mproc::ProcessError);
  EXPECT_THROW(p.exitcode(), mproc::ProcessError);
}

// Whether `pid` is an unreaped zombie. Gone (reaped, even between the open and the read of its
// stat) is not a zombie.
bool is_zombie(pid_t pid) {
  const auto st = mproc_test::proc_stat(pid);
  return st && st->state == 'Z';
}

TEST_P(ProcessTest, FinishedProcessIsReapedWithoutJoin) {
  mproc::Process p(do_nothing);
  p.start();
  ASSERT_TRUE(readable_within(p.sentinel(), 30s));
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (is_zombie(p.pid()) && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(5ms);
  }
  EXPECT_FALSE(is_zombie(p.pid())) << "pid " << p.pid() << " is still a zombie";
  EXPECT_EQ(p.exitcode(), 0);  // reaped by the reaper, nobody joined
}

TEST_P(ProcessTest, SentinelBecomesReadableWhenTheProcessEnds) {
  auto [r, w] = mproc::Pipe<int>();
  mproc::Process p(wait_for_message, r);
  p.start();
  EXPECT_FALSE(readable_within(p.sentinel(), 0ms));
  w.send(1);
  EXPECT_TRUE(readable_within(p.sentinel(), 30s));
  ASSERT_TRUE(joined(p));
  EXPECT_EQ(p.exitcode(), 0);
}

TEST_P(ProcessTest, TenProcessesWithArguments) {
  mproc::Queue<std::pair<int, int>> q;
  std::vector<std::unique_ptr<mproc::Process>> ps;
  for (int i = 0; i < 10; ++i) ps.push_back(std::make_unique<mproc::Process>(square_to, i, q));
  for (auto& p : ps) p->start();
  std::vector<int> squares(10, -1);
  for (int i = 0; i < 10; ++i) {
    auto [k, v] = q.get(kLimit);
    squares.at(static_cast<std::size_t>(k)) = v;
  }
  for (auto& p : ps) {
    ASSERT_TRUE(joined(*p));
    EXPECT_EQ(p->exitcode(), 0);
  }
  for (int i = 0; i < 10; ++i) EXPECT_EQ(squares[static_cast<std::size_t>(i)], i * i);
}

TEST_P(ProcessTest, NamesParentAndActiveChildren) {
  auto [r, w] = mproc::Pipe<std::string>(false);
  mproc::Process p(report_identity, w);
  EXPECT_EQ(p.name().rfind("Process-", 0), 0u) << p.name();
  p.name("reporter");
  p.start();
  w.close();
  const auto kids = mproc::active_children();
  ASSERT_TRUE(r.poll(kLimit));
  EXPECT_EQ(r.recv(), "reporter");
  EXPECT_EQ(r.recv(), "MainProcess");
  EXPECT_EQ(r.recv(), std::to_string(::getpid()));
  EXPECT_EQ(r.recv(), "not daemon");
  ASSERT_TRUE(joined(p));
  EXPECT_FALSE(mproc::parent_process().has_value());
  EXPECT_TRUE(std::find(kids.begin(), kids.end(), &p) != kids.end() || !p.exitcode() == false);
  const auto after = mproc::active_children();
  EXPECT_TRUE(std::find(after.begin(), after.end(), &p) == after.end());
}

TEST_P(ProcessTest, ActiveChildrenListsRunningProcesses) {
  mproc::Process p(sleep_forever);
  p.start();
  const auto kids = mproc::active_children();
  EXPECT_TRUE(std::find(kids.begin(), kids.end(), &p) != kids.end());
  p.kill();
  ASSERT_TRUE(joined(p));
  const auto after = mproc::active_children();
  EXPECT_TRUE(std::find(after.begin(), after.end(), &p) == after.end());
}

TEST_P(ProcessTest, DaemonDiesWithItsParent) {
  auto [r, w] = mproc::Pipe<int>(false);
  mproc::Process helper(start_daemon_grandchild, w);
  helper.start();
  w.close();
  ASSERT_TRUE(r.poll(kLimit)) << "the helper never reported its daemon's pid";
  const pid_t daemon_pid = r.recv();
  ASSERT_TRUE(joined(helper));
  EXPECT_EQ(helper.exitcode(), 0);
  mproc::detail::UniqueFd pidfd(mproc::detail::pidfd_open_fd(daemon_pid));
  if (pidfd) {  // else: already gone and reaped
    EXPECT_TRUE(readable_within(pidfd.get(), 30s)) << "daemon " << daemon_pid << " survived";
  }
}

TEST_P(ProcessTest, DaemonMayNotCreateChildren) {
  mproc::Process d(daemon_tries_child);
  d.daemon(true);
  EXPECT_TRUE(d.daemon());
  d.start();
  ASSERT_TRUE(joined(d));
  EXPECT_EQ(d.exitcode(), 7);
}

TEST_P(ProcessTest, DaemonReportsItself) {
  auto [r, w] = mproc::Pipe<std::string>(false);
  mproc::Process p(report_identity, w);
  p.daemon(true);
  p.start();
  w.close();
  for (int i = 0; i < 3; ++i) r.recv();
  EXPECT_EQ(r.recv(), "daemon");
  ASSERT_TRUE(joined(p));
}

INSTANTIATE_TEST_SUITE_P(StartMethods, ProcessTest, ::testing::Values("fork", "spawn"),
                         [](const auto& info) { return std::string(info.param); });

// ---- subclassing ------------------------------------------------------------------------------

struct Adder : mproc::Process {
  Adder(mproc::Connection<int> out, int a, int b) : out_(std::move(out)), a_(a), b_(b) {}
  void run() override { out_.send(a_ + b_); }
  mproc::Connection<int> out_;
  int a_, b_;
};

TEST(ProcessSubclass, RunOverriddenUnderFork) {
  mproc::set_start_method("fork");
  auto [r, w] = mproc::Pipe<int>(false);
  Adder p(w, 20, 22);
  p.start();
  ASSERT_TRUE(r.poll(kLimit));
  EXPECT_EQ(r.recv(), 42);
  ASSERT_TRUE(joined(p));
  EXPECT_EQ(p.exitcode(), 0);
}

TEST(ProcessSubclass, SpawnRefusesAnUnregisteredSubclassAndSaysHowToRegister) {
  mproc::set_start_method("spawn");
  auto [r, w] = mproc::Pipe<int>(false);
  Adder p(w, 1, 2);
  try {
    p.start();
    ADD_FAILURE() << "an unregistered subclass started under spawn";
  } catch (const mproc::ProcessError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("MPROC_REGISTER_PROCESS("), std::string::npos) << what;
    EXPECT_NE(what.find("Adder)"), std::string::npos) << what;
  }
  mproc::set_start_method("fork");
}

}  // namespace

// A subclass that crosses an exec (Python pickles the Process object): its members, a
// Connection among them, are saved in the parent and loaded in the new program.
struct Multiplier : mproc::Process {
  Multiplier() = default;
  Multiplier(mproc::Connection<std::string> out, int a, int b)
      : out_(std::move(out)), a_(a), b_(b) {}
  void run() override {
    out_.send(mproc::current_process().name() + " " + name() + " " + std::to_string(a_ * b_) + " " +
              std::to_string(::getpid()));
  }
  template <class A>
  void serialize(A& ar) {
    ar(out_, a_, b_);
  }
  mproc::Connection<std::string> out_;
  int a_ = 0, b_ = 0;
};
MPROC_REGISTER_PROCESS(Multiplier);

namespace {

class RegisteredSubclass : public ::testing::TestWithParam<const char*> {
 protected:
  void TearDown() override { mproc::set_start_method("fork"); }
};

TEST_P(RegisteredSubclass, CrossesTheExecWithItsMembersAndName) {
  mproc::set_start_method(GetParam());
  auto [r, w] = mproc::Pipe<std::string>(false);
  Multiplier p(w, 6, 7);
  p.name("multiplier");
  p.start();
  ASSERT_TRUE(r.poll(kLimit)) << "no message from the subclass's run()";
  EXPECT_EQ(r.recv(), "multiplier multiplier 42 " + std::to_string(p.pid()));
  ASSERT_TRUE(joined(p));
  EXPECT_EQ(p.exitcode(), 0);
}

INSTANTIATE_TEST_SUITE_P(StartMethods, RegisteredSubclass,
                         ::testing::Values("fork", "forkserver", "spawn"),
                         [](const auto& info) { return std::string(info.param); });

TEST(ProcessSubclass, NoTargetDoesNothing) {
  mproc::Process p;
  p.start();
  ASSERT_TRUE(joined(p));
  EXPECT_EQ(p.exitcode(), 0);
}

}  // namespace
