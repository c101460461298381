#include "mproc/pool/detail/thread_engine.hpp"

#include <unistd.h>

#include <string>

#include "mproc/errors.hpp"
#include "mproc/pool/detail/stats_exchange.hpp"
#include "mproc/process_info.hpp"

namespace mproc::detail {

ThreadEngine::ThreadEngine(std::size_t threads) : runner_(std::make_shared<CallbackRunner>()) {
  if (threads == 0) threads = cpu_count();
  rows_.resize(threads);
  counts_.workers.started = threads;
  threads_.reserve(threads);
  for (std::size_t i = 0; i < threads; ++i) threads_.emplace_back([this, i] { loop(i); });
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
    counts_.failed_by(TaskFailure::kCancelled, dropped.size());
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
    counts_.failed_by(TaskFailure::kAborted, dropped.size());
  }
  const auto why =
      std::make_exception_ptr(PoolStateError("the pool was terminated before this task ran"));
  for (auto& j : dropped) j->cancel(why);
  state_.done_cv.notify_all();
  join();
}

PoolStats ThreadEngine::stats() const {
  if (!owner_.here()) throw PoolStateError(not_owner_message("thread pool", owner_.pid()));
  EngineSnapshot s;
  PoolStats& st = s.stats;
  {
    std::lock_guard lock(state_.mu);
    const auto now = Clock::now();
    st.processes = threads_.size();
    counts_.copy_to(st);
    st.tasks.queued = queue_.size();
    st.tasks.running = running_;
    // After join() the threads are gone: no rows, as for a joined Pool.
    const std::size_t live = stop_ ? 0 : rows_.size();
    st.workers.reserve(live);
    for (std::size_t i = 0; i < live; ++i) {
      const ThreadRow& r = rows_[i];
      PoolStats::Worker w;
      w.pid = r.tid;
      w.index = i + 1;
      w.name = "Thread-" + std::to_string(i + 1);
      w.tasks_done = r.done;
      if (r.busy) w.current_task_age = now - r.since;
      st.workers.push_back(std::move(w));
    }
    s.run_times = counts_.run_times.samples();
  }
  return finish_snapshot(std::move(s), /*read_rss=*/false);
}

void ThreadEngine::loop(std::size_t index) {
  std::unique_lock lock(state_.mu);
  ThreadRow& row = rows_[index];
  row.tid = ::gettid();
  for (;;) {
    work_cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
    if (queue_.empty()) return;
    auto job = std::move(queue_.front());
    queue_.pop_front();
    ++running_;
    const auto start = Clock::now();
    row.busy = true;
    row.since = start;
    lock.unlock();
    const bool ok = job->run();
    job.reset();
    const auto end = Clock::now();
    lock.lock();
    --running_;
    row.busy = false;
    ++row.done;
    counts_.answered(ok, static_cast<std::uint64_t>((end - start).count()));
    if (running_ == 0 && queue_.empty()) state_.done_cv.notify_all();
  }
}

}  // namespace mproc::detail
