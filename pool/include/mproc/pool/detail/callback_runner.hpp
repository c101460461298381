// mproc/pool/detail/callback_runner.hpp — the one thread that runs AsyncResult callbacks.
//
// CPython runs every callback on its single result-handler thread, so one slow callback delays
// every other result. mproc's coordinator thread never runs user code: completion callbacks are
// queued here and run in completion order on this thread, started on first use.
//
// Thread safety: post() and drain() may be called from any thread.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

namespace mproc::detail {

class CallbackRunner {
 public:
  CallbackRunner() = default;
  CallbackRunner(const CallbackRunner&) = delete;
  CallbackRunner& operator=(const CallbackRunner&) = delete;
  ~CallbackRunner();

  // Queues a job; a job should not throw (the wrappers built by AsyncResult catch and log;
  // anything else is logged too). Never throws: when the thread cannot be started or the
  // queue cannot grow, the job runs at once on the calling thread.
  void post(std::function<void()> job) noexcept;
  // Blocks until every job posted so far has run.
  void drain();

 private:
  void loop();

  std::mutex mu_;
  std::condition_variable cv_;
  std::condition_variable idle_cv_;
  std::deque<std::function<void()>> jobs_;
  bool busy_ = false;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace mproc::detail
