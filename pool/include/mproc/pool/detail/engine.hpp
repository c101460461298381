// mproc/pool/detail/engine.hpp — what mproc::Pool needs from whatever runs its frames: the
// process coordinator (Coordinator, workers forked on this machine) or the MPI engine (workers
// are the other ranks of an mpirun job). Internal (namespace detail).
//
// The typed front end encodes tasks into frames on the caller's thread; an engine only moves
// frames and calls Task::on_ok / on_error. Virtual calls happen once per submitted batch, never
// per item.
//
// Thread safety: every member may be called from any thread. Task callbacks run on the engine's
// I/O thread and must not block.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <exception>
#include <memory>
#include <span>
#include <vector>

#include "mproc/pool/detail/callback_runner.hpp"
#include "mproc/pool/detail/frame_buffers.hpp"
#include "mproc/pool/detail/task_canceller.hpp"
#include "mproc/pool/pool_stats.hpp"
#include "mproc/serialize/detail/wire_archive.hpp"

namespace mproc {
struct PoolOptions;
}  // namespace mproc

namespace mproc::detail {

// Base of every queued unit of work (a process-pool frame, a thread-pool closure).
class ChunkJob {
 public:
  virtual ~ChunkJob() = default;
};

// One frame of work and what to do with its outcome.
class Task : public ChunkJob {
 public:
  ~Task() override { recycle_frame_buffer(frame); }  // a large frame's buffer is reused

  // I/O thread. Decode `payload` (the worker's results) and complete. Must not throw.
  virtual void on_ok(std::span<const char> payload) noexcept = 0;
  // I/O thread. The task failed (its exception, a lost worker, termination). Must not throw.
  virtual void on_error(std::exception_ptr error) noexcept = 0;
  // I/O thread. A worker has started it (AsyncResult::running()). May be called more than once.
  virtual void on_start() noexcept {}

  std::uint64_t id = 0;
  std::uint64_t run_ns = 0;  // set before on_ok / on_error when known: the worker's run time
  Bytes frame;               // header + payload, ready to send
  unsigned crashes = 0;
  bool skip_requested = false;  // its worker was asked to skip it (a cancel): its error is that
  std::chrono::nanoseconds timeout{0};       // 0: the pool's task_timeout
  std::chrono::nanoseconds soft_timeout{0};  // 0: the pool's soft_timeout
};

class PoolEngine : public TaskCanceller {
 public:
  virtual ~PoolEngine() = default;

  virtual std::size_t processes() const noexcept = 0;
  virtual std::size_t max_frame_bytes() const noexcept = 0;
  virtual std::uint64_t next_task_id() noexcept = 0;
  virtual const std::shared_ptr<CallbackRunner>& callback_runner() const noexcept = 0;

  // Queues tasks (and clears `tasks`). Throws PoolStateError if the pool is closed, terminated
  // or broken.
  virtual void submit(std::vector<std::unique_ptr<Task>>& tasks) = 0;
  void submit(std::unique_ptr<Task> task) {
    std::vector<std::unique_ptr<Task>> one;
    one.push_back(std::move(task));
    submit(one);
  }
  // For the imap driver: every job must be a Task.
  void submit(std::vector<std::unique_ptr<ChunkJob>>& jobs) {
    std::vector<std::unique_ptr<Task>> tasks;
    tasks.reserve(jobs.size());
    for (auto& j : jobs) tasks.emplace_back(static_cast<Task*>(j.release()));
    jobs.clear();
    submit(tasks);
  }

  // A blocking call's fast path: runs `task` on a worker that is idle now, bypassing the queue
  // and the engine's I/O thread. True: the engine has it (done, its on_ok / on_error called on
  // this thread, or queued as by submit(); `task` may be moved from). False, with nothing done,
  // when no worker is idle or the engine has no such path: submit it instead. Throws
  // PoolStateError as submit() does.
  virtual bool run_now(std::unique_ptr<Task>& task) {
    (void)task;
    return false;
  }

  // cancel(task_ids) (TaskCanceller): the tasks' outcomes become CancelledError (queued ones
  // never run).
  // shutdown(cancel_futures=true): every task not yet started on a worker completes with
  // CancelledError; running ones go on. The default (an engine that cannot tell) cancels none.
  virtual void cancel_queued() {}
  // No more submissions; queued work still runs.
  virtual void close() = 0;
  // After close() or terminate(): waits for all work and callbacks, then for the workers.
  // Throws PoolStateError if the pool is still open.
  virtual void join() = 0;
  // Fails every unfinished task with PoolStateError and stops; bounded.
  virtual void terminate() = 0;
  virtual bool closed() const noexcept = 0;
  virtual bool terminated() const noexcept = 0;

  // Test and supervision hooks: pids of the live local workers and of the zygote (empty / 0
  // when the workers are not processes of this machine).
  virtual std::vector<pid_t> worker_pids() const = 0;
  virtual pid_t zygote_pid() const noexcept = 0;

  // A snapshot of the pool's counters and workers (mproc/pool/pool_stats.hpp). Cheap enough
  // to call every second; never stops the pool. Throws std::bad_alloc.
  virtual PoolStats stats() const = 0;
};

// The process pool's engine (the coordinator, pool/src/coordinator.hpp). Throws what its
// constructor throws: std::system_error when processes cannot be made, StartMethodError.
std::shared_ptr<PoolEngine> make_process_engine(const PoolOptions& options);

}  // namespace mproc::detail
