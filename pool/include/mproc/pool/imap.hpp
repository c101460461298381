// mproc/pool/imap.hpp — the lazy result range returned by Pool::imap and Pool::imap_unordered.
//
//   for (int y : pool.imap(square, std::views::iota(0, 100'000'000))) { if (done(y)) break; }
//
// Inputs are read and submitted as results are consumed, with a bounded number of chunks in
// flight, so an input of any length runs in constant memory (CPython's imap reads its whole input
// up front). imap yields in input order; imap_unordered in completion order. A chunk whose task
// failed throws its exception once, when the iteration reaches it; iteration may then go on.
// An input range that throws part-way (CPython's test_imap_handle_iterable_exception): the
// results of the inputs read before it are yielded first, then its exception is thrown once,
// and the iteration ends there.
//
// buffersize (Python 3.14's imap buffersize): at most that many chunks are submitted and not yet
// consumed, so the source is never read more than buffersize * chunksize inputs ahead of the
// consumer. 0: a window of a few hundred chunks per worker, refilled in batches.
//
// Thread safety: one ImapRange is consumed by one thread. Stopping early is fine: chunks
// already submitted still run, and the pool's join() waits for them.
#pragma once

#include <cstddef>
#include <exception>
#include <functional>
#include <iterator>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "mproc/pool/detail/tasks.hpp"

namespace mproc {

namespace detail {

// Consumer-side engine: pulls from the source, submits chunks, hands out results. Shared by
// Pool (jobs are encoded frames) and ThreadPool (jobs are closures).
template <class R>
class ImapDriver {
 public:
  using Job = std::unique_ptr<ChunkJob>;
  // Returns the next chunk's job (read from the source), or nullptr when the source is done.
  using MakeChunk = std::function<Job(std::size_t chunk_index)>;
  // Hands a batch of jobs to the pool (one wake-up per batch).
  using Submit = std::function<void(std::vector<Job>&)>;

  // buffersize > 0 replaces max_inflight with an exact bound, refilled one chunk at a time.
  ImapDriver(Submit submit, std::shared_ptr<ImapState<R>> s, MakeChunk make, bool ordered,
             std::size_t max_inflight, std::shared_ptr<ProgressBar> bar = nullptr,
             std::size_t buffersize = 0)
      : progress_(std::move(bar)),
        submit_(std::move(submit)),
        state_(std::move(s)),
        make_(std::move(make)),
        ordered_(ordered),
        max_inflight_(buffersize > 0 ? buffersize : max_inflight),
        refill_at_(buffersize > 0 ? buffersize - 1 : max_inflight_ / 2) {}

  // Advances to the next value; false at the end. Rethrows a failed chunk's exception.
  bool next() {
    for (;;) {
      if (pos_ < buf_.size()) {
        current_ = std::move(buf_[pos_++]);
        if (progress_) {
          progress_->add(1);
          progress_->draw();
        }
        return true;
      }
      top_up();
      if (inflight_ == 0) {
        if (source_error_) {  // after every result read before it; then the end
          auto e = std::exchange(source_error_, nullptr);
          std::rethrow_exception(e);
        }
        if (progress_) progress_->finish();
        return false;
      }
      auto [chunk, outcome] = state_->take(ordered_ ? next_yield_ : ImapState<R>::npos);
      (void)chunk;
      --inflight_;
      ++next_yield_;
      buf_.clear();
      pos_ = 0;
      if (auto* e = std::get_if<std::exception_ptr>(&outcome)) std::rethrow_exception(*e);
      buf_ = std::move(std::get<std::vector<R>>(outcome));
    }
  }

  R& current() { return current_; }

 private:
  // Keeps the pipeline between half full and full, submitting in batches (one wake-up each).
  void top_up() {
    if (exhausted_ || inflight_ > refill_at_) return;
    std::vector<Job> batch;
    while (!exhausted_ && inflight_ + batch.size() < max_inflight_) {
      Job t;
      try {
        t = make_(next_chunk_);
      } catch (...) {
        // The source threw: what was read before it still runs and is yielded, then this.
        source_error_ = std::current_exception();
        exhausted_ = true;
        break;
      }
      if (!t) {
        exhausted_ = true;
        break;
      }
      ++next_chunk_;
      batch.push_back(std::move(t));
    }
    inflight_ += batch.size();
    if (!batch.empty()) submit_(batch);
  }

  std::shared_ptr<ProgressBar> progress_;
  Submit submit_;
  std::shared_ptr<ImapState<R>> state_;
  MakeChunk make_;
  bool ordered_;
  std::size_t max_inflight_;
  std::size_t refill_at_;  // top up when no more than this many chunks are in flight
  std::exception_ptr source_error_;
  std::size_t inflight_ = 0;
  std::size_t next_chunk_ = 0;
  std::size_t next_yield_ = 0;
  bool exhausted_ = false;
  std::vector<R> buf_;
  std::size_t pos_ = 0;
  R current_{};
};

}  // namespace detail

template <class R>
class ImapRange {
 public:
  class iterator {
   public:
    using iterator_category = std::input_iterator_tag;
    using value_type = R;
    using difference_type = std::ptrdiff_t;
    using reference = R&;
    using pointer = R*;

    iterator() = default;
    explicit iterator(detail::ImapDriver<R>* d) : d_(d) {
      if (!d_->next()) d_ = nullptr;
    }
    reference operator*() const { return d_->current(); }
    pointer operator->() const { return &d_->current(); }
    iterator& operator++() {
      if (!d_->next()) d_ = nullptr;
      return *this;
    }
    void operator++(int) { ++*this; }
    bool operator==(std::default_sentinel_t) const noexcept { return d_ == nullptr; }

   private:
    detail::ImapDriver<R>* d_ = nullptr;
  };

  explicit ImapRange(std::unique_ptr<detail::ImapDriver<R>> d) : d_(std::move(d)) {}

  // Starts the iteration (submits the first chunks and waits for the first value).
  iterator begin() { return iterator(d_.get()); }
  std::default_sentinel_t end() const noexcept { return {}; }

  // Python's it.next(): the next value, or nullopt at the end.
  std::optional<R> next() {
    if (!d_->next()) return std::nullopt;
    return std::move(d_->current());
  }

 private:
  std::unique_ptr<detail::ImapDriver<R>> d_;
};

}  // namespace mproc
