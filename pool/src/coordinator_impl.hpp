// coordinator_impl.hpp — the process pool's engine inside (see coordinator.hpp). Its members
// are defined in four files by job: coordinator.cpp (construction, the callers' side, the I/O
// thread, shutdown), coordinator_workers.cpp (starting workers, the zygote's reports, a
// worker's death), coordinator_tasks.cpp (dispatch, replies, time limits, cancellation) and
// coordinator_stats.cpp (the counts behind stats(), its snapshot, the worker hooks).
//
// Thread safety: the callers' side locks state_.mu; everything else runs on the I/O thread
// (stats() asks it through stats_).
#pragma once

#include <asio.hpp>
#include <atomic>
#include <chrono>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "coordinator.hpp"
#include "mproc/pool/detail/death_accounting.hpp"
#include "mproc/pool/detail/direct_lane.hpp"
#include "mproc/pool/detail/dispatch_policy.hpp"
#include "mproc/pool/detail/engine_state.hpp"
#include "mproc/pool/detail/pool_counters.hpp"
#include "mproc/pool/detail/stats_exchange.hpp"
#include "mproc/pool/detail/time_limits.hpp"
#include "mproc/runtime/detail/fd.hpp"
#include "mproc/runtime/detail/log_channel.hpp"
#include "mproc/start_method.hpp"
#include "mproc/worker/detail/zygote.hpp"
#include "progress_slots.hpp"
#include "spawn_backoff.hpp"
#include "worker_life.hpp"
#include "worker_link.hpp"

namespace mproc::detail {

inline constexpr auto kTerminateGrace = std::chrono::milliseconds(200);
inline constexpr auto kExitReportWait = std::chrono::seconds(2);
inline constexpr auto kShutdownDeadline = std::chrono::seconds(5);

struct Worker {
  Worker(asio::io_context& io, int fd, std::uint64_t serial) : link(io, fd), serial(serial) {}

  WorkerLink link;
  WorkerLife life;
  std::uint64_t serial;
  std::string name;
  pid_t pid = 0;
  UniqueFd pidfd;
  int pending_signal = 0;  // asked for before the zygote reported the worker's pidfd
  int status = 0;          // its wait status, once reaped
  unsigned slot = ProgressSlots::kNoSlot;  // its WorkerTaskCounters slot
  // What it said.
  bool init_acked = true;
  bool init_failed = false;       // its initializer threw
  bool announced_retire = false;  // sent kRetiring: nothing behind its last result started
  std::exception_ptr fault;       // set when the worker broke the protocol
  std::uint64_t received = 0;     // task results read from it
  // What dispatch knows of it.
  std::size_t assigned = 0;
  double average_ns = 0;
  // Time limits and stops.
  std::uint64_t timed_head = 0;      // the head task the time-limit timer is armed for
                                     // (soft limit, then hard: one timer)
  std::uint64_t timed_out = 0;       // the task that ran out of time (worker being stopped)
  std::uint64_t cancelled_head = 0;  // the running task cancelled by the user
  std::unique_ptr<asio::steady_timer> head_timer;
  std::unique_ptr<asio::steady_timer> kill_timer;
  std::unique_ptr<asio::steady_timer> exit_timer;
  // Direct calls (direct_lane.hpp): its lane while it has one, and the calls it answered
  // through lanes it no longer has.
  DirectLane* lane = nullptr;
  std::uint64_t direct_done = 0;
  // Every call it answered, queued or direct (stats(), on_worker_exit).
  std::uint64_t tasks_done() const noexcept {
    return received + direct_done + (lane ? lane->calls.load(std::memory_order_relaxed) : 0);
  }
  // Statistics and hooks.
  bool started = false;  // its start was counted and announced (so its exit will be)
  std::chrono::steady_clock::time_point head_since{};  // when its current head task started
};
using WorkerPtr = std::shared_ptr<Worker>;

class Coordinator::Impl {
 public:
  using Clock = std::chrono::steady_clock;

  explicit Impl(const PoolOptions& o);
  ~Impl();

  std::size_t processes() const noexcept { return nproc_; }
  std::size_t max_frame_bytes() const noexcept { return opts_.max_frame_bytes; }
  std::uint64_t next_task_id() noexcept { return next_id_.fetch_add(1, std::memory_order_relaxed); }
  const std::shared_ptr<CallbackRunner>& runner() const noexcept { return runner_; }

  void submit(std::vector<std::unique_ptr<Task>>& tasks);
  void close() { state_.close(); }
  void cancel(std::vector<std::uint64_t> ids);
  void cancel_queued();
  void join();
  void terminate();
  bool closed() const noexcept { return state_.closed(); }
  bool terminated() const noexcept { return state_.terminated(); }
  std::vector<pid_t> worker_pids() const {
    std::lock_guard lock(pids_mu_);
    return live_pids_;
  }
  pid_t zygote_pid() const noexcept { return zygote_pid_.load(); }
  PoolStats stats();
  // Runs `task` on an idle worker without the queue and blocks until it completes (PoolEngine).
  bool run_now(std::unique_ptr<Task>& task);

 private:
  // ---- coordinator.cpp: the I/O thread and shutdown
  void start_io();
  void wait_io_thread();
  void run_io();
  void io_fault(const char* what, int faults) noexcept;
  void task_finished(std::size_t n) { state_.task_finished(n); }
  void fail_task(std::unique_ptr<Task> t, std::exception_ptr e, TaskFailure kind) {
    counts_.failed_by(kind);
    t->on_error(std::move(e));
    task_finished(1);
  }
  // Fails every task queued or held (counted as aborted).
  void fail_everything(std::exception_ptr e);
  void begin_shutdown(bool terminate);
  void maybe_finish_shutdown(bool force);

  // ---- coordinator_workers.cpp: starting workers, the zygote's reports, deaths
  void publish_pids();
  void start_worker();
  bool start_replacement_worker() noexcept;
  void replenish();
  void spawn_failed(std::string why) noexcept;
  void break_pool(const std::string& msg);
  bool give_up_spawning(Clock::time_point now);
  void watch_zygote();
  WorkerPtr find_worker(std::uint64_t serial, pid_t pid);
  void on_zygote_report(Zygote::Report r);
  void on_zygote_lost();
  void kill_worker(const WorkerPtr& w, int sig);
  void stop_worker(const WorkerPtr& w);
  void await_exit(const WorkerPtr& w);
  void finalize(const WorkerPtr& w);
  void settle_held_tasks(Worker& w);
  // Who takes tasks and who still holds its last ones (workers_to_start's counts).
  Succession succession() const;
  // Statistics and hooks: a worker started, a worker ended (`end` says why; null: abandoned at
  // the shutdown deadline, its exit never seen).
  void worker_started(Worker& w);
  void worker_ended(Worker& w, const WorkerEnd* end);
  EngineSnapshot snapshot() const;
  void serve_stats();

  // ---- coordinator_direct.cpp: direct calls (the caller's side, then the I/O thread's)
  DirectLane* claim_lane() noexcept;
  bool should_poll() noexcept;
  void requeue_counted(std::unique_ptr<Task>& task);
  void release_lane(DirectLane& lane) noexcept;
  std::uint32_t await_mail(DirectMailbox& box, bool spin) noexcept;
  void tally_direct(const Task& t, bool ok) noexcept;
  static bool lanes_wanted(const PoolOptions& o) noexcept;
  void reclaim_lanes();
  void lend_idle_workers();
  bool bind_lane(Worker& w);
  template <class Verdict>
  bool drop_lane(Worker& w, Verdict&& verdict);
  void drop_all_lanes(const std::exception_ptr& e);
  void settle_lent_call(Worker& w);
  bool deliver_direct_reply(Worker& w, const WorkerLink::Frame& f);

  // ---- coordinator_tasks.cpp: dispatch, replies, time limits, cancellation
  void dispatch();
  void dispatch_tasks();
  void flush(const WorkerPtr& w);
  void start_read(const WorkerPtr& w);
  void on_readable(const WorkerPtr& w);
  std::size_t parse_frames(const WorkerPtr& w);
  void protocol_fault(const WorkerPtr& w, std::exception_ptr e);
  void initializer_failed(std::exception_ptr e);
  TimeLimits limits_of(const Task& t) const noexcept {
    return effective_time_limits({t.soft_timeout, t.timeout},
                                 {opts_.soft_timeout, opts_.task_timeout});
  }
  std::chrono::nanoseconds timeout_of(const Task& t) const noexcept { return limits_of(t).hard; }
  void arm_head_timer(const WorkerPtr& w);
  void await_time_limit(const WorkerPtr& w, std::uint64_t id, Clock::time_point started,
                        TimeLimits limits, LimitStep step);
  void ask_to_stop(const WorkerPtr& w, std::uint64_t id);
  void cancel_one(std::uint64_t id);

  PoolOptions opts_;
  std::size_t nproc_;
  double pool_average_ns_ = 0;  // task duration over all workers: a new worker's first guess
  StartMethod method_;
  std::string name_prefix_;
  std::shared_ptr<CallbackRunner> runner_;
  LogRelay logs_;  // the workers' log records, to get_logger()'s sinks (log_channel.hpp)
  asio::io_context io_;
  std::thread io_thread_;
  std::mutex join_mu_;
  Zygote zygote_;
  std::atomic<pid_t> zygote_pid_{0};
  std::unique_ptr<asio::posix::stream_descriptor> control_;
  std::atomic<std::uint64_t> next_id_{1};

  // Shared with callers, under state_.mu.
  EngineState state_;
  std::vector<std::unique_ptr<Task>> inbox_;
  bool wake_pending_ = false;
  bool shutdown_requested_ = false;

  mutable std::mutex pids_mu_;
  std::vector<pid_t> live_pids_;

  // I/O thread only.
  std::deque<std::unique_ptr<Task>> pending_;
  std::vector<WorkerPtr> workers_;
  std::uint64_t spawned_ = 0;
  std::optional<ProgressSlots> progress_;
  unsigned init_deaths_ = 0;
  std::exception_ptr broken_;
  bool shutting_down_ = false;
  bool terminating_ = false;  // the shutdown is terminate()'s
  bool zygote_lost_ = false;
  bool finished_ = false;
  std::unique_ptr<asio::steady_timer> kill_timer_;
  std::unique_ptr<asio::steady_timer> shutdown_deadline_;
  // Starting workers that failed, retried with a backoff.
  SpawnBackoff spawn_backoff_;
  std::unique_ptr<asio::steady_timer> respawn_timer_;
  bool respawn_timer_armed_ = false;
  PoolCounters counts_;

  StatsExchange stats_;  // callers' stats() requests, answered on the I/O thread

  // Direct calls: one lane per process (none when lanes_wanted() says no).
  std::unique_ptr<DirectLane[]> lanes_;
  unsigned nlanes_ = 0;
  int cpus_ = 1;
  std::atomic<unsigned> lane_hint_{0};
  std::atomic<int> lent_{0};     // lanes callers hold
  std::atomic<int> io_busy_{0};  // workers holding queued tasks (the I/O thread's count)
  std::atomic<std::int64_t> load_sampled_{0};  // when the machine's load was last read
  std::atomic<bool> polling_{false};           // its verdict: direct calls poll
  struct DirectTally {                         // what direct calls add to stats()
    mutable std::mutex mu;
    std::uint64_t completed = 0;
    std::uint64_t exceptions = 0;
    std::uint64_t lost = 0;  // failed with WorkerLostError or at the pool's stop
    RunTimeWindow run_times;
  } tally_;
};

}  // namespace mproc::detail
