// pool/src/coordinator.hpp — the process pool's engine: workers, dispatch, supervision.
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
#include "mproc/pool/detail/engine.hpp"
#include "mproc/pool/pool_options.hpp"
#include "mproc/runtime/detail/owner.hpp"
#include "mproc/serialize/detail/wire_archive.hpp"

namespace mproc::detail {

class Coordinator final : public PoolEngine {
 public:
  // Forks the zygote and the workers. Throws std::system_error if processes cannot be made.
  explicit Coordinator(const PoolOptions& options);
  Coordinator(const Coordinator&) = delete;
  Coordinator& operator=(const Coordinator&) = delete;
  // Terminates if still running (the front end decides whether to close+join first). In a fork
  // child it touches nothing (see owner.hpp).
  ~Coordinator() override;

  std::size_t processes() const noexcept override;
  std::size_t max_frame_bytes() const noexcept override;
  std::uint64_t next_task_id() noexcept override;
  const std::shared_ptr<CallbackRunner>& callback_runner() const noexcept override;

  // Queues tasks. Throws PoolStateError if the pool is closed, terminated or broken.
  using PoolEngine::submit;
  void submit(std::vector<std::unique_ptr<Task>>& tasks) override;

  // Drops the tasks if still queued; kills the worker running one (it is replaced); asks a worker
  // to skip one waiting in its pipe. Their outcomes become CancelledError.
  void cancel(std::vector<std::uint64_t> task_ids) override;

  // Fails every task not yet started on a worker with CancelledError (queued ones, and ones
  // waiting in a worker's pipe, which the worker is told to skip); running ones go on.
  void cancel_queued() override;
  // No more submissions; queued work still runs.
  void close() override;
  // After close() or terminate(): waits for all work and callbacks, then for every worker and
  // the zygote to exit. Throws PoolStateError if the pool is still open.
  void join() override;
  // Fails every unfinished task with PoolStateError, stops workers (SIGTERM, then SIGKILL after
  // a grace period; bounded even for stopped or SIGTERM-ignoring workers) and returns when every
  // process is reaped.
  void terminate() override;

  bool closed() const noexcept override;
  bool terminated() const noexcept override;

  // Test and supervision hooks: pids of the live workers and of the zygote.
  std::vector<pid_t> worker_pids() const override;
  pid_t zygote_pid() const noexcept override;

  // Takes the snapshot on the I/O thread (a round trip to it), then reads each worker's RSS on
  // the caller's thread. Throws PoolStateError in a fork child, std::bad_alloc.
  PoolStats stats() const override;
  bool run_now(std::unique_ptr<Task>& task) override;

  class Impl;

 private:
  // Throws PoolStateError in any process but the one that made the pool (a fork child).
  void check_owner() const;

  OwnerPid owner_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace mproc::detail
