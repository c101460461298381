// mproc/pool.hpp — mproc::Pool, Python's multiprocessing.Pool for C++.
//
//   mproc::Pool pool(4);                                   // Pool(4)
//   std::vector<int> v = pool.map(square, inputs);         // p.map(square, inputs)
//   mproc::AsyncResult<int> r = pool.apply_async(square, 7);
//   for (int y : pool.imap(square, inputs)) { ... }        // lazy, ordered
//   pool.close(); pool.join();                             // or pool.terminate()
//
// concurrent.futures spellings (the same futures): pool.submit(f, args...) is apply_async;
// mproc::as_completed / mproc::wait (mproc/pool/futures.hpp) take results of any submissions;
// pool.shutdown(wait, cancel_futures) is close() [+ cancel what has not started] [+ join()].
// PoolOptions::max_queued bounds the unfinished apply_async/submit tasks (backpressure).
//
// Callables are plain functions, captureless lambdas, or function objects cereal can serialize;
// arguments and results are any type cereal can serialize. Both are checked at compile time.
// Each task runs in a worker process; what it throws is rethrown by get() (see AsyncResult).
//
// Speed: a blocking apply() that finds a worker idle gives it the call itself, past the queue
// and the pool's I/O thread, and takes the reply from shared memory (a few µs where the queue
// costs tens). Pools with maxtasksperchild, max_retries, a memory cap or time limits keep every
// call on the queue. Results, errors, crash handling and stats() are the same either way
// (PoolStats::Tasks::direct counts the calls that went directly).
//
// Lifetime: ~Pool closes and joins — all submitted work finishes and every callback runs —
// unless the pool was terminated or PoolOptions::terminate_on_destroy is set, in which case it
// terminates. It never leaves a child process or a zombie behind. A pool acts only in the process
// that made it: in a child made with fork() (or a worker that calls exit() while the program
// holds a static Pool) its destructor does nothing, and every call throws PoolStateError naming
// the owner.
//
// Failure: a worker that dies (crash, exit() in a task, kill -9) fails the task it was running
// with WorkerLostError (or re-runs it, up to PoolOptions::max_retries) and is replaced; tasks
// queued behind it run on other workers, once. Replies leave a worker in batches of at most
// ~20 us of work: tasks that finished on it within that window, their results not yet sent,
// fail with it ("... before sending its result") — they ran once, and no task ever runs twice.
// Nothing hangs.
//
// Value semantics: movable, not copyable; a moved-from Pool is empty (its destructor does
// nothing, other calls throw PoolStateError).
//
// Thread safety: every member may be called concurrently from any thread (submission is
// thread-safe), except that the destructor and moves must not race with other calls.
//
// Throws: std::invalid_argument for a negative or absurd process count (constructor);
// PoolStateError when submitting to a closed or terminated pool; mproc::Full when max_queued
// is reached and max_queued_timeout passes; a pool broken by an
// initializer that threw rethrows that exception (its zygote lost: WorkerLostError);
// SerializationError when a task is larger than PoolOptions::max_frame_bytes;
// std::system_error when processes cannot be created (constructor).
#pragma once

#include <algorithm>
#include <cstddef>
#include <iterator>
#include <memory>
#include <ranges>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "mproc/errors.hpp"
#include "mproc/pool/async_result.hpp"
#include "mproc/pool/detail/engine_state.hpp"
#include "mproc/pool/detail/pool_api.hpp"
#include "mproc/pool/detail/tasks.hpp"
#include "mproc/pool/futures.hpp"
#include "mproc/pool/imap.hpp"
#include "mproc/pool/pool_options.hpp"
#include "mproc/pool/pool_stats.hpp"
#include "mproc/process_info.hpp"

namespace mproc {

namespace detail {
struct PoolOverEngine;
}  // namespace detail

class Pool : public detail::PoolApi<Pool> {
  friend class detail::PoolApi<Pool>;

 public:
  // Python's Pool(processes): 0 means cpu_count(). A negative count (Pool(-1)) or one above
  // 4096 throws std::invalid_argument (Python's ValueError) before any process is made.
  explicit Pool(std::size_t processes = 0) : Pool(make_options(processes)) {}
  explicit Pool(const PoolOptions& options)
      : Pool(detail::make_process_engine(checked(options)), options.terminate_on_destroy) {
    this->set_max_queued(options.max_queued, options.max_queued_timeout);
  }
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;
  // Movable (return a Pool from a function, keep it in a std::optional or a struct): the pool,
  // its workers and its owner process move; the moved-from Pool is empty — destroying it does
  // nothing, any other call throws PoolStateError. Move assignment first closes and joins (or
  // terminates) the pool it replaces, as its destructor would.
  Pool(Pool&&) noexcept = default;
  Pool& operator=(Pool&& other) {
    if (this != &other) {
      finish();
      detail::PoolApi<Pool>::operator=(std::move(other));
      engine_ = std::move(other.engine_);
      terminate_on_destroy_ = other.terminate_on_destroy_;
      owner_ = other.owner_;
    }
    return *this;
  }

  ~Pool() { finish(); }

  // ---- lifecycle ------------------------------------------------------------------------------

  // No more tasks may be submitted; queued ones still run.
  void close() { eng().close(); }
  // Waits for every task and callback, then for the workers to exit. Call close() or
  // terminate() first (PoolStateError otherwise, as Python's ValueError).
  void join() { eng().join(); }
  // Stops at once: unfinished tasks fail with PoolStateError; workers get SIGTERM, then SIGKILL
  // after 200 ms; returns when all are reaped (bounded even for stopped workers).
  void terminate() { eng().terminate(); }

  // 0 for a moved-from Pool.
  std::size_t processes() const noexcept { return engine_ ? engine_->processes() : 0; }
  // Pids of the live workers (for tests and monitoring); the zygote's pid. Empty / 0 for a pool
  // whose workers are MPI ranks.
  std::vector<pid_t> worker_pids() const { return eng().worker_pids(); }
  pid_t zygote_pid() const noexcept { return engine_ ? engine_->zygote_pid() : 0; }

  // What the pool is doing (mproc/pool/pool_stats.hpp): tasks queued, running, completed and
  // failed by kind; workers started and exited by cause; each live worker's pid, tasks, current
  // task's age and RSS; task run-time percentiles. A snapshot that does not stop the pool: one
  // round trip to its I/O thread (which copies counters it keeps anyway), then the per-worker
  // RSS read from /proc on the calling thread — tens of microseconds, fine to call every
  // second. After join() or terminate() it returns the final counts (no workers). Thread-safe.
  // Throws PoolStateError for a moved-from Pool or in a fork child, std::bad_alloc.
  PoolStats stats() const { return eng().stats(); }

 private:
  friend struct detail::PoolOverEngine;
  // A pool over another engine (mproc::mpi::Pool, get_context("mpi").Pool()): the same type,
  // the same calls and errors, whatever runs the frames. Built by detail::PoolOverEngine.
  Pool(std::shared_ptr<detail::PoolEngine> engine, bool terminate_on_destroy)
      : engine_(std::move(engine)), terminate_on_destroy_(terminate_on_destroy) {}

  // The thread that runs this pool's callbacks (PoolApi gives it to each result).
  const std::shared_ptr<detail::CallbackRunner>& callback_runner() const noexcept {
    static const std::shared_ptr<detail::CallbackRunner> none;
    return engine_ ? engine_->callback_runner() : none;
  }

  static PoolOptions make_options(std::size_t processes) {
    PoolOptions o;
    o.processes = processes;
    return o;
  }
  static const PoolOptions& checked(const PoolOptions& o) {
    detail::checked_process_count(o.processes, "Pool");
    return o;
  }

  detail::PoolEngine& eng() const {
    if (!engine_) throw PoolStateError("use of a moved-from Pool");
    return *engine_;
  }
  // What the destructor does (and move assignment, to the pool it replaces).
  void finish() noexcept {
    if (!engine_) return;  // moved from
    if (!owner_.here()) {  // a copy in a fork child: the pool is the parent's (owner.hpp)
      detail::abandon(engine_);
      return;
    }
    try {
      if (terminate_on_destroy_ || engine_->terminated()) {
        engine_->terminate();
      } else {
        engine_->close();
        engine_->join();
      }
    } catch (...) {
      engine_->terminate();
    }
    engine_.reset();
  }
  void cancel_queued() { eng().cancel_queued(); }

  // apply() asks for the engine's fast path (an idle worker takes the call directly).
  static constexpr bool kRunsNow = true;
  template <bool kRunNow = false, class F, class CbA, class CbB, class... Args>
  auto apply_async_impl(F f, Callbacks<CbA, CbB> cbs, Args&&... args) {
    using Fn = std::decay_t<F>;
    using Item = detail::apply_item_t<Fn, Args...>;
    using R = detail::call_result_t<Fn, Item, detail::CallShape::kApply>;
    eng();
    auto state = detail::make_state<R>();
    this->attach(state, cbs);
    this->admit(*state);
    auto task = std::make_unique<detail::ApplyTask<R>>(state);
    task->id = engine_->next_task_id();
    task->timeout = cbs.timeout;
    task->soft_timeout = cbs.soft_timeout;
    state->set_canceller(engine_, task->id);
    if constexpr (std::is_same_v<Item, std::tuple<std::remove_cvref_t<Args>...>>) {
      detail::encode_apply_args<Fn, Item>(*task, f, engine_->max_frame_bytes(), args...);
    } else {  // converted first to the types f takes (a const char* for a std::string, ...)
      const Item item(std::forward<Args>(args)...);
      const Item* p = &item;
      detail::encode_chunk<Fn, Item, detail::CallShape::kApply>(*task, f, p, 1,
                                                                engine_->max_frame_bytes());
    }
    std::unique_ptr<detail::Task> frame = std::move(task);
    if constexpr (kRunNow) {
      if (engine_->run_now(frame)) return AsyncResult<R>(std::move(state));
    }
    engine_->submit(std::move(frame));
    return AsyncResult<R>(std::move(state));
  }

  template <detail::CallShape S, class F, class Range, class CbA, class CbB>
  auto submit_map(F f, Range&& inputs, std::size_t chunksize, Callbacks<CbA, CbB> cbs,
                  std::shared_ptr<ProgressBar> bar = nullptr) {
    using Fn = std::decay_t<F>;
    using Item = std::remove_cvref_t<std::ranges::range_value_t<Range>>;
    using R = detail::call_result_t<Fn, Item, S>;
    using Out = typename detail::MapState<R>::Out;
    eng();
    if constexpr (!std::ranges::sized_range<Range> || !std::ranges::forward_range<Range>) {
      std::vector<Item> copy(std::ranges::begin(inputs), std::ranges::end(inputs));
      return submit_map<S>(f, copy, chunksize, std::move(cbs), std::move(bar));
    } else {
      const auto n = static_cast<std::size_t>(std::ranges::size(inputs));
      if (chunksize == 0) chunksize = detail::default_chunksize(n, processes());
      const std::size_t chunks = (n + chunksize - 1) / chunksize;
      auto result = detail::make_state<Out>();
      this->attach(result, cbs);
      if (n == 0) {
        if (engine_->closed()) detail::throw_pool_closed();
        if constexpr (std::is_void_v<R>) {
          result->set_value();
        } else {
          result->set_value(std::vector<R>{});
        }
        return AsyncResult<Out>(std::move(result));
      }
      auto st = std::make_shared<detail::MapState<R>>(n, chunks, result, std::move(bar));
      std::vector<std::uint64_t> ids;
      ids.reserve(chunks);
      std::vector<std::unique_ptr<detail::Task>> tasks;
      std::size_t batch_bytes = 0;
      auto it = std::ranges::begin(inputs);
      for (std::size_t c = 0, off = 0; c < chunks; ++c, off += chunksize) {
        const std::size_t count = std::min(chunksize, n - off);
        auto t = std::make_unique<detail::MapChunkTask<R>>(st, off, count);
        t->id = engine_->next_task_id();
        t->timeout = cbs.timeout;
        t->soft_timeout = cbs.soft_timeout;
        ids.push_back(t->id);
        detail::encode_chunk<Fn, Item, S>(*t, f, it, static_cast<std::uint32_t>(count),
                                          engine_->max_frame_bytes());
        batch_bytes += t->frame.size();
        tasks.push_back(std::move(t));
        // Hand over work as it is encoded (workers start while the rest is being encoded), in
        // batches so that small chunks cost one wake-up per batch, not one each.
        if (c == 0 || batch_bytes >= (256u << 10) || tasks.size() >= 256) {
          engine_->submit(tasks);
          batch_bytes = 0;
        }
      }
      if (!tasks.empty()) engine_->submit(tasks);
      result->set_canceller(engine_, std::move(ids));
      return AsyncResult<Out>(std::move(result));
    }
  }

  template <class F, class Range>
  auto make_imap(F f, Range&& inputs, std::size_t chunksize, bool ordered, std::size_t buffersize,
                 std::shared_ptr<ProgressBar> bar = nullptr) {
    using Fn = std::decay_t<F>;
    using Item = std::remove_cvref_t<std::ranges::range_value_t<Range>>;
    using R = detail::call_result_t<Fn, Item, detail::CallShape::kMap>;
    static_assert(!std::is_void_v<R>, "mproc: imap needs a function that returns a value; use map");
    if (chunksize == 0) chunksize = 1;
    if (eng().closed()) detail::throw_pool_closed();
    auto state = std::make_shared<detail::ImapState<R>>();
    // The source lives inside the generator: an owning view for rvalues, a reference otherwise.
    auto src =
        std::make_shared<std::views::all_t<Range>>(std::views::all(std::forward<Range>(inputs)));
    using It = std::ranges::iterator_t<std::views::all_t<Range>>;
    auto it = std::make_shared<It>(std::ranges::begin(*src));
    auto coord = engine_;
    auto make = [=](std::size_t chunk) -> std::unique_ptr<detail::ChunkJob> {
      auto t = std::make_unique<detail::ImapChunkTask<R>>(state, chunk);
      t->id = coord->next_task_id();
      const std::uint32_t n = detail::encode_chunk_until<Fn, Item, detail::CallShape::kMap>(
          *t, f, *it, std::ranges::end(*src), static_cast<std::uint32_t>(chunksize),
          coord->max_frame_bytes());
      if (n == 0) return nullptr;
      t->set_count(n);
      return t;
    };
    const std::size_t max_inflight =
        std::max<std::size_t>(8, processes() * (chunksize == 1 ? 256 : 8));
    auto submit = [coord](std::vector<std::unique_ptr<detail::ChunkJob>>& jobs) {
      coord->submit(jobs);
    };
    return ImapRange<R>(
        std::make_unique<detail::ImapDriver<R>>(std::move(submit), state, std::move(make), ordered,
                                                max_inflight, std::move(bar), buffersize));
  }

  std::shared_ptr<detail::PoolEngine> engine_;
  bool terminate_on_destroy_;
  detail::OwnerPid owner_;
};

namespace detail {
// Makes a mproc::Pool over an engine other than the process pool's (the MPI engine).
struct PoolOverEngine {
  static Pool make(std::shared_ptr<PoolEngine> engine, bool terminate_on_destroy) {
    return Pool(std::move(engine), terminate_on_destroy);
  }
};
}  // namespace detail

}  // namespace mproc
