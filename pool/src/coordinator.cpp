// The process pool's engine: construction, the callers' side, the I/O thread and shutdown.
// The rest of Coordinator::Impl is in coordinator_workers.cpp and coordinator_tasks.cpp.
#include "coordinator.hpp"

#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <future>

#include "coordinator_impl.hpp"
#include "mproc/logging.hpp"
#include "mproc/process_info.hpp"
#include "mproc/runtime/detail/before_fork.hpp"
#include "mproc/runtime/detail/owner.hpp"
#include "mproc/worker/detail/worker_entry.hpp"

namespace mproc::detail {

Coordinator::Impl::Impl(const PoolOptions& o)
    : opts_(o),
      nproc_(o.processes ? o.processes : cpu_count()),
      method_(o.start_method.value_or(get_start_method())),
      name_prefix_(worker_name_prefix(method_)),
      runner_(std::make_shared<CallbackRunner>()),
      cpus_(static_cast<int>(cpu_count())) {
  require_start_method(method_);
  if (lanes_wanted(opts_)) {
    nlanes_ = static_cast<unsigned>(nproc_);
    lanes_ = std::make_unique<DirectLane[]>(nlanes_);
  }
  // Below this even an error reply may not fit.
  opts_.max_frame_bytes = std::max<std::size_t>(opts_.max_frame_bytes, 4096);
  std::promise<void> started;
  auto ready = started.get_future();
  // The zygote is forked from the I/O thread itself, before it does anything else: no thread
  // of the pool holds a lock at that moment, and PR_SET_PDEATHSIG ties the zygote to this
  // thread, which lives exactly as long as the pool.
  io_thread_ = std::thread([this, &started] {
    block_sigint_in_this_thread();
    try {
      // The progress slots live in a memfd: forked workers inherit the mapping, the fork
      // server's zygote and spawned workers map the descriptor.
      progress_.emplace(static_cast<unsigned>(4 * nproc_ + 8), opts_.max_frame_bytes,
                        opts_.shared_payload_min);
      WorkerSpec spec;
      spec.maxtasks = opts_.maxtasksperchild;
      spec.max_frame_bytes = opts_.max_frame_bytes;
      spec.shared_payload_min = opts_.shared_payload_min;
      spec.max_memory = opts_.max_memory_per_child;
      spec.max_address_space = opts_.max_address_space_per_child;
      spec.nslots = progress_->count();
      spec.log_level = static_cast<std::int32_t>(get_logger()->level());
      // Kept frame buffers go back to malloc, which a zygote forked from this program returns
      // to the kernel first (zygote.cpp): shared with it they would cost a copy-on-write fault
      // a page at their next use. Under forkserver this only costs their refill.
      release_frame_buffers();
      zygote_ = start_zygote(method_, spec, progress_->fd(), progress_->data(), logs_.child_fd());
      zygote_pid_.store(zygote_.pid());
      control_ = std::make_unique<asio::posix::stream_descriptor>(io_, zygote_.control_fd());
      watch_zygote();
      for (std::size_t i = 0; i < nproc_; ++i) start_worker();
    } catch (...) {
      started.set_exception(std::current_exception());
      return;
    }
    started.set_value();
    run_io();
  });
  try {
    ready.get();
  } catch (...) {
    io_thread_.join();
    throw;
  }
}

Coordinator::Impl::~Impl() {
  terminate();
  runner_->drain();
  for (unsigned i = 0; i < nlanes_; ++i) {
    if (lanes_[i].fd >= 0) ::close(lanes_[i].fd);
  }
}

// ---- the callers' side ----------------------------------------------------------------------

void Coordinator::Impl::submit(std::vector<std::unique_ptr<Task>>& tasks) {
  bool wake = false;
  {
    std::lock_guard lock(state_.mu);
    state_.add_tasks_locked(tasks.size());
    for (auto& t : tasks) inbox_.push_back(std::move(t));
    wake = !wake_pending_;
    wake_pending_ = true;
  }
  tasks.clear();
  if (wake) asio::post(io_, [this] { dispatch(); });
}

void Coordinator::Impl::cancel(std::vector<std::uint64_t> ids) {
  asio::post(io_, [this, ids = std::move(ids)] {
    for (std::uint64_t id : ids) cancel_one(id);
    dispatch();
  });
}

void Coordinator::Impl::join() {
  {
    std::unique_lock lock(state_.mu);
    state_.require_closed_locked("Pool");
    state_.wait_done(lock);
  }
  runner_->drain();
  {
    std::lock_guard lock(state_.mu);
    if (!shutdown_requested_) {
      shutdown_requested_ = true;
      asio::post(io_, [this] { begin_shutdown(false); });
    }
  }
  wait_io_thread();
  runner_->drain();  // the exit hooks the shutdown posted
}

void Coordinator::Impl::terminate() {
  {
    std::lock_guard lock(state_.mu);
    if (state_.terminate_locked() && !shutdown_requested_) {
      shutdown_requested_ = true;
      asio::post(io_, [this] { begin_shutdown(true); });
    }
  }
  state_.done_cv.notify_all();
  wait_io_thread();
  // The exit hooks have run when terminate() returns (callbacks wait only if there are hooks:
  // terminate() never waited for them).
  if (opts_.on_worker_start || opts_.on_worker_exit) runner_->drain();
}

void Coordinator::Impl::wait_io_thread() {
  std::lock_guard lock(join_mu_);
  if (io_thread_.joinable()) io_thread_.join();
  // The workers have exited: what they logged is in the channel. It reaches the sinks before
  // join() returns.
  logs_.stop();
}

// ---- the I/O thread -------------------------------------------------------------------------

void Coordinator::Impl::run_io() {
  auto work = asio::make_work_guard(io_);
  // No exception may leave this thread (std::terminate would abort the user's program): a
  // handler that throws breaks the pool, which then shuts down as if terminated.
  for (int faults = 0;;) {
    try {
      io_.run();
      break;
    } catch (const std::exception& e) {
      io_fault(e.what(), ++faults);
    } catch (...) {
      io_fault("a non-std::exception value", ++faults);
    }
  }
  // Whatever remained (only on an abnormal stop) is failed, never dropped silently.
  fail_everything(std::make_exception_ptr(PoolStateError("the pool has shut down")));
  if (control_) control_->release();
  control_.reset();
  zygote_.stop();
  // stats() from now on: the final counts.
  EngineSnapshot last;
  try {
    last = snapshot();
  } catch (...) {  // no memory: an empty one rather than a caller waiting forever
  }
  stats_.finish(std::move(last));
}

void Coordinator::Impl::io_fault(const char* what, int faults) noexcept {
  try {
    break_pool(std::string("the pool is broken: unexpected error on its I/O thread: ") + what);
    fail_everything(broken_);
    if (faults > 2) {
      maybe_finish_shutdown(true);  // shutting down keeps failing: just stop
    } else if (!shutting_down_) {
      {
        std::lock_guard lock(state_.mu);
        shutdown_requested_ = true;
      }
      begin_shutdown(true);
    }
  } catch (...) {
    io_.stop();  // nothing more can be done; run_io's epilogue fails what is left
  }
}

void Coordinator::Impl::fail_everything(std::exception_ptr e) {
  drop_all_lanes(e);
  counts_.failed_by(TaskFailure::kAborted, state_.fail_queued(inbox_, pending_, e));
  std::deque<std::unique_ptr<Task>> held;
  for (auto& w : workers_) w->link.take_all(held);
  for (auto& t : held) {
    if (t) fail_task(std::move(t), e, TaskFailure::kAborted);
  }
}

// ---- shutdown -------------------------------------------------------------------------------

void Coordinator::Impl::begin_shutdown(bool terminate) {
  if (shutting_down_) return;  // io_fault() began it already
  shutting_down_ = true;
  terminating_ = terminate;
  shutdown_deadline_ = std::make_unique<asio::steady_timer>(io_, kShutdownDeadline);
  shutdown_deadline_->async_wait([this](std::error_code ec) {
    if (!ec) maybe_finish_shutdown(true);
  });
  if (terminate) {
    fail_everything(std::make_exception_ptr(
        PoolStateError("the pool was terminated before this task finished")));
    for (auto& w : workers_) kill_worker(w, SIGTERM);
    kill_timer_ = std::make_unique<asio::steady_timer>(io_, kTerminateGrace);
    kill_timer_->async_wait([this](std::error_code ec) {
      if (ec) return;
      for (auto& w : workers_) kill_worker(w, SIGKILL);
    });
  } else {
    drop_all_lanes(std::make_exception_ptr(PoolStateError("the pool has shut down")));
    // Closing our end is the worker's signal to exit.
    for (auto& w : workers_) ::shutdown(w->link.fd(), SHUT_WR);
    kill_timer_ = std::make_unique<asio::steady_timer>(io_, kExitReportWait);
    kill_timer_->async_wait([this](std::error_code ec) {
      if (ec) return;
      for (auto& w : workers_) kill_worker(w, SIGKILL);
    });
  }
  maybe_finish_shutdown(false);
}

void Coordinator::Impl::maybe_finish_shutdown(bool force) {
  if (!force && !workers_.empty() && !zygote_lost_) return;
  if (finished_) return;
  finished_ = true;
  for (auto& w : workers_) kill_worker(w, SIGKILL);
  if (kill_timer_) kill_timer_->cancel();
  if (shutdown_deadline_) shutdown_deadline_->cancel();
  if (respawn_timer_) respawn_timer_->cancel();
  std::error_code ignored;
  if (control_) {
    control_->cancel(ignored);
    control_->release();
    control_.reset();
  }
  zygote_.stop();
  for (auto& w : workers_) {
    if (!w->life.gone()) worker_ended(*w, nullptr);  // its exit will never be reported
    w->life.abandon();
    w->link.socket().close(ignored);
  }
  fail_everything(std::make_exception_ptr(PoolStateError("the pool has shut down")));
  workers_.clear();
  publish_pids();
  io_.stop();
}

// ---- the facade -------------------------------------------------------------------------------

Coordinator::Coordinator(const PoolOptions& options) : impl_(std::make_unique<Impl>(options)) {}
Coordinator::~Coordinator() {
  // A copy in a fork child: the I/O thread and the workers are the owner's; even closing the
  // asio descriptors would take the owner's sockets out of the epoll set the two processes share.
  if (!owner_.here()) abandon(impl_);
}
void Coordinator::check_owner() const {
  if (!owner_.here()) throw PoolStateError(not_owner_message("pool", owner_.pid()));
}
std::size_t Coordinator::processes() const noexcept {
  return impl_->processes();
}
std::size_t Coordinator::max_frame_bytes() const noexcept {
  return impl_->max_frame_bytes();
}
std::uint64_t Coordinator::next_task_id() noexcept {
  return impl_->next_task_id();
}
const std::shared_ptr<CallbackRunner>& Coordinator::callback_runner() const noexcept {
  return impl_->runner();
}
void Coordinator::submit(std::vector<std::unique_ptr<Task>>& tasks) {
  check_owner();
  impl_->submit(tasks);
}
void Coordinator::cancel(std::vector<std::uint64_t> ids) {
  check_owner();
  impl_->cancel(std::move(ids));
}
void Coordinator::cancel_queued() {
  check_owner();
  impl_->cancel_queued();
}
void Coordinator::close() {
  check_owner();
  impl_->close();
}
void Coordinator::join() {
  check_owner();
  impl_->join();
}
void Coordinator::terminate() {
  check_owner();
  impl_->terminate();
}
bool Coordinator::closed() const noexcept {
  return impl_->closed();
}
bool Coordinator::terminated() const noexcept {
  return impl_->terminated();
}
std::vector<pid_t> Coordinator::worker_pids() const {
  return impl_->worker_pids();
}
pid_t Coordinator::zygote_pid() const noexcept {
  return impl_->zygote_pid();
}
PoolStats Coordinator::stats() const {
  check_owner();
  return impl_->stats();
}
bool Coordinator::run_now(std::unique_ptr<Task>& task) {
  check_owner();
  return impl_->run_now(task);
}

std::shared_ptr<PoolEngine> make_process_engine(const PoolOptions& options) {
  return std::make_shared<Coordinator>(options);
}

}  // namespace mproc::detail
