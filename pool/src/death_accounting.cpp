#include "mproc/pool/detail/death_accounting.hpp"

#include <string.h>
#include <sys/wait.h>

#include <algorithm>

namespace mproc::detail {

HeldTasks split_held_tasks(const WorkerEnd& w) noexcept {
  if (w.held == 0) return {};
  HeldTasks h;
  // The worker's progress counters say which of the tasks it holds ran.
  if (w.has_progress) {
    h.ran_unsent = static_cast<std::size_t>(w.finished - std::min(w.finished, w.received));
    h.culprit = w.started > w.finished;
  } else {
    h.culprit = w.head_sent && w.init_acked && !w.announced_retire;
  }
  h.ran_unsent = std::min(h.ran_unsent, w.held);
  if (w.protocol_fault) {  // it sent garbage: the task it was given first is the one to blame
    h.ran_unsent = 0;
    h.culprit = true;
  }
  if (h.ran_unsent == w.held) h.culprit = false;  // nothing left to have been running
  return h;
}

CulpritFate culprit_fate(const Culprit& c, const StopReasons& why, unsigned max_retries,
                         bool pool_broken) noexcept {
  if (c.id == why.cancelled) return CulpritFate::kCancelled;
  if (c.id == why.timed_out) return CulpritFate::kTimedOut;
  if (why.protocol_fault) return CulpritFate::kProtocolFault;
  if (c.crashes <= max_retries && !pool_broken) return CulpritFate::kRetry;
  return CulpritFate::kLost;
}

bool count_init_death(unsigned& in_a_row, const WorkerEnd& w, bool shutting_down) noexcept {
  if (!w.init_acked && !shutting_down && !w.protocol_fault) {
    // Died inside its initializer (a crash, not an exception).
    return ++in_a_row >= kInitDeathsToBreak;
  }
  if (w.init_acked) in_a_row = 0;
  return false;
}

WorkerExitCause exit_cause(const WorkerEnd& w) noexcept {
  using C = WorkerExitCause;
  if (w.pool_stop == WorkerEnd::PoolStop::kTerminate) return C::kTerminate;
  if (w.pool_stop == WorkerEnd::PoolStop::kClose) return C::kClose;
  if (w.protocol_fault) return C::kProtocolFault;
  if (w.timed_out) return C::kTimeout;
  if (w.cancelled) return C::kCancel;
  if (w.init_failed || !w.init_acked) return C::kInitializer;
  if (w.announced_retire) return C::kMemoryCap;
  const bool clean = WIFEXITED(w.status) && WEXITSTATUS(w.status) == 0;
  if (w.quota_spent && clean) return C::kMaxTasks;
  return C::kCrash;
}

bool idle_death_is_abnormal(int status, bool shutting_down) noexcept {
  const bool clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
  return !clean && !shutting_down;
}

std::string describe_status(int status) {
  if (WIFSIGNALED(status)) {
    const int sig = WTERMSIG(status);
    const char* abbrev = sigabbrev_np(sig);
    return "was killed by " +
           (abbrev ? "SIG" + std::string(abbrev) : "signal " + std::to_string(sig));
  }
  if (WIFEXITED(status)) return "exited with code " + std::to_string(WEXITSTATUS(status));
  return "ended with status " + std::to_string(status);
}

int exit_code(int status) noexcept {
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int exit_signal(int status) noexcept {
  return WIFSIGNALED(status) ? WTERMSIG(status) : 0;
}

namespace {
std::string who(const DeadWorker& w) {
  return "worker " + std::string(w.name) + " (pid " + std::to_string(w.pid) + ")";
}
}  // namespace

std::string ran_unsent_message(const DeadWorker& w, std::uint64_t task) {
  return who(w) + " " + describe_status(w.status) + " after running task " + std::to_string(task) +
         " but before sending its result";
}

std::string lost_message(const DeadWorker& w, const Culprit& c) {
  std::string msg =
      who(w) + " " + describe_status(w.status) + " while running task " + std::to_string(c.id);
  if (c.crashes > 1) msg += " (" + std::to_string(c.crashes) + " attempts)";
  // Only a throw's stack is captured (ThrowCapture), not a fatal signal's: the message says so,
  // where one would look for it.
  if (WIFSIGNALED(w.status)) {
    msg +=
        "; its stack is not available: mproc captures a task's stack when it throws, not when "
        "its worker dies on a signal";
  }
  return msg;
}

std::string timed_out_message(const DeadWorker& w, std::uint64_t task, std::int64_t limit_ms) {
  return "task " + std::to_string(task) + " exceeded its time limit of " +
         std::to_string(limit_ms) + " ms; " + who(w) + " was stopped";
}

std::string init_death_message(const DeadWorker& w) {
  return "worker " + std::string(w.name) + " " + describe_status(w.status) +
         " while running the pool's initializer (" + std::to_string(kInitDeathsToBreak) +
         " times in a row)";
}

}  // namespace mproc::detail
