#include "mproc/pool/detail/thread_engine.hpp"

#include "mproc/errors.hpp"
#include "mproc/process_info.hpp"

namespace mproc::detail {

ThreadEngine::ThreadEngine(std::size_t threads) : runner_(std::make_shared<CallbackRunner>()) {
  if (threads == 0) threads = cpu_count();
  threads_.reserve(threads);
  for (std::size_t i = 0; i < threads; ++i) threads_.emplace_back([this] { loop(); });
}

ThreadEngine::~ThreadEngine() {
  if (!owner_.here()) {  // reached only if a fork child drops the last handle another way
    for (auto& t : threads_) abandon(t);
    return;
  }
  terminate();
  runner_->drain();
}

void ThreadEngine::submit(std::vector<std::unique_ptr<ChunkJob>>& jobs) {
  if (!owner_.here()) throw PoolStateError(not_owner_message("thread pool", owner_.pid()));
  {
    std::lock_guard lock(state_.mu);
    state_.check_open_locked();
    for (auto& j : jobs) queue_.emplace_back(static_cast<ThreadJob*>(j.release()));
  }
  jobs.clear();
  work_cv_.notify_all();
}

void ThreadEngine::submit(std::unique_ptr<ThreadJob> job) {
  if (!owner_.here()) throw PoolStateError(not_owner_message("thread pool", owner_.pid()));
  {
    std::lock_guard lock(state_.mu);
    state_.check_open_locked();
    queue_.push_back(std::move(job));
  }
  work_cv_.notify_one();
}

void ThreadEngine::cancel_queued() {
  if (!owner_.here()) throw PoolStateError(not_owner_message("thread pool", owner_.pid()));
  std::deque<std::unique_ptr<ThreadJob>> dropped;
  {
    std::lock_guard lock(state_.mu);
    dropped.swap(queue_);
  }
  const auto why = std::make_exception_ptr(CancelledError("the task was cancelled by shutdown()"));
  for (auto& j : dropped) j->cancel(why);
  dropped.clear();
  std::lock_guard lock(state_.mu);
  if (running_ == 0) state_.done_cv.notify_all();
}

void ThreadEngine::close() {
  if (!owner_.here()) throw PoolStateError(not_owner_message("thread pool", owner_.pid()));
  state_.close();
}

bool ThreadEngine::closed() const {
  return state_.closed();
}

bool ThreadEngine::terminated() const {
  return state_.terminated();
}

void ThreadEngine::join() {
  if (!owner_.here()) throw PoolStateError(not_owner_message("thread pool", owner_.pid()));
  {
    std::unique_lock lock(state_.mu);
    state_.require_closed_locked("ThreadPool");
    state_.done_cv.wait(lock, [&] { return queue_.empty() && running_ == 0; });
    stop_ = true;
  }
  work_cv_.notify_all();
  {
    std::lock_guard lock(join_mu_);
    for (auto& t : threads_) {
      if (t.joinable()) t.join();
    }
  }
  runner_->drain();
}

void ThreadEngine::terminate() {
  if (!owner_.here()) throw PoolStateError(not_owner_message("thread pool", owner_.pid()));
  std::deque<std::unique_ptr<ThreadJob>> dropped;
  {
    std::lock_guard lock(state_.mu);
    state_.terminate_locked();
    dropped.swap(queue_);
  }
  const auto why =
      std::make_exception_ptr(PoolStateError("the pool was terminated before this task ran"));
  for (auto& j : dropped) j->cancel(why);
  state_.done_cv.notify_all();
  join();
}

void ThreadEngine::loop() {
  std::unique_lock lock(state_.mu);
  for (;;) {
    work_cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
    if (queue_.empty()) return;
    auto job = std::move(queue_.front());
    queue_.pop_front();
    ++running_;
    lock.unlock();
    job->run();
    job.reset();
    lock.lock();
    --running_;
    if (running_ == 0 && queue_.empty()) state_.done_cv.notify_all();
  }
}

}  // namespace mproc::detail
