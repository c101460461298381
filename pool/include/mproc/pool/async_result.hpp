// mproc/pool/async_result.hpp — AsyncResult<T>: the future a pool hands back.
//
// Python's multiprocessing.pool.AsyncResult: get() / get(timeout) / wait() / wait(timeout) /
// ready() / successful(). get() rethrows the task's exception (standard exception types as
// themselves, others as mproc::RemoteError, a dead worker as mproc::WorkerLostError); get(timeout)
// throws mproc::TimeoutError when the deadline passes first.
//
// When a callback or error callback was given, the result becomes ready only after the callback
// has run (as in Python), so code after get() or join() sees the callback's effects. Callbacks run
// on the pool's callback thread, never on its I/O thread; an exception from a callback is logged
// and swallowed.
//
// concurrent.futures.Future's calls are here too (see mproc/pool/futures.hpp for as_completed and
// wait): add_done_callback(fn), running(), cancelled(), exception(). They cost nothing unless
// used: a result's completion wakes exactly the waiters and callbacks registered on it, once.
//
// Thread safety: an AsyncResult is a cheap shared handle; all its const members may be called
// concurrently from any threads, on the same or on copied handles. In a child made with fork(),
// waiting for a result that was still pending at the fork throws PoolStateError (it would never
// complete there); a ready one can still be read.
#pragma once

#include <atomic>
#include <chrono>
#include <climits>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "mproc/errors.hpp"
#include "mproc/pool/detail/callback_runner.hpp"
#include "mproc/pool/detail/task_canceller.hpp"
#include "mproc/runtime/detail/futex.hpp"
#include "mproc/runtime/detail/owner.hpp"

namespace mproc {

template <class T>
class AsyncResult;

namespace detail {

void log_callback_failure(const char* which) noexcept;

class StateBase;

// Told once when a result completes (as_completed and wait's waiters, done callbacks). Runs on
// the completing thread (a pool's I/O or callback thread, a ThreadPool worker) after the result
// is ready, with no lock held: it must be short, must not block and must not throw.
class CompletionHook {
 public:
  virtual ~CompletionHook() = default;
  virtual void on_complete(StateBase& s) noexcept = 0;
};

// PoolOptions::max_queued: a counting gate on submitted-but-unfinished apply_async tasks. A slot
// is taken before a task is queued and given back when its result completes.
class Throttle {
 public:
  explicit Throttle(std::size_t limit) : limit_(limit) {}
  // Takes a slot, waiting for one; timeout <= 0: as long as it takes. False: none in time.
  bool acquire(std::chrono::nanoseconds timeout) {
    std::unique_lock lock(mu_);
    const auto free = [&] { return used_ < limit_; };
    if (timeout.count() <= 0) {
      cv_.wait(lock, free);
    } else if (!cv_.wait_for(lock, timeout, free)) {
      return false;
    }
    ++used_;
    return true;
  }
  void release() noexcept {
    {
      std::lock_guard lock(mu_);
      --used_;
    }
    cv_.notify_one();
  }
  std::size_t outstanding() const {
    std::lock_guard lock(mu_);
    return used_;
  }
  std::size_t limit() const noexcept { return limit_; }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::size_t limit_;
  std::size_t used_ = 0;
};

// Guards a result's hook list: held only to push, erase or swap a pointer or two, so a spin
// (yielding, for a preempted holder) costs less than a 40-byte mutex in every result.
class HookLock {
 public:
  void lock() noexcept {
    while (held_.exchange(true, std::memory_order_acquire))
      while (held_.load(std::memory_order_relaxed)) std::this_thread::yield();
  }
  void unlock() noexcept { held_.store(false, std::memory_order_release); }

 private:
  std::atomic<bool> held_{false};
};

// One result's state. Small on purpose (a caller may hold 100,000 of them, and fresh memory
// costs a page fault per 4 KiB): waiting is a futex on the status word, the rarely used parts
// (callbacks, extra hooks, the ids of a map's tasks) live behind pointers.
class StateBase {
 public:
  // Set by make_state: keeps the state alive while a callback job is queued; as_completed makes
  // a result's handle from it.
  std::weak_ptr<StateBase> self_;

 protected:
  // First, next to make_shared's reference counts: as_completed and wait pass over thousands of
  // results that are mostly out of cache, and these are what those passes touch.
  std::atomic<std::uint32_t> status_{0};  // 0 pending, kValue, kError; the waiters' futex word
  std::atomic<bool> claimed_{false};
  std::atomic<bool> started_{false};
  std::atomic<bool> cancelled_{false};
  mutable HookLock hook_lock_;
  mutable std::atomic<std::uint32_t> waiters_{0};  // threads in wait(): publish wakes only then
  mutable std::atomic<std::uint64_t> mark_{0};

 public:
  StateBase() = default;
  StateBase(const StateBase&) = delete;
  StateBase& operator=(const StateBase&) = delete;
  // A state dropped before it completed (its submission threw) gives its queue slot back.
  ~StateBase() {
    if (slot_) slot_->release();
    drop_error(error_);
  }

  bool ready() const noexcept { return status_.load(std::memory_order_acquire) != 0; }
  bool failed() const noexcept { return status_.load(std::memory_order_acquire) == kError; }
  // Python's Future.running(): a worker has started it and it has not completed.
  bool running() const noexcept { return started_.load(std::memory_order_acquire) && !ready(); }
  bool cancelled() const noexcept { return cancelled_.load(std::memory_order_acquire); }
  // PoolStateError in a fork child, where a result pending at the fork never completes (no
  // lock, no system call: as_completed registers on thousands of results).
  void check_waitable() const {
    if (!ready()) check_owner();
  }
  // Called by an engine when the task starts on a worker.
  void mark_started() noexcept { started_.store(true, std::memory_order_release); }

  // The error of a completed result; empty on success. Call only once ready().
  const std::exception_ptr& error() const noexcept { return error_; }

  // Registers a hook told when this completes. False (and not registered) if already complete.
  // The first hook lives in the state itself, so as_completed's registration on a result whose
  // only hook it is allocates nothing.
  bool add_hook(std::shared_ptr<CompletionHook> h) {
    std::lock_guard lock(hook_lock_);
    if (ready()) return false;
    if (!hook0_) {
      hook0_ = std::move(h);
    } else {
      if (!hooks_) hooks_ = std::make_unique<std::vector<std::shared_ptr<CompletionHook>>>();
      hooks_->push_back(std::move(h));
    }
    return true;
  }
  // Forgets a hook that was not told yet (its waiter is going away). Hooks keep the order they
  // were added in.
  void remove_hook(const CompletionHook* h) noexcept {
    std::lock_guard lock(hook_lock_);
    if (hook0_.get() == h) {
      hook0_.reset();
      if (hooks_ && !hooks_->empty()) {
        hook0_ = std::move(hooks_->front());
        hooks_->erase(hooks_->begin());
      }
      return;
    }
    if (!hooks_) return;
    for (auto it = hooks_->begin(); it != hooks_->end(); ++it) {
      if (it->get() == h) {
        hooks_->erase(it);
        return;
      }
    }
  }

  // as_completed and wait take a set (a result listed twice counts once): the registration that
  // is de-duplicating this result right now marks it with its number (0: none). See
  // detail::Registration.
  std::atomic<std::uint64_t>& dedup_mark() const noexcept { return mark_; }

  // The thread that runs this result's callbacks (done callbacks included); may be null for a
  // result made outside a pool.
  const std::shared_ptr<CallbackRunner>& callback_runner() const noexcept { return runner_; }
  void set_runner(std::shared_ptr<CallbackRunner> r) {
    if (!runner_) runner_ = std::move(r);
  }
  // PoolOptions::max_queued: the slot this result holds until it completes.
  void hold_slot(std::shared_ptr<Throttle> t) noexcept { slot_ = std::move(t); }

  void wait() const {
    if (ready()) return;
    check_owner();
    waiters_.fetch_add(1);  // seq_cst, as publish's store and load: one of the two sees the other
    while (status_.load() == 0) futex_wait(word(), 0, Deadline::never(), FutexScope::kPrivate);
    waiters_.fetch_sub(1, std::memory_order_relaxed);
  }

  bool wait_for(std::chrono::nanoseconds timeout) const {
    if (ready()) return true;
    check_owner();
    const auto deadline = Deadline::after(timeout);
    waiters_.fetch_add(1);
    while (status_.load() == 0 && futex_wait(word(), 0, deadline, FutexScope::kPrivate)) {
    }
    waiters_.fetch_sub(1, std::memory_order_relaxed);
    return ready();
  }

  bool successful() const {
    if (!ready()) throw Error("AsyncResult::successful(): the result is not ready");
    return status_.load(std::memory_order_acquire) == kValue;
  }

  // Completes with an error (first completion wins; later ones are ignored).
  void fail(std::exception_ptr e) noexcept {
    if (claimed_.exchange(true)) return;
    if (is_cancellation(e)) cancelled_.store(true, std::memory_order_release);
    error_ = std::move(e);
    if (on_error_ && runner_) {
      runner_->post([this, keep = self_.lock()] {
        try {
          (*on_error_)(error_);
        } catch (...) {
          log_callback_failure("error_callback");
        }
        publish(kError);
      });
    } else {
      publish(kError);
    }
  }

  // Fails the result with CancelledError now and asks the pool to drop or stop the task.
  bool cancel() {
    if (ready() || claimed_.load()) return false;
    fail(std::make_exception_ptr(CancelledError("the task was cancelled")));
    if (auto c = canceller_.lock()) {
      c->cancel(cancel_ids_ ? *cancel_ids_ : std::vector<std::uint64_t>{cancel_id_});
    }
    return true;
  }
  // Who cancel() asks to drop the task `id` (apply_async), or the tasks `ids` (a map).
  void set_canceller(std::weak_ptr<TaskCanceller> c, std::uint64_t id) noexcept {
    canceller_ = std::move(c);
    cancel_id_ = id;
  }
  void set_canceller(std::weak_ptr<TaskCanceller> c, std::vector<std::uint64_t> ids) {
    cancel_ids_ = std::make_unique<std::vector<std::uint64_t>>(std::move(ids));
    canceller_ = std::move(c);
  }

  void set_error_callback(std::function<void(std::exception_ptr)> cb,
                          std::shared_ptr<CallbackRunner> runner) {
    on_error_ = std::make_unique<std::function<void(std::exception_ptr)>>(std::move(cb));
    runner_ = std::move(runner);
  }

 protected:
  static constexpr std::uint32_t kValue = 1;
  static constexpr std::uint32_t kError = 2;

  std::uint32_t* word() const noexcept {
    static_assert(sizeof(std::atomic<std::uint32_t>) == sizeof(std::uint32_t) &&
                  std::atomic<std::uint32_t>::is_always_lock_free);
    return reinterpret_cast<std::uint32_t*>(const_cast<std::atomic<std::uint32_t>*>(&status_));
  }

  // The completion point: wakes get()/wait() callers, then tells each hook once, then gives the
  // max_queued slot back. With no waiter, no hook and no slot: a store, a load and two empty
  // handles swapped under the hook lock.
  void publish(std::uint32_t status) noexcept {
    status_.store(status);  // seq_cst: see wait()
    if (waiters_.load() != 0) futex_wake(word(), INT_MAX, FutexScope::kPrivate);
    std::shared_ptr<CompletionHook> hook0;
    std::unique_ptr<std::vector<std::shared_ptr<CompletionHook>>> hooks;
    {
      // A hook added after this sees ready() (the lock orders it after the store) and runs
      // at once instead.
      std::lock_guard lock(hook_lock_);
      hook0.swap(hook0_);
      hooks.swap(hooks_);
    }
    if (hook0) hook0->on_complete(*this);
    if (hooks)
      for (auto& h : *hooks) h->on_complete(*this);
    if (auto slot = std::move(slot_)) slot->release();
  }

  static bool is_cancellation(const std::exception_ptr& e) noexcept {
    try {
      std::rethrow_exception(e);
    } catch (const CancelledError&) {
      return true;
    } catch (...) {
      return false;
    }
  }

  void rethrow_if_error() const {
    if (status_.load(std::memory_order_acquire) == kError) std::rethrow_exception(error_);
  }

  // A fork child's copy of a pending result would never complete: its pool is the parent's.
  void check_owner() const {
    if (!owner_.here()) throw PoolStateError(not_owner_message("result", owner_.pid()));
  }

  // Drops the state's reference to its exception; the last reference frees the object. That
  // can happen on a pool thread (~ThreadApplyJob) just after the caller's handler, holding its
  // own reference, read the exception: correct, since libstdc++ orders the two with an atomic
  // reference count, but that count lives in uninstrumented libstdc++, so ThreadSanitizer
  // reports the free racing with the read (reproduced without mproc: two threads, one
  // exception_ptr). cmake/tsan.supp suppresses exactly the races under this function, so it
  // must stay a frame of its own.
  [[gnu::noinline]] static void drop_error(std::exception_ptr& e) noexcept { e = nullptr; }

  // Claims the right to complete; false when already completed.
  bool claim() noexcept { return !claimed_.exchange(true); }

  std::shared_ptr<CompletionHook> hook0_;  // guarded by hook_lock_: the first hook
  // guarded by hook_lock_: the others, in order (allocated for a second hook only)
  std::unique_ptr<std::vector<std::shared_ptr<CompletionHook>>> hooks_;
  std::shared_ptr<Throttle> slot_;
  OwnerPid owner_;
  std::exception_ptr error_;
  std::unique_ptr<std::function<void(std::exception_ptr)>> on_error_;
  std::shared_ptr<CallbackRunner> runner_;
  std::weak_ptr<TaskCanceller> canceller_;
  std::uint64_t cancel_id_ = 0;
  std::unique_ptr<std::vector<std::uint64_t>> cancel_ids_;  // a map's tasks; null: cancel_id_
};

template <class T>
class ResultState : public StateBase {
 public:
  void set_value(T&& v) noexcept {
    if (!claim()) return;
    value_.emplace(std::move(v));
    finish_value();
  }
  const T& value() const { return *value_; }
  T take() { return std::move(*value_); }
  void set_callback(std::function<void(const T&)> cb, std::shared_ptr<CallbackRunner> runner) {
    on_value_ = std::make_unique<std::function<void(const T&)>>(std::move(cb));
    runner_ = std::move(runner);
  }

 private:
  void finish_value() noexcept {
    if (on_value_ && runner_) {
      runner_->post([this, keep = self_.lock()] {
        try {
          (*on_value_)(*value_);
        } catch (...) {
          log_callback_failure("callback");
        }
        publish(kValue);
      });
    } else {
      publish(kValue);
    }
  }

 public:
  const T& get() const {
    wait();
    rethrow_if_error();
    return *value_;
  }

 private:
  std::optional<T> value_;
  std::unique_ptr<std::function<void(const T&)>> on_value_;
};

template <>
class ResultState<void> : public StateBase {
 public:
  void set_value() noexcept {
    if (!claim()) return;
    if (on_value_ && runner_) {
      runner_->post([this, keep = self_.lock()] {
        try {
          (*on_value_)();
        } catch (...) {
          log_callback_failure("callback");
        }
        publish(kValue);
      });
    } else {
      publish(kValue);
    }
  }
  void set_callback(std::function<void()> cb, std::shared_ptr<CallbackRunner> runner) {
    on_value_ = std::make_unique<std::function<void()>>(std::move(cb));
    runner_ = std::move(runner);
  }
  void get() const {
    wait();
    rethrow_if_error();
  }

 private:
  std::unique_ptr<std::function<void()>> on_value_;
};

template <class T>
std::shared_ptr<ResultState<T>> make_state() {
  auto s = std::make_shared<ResultState<T>>();
  s->self_ = s;
  return s;
}

// add_done_callback's hook: hands fn to the result's callback thread when the result completes.
template <class T, class F>
class DoneCallback final : public CompletionHook {
 public:
  explicit DoneCallback(F fn) : fn_(std::move(fn)) {}

  void on_complete(StateBase& s) noexcept override {
    auto self = std::static_pointer_cast<ResultState<T>>(s.self_.lock());
    if (!self) return;  // unreachable: the completing side holds the state
    if (const auto& runner = s.callback_runner()) {
      try {
        runner->post([fn = std::move(fn_), self]() mutable { call(fn, self); });
        return;
      } catch (...) {  // could not queue it (out of memory): run it here rather than never
      }
    }
    call(fn_, self);
  }

  // Already complete when it was added: Python runs it at once, in the caller.
  void run_now(const std::shared_ptr<ResultState<T>>& s) noexcept { call(fn_, s); }

 private:
  static void call(F& fn, const std::shared_ptr<ResultState<T>>& s) noexcept {
    try {
      if constexpr (std::is_invocable_v<F&, const AsyncResult<T>&>) {
        fn(AsyncResult<T>(s));
      } else {
        fn();
      }
    } catch (...) {
      log_callback_failure("done callback");
    }
  }

  F fn_;
};

}  // namespace detail

template <class T>
class AsyncResult {
 public:
  using value_type = T;  // what get() returns (as concurrent.futures' generic Future[T])

  AsyncResult() = default;
  explicit AsyncResult(std::shared_ptr<detail::ResultState<T>> s) : state_(std::move(s)) {}

  // The task's result; blocks until ready. Rethrows the task's exception.
  decltype(auto) get() const { return state_->get(); }

  // As get(), but throws mproc::TimeoutError if not ready within `timeout`.
  template <class Rep, class Period>
  decltype(auto) get(std::chrono::duration<Rep, Period> timeout) const {
    if (!state_->wait_for(timeout)) throw TimeoutError("AsyncResult::get: timed out");
    return state_->get();
  }

  void wait() const { state_->wait(); }
  // Returns whether the result became ready within `timeout`.
  template <class Rep, class Period>
  bool wait(std::chrono::duration<Rep, Period> timeout) const {
    return state_->wait_for(timeout);
  }

  bool ready() const noexcept { return state_->ready(); }
  // Whether the task completed without an exception. Throws mproc::Error if not ready yet.
  bool successful() const { return state_->successful(); }

  bool valid() const noexcept { return state_ != nullptr; }

  // The same task's result (copies of one handle compare equal), as Python compares futures by
  // identity: find which submission an as_completed result is.
  friend bool operator==(const AsyncResult& a, const AsyncResult& b) noexcept {
    return a.state_ == b.state_;
  }

  // ---- concurrent.futures.Future --------------------------------------------------------------

  // Python's Future.running(): started on a worker and not complete. (A process pool's worker
  // runs the task that heads its queue: that one counts as started.)
  bool running() const noexcept { return state_->running(); }
  // Python's Future.cancelled(): completed by cancel(), by shutdown(cancel_futures=true), or by
  // the pool's cancellation of the task (its error is a CancelledError).
  bool cancelled() const noexcept { return state_->cancelled(); }
  // Python's Future.done() is ready().

  // Python's Future.exception(): waits, then returns the task's exception without throwing it;
  // empty when it succeeded. (A cancelled task returns its CancelledError instead of raising it.)
  std::exception_ptr exception() const {
    state_->wait();
    return state_->failed() ? state_->error() : nullptr;
  }
  // As exception(), waiting at most `timeout`: TimeoutError when not complete by then.
  template <class Rep, class Period>
  std::exception_ptr exception(std::chrono::duration<Rep, Period> timeout) const {
    if (!state_->wait_for(timeout)) throw TimeoutError("AsyncResult::exception: timed out");
    return state_->failed() ? state_->error() : nullptr;
  }

  // Python's Future.add_done_callback(fn): fn(const AsyncResult<T>&) (or fn()) runs exactly once
  // when the result completes — with a value, an exception or a cancellation — on the pool's
  // callback thread, after any apply_async callback. Added to a result that is already
  // complete, it runs at once on the calling thread (as Python's). Any number may be added; they
  // run in the order added. An exception from fn is logged and swallowed. Thread-safe.
  template <class F>
  void add_done_callback(F fn) const {
    static_assert(std::is_invocable_v<F&, const AsyncResult<T>&> || std::is_invocable_v<F&>,
                  "mproc: a done callback takes (const mproc::AsyncResult<T>&) or nothing");
    auto hook = std::make_shared<detail::DoneCallback<T, F>>(std::move(fn));
    if (!state_->add_hook(hook)) hook->run_now(state_);
  }

  // Cancels the task: one still queued is dropped; one running has its worker killed and
  // replaced. get() then throws mproc::CancelledError. Returns false if the result was already
  // complete (nothing to cancel).
  bool cancel() const { return state_->cancel(); }

  // Internal: the shared state.
  const std::shared_ptr<detail::ResultState<T>>& state() const noexcept { return state_; }

 private:
  std::shared_ptr<detail::ResultState<T>> state_;
};

// Callbacks for apply_async / map_async / starmap_async, passed as the last argument:
//   pool.apply_async(f, 7, mproc::callbacks([](int r) { ... }, [](std::exception_ptr e) { ... }));
// It may also carry this call's time limits, which override the pool's (PoolOptions::
// task_timeout and soft_timeout), each kind on its own; 0 (the default) means the pool's:
//   mproc::callbacks(cb).with_timeout(2s)          // hard: TaskTimeoutError, worker replaced
//   mproc::with_timeout(2s)                        // the same, without callbacks
//   mproc::with_soft_timeout(1s)                   // soft: the task is asked to stop
//   mproc::with_timeout(5s).with_soft_timeout(2s)  // both
// A map's limits apply to each of its chunks. A process Pool's only: ThreadPool ignores both,
// mproc::mpi::Pool the soft one (see PoolOptions::soft_timeout, mproc/this_task.hpp).
template <class OnValue = std::nullptr_t, class OnError = std::nullptr_t>
struct Callbacks {
  OnValue on_value;
  OnError on_error;
  std::chrono::nanoseconds timeout{0};
  std::chrono::nanoseconds soft_timeout{0};

  Callbacks with_timeout(std::chrono::nanoseconds t) && {
    timeout = t;
    return std::move(*this);
  }
  Callbacks with_soft_timeout(std::chrono::nanoseconds t) && {
    soft_timeout = t;
    return std::move(*this);
  }
};

template <class OnValue, class OnError = std::nullptr_t>
Callbacks<OnValue, OnError> callbacks(OnValue on_value, OnError on_error = nullptr) {
  return {std::move(on_value), std::move(on_error)};
}

// Only a time limit for this call (overrides PoolOptions::task_timeout).
inline Callbacks<std::nullptr_t, std::nullptr_t> with_timeout(std::chrono::nanoseconds t) {
  return {nullptr, nullptr, t};
}

// Only a soft time limit for this call (overrides PoolOptions::soft_timeout): past it, the
// task is asked to stop (mproc::this_task::stop_requested()); chain .with_timeout(...) for a
// hard one.
inline Callbacks<std::nullptr_t, std::nullptr_t> with_soft_timeout(std::chrono::nanoseconds t) {
  return {nullptr, nullptr, std::chrono::nanoseconds(0), t};
}

// Only an error callback (Python's error_callback= alone).
template <class OnError>
Callbacks<std::nullptr_t, OnError> error_callback(OnError on_error) {
  return {nullptr, std::move(on_error)};
}

}  // namespace mproc
