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

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <memory>
#include <mutex>
#include <optional>
#include <ranges>
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
      done_[count_++] = &s;  // sized for every result up front: no allocation on the I/O thread
      if (s.failed()) ++failed_;
    }
    cv_.notify_all();
  }

  // Several that were complete when registered, under one lock.
  void on_complete(StateBase* const* states, std::size_t k) noexcept {
    if (k == 0) return;
    {
      std::lock_guard lock(mu_);
      for (std::size_t i = 0; i < k; ++i) {
        done_[count_++] = states[i];
        if (states[i]->failed()) ++failed_;
      }
    }
    cv_.notify_all();
  }

  void reserve(std::size_t n) { done_ = std::make_unique_for_overwrite<StateBase*[]>(n); }

  std::mutex mu_;
  std::condition_variable cv_;
  // done_[0, count_) are written under mu_ and never move: a reader that saw count_ under mu_
  // may read those slots afterwards without it.
  std::unique_ptr<StateBase*[]> done_;
  std::size_t count_ = 0, failed_ = 0;  // guarded by mu_
};

// The next number for Registration's de-duplication marks (0 means unmarked).
inline std::uint64_t next_dedup_mark() noexcept {
  static std::atomic<std::uint64_t> last{0};
  return last.fetch_add(1, std::memory_order_relaxed) + 1;
}

// Keeps the first of each state in `rs` (input order): the exact, slower path, for when another
// registration held a mark on one of them at the same time.
template <class T>
void dedup_by_sorting(std::vector<AsyncResult<T>>& rs) {
  std::vector<std::pair<const StateBase*, std::size_t>> by_state;
  by_state.reserve(rs.size());
  for (std::size_t i = 0; i < rs.size(); ++i) by_state.emplace_back(rs[i].state().get(), i);
  std::sort(by_state.begin(), by_state.end());
  std::vector<bool> keep(rs.size(), false);
  for (std::size_t i = 0; i < by_state.size(); ++i)
    if (i == 0 || by_state[i].first != by_state[i - 1].first) keep[by_state[i].second] = true;
  std::size_t out = 0;
  for (std::size_t i = 0; i < rs.size(); ++i)
    if (keep[i]) rs[out++] = std::move(rs[i]);
  rs.resize(out);
}

// The results of one call, de-duplicated, with a CompletionQueue registered on the pending ones.
//
// Cost: it runs over thousands of results, most of them usually complete, so it touches each
// state twice and allocates three arrays, nothing per result. De-duplication marks each state
// with this registration's number (a compare-and-swap, released again in the second pass)
// instead of building a hash set; only when another registration marked one of the same
// results at the same moment does it fall back to sorting.
template <class T>
class Registration {
 public:
  template <class Range>
  explicit Registration(const Range& results) : q_(std::make_shared<CompletionQueue>()) {
    if constexpr (std::ranges::sized_range<const Range>) all_.reserve(std::ranges::size(results));
    const std::uint64_t mine = next_dedup_mark();
    bool contended = false;
    try {
      for (const auto& r : results) {
        if (!r.valid()) throw Error("mproc: as_completed/wait given an empty AsyncResult");
        std::uint64_t seen = 0;
        if (r.state()->dedup_mark().compare_exchange_strong(seen, mine)) {
          all_.push_back(r);
        } else if (seen != mine) {  // another registration's mark: cannot tell here
          contended = true;
          all_.push_back(r);
        }  // else: listed twice
      }
    } catch (...) {
      release_marks(mine);
      throw;
    }
    if (contended) dedup_by_sorting(all_);
    q_->reserve(all_.size());
    // Complete already: counted now, in input order, a batch per lock. Otherwise its completion
    // tells q_.
    constexpr std::size_t kBatch = 64;
    StateBase* complete[kBatch];
    std::size_t batched = 0;
    try {
      for (auto& r : all_) {
        StateBase& s = *r.state();
        std::uint64_t expected = mine;
        s.dedup_mark().compare_exchange_strong(expected, 0);
        s.check_waitable();
        if (s.ready() || !s.add_hook(q_)) {
          complete[batched++] = &s;
          if (batched == kBatch) q_->on_complete(complete, std::exchange(batched, 0));
        }
      }
    } catch (...) {
      q_->on_complete(complete, batched);
      release_marks(mine);
      throw;
    }
    q_->on_complete(complete, batched);
  }
  Registration(const Registration&) = delete;
  Registration& operator=(const Registration&) = delete;
  // A complete result told its hooks and dropped them under its lock before ready() could be
  // seen: only the unfinished ones need unhooking.
  ~Registration() {
    for (auto& r : all_)
      if (!r.ready()) r.state()->remove_hook(q_.get());
  }

  // The result of a state this registration covers: the state's own handle, no lookup.
  AsyncResult<T> handle(StateBase* s) const {
    auto typed = std::static_pointer_cast<ResultState<T>>(s->self_.lock());
    if (!typed) throw Error("mproc: as_completed lost track of a result");
    return AsyncResult<T>(std::move(typed));
  }

  std::vector<AsyncResult<T>> all_;
  std::shared_ptr<CompletionQueue> q_;

 private:
  void release_marks(std::uint64_t mine) noexcept {
    for (auto& r : all_) {
      std::uint64_t expected = mine;
      r.state()->dedup_mark().compare_exchange_strong(expected, 0);
    }
  }
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
    const std::size_t n = reg_->all_.size();
    if (yielded_ == n) return false;
    auto& q = *reg_->q_;
    if (yielded_ == seen_) {  // take every completion so far under one lock, yield them without
      std::unique_lock lock(q.mu_);
      const auto more = [&] { return q.count_ > yielded_; };
      if (!deadline_) {
        q.cv_.wait(lock, more);
      } else if (!q.cv_.wait_until(lock, *deadline_, more)) {
        throw TimeoutError("as_completed: " + std::to_string(n - q.count_) + " of " +
                           std::to_string(n) + " results unfinished at the timeout");
      }
      seen_ = q.count_;
    }
    current_ = reg_->handle(q.done_[yielded_++]);
    return true;
  }

  using StateBase = detail::StateBase;
  std::unique_ptr<detail::Registration<T>> reg_;
  std::optional<std::chrono::steady_clock::time_point> deadline_;
  std::size_t yielded_ = 0;
  std::size_t seen_ = 0;  // completions known without taking the lock again
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
