// mproc/pool/pool_stats.hpp — what a pool is doing, as one value: pool.stats() (Python has no
// equivalent; Celery's `inspect stats` is the nearest).
//
//   mproc::PoolStats s = pool.stats();     // a snapshot; the pool runs on
//   if (s.tasks.failed.worker_lost > 0) ...
//   for (const auto& w : s.workers) if (w.current_task_age > 30s) ...
//   std::cout << s;                        // a readable block, below
//
//   pool: 2 processes
//   tasks: 1 queued, 2 running, 1520 completed, 4 failed (exception 1, worker lost 1, timeout 1,
//          cancelled 1, aborted 0)
//   workers: 5 started, 3 exited (timeout 1, cancel 1, crash 1)
//   task run time (last 1024 tasks): p50 1.21 ms, p90 3.40 ms, p99 10.1 ms
//     worker               pid     tasks   current task   rss
//     ForkPoolWorker-4     41071   760     2.04 s         12.3 MiB
//     ForkPoolWorker-5     41077   755     0.31 ms        11.9 MiB
//
// Counters count from the pool's construction. A map chunk (and an imap chunk) is one task.
// The process pool takes the snapshot on its I/O thread between two events, so the numbers are
// consistent with each other and with every result already delivered: after r.get() returned,
// stats() counts r. What varies by engine:
//   Pool          everything; RSS read from /proc/<pid>/statm as stats() is called.
//   ThreadPool    tasks (a task's failure is its exception; no worker_lost or timeout), run
//                 times, a row per thread (pid: the thread's tid; rss 0: threads share the
//                 process); workers.started is the thread count, nothing exits.
//   MPI pool      tasks, run times, a row per worker rank (pid 0: ranks may be on other hosts;
//                 index: the rank); workers.started is the rank count.
//
// Thread safety: a plain value. Pool::stats() and ThreadPool::stats() may be called from any
// thread, concurrently with everything else the pool does.
// Throws: operator<< lets through what the stream throws.
#pragma once

#include <sys/types.h>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

#include "mproc/pool/worker_events.hpp"

namespace mproc {

struct PoolStats {
  // How submitted tasks failed, by the error their result got.
  struct Failures {
    std::uint64_t exception = 0;    // the task threw (rethrown by get())
    std::uint64_t worker_lost = 0;  // its worker died (WorkerLostError; a corrupt reply too)
    std::uint64_t timeout = 0;      // TaskTimeoutError
    std::uint64_t cancelled = 0;    // CancelledError: cancel(), shutdown(cancel_futures=true)
    std::uint64_t aborted = 0;  // terminate() or a broken pool (PoolStateError, the initializer's
                                // exception)
    std::uint64_t total() const noexcept {
      return exception + worker_lost + timeout + cancelled + aborted;
    }
  };
  struct Tasks {
    std::uint64_t queued = 0;     // submitted, not started: in the pool's queue or a worker's pipe
    std::uint64_t running = 0;    // started on a worker, no result yet
    std::uint64_t completed = 0;  // finished with a value
    Failures failed;
    // Of the finished ones (completed or failed), the blocking apply() calls that an idle worker
    // took straight from their caller, past the queue and the pool's I/O thread.
    std::uint64_t direct = 0;
  };
  // Worker processes over the pool's life. A retried task (PoolOptions::max_retries) counts once,
  // when it completes or fails for good.
  struct Workers {
    std::uint64_t started = 0;  // the first ones and every replacement
    std::array<std::uint64_t, kWorkerExitCauses> exited_by_cause{};  // indexed by the cause
    std::uint64_t exited(WorkerExitCause cause) const noexcept {
      return exited_by_cause[static_cast<std::size_t>(cause)];
    }
    std::uint64_t exited() const noexcept;
    // Exits that call for a replacement: all but kClose and kTerminate.
    std::uint64_t replaced() const noexcept;
  };
  // One live worker.
  struct Worker {
    pid_t pid = 0;
    std::uint64_t index = 0;  // as WorkerStarted::index
    std::string name;
    std::uint64_t tasks_done = 0;  // results received from it
    // How long its current task has been running (as the pool last saw it start: a task's
    // start is seen when its predecessor's result arrives, so this may lag by a reply batch,
    // ~20 us); none when it is idle.
    std::optional<std::chrono::nanoseconds> current_task_age;
    std::size_t rss_bytes = 0;  // resident set size now; 0 when unknown
  };
  // Task run times as the workers measured them (the task alone: no queueing, no transfer),
  // over the last kWindow tasks that finished on a worker (with a value or an exception).
  // Nearest-rank percentiles; all zero while `samples` is 0.
  struct RunTimes {
    static constexpr std::size_t kWindow = 1024;
    std::size_t samples = 0;
    std::chrono::nanoseconds p50{0};
    std::chrono::nanoseconds p90{0};
    std::chrono::nanoseconds p99{0};
  };

  std::size_t processes = 0;
  Tasks tasks;
  Workers worker_counts;
  std::vector<Worker> workers;  // the live workers, in start order
  RunTimes run_time;
};

// The block shown at the top of this file.
std::ostream& operator<<(std::ostream& os, const PoolStats& stats);

}  // namespace mproc
