// fork_children.hpp — child processes for the shared-memory and synchronization suites, with
// plain fork(): a child runs its body and leaves with _exit(status). join() waits for all of
// them under a deadline; a child still running then is SIGKILLed and the test fails with a
// message naming the deadline, so no hang outlives its test.
#pragma once

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <exception>
#include <string>
#include <thread>
#include <vector>

namespace mproc_test {

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
inline constexpr int kSlow = 4;
#else
inline constexpr int kSlow = 1;
#endif

// Status of a child that threw (the message goes to stderr).
inline constexpr int kThrew = 99;

class Children {
 public:
  Children() = default;
  Children(const Children&) = delete;
  Children& operator=(const Children&) = delete;
  ~Children() {
    for (pid_t p : pids_) {
      ::kill(p, SIGKILL);
      ::waitpid(p, nullptr, 0);
    }
  }

  // body() returns the child's exit status (0: success).
  template <class F>
  pid_t spawn(F body) {
    std::fflush(nullptr);
    const pid_t pid = ::fork();
    if (pid < 0) throw std::runtime_error("fork failed");
    if (pid == 0) {
      int rc = kThrew;
      try {
        rc = body();
      } catch (const std::exception& e) {
        std::fprintf(stderr, "child %d threw: %s\n", ::getpid(), e.what());
      } catch (...) {
        std::fprintf(stderr, "child %d threw a non-exception\n", ::getpid());
      }
      ::_exit(rc);
    }
    pids_.push_back(pid);
    return pid;
  }

  // Waits for every child; returns their raw wait statuses in spawn order. Fails the test and
  // kills the rest when `limit` passes first.
  std::vector<int> join(std::chrono::seconds limit = std::chrono::seconds(30)) {
    const auto deadline = std::chrono::steady_clock::now() + limit * kSlow;
    std::vector<int> status(pids_.size(), -1);
    std::vector<bool> done(pids_.size(), false);
    std::size_t left = pids_.size();
    while (left > 0) {
      for (std::size_t i = 0; i < pids_.size(); ++i) {
        if (done[i]) continue;
        int st = 0;
        if (::waitpid(pids_[i], &st, WNOHANG) == pids_[i]) {
          status[i] = st;
          done[i] = true;
          --left;
        }
      }
      if (left == 0) break;
      if (std::chrono::steady_clock::now() > deadline) {
        ADD_FAILURE() << left << " child process(es) still running after " << limit.count() * kSlow
                      << " s: a hang (killed)";
        for (std::size_t i = 0; i < pids_.size(); ++i) {
          if (!done[i]) {
            ::kill(pids_[i], SIGKILL);
            ::waitpid(pids_[i], &status[i], 0);
          }
        }
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    pids_.clear();
    return status;
  }

  // join(), expecting every child to have exited with status 0.
  void join_ok(std::chrono::seconds limit = std::chrono::seconds(30)) {
    const std::vector<int> st = join(limit);
    for (std::size_t i = 0; i < st.size(); ++i) {
      EXPECT_TRUE(WIFEXITED(st[i]) && WEXITSTATUS(st[i]) == 0)
          << "child " << i << " ended with wait status " << st[i]
          << (WIFEXITED(st[i]) ? " (exit " + std::to_string(WEXITSTATUS(st[i])) + ")" : "");
    }
  }

 private:
  std::vector<pid_t> pids_;
};

// Polls `cond` until true or the deadline; returns its last value.
template <class F>
bool eventually(F cond, std::chrono::seconds limit = std::chrono::seconds(10)) {
  const auto deadline = std::chrono::steady_clock::now() + limit * kSlow;
  while (!cond()) {
    if (std::chrono::steady_clock::now() > deadline) return cond();
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

}  // namespace mproc_test
