// mproc/thread_pool.hpp — mproc::ThreadPool: the Pool API on threads (Python's
// multiprocessing.dummy / multiprocessing.pool.ThreadPool).
//
//   mproc::ThreadPool pool(4);          // swap for mproc::Pool pool(4) and nothing else changes
//   auto v = pool.map(square, inputs);
//
// Same calls, futures, callbacks and errors as mproc::Pool (apply, apply_async, submit, map,
// map_async, starmap, starmap_async, imap, imap_unordered, close, join, terminate, shutdown,
// stats; PoolOptions' max_queued), and movable as Pool is. Differences, all of them
// the nature of threads: tasks share the process (no isolation, no serialization: any callable,
// capturing lambdas included, and any copyable argument type); terminate() cancels queued tasks
// with PoolStateError but waits for running ones, since a thread cannot be killed.
//
// Lifetime: ~ThreadPool closes and joins (all submitted work finishes).
// Thread safety: every member may be called concurrently from any thread, except the destructor.
#pragma once

#include <atomic>
#include <cstddef>
#include <memory>
#include <ranges>
#include <tuple>
#include <type_traits>
#include <vector>

#include "mproc/pool/async_result.hpp"
#include "mproc/pool/detail/engine_state.hpp"
#include "mproc/pool/detail/pool_api.hpp"
#include "mproc/pool/detail/tasks.hpp"
#include "mproc/pool/detail/thread_engine.hpp"
#include "mproc/pool/futures.hpp"
#include "mproc/pool/imap.hpp"
#include "mproc/pool/pool_options.hpp"
#include "mproc/pool/pool_stats.hpp"
#include "mproc/runtime/detail/owner.hpp"

namespace mproc {

namespace detail {

template <class Fn, class Item, CallShape S>
decltype(auto) call_item(Fn& fn, Item& item) {
  if constexpr (S == CallShape::kApply) {
    return std::apply(fn, item);
  } else {
    return std::invoke(fn, item);
  }
}

template <class Fn, class Tuple, class R>
class ThreadApplyJob final : public ThreadJob {
 public:
  ThreadApplyJob(Fn fn, Tuple args, std::shared_ptr<ResultState<R>> s)
      : fn_(std::move(fn)), args_(std::move(args)), state_(std::move(s)) {}
  bool run() noexcept override {
    state_->mark_started();
    try {
      if constexpr (std::is_void_v<R>) {
        std::apply(fn_, args_);
        state_->set_value();
      } else {
        state_->set_value(std::apply(fn_, args_));
      }
      return true;
    } catch (...) {
      state_->fail(std::current_exception());
      return false;
    }
  }
  void cancel(std::exception_ptr why) noexcept override { state_->fail(std::move(why)); }

 private:
  Fn fn_;
  Tuple args_;
  std::shared_ptr<ResultState<R>> state_;
};

template <class R>
struct ThreadMapState {
  using Out = std::conditional_t<std::is_void_v<R>, void, std::vector<R>>;
  ThreadMapState(std::size_t n, std::size_t chunks, std::shared_ptr<ResultState<Out>> r,
                 std::shared_ptr<ProgressBar> bar)
      : remaining(chunks), result(std::move(r)), progress(std::move(bar)) {
    if constexpr (!std::is_void_v<R>) values.resize(n);
  }
  // Threads write neighbouring results at once: std::vector<bool> packs them into shared words
  // (a data race), so bools are kept one per byte until the end.
  using Slot = std::conditional_t<std::is_same_v<R, bool>, unsigned char, R>;
  std::conditional_t<std::is_void_v<R>, int, std::vector<Slot>> values;
  std::atomic<std::size_t> remaining;
  std::shared_ptr<ResultState<Out>> result;
  std::shared_ptr<ProgressBar> progress;

  void chunk_done(std::size_t items) noexcept {
    if (progress) progress->add(items);
    if (remaining.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
    if constexpr (std::is_void_v<R>) {
      result->set_value();
    } else if constexpr (std::is_same_v<R, bool>) {
      result->set_value(std::vector<bool>(values.begin(), values.end()));
    } else {
      result->set_value(std::move(values));
    }
  }
};

template <class Fn, class Item, CallShape S, class R>
class ThreadMapJob final : public ThreadJob {
 public:
  ThreadMapJob(Fn fn, std::vector<Item> items, std::size_t offset,
               std::shared_ptr<ThreadMapState<R>> s)
      : fn_(std::move(fn)), items_(std::move(items)), offset_(offset), state_(std::move(s)) {}
  bool run() noexcept override {
    state_->result->mark_started();
    bool ok = true;
    try {
      for (std::size_t i = 0; i < items_.size(); ++i) {
        if constexpr (std::is_void_v<R>) {
          call_item<Fn, Item, S>(fn_, items_[i]);
        } else {
          state_->values[offset_ + i] = call_item<Fn, Item, S>(fn_, items_[i]);
        }
      }
    } catch (...) {
      state_->result->fail(std::current_exception());
      ok = false;
    }
    state_->chunk_done(items_.size());
    return ok;
  }
  void cancel(std::exception_ptr why) noexcept override {
    state_->result->fail(std::move(why));
    state_->chunk_done(items_.size());
  }

 private:
  Fn fn_;
  std::vector<Item> items_;
  std::size_t offset_;
  std::shared_ptr<ThreadMapState<R>> state_;
};

template <class Fn, class Item, class R>
class ThreadImapJob final : public ThreadJob {
 public:
  ThreadImapJob(Fn fn, std::vector<Item> items, std::size_t chunk, std::shared_ptr<ImapState<R>> s)
      : fn_(std::move(fn)), items_(std::move(items)), chunk_(chunk), state_(std::move(s)) {}
  bool run() noexcept override {
    try {
      std::vector<R> out;
      out.reserve(items_.size());
      for (auto& item : items_) out.push_back(std::invoke(fn_, item));
      state_->deliver(chunk_, std::move(out));
      return true;
    } catch (...) {
      state_->deliver(chunk_, std::current_exception());
      return false;
    }
  }
  void cancel(std::exception_ptr why) noexcept override { state_->deliver(chunk_, why); }

 private:
  Fn fn_;
  std::vector<Item> items_;
  std::size_t chunk_;
  std::shared_ptr<ImapState<R>> state_;
};

}  // namespace detail

class ThreadPool : public detail::PoolApi<ThreadPool> {
  friend class detail::PoolApi<ThreadPool>;

 public:
  // Python: ThreadPool(processes); 0 means cpu_count() threads. std::invalid_argument for a
  // negative count (converted to a huge one) or one above detail::kMaxPoolProcesses.
  explicit ThreadPool(std::size_t threads = 0)
      : engine_(std::make_shared<detail::ThreadEngine>(
            detail::checked_process_count(threads, "ThreadPool"))) {}
  // Uses options.processes, max_queued and max_queued_timeout (the rest is about processes).
  explicit ThreadPool(const PoolOptions& options) : ThreadPool(options.processes) {
    this->set_max_queued(options.max_queued, options.max_queued_timeout);
  }
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;
  // Movable: the moved-from pool is empty; destroying it does nothing, any other call throws
  // PoolStateError.
  ThreadPool(ThreadPool&&) noexcept = default;
  ThreadPool& operator=(ThreadPool&& other) {
    if (this != &other) {
      finish();
      detail::PoolApi<ThreadPool>::operator=(std::move(other));
      engine_ = std::move(other.engine_);
      owner_ = other.owner_;
    }
    return *this;
  }
  ~ThreadPool() { finish(); }

  void close() { eng().close(); }
  void join() { eng().join(); }
  void terminate() { eng().terminate(); }
  std::size_t processes() const noexcept { return engine_ ? engine_->processes() : 0; }

  // As Pool::stats() (mproc/pool/pool_stats.hpp), for threads: tasks queued, running,
  // completed, failed (a task's exception; cancelled by shutdown(cancel_futures); aborted by
  // terminate()); run-time percentiles; a row per thread (pid: its tid; rss 0). Taken under the
  // pool's lock, no I/O. Thread-safe. Throws PoolStateError for a moved-from ThreadPool.
  PoolStats stats() const { return eng().stats(); }

 private:
  // The thread that runs this pool's callbacks (PoolApi gives it to each result).
  const std::shared_ptr<detail::CallbackRunner>& callback_runner() const noexcept {
    static const std::shared_ptr<detail::CallbackRunner> none;
    return engine_ ? engine_->callback_runner() : none;
  }
  detail::ThreadEngine& eng() const {
    if (!engine_) throw PoolStateError("use of a moved-from ThreadPool");
    return *engine_;
  }
  // What the destructor does (and move assignment, to the pool it replaces).
  void finish() noexcept {
    if (!engine_) return;  // moved from
    if (!owner_.here()) {  // a copy in a fork child: its threads are the parent's (owner.hpp)
      detail::abandon(engine_);
      return;
    }
    if (engine_->terminated()) {
      engine_->terminate();
    } else {
      engine_->close();
      engine_->join();
    }
    engine_.reset();
  }
  void cancel_queued() { eng().cancel_queued(); }

  template <class F, class CbA, class CbB, class... Args>
  auto apply_async_impl(F f, Callbacks<CbA, CbB> cbs, Args&&... args) {
    using Fn = std::decay_t<F>;
    using Tuple = std::tuple<std::decay_t<Args>...>;
    using R = std::decay_t<std::invoke_result_t<Fn&, std::decay_t<Args>&...>>;
    eng();
    auto state = detail::make_state<R>();
    this->attach(state, cbs);
    this->admit(*state);
    engine_->submit(std::make_unique<detail::ThreadApplyJob<Fn, Tuple, R>>(
        std::move(f), Tuple(std::forward<Args>(args)...), state));
    return AsyncResult<R>(std::move(state));
  }

  template <detail::CallShape S, class F, class Range, class CbA, class CbB>
  auto submit_map(F f, Range&& inputs, std::size_t chunksize, Callbacks<CbA, CbB> cbs,
                  std::shared_ptr<ProgressBar> bar = nullptr) {
    using Fn = std::decay_t<F>;
    using Item = std::remove_cvref_t<std::ranges::range_value_t<Range>>;
    using R = std::decay_t<decltype(detail::call_item<Fn, Item, S>(std::declval<Fn&>(),
                                                                   std::declval<Item&>()))>;
    using Out = typename detail::ThreadMapState<R>::Out;
    eng();
    std::vector<Item> all(std::ranges::begin(inputs), std::ranges::end(inputs));
    const std::size_t n = all.size();
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
    auto st = std::make_shared<detail::ThreadMapState<R>>(n, chunks, result, std::move(bar));
    std::vector<std::unique_ptr<detail::ChunkJob>> jobs;
    jobs.reserve(chunks);
    for (std::size_t off = 0; off < n; off += chunksize) {
      const std::size_t end = std::min(n, off + chunksize);
      std::vector<Item> items(std::make_move_iterator(all.begin() + off),
                              std::make_move_iterator(all.begin() + end));
      jobs.push_back(
          std::make_unique<detail::ThreadMapJob<Fn, Item, S, R>>(f, std::move(items), off, st));
    }
    engine_->submit(jobs);
    return AsyncResult<Out>(std::move(result));
  }

  template <class F, class Range>
  auto make_imap(F f, Range&& inputs, std::size_t chunksize, bool ordered, std::size_t buffersize,
                 std::shared_ptr<ProgressBar> bar = nullptr) {
    using Fn = std::decay_t<F>;
    using Item = std::remove_cvref_t<std::ranges::range_value_t<Range>>;
    using R = std::decay_t<std::invoke_result_t<Fn&, Item&>>;
    static_assert(!std::is_void_v<R>, "mproc: imap needs a function that returns a value; use map");
    if (chunksize == 0) chunksize = 1;
    if (eng().closed()) detail::throw_pool_closed();
    auto state = std::make_shared<detail::ImapState<R>>();
    auto src =
        std::make_shared<std::views::all_t<Range>>(std::views::all(std::forward<Range>(inputs)));
    using It = std::ranges::iterator_t<std::views::all_t<Range>>;
    auto it = std::make_shared<It>(std::ranges::begin(*src));
    auto make = [=](std::size_t chunk) -> std::unique_ptr<detail::ChunkJob> {
      std::vector<Item> items;
      for (; items.size() < chunksize && *it != std::ranges::end(*src); ++*it)
        items.push_back(**it);
      if (items.empty()) return nullptr;
      return std::make_unique<detail::ThreadImapJob<Fn, Item, R>>(f, std::move(items), chunk,
                                                                  state);
    };
    auto engine = engine_;
    auto submit = [engine](std::vector<std::unique_ptr<detail::ChunkJob>>& jobs) {
      engine->submit(jobs);
    };
    const std::size_t max_inflight = std::max<std::size_t>(8, processes() * 64);
    return ImapRange<R>(
        std::make_unique<detail::ImapDriver<R>>(std::move(submit), state, std::move(make), ordered,
                                                max_inflight, std::move(bar), buffersize));
  }

  std::shared_ptr<detail::ThreadEngine> engine_;
  detail::OwnerPid owner_;
};

}  // namespace mproc
