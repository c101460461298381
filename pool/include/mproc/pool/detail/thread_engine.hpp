// mproc/pool/detail/thread_engine.hpp — ThreadPool's workers: N threads over one job queue.
// Internal (namespace detail).
//
// Thread safety: submit/close/join/terminate may be called from any thread.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "mproc/pool/detail/callback_runner.hpp"
#include "mproc/pool/detail/engine.hpp"
#include "mproc/pool/detail/engine_state.hpp"
#include "mproc/pool/detail/pool_counters.hpp"
#include "mproc/pool/pool_stats.hpp"
#include "mproc/runtime/detail/owner.hpp"

namespace mproc::detail {

// A closure run by a pool thread; cancel() is called instead when the pool is terminated first.
class ThreadJob : public ChunkJob {
 public:
  // Returns false when the task threw (for stats(); the result has the exception).
  virtual bool run() noexcept = 0;
  virtual void cancel(std::exception_ptr why) noexcept = 0;
};

class ThreadEngine {
 public:
  explicit ThreadEngine(std::size_t threads);
  ThreadEngine(const ThreadEngine&) = delete;
  ThreadEngine& operator=(const ThreadEngine&) = delete;
  ~ThreadEngine();

  std::size_t processes() const noexcept { return threads_.size(); }
  const std::shared_ptr<CallbackRunner>& callback_runner() const noexcept { return runner_; }

  // Throws PoolStateError if closed or terminated. Every job must be a ThreadJob.
  void submit(std::vector<std::unique_ptr<ChunkJob>>& jobs);
  void submit(std::unique_ptr<ThreadJob> job);
  // shutdown(cancel_futures=true): queued jobs are cancelled with CancelledError.
  void cancel_queued();
  void close();
  void join();
  // Cancels queued jobs (PoolStateError); running ones finish (threads cannot be killed).
  void terminate();
  bool closed() const;
  bool terminated() const;
  // Under the lock: the queue, the threads, the counts (no I/O). Throws std::bad_alloc.
  PoolStats stats() const;

 private:
  using Clock = std::chrono::steady_clock;
  // What stats() shows of one thread.
  struct ThreadRow {
    pid_t tid = 0;
    std::uint64_t done = 0;
    bool busy = false;
    Clock::time_point since{};  // when its current task started
  };

  void loop(std::size_t index);

  EngineState state_;  // its mutex also guards the fields below
  std::condition_variable work_cv_;
  std::deque<std::unique_ptr<ThreadJob>> queue_;
  std::size_t running_ = 0;
  bool stop_ = false;
  std::vector<ThreadRow> rows_;
  PoolCounters counts_;
  std::mutex join_mu_;
  std::vector<std::thread> threads_;
  std::shared_ptr<CallbackRunner> runner_;
  OwnerPid owner_;
};

}  // namespace mproc::detail
