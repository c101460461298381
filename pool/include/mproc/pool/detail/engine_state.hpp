// mproc/pool/detail/engine_state.hpp — what every pool engine (processes, threads, MPI ranks)
// shares with its callers: open, closed or terminated, maybe broken, and how many submitted
// tasks have not completed yet. Internal (namespace detail).
//
// Thread safety: every member locks `mu` itself, except those named *_locked, which expect the
// caller to hold it (the engine keeps its own inbox under the same lock, so a submission checks
// the state and queues in one step).
#pragma once

#include <condition_variable>
#include <cstddef>
#include <exception>
#include <mutex>
#include <utility>

namespace mproc::detail {

// Throws PoolStateError("the pool is closed: ..."): a submission after close().
[[noreturn]] void throw_pool_closed();

class EngineState {
 public:
  // Throws if no task may be submitted: terminated, closed, or broken (its cause).
  void check_open_locked() const;
  // check_open_locked, then counts `n` more tasks as outstanding.
  void add_tasks_locked(std::size_t n) {
    check_open_locked();
    outstanding_ += n;
  }

  // No more submissions.
  void close() {
    std::lock_guard lock(mu);
    closed_ = true;
  }
  // Closes and marks terminated. Returns whether this call terminated it. The caller wakes
  // join() (done_cv) once it has dropped what will not run.
  bool terminate_locked() noexcept {
    closed_ = true;
    return !std::exchange(terminated_, true);
  }
  // terminate_locked, then wakes join().
  bool terminate() {
    bool first;
    {
      std::lock_guard lock(mu);
      first = terminate_locked();
    }
    done_cv.notify_all();
    return first;
  }
  bool closed() const noexcept {
    std::lock_guard lock(mu);
    return closed_;
  }
  bool terminated() const noexcept {
    std::lock_guard lock(mu);
    return terminated_;
  }
  bool terminated_locked() const noexcept { return terminated_; }

  // From now on submissions throw `cause`. The first cause stays unless `replace`.
  void set_broken(std::exception_ptr cause, bool replace = false) {
    std::lock_guard lock(mu);
    if (!broken_ || replace) broken_ = std::move(cause);
  }

  // join()'s precondition: throws PoolStateError("<who>::join(): call close() or terminate()
  // first") while the pool is open.
  void require_closed_locked(const char* who) const;
  // join(): waits until every outstanding task completed, or the pool was terminated.
  void wait_done(std::unique_lock<std::mutex>& lock) {
    done_cv.wait(lock, [&] { return outstanding_ == 0 || terminated_; });
  }

  // `n` tasks completed (on_ok or on_error was called); wakes join() at zero.
  void task_finished(std::size_t n) {
    if (n == 0) return;
    bool zero;
    {
      std::lock_guard lock(mu);
      outstanding_ -= n;
      zero = outstanding_ == 0;
    }
    if (zero) done_cv.notify_all();
  }

  // Fails every task not handed to a worker, the inbox (taken under `mu`) first, then the I/O
  // thread's `pending`, in order, and counts them finished; returns how many. An engine then
  // fails what its workers hold.
  template <class Inbox, class Pending>
  std::size_t fail_queued(Inbox& inbox, Pending& pending, const std::exception_ptr& e) {
    Pending all;
    {
      std::lock_guard lock(mu);
      for (auto& t : inbox) all.push_back(std::move(t));
      inbox.clear();
    }
    for (auto& t : pending) all.push_back(std::move(t));
    pending.clear();
    std::size_t n = 0;
    for (auto& t : all) {
      if (!t) continue;
      t->on_error(e);
      ++n;
    }
    task_finished(n);
    return n;
  }

  // Guards this state and the engine's own inbox.
  mutable std::mutex mu;
  std::condition_variable done_cv;

 private:
  std::size_t outstanding_ = 0;
  bool closed_ = false;
  bool terminated_ = false;
  std::exception_ptr broken_;
};

}  // namespace mproc::detail
