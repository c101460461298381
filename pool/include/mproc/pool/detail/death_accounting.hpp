// mproc/pool/detail/death_accounting.hpp — when a pool worker dies holding tasks: which of them
// ran (fail them, never run them twice), which one was running (the culprit: retried or
// failed), which never started (back to the front of the queue, in order), and why it ended
// (WorkerExitCause, for PoolStats and PoolOptions::on_worker_exit). Internal (namespace detail).
//
// Pure functions of what the coordinator recorded about the worker, so the unit tests reach
// every case without making a process die at the right moment.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "mproc/pool/worker_events.hpp"

namespace mproc::detail {

// What is known about a worker whose socket has ended and whose exit has been reported.
struct WorkerEnd {
  std::size_t held = 0;       // tasks in its pipe, sent or not, oldest first
  bool head_sent = false;     // the oldest was completely written (so it may have started)
  bool has_progress = false;  // it had a progress slot: `started` and `finished` are valid
  std::uint64_t started = 0;  // its progress counters: task frames it started, finished
  std::uint64_t finished = 0;
  std::uint64_t received = 0;     // results read from it
  bool init_acked = true;         // it answered the init frame (or had none)
  bool announced_retire = false;  // it sent kRetiring: nothing behind its last result started
  bool protocol_fault = false;    // it sent garbage
  // Why it may have ended (exit_cause()).
  int status = 0;            // its wait status
  bool init_failed = false;  // its initializer threw (it answered the init frame with an error)
  bool quota_spent = false;  // maxtasksperchild: it was given its last task
  bool timed_out = false;    // the pool stopped it: a task ran out of time
  bool cancelled = false;    // the pool killed it: its running task was cancelled
  enum class PoolStop : std::uint8_t { kNone, kClose, kTerminate };
  PoolStop pool_stop = PoolStop::kNone;  // the pool was shutting down when it ended
};

// Why the worker ended. The pool's shutdown comes first (a worker stopped by it is not
// replaced, whatever it was doing); then what the pool did to it (a corrupt frame, a time
// limit, a cancel), its initializer, its memory cap; a clean exit after its quota is
// maxtasksperchild; anything else is a crash.
WorkerExitCause exit_cause(const WorkerEnd& w) noexcept;

// How the held tasks divide, oldest first: `ran_unsent` finished with their results still
// inside the dead worker (replies leave in batches); then, if `culprit`, the one that was
// running; the rest never started.
struct HeldTasks {
  std::size_t ran_unsent = 0;
  bool culprit = false;
};
HeldTasks split_held_tasks(const WorkerEnd& w) noexcept;

// The culprit's outcome.
enum class CulpritFate {
  kCancelled,      // the user cancelled it (the worker was killed for that)
  kTimedOut,       // it ran out of time (the worker was stopped for that): TaskTimeoutError
  kProtocolFault,  // the worker sent garbage: the worker's fault is its error
  kRetry,          // a crash with retries left: back to the front of the queue
  kLost,           // a crash with no retry left (or a broken pool): WorkerLostError
};
struct Culprit {
  std::uint64_t id = 0;
  unsigned crashes = 0;  // workers that died running it, this one included
};
struct StopReasons {
  std::uint64_t cancelled = 0;  // the running task the user cancelled (0: none)
  std::uint64_t timed_out = 0;  // the task that ran out of time (0: none)
  bool protocol_fault = false;
};
CulpritFate culprit_fate(const Culprit& c, const StopReasons& why, unsigned max_retries,
                         bool pool_broken) noexcept;

// A task that never started is re-queued, unless the user cancelled it as it was running
// (the kill came before it started): then it is cancelled.
inline bool cancelled_before_start(std::uint64_t id, const StopReasons& why) noexcept {
  return id == why.cancelled;
}

// Workers that died inside the pool's initializer, in a row. Retrying forever is CPython's bug:
// this many and the pool is broken.
inline constexpr unsigned kInitDeathsToBreak = 3;
// Counts the worker's end into `in_a_row`; returns whether the pool breaks now.
bool count_init_death(unsigned& in_a_row, const WorkerEnd& w, bool shutting_down) noexcept;

// A worker that died idle is worth a warning unless it exited cleanly (maxtasksperchild, the
// memory cap, EOF) or the pool is shutting down.
bool idle_death_is_abnormal(int status, bool shutting_down) noexcept;

// "was killed by SIGKILL", "exited with code 3": a wait status in words.
std::string describe_status(int status);
int exit_code(int status) noexcept;    // -1 unless it exited
int exit_signal(int status) noexcept;  // 0 unless a signal killed it

// The messages of the errors the dead worker's tasks get.
struct DeadWorker {
  std::string_view name;
  pid_t pid = 0;
  int status = 0;
};
std::string ran_unsent_message(const DeadWorker& w, std::uint64_t task);
std::string lost_message(const DeadWorker& w, const Culprit& c);
std::string timed_out_message(const DeadWorker& w, std::uint64_t task, std::int64_t limit_ms);
std::string init_death_message(const DeadWorker& w);

}  // namespace mproc::detail
