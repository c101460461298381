#include "mproc/pool/detail/callback_runner.hpp"

#include <string>

#include "mproc/errors.hpp"
#include "mproc/logging.hpp"
#include "mproc/pool/async_result.hpp"
#include "mproc/runtime/detail/before_fork.hpp"

namespace mproc::detail {

void log_callback_failure(const char* which) noexcept {
  try {
    throw;
  } catch (const std::exception& e) {
    // A callback that let a task's exception through (get() in a done callback, a rethrowing
    // error_callback) logs where the task threw it.
    std::string traceback;
    try {
      traceback = remote_traceback(e);
    } catch (...) {  // no memory for the text: the line without it
    }
    if (traceback.empty()) {
      get_logger()->error("an AsyncResult {} threw: {}", which, e.what());
    } else {
      get_logger()->error("an AsyncResult {} threw: {}\nRemote traceback (innermost first):\n{}",
                          which, e.what(), traceback);
    }
  } catch (...) {
    get_logger()->error("an AsyncResult {} threw a non-std::exception value", which);
  }
}

CallbackRunner::~CallbackRunner() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) {
    if (thread_.get_id() == std::this_thread::get_id()) {
      thread_.detach();  // the last pool handle died inside a callback
    } else {
      thread_.join();
    }
  }
}

void CallbackRunner::post(std::function<void()> job) noexcept {
  try {
    std::lock_guard lock(mu_);
    if (!thread_.joinable()) {
      thread_ = std::thread([this] {
        block_sigint_in_this_thread();
        loop();
      });
    }
    jobs_.push_back(std::move(job));  // strong guarantee: `job` is intact if this throws
  } catch (...) {
    // No thread (EAGAIN) or no memory: run it here rather than lose it, which would also hang
    // drain(). It runs on the caller's thread, out of order with queued ones.
    try {
      job();
    } catch (...) {
      log_callback_failure("callback");
    }
    return;
  }
  cv_.notify_one();
}

void CallbackRunner::drain() {
  std::unique_lock lock(mu_);
  if (thread_.joinable() && thread_.get_id() == std::this_thread::get_id()) return;
  idle_cv_.wait(lock, [&] { return jobs_.empty() && !busy_; });
}

void CallbackRunner::loop() {
  std::unique_lock lock(mu_);
  for (;;) {
    cv_.wait(lock, [&] { return stop_ || !jobs_.empty(); });
    if (jobs_.empty()) return;  // stop_ with nothing left
    auto job = std::move(jobs_.front());
    jobs_.pop_front();
    busy_ = true;
    lock.unlock();
    try {
      job();
    } catch (...) {  // jobs catch their own; whatever slips through must not end the thread
      log_callback_failure("callback");
    }
    job = nullptr;
    lock.lock();
    busy_ = false;
    if (jobs_.empty()) idle_cv_.notify_all();
  }
}

}  // namespace mproc::detail
