// mproc/pool/detail/pool_counters.hpp — the counts behind PoolStats, kept by the one thread of
// an engine that sees each event (the process pool's I/O thread, the MPI engine's, a thread
// pool's threads under its lock). Internal (namespace detail).
//
// Plain integers, no atomics: each is bumped where the event is handled anyway, so a finished
// task costs an increment and a store (RunTimeWindow::add). stats() copies them on that thread.
//
// Thread safety: the owner thread's (or the owner lock's) alone.
#pragma once

#include <cstddef>
#include <cstdint>

#include "mproc/pool/detail/run_time_window.hpp"
#include "mproc/pool/pool_stats.hpp"
#include "mproc/pool/worker_events.hpp"

namespace mproc::detail {

// How a task failed without a result from its own code (see PoolStats::Failures).
enum class TaskFailure : std::uint8_t { kWorkerLost, kTimeout, kCancelled, kAborted };

struct PoolCounters {
  std::uint64_t completed = 0;
  PoolStats::Failures failed;
  PoolStats::Workers workers;
  RunTimeWindow run_times;

  // A worker (or thread, or rank) answered: a value, or the task's exception, after `ns` of
  // running.
  void answered(bool ok, std::uint64_t ns) noexcept {
    ++(ok ? completed : failed.exception);
    run_times.add(ns);
  }
  void failed_by(TaskFailure kind, std::size_t n = 1) noexcept {
    switch (kind) {
      case TaskFailure::kWorkerLost:
        failed.worker_lost += n;
        break;
      case TaskFailure::kTimeout:
        failed.timeout += n;
        break;
      case TaskFailure::kCancelled:
        failed.cancelled += n;
        break;
      case TaskFailure::kAborted:
        failed.aborted += n;
        break;
    }
  }
  void worker_exited(WorkerExitCause cause) noexcept {
    ++workers.exited_by_cause[static_cast<std::size_t>(cause)];
  }

  // The counted part of a snapshot; the caller adds what it sees now (queued, running,
  // workers) and the run-time percentiles.
  void copy_to(PoolStats& s) const {
    s.tasks.completed = completed;
    s.tasks.failed = failed;
    s.worker_counts = workers;
  }
};

}  // namespace mproc::detail
