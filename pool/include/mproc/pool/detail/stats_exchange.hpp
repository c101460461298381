// mproc/pool/detail/stats_exchange.hpp — how stats() gets a snapshot from an engine whose state
// belongs to one event thread (the process pool's I/O thread, the MPI engine's), without a lock
// on that thread's per-task path. Internal (namespace detail).
//
//   caller:        StatsExchange::request(wake)  registers, wakes the owner once, waits
//   owner thread:  serve(make)                   answers every waiting caller with make()
//   owner thread:  finish(last)                  at its end: answers everyone, now and later
//
// The caller's part that costs (percentiles, reading each worker's RSS) runs on the caller's
// thread after the answer: finish_snapshot().
//
// Thread safety: request() from any thread; serve() and finish() from the owner thread only.
// Throws: request() lets through what copying a snapshot throws (std::bad_alloc) and what
// `wake` throws; serve() and finish() never throw.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <utility>
#include <vector>

#include "mproc/pool/pool_stats.hpp"

namespace mproc::detail {

// What the owner thread copies out: everything but the run-time percentiles and RSS.
struct EngineSnapshot {
  PoolStats stats;
  std::vector<std::uint64_t> run_times;  // RunTimeWindow::samples()
};

class StatsExchange {
 public:
  // Waits until the owner thread answers (or has finished). `wake` must make the owner call
  // serve() soon; it is called without this object's lock, at most once per request, and not
  // at all once the owner has finished.
  template <class Wake>
  EngineSnapshot request(Wake&& wake) {
    std::unique_lock lock(mu_);
    if (finished_) return latest_;
    const std::uint64_t ticket = ++asked_;
    wanted_.store(true, std::memory_order_release);
    lock.unlock();
    wake();
    lock.lock();
    cv_.wait(lock, [&] { return answered_ >= ticket || finished_; });
    return latest_;
  }

  // Owner thread: whether a caller waits (one atomic load).
  bool wanted() const noexcept { return wanted_.load(std::memory_order_acquire); }

  // Owner thread: answers every caller that asked before `make` ran, and loops for those that
  // asked meanwhile (a snapshot is never older than the request it answers). If `make` throws
  // (no memory), they get the previous snapshot: nothing escapes into the owner's loop.
  template <class Make>
  void serve(Make&& make) noexcept {
    if (!wanted()) return;
    std::unique_lock lock(mu_);
    while (answered_ < asked_) {
      const std::uint64_t covered = asked_;
      lock.unlock();
      bool made = false;
      EngineSnapshot s;
      try {
        s = make();
        made = true;
      } catch (...) {
      }
      lock.lock();
      if (made) latest_ = std::move(s);
      answered_ = covered;
    }
    wanted_.store(false, std::memory_order_release);
    lock.unlock();
    cv_.notify_all();
  }

  // Owner thread, as it ends: `last` answers every caller from now on. Never throws.
  void finish(EngineSnapshot last) noexcept {
    {
      std::lock_guard lock(mu_);
      latest_ = std::move(last);
      finished_ = true;
      answered_ = asked_;
      wanted_.store(false, std::memory_order_release);
    }
    cv_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::atomic<bool> wanted_{false};
  std::uint64_t asked_ = 0;
  std::uint64_t answered_ = 0;
  bool finished_ = false;
  EngineSnapshot latest_;
};

// The snapshot made whole on the caller's thread: run-time percentiles, and, when `read_rss`,
// each worker's resident set size from /proc/<pid>/statm (0 when the worker is gone).
PoolStats finish_snapshot(EngineSnapshot s, bool read_rss);

// A process's resident set size in bytes (/proc/<pid>/statm), 0 when it cannot be read.
std::size_t resident_bytes(pid_t pid) noexcept;

}  // namespace mproc::detail
