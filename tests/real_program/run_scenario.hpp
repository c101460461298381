// run_scenario.hpp — runs one scenario of the helper binary (scenario.hpp) as a real program.
//
//   auto r = run_scenario("printed_before_pool", {.method = "fork", .stdout_to = kPipe});
//   EXPECT_EQ(r.exit_code, 0) << r.stderr_text;
//
// The scenario runs in its own process group with stdout and stderr on pipes (fully buffered
// stdio, as in `./app | tee log`) or on a file. A run that outlives its deadline is killed
// (the whole group) and reported as timed_out with what it printed so far. This test process
// is a child subreaper, so whatever the scenario started and left behind becomes our child:
// after the run, every process still in the scenario's group is named in `leftovers` (and
// then killed), so a test can assert that nothing outlived the program.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "../test_support.hpp"

namespace mproc_test {

struct ScenarioOptions {
  std::string method = "fork";
  // Sent to the scenario's process group once it printed "READY" (0: none).
  int signal_on_ready = 0;
  // stdout into a regular file instead of a pipe (`./app > log`).
  bool stdout_to_file = false;
  double deadline_s = 30;
  std::vector<std::string> env = {};  // extra NAME=VALUE entries
};

struct ScenarioResult {
  int exit_code = -1;  // WEXITSTATUS, or -1 when killed by a signal
  int signal = 0;      // WTERMSIG when killed by a signal
  bool timed_out = false;
  std::string out, err;
  std::vector<std::string> leftovers;  // processes of its group alive after it ended

  std::string describe() const {
    std::string s = timed_out ? "TIMED OUT; " : "";
    s += signal ? "killed by signal " + std::to_string(signal)
                : "exit code " + std::to_string(exit_code);
    s += "\n--- stdout ---\n" + out + "--- stderr ---\n" + err;
    for (const auto& l : leftovers) s += "\nleft behind: " + l;
    return s;
  }
  // How many times `needle` occurs in stdout.
  std::size_t count(const std::string& needle) const {
    std::size_t n = 0;
    for (auto p = out.find(needle); p != std::string::npos; p = out.find(needle, p + 1)) ++n;
    return n;
  }
};

inline ScenarioResult run_scenario(const std::string& name, const ScenarioOptions& o = {}) {
  ::prctl(PR_SET_CHILD_SUBREAPER, 1);
  ScenarioResult r;
  int out_pipe[2], err_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0 || ::pipe2(err_pipe, O_CLOEXEC) != 0) {
    r.err = "pipe failed";
    return r;
  }
  char file_template[] = "/tmp/mproc-scenario-XXXXXX";
  int out_file = -1;
  if (o.stdout_to_file) {
    out_file = ::mkostemp(file_template, O_CLOEXEC);
    ::unlink(file_template);
  }
  // The environment is built before the fork: nothing may allocate in the child of a threaded
  // program before exec.
  std::vector<std::string> env_strings;
  // LeakSanitizer runs at exit() in every process, fork children included, and a fork child of
  // a threaded program has its parent's heap but not the threads whose stacks reach it ("Running
  // thread N was not suspended. False leaks are possible."). Scenarios exit() in such children on
  // purpose, so leaks are not checked in scenario programs; the other suites check them.
  std::string asan = "ASAN_OPTIONS=detect_leaks=0";
  for (char** e = environ; *e; ++e) {
    const std::string entry(*e);
    if (entry.rfind("ASAN_OPTIONS=", 0) == 0) {
      asan = entry + ":detect_leaks=0";  // a later flag overrides an earlier one
    } else if (entry.rfind("MPROC_START_METHOD=", 0) != 0) {
      env_strings.push_back(entry);
    }
  }
  env_strings.push_back(asan);
  env_strings.push_back("MPROC_START_METHOD=" + o.method);
  for (const auto& e : o.env) env_strings.push_back(e);
  std::vector<char*> envp;
  for (auto& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);
  const char* argv[] = {MPROC_SCENARIO_HELPER, name.c_str(), nullptr};
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::setpgid(0, 0);
    ::dup2(o.stdout_to_file ? out_file : out_pipe[1], 1);
    ::dup2(err_pipe[1], 2);
    ::signal(SIGINT, SIG_DFL);
    ::execve(MPROC_SCENARIO_HELPER, const_cast<char* const*>(argv), envp.data());
    ::_exit(127);
  }
  ::setpgid(pid, pid);  // also here: no race with the signal below
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  const auto deadline = Clock::now() + seconds_ms(o.deadline_s * kSlowdown);
  bool signalled = false;
  int status = 0;
  bool exited = false;
  pollfd fds[2] = {{o.stdout_to_file ? -1 : out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  for (;;) {
    if (!exited && ::waitpid(pid, &status, WNOHANG) == pid) exited = true;
    if (exited && fds[0].fd < 0 && fds[1].fd < 0) break;
    if (Clock::now() >= deadline) {
      r.timed_out = true;
      ::kill(-pid, SIGKILL);
      if (!exited) ::waitpid(pid, &status, 0);
      exited = true;
      break;
    }
    // Pipes stay open while a leftover process holds them: once the program has exited, read
    // only what is already there.
    const int n = ::poll(fds, 2, exited ? 0 : 20);
    if (n < 0 && errno != EINTR) break;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      char buf[4096];
      const ssize_t got = ::read(fds[i].fd, buf, sizeof buf);
      if (got <= 0) {
        fds[i].fd = -1;
        continue;
      }
      (i == 0 ? r.out : r.err).append(buf, static_cast<std::size_t>(got));
    }
    if (o.signal_on_ready && !signalled && r.out.find("READY\n") != std::string::npos) {
      ::kill(-pid, o.signal_on_ready);
      signalled = true;
    }
    if (exited && n == 0) break;
  }
  ::close(out_pipe[0]);
  ::close(err_pipe[0]);
  if (o.stdout_to_file) {
    ::lseek(out_file, 0, SEEK_SET);
    char buf[4096];
    ssize_t got;
    while ((got = ::read(out_file, buf, sizeof buf)) > 0) r.out.append(buf, std::size_t(got));
    ::close(out_file);
  }
  if (WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) r.signal = WTERMSIG(status);
  // What the program started should end with it (PR_SET_PDEATHSIG); give it a moment, reaping
  // what was re-parented to us, then name and kill whatever is still in the group.
  const auto grace = Clock::now() + seconds_ms(3 * kSlowdown);
  for (;;) {
    while (::waitpid(-pid, nullptr, WNOHANG) > 0) {
    }
    if (::kill(-pid, 0) != 0 && errno == ESRCH) break;
    if (Clock::now() >= grace) {
      for (pid_t p : child_pids()) {
        if (::getpgid(p) == pid) r.leftovers.push_back(describe_pid(p));
      }
      if (r.leftovers.empty()) r.leftovers.push_back("a process of group " + std::to_string(pid));
      ::kill(-pid, SIGKILL);
      while (::waitpid(-pid, nullptr, 0) > 0) {
      }
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return r;
}

}  // namespace mproc_test
