// The MPI engine: mproc::Pool's frames run on the other ranks of an mpirun job.
// Built only with MPROC_WITH_MPI (the protocol is in mproc/worker/detail/mpi_rank.hpp).
//
// One I/O thread makes every MPI call of the pool, under Rank0State::mu: it moves submitted
// tasks to ranks (a few frames in flight per rank to hide the round trip), receives replies
// from any rank, completes tasks, and enforces time limits. A rank cannot be killed, so a task
// that is failed while it runs (timed out, cancelled, terminated) is "abandoned": its entry
// stays until the rank's reply arrives and is dropped, and the rank gets no new work meanwhile.
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
#include "mproc/pool/detail/stats_exchange.hpp"
#include "mproc/process_info.hpp"
#include "mproc/serialize/detail/exception_wire.hpp"
#include "mproc/serialize/detail/frame.hpp"
#include "mproc/worker/detail/mpi_rank.hpp"

namespace mproc::detail {
namespace {

using Clock = std::chrono::steady_clock;

// Frames in flight per rank: enough to overlap a reply's trip with the next task's run.
constexpr std::size_t kDepth = 4;
using mpi_rank::Backoff;
using mpi_rank::kMaxMessage;

struct InFlight {
  std::uint64_t id = 0;
  std::unique_ptr<Task> task;  // null once failed (abandoned) and for the init frame
  bool init = false;
  bool timed = false;
  bool sent = false;  // the rank will answer it (init frames wait for the I/O thread)
  Bytes frame;        // kept until the send completes
  MPI_Request send = MPI_REQUEST_NULL;
  Clock::time_point deadline = Clock::time_point::max();
  std::chrono::nanoseconds limit{0};
};

struct RankSlot {
  int rank = 0;
  std::deque<InFlight> inflight;
  std::size_t abandoned = 0;  // entries whose task was failed while the rank holds it
  std::uint64_t done = 0;     // replies to tasks received from it (stats)
  Clock::time_point since{};  // when its first entry started running (stats: the task's age)

  bool accepts(std::uint64_t owed_elsewhere, bool timed) const {
    if (abandoned != 0 || owed_elsewhere != 0) return false;  // busy with a dropped task
    if (inflight.empty()) return true;
    // A task with a time limit runs alone: its clock starts when it is sent, and when it
    // expires nothing else is stranded behind it on the rank.
    return !timed && !inflight.front().timed && !inflight.back().timed && inflight.size() < kDepth;
  }
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

class MpiEngine final : public PoolEngine {
 public:
  MpiEngine(const PoolOptions& o, mpi_rank::Rank0State& s, std::size_t n, int tag)
      : opts_(o), s_(s), tag_(tag), runner_(std::make_shared<CallbackRunner>()) {
    opts_.max_frame_bytes = std::clamp<std::size_t>(opts_.max_frame_bytes, 4096, kMaxMessage);
    slots_ = std::vector<RankSlot>(n);  // RankSlot is not copyable: built in place
    for (std::size_t i = 0; i < n; ++i) {
      slots_[i].rank = static_cast<int>(i) + 1;
      counts_.workers.started += 1;
      if (!opts_.init_frame().empty()) {
        InFlight e;
        e.init = true;
        e.frame = opts_.init_frame();
        set_frame_aux(e.frame, opts_.max_frame_bytes);
        slots_[i].inflight.push_back(std::move(e));
      }
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
  // run times. Ranks never exit while the pool lives.
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
      for (std::uint64_t id : cancels) cancel_one(id);
      if (drop_queued) {
        decltype(pending_) queued;
        queued.swap(pending_);
        for (auto& t : queued) {
          counts_.failed_by(TaskFailure::kCancelled);
          t->on_error(
              std::make_exception_ptr(CancelledError("the task was cancelled by shutdown()")));
          task_finished(1);
        }
      }
      stats_.serve([this] { return snapshot(); });
      std::lock_guard mpi(s_.mu);
      if (s_.finalized) {  // the program is exiting with this pool alive: MPI is gone
        fail_everything(std::make_exception_ptr(
            PoolStateError("MPI was finalized (the program exited) before this task finished")));
        break;
      }
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

  // The I/O thread's view for stats().
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
      bool first = true;
      for (const auto& e : slot.inflight) {
        if (!e.task) continue;  // the init frame, or abandoned
        if (first && e.sent) {
          ++st.tasks.running;
          row.current_task_age = now - slot.since;
        } else {
          ++st.tasks.queued;
        }
        first = false;
      }
      st.workers.push_back(std::move(row));
    }
    s.run_times = counts_.run_times.samples();
    return s;
  }

  // Nothing to send and nothing this pool waits for: sleep until a submission. (Replies owed
  // to earlier pools matter only once there is work to place.)
  bool idle() const {
    if (!pending_.empty()) return false;
    for (const auto& slot : slots_)
      if (!slot.inflight.empty()) return false;
    return true;
  }

  // One round of MPI work (s_.mu held). Returns whether anything moved.
  bool progress() {
    bool worked = false;
    for (auto& slot : slots_) {
      for (auto& e : slot.inflight) {
        if (e.send == MPI_REQUEST_NULL) continue;
        int done = 0;
        MPI_Test(&e.send, &done, MPI_STATUS_IGNORE);
        if (done) Bytes().swap(e.frame);
      }
    }
    worked |= receive();
    worked |= dispatch();
    check_deadlines();
    return worked;
  }

  bool dispatch() {
    bool sent = false;
    const auto now = Clock::now();
    for (auto& slot : slots_) {  // init frames were queued at construction
      for (auto& e : slot.inflight) {
        if (!e.init || e.sent) continue;
        isend(slot, e);
        sent = true;
      }
    }
    while (!pending_.empty()) {
      Task& t = *pending_.front();
      const auto limit = t.timeout.count() > 0 ? t.timeout : opts_.task_timeout;
      RankSlot* best = nullptr;
      for (auto& slot : slots_) {
        if (!slot.accepts(s_.owed[static_cast<std::size_t>(slot.rank)], limit.count() > 0))
          continue;
        if (best == nullptr || slot.inflight.size() < best->inflight.size()) best = &slot;
      }
      if (best == nullptr) break;
      InFlight e;
      e.id = t.id;
      e.frame = std::move(t.frame);
      set_frame_aux(e.frame, opts_.max_frame_bytes);
      e.timed = limit.count() > 0;
      e.limit = limit;
      if (e.timed) e.deadline = now + limit;
      e.task = std::move(pending_.front());
      pending_.pop_front();
      if (best->inflight.empty()) best->since = now;
      best->inflight.push_back(std::move(e));
      isend(*best, best->inflight.back());
      sent = true;
    }
    return sent;
  }

  void isend(RankSlot& slot, InFlight& e) {
    e.sent = true;
    MPI_Isend(e.frame.data(), static_cast<int>(e.frame.size()), MPI_BYTE, slot.rank, tag_,
              MPI_COMM_WORLD, &e.send);
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
      if (st.MPI_TAG != tag_) {  // an earlier pool's abandoned task finished
        if (src < s_.owed.size() && s_.owed[src] > 0) --s_.owed[src];
        continue;
      }
      if (src == 0 || src > slots_.size()) continue;
      on_reply(slots_[src - 1], rbuf_);
    }
  }

  void on_reply(RankSlot& slot, std::span<const char> bytes) {
    const std::optional<FrameHeader> h = parse_reply(bytes);
    auto it = slot.inflight.begin();
    if (h) {
      it = std::find_if(slot.inflight.begin(), slot.inflight.end(), [&](const InFlight& e) {
        return e.init ? h->task_id == 0 : e.id == h->task_id;
      });
    }
    if (it == slot.inflight.end()) {
      get_logger()->warn("MPI rank {} sent a reply for no task it holds; dropped", slot.rank);
      return;
    }
    if (it->send != MPI_REQUEST_NULL) {  // answered, so received: the send is complete
      MPI_Wait(&it->send, MPI_STATUS_IGNORE);
    }
    InFlight e = std::move(*it);
    slot.inflight.erase(it);
    if (!slot.inflight.empty()) {
      slot.since = Clock::now();
      if (slot.inflight.front().timed)
        slot.inflight.front().deadline = slot.since + slot.inflight.front().limit;
    }
    const std::span<const char> payload = bytes.subspan(kFrameHeaderSize);
    if (e.init) {
      if (h && h->kind == FrameKind::kResultErr) initializer_failed(decode_exception(payload));
      return;
    }
    if (!e.task) {  // abandoned: its outcome was already given
      --slot.abandoned;
      return;
    }
    ++slot.done;
    if (!h) {
      counts_.failed_by(TaskFailure::kWorkerLost);
      e.task->on_error(std::make_exception_ptr(
          SerializationError("corrupt reply from MPI rank " + std::to_string(slot.rank))));
    } else if (h->kind == FrameKind::kResultOk) {
      counts_.answered(true, h->aux);
      e.task->on_ok(payload);
    } else {
      counts_.answered(false, h->aux);
      e.task->on_error(decode_exception(payload));
    }
    task_finished(1);
  }

  void check_deadlines() {
    const auto now = Clock::now();
    for (auto& slot : slots_) {
      for (auto& e : slot.inflight) {
        if (!e.task || !e.timed || e.deadline > now) continue;
        const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(e.limit).count();
        abandon(slot, e, TaskFailure::kTimeout,
                std::make_exception_ptr(TaskTimeoutError(
                    "task ran longer than its time limit (" + std::to_string(ms) +
                    " ms) on MPI rank " + std::to_string(slot.rank) +
                    " (stuck, or dead under mpirun --enable-recovery: MPI does not tell which); "
                    "a rank cannot be killed: it gets no new work until the task ends, and the "
                    "task's late result is dropped")));
      }
    }
  }

  void abandon(RankSlot& slot, InFlight& e, TaskFailure kind, std::exception_ptr why) {
    std::unique_ptr<Task> t = std::move(e.task);
    ++slot.abandoned;
    counts_.failed_by(kind);
    t->on_error(std::move(why));
    task_finished(1);
  }

  void cancel_one(std::uint64_t id) {
    for (auto it = pending_.begin(); it != pending_.end(); ++it) {
      if ((*it)->id != id) continue;
      std::unique_ptr<Task> t = std::move(*it);
      pending_.erase(it);
      counts_.failed_by(TaskFailure::kCancelled);
      t->on_error(std::make_exception_ptr(CancelledError("the task was cancelled")));
      task_finished(1);
      return;
    }
    for (auto& slot : slots_) {
      for (auto& e : slot.inflight) {
        if (e.task && e.id == id) {
          abandon(slot, e, TaskFailure::kCancelled,
                  std::make_exception_ptr(CancelledError("the task was cancelled")));
          return;
        }
      }
    }
  }

  void initializer_failed(std::exception_ptr e) {
    get_logger()->error("the MPI pool's initializer failed; the pool is broken");
    state_.set_broken(e);
    fail_everything(e);
  }

  void fail_everything(const std::exception_ptr& e) {
    counts_.failed_by(TaskFailure::kAborted, state_.fail_queued(inbox_, pending_, e));
    for (auto& slot : slots_)
      for (auto& entry : slot.inflight)
        if (entry.task) abandon(slot, entry, TaskFailure::kAborted, e);
  }

  // The pool ends with ranks still holding frames: later pools, and the exit, must receive
  // their replies and keep their unfinished sends' buffers alive.
  void hand_over() {
    for (auto& slot : slots_) {
      for (auto& e : slot.inflight) {
        if (!e.sent) continue;  // an init frame the pool ended before sending
        ++s_.owed[static_cast<std::size_t>(slot.rank)];
        if (e.send != MPI_REQUEST_NULL) {
          s_.leftovers.push_back([request = e.send, frame = std::move(e.frame)]() mutable {
            int done = 0;
            MPI_Test(&request, &done, MPI_STATUS_IGNORE);
            return done != 0;
          });
        }
      }
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
  Bytes rbuf_;
  PoolCounters counts_;
  mutable StatsExchange stats_;  // callers' stats() requests, answered between rounds

  std::mutex join_mu_;
  std::thread io_thread_;
};

}  // namespace

std::shared_ptr<PoolEngine> make_mpi_engine(const PoolOptions& options) {
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
    return std::make_shared<MpiEngine>(options, *s, n, tag);
  } catch (...) {
    std::lock_guard lock(s->mu);
    s->pool_alive = false;
    throw;
  }
}

}  // namespace mproc::detail
