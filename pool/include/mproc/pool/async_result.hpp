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
// Thread safety: an AsyncResult is a cheap shared handle; all its const members may be called
// concurrently from any threads, on the same or on copied handles. In a child made with fork(),
// waiting for a result that was still pending at the fork throws PoolStateError (it would never
// complete there); a ready one can still be read.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <type_traits>
#include <utility>

#include "mproc/errors.hpp"
#include "mproc/pool/detail/callback_runner.hpp"
#include "mproc/runtime/owner.hpp"

namespace mproc {

namespace detail {

void log_callback_failure(const char* which) noexcept;

class StateBase {
 public:
  ~StateBase() { drop_error(error_); }

  bool ready() const noexcept { return status_.load(std::memory_order_acquire) != 0; }

  void wait() const {
    if (ready()) return;
    check_owner();
    std::unique_lock lock(mu_);
    ++waiters_;
    cv_.wait(lock, [&] { return ready(); });
    --waiters_;
  }

  bool wait_for(std::chrono::nanoseconds timeout) const {
    if (ready()) return true;
    check_owner();
    std::unique_lock lock(mu_);
    ++waiters_;
    const bool ok = cv_.wait_for(lock, timeout, [&] { return ready(); });
    --waiters_;
    return ok;
  }

  bool successful() const {
    if (!ready()) throw Error("AsyncResult::successful(): the result is not ready");
    return status_.load(std::memory_order_acquire) == kValue;
  }

  // Completes with an error (first completion wins; later ones are ignored).
  void fail(std::exception_ptr e) noexcept {
    if (claimed_.exchange(true)) return;
    error_ = std::move(e);
    if (on_error_ && runner_) {
      runner_->post([this, keep = self_.lock()] {
        try {
          on_error_(error_);
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
    if (canceller_) canceller_();
    return true;
  }
  void set_canceller(std::function<void()> c) { canceller_ = std::move(c); }

  void set_error_callback(std::function<void(std::exception_ptr)> cb,
                          std::shared_ptr<CallbackRunner> runner) {
    on_error_ = std::move(cb);
    runner_ = std::move(runner);
  }

 protected:
  static constexpr int kValue = 1;
  static constexpr int kError = 2;

  void publish(int status) noexcept {
    {
      std::lock_guard lock(mu_);
      status_.store(status, std::memory_order_release);
      if (waiters_ == 0) return;
    }
    cv_.notify_all();
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

  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  mutable int waiters_ = 0;
  std::atomic<int> status_{0};
  std::atomic<bool> claimed_{false};
  OwnerPid owner_;
  std::exception_ptr error_;
  std::function<void(std::exception_ptr)> on_error_;
  std::shared_ptr<CallbackRunner> runner_;
  std::function<void()> canceller_;

 public:
  // Set by make_state: keeps the state alive while a callback job is queued.
  std::weak_ptr<StateBase> self_;
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
    on_value_ = std::move(cb);
    runner_ = std::move(runner);
  }

 private:
  void finish_value() noexcept {
    if (on_value_ && runner_) {
      runner_->post([this, keep = self_.lock()] {
        try {
          on_value_(*value_);
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
  std::function<void(const T&)> on_value_;
};

template <>
class ResultState<void> : public StateBase {
 public:
  void set_value() noexcept {
    if (!claim()) return;
    if (on_value_ && runner_) {
      runner_->post([this, keep = self_.lock()] {
        try {
          on_value_();
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
    on_value_ = std::move(cb);
    runner_ = std::move(runner);
  }
  void get() const {
    wait();
    rethrow_if_error();
  }

 private:
  std::function<void()> on_value_;
};

template <class T>
std::shared_ptr<ResultState<T>> make_state() {
  auto s = std::make_shared<ResultState<T>>();
  s->self_ = s;
  return s;
}

}  // namespace detail

template <class T>
class AsyncResult {
 public:
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
// It may also carry a per-call time limit: mproc::callbacks(cb).with_timeout(2s), or
// mproc::with_timeout(2s) alone.
template <class OnValue = std::nullptr_t, class OnError = std::nullptr_t>
struct Callbacks {
  OnValue on_value;
  OnError on_error;
  std::chrono::nanoseconds timeout{0};

  Callbacks with_timeout(std::chrono::nanoseconds t) && {
    timeout = t;
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

// Only an error callback (Python's error_callback= alone).
template <class OnError>
Callbacks<std::nullptr_t, OnError> error_callback(OnError on_error) {
  return {nullptr, std::move(on_error)};
}

}  // namespace mproc
