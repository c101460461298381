// mproc/pool/worker_events.hpp — a pool worker's start and exit, as PoolOptions::on_worker_start
// and on_worker_exit see them (Celery's on_process_up / on_process_down; Python's Pool has no
// equivalent), and why a worker exits, which PoolStats also counts.
//
//   mproc::PoolOptions o;
//   o.on_worker_start = [](const mproc::WorkerStarted& w) { registry.add(w.pid); };
//   o.on_worker_exit = [](const mproc::WorkerExited& w) {
//     registry.remove(w.pid);
//     if (w.cause == mproc::WorkerExitCause::kCrash) alert(w.name, w.signal);
//   };
//
// Thread safety: plain values; to_string and operator<< may be called from any thread.
// Throws: nothing, except what operator<< lets through from the stream.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <iosfwd>
#include <string>

namespace mproc {

// Why a pool worker process ended. Every exit but kClose and kTerminate is followed by a
// replacement worker, unless the pool is broken (an initializer that threw, a lost zygote).
enum class WorkerExitCause : std::uint8_t {
  kClose,          // close() and join(): the pool told it to finish; it exited (or, past the
                   // shutdown deadline, was killed)
  kTerminate,      // terminate(), ~Pool with terminate_on_destroy, or a pool that broke down
  kMaxTasks,       // maxtasksperchild: it ran its quota and exited
  kMemoryCap,      // max_memory_per_child: its peak RSS passed the cap after a task
  kTimeout,        // a task ran past its time limit: the pool stopped the worker
  kCancel,         // its running task was cancelled: the pool killed the worker
  kCrash,          // it died by itself: a signal (SIGSEGV, abort(), kill -9 from outside), exit()
                   // inside a task, or the pool's zygote died
  kInitializer,    // the pool's initializer threw (the pool is then broken) or crashed in it
  kProtocolFault,  // it sent a corrupt frame: the pool killed it
};
inline constexpr std::size_t kWorkerExitCauses = 9;

// "close", "terminate", "maxtasksperchild", "memory cap", "timeout", "cancel", "crash",
// "initializer", "protocol fault".
const char* to_string(WorkerExitCause cause) noexcept;
std::ostream& operator<<(std::ostream& os, WorkerExitCause cause);

// A worker process of the pool has started (its pid is known).
struct WorkerStarted {
  pid_t pid = 0;
  // The N of its name: 1, 2, 3... in the order the pool asked for workers, never reused.
  std::uint64_t index = 0;
  std::string name;  // "ForkPoolWorker-3", "SpawnPoolWorker-3", ... (current_process().name())
};

// A worker process of the pool has ended (its pid may be reused from now on).
struct WorkerExited {
  pid_t pid = 0;
  std::uint64_t index = 0;
  std::string name;
  WorkerExitCause cause = WorkerExitCause::kCrash;
  int exit_code = -1;  // its exit status when it exited, else -1
  int signal = 0;      // the signal that killed it (SIGKILL for one the pool stopped waiting
                       // for at its shutdown deadline), else 0
  std::uint64_t tasks_done = 0;  // results the pool received from it
};

}  // namespace mproc
