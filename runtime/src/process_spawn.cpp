// The spawn start method for Process: the parent forks, the child execs /proc/self/exe with
// MPROC_SPAWN_PROCESS=<fd> in its environment, and mproc::init in that fresh program reads the
// bootstrap message from <fd> (exec_bootstrap.hpp) and runs the target. An exec failure comes back
// through a CLOEXEC pipe (nothing arrives when the exec succeeds).
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <system_error>
#include <vector>

#include "mproc/logging.hpp"
#include "mproc/process.hpp"
#include "mproc/runtime/detail/before_fork.hpp"
#include "mproc/runtime/detail/exec_bootstrap.hpp"
#include "mproc/runtime/detail/fd_transfer.hpp"
#include "mproc/runtime/detail/process_table.hpp"
#include "mproc/serialize/detail/exception_wire.hpp"
#include "mproc/serialize/detail/frame.hpp"
#include "mproc/start_method.hpp"

namespace mproc {
namespace {

constexpr const char* kEnv = "MPROC_SPAWN_PROCESS";
constexpr std::uint64_t kMaxBootstrap = detail::kDefaultMaxFrameBytes;

struct Bootstrap {
  std::string name, identity, parent_name;
  bool daemon = false;
  std::int32_t parent_pid = 0;
  std::int32_t log_level = 6;
  std::vector<int> fds;
  std::vector<char> payload;  // the encoded target, or the saved subclass object
  std::string subclass = {};  // a registered subclass's type name; empty: payload is a target

  template <class A>
  void serialize(A& ar) {
    ar(name, identity, parent_name, daemon, parent_pid, log_level, fds, payload, subclass);
  }
};

// GCC 12 reports a false -Wstringop-overflow in the vector growth of this encoding, depending
// on what else the calling function does (a flush before the fork was enough to trigger it).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wstringop-overflow"
detail::Bytes encode_bootstrap(Bootstrap& b) {
  detail::Bytes msg;
  detail::WireOutputArchive ar(msg);
  ar(b);
  return msg;
}
#pragma GCC diagnostic pop

}  // namespace

void Process::start_spawn() {
  detail::require_start_method(StartMethod::kSpawn);
  Bootstrap b{name_,   identity_,  current_process().name(),
              daemon_, ::getpid(), static_cast<std::int32_t>(get_logger()->level()),
              {},      target_};
  std::vector<int> fds = target_fds_;
  if (target_.empty() && typeid(*this) != typeid(Process)) {
    const detail::ProcessClass* cls = detail::find_process_class(typeid(*this).name());
    if (cls == nullptr) {
      throw ProcessError(
          "a Process subclass that overrides run() must be registered to start with the spawn or "
          "forkserver start method (its object crosses an exec): add MPROC_REGISTER_PROCESS(" +
          detail::demangle(typeid(*this).name()) +
          ") and a cereal serialize() of its members, or pass a target, Process(target, args...)");
    }
    detail::FdCollector collect(fds);  // Connections and Queues among its members
    cls->save(*this, b.payload);
    b.subclass = typeid(*this).name();
  }
  b.fds = fds;
  const detail::Bytes msg = encode_bootstrap(b);

  int ep[2];
  if (::pipe2(ep, O_CLOEXEC) != 0) throw std::system_error(errno, std::generic_category(), "pipe2");
  detail::UniqueFd err_r(ep[0]), err_w(ep[1]);

  // Everything the child needs is built before the fork: it only execs.
  detail::ExecBootstrap boot(kEnv, "mproc-spawn-process");
  std::vector<int> keep = fds;
  keep.push_back(boot.child_fd());
  keep.push_back(err_w.get());
  const pid_t parent = ::getpid();
  const bool daemon = daemon_;

  detail::flush_stdio_before_fork();
  const pid_t pid = ::fork();
  if (pid < 0) throw std::system_error(errno, std::generic_category(), "fork");
  if (pid == 0) {
    detail::close_fds_except(keep);
    if (daemon) detail::die_with_parent(parent, SIGTERM);
    boot.exec(fds);
    const int e = errno;
    [[maybe_unused]] ssize_t w = ::write(err_w.get(), &e, sizeof e);
    ::_exit(127);
  }
  boot.forked();
  err_w.reset();
  int exec_errno = 0;
  if (detail::read_exact(err_r.get(), &exec_errno, sizeof exec_errno) == sizeof exec_errno) {
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    throw ProcessError(std::string("cannot exec /proc/self/exe for a spawned Process: ") +
                       std::strerror(exec_errno));
  }
  auto st = std::make_shared<detail::ProcessState>();
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
  // The child may die before reading (its exit code then tells): a failed send is not an error.
  try {
    boot.send_bytes(msg);
  } catch (const std::system_error&) {
  }
}

namespace detail {

void enter_if_spawned_process(int argc, char** argv) {
  std::optional<Bootstrap> boot = read_exec_bootstrap<Bootstrap>(kEnv, kMaxBootstrap);
  if (!boot) return;
  Bootstrap& b = *boot;
  record_init(argc, argv);
  become_child(b.name, b.identity, b.daemon, b.parent_name, b.parent_pid);
  if (b.log_level != static_cast<int>(spdlog::level::off)) {
    log_to_stderr(static_cast<spdlog::level::level_enum>(b.log_level));
  }
  struct Run {
    Bootstrap* b;
  } run{&b};
  const int code = run_guarded(
      b.name,
      [](void* p) {
        Bootstrap& b = *static_cast<Run*>(p)->b;
        FdAdopter adopt(b.fds);
        if (b.subclass.empty()) {
          run_target(b.payload);
          return;
        }
        const ProcessClass* cls = find_process_class(b.subclass);
        if (cls == nullptr) throw ProcessError("spawned Process: unknown subclass " + b.subclass);
        std::unique_ptr<Process> self = cls->load(b.payload);
        self->name(b.name);
        self->run();
      },
      &run);
  child_exit(code);
}

}  // namespace detail
}  // namespace mproc
