// Coordinator::Impl, its workers: starting them (and retrying), the zygote's reports, signals,
// and a worker's death — which of its tasks fail, which run again (death_accounting.hpp).
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <algorithm>

#include "coordinator_impl.hpp"
#include "mproc/logging.hpp"
#include "mproc/pool/detail/death_accounting.hpp"
#include "mproc/pool/detail/dispatch_policy.hpp"

namespace mproc::detail {

void Coordinator::Impl::publish_pids() {
  std::vector<pid_t> pids;
  for (auto& w : workers_) {
    if (w->pid > 0 && !w->life.exited()) pids.push_back(w->pid);
  }
  std::lock_guard lock(pids_mu_);
  live_pids_ = std::move(pids);
}

// Asks the zygote for a worker. Throws when its socket cannot be made (EMFILE, ENFILE).
void Coordinator::Impl::start_worker() {
  auto [mine, theirs] = make_socketpair(SOCK_STREAM);
  set_nonblocking(mine.get(), true);
  const std::uint64_t serial = ++spawned_;
  auto w = std::make_shared<Worker>(io_, mine.get(), serial);
  mine.release();  // w->link owns it now
  w->name = name_prefix_ + std::to_string(serial);
  if (!opts_.init_frame().empty()) {
    w->link.set_preamble(opts_.init_frame());
    w->init_acked = false;
  }
  w->slot = progress_->acquire();
  w->link.set_payloads(progress_->payloads(w->slot));
  try {
    zygote_.request_spawn(theirs.get(), static_cast<unsigned>(serial), w->slot);
  } catch (const std::exception& e) {
    get_logger()->error("cannot reach the zygote to start a worker: {}", e.what());
    progress_->release(w->slot);
    return;  // the zygote watcher reports the breakage
  }
  workers_.push_back(w);
  start_read(w);
  if (!w->init_acked) flush(w);
}

// As start_worker, for a replacement: a failure schedules another attempt (or breaks the
// pool, see SpawnBackoff) instead of throwing. Returns false when it failed.
bool Coordinator::Impl::start_replacement_worker() noexcept {
  try {
    start_worker();
    return true;
  } catch (const std::exception& e) {
    spawn_failed(std::string("cannot start a worker: ") + e.what());
  } catch (...) {
    spawn_failed("cannot start a worker");
  }
  return false;
}

// Starts workers until nproc_ of them take tasks (within workers_to_start's bound on successors),
// unless a failed start is being retried. Called when a worker retires, when a retiring worker's
// last result is read and when a worker is finalized.
void Coordinator::Impl::replenish() {
  if (zygote_lost_ || broken_ || shutting_down_ || respawn_timer_armed_) return;
  for (std::size_t n = workers_to_start(succession(), nproc_); n > 0; --n) {
    if (!start_replacement_worker()) return;
  }
}

void Coordinator::Impl::spawn_failed(std::string why) noexcept {
  try {
    const auto now = Clock::now();
    if (spawn_backoff_.failed(now, std::move(why))) {
      get_logger()->warn("{} (attempt {}); trying again", spawn_backoff_.last_error(),
                         spawn_backoff_.failures());
    }
    if (give_up_spawning(now) || respawn_timer_armed_) return;
    if (!respawn_timer_) respawn_timer_ = std::make_unique<asio::steady_timer>(io_);
    respawn_timer_->expires_after(spawn_backoff_.next_delay());
    respawn_timer_armed_ = true;
    respawn_timer_->async_wait([this](std::error_code ec) {
      respawn_timer_armed_ = false;
      if (ec || shutting_down_) return;
      if (give_up_spawning(Clock::now())) return;
      replenish();
      dispatch();
    });
  } catch (...) {
    // No memory for even the timer: break the pool rather than lose its work in silence.
    try {
      break_pool("the pool is broken: a worker could not be started");
    } catch (...) {
    }
  }
}

// From now on every task fails with a PoolStateError saying `msg`.
void Coordinator::Impl::break_pool(const std::string& msg) {
  if (broken_) return;
  get_logger()->error("{}", msg);
  broken_ = std::make_exception_ptr(PoolStateError(msg));
  state_.set_broken(broken_);
  fail_everything(broken_);
}

// No worker alive, tasks waiting and every start failing for SpawnBackoff::kGiveUp: break the
// pool.
bool Coordinator::Impl::give_up_spawning(Clock::time_point now) {
  if (broken_) return true;
  if (!spawn_backoff_.exhausted(now)) return false;
  for (auto& w : workers_) {
    if (!w->life.socket_ended()) return false;  // someone may still run the tasks
  }
  bool waiting = !pending_.empty();
  {
    std::lock_guard lock(state_.mu);
    waiting = waiting || !inbox_.empty();
  }
  if (!waiting) return false;
  break_pool(spawn_backoff_.give_up_message(now));
  return true;
}

// ---- the zygote's reports -------------------------------------------------------------------

void Coordinator::Impl::watch_zygote() {
  control_->async_wait(asio::posix::stream_descriptor::wait_read, [this](std::error_code ec) {
    if (ec) return;
    try {
      while (auto r = zygote_.receive()) on_zygote_report(std::move(*r));
    } catch (const EOFError&) {
      on_zygote_lost();
      return;
    }
    watch_zygote();
  });
}

WorkerPtr Coordinator::Impl::find_worker(std::uint64_t serial, pid_t pid) {
  for (auto& w : workers_) {
    if ((serial && w->serial == serial) || (pid && w->pid == pid)) return w;
  }
  return nullptr;
}

void Coordinator::Impl::on_zygote_report(Zygote::Report r) {
  using K = Zygote::Report::Kind;
  if (r.kind == K::kSpawned) {
    spawn_backoff_.succeeded();
    if (auto w = find_worker(r.index, 0)) {
      w->pid = r.pid;
      w->pidfd = std::move(r.pidfd);
      if (!w->pidfd) {
        get_logger()->debug("no pidfd for {}: signals go through the zygote", w->name);
      }
      if (w->pending_signal != 0) kill_worker(w, std::exchange(w->pending_signal, 0));
      get_logger()->debug("started {} (pid {})", w->name, w->pid);
      worker_started(*w);
      publish_pids();
      lend_idle_workers();
    }
  } else if (r.kind == K::kSpawnFailed) {
    // Noted before finalize(), whose replenish() then waits for the retry timer.
    spawn_failed(std::string("the zygote cannot start a worker: ") + strerror(r.status));
    if (auto w = find_worker(r.index, 0)) {
      w->status = 0;
      w->life.reaped();
      w->life.hang_up();
      finalize(w);
    }
  } else if (r.kind == K::kExited) {
    auto w = find_worker(0, r.pid);
    if (!w) return;
    w->status = r.status;
    w->life.reaped();
    if (!w->life.socket_ended()) {
      // Results it wrote before dying are still in the socket: take them first. A grandchild
      // that inherited the socket must not keep us waiting for an EOF, so this is the end.
      on_readable(w);
      w->life.hang_up();
    }
    finalize(w);
  }
}

void Coordinator::Impl::on_zygote_lost() {
  if (!shutting_down_) {
    get_logger()->warn("the pool's zygote died; the pool is broken");
    broken_ = std::make_exception_ptr(
        WorkerLostError("the pool's zygote process died; no worker can be started", 0, -1, 0));
    state_.set_broken(broken_, /*replace=*/true);
  }
  // Workers die with the zygote (PDEATHSIG); nobody will report their exits any more.
  for (auto& w : workers_) {
    if (w->pidfd) pidfd_signal(w->pidfd.get(), SIGKILL);
    w->life.reaped();
    w->status = W_EXITCODE(0, SIGKILL);
  }
  zygote_lost_ = true;
  auto ws = workers_;
  for (auto& w : ws) {
    on_readable(w);
    w->life.hang_up();
    finalize(w);
  }
  fail_everything(broken_ ? broken_ : std::make_exception_ptr(PoolStateError("pool stopped")));
  if (shutting_down_ || broken_) maybe_finish_shutdown(true);
}

// ---- signals --------------------------------------------------------------------------------

void Coordinator::Impl::kill_worker(const WorkerPtr& w, int sig) {
  if (w->life.exited()) return;
  if (w->pidfd) {
    pidfd_signal(w->pidfd.get(), sig);
  } else if (w->pid > 0 && !zygote_lost_) {
    // Its pidfd did not fit in our descriptor table: the zygote, its parent, signals it.
    try {
      zygote_.request_kill(w->pid, sig);
    } catch (const std::exception&) {
      // The zygote is gone, and with it the worker (PDEATHSIG).
    }
  } else if (w->pid <= 0) {
    w->pending_signal = sig;  // not started yet: signalled when the zygote reports it
  }
}

// SIGTERM now, SIGKILL after the grace period.
void Coordinator::Impl::stop_worker(const WorkerPtr& w) {
  kill_worker(w, SIGTERM);
  if (!w->kill_timer) w->kill_timer = std::make_unique<asio::steady_timer>(io_);
  w->kill_timer->expires_after(opts_.timeout_grace);
  w->kill_timer->async_wait([this, w](std::error_code ec) {
    if (!ec && !w->life.gone()) kill_worker(w, SIGKILL);
  });
}

void Coordinator::Impl::await_exit(const WorkerPtr& w) {
  if (w->exit_timer) return;
  // EOF came first; the exit report normally follows at once. A worker that closed its socket
  // but lives on is killed.
  w->exit_timer = std::make_unique<asio::steady_timer>(io_, kExitReportWait);
  w->exit_timer->async_wait([this, w](std::error_code ec) {
    if (ec || w->life.gone()) return;
    kill_worker(w, SIGKILL);
  });
}

// ---- death and replacement ------------------------------------------------------------------

void Coordinator::Impl::finalize(const WorkerPtr& w) {
  if (!w->life.bury()) return;  // its socket or its process has not ended yet
  if (w->exit_timer) w->exit_timer->cancel();
  if (w->head_timer) w->head_timer->cancel();
  if (w->kill_timer) w->kill_timer->cancel();
  w->link.close();
  workers_.erase(std::remove(workers_.begin(), workers_.end(), w), workers_.end());
  publish_pids();
  // Its slot is free again once its counters have been read below.
  struct SlotReturn {
    ProgressSlots& slots;
    unsigned slot;
    ~SlotReturn() { slots.release(slot); }  // no allocation: the free list has room for all
  } slot_return{*progress_, w->slot};

  WorkerEnd end;
  end.init_acked = w->init_acked;
  end.protocol_fault = w->fault != nullptr;
  end.status = w->status;
  end.init_failed = w->init_failed;
  end.announced_retire = w->announced_retire;
  end.quota_spent = quota_spent(w->assigned, opts_.maxtasksperchild);
  end.timed_out = w->timed_out != 0;
  end.cancelled = w->cancelled_head != 0;
  if (shutting_down_) {
    end.pool_stop = terminating_ ? WorkerEnd::PoolStop::kTerminate : WorkerEnd::PoolStop::kClose;
  }
  worker_ended(*w, &end);
  if (count_init_death(init_deaths_, end, shutting_down_) && !broken_) {
    const DeadWorker who{w->name, w->pid, w->status};
    initializer_failed(std::make_exception_ptr(WorkerLostError(
        init_death_message(who), w->pid, exit_code(w->status), exit_signal(w->status))));
  }
  settle_lent_call(*w);
  if (w->link.held_count() != 0) {
    settle_held_tasks(*w);
  } else if (idle_death_is_abnormal(w->status, shutting_down_)) {
    get_logger()->warn("{} (pid {}) {} while idle", w->name, w->pid, describe_status(w->status));
  } else {
    get_logger()->debug("{} (pid {}) exited", w->name, w->pid);
  }
  if (broken_) fail_everything(broken_);

  if (shutting_down_) {
    maybe_finish_shutdown(false);
    return;
  }
  // A retiring worker's successor was started when it retired or when its last result was read
  // (if it could be): this start is for a worker that died, or one the bound held back.
  replenish();
  dispatch();
}

// The dead worker's tasks: the ones that ran fail (never run twice), the running one (the
// culprit) is retried or failed, the rest go back to the front of the queue, in order.
void Coordinator::Impl::settle_held_tasks(Worker& w) {
  auto& held = w.link.held();
  WorkerEnd end;
  end.held = held.size();
  end.head_sent = w.link.head_sent();
  end.has_progress = w.slot != ProgressSlots::kNoSlot;
  if (end.has_progress) {
    const auto counts = progress_->counts(w.slot);
    end.started = counts.started;
    end.finished = counts.finished;
  }
  end.received = w.received;
  end.init_acked = w.init_acked;
  end.announced_retire = w.announced_retire;
  end.protocol_fault = w.fault != nullptr;
  const HeldTasks split = split_held_tasks(end);
  const DeadWorker who{w.name, w.pid, w.status};
  const int code = exit_code(w.status);
  const int sig = exit_signal(w.status);

  for (std::size_t i = 0; i < split.ran_unsent; ++i) {
    auto t = std::move(held.front());
    held.pop_front();
    const std::string msg = ran_unsent_message(who, t->id);
    fail_task(std::move(t), std::make_exception_ptr(WorkerLostError(msg, w.pid, code, sig)),
              TaskFailure::kWorkerLost);
  }
  std::unique_ptr<Task> head;
  if (split.culprit) {
    head = std::move(held.front());
    held.pop_front();
  }
  const StopReasons why{w.cancelled_head, w.timed_out, end.protocol_fault};
  for (auto it = held.rbegin(); it != held.rend(); ++it) {
    // A cancel that killed the worker before the task started still cancels it, and so does
    // one the worker was asked to skip (its caller already has CancelledError).
    if (cancelled_before_start((*it)->id, why) || (*it)->skip_requested) {
      fail_task(std::move(*it), std::make_exception_ptr(CancelledError("the task was cancelled")),
                TaskFailure::kCancelled);
      continue;
    }
    pending_.push_front(std::move(*it));
  }
  std::deque<std::unique_ptr<Task>> none;
  w.link.take_all(none);
  if (!head) return;

  const Culprit culprit{head->id, head->crashes + 1};
  switch (culprit_fate(culprit, why, opts_.max_retries, broken_ != nullptr)) {
    case CulpritFate::kCancelled:
      fail_task(std::move(head), std::make_exception_ptr(CancelledError("the task was cancelled")),
                TaskFailure::kCancelled);
      break;
    case CulpritFate::kTimedOut: {
      const auto ms =
          std::chrono::duration_cast<std::chrono::milliseconds>(timeout_of(*head)).count();
      std::string msg = timed_out_message(who, head->id, ms);
      get_logger()->warn("{}", msg);
      fail_task(std::move(head), std::make_exception_ptr(TaskTimeoutError(msg)),
                TaskFailure::kTimeout);
      break;
    }
    case CulpritFate::kProtocolFault:
      fail_task(std::move(head), w.fault, TaskFailure::kWorkerLost);
      break;
    case CulpritFate::kRetry:
      head->crashes = culprit.crashes;
      get_logger()->warn("{} (pid {}) {} while running task {}; retrying it ({} of {})", w.name,
                         w.pid, describe_status(w.status), head->id, head->crashes,
                         opts_.max_retries);
      pending_.push_front(std::move(head));
      break;
    case CulpritFate::kLost: {
      head->crashes = culprit.crashes;
      std::string msg = lost_message(who, culprit);
      get_logger()->warn("{}", msg);
      fail_task(std::move(head), std::make_exception_ptr(WorkerLostError(msg, w.pid, code, sig)),
                TaskFailure::kWorkerLost);
      break;
    }
  }
}

Succession Coordinator::Impl::succession() const {
  Succession s;
  for (auto& w : workers_) {
    if (w->fault) continue;
    if (w->life.takes_tasks()) {
      ++s.taking;
    } else if (w->life.state() == WorkerLife::State::kRetiring && w->link.held_count() != 0) {
      ++s.draining;
    }
  }
  return s;
}

}  // namespace mproc::detail
