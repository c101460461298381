// Coordinator::Impl, what it tells about itself: the counts behind PoolStats, the snapshot a
// stats() call gets from the I/O thread, and the worker hooks (PoolOptions::on_worker_start,
// on_worker_exit), posted to the callback thread.
#include <signal.h>

#include <exception>
#include <utility>

#include "coordinator_impl.hpp"
#include "mproc/logging.hpp"
#include "mproc/pool/detail/death_accounting.hpp"

namespace mproc::detail {
namespace {

// Runs a hook on the callback thread: what it throws is logged, never let through.
template <class Event>
void post_hook(CallbackRunner& runner, const std::function<void(const Event&)>& hook, Event event,
               const char* which) {
  runner.post([hook, event = std::move(event), which]() noexcept {
    try {
      hook(event);
    } catch (const std::exception& e) {
      get_logger()->error("PoolOptions::{} threw for {} (pid {}): {}", which, event.name, event.pid,
                          e.what());
    } catch (...) {
      get_logger()->error("PoolOptions::{} threw a non-std::exception value for {} (pid {})", which,
                          event.name, event.pid);
    }
  });
}

}  // namespace

void Coordinator::Impl::worker_started(Worker& w) {
  if (w.started) return;
  w.started = true;
  ++counts_.workers.started;
  if (opts_.on_worker_start) {
    post_hook(*runner_, opts_.on_worker_start, WorkerStarted{w.pid, w.serial, w.name},
              "on_worker_start");
  }
}

void Coordinator::Impl::worker_ended(Worker& w, const WorkerEnd* end) {
  if (!w.started) return;  // never started (the zygote could not fork it): nothing to end
  w.started = false;       // once
  WorkerExited e;
  e.pid = w.pid;
  e.index = w.serial;
  e.name = w.name;
  e.tasks_done = w.tasks_done();
  if (end) {
    e.cause = exit_cause(*end);
    e.exit_code = exit_code(end->status);
    e.signal = exit_signal(end->status);
  } else {  // abandoned at the shutdown deadline: sent SIGKILL, its exit never seen
    e.cause = terminating_ ? WorkerExitCause::kTerminate : WorkerExitCause::kClose;
    e.exit_code = -1;
    e.signal = SIGKILL;
  }
  counts_.worker_exited(e.cause);
  if (opts_.on_worker_exit)
    post_hook(*runner_, opts_.on_worker_exit, std::move(e), "on_worker_exit");
}

// ---- stats() --------------------------------------------------------------------------------

EngineSnapshot Coordinator::Impl::snapshot() const {
  EngineSnapshot s;
  PoolStats& st = s.stats;
  st.processes = nproc_;
  counts_.copy_to(st);
  {
    std::lock_guard lock(state_.mu);
    st.tasks.queued = inbox_.size();
  }
  st.tasks.queued += pending_.size();
  const auto now = Clock::now();
  st.workers.reserve(workers_.size());
  for (const auto& w : workers_) {
    const std::size_t held = w->link.held_count();
    const bool running = held != 0 && w->link.head_sent();
    st.tasks.running += running ? 1 : 0;
    st.tasks.queued += held - (running ? 1 : 0);
    if (w->pid <= 0 || w->life.exited()) continue;  // as worker_pids(): the live ones
    PoolStats::Worker row;
    row.pid = w->pid;
    row.index = w->serial;
    row.name = w->name;
    row.tasks_done = w->tasks_done();
    if (running && w->timed_head == w->link.held().front()->id) {
      row.current_task_age = now - w->head_since;
    }
    st.workers.push_back(std::move(row));
  }
  s.run_times = counts_.run_times.samples();
  {
    std::lock_guard lock(tally_.mu);
    st.tasks.completed += tally_.completed;
    st.tasks.failed.exception += tally_.exceptions;
    st.tasks.direct = tally_.completed + tally_.exceptions + tally_.lost;
    const auto direct = tally_.run_times.samples();
    s.run_times.insert(s.run_times.end(), direct.begin(), direct.end());
  }
  for (unsigned i = 0; i < nlanes_; ++i) {  // a call in a lent worker is running
    const DirectLane& l = lanes_[i];
    if (lane_lent(l) && l.box && mail_pending(mail_word(*l.box).load())) ++st.tasks.running;
  }
  return s;
}

void Coordinator::Impl::serve_stats() {
  stats_.serve([this] { return snapshot(); });
}

PoolStats Coordinator::Impl::stats() {
  EngineSnapshot s = stats_.request([this] { asio::post(io_, [this] { serve_stats(); }); });
  return finish_snapshot(std::move(s), /*read_rss=*/true);
}

}  // namespace mproc::detail
