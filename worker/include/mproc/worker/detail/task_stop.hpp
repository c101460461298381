// mproc/worker/detail/task_stop.hpp — how a pool worker's task learns that it has been asked to
// stop (its soft time limit passed): what mproc::this_task reads. Internal (namespace detail).
//
// The coordinator asks by writing the id of the task to stop into the worker's slot in the
// memory it shares with its workers (WorkerTaskCounters::stop_task, worker_loop.hpp); the
// worker loop records which task it is running. A task is asked to stop when the two match, so
// nothing is reset between tasks: the next task has another id. No signal and no system call
// on either side; a worker without a slot (or a process that is no pool worker) has `posted`
// null and `running` 0, and is never asked.
//
// Thread safety: `posted` is set once, before the first task runs (threads a task starts see
// it); `running` is written by the worker loop's thread and may be read from any thread.
#pragma once

#include <atomic>
#include <cstdint>

namespace mproc::detail {

struct TaskStopView {
  // Where the coordinator posts the id of the task it asks to stop; null outside a pool worker.
  const std::atomic<std::uint64_t>* posted = nullptr;
  // The id of the task running now (0: none, or an initializer); non-zero only with `posted`.
  std::atomic<std::uint64_t> running{0};
};

// This process's view (constant-initialized: safe to read before main and after fork).
extern TaskStopView g_task_stop;

[[noreturn]] void throw_soft_time_limit_exceeded();

}  // namespace mproc::detail
