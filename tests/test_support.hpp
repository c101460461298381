// test_support.hpp — helpers shared by the pool test suites.
//
//   class MySuite : public mproc_test::LeakCheck {};     // or LeakCheckWithParam<int>
//   TEST_F(MySuite, Something) { ... }
//
// LeakCheck records this process's children (from /proc/*/stat) and its open descriptors
// (/proc/self/fd) before a test and, after it, checks — polling for up to 2 s so that reaping
// can finish — that no child process (zombies included) was left behind and that no more
// descriptors are open than before (the new ones are named in the failure). It
// also arms a per-test watchdog: a test that hangs ends the binary with a message naming it
// instead of waiting for ctest's timeout.
//
// with_deadline(seconds, what, fn) runs fn() on this thread under its own, tighter watchdog.
//
// Gate and wait_for_gate / gated(path, value) make a task that runs until the test says so.
#pragma once

#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <typeinfo>
#include <utility>
#include <vector>

#include "shared_counters.hpp"

namespace mproc_test {

using Clock = std::chrono::steady_clock;

// ---- /proc readers --------------------------------------------------------------------------
//
// A process can exit between any two steps of reading its /proc entry: the directory is listed,
// then opening its stat fails (ENOENT), or the open succeeds and the read fails (ESRCH). Every
// reader here treats that as "the process is gone", never as an error. They use open/read
// rather than an ifstream: its filebuf throws from underflow() on ESRCH ("basic_filebuf::
// underflow error reading the file: No such process") when read through an istreambuf_iterator,
// and sets badbit elsewhere, and one such test helper failed a clean run that way.

// The whole of a /proc file, or nothing when it cannot be opened or read.
inline std::optional<std::string> read_proc_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  std::string out;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n > 0) {
      out.append(buf, static_cast<std::size_t>(n));
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else {
      ::close(fd);
      if (n < 0) return std::nullopt;
      return out;
    }
  }
}

// What /proc/<pid>/stat says about a process: "pid (comm) S ppid ...".
struct ProcStat {
  std::string head;  // "pid (comm) S"
  char state = 0;
  pid_t ppid = 0;
};

// Nothing when the process is gone (reaped) or its stat cannot be parsed.
inline std::optional<ProcStat> proc_stat(pid_t pid) {
  const auto text = read_proc_file("/proc/" + std::to_string(pid) + "/stat");
  if (!text) return std::nullopt;
  const auto close = text->rfind(')');  // comm may itself contain ')' and spaces
  if (close == std::string::npos) return std::nullopt;
  ProcStat st;
  int ppid = 0;
  if (std::sscanf(text->c_str() + close + 1, " %c %d", &st.state, &ppid) != 2) return std::nullopt;
  st.ppid = static_cast<pid_t>(ppid);
  st.head = text->substr(0, std::min(close + 3, text->size()));
  return st;
}

// Whether `pid` no longer exists or is a zombie (it has exited; nobody reaped it yet).
inline bool exited(pid_t pid) {
  const auto st = proc_stat(pid);
  return !st || st->state == 'Z';
}

// Pids of every process in /proc (a snapshot: some may be gone by the time they are read).
inline std::vector<pid_t> all_pids() {
  std::vector<pid_t> out;
  DIR* dir = ::opendir("/proc");
  if (!dir) return out;
  while (const dirent* e = ::readdir(dir)) {
    char* end = nullptr;
    const long pid = std::strtol(e->d_name, &end, 10);
    if (end != e->d_name && *end == 0 && pid > 0) out.push_back(static_cast<pid_t>(pid));
  }
  ::closedir(dir);
  return out;
}

// Pids of every process whose parent is `parent` (zombies included).
inline std::set<pid_t> child_pids(pid_t parent = ::getpid()) {
  std::set<pid_t> out;
  for (pid_t pid : all_pids()) {
    const auto st = proc_stat(pid);
    if (st && st->ppid == parent) out.insert(pid);
  }
  return out;
}

// One line describing a process: "pid (comm) state".
inline std::string describe_pid(pid_t pid) {
  const auto st = proc_stat(pid);
  return st ? st->head : std::to_string(pid) + " (gone)";
}

// This process's open descriptors and what they point at (the directory stream used to list
// them is left out).
inline std::map<int, std::string> open_fds() {
  std::map<int, std::string> out;
  DIR* dir = ::opendir("/proc/self/fd");
  if (!dir) return out;
  const int own = ::dirfd(dir);
  while (const dirent* e = ::readdir(dir)) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    const int fd = std::atoi(e->d_name);
    if (fd == own) continue;
    char target[4096];
    const std::string link = std::string("/proc/self/fd/") + e->d_name;
    const ssize_t len = ::readlink(link.c_str(), target, sizeof target - 1);
    out.emplace(fd, len > 0 ? std::string(target, static_cast<std::size_t>(len)) : "?");
  }
  ::closedir(dir);
  return out;
}

// A field of /proc/<pid>/status in kB (VmRSS, VmHWM, ...), or -1 (also when the process is gone).
inline long status_kb(const char* field, const char* path = "/proc/self/status") {
  const auto text = read_proc_file(path);
  if (!text) return -1;
  std::istringstream in(*text);
  std::string line;
  const std::string key = std::string(field) + ":";
  while (std::getline(in, line)) {
    if (line.rfind(key, 0) == 0) return std::stol(line.substr(key.size()));
  }
  return -1;
}

inline long vm_rss_kb() {
  return status_kb("VmRSS");
}

// Polls `p` every 5 ms until it holds or `limit` passes; returns its last value.
template <class Pred>
bool eventually(Pred p, std::chrono::milliseconds limit = std::chrono::milliseconds(2000)) {
  const auto deadline = Clock::now() + limit;
  while (Clock::now() < deadline) {
    if (p()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return p();
}

// ---- deadlines --------------------------------------------------------------------------------

// Ends the process with a message if it is still armed when `limit` passes. A hung
// multi-process test cannot be unwound safely (threads and children hold its stack), so the
// only sound way to fail it is to leave, loudly. Workers die with the coordinator
// (PR_SET_PDEATHSIG), so nothing is orphaned.
class Watchdog {
 public:
  Watchdog(std::chrono::milliseconds limit, std::string what)
      : what_(std::move(what)), limit_(limit), thread_([this] { run(); }) {}
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;
  ~Watchdog() {
    {
      std::lock_guard lock(mu_);
      done_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

 private:
  void run() {
    std::unique_lock lock(mu_);
    if (cv_.wait_for(lock, limit_, [this] { return done_; })) return;
    std::fprintf(stderr,
                 "\n*** DEADLINE EXCEEDED: %s did not finish within %.1f s; aborting the test "
                 "binary instead of hanging ***\n",
                 what_.c_str(), static_cast<double>(limit_.count()) / 1000.0);
    std::fflush(stderr);
    std::fflush(stdout);
    std::_Exit(124);
  }

  std::string what_;
  std::chrono::milliseconds limit_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  std::thread thread_;  // last: started once the members it reads exist
};

inline std::chrono::milliseconds seconds_ms(double s) {
  return std::chrono::milliseconds(static_cast<long long>(s * 1000.0));
}

// Runs fn() on this thread; if it has not returned after `seconds`, fails loudly (see Watchdog).
template <class F>
decltype(auto) with_deadline(double seconds, const std::string& what, F&& fn) {
  Watchdog dog(seconds_ms(seconds), what);
  return std::forward<F>(fn)();
}

// Whether this is a sanitizer build (slower; ASan's quarantine also inflates RSS).
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define MPROC_TEST_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define MPROC_TEST_SANITIZED 1
#endif
#endif
#ifdef MPROC_TEST_SANITIZED
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif

// How many times slower than a Release build this build runs: tests/CMakeLists.txt sets
// MPROC_TEST_TIME_SCALE from MPROC_SANITIZE (ThreadSanitizer is 5-15x slower, ASan ~4x). Every
// time limit a test imposes on the code under test, and every deadline, is scaled by it.
#ifdef MPROC_TEST_TIME_SCALE
constexpr double kSlowdown = MPROC_TEST_TIME_SCALE;
#else
constexpr double kSlowdown = kSanitized ? 4.0 : 1.0;
#endif

// `d` scaled by kSlowdown, in milliseconds.
template <class Rep, class Period>
std::chrono::milliseconds scaled(std::chrono::duration<Rep, Period> d) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(d * kSlowdown);
}

// ---- gates: slow tasks whose end the test decides ------------------------------------------
//
//   Gate gate;
//   auto r = pool.submit(wait_for_gate, gate.path());   // runs until the test opens the gate
//   EXPECT_FALSE(r.ready());                              // certain, however loaded the machine
//   gate.open();
//
// A gate is a file: a worker process of any start method sees it appear. Assertions about what
// is still running then hold by construction, where a sleeping task would make them a race
// against a loaded machine stretching the test's own steps past the sleep.

// Returns `value` once `path` exists. After 30 s it returns anyway: a test that fails before
// opening its gate still ends.
inline int gated(std::string path, int value) {
  for (int i = 0; i < 30000 && ::access(path.c_str(), F_OK) != 0; ++i) ::usleep(1000);
  return value;
}

inline int wait_for_gate(std::string path) {
  return gated(std::move(path), 1);
}

// A fresh path per gate (this process, a counter); the file is removed with the Gate.
class Gate {
 public:
  Gate() {
    static std::atomic<int> n{0};
    path_ = "/tmp/mproc_test_gate_" + std::to_string(::getpid()) + "_" + std::to_string(n++);
  }
  Gate(const Gate&) = delete;
  Gate& operator=(const Gate&) = delete;
  ~Gate() { ::unlink(path_.c_str()); }
  const std::string& path() const { return path_; }
  void open() { std::ofstream(path_) << 'x'; }

 private:
  std::string path_;
};

// ---- memory shared with workers --------------------------------------------------------------

// ---- the leak-checking fixture ----------------------------------------------------------------

inline std::string current_test_name() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  if (!info) return "(no test)";
  return std::string(info->test_suite_name()) + "." + info->name();
}

class LeakCheck : public ::testing::Test {
 public:
  // Whole-test bound (seconds, before sanitizer scaling); a test may lower or raise it by
  // calling set_test_deadline() first thing.
  static constexpr double kTestDeadlineSeconds = 45.0;
  // tests/CMakeLists.txt gives every test 120 s: fire first, with a message.
  static constexpr double kCtestTimeoutSeconds = 120.0;

 protected:
  void SetUp() override {
    children_before_ = child_pids();
    fds_before_ = open_fds();
    dog_ = std::make_unique<Watchdog>(
        seconds_ms(std::min(kTestDeadlineSeconds * kSlowdown, kCtestTimeoutSeconds - 10)),
        "test " + current_test_name());
  }

  void TearDown() override {
    dog_.reset();
    std::set<pid_t> extra_children;
    std::map<int, std::string> extra_fds;
    const bool clean = eventually(
        [&] {
          extra_children.clear();
          for (pid_t p : child_pids())
            if (!children_before_.count(p)) extra_children.insert(p);
          // More descriptors than before is a leak; the new numbers say which.
          const auto now = open_fds();
          extra_fds.clear();
          if (now.size() > fds_before_.size()) {
            for (const auto& [fd, target] : now)
              if (!fds_before_.count(fd) || fds_before_.at(fd) != target)
                extra_fds.emplace(fd, target);
            if (extra_fds.empty()) extra_fds.emplace(-1, "(count grew)");
          }
          return extra_children.empty() && extra_fds.empty();
        },
        std::chrono::milliseconds(2000));
    if (clean) return;
    std::ostringstream msg;
    for (pid_t p : extra_children) msg << "\n  child process left behind: " << describe_pid(p);
    for (const auto& [fd, target] : extra_fds)
      msg << "\n  descriptor leaked: " << fd << " -> " << target;
    ADD_FAILURE() << "leak check failed after 2 s of polling:" << msg.str();
  }

  void set_test_deadline(double seconds) {
    dog_.reset();
    dog_ = std::make_unique<Watchdog>(
        seconds_ms(std::min(seconds * kSlowdown, kCtestTimeoutSeconds - 10)),
        "test " + current_test_name());
  }

 private:
  std::set<pid_t> children_before_;
  std::map<int, std::string> fds_before_;
  std::unique_ptr<Watchdog> dog_;
};

template <class P>
class LeakCheckWithParam : public LeakCheck, public ::testing::WithParamInterface<P> {};

// Names parametrized instances "1_worker", "2_workers", ...
struct WorkersName {
  template <class P>
  std::string operator()(const ::testing::TestParamInfo<P>& info) const {
    const auto n = static_cast<std::size_t>(info.param);
    return std::to_string(n) + (n == 1 ? "_worker" : "_workers");
  }
};

// Expects `fn()` to throw exactly E (not a subclass, not a base) with what() == message.
template <class E, class F>
void expect_throws_exactly(F&& fn, const std::string& message, const char* where = "") {
  try {
    fn();
    ADD_FAILURE() << where << ": expected " << typeid(E).name() << ", nothing was thrown";
  } catch (const E& e) {
    EXPECT_TRUE(typeid(e) == typeid(E))
        << where << ": caught as " << typeid(E).name() << " but its dynamic type is "
        << typeid(e).name() << " (" << e.what() << ")";
    EXPECT_EQ(std::string(e.what()), message) << where;
  } catch (const std::exception& e) {
    ADD_FAILURE() << where << ": expected " << typeid(E).name() << ", got " << typeid(e).name()
                  << ": " << e.what();
  }
}

}  // namespace mproc_test
