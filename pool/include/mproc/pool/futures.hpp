// mproc/pool/futures.hpp — Python's concurrent.futures.as_completed and wait over AsyncResults.
//
//   std::vector<mproc::AsyncResult<int>> rs;
//   for (int i = 0; i < 8; ++i) rs.push_back(pool.submit(search, i));
//   for (auto& r : mproc::as_completed(rs, std::chrono::seconds(10)))   // completion order
//     if (r.get() > 0) break;
//
//   auto [done, not_done] = mproc::wait(rs, std::nullopt, mproc::FIRST_COMPLETED);
//
// Both take any range of AsyncResult<T> (of one T) from any submissions, any pools. Neither
// costs a thread nor polls: one small waiter is registered on each pending result and is woken
// once by that result's completion. A result listed twice counts once (Python takes a set).
//
// as_completed(results[, timeout]) — a lazy range: finished results first (in input order), then
// each as it completes. The timeout counts from the call, as Python's: iterating past the
// deadline while some are unfinished throws mproc::TimeoutError. Leaving the loop early is fine.
//
// wait(results[, timeout[, return_when]]) — returns {done, not_done} (in input order) when the
// condition holds or the timeout (from the call) passes: ALL_COMPLETED (default),
// FIRST_COMPLETED, or FIRST_EXCEPTION (the first result that completed with an exception, or
// all). Never throws TimeoutError (Python's doesn't either).
//
// Thread safety: the functions may be called from any thread; one AsCompleted range is consumed
// by one thread. In a child made with fork(), waiting for a result pending at the fork throws
// PoolStateError (as AsyncResult::wait).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <iterator>
#include <memory>
#include <mutex>
#include <optional>
#include <ranges>
#include <unordered_map>
#include <utility>
#include <vector>

#include "mproc/errors.hpp"
#include "mproc/pool/async_result.hpp"

namespace mproc {

enum class ReturnWhen { FIRST_COMPLETED, FIRST_EXCEPTION, ALL_COMPLETED };
inline constexpr ReturnWhen FIRST_COMPLETED = ReturnWhen::FIRST_COMPLETED;
inline constexpr ReturnWhen FIRST_EXCEPTION = ReturnWhen::FIRST_EXCEPTION;
inline constexpr ReturnWhen ALL_COMPLETED = ReturnWhen::ALL_COMPLETED;

namespace detail {

template <class Range>
using result_type_of = std::remove_cvref_t<std::ranges::range_value_t<Range>>;

// Told by each result's completion; keeps the completed states in completion order.
class CompletionQueue final : public CompletionHook {
 public:
  void on_complete(StateBase& s) noexcept override {
    {
      std::lock_guard lock(mu_);
      done_.push_back(&s);  // preallocated (reserve): no allocation on the I/O thread
      ++count_;
      if (s.failed()) ++failed_;
    }
    cv_.notify_all();
  }

  void reserve(std::size_t n) { done_.reserve(n); }

  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<StateBase*> done_;  // guarded by mu_
  std::size_t count_ = 0, failed_ = 0;
};

// The results of one call, de-duplicated, with a CompletionQueue registered on the pending ones.
template <class T>
class Registration {
 public:
  template <class Range>
  explicit Registration(const Range& results) : q_(std::make_shared<CompletionQueue>()) {
    for (const auto& r : results) {
      if (!r.valid()) throw Error("mproc: as_completed/wait given an empty AsyncResult");
      if (index_.emplace(r.state().get(), all_.size()).second) all_.push_back(r);
    }
    q_->reserve(all_.size());
    for (auto& r : all_) {
      // Complete already: counted now, in input order. Otherwise its completion tells q_.
      r.state()->check_waitable();
      if (r.ready() || !r.state()->add_hook(q_)) q_->on_complete(*r.state());
    }
  }
  Registration(const Registration&) = delete;
  Registration& operator=(const Registration&) = delete;
  ~Registration() {
    for (auto& r : all_) r.state()->remove_hook(q_.get());
  }

  // A hash lookup, not a scan: as_completed over n results must cost O(n), not O(n^2).
  const AsyncResult<T>& find(const StateBase* s) const {
    const auto it = index_.find(s);
    if (it == index_.end()) throw Error("mproc: as_completed lost track of a result");
    return all_[it->second];
  }

  std::vector<AsyncResult<T>> all_;
  std::unordered_map<const StateBase*, std::size_t> index_;  // state -> its place in all_
  std::shared_ptr<CompletionQueue> q_;
};

inline std::optional<std::chrono::steady_clock::time_point> deadline_after(
    std::optional<std::chrono::nanoseconds> timeout) {
  if (!timeout) return std::nullopt;
  return std::chrono::steady_clock::now() + *timeout;
}

}  // namespace detail

// The range as_completed returns. Move-only; iterate it once.
template <class T>
class AsCompleted {
 public:
  class iterator {
   public:
    using iterator_category = std::input_iterator_tag;
    using value_type = AsyncResult<T>;
    using difference_type = std::ptrdiff_t;
    using reference = const AsyncResult<T>&;

    iterator() = default;
    explicit iterator(AsCompleted* a) : a_(a) {
      if (!a_->advance()) a_ = nullptr;
    }
    reference operator*() const { return a_->current_; }
    const AsyncResult<T>* operator->() const { return &a_->current_; }
    iterator& operator++() {
      if (!a_->advance()) a_ = nullptr;
      return *this;
    }
    void operator++(int) { ++*this; }
    bool operator==(std::default_sentinel_t) const noexcept { return a_ == nullptr; }

   private:
    AsCompleted* a_ = nullptr;
  };

  template <class Range>
  AsCompleted(const Range& results, std::optional<std::chrono::nanoseconds> timeout)
      : reg_(std::make_unique<detail::Registration<T>>(results)),
        deadline_(detail::deadline_after(timeout)) {}

  // Waits for the next completion (TimeoutError past the deadline).
  iterator begin() { return iterator(this); }
  std::default_sentinel_t end() const noexcept { return {}; }

  // How many results it covers (duplicates counted once).
  std::size_t size() const noexcept { return reg_->all_.size(); }

 private:
  bool advance() {
    if (yielded_ == reg_->all_.size()) return false;
    auto& q = *reg_->q_;
    std::unique_lock lock(q.mu_);
    if (q.done_.size() <= yielded_) {
      const auto more = [&] { return q.done_.size() > yielded_; };
      if (!deadline_) {
        q.cv_.wait(lock, more);
      } else if (!q.cv_.wait_until(lock, *deadline_, more)) {
        throw TimeoutError("as_completed: " + std::to_string(reg_->all_.size() - q.done_.size()) +
                           " of " + std::to_string(reg_->all_.size()) +
                           " results unfinished at the timeout");
      }
    }
    const StateBase* s = q.done_[yielded_++];
    lock.unlock();
    current_ = reg_->find(s);
    return true;
  }

  using StateBase = detail::StateBase;
  std::unique_ptr<detail::Registration<T>> reg_;
  std::optional<std::chrono::steady_clock::time_point> deadline_;
  std::size_t yielded_ = 0;
  AsyncResult<T> current_;
};

// Python's concurrent.futures.as_completed(fs, timeout=None). See the header comment.
template <std::ranges::input_range Range>
AsCompleted<typename detail::result_type_of<Range>::value_type> as_completed(
    const Range& results, std::optional<std::chrono::nanoseconds> timeout = std::nullopt) {
  return {results, timeout};
}

template <class T>
struct DoneAndNotDone {
  std::vector<AsyncResult<T>> done;
  std::vector<AsyncResult<T>> not_done;
};

// Python's concurrent.futures.wait(fs, timeout=None, return_when=ALL_COMPLETED).
template <std::ranges::input_range Range>
DoneAndNotDone<typename detail::result_type_of<Range>::value_type> wait(
    const Range& results, std::optional<std::chrono::nanoseconds> timeout = std::nullopt,
    ReturnWhen return_when = ALL_COMPLETED) {
  using T = typename detail::result_type_of<Range>::value_type;
  detail::Registration<T> reg(results);
  const std::size_t n = reg.all_.size();
  const auto deadline = detail::deadline_after(timeout);
  {
    auto& q = *reg.q_;
    std::unique_lock lock(q.mu_);
    const auto satisfied = [&] {
      switch (return_when) {
        case ReturnWhen::FIRST_COMPLETED:
          return q.count_ > 0 || n == 0;
        case ReturnWhen::FIRST_EXCEPTION:
          return q.failed_ > 0 || q.count_ == n;
        case ReturnWhen::ALL_COMPLETED:
          break;
      }
      return q.count_ == n;
    };
    if (!deadline) {
      q.cv_.wait(lock, satisfied);
    } else {
      q.cv_.wait_until(lock, *deadline, satisfied);
    }
  }
  DoneAndNotDone<T> out;
  for (auto& r : reg.all_) (r.ready() ? out.done : out.not_done).push_back(r);
  return out;
}

}  // namespace mproc
