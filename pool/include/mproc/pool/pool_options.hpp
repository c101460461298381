// mproc/pool/pool_options.hpp — how a Pool is built.
//
//   mproc::PoolOptions opts;
//   opts.processes = 4;
//   opts.maxtasksperchild = 100;
//   opts.initializer(init_fn, 42);      // Python: Pool(4, initializer=init_fn, initargs=(42,))
//   mproc::Pool pool(opts);
//
// Thread safety: a value type; copy it freely. Not synchronised.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "mproc/pool/worker_events.hpp"
#include "mproc/serialize/detail/callable.hpp"
#include "mproc/serialize/detail/frame.hpp"
#include "mproc/start_method.hpp"

namespace mproc {

namespace detail {

// The most workers a pool may ask for: far above any machine's CPUs, far below what fork or the
// descriptor table would allow to fail slowly (Python's Pool(-1) raises ValueError at once).
inline constexpr std::size_t kMaxPoolProcesses = 4096;

// `n`, or std::invalid_argument naming `who` for a negative count (as size_t: huge) or one
// above kMaxPoolProcesses. 0 passes: it means cpu_count().
inline std::size_t checked_process_count(std::size_t n, const char* who) {
  if (n > std::numeric_limits<std::size_t>::max() / 2) {
    throw std::invalid_argument(std::string(who) +
                                ": the number of processes must be at least 1 (got " +
                                std::to_string(static_cast<std::ptrdiff_t>(n)) + ")");
  }
  if (n > kMaxPoolProcesses) {
    throw std::invalid_argument(std::string(who) + ": " + std::to_string(n) +
                                " processes is more than the limit of " +
                                std::to_string(kMaxPoolProcesses));
  }
  return n;
}

}  // namespace detail

struct PoolOptions {
  // Number of worker processes; 0 means cpu_count(). Negative (converted) or above 4096:
  // std::invalid_argument when the pool is made.
  std::size_t processes = 0;
  // Backpressure: at most this many apply_async/submit tasks submitted and not yet complete;
  // one more waits until a result completes (on any thread). 0: unbounded. map/starmap calls
  // are not counted (their input is already in memory); imap is bounded by its buffersize.
  // A task that submits to its own ThreadPool while the pool is at the bound waits for itself:
  // size the bound for such nesting.
  std::size_t max_queued = 0;
  // How long such a submission waits before it throws mproc::Full. 0: as long as it takes.
  std::chrono::nanoseconds max_queued_timeout{0};
  // How workers start (see start_method.hpp); empty: get_start_method() when the pool is made.
  std::optional<StartMethod> start_method;
  // A worker exits and is replaced after this many tasks (a map chunk is one task); 0: never.
  std::size_t maxtasksperchild = 0;
  // How often a task that killed its worker is run again on a new worker before it fails with
  // WorkerLostError. 0 (the default): never; a crashing task is reported, not retried.
  unsigned max_retries = 0;
  // A task running longer than this fails with TaskTimeoutError; its worker gets SIGTERM, then
  // SIGKILL after `timeout_grace`, and is replaced. 0: no limit. A call may set its own limit
  // with mproc::with_timeout(...) as its last argument.
  std::chrono::nanoseconds task_timeout{0};
  std::chrono::nanoseconds timeout_grace{std::chrono::seconds(1)};
  // Soft time limit (Celery's soft_time_limit): a task running longer than this is asked to
  // stop — mproc::this_task::stop_requested() turns true inside it (mproc/this_task.hpp) — and
  // may clean up and throw mproc::SoftTimeLimitExceeded (this_task::throw_if_stop_requested()),
  // which get() rethrows; its worker is not replaced. Nothing is raised in a task that does not
  // check (C++ has no sound asynchronous exception): it runs on until task_timeout kills it
  // (TaskTimeoutError), or to its end when there is no hard limit. A soft limit at or past the
  // hard one is ignored (the kill comes first); both count from the task's start. 0: none. A call
  // may set its own with mproc::with_soft_timeout(...) as its last argument. Cost: nothing per task
  // without one; with one, the coordinator's timer per running task, which the hard limit already
  // has. Honoured by a process Pool under every start method; ThreadPool and mproc::mpi::Pool
  // ignore it.
  std::chrono::nanoseconds soft_timeout{0};
  // A worker whose peak RSS exceeds this many bytes after a task retires and is replaced (as
  // Celery's max_memory_per_child); its queued tasks move to other workers. 0: no cap.
  std::size_t max_memory_per_child = 0;
  // Hard cap (RLIMIT_AS) on each worker's address space, in bytes: a runaway allocation fails
  // inside the task with std::bad_alloc instead of summoning the OOM killer. 0: none.
  // (Incompatible with AddressSanitizer builds, which reserve terabytes of address space.)
  std::size_t max_address_space_per_child = 0;
  // When true, ~Pool terminates instead of closing and joining.
  bool terminate_on_destroy = false;
  // Largest frame (task or result) accepted, in bytes; checked before anything is allocated.
  // At least 4 KiB (smaller values are raised to it).
  std::size_t max_frame_bytes = detail::kDefaultMaxFrameBytes;
  // Tasks and results whose encoded payload is at least this many bytes (and at most 16 MiB)
  // cross through a shared-memory buffer of their worker instead of its socket: copied once
  // and read in place. 0: never (every frame through the socket).
  std::size_t shared_payload_min = std::size_t{64} << 10;

  // Worker hooks (Celery's on_process_up / on_process_down), in this process: called once when
  // a worker process has started (its pid is known) and once when it has ended, whatever the
  // cause (worker_events.hpp), the pool's own close()/join() and terminate() included. For each
  // worker its start comes before its exit. They run on the pool's callback thread (the one
  // that runs AsyncResult callbacks, in order with them), never on its I/O thread: a slow hook
  // delays callbacks, not tasks. An exception a hook throws is caught and logged. When join()
  // or terminate() returns, every hook has run (unless it is called from a callback or a hook,
  // which cannot wait for its own thread). Process pools only: ThreadPool and the MPI pool ignore
  // them.
  std::function<void(const WorkerStarted&)> on_worker_start;
  std::function<void(const WorkerExited&)> on_worker_exit;

  // Runs `fn(args...)` once in every worker before its first task. If it throws, the worker
  // exits and the pool is broken: pending and later tasks fail with the initializer's exception.
  template <class F, class... Args>
  PoolOptions& initializer(F fn, Args&&... args) {
    using Fn = std::decay_t<F>;
    using Item = detail::apply_item_t<Fn, Args...>;
    init_frame_.clear();
    const std::size_t at = detail::begin_frame(init_frame_);
    detail::encode_callable<Fn, Item, detail::CallShape::kApply>(init_frame_, fn, 1);
    detail::WireOutputArchive ar(init_frame_);
    ar(Item(std::forward<Args>(args)...));
    detail::finish_frame(init_frame_, at, detail::FrameKind::kInit, 0, 0, max_frame_bytes);
    return *this;
  }

  // Internal: the encoded initializer frame (empty when none), and setting one encoded
  // elsewhere (an MPI rank's local pool takes rank 0's).
  const detail::Bytes& init_frame() const noexcept { return init_frame_; }
  void set_init_frame(std::vector<char> frame) { init_frame_ = std::move(frame); }

 private:
  detail::Bytes init_frame_;
};

}  // namespace mproc
