// A fork server that dies (OOM killer, kill -9) is replaced on next use (issue 15, item 7):
// every forkserver pool made afterwards failed with "sendmsg: Broken pipe".
#include <dirent.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include <mproc/pool.hpp>
#include <mproc/runtime/detail/forkserver.hpp>

#include "scenario.hpp"

namespace {
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

int sqr(int x) {
  return x * x;
}

void pool_round(const char* label) {
  try {
    mproc::Pool pool(2);
    std::printf("%s %d\n", label, pool.apply(sqr, 4));
  } catch (const std::exception& e) {
    std::printf("%s failed: %s\n", label, e.what());
  }
  std::fflush(stdout);
}

// One thread's /proc/self/task/<tid>/syscall: the number of the system call it is blocked in and
// its arguments, or "running".
std::string syscall_line(const char* tid) {
  std::ifstream f(std::string("/proc/self/task/") + tid + "/syscall");
  std::string line;
  std::getline(f, line);
  return line;
}

// Whether a thread blocked in this call waits for a reply: poll without a timeout (the fork
// server client's wait; a poll with a timeout of 0 is its check that the server lives, made
// before the request is sent) or recvmsg.
bool waits_for_a_reply(const std::string& line) {
  std::istringstream in(line);
  long nr = -1;
  std::string fds, nfds, timeout;
  if (!(in >> nr)) return false;
  in >> fds >> nfds >> timeout;
#ifdef SYS_poll
  if (nr == SYS_poll) return timeout != "0x0";
#endif
  return nr == SYS_ppoll || nr == SYS_recvmsg;
}

// True once a thread of ours other than `self` waits for a reply: the pool's thread waiting for
// the (stopped) fork server's answer; nothing else of ours waits so at that moment. `seen` gets
// every thread's state, for the message when it never happens.
bool someone_awaits_reply(pid_t self, std::string& seen) {
  DIR* d = ::opendir("/proc/self/task");
  if (d == nullptr) return false;
  bool found = false;
  seen.clear();
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] == '.' || std::atoi(e->d_name) == self) continue;
    const std::string line = syscall_line(e->d_name);
    seen += std::string(" [") + e->d_name + ": " + line.substr(0, line.find(' ', 0)) + "]";
    if (waits_for_a_reply(line)) found = true;
  }
  ::closedir(d);
  return found;
}
}  // namespace

MPROC_SCENARIO(forkserver_killed_between_pools) {
  pool_round("first");
  const pid_t old = mproc::detail::forkserver_pid();
  ::kill(old, SIGKILL);
  pool_round("second");
  const pid_t now = mproc::detail::forkserver_pid();
  std::printf("new server %s\n", now > 0 && now != old ? "yes" : "no");
  pool_round("third");
  return 0;
}

// The server dies after it took the request and before it answered.
MPROC_SCENARIO(forkserver_killed_during_request) {
  pool_round("first");
  const pid_t server = mproc::detail::forkserver_pid();
  ::kill(server, SIGSTOP);
  bool killed_midway = false;
  std::string seen;
  std::thread killer([&] {
    const pid_t self = static_cast<pid_t>(::syscall(SYS_gettid));
    // Only a hang bound: the request is made at once, and waits for as long as the server is
    // stopped. (run_scenario's own deadline for the whole program is longer.)
    const auto deadline = Clock::now() + 20s;
    while (!(killed_midway = someone_awaits_reply(self, seen)) && Clock::now() < deadline)
      std::this_thread::sleep_for(1ms);
    ::kill(server, SIGKILL);
  });
  pool_round("second");
  killer.join();
  if (killed_midway) {
    std::printf("killed midway yes\n");
  } else {
    std::printf("killed midway no: after 20 s no thread waited for a reply; threads:%s\n",
                seen.c_str());
  }
  pool_round("third");
  return 0;
}
