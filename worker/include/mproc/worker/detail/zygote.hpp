// mproc/worker/detail/zygote.hpp — the single-threaded process every pool worker is forked from.
// Internal (namespace detail).
//
// Forking a multi-threaded coordinator is hazardous (a lock held by another thread stays locked
// forever in the child) and its cost grows with the coordinator's memory. So a pool forks one
// small zygote before any of its threads exist, and every worker, first or replacement, is forked
// from it: all workers see the same snapshot and replacing one costs a fork of a small process.
//
// The zygote is the workers' parent: it reaps them and reports each exit status to the
// coordinator, so there are never zombies and the coordinator learns why a worker died.
// With each spawned worker it sends a pidfd, so the coordinator can signal the worker without a
// pid-reuse race. Workers die with the zygote and the zygote with the coordinator thread that
// forked it (PR_SET_PDEATHSIG, checked against getppid() right after it is set).
//
// Thread safety: a Zygote belongs to the one coordinator thread that started it.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <utility>

#include "mproc/runtime/detail/fd.hpp"

namespace mproc::detail {

class Zygote {
 public:
  // Runs in each new worker with its socket, serial number and progress slot; must never
  // return (it _exits).
  using WorkerMain = std::function<void(int fd, unsigned serial, unsigned slot)>;

  struct Report {
    enum class Kind : std::uint32_t { kSpawned = 1, kSpawnFailed = 2, kExited = 3 } kind;
    pid_t pid = 0;
    int status = 0;  // waitpid status for kExited, errno for kSpawnFailed
    unsigned index = 0;
    // kSpawned only; empty if pidfd_open failed or the descriptor was dropped on receipt
    // (MSG_CTRUNC, a full descriptor table): then request_kill() signals the worker.
    UniqueFd pidfd;
  };

  Zygote() = default;
  // Forks the zygote from the calling thread; it keeps `keep_fds` open for its workers.
  // Throws std::system_error.
  explicit Zygote(WorkerMain worker_main, std::span<const int> keep_fds = {});
  // Adopts a zygote that another process (the fork server) forked: it is not our child, so
  // stop() only closes the control socket; the zygote exits on EOF and its parent reaps it.
  Zygote(UniqueFd control, pid_t pid) : control_(std::move(control)), pid_(pid), child_(false) {
    set_nonblocking(control_.get(), true);
  }
  Zygote(Zygote&& o) noexcept
      : control_(std::move(o.control_)), pid_(std::exchange(o.pid_, -1)), child_(o.child_) {}
  Zygote& operator=(Zygote&& o) noexcept {
    if (this != &o) {
      stop();
      control_ = std::move(o.control_);
      pid_ = std::exchange(o.pid_, -1);
      child_ = o.child_;
    }
    return *this;
  }
  ~Zygote();

  pid_t pid() const noexcept { return pid_; }
  // Non-blocking SOCK_SEQPACKET socket; readable when a report is waiting.
  int control_fd() const noexcept { return control_.get(); }

  // Asks the zygote to fork worker number `index`, owning `worker_fd` and progress `slot`.
  // Throws std::system_error if the zygote is gone.
  void request_spawn(int worker_fd, unsigned index, unsigned slot);

  // Asks the zygote to send `sig` to its worker `pid`, for a worker whose pidfd did not arrive
  // (the coordinator's descriptor table was full). Safe against pid reuse: the zygote signals
  // only a child it has not reaped. Throws std::system_error if the zygote is gone.
  void request_kill(pid_t pid, int sig);

  // Reads one report without blocking. nullopt: none waiting. Throws EOFError when the zygote
  // has gone away.
  std::optional<Report> receive();

  // Closes the control socket (the zygote exits, its remaining workers die with it) and reaps
  // the zygote, killing it if it has not exited within `grace_ms`.
  void stop(int grace_ms = 1000) noexcept;

 private:
  UniqueFd control_;
  pid_t pid_ = -1;
  bool child_ = true;
};

// The zygote's main loop, for a process that is to become one (after fork): serves spawn
// requests on `ctl` until it closes, reaping workers and reporting their exits. Keeps
// `keep_fds` open (everything else above 2 is closed). Dies with `parent`.
[[noreturn]] void run_zygote(int ctl, pid_t parent, const Zygote::WorkerMain& worker_main,
                             std::span<const int> keep_fds);

}  // namespace mproc::detail
