// mproc/pool/detail/pool_api.hpp — the Python-shaped calls shared by Pool and ThreadPool.
// Internal (namespace detail). Each front end provides apply_async_impl, submit_map, make_imap,
// processes(), callback_runner(), close(), join() and cancel_queued(); everything users call is
// written once, here.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <memory>
#include <ranges>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

#include "mproc/errors.hpp"
#include "mproc/pool/async_result.hpp"
#include "mproc/pool/futures.hpp"
#include "mproc/progress.hpp"
#include "mproc/serialize/detail/callable.hpp"

namespace mproc {
namespace detail {

template <class T>
struct is_callbacks : std::false_type {};
template <class A, class B>
struct is_callbacks<Callbacks<A, B>> : std::true_type {};

template <class... A>
constexpr bool last_is_callbacks() {
  if constexpr (sizeof...(A) == 0) {
    return false;
  } else {
    return is_callbacks<
        std::decay_t<std::tuple_element_t<sizeof...(A) - 1, std::tuple<A...>>>>::value;
  }
}

template <class Range>
std::size_t known_size(const Range& r) {
  if constexpr (std::ranges::sized_range<Range>) {
    return static_cast<std::size_t>(std::ranges::size(r));
  } else {
    return 0;
  }
}

// Python's default: ceil(n / (4 * processes)).
inline std::size_t default_chunksize(std::size_t n, std::size_t processes) {
  if (n == 0) return 1;
  const std::size_t d = 4 * std::max<std::size_t>(processes, 1);
  return std::max<std::size_t>(1, (n + d - 1) / d);
}

template <class Derived>
class PoolApi {
 public:
  // ---- apply ----------------------------------------------------------------------------------

  // Runs f(args...) in a worker and returns its result (Python: pool.apply(f, args)). A
  // process pool gives the call straight to an idle worker when it has one (the engine's
  // run_now): the result is the same as through the queue.
  template <class F, class... Args>
  auto apply(F f, Args&&... args) {
    auto r = [&] {
      if constexpr (requires { Derived::kRunsNow; } && !last_is_callbacks<Args...>()) {
        return self().template apply_async_impl<true>(
            f, Callbacks<std::nullptr_t, std::nullptr_t>{}, std::forward<Args>(args)...);
      } else {
        return apply_async(f, std::forward<Args>(args)...);
      }
    }();
    r.wait();
    if constexpr (std::is_void_v<decltype(r.get())>) {
      r.get();
    } else {
      r.get();
      return r.state()->take();
    }
  }

  // Submits f(args...) and returns its future at once. An optional last argument
  // mproc::callbacks(on_value, on_error) runs on the pool's callback thread.
  template <class F, class... Args>
  auto apply_async(F f, Args&&... args) {
    if constexpr (last_is_callbacks<Args...>()) {
      auto all = std::forward_as_tuple(std::forward<Args>(args)...);
      return [&]<std::size_t... I>(std::index_sequence<I...>) {
        return self().apply_async_impl(f, std::get<sizeof...(Args) - 1>(all),
                                       std::get<I>(std::move(all))...);
      }
      (std::make_index_sequence<sizeof...(Args) - 1>());
    } else {
      return self().apply_async_impl(f, Callbacks<std::nullptr_t, std::nullptr_t>{},
                                     std::forward<Args>(args)...);
    }
  }

  // Python's Executor.submit(fn, *args): apply_async under its concurrent.futures name (the same
  // AsyncResult, callbacks and time limit included). With PoolOptions::max_queued set, it waits
  // for room (or throws mproc::Full after PoolOptions::max_queued_timeout).
  template <class F, class... Args>
  auto submit(F f, Args&&... args) {
    return apply_async(f, std::forward<Args>(args)...);
  }

  // Python's Executor.shutdown(wait=True, cancel_futures=False): no more submissions (close());
  // with cancel_futures, every task not yet started completes at once with CancelledError
  // (running ones finish); with wait, returns when all work and callbacks are done (join()).
  // Throws PoolStateError in a process that does not own the pool.
  void shutdown(bool wait = true, bool cancel_futures = false) {
    self().close();
    if (cancel_futures) self().cancel_queued();
    if (wait) self().join();
  }

  // ---- map / starmap --------------------------------------------------------------------------

  // Python: pool.map(f, iterable, chunksize). Blocks; returns results in input order, or
  // rethrows the first failed chunk's exception. chunksize 0 = Python's default.
  template <class F, class Range>
  auto map(F f, Range&& inputs, std::size_t chunksize = 0) {
    return get_moved(map_async(f, std::forward<Range>(inputs), chunksize));
  }

  // map with a progress bar drawn on this thread while it waits.
  template <class F, class Range>
  auto map(F f, Range&& inputs, std::size_t chunksize, Progress p) {
    auto bar = std::make_shared<ProgressBar>(known_size(inputs), std::move(p));
    return wait_drawing(self().template submit_map<CallShape::kMap>(f, std::forward<Range>(inputs),
                                                                    chunksize, Callbacks<>{}, bar),
                        *bar);
  }

  template <class F, class Range, class CbA = std::nullptr_t, class CbB = std::nullptr_t>
  auto map_async(F f, Range&& inputs, std::size_t chunksize = 0, Callbacks<CbA, CbB> cbs = {}) {
    return self().template submit_map<CallShape::kMap>(f, std::forward<Range>(inputs), chunksize,
                                                       std::move(cbs));
  }

  // Python: pool.starmap(f, [(a, b), ...]): each input is a tuple (or pair) of arguments.
  template <class F, class Range>
  auto starmap(F f, Range&& inputs, std::size_t chunksize = 0) {
    return get_moved(starmap_async(f, std::forward<Range>(inputs), chunksize));
  }

  template <class F, class Range>
  auto starmap(F f, Range&& inputs, std::size_t chunksize, Progress p) {
    auto bar = std::make_shared<ProgressBar>(known_size(inputs), std::move(p));
    return wait_drawing(self().template submit_map<CallShape::kApply>(
                            f, std::forward<Range>(inputs), chunksize, Callbacks<>{}, bar),
                        *bar);
  }

  template <class F, class Range, class CbA = std::nullptr_t, class CbB = std::nullptr_t>
  auto starmap_async(F f, Range&& inputs, std::size_t chunksize = 0, Callbacks<CbA, CbB> cbs = {}) {
    return self().template submit_map<CallShape::kApply>(f, std::forward<Range>(inputs), chunksize,
                                                         std::move(cbs));
  }

  // ---- imap -----------------------------------------------------------------------------------

  // Lazy, ordered (Python: pool.imap(f, iterable, chunksize=1, buffersize=None)). The range is
  // read as results are consumed; an lvalue range must outlive the iteration, an rvalue one is
  // kept inside. buffersize: at most this many chunks submitted and not yet consumed, so at
  // most buffersize * chunksize inputs are read ahead of the consumer; 0: the pool's default
  // window (a few hundred chunks per worker).
  template <class F, class Range>
  auto imap(F f, Range&& inputs, std::size_t chunksize = 1, std::size_t buffersize = 0) {
    return self().make_imap(f, std::forward<Range>(inputs), chunksize, true, buffersize);
  }

  // imap with a progress bar, advanced as results are consumed.
  template <class F, class Range>
  auto imap(F f, Range&& inputs, std::size_t chunksize, Progress p) {
    auto bar = std::make_shared<ProgressBar>(known_size(inputs), std::move(p));
    return self().make_imap(f, std::forward<Range>(inputs), chunksize, true, 0, std::move(bar));
  }

  template <class F, class Range>
  auto imap_unordered(F f, Range&& inputs, std::size_t chunksize, Progress p) {
    auto bar = std::make_shared<ProgressBar>(known_size(inputs), std::move(p));
    return self().make_imap(f, std::forward<Range>(inputs), chunksize, false, 0, std::move(bar));
  }

  // Lazy, in completion order (Python: pool.imap_unordered); buffersize as imap's.
  template <class F, class Range>
  auto imap_unordered(F f, Range&& inputs, std::size_t chunksize = 1, std::size_t buffersize = 0) {
    return self().make_imap(f, std::forward<Range>(inputs), chunksize, false, buffersize);
  }

 protected:
  template <class T>
  static auto get_moved(const AsyncResult<T>& r) {
    if constexpr (std::is_void_v<T>) {
      r.get();
    } else {
      r.get();
      return r.state()->take();
    }
  }

  template <class T>
  static auto wait_drawing(const AsyncResult<T>& r, ProgressBar& bar) {
    while (!r.wait(std::chrono::milliseconds(100))) bar.draw();
    bar.finish();
    return get_moved(r);
  }

  // PoolOptions::max_queued: takes a slot for a new apply_async result (waiting, or Full after
  // the timeout); the result gives it back when it completes, or when it is dropped unsubmitted.
  void admit(StateBase& s) {
    if (!throttle_) return;
    if (!throttle_->acquire(queued_timeout_)) {
      throw Full("the pool already has max_queued = " + std::to_string(throttle_->limit()) +
                 " unfinished tasks (PoolOptions::max_queued_timeout passed)");
    }
    s.hold_slot(throttle_);
  }
  void set_max_queued(std::size_t limit, std::chrono::nanoseconds timeout) {
    if (limit > 0) throttle_ = std::make_shared<Throttle>(limit);
    queued_timeout_ = timeout;
  }

  template <class T, class CbA, class CbB>
  void attach(const std::shared_ptr<detail::ResultState<T>>& s, Callbacks<CbA, CbB>& cbs) {
    s->set_runner(self().callback_runner());  // for done callbacks added later
    if constexpr (!std::is_same_v<CbA, std::nullptr_t>)
      s->set_callback(std::move(cbs.on_value), self().callback_runner());
    if constexpr (!std::is_same_v<CbB, std::nullptr_t>)
      s->set_error_callback(std::move(cbs.on_error), self().callback_runner());
  }

  std::shared_ptr<Throttle> throttle_;  // null: unbounded
  std::chrono::nanoseconds queued_timeout_{0};

 private:
  Derived& self() { return static_cast<Derived&>(*this); }
};

}  // namespace detail
}  // namespace mproc
