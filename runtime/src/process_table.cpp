#include "mproc/runtime/detail/process_table.hpp"

#include <cxxabi.h>
#include <pthread.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <map>
#include <mutex>
#include <system_error>
#include <thread>
#include <typeinfo>

#include "mproc/logging.hpp"
#include "mproc/process.hpp"
#include "mproc/process_info.hpp"
#include "mproc/runtime/detail/owner.hpp"

namespace mproc::detail {
namespace {

struct Table {
  std::mutex mu;
  std::condition_variable cv;
  std::map<pid_t, std::shared_ptr<ProcessState>> live;  // started, not yet reaped
  UniqueFd epoll;
  bool reaper_started = false;
  bool atexit_registered = false;
  std::atomic<unsigned> counter{0};
  // The table of the process this one was forked from, abandoned at the fork; kept reachable
  // so that LeakSanitizer, at an exit() in the child, does not report it.
  Table* parents = nullptr;
};

Table* g_table = nullptr;

void reset_in_child() {
  // The parent's table (its lock possibly held by its reaper at the fork) is abandoned, not
  // destroyed: this process has none of those children.
  Table* fresh = new Table;
  fresh->parents = g_table;
  g_table = fresh;
}

Table& table() {
  static std::once_flag once;
  std::call_once(once, [] {
    g_table = new Table;
    ::pthread_atfork(nullptr, nullptr, &reset_in_child);
  });
  return *g_table;
}

SelfInfo& self() {
  static SelfInfo* s = new SelfInfo;
  return *s;
}

int decode_status(const siginfo_t& si) {
  if (si.si_code == CLD_EXITED) return si.si_status;
  return -si.si_status;  // CLD_KILLED, CLD_DUMPED
}

void reap(Table& t, pid_t pid) {
  std::lock_guard lock(t.mu);
  auto it = t.live.find(pid);
  if (it == t.live.end()) return;
  siginfo_t si{};
  const int r = ::waitid(P_PID, static_cast<id_t>(pid), &si, WEXITED | WNOHANG);
  if (r == 0 && si.si_pid == 0) return;  // not ended yet
  ProcessState& st = *it->second;
  if (r == 0) {
    st.exitcode = decode_status(si);
  } else {
    // ECHILD: SIGCHLD is ignored in this process, so the kernel reaped the child itself and
    // its status is lost.
    st.exitcode = 255;
  }
  get_logger()->debug("{} (pid {}) exited with code {}", st.name, st.pid, *st.exitcode);
  ::epoll_ctl(t.epoll.get(), EPOLL_CTL_DEL, st.pidfd.get(), nullptr);
  t.live.erase(it);
  t.cv.notify_all();
}

void reaper_loop(Table* t) {
  for (;;) {
    epoll_event ev[16];
    const int n = ::epoll_wait(t->epoll.get(), ev, 16, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      return;
    }
    for (int i = 0; i < n; ++i) reap(*t, static_cast<pid_t>(ev[i].data.u64));
  }
}

void at_exit() {
  Table& t = *g_table;
  std::unique_lock lock(t.mu);
  for (auto& [pid, st] : t.live) {
    if (st->daemon) pidfd_signal(st->pidfd.get(), SIGTERM);
  }
  // Daemons get a second to stop, then SIGKILL; the others are joined, as Python does.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(1);
  const auto any_daemon = [&] {
    for (auto& [pid, st] : t.live)
      if (st->daemon) return true;
    return false;
  };
  while (any_daemon() && t.cv.wait_until(lock, deadline) != std::cv_status::timeout) {
  }
  for (auto& [pid, st] : t.live) {
    if (st->daemon) pidfd_signal(st->pidfd.get(), SIGKILL);
  }
  t.cv.wait(lock, [&] { return t.live.empty(); });
}

}  // namespace

std::unique_lock<std::mutex> table_lock_for_fork() {
  return std::unique_lock(table().mu);
}

void table_add(const std::shared_ptr<ProcessState>& st) {
  st->parent = current_pid();
  if (st->owner != nullptr) st->name = st->owner->name();
  Table& t = table();
  std::lock_guard lock(t.mu);
  if (!t.epoll) {
    t.epoll = UniqueFd(::epoll_create1(EPOLL_CLOEXEC));
    if (!t.epoll) throw std::system_error(errno, std::generic_category(), "epoll_create1");
  }
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = static_cast<std::uint64_t>(st->pid);
  if (::epoll_ctl(t.epoll.get(), EPOLL_CTL_ADD, st->pidfd.get(), &ev) != 0) {
    throw std::system_error(errno, std::generic_category(), "epoll_ctl(pidfd)");
  }
  t.live.emplace(st->pid, st);
  get_logger()->debug("started {} (pid {})", st->name, st->pid);  // as pool workers are
  if (!t.reaper_started) {
    std::thread(reaper_loop, &t).detach();
    t.reaper_started = true;
  }
  if (!t.atexit_registered) {
    std::atexit(at_exit);
    t.atexit_registered = true;
  }
}

std::optional<int> table_exitcode(const ProcessState& st) {
  Table& t = table();
  std::lock_guard lock(t.mu);
  return st.exitcode;
}

bool table_wait(const ProcessState& st, std::optional<std::chrono::nanoseconds> timeout) {
  Table& t = table();
  std::unique_lock lock(t.mu);
  const auto done = [&] { return st.exitcode.has_value(); };
  if (!timeout) {
    t.cv.wait(lock, done);
    return true;
  }
  return t.cv.wait_for(lock, *timeout, done);
}

void table_forget_owner(ProcessState& st) {
  Table& t = table();
  std::lock_guard lock(t.mu);
  st.owner = nullptr;
}

void table_set_owner(ProcessState& st, Process* owner) {
  Table& t = table();
  std::lock_guard lock(t.mu);
  st.owner = owner;
}

std::vector<Process*> table_active() {
  Table& t = table();
  std::lock_guard lock(t.mu);
  std::vector<Process*> out;
  for (auto& [pid, st] : t.live)
    if (st->owner != nullptr) out.push_back(st->owner);
  return out;
}

unsigned next_process_number() {
  return ++table().counter;
}

const SelfInfo& self_info() {
  return self();
}

void become_child(const std::string& name, const std::string& identity, bool daemon,
                  const std::string& parent_name, pid_t parent_pid) {
  SelfInfo& s = self();
  s.is_child = true;
  s.daemon = daemon;
  s.identity = identity;
  s.parent_name = parent_name;
  s.parent_pid = parent_pid;
  set_process_name(name);
  reset_logging_after_fork();
  if (daemon) {
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (::getppid() != parent_pid) ::raise(SIGTERM);  // the parent is already gone
  }
}

int run_guarded(const std::string& name, void (*body)(void*), void* arg) noexcept {
  const auto demangled = [](const char* mangled) {
    int status = 0;
    char* d = abi::__cxa_demangle(mangled, nullptr, nullptr, &status);
    std::string s = status == 0 && d != nullptr ? d : mangled;
    std::free(d);
    return s;
  };
  try {
    body(arg);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "Process %s:\n%s: %s\n", name.c_str(), demangled(typeid(e).name()).c_str(),
                 e.what());
  } catch (...) {
    const std::type_info* ti = abi::__cxa_current_exception_type();
    std::fprintf(stderr, "Process %s:\n%s: (not a std::exception)\n", name.c_str(),
                 ti != nullptr ? demangled(ti->name()).c_str() : "unknown exception");
  }
  return 1;
}

void child_exit(int code) noexcept {
  std::fflush(stdout);
  std::fflush(stderr);
  ::_exit(code);
}

}  // namespace mproc::detail

namespace mproc {

bool ParentProcess::is_alive() const noexcept {
  return ::getppid() == pid_;
}

std::optional<ParentProcess> parent_process() {
  const detail::SelfInfo& s = detail::self_info();
  if (!s.is_child) return std::nullopt;
  return ParentProcess(s.parent_name, s.parent_pid);
}

std::vector<Process*> active_children() {
  return detail::table_active();
}

bool current_process_is_daemon() noexcept {
  return detail::self_info().daemon;
}

void exit(int code) {
  if (detail::self_info().is_child) detail::child_exit(code);
  std::exit(code);
}

}  // namespace mproc
