// mproc/pool/detail/coordinator.hpp — the process pool's engine: workers, dispatch, supervision.
// Internal (namespace detail); the typed front end is mproc::Pool.
//
// One I/O thread (an asio::io_context) owns every worker socket. Callers hand it encoded task
// frames; it keeps a few frames in flight per worker (more when tasks are short, as measured by
// the workers' own timings), coalesces frames into one sendmsg, reads results in batches, and
// records which worker holds which task, so a worker's death fails (or, with max_retries, re-runs)
// exactly the task it was running and re-queues the ones behind it.
//
// Thread safety: submit/close/join/terminate may be called from any thread. Task callbacks
// (on_ok / on_error) run on the I/O thread and must not block.
#pragma once

#include <chrono>
#include <cstdint>
#include <exception>
#include <memory>
#include <span>
#include <vector>

#include "mproc/pool/detail/callback_runner.hpp"
#include "mproc/pool/pool_options.hpp"
#include "mproc/serialize/wire_archive.hpp"

namespace mproc::detail {

// Base of every queued unit of work (a process-pool frame, a thread-pool closure).
class ChunkJob {
 public:
  virtual ~ChunkJob() = default;
};

// One frame of work and what to do with its outcome.
class Task : public ChunkJob {
 public:
  // I/O thread. Decode `payload` (the worker's results) and complete. Must not throw.
  virtual void on_ok(std::span<const char> payload) noexcept = 0;
  // I/O thread. The task failed (its exception, a lost worker, termination). Must not throw.
  virtual void on_error(std::exception_ptr error) noexcept = 0;

  std::uint64_t id = 0;
  Bytes frame;  // header + payload, ready to send
  unsigned crashes = 0;
  std::chrono::nanoseconds timeout{0};  // 0: the pool's task_timeout
};

class Coordinator {
 public:
  // Forks the zygote and the workers. Throws std::system_error if processes cannot be made.
  explicit Coordinator(const PoolOptions& options);
  Coordinator(const Coordinator&) = delete;
  Coordinator& operator=(const Coordinator&) = delete;
  // Terminates if still running (the front end decides whether to close+join first).
  ~Coordinator();

  std::size_t processes() const noexcept;
  std::size_t max_frame_bytes() const noexcept;
  std::uint64_t next_task_id() noexcept;
  const std::shared_ptr<CallbackRunner>& callback_runner() const noexcept;

  // Queues tasks. Throws PoolStateError if the pool is closed, terminated or broken.
  void submit(std::unique_ptr<Task> task);
  void submit(std::vector<std::unique_ptr<Task>>& tasks);
  // For the imap driver: every job must be a Task.
  void submit(std::vector<std::unique_ptr<ChunkJob>>& jobs);

  // Drops the tasks if still queued; kills the worker running one (it is replaced); asks a worker
  // to skip one waiting in its pipe. Their outcomes become CancelledError.
  void cancel(std::vector<std::uint64_t> task_ids);

  // No more submissions; queued work still runs.
  void close();
  // After close() or terminate(): waits for all work and callbacks, then for every worker and
  // the zygote to exit. Throws PoolStateError if the pool is still open.
  void join();
  // Fails every unfinished task with PoolStateError, stops workers (SIGTERM, then SIGKILL after
  // a grace period; bounded even for stopped or SIGTERM-ignoring workers) and returns when every
  // process is reaped.
  void terminate();

  bool closed() const noexcept;
  bool terminated() const noexcept;

  // Test and supervision hooks: pids of the live workers and of the zygote.
  std::vector<pid_t> worker_pids() const;
  pid_t zygote_pid() const noexcept;

  class Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace mproc::detail
