// Coordinator::Impl, its tasks: dispatch to the workers' pipes (dispatch_policy.hpp), writing
// and reading (worker_link.hpp), replies, time limits and cancellation. This is the per-task
// path: no allocation or virtual call per task beyond the Task's own callbacks.
#include <signal.h>

#include "coordinator_impl.hpp"
#include "mproc/logging.hpp"
#include "mproc/pool/detail/dispatch_policy.hpp"
#include "mproc/serialize/detail/exception_wire.hpp"

namespace mproc::detail {

void Coordinator::Impl::cancel_queued() {
  asio::post(io_, [this] {
    {
      std::lock_guard lock(state_.mu);
      for (auto& t : inbox_) pending_.push_back(std::move(t));
      inbox_.clear();
    }
    const auto cancelled =
        std::make_exception_ptr(CancelledError("the task was cancelled by shutdown()"));
    std::deque<std::unique_ptr<Task>> queued;
    queued.swap(pending_);
    for (auto& t : queued) fail_task(std::move(t), cancelled, TaskFailure::kCancelled);
    // Handed to a worker but not started: all but a sent head (cancel_one kills a running one).
    std::vector<std::uint64_t> ids;
    for (auto& w : workers_) {
      const auto& held = w->link.held();
      for (std::size_t i = 0; i < held.size(); ++i) {
        if (i == 0 && !w->link.unsent(0)) continue;
        ids.push_back(held[i]->id);
      }
    }
    for (std::uint64_t id : ids) cancel_one(id);
    dispatch();
  });
}

// ---- dispatch -------------------------------------------------------------------------------

void Coordinator::Impl::dispatch() {
  dispatch_tasks();
  // What is idle now may take a blocking call directly (coordinator_direct.cpp).
  lend_idle_workers();
}

void Coordinator::Impl::dispatch_tasks() {
  {
    std::lock_guard lock(state_.mu);
    wake_pending_ = false;
    for (auto& t : inbox_) pending_.push_back(std::move(t));
    inbox_.clear();
  }
  if (broken_) {
    fail_everything(broken_);
    return;
  }
  if (pending_.empty() || shutting_down_) return;
  reclaim_lanes();  // a worker lent to a caller takes queued tasks once it is given back
  const std::size_t maxtasks = opts_.maxtasksperchild;
  auto capacity_of = [&](const Worker& w) {
    const bool accepts = w.life.takes_tasks() && !w.fault && !w.timed_out && !w.cancelled_head &&
                         !(w.lane && lane_lent(*w.lane));
    return capacity({accepts, w.average_ns, w.link.held_count(), w.assigned}, pool_average_ns_,
                    maxtasks);
  };
  std::vector<WorkerPtr> touched;
  bool retired = false;  // successors are started after the loop: spawning grows workers_
  for (bool progress = true; progress && !pending_.empty();) {
    progress = false;
    std::size_t with_room = 0;
    for (auto& w : workers_) with_room += capacity_of(*w) > 0 ? 1 : 0;
    if (with_room == 0) break;
    const std::size_t share = fair_share(pending_.size(), with_room);
    for (auto& w : workers_) {
      const std::size_t take = tasks_to_take(capacity_of(*w), share, pending_.size());
      if (take == 0) continue;
      for (std::size_t i = 0; i < take; ++i) {
        w->link.hold(std::move(pending_.front()));
        pending_.pop_front();
      }
      w->assigned += take;
      progress = true;
      touched.push_back(w);
      // Its successor starts now, while it runs its last tasks (workers_to_start).
      if (quota_spent(w->assigned, maxtasks) && w->life.retire()) retired = true;
      if (pending_.empty()) break;
    }
  }
  for (auto& w : touched) {
    flush(w);
    arm_head_timer(w);
  }
  // Tasks wait and nobody has room: a retiring worker may have stopped counting as draining
  // without a result being read (its last unsent task was cancelled), so look again rather
  // than wait for an event that may not come.
  if (!retired && !touched.empty()) return;
  const std::size_t before = workers_.size();
  replenish();  // a failed start is retried by the respawn timer
  if (workers_.size() != before && !pending_.empty()) dispatch_tasks();  // successors have room
}

// ---- writing and reading --------------------------------------------------------------------

void Coordinator::Impl::flush(const WorkerPtr& w) {
  if (w->link.writing || w->life.socket_ended()) return;
  if (w->link.write_some() != WorkerLink::Write::kBlocked) return;
  w->link.writing = true;
  w->link.socket().async_wait(asio::posix::stream_descriptor::wait_write,
                              [this, w](std::error_code ec) {
                                w->link.writing = false;
                                if (ec || w->life.gone()) return;
                                flush(w);
                                // A head frame too large for one write is sent only now: its
                                // time limit (and its age in stats()) starts here.
                                arm_head_timer(w);
                              });
}

void Coordinator::Impl::start_read(const WorkerPtr& w) {
  if (w->link.reading || w->life.socket_ended()) return;
  w->link.reading = true;
  w->link.socket().async_wait(
      asio::posix::stream_descriptor::wait_read, [this, w](std::error_code ec) {
        w->link.reading = false;
        if (ec || w->life.gone()) return;
        on_readable(w);
        arm_head_timer(w);
        // A retiring worker's last result is in: its successor need not
        // wait for its exit and reap (workers_to_start).
        if (w->life.state() == WorkerLife::State::kRetiring && w->link.held_count() == 0) {
          replenish();
        }
        if (w->life.dead()) {
          finalize(w);
        } else if (w->life.socket_ended()) {
          await_exit(w);
        } else {
          start_read(w);
        }
        dispatch();
      });
}

void Coordinator::Impl::on_readable(const WorkerPtr& w) {
  std::size_t completed = 0;
  for (int rounds = 0; rounds < 64 && !w->life.socket_ended(); ++rounds) {
    const WorkerLink::Fill got = w->link.fill();
    if (got == WorkerLink::Fill::kEnded) {
      w->life.hang_up();
      break;
    }
    if (got == WorkerLink::Fill::kWouldBlock) break;
    completed += parse_frames(w);
    if (w->fault) break;
  }
  task_finished(completed);
}

// Handles every complete frame in the buffer; returns how many tasks completed.
std::size_t Coordinator::Impl::parse_frames(const WorkerPtr& w) {
  std::size_t completed = 0;
  while (!w->fault) {
    std::optional<WorkerLink::Frame> f;
    try {
      f = w->link.next_frame(opts_.max_frame_bytes);
    } catch (const SerializationError&) {
      protocol_fault(w, std::current_exception());
      break;
    }
    if (!f) break;
    const FrameHeader& h = f->header;
    if (h.kind == FrameKind::kRetiring) {
      get_logger()->debug("{} (pid {}) is over its memory cap; replacing it", w->name, w->pid);
      w->announced_retire = true;
      if (w->life.retire()) replenish();
      continue;
    }
    if (!w->init_acked && h.task_id == 0) {
      w->init_acked = true;
      if (h.kind == FrameKind::kResultErr) {
        w->init_failed = true;
        initializer_failed(decode_exception(f->payload));
      }
      continue;
    }
    if (deliver_direct_reply(*w, *f)) continue;  // too large for its caller's mailbox
    const auto& held = w->link.held();
    if (!w->link.head_sent() || held.empty() || held.front()->id != h.task_id) {
      protocol_fault(w, std::make_exception_ptr(SerializationError(
                            "corrupt frame from worker: result for a task it was not given")));
      break;
    }
    std::unique_ptr<Task> t = w->link.take_answered();
    t->run_ns = h.aux;
    ++w->received;
    const double ns = static_cast<double>(h.aux);
    w->average_ns = worker_average_ns(w->average_ns, ns);
    pool_average_ns_ = pool_average_ns(pool_average_ns_, ns);
    if (h.kind == FrameKind::kResultOk) {
      counts_.answered(true, h.aux);
      t->on_ok(f->payload);
    } else {
      if (t->skip_requested) {  // the worker skipped it, as asked: CancelledError
        counts_.failed_by(TaskFailure::kCancelled);
      } else {
        counts_.answered(false, h.aux);
      }
      t->on_error(decode_exception(f->payload));
    }
    ++completed;
  }
  return completed;
}

void Coordinator::Impl::protocol_fault(const WorkerPtr& w, std::exception_ptr e) {
  get_logger()->warn("{} (pid {}) sent a corrupt frame; killing it", w->name, w->pid);
  w->fault = std::move(e);
  kill_worker(w, SIGKILL);
  w->life.hang_up();
}

void Coordinator::Impl::initializer_failed(std::exception_ptr e) {
  get_logger()->error("the pool's initializer failed; the pool is broken");
  if (!broken_) {
    broken_ = e;
    state_.set_broken(e);
  }
  fail_everything(e);
}

// ---- time limits and cancellation -----------------------------------------------------------

// Times the task at the head of the worker's queue: it is running once its frame is written
// (the worker starts it as soon as it has answered the one before). One timer per worker: at
// the soft limit (if any) the task is asked to stop, then at the hard limit (if any) its worker
// is killed.
void Coordinator::Impl::arm_head_timer(const WorkerPtr& w) {
  auto& held = w->link.held();
  if (w->life.gone() || w->timed_out || held.empty() || !w->link.head_sent()) return;
  held.front()->on_start();  // AsyncResult::running()
  const Task& head = *held.front();
  if (head.id == w->timed_head) return;
  w->timed_head = head.id;
  w->head_since = Clock::now();  // once per task that reaches the head (stats: its age)
  const TimeLimits limits = limits_of(head);
  const std::optional<LimitStep> first = next_time_limit(limits, false);
  if (!first) {
    if (w->head_timer) w->head_timer->cancel();
    return;
  }
  if (!w->head_timer) w->head_timer = std::make_unique<asio::steady_timer>(io_);
  await_time_limit(w, head.id, Clock::now(), limits, *first);
}

void Coordinator::Impl::await_time_limit(const WorkerPtr& w, std::uint64_t id,
                                         Clock::time_point started, TimeLimits limits,
                                         LimitStep step) {
  w->head_timer->expires_at(started + step.after);
  w->head_timer->async_wait([this, w, id, started, limits, step](std::error_code ec) {
    if (ec || w->life.gone()) return;
    const auto& held = w->link.held();
    if (held.empty() || held.front()->id != id) return;
    if (step.soft) {
      ask_to_stop(w, id);
      if (const auto next = next_time_limit(limits, true)) {
        await_time_limit(w, id, started, limits, *next);
      }
      return;
    }
    w->timed_out = id;
    stop_worker(w);
  });
}

// The soft limit of task `id`, running on `w`, has passed. The request travels through the
// worker's progress slot, not a signal: the task only has to poll a flag (C++ cannot raise an
// exception in it from outside soundly anyway), and a signal would interrupt the task's system
// calls (EINTR) or meet signal handlers of its own. The worker itself is left alone: if the
// task stops, its worker takes the next one.
void Coordinator::Impl::ask_to_stop(const WorkerPtr& w, std::uint64_t id) {
  if (progress_ && progress_->request_stop(w->slot, id)) {
    get_logger()->debug("task {} on {} (pid {}) passed its soft time limit: asked to stop", id,
                        w->name, w->pid);
  } else {
    get_logger()->debug(
        "task {} on {} (pid {}) passed its soft time limit; it cannot be asked "
        "to stop (the worker has no progress slot)",
        id, w->name, w->pid);
  }
}

void Coordinator::Impl::cancel_one(std::uint64_t id) {
  const auto cancelled = std::make_exception_ptr(CancelledError("the task was cancelled"));
  for (auto it = pending_.begin(); it != pending_.end(); ++it) {
    if ((*it)->id == id) {
      auto t = std::move(*it);
      pending_.erase(it);
      fail_task(std::move(t), cancelled, TaskFailure::kCancelled);
      return;
    }
  }
  for (auto& w : workers_) {
    const auto& held = w->link.held();
    for (std::size_t i = 0; i < held.size(); ++i) {
      if (held[i]->id != id) continue;
      if (w->link.unsent(i)) {
        auto t = w->link.withdraw(i);
        --w->assigned;
        fail_task(std::move(t), cancelled, TaskFailure::kCancelled);
      } else if (i == 0) {
        w->cancelled_head = id;  // running: stop it; the pool replaces the worker
        kill_worker(w, SIGKILL);
      } else {
        // Waiting in the worker's pipe: ask it to skip the task.
        held[i]->skip_requested = true;
        w->link.queue_cancel(id);
        flush(w);
      }
      return;
    }
  }
}

}  // namespace mproc::detail
