// A fork server that dies (OOM killer, kill -9) is replaced on next use (issue 15, item 7):
// every forkserver pool made afterwards failed with "sendmsg: Broken pipe".
#include <dirent.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
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

bool waits_for_a_socket(long syscall_nr) {
#ifdef SYS_poll
  if (syscall_nr == SYS_poll) return true;
#endif
  return syscall_nr == SYS_ppoll || syscall_nr == SYS_recvmsg;
}

// True once a thread of ours other than `self` waits in poll or recvmsg: the pool's I/O thread
// waiting for the (stopped) fork server's reply; nothing else of ours polls at that moment.
bool someone_awaits_reply(pid_t self) {
  DIR* d = ::opendir("/proc/self/task");
  if (d == nullptr) return false;
  bool found = false;
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] == '.' || std::atoi(e->d_name) == self) continue;
    std::ifstream f(std::string("/proc/self/task/") + e->d_name + "/syscall");
    long nr = -1;
    if (f >> nr && waits_for_a_socket(nr)) found = true;
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
  std::atomic<bool> killed_midway{false};
  std::thread killer([&] {
    const pid_t self = static_cast<pid_t>(::syscall(SYS_gettid));
    const auto deadline = Clock::now() + 10s;
    while (!someone_awaits_reply(self) && Clock::now() < deadline) std::this_thread::sleep_for(1ms);
    killed_midway = Clock::now() < deadline;
    ::kill(server, SIGKILL);
  });
  pool_round("second");
  killer.join();
  std::printf("killed midway %s\n", killed_midway ? "yes" : "no");
  pool_round("third");
  return 0;
}
