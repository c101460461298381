// The MPI engine: mproc::Pool's frames run on the other ranks of an mpirun job, each of which
// runs them in a local process pool of its own (pool/src/mpi_rank_host.cpp). Built only with
// MPROC_WITH_MPI (the protocol is in mproc/worker/detail/mpi_rank.hpp).
//
// One I/O thread makes every MPI call of the pool, under Rank0State::mu: it opens the pool on
// each rank, moves submitted tasks to ranks (a window per rank, rank_dispatch.hpp), receives
// replies from any rank, in any order, and completes tasks. Time limits, crashes, retries and
// worker replacement happen on the ranks, which kill and replace their own workers: rank 0 sees
// each task's one outcome. A task failed at rank 0 while a rank runs it (cancelled) keeps its
// entry until the rank's reply arrives and is dropped.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <climits>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>

#include <mpi.h>

#include "mproc/errors.hpp"
#include "mproc/logging.hpp"
#include "mproc/mpi.hpp"
#include "mproc/pool/detail/engine_state.hpp"
#include "mproc/pool/detail/pool_counters.hpp"
#include "mproc/pool/detail/rank_dispatch.hpp"
#include "mproc/pool/detail/stats_exchange.hpp"
#include "mproc/process_info.hpp"
#include "mproc/serialize/detail/exception_wire.hpp"
#include "mproc/serialize/detail/frame.hpp"
#include "mproc/worker/detail/mpi_rank.hpp"

namespace mproc::detail {
namespace {

using Clock = std::chrono::steady_clock;
using mpi_rank::Backoff;
using mpi_rank::Control;
using mpi_rank::ControlKind;
using mpi_rank::kMaxMessage;

struct InFlight {
  std::uint64_t id = 0;
  std::unique_ptr<Task> task;  // null once failed at rank 0: the rank's reply is dropped
  Bytes message;               // kept until the send completes
  MPI_Request send = MPI_REQUEST_NULL;
  Clock::time_point sent{};
};

struct RankSlot {
  int rank = 0;
  bool opened = false;      // kOpen sent: the rank owes a kEnded when this pool ends
  std::size_t workers = 0;  // its local pool's, from kOpened (0: not known yet)
  Bytes open_message;       // kept until its send completes
  MPI_Request open_send = MPI_REQUEST_NULL;
  std::vector<InFlight> inflight;
  std::uint64_t done = 0;  // replies to tasks received from it (stats)
};

// The header of `bytes` if they are exactly one well-formed frame.
std::optional<FrameHeader> parse_reply(std::span<const char> bytes) noexcept {
  try {
    std::optional<FrameHeader> h = parse_frame_header(bytes, kMaxMessage);
    if (h && kFrameHeaderSize + h->length == bytes.size()) return h;
  } catch (...) {
  }
  return std::nullopt;
}

// How a failed task's error is counted: the failures the ranks' pools decide (time limits,
// lost workers, cancels) by their kind; a task's own exception is an answer.
std::optional<TaskFailure> failure_kind(const std::exception_ptr& e) noexcept {
  try {
    std::rethrow_exception(e);
  } catch (const TaskTimeoutError&) {
    return TaskFailure::kTimeout;
  } catch (const WorkerLostError&) {
    return TaskFailure::kWorkerLost;
  } catch (const CancelledError&) {
    return TaskFailure::kCancelled;
  } catch (...) {
  }
  return std::nullopt;
}

mpi_rank::RankPoolConfig rank_config(const PoolOptions& o, std::size_t workers_per_rank) {
  mpi_rank::RankPoolConfig c;
  c.workers = workers_per_rank;
  c.maxtasksperchild = o.maxtasksperchild;
  c.max_retries = o.max_retries;
  c.max_memory_per_child = o.max_memory_per_child;
  c.max_address_space_per_child = o.max_address_space_per_child;
  c.task_timeout_ns = o.task_timeout.count();
  c.timeout_grace_ns = o.timeout_grace.count();
  c.soft_timeout_ns = o.soft_timeout.count();
  c.max_frame_bytes = o.max_frame_bytes;
  c.start_method = o.start_method ? static_cast<std::int32_t>(*o.start_method) : -1;
  return c;
}

class MpiEngine final : public PoolEngine {
 public:
  MpiEngine(const PoolOptions& o, std::size_t workers_per_rank, mpi_rank::Rank0State& s,
            std::size_t n, int tag)
      : opts_(o), s_(s), tag_(tag), runner_(std::make_shared<CallbackRunner>()) {
    opts_.max_frame_bytes = std::clamp<std::size_t>(opts_.max_frame_bytes, 4096, kMaxMessage);
    const mpi_rank::RankPoolConfig config = rank_config(opts_, workers_per_rank);
    slots_ = std::vector<RankSlot>(n);  // RankSlot is not copyable: built in place
    for (std::size_t i = 0; i < n; ++i) {
      slots_[i].rank = static_cast<int>(i) + 1;
      slots_[i].open_message =
          mpi_rank::encode_control(Control{ControlKind::kOpen, tag_, 0}, &config, o.init_frame());
      counts_.workers.started += 1;
    }
    io_thread_ = std::thread([this] { run_io(); });
  }
  ~MpiEngine() override {
    terminate();
    runner_->drain();
  }

  std::size_t processes() const noexcept override { return slots_.size(); }
  std::size_t max_frame_bytes() const noexcept override { return opts_.max_frame_bytes; }
  std::uint64_t next_task_id() noexcept override {
    return next_id_.fetch_add(1, std::memory_order_relaxed);
  }
  const std::shared_ptr<CallbackRunner>& callback_runner() const noexcept override {
    return runner_;
  }

  void submit(std::vector<std::unique_ptr<Task>>& tasks) override {
    {
      std::lock_guard lock(state_.mu);
      state_.add_tasks_locked(tasks.size());
      for (auto& t : tasks) inbox_.push_back(std::move(t));
    }
    tasks.clear();
    cv_.notify_one();
  }

  void cancel(std::vector<std::uint64_t> ids) override {
    {
      std::lock_guard lock(state_.mu);
      cancels_.insert(cancels_.end(), ids.begin(), ids.end());
    }
    cv_.notify_one();
  }

  // shutdown(cancel_futures=true): the I/O loop fails what no rank has been sent yet.
  void cancel_queued() override {
    {
      std::lock_guard lock(state_.mu);
      cancel_queued_ = true;
    }
    cv_.notify_one();
  }

  void close() override { state_.close(); }

  void join() override {
    {
      std::unique_lock lock(state_.mu);
      state_.require_closed_locked("Pool");
      state_.wait_done(lock);
    }
    runner_->drain();
    stop();
  }

  void terminate() override {
    state_.terminate();
    stop();
  }

  bool closed() const noexcept override { return state_.closed(); }
  bool terminated() const noexcept override { return state_.terminated(); }
  std::vector<pid_t> worker_pids() const override { return {}; }
  pid_t zygote_pid() const noexcept override { return 0; }

  // A snapshot taken by the I/O thread between two rounds: tasks, a row per rank (pid 0),
  // run times. Ranks never exit while the pool lives; their workers' lives are theirs.
  PoolStats stats() const override {
    EngineSnapshot snap = stats_.request([this] {
      std::lock_guard lock(state_.mu);  // the I/O thread checks wanted() under it
      cv_.notify_one();
    });
    return finish_snapshot(std::move(snap), /*read_rss=*/false);
  }

 private:
  void stop() {
    {
      std::lock_guard lock(state_.mu);
      stop_ = true;
    }
    cv_.notify_one();
    std::lock_guard lock(join_mu_);
    if (io_thread_.joinable()) io_thread_.join();
  }

  // ---- I/O thread -------------------------------------------------------------------------------

  void run_io() {
    Backoff backoff;
    bool worked = true;
    for (;;) {
      std::vector<std::uint64_t> cancels;
      bool stopping = false;
      bool drop_queued = false;
      {
        std::unique_lock lock(state_.mu);
        auto woken = [&] {
          return !inbox_.empty() || !cancels_.empty() || cancel_queued_ || stop_ || stats_.wanted();
        };
        if (!worked && !woken()) {
          if (idle()) {
            cv_.wait(lock, woken);
          } else if (auto d = backoff.next(); d.count() > 0) {
            cv_.wait_for(lock, d, woken);
          } else {
            lock.unlock();
            std::this_thread::yield();
            lock.lock();
          }
        }
        for (auto& t : inbox_) pending_.push_back(std::move(t));
        inbox_.clear();
        cancels.swap(cancels_);
        drop_queued = std::exchange(cancel_queued_, false);
        stopping = stop_;
      }
      if (drop_queued) cancel_pending();
      stats_.serve([this] { return snapshot(); });
      std::lock_guard mpi(s_.mu);
      if (s_.finalized) {  // the program is exiting with this pool alive: MPI is gone
        fail_everything(std::make_exception_ptr(
            PoolStateError("MPI was finalized (the program exited) before this task finished")));
        break;
      }
      for (std::uint64_t id : cancels) cancel_one(id);
      if (stopping) {
        fail_everything(std::make_exception_ptr(
            PoolStateError("the pool was terminated before this task finished")));
        hand_over();
        break;
      }
      worked = progress();
      if (worked) backoff.reset();
    }
    EngineSnapshot last;
    try {
      last = snapshot();
    } catch (...) {  // no memory: an empty one rather than a caller waiting forever
    }
    stats_.finish(std::move(last));
  }

  // The I/O thread's view for stats(). A rank's first `workers` live tasks count as running,
  // the rest of its window as queued there.
  EngineSnapshot snapshot() const {
    EngineSnapshot s;
    PoolStats& st = s.stats;
    st.processes = slots_.size();
    counts_.copy_to(st);
    {
      std::lock_guard lock(state_.mu);
      st.tasks.queued = inbox_.size();
    }
    st.tasks.queued += pending_.size();
    const auto now = Clock::now();
    for (const auto& slot : slots_) {
      PoolStats::Worker row;
      row.index = static_cast<std::uint64_t>(slot.rank);
      row.name = "rank " + std::to_string(slot.rank);
      row.tasks_done = slot.done;
      std::size_t live = 0;
      for (const auto& e : slot.inflight) {
        if (!e.task) continue;  // failed at rank 0, its reply not in yet
        if (live++ < std::max<std::size_t>(slot.workers, 1)) {
          ++st.tasks.running;
          const std::chrono::nanoseconds age = now - e.sent;
          if (!row.current_task_age || *row.current_task_age < age) row.current_task_age = age;
        } else {
          ++st.tasks.queued;
        }
      }
      st.workers.push_back(std::move(row));
    }
    s.run_times = counts_.run_times.samples();
    return s;
  }

  // Nothing to send and nothing this pool waits for: sleep until a submission. (Messages owed
  // by earlier pools matter only once there is work to place.)
  bool idle() const {
    if (!pending_.empty()) return false;
    for (const auto& slot : slots_)
      if (!slot.inflight.empty() || (slot.opened && slot.open_send != MPI_REQUEST_NULL))
        return false;
    return true;
  }

  // One round of MPI work (s_.mu held). Returns whether anything moved.
  bool progress() {
    bool worked = false;
    for (auto& slot : slots_) {
      if (slot.open_send != MPI_REQUEST_NULL && test(slot.open_send))
        Bytes().swap(slot.open_message);
      for (auto& e : slot.inflight)
        if (e.send != MPI_REQUEST_NULL && test(e.send)) Bytes().swap(e.message);
    }
    worked |= open_ranks();
    worked |= receive();
    worked |= dispatch();
    return worked;
  }

  static bool test(MPI_Request& r) {
    int done = 0;
    MPI_Test(&r, &done, MPI_STATUS_IGNORE);
    return done != 0;
  }

  // Each rank makes its local pool as soon as this pool exists, while the first tasks are
  // being encoded.
  bool open_ranks() {
    bool sent = false;
    for (auto& slot : slots_) {
      if (slot.opened) continue;
      slot.opened = true;
      MPI_Isend(slot.open_message.data(), static_cast<int>(slot.open_message.size()), MPI_BYTE,
                slot.rank, mpi_rank::kTagControl, MPI_COMM_WORLD, &slot.open_send);
      sent = true;
    }
    return sent;
  }

  bool dispatch() {
    bool sent = false;
    in_flight_.resize(slots_.size());
    windows_.resize(slots_.size());
    for (std::size_t i = 0; i < slots_.size(); ++i) {
      in_flight_[i] = slots_[i].inflight.size();
      windows_[i] = rank_window(slots_[i].workers);
    }
    const auto now = Clock::now();
    while (!pending_.empty()) {
      const std::size_t i = pick_rank(in_flight_, windows_);
      if (i == kNoRank) break;
      RankSlot& slot = slots_[i];
      ++in_flight_[i];
      InFlight e;
      e.task = std::move(pending_.front());
      pending_.pop_front();
      e.id = e.task->id;
      e.message = std::move(e.task->frame);
      mpi_rank::append_limits(e.message, {e.task->timeout.count(), e.task->soft_timeout.count()});
      e.sent = now;
      slot.inflight.push_back(std::move(e));
      InFlight& placed = slot.inflight.back();
      MPI_Isend(placed.message.data(), static_cast<int>(placed.message.size()), MPI_BYTE, slot.rank,
                tag_, MPI_COMM_WORLD, &placed.send);
      sent = true;
    }
    return sent;
  }

  bool receive() {
    bool got = false;
    for (;;) {
      int flag = 0;
      MPI_Message msg;
      MPI_Status st;
      MPI_Improbe(MPI_ANY_SOURCE, MPI_ANY_TAG, MPI_COMM_WORLD, &flag, &msg, &st);
      if (!flag) return got;
      got = true;
      int n = 0;
      MPI_Get_count(&st, MPI_BYTE, &n);
      rbuf_.resize(static_cast<std::size_t>(n));
      MPI_Mrecv(rbuf_.data(), n, MPI_BYTE, &msg, &st);
      const auto src = static_cast<std::size_t>(st.MPI_SOURCE);
      if (src == 0 || src >= s_.owed.size()) continue;
      if (st.MPI_TAG == mpi_rank::kTagControl) {
        on_control(src, rbuf_);
      } else if (st.MPI_TAG == tag_ && src <= slots_.size()) {
        on_reply(slots_[src - 1], rbuf_);
      }  // else: a reply to an earlier pool's task, which no one waits for
    }
  }

  void on_control(std::size_t src, std::span<const char> bytes) {
    const std::optional<mpi_rank::ParsedControl> c = mpi_rank::parse_control(bytes);
    if (!c) {
      get_logger()->warn("MPI rank {} sent a malformed control message; dropped", src);
      return;
    }
    if (c->control.kind == ControlKind::kEnded) {
      if (s_.owed[src] > 0) --s_.owed[src];
    } else if (c->control.kind == ControlKind::kOpened && c->control.pool_tag == tag_ &&
               src <= slots_.size()) {
      slots_[src - 1].workers = static_cast<std::size_t>(c->control.value);
    }
  }

  void on_reply(RankSlot& slot, std::span<const char> bytes) {
    const std::optional<FrameHeader> h = parse_reply(bytes);
    auto it = slot.inflight.end();
    if (h) {
      it = std::find_if(slot.inflight.begin(), slot.inflight.end(),
                        [&](const InFlight& e) { return e.id == h->task_id; });
    }
    if (it == slot.inflight.end()) {
      get_logger()->warn("MPI rank {} sent a reply for no task it holds; dropped", slot.rank);
      return;
    }
    if (it->send != MPI_REQUEST_NULL) {  // answered, so received: the send is complete
      MPI_Wait(&it->send, MPI_STATUS_IGNORE);
    }
    std::unique_ptr<Task> t = std::move(it->task);
    slot.inflight.erase(it);
    if (!t) return;  // failed at rank 0 already (cancelled)
    ++slot.done;
    const std::span<const char> payload = bytes.subspan(kFrameHeaderSize);
    if (h->kind == FrameKind::kResultOk) {
      counts_.answered(true, h->aux);
      t->on_ok(payload);
    } else {
      std::exception_ptr e = decode_exception(payload);
      if (const std::optional<TaskFailure> kind = failure_kind(e)) {
        counts_.failed_by(*kind);
      } else {
        counts_.answered(false, h->aux);
      }
      t->on_error(std::move(e));
    }
    task_finished(1);
  }

  void cancel_pending() {
    decltype(pending_) queued;
    queued.swap(pending_);
    for (auto& t : queued) {
      counts_.failed_by(TaskFailure::kCancelled);
      t->on_error(std::make_exception_ptr(CancelledError("the task was cancelled by shutdown()")));
      task_finished(1);
    }
  }

  // A task still at rank 0 is failed here; one a rank holds is failed here too and the rank is
  // told to cancel it (killing its worker if it runs), so its worker is free again at once.
  void cancel_one(std::uint64_t id) {
    const auto cancelled = [] {
      return std::make_exception_ptr(CancelledError("the task was cancelled"));
    };
    for (auto it = pending_.begin(); it != pending_.end(); ++it) {
      if ((*it)->id != id) continue;
      std::unique_ptr<Task> t = std::move(*it);
      pending_.erase(it);
      counts_.failed_by(TaskFailure::kCancelled);
      t->on_error(cancelled());
      task_finished(1);
      return;
    }
    for (auto& slot : slots_) {
      for (auto& e : slot.inflight) {
        if (!e.task || e.id != id) continue;
        fail_held(e, TaskFailure::kCancelled, cancelled());
        send_control(slot.rank, Control{ControlKind::kCancel, tag_, id});
        return;
      }
    }
  }

  void fail_held(InFlight& e, TaskFailure kind, std::exception_ptr why) {
    std::unique_ptr<Task> t = std::move(e.task);
    counts_.failed_by(kind);
    t->on_error(std::move(why));
    task_finished(1);
  }

  void fail_everything(const std::exception_ptr& e) {
    counts_.failed_by(TaskFailure::kAborted, state_.fail_queued(inbox_, pending_, e));
    for (auto& slot : slots_)
      for (auto& entry : slot.inflight)
        if (entry.task) fail_held(entry, TaskFailure::kAborted, e);
  }

  // A control record is 16 bytes: sent eagerly, so a blocking send returns at once.
  void send_control(int rank, Control c) {
    const Bytes m = mpi_rank::encode_control(c);
    MPI_Send(m.data(), static_cast<int>(m.size()), MPI_BYTE, rank, mpi_rank::kTagControl,
             MPI_COMM_WORLD);
  }

  // The pool ends: each rank it opened ends its local pool (killing workers that still run
  // tasks of it) and owes a kEnded, which later pools or the exit receive; unfinished sends
  // keep their buffers alive until they complete.
  void hand_over() {
    const auto keep = [this](MPI_Request request, Bytes buffer) {
      s_.leftovers.push_back(
          [request, buffer = std::move(buffer)]() mutable { return test(request); });
    };
    for (auto& slot : slots_) {
      if (!slot.opened) continue;
      send_control(slot.rank, Control{ControlKind::kEnd, tag_, slot.inflight.empty() ? 0u : 1u});
      ++s_.owed[static_cast<std::size_t>(slot.rank)];
      if (slot.open_send != MPI_REQUEST_NULL) keep(slot.open_send, std::move(slot.open_message));
      for (auto& e : slot.inflight)
        if (e.send != MPI_REQUEST_NULL) keep(e.send, std::move(e.message));
      slot.inflight.clear();
    }
    s_.pool_alive = false;
  }

  void task_finished(std::size_t n) { state_.task_finished(n); }

  PoolOptions opts_;
  mpi_rank::Rank0State& s_;
  const int tag_;
  std::shared_ptr<CallbackRunner> runner_;
  std::atomic<std::uint64_t> next_id_{1};

  // Shared with callers, under state_.mu.
  EngineState state_;
  mutable std::condition_variable cv_;
  std::vector<std::unique_ptr<Task>> inbox_;
  std::vector<std::uint64_t> cancels_;
  bool cancel_queued_ = false;
  bool stop_ = false;

  // I/O thread only.
  std::deque<std::unique_ptr<Task>> pending_;
  std::vector<RankSlot> slots_;
  std::vector<std::size_t> in_flight_, windows_;  // dispatch()'s view, reused
  Bytes rbuf_;
  PoolCounters counts_;
  mutable StatsExchange stats_;  // callers' stats() requests, answered between rounds

  std::mutex join_mu_;
  std::thread io_thread_;
};

}  // namespace

std::shared_ptr<PoolEngine> make_mpi_engine(const PoolOptions& options,
                                            std::size_t workers_per_rank) {
  mpi_rank::Rank0State* s = mpi_rank::rank0();
  if (s == nullptr) {
    if (const int rank = mpi_rank::rank_from_environment(); rank >= 0 && init_called()) {
      throw StartMethodError(
          "an MPI pool is made only by rank 0 itself, the process mpirun started; this is " +
          (rank > 0 ? "worker rank " + std::to_string(rank) : std::string("a child of rank 0")));
    }
    if (mpi_rank::rank_from_environment() >= 0 && !init_called()) {
      throw StartMethodError(
          "an MPI pool needs mproc::init(argc, argv) at the top of main: it sets up MPI and "
          "turns ranks 1..N-1 into workers");
    }
    throw StartMethodError(
        "an MPI pool needs the program to be started by mpirun: run it as `mpirun -n N " +
        (program_path().empty() ? std::string("./app") : program_path()) +
        "` (rank 0 runs main; ranks 1..N-1 are the workers)");
  }
  const std::size_t ranks = static_cast<std::size_t>(s->world_size - 1);
  if (ranks == 0) {
    throw StartMethodError(
        "this mpirun job has one rank, so no worker ranks: run it with mpirun -n 2 or more");
  }
  const std::size_t n = options.processes ? options.processes : ranks;
  if (n > ranks) {
    throw StartMethodError("an MPI pool of " + std::to_string(n) + " processes needs mpirun -n " +
                           std::to_string(n + 1) + "; this job has " + std::to_string(ranks) +
                           " worker ranks");
  }
  int tag;
  {
    std::lock_guard lock(s->mu);
    if (s->finalized) throw PoolStateError("MPI has been finalized: the program is exiting");
    if (s->pool_alive) {
      throw PoolStateError(
          "another MPI pool is alive: the job's ranks serve one pool at a time; close() and "
          "join() (or terminate()) it first");
    }
    s->pool_alive = true;
    tag = mpi_rank::kFirstPoolTag + static_cast<int>(s->pools_made++ % mpi_rank::kPoolTags);
  }
  try {
    return std::make_shared<MpiEngine>(options, workers_per_rank, *s, n, tag);
  } catch (...) {
    std::lock_guard lock(s->mu);
    s->pool_alive = false;
    throw;
  }
}

}  // namespace mproc::detail
