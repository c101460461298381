#include "mproc/process.hpp"

#include <signal.h>
#include <unistd.h>

#include <cxxabi.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <ostream>
#include <system_error>
#include <typeinfo>

#include "mproc/runtime/detail/before_fork.hpp"
#include "mproc/runtime/detail/owner.hpp"
#include "mproc/runtime/detail/process_table.hpp"
#include "mproc/start_method.hpp"

namespace mproc {

Process::Process() {
  const detail::SelfInfo& self = detail::self_info();
  const std::string n = std::to_string(detail::next_process_number());
  identity_ = self.identity.empty() ? n : self.identity + ":" + n;
  name_ = "Process-" + identity_;
  daemon_ = self.daemon;
}

Process::Process(Process&& other) noexcept
    : target_(std::move(other.target_)),
      target_fds_(std::move(other.target_fds_)),
      name_(std::move(other.name_)),
      identity_(std::move(other.identity_)),
      daemon_(other.daemon_),
      closed_(other.closed_),
      moved_from_(other.moved_from_),
      default_name_(other.default_name_),
      state_(std::move(other.state_)) {
  if (state_) detail::table_set_owner(*state_, this);
  other.target_.clear();
  other.target_fds_.clear();
  other.moved_from_ = true;
}

Process& Process::operator=(Process&& other) noexcept {
  if (this == &other) return *this;
  if (state_) detail::table_forget_owner(*state_);  // its child runs on, unowned (as ~Process)
  target_ = std::move(other.target_);
  target_fds_ = std::move(other.target_fds_);
  name_ = std::move(other.name_);
  identity_ = std::move(other.identity_);
  daemon_ = other.daemon_;
  closed_ = other.closed_;
  moved_from_ = other.moved_from_;
  default_name_ = other.default_name_;
  state_ = std::move(other.state_);
  if (state_) detail::table_set_owner(*state_, this);
  other.target_.clear();
  other.target_fds_.clear();
  other.moved_from_ = true;
  return *this;
}

Process::~Process() {
  if (state_) detail::table_forget_owner(*state_);
}

namespace {

// "Worker" for mproc_demo::Worker, (anonymous namespace)::Worker or Outer::Worker; "" if the
// name cannot be had.
std::string unqualified_class_name(const std::type_info& t) {
  int status = 0;
  char* full = abi::__cxa_demangle(t.name(), nullptr, nullptr, &status);
  if (status != 0 || full == nullptr) return "";
  std::string s(full);
  std::free(full);
  // Only the last component outside template arguments.
  int depth = 0;
  std::size_t start = 0;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '<') ++depth;
    if (s[i] == '>') --depth;
    if (depth == 0 && s[i] == ':' && i + 1 < s.size() && s[i + 1] == ':') start = i + 2;
  }
  return s.substr(start);
}

}  // namespace

const std::string& Process::name() const noexcept {
  if (default_name_ && typeid(*this) != typeid(Process)) {
    try {
      const std::string cls = unqualified_class_name(typeid(*this));
      if (!cls.empty()) name_ = cls + "-" + identity_;
    } catch (...) {  // out of memory: keep "Process-N"
    }
  }
  default_name_ = false;
  return name_;
}

std::ostream& operator<<(std::ostream& os, const Process& p) {
  try {
    std::string cls = "Process";
    if (typeid(p) != typeid(Process)) {
      const std::string c = unqualified_class_name(typeid(p));
      if (!c.empty()) cls = c;
    }
    os << '<' << cls << " name='" << p.name() << '\'';
    bool closed = false;
    pid_t pid = 0;
    std::optional<int> code;
    try {
      pid = p.pid();
      code = p.exitcode();
    } catch (const ProcessError&) {
      closed = true;  // closed or moved from
    }
    if (pid != 0) os << " pid=" << pid;
    os << " parent=" << ::getpid();  // only the process that started it can see it
    if (closed) {
      os << " closed";
    } else if (pid == 0) {
      os << " initial";
    } else if (code) {
      os << " stopped exitcode=" << *code;
    } else {
      os << " started";
    }
    if (p.daemon()) os << " daemon";
    os << '>';
  } catch (...) {  // stream errors are the stream's business
  }
  return os;
}

void Process::run() {
  if (!target_.empty()) detail::run_target(target_);
}

void Process::check_not_closed() const {
  if (moved_from_) throw ProcessError("use of a moved-from Process");
  if (closed_) throw ProcessError("process object is closed");
}

void Process::check_parent() const {
  // Python: "can only join a child process". A fork child's copy would wait forever: the
  // process is not its child, and its table never learns of the exit.
  if (state_ && state_->parent != detail::current_pid()) {
    throw ProcessError(detail::not_owner_message("process object", state_->parent));
  }
}

void Process::daemon(bool on) {
  if (state_) throw ProcessError("process has already started: daemon must be set before start()");
  daemon_ = on;
}

void Process::start() {
  check_not_closed();
  (void)name();  // settle a subclass's default name before the child copies it
  if (state_) throw ProcessError("cannot start a process twice");
  if (detail::self_info().daemon) {
    throw ProcessError("daemonic processes are not allowed to have children");
  }
  switch (get_start_method()) {
    case StartMethod::kFork:
      start_fork();
      break;
    case StartMethod::kForkserver:
    case StartMethod::kSpawn:
      start_spawn();
      break;
  }
}

void Process::start_fork() {
  detail::flush_stdio_before_fork();
  auto st = std::make_shared<detail::ProcessState>();
  const pid_t parent = ::getpid();  // before the fork: the child checks it is still its parent
  pid_t pid;
  {
    const auto quiet_reaper = detail::table_lock_for_fork();
    pid = ::fork();
  }
  if (pid < 0) throw std::system_error(errno, std::generic_category(), "fork");
  if (pid == 0) child_after_fork(parent);
  st->pid = pid;
  st->pidfd = detail::UniqueFd(detail::pidfd_open_fd(pid));
  if (!st->pidfd) {
    const int err = errno;
    ::kill(pid, SIGKILL);
    throw std::system_error(err, std::generic_category(), "pidfd_open");
  }
  st->daemon = daemon_;
  st->owner = this;
  detail::table_add(st);
  state_ = std::move(st);
}

void Process::child_after_fork(pid_t parent) {
  detail::become_child(name_, identity_, daemon_, current_process().name(), parent);
  const int code = detail::run_guarded(
      name_, [](void* self) { static_cast<Process*>(self)->run(); }, this);
  detail::child_exit(code);
}

void Process::join() {
  check_not_closed();
  check_parent();
  if (!state_) throw ProcessError("can only join a started process");
  detail::table_wait(*state_, std::nullopt);
}

bool Process::join_for(std::chrono::nanoseconds timeout) {
  check_not_closed();
  check_parent();
  if (!state_) throw ProcessError("can only join a started process");
  if (timeout < std::chrono::nanoseconds::zero()) timeout = std::chrono::nanoseconds::zero();
  return detail::table_wait(*state_, timeout);
}

bool Process::is_alive() const {
  check_not_closed();
  check_parent();
  return state_ && !detail::table_exitcode(*state_).has_value();
}

void Process::terminate() {
  check_not_closed();
  if (state_ && !detail::table_exitcode(*state_))
    detail::pidfd_signal(state_->pidfd.get(), SIGTERM);
}

void Process::kill() {
  check_not_closed();
  if (state_ && !detail::table_exitcode(*state_))
    detail::pidfd_signal(state_->pidfd.get(), SIGKILL);
}

void Process::close() {
  if (closed_) return;
  if (state_ && !detail::table_exitcode(*state_)) {
    throw ProcessError("cannot close a process while it is still running; join or terminate it");
  }
  if (state_) {
    detail::table_forget_owner(*state_);
    state_->pidfd.reset();
  }
  target_.clear();
  closed_ = true;
}

pid_t Process::pid() const {
  check_not_closed();
  return state_ ? state_->pid : 0;
}

std::optional<int> Process::exitcode() const {
  check_not_closed();
  if (!state_) return std::nullopt;
  return detail::table_exitcode(*state_);
}

int Process::sentinel() const {
  check_not_closed();
  if (!state_) throw ProcessError("process not started: it has no sentinel yet");
  return state_->pidfd.get();
}

namespace detail {
void run_target(std::span<const char> payload) {
  Bytes discarded;
  invoke_payload(payload, discarded);
}
}  // namespace detail

}  // namespace mproc
