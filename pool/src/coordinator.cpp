#include "mproc/pool/detail/coordinator.hpp"

#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <asio.hpp>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <deque>
#include <future>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "mproc/logging.hpp"
#include "mproc/process_info.hpp"
#include "mproc/runtime/before_fork.hpp"
#include "mproc/runtime/fd.hpp"
#include "mproc/runtime/owner.hpp"
#include "mproc/serialize/exception_wire.hpp"
#include "mproc/serialize/frame.hpp"
#include "mproc/start_method.hpp"
#include "mproc/worker/detail/zygote.hpp"
#include "mproc/worker/worker_entry.hpp"
#include "mproc/worker/worker_loop.hpp"

namespace mproc::detail {
namespace {

using Clock = std::chrono::steady_clock;

// How much queued work (by the workers' own timings) to keep in a worker's pipe: enough to hide
// a round trip (~60 us here) and batch replies, little enough that a long task does not strand
// many others behind it while another worker idles.
constexpr double kPipelineBudgetNs = 250'000;
constexpr std::size_t kMinDepth = 2;
constexpr std::size_t kMaxDepth = 512;
// Tasks longer than this go one at a time: the round trip is then under 3% of the task.
constexpr double kNoPipelineNs = 2'000'000;
constexpr std::size_t kMaxIov = 64;
constexpr unsigned kNoSlot = ~0u;
constexpr auto kTerminateGrace = std::chrono::milliseconds(200);
constexpr auto kExitReportWait = std::chrono::seconds(2);
constexpr auto kShutdownDeadline = std::chrono::seconds(5);
// A worker that cannot be started (no descriptor for its socket, fork EAGAIN) is tried again
// after a pause that doubles up to the cap; with no worker alive and tasks waiting, the pool
// gives up after kSpawnGiveUp and breaks with the cause rather than hang.
constexpr auto kRespawnFirst = std::chrono::milliseconds(10);
constexpr auto kRespawnCap = std::chrono::milliseconds(500);
constexpr auto kSpawnGiveUp = std::chrono::seconds(3);

std::string describe_status(int status) {
  if (WIFSIGNALED(status)) {
    const int sig = WTERMSIG(status);
    const char* abbrev = sigabbrev_np(sig);
    return "was killed by " +
           (abbrev ? "SIG" + std::string(abbrev) : "signal " + std::to_string(sig));
  }
  if (WIFEXITED(status)) return "exited with code " + std::to_string(WEXITSTATUS(status));
  return "ended with status " + std::to_string(status);
}

struct Worker {
  Worker(asio::io_context& io, int fd, std::uint64_t serial) : sock(io, fd), serial(serial) {}

  asio::posix::stream_descriptor sock;
  std::uint64_t serial;
  std::string name;
  pid_t pid = 0;
  UniqueFd pidfd;
  // Sent or waiting to be sent, in order; the worker answers in this order.
  std::deque<std::unique_ptr<Task>> inflight;
  std::size_t write_idx = 0;  // first task in `inflight` not completely written
  std::size_t write_off = 0;  // bytes of inflight[write_idx] already written
  Bytes preamble;             // the init frame, written before any task
  std::size_t preamble_off = 0;
  bool init_acked = true;
  Bytes rbuf = Bytes(1 << 16);
  std::size_t rbeg = 0, rend = 0;
  std::size_t assigned = 0;
  bool retiring = false;  // maxtasksperchild quota handed out: no new tasks
  bool reading = false;
  bool writing = false;
  bool eof = false;
  bool exited = false;
  int pending_signal = 0;  // asked for before the zygote reported the worker's pidfd
  bool gone = false;       // finalized; handlers must ignore it
  int status = 0;
  std::exception_ptr fault;  // set when the worker broke the protocol
  double ewma_ns = 0;
  std::unique_ptr<asio::steady_timer> exit_timer;
  Bytes ctrl;  // control frames (kCancel), written between task frames
  std::size_t ctrl_off = 0;
  bool announced_retire = false;     // sent kRetiring: nothing behind its last result started
  unsigned slot = 0;                 // its WorkerProgress slot, or kNoSlot
  std::uint64_t received = 0;        // task results read from it
  std::uint64_t timed_head = 0;      // the head task the time-limit timer is armed for
  std::uint64_t timed_out = 0;       // the task that ran out of time (worker being stopped)
  std::uint64_t cancelled_head = 0;  // the running task cancelled by the user
  std::unique_ptr<asio::steady_timer> head_timer;
  std::unique_ptr<asio::steady_timer> kill_timer;
};
using WorkerPtr = std::shared_ptr<Worker>;

}  // namespace

class Coordinator::Impl {
 public:
  explicit Impl(const PoolOptions& o)
      : opts_(o),
        nproc_(o.processes ? o.processes : cpu_count()),
        method_(o.start_method.value_or(get_start_method())),
        name_prefix_(worker_name_prefix(method_)),
        runner_(std::make_shared<CallbackRunner>()) {
    require_start_method(method_);
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
        slots_ = static_cast<unsigned>(4 * nproc_ + 8);
        const std::size_t bytes = slots_ * sizeof(WorkerProgress);
        UniqueFd mem(::memfd_create("mproc-progress", MFD_CLOEXEC));
        if (!mem || ::ftruncate(mem.get(), static_cast<off_t>(bytes)) != 0) {
          throw std::system_error(errno, std::generic_category(), "memfd for worker progress");
        }
        void* region = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, mem.get(), 0);
        if (region == MAP_FAILED) throw std::system_error(errno, std::generic_category(), "mmap");
        progress_ = static_cast<WorkerProgress*>(region);
        for (unsigned i = 0; i < slots_; ++i) free_slots_.push_back(slots_ - 1 - i);
        WorkerSpec spec;
        spec.maxtasks = opts_.maxtasksperchild;
        spec.max_frame_bytes = opts_.max_frame_bytes;
        spec.max_memory = opts_.max_memory_per_child;
        spec.max_address_space = opts_.max_address_space_per_child;
        spec.nslots = slots_;
        spec.log_level = static_cast<std::int32_t>(get_logger()->level());
        zygote_ = start_zygote(method_, spec, mem.get(), progress_);
        zygote_pid_.store(zygote_.pid());
        control_ = std::make_unique<asio::posix::stream_descriptor>(io_, zygote_.control_fd());
        watch_zygote();
        for (std::size_t i = 0; i < nproc_; ++i) try_spawn_worker();
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
  ~Impl() {
    terminate();
    runner_->drain();
    if (progress_) ::munmap(progress_, slots_ * sizeof(WorkerProgress));
  }

  std::size_t processes() const noexcept { return nproc_; }
  std::size_t max_frame_bytes() const noexcept { return opts_.max_frame_bytes; }
  std::uint64_t next_task_id() noexcept { return next_id_.fetch_add(1, std::memory_order_relaxed); }
  const std::shared_ptr<CallbackRunner>& runner() const noexcept { return runner_; }

  void submit(std::vector<std::unique_ptr<Task>>& tasks) {
    bool wake = false;
    {
      std::lock_guard lock(mu_);
      check_open();
      outstanding_ += tasks.size();
      for (auto& t : tasks) inbox_.push_back(std::move(t));
      wake = !wake_pending_;
      wake_pending_ = true;
    }
    tasks.clear();
    if (wake) asio::post(io_, [this] { dispatch(); });
  }

  void close() {
    std::lock_guard lock(mu_);
    closed_ = true;
  }

  void cancel(std::vector<std::uint64_t> ids) {
    asio::post(io_, [this, ids = std::move(ids)] {
      for (std::uint64_t id : ids) cancel_one(id);
      dispatch();
    });
  }

  void cancel_queued() {
    asio::post(io_, [this] {
      {
        std::lock_guard lock(mu_);
        for (auto& t : inbox_) pending_.push_back(std::move(t));
        inbox_.clear();
      }
      const auto cancelled =
          std::make_exception_ptr(CancelledError("the task was cancelled by shutdown()"));
      std::deque<std::unique_ptr<Task>> queued;
      queued.swap(pending_);
      for (auto& t : queued) fail_task(std::move(t), cancelled);
      // Handed to a worker but not started: all but a sent head (cancel_one kills a running one).
      std::vector<std::uint64_t> ids;
      for (auto& w : workers_) {
        for (std::size_t i = 0; i < w->inflight.size(); ++i) {
          const bool unsent = i > w->write_idx || (i == w->write_idx && w->write_off == 0);
          if (i == 0 && !unsent) continue;
          ids.push_back(w->inflight[i]->id);
        }
      }
      for (std::uint64_t id : ids) cancel_one(id);
      dispatch();
    });
  }

  void join() {
    {
      std::unique_lock lock(mu_);
      if (!closed_ && !terminated_)
        throw PoolStateError("Pool::join(): call close() or terminate() first");
      done_cv_.wait(lock, [&] { return outstanding_ == 0 || terminated_; });
    }
    runner_->drain();
    {
      std::lock_guard lock(mu_);
      if (!shutdown_requested_) {
        shutdown_requested_ = true;
        asio::post(io_, [this] { begin_shutdown(false); });
      }
    }
    wait_io_thread();
  }

  void terminate() {
    {
      std::lock_guard lock(mu_);
      closed_ = true;
      if (!terminated_) {
        terminated_ = true;
        if (!shutdown_requested_) {
          shutdown_requested_ = true;
          asio::post(io_, [this] { begin_shutdown(true); });
        }
      }
    }
    done_cv_.notify_all();
    wait_io_thread();
  }

  bool closed() const noexcept {
    std::lock_guard lock(mu_);
    return closed_;
  }
  bool terminated() const noexcept {
    std::lock_guard lock(mu_);
    return terminated_;
  }

  std::vector<pid_t> worker_pids() const {
    std::lock_guard lock(pids_mu_);
    return live_pids_;
  }
  pid_t zygote_pid() const noexcept { return zygote_pid_.load(); }

 private:
  // ---- caller side ----------------------------------------------------------------------------

  void check_open() const {
    if (terminated_) throw PoolStateError("the pool has been terminated");
    if (closed_) throw PoolStateError("the pool is closed: no new tasks can be submitted");
    if (broken_flag_) std::rethrow_exception(broken_flag_);
  }

  void wait_io_thread() {
    std::lock_guard lock(join_mu_);
    if (io_thread_.joinable()) io_thread_.join();
  }

  // ---- I/O thread -------------------------------------------------------------------------------

  void run_io() {
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
  }

  void io_fault(const char* what, int faults) noexcept {
    try {
      break_pool(std::string("the pool is broken: unexpected error on its I/O thread: ") + what);
      fail_everything(broken_);
      if (faults > 2) {
        maybe_finish_shutdown(true);  // shutting down keeps failing: just stop
      } else if (!shutting_down_) {
        {
          std::lock_guard lock(mu_);
          shutdown_requested_ = true;
        }
        begin_shutdown(true);
      }
    } catch (...) {
      io_.stop();  // nothing more can be done; run_io's epilogue fails what is left
    }
  }

  void task_finished(std::size_t n) {
    if (n == 0) return;
    bool zero;
    {
      std::lock_guard lock(mu_);
      outstanding_ -= n;
      zero = outstanding_ == 0;
    }
    if (zero) done_cv_.notify_all();
  }

  void fail_task(std::unique_ptr<Task> t, std::exception_ptr e) {
    t->on_error(std::move(e));
    task_finished(1);
  }

  void fail_everything(std::exception_ptr e) {
    std::deque<std::unique_ptr<Task>> all;
    {
      std::lock_guard lock(mu_);
      for (auto& t : inbox_) all.push_back(std::move(t));
      inbox_.clear();
    }
    for (auto& t : pending_) all.push_back(std::move(t));
    pending_.clear();
    for (auto& w : workers_) {
      for (auto& t : w->inflight) all.push_back(std::move(t));
      w->inflight.clear();
      w->write_idx = w->write_off = 0;
    }
    for (auto& t : all) {
      if (t) fail_task(std::move(t), e);
    }
  }

  void publish_pids() {
    std::vector<pid_t> pids;
    for (auto& w : workers_) {
      if (w->pid > 0 && !w->exited) pids.push_back(w->pid);
    }
    std::lock_guard lock(pids_mu_);
    live_pids_ = std::move(pids);
  }

  // Asks the zygote for a worker. Throws when its socket cannot be made (EMFILE, ENFILE).
  void try_spawn_worker() {
    auto [mine, theirs] = make_socketpair(SOCK_STREAM);
    set_nonblocking(mine.get(), true);
    const std::uint64_t serial = ++spawned_;
    auto w = std::make_shared<Worker>(io_, mine.get(), serial);
    mine.release();  // w->sock owns it now
    w->name = name_prefix_ + std::to_string(serial);
    if (!opts_.init_frame().empty()) {
      w->preamble = opts_.init_frame();
      w->init_acked = false;
    }
    w->slot = kNoSlot;
    if (!free_slots_.empty()) {
      w->slot = free_slots_.back();
      free_slots_.pop_back();
      progress_[w->slot].started.store(0);
      progress_[w->slot].finished.store(0);
    }
    try {
      zygote_.request_spawn(theirs.get(), static_cast<unsigned>(serial), w->slot);
    } catch (const std::exception& e) {
      get_logger()->error("cannot reach the zygote to start a worker: {}", e.what());
      if (w->slot != kNoSlot) free_slots_.push_back(w->slot);
      return;  // the zygote watcher reports the breakage
    }
    workers_.push_back(w);
    start_read(w);
    if (!w->preamble.empty()) flush(w);
  }

  // As try_spawn_worker, for a replacement: a failure schedules another attempt (or breaks the
  // pool, see kSpawnGiveUp) instead of throwing. Returns false when it failed.
  bool spawn_worker() noexcept {
    try {
      try_spawn_worker();
      return true;
    } catch (const std::exception& e) {
      spawn_failed(std::string("cannot start a worker: ") + e.what());
    } catch (...) {
      spawn_failed("cannot start a worker");
    }
    return false;
  }

  // Starts workers until there are nproc_ of them, unless a failed start is being retried.
  void replenish() {
    if (zygote_lost_ || broken_ || shutting_down_ || respawn_timer_armed_) return;
    while (active_workers() < nproc_) {
      if (!spawn_worker()) return;
    }
  }

  void spawn_failed(std::string why) noexcept {
    try {
      const auto now = Clock::now();
      if (spawn_failures_++ == 0) {
        first_spawn_failure_ = now;
        respawn_delay_ = kRespawnFirst;
      }
      last_spawn_error_ = std::move(why);
      if (spawn_failures_ == 1 || (spawn_failures_ & (spawn_failures_ - 1)) == 0) {
        get_logger()->warn("{} (attempt {}); trying again", last_spawn_error_, spawn_failures_);
      }
      if (give_up_spawning(now) || respawn_timer_armed_) return;
      if (!respawn_timer_) respawn_timer_ = std::make_unique<asio::steady_timer>(io_);
      respawn_timer_->expires_after(respawn_delay_);
      respawn_delay_ = std::min<Clock::duration>(2 * respawn_delay_, kRespawnCap);
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
  void break_pool(const std::string& msg) {
    if (broken_) return;
    get_logger()->error("{}", msg);
    broken_ = std::make_exception_ptr(PoolStateError(msg));
    {
      std::lock_guard lock(mu_);
      broken_flag_ = broken_;
    }
    fail_everything(broken_);
  }

  // No worker alive, tasks waiting and every start failing for kSpawnGiveUp: break the pool.
  bool give_up_spawning(Clock::time_point now) {
    if (broken_) return true;
    if (spawn_failures_ < 3 || now - first_spawn_failure_ < kSpawnGiveUp) return false;
    for (auto& w : workers_) {
      if (!w->eof) return false;  // someone may still run the tasks
    }
    bool waiting = !pending_.empty();
    {
      std::lock_guard lock(mu_);
      waiting = waiting || !inbox_.empty();
    }
    if (!waiting) return false;
    const auto ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(now - first_spawn_failure_).count();
    const std::string msg = "the pool is broken: it has no worker and none could be started in " +
                            std::to_string(ms) + " ms (" + std::to_string(spawn_failures_) +
                            " attempts); last error: " + last_spawn_error_;
    break_pool(msg);
    return true;
  }

  void watch_zygote() {
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

  WorkerPtr find_worker(std::uint64_t serial, pid_t pid) {
    for (auto& w : workers_) {
      if ((serial && w->serial == serial) || (pid && w->pid == pid)) return w;
    }
    return nullptr;
  }

  void on_zygote_report(Zygote::Report r) {
    using K = Zygote::Report::Kind;
    if (r.kind == K::kSpawned) {
      spawn_failures_ = 0;
      if (auto w = find_worker(r.index, 0)) {
        w->pid = r.pid;
        w->pidfd = std::move(r.pidfd);
        if (!w->pidfd) {
          get_logger()->debug("no pidfd for {}: signals go through the zygote", w->name);
        }
        if (w->pending_signal != 0) kill_worker(w, std::exchange(w->pending_signal, 0));
        get_logger()->debug("started {} (pid {})", w->name, w->pid);
        publish_pids();
      }
    } else if (r.kind == K::kSpawnFailed) {
      // Noted before finalize(), whose replenish() then waits for the retry timer.
      spawn_failed(std::string("the zygote cannot start a worker: ") + strerror(r.status));
      if (auto w = find_worker(r.index, 0)) {
        w->exited = true;
        w->status = 0;
        w->eof = true;
        finalize(w);
      }
    } else if (r.kind == K::kExited) {
      auto w = find_worker(0, r.pid);
      if (!w) return;
      w->exited = true;
      w->status = r.status;
      if (!w->eof) {
        // Results it wrote before dying are still in the socket: take them first. A grandchild
        // that inherited the socket must not keep us waiting for an EOF, so this is the end.
        on_readable(w);
        w->eof = true;
      }
      finalize(w);
    }
  }

  void on_zygote_lost() {
    if (!shutting_down_) {
      get_logger()->warn("the pool's zygote died; the pool is broken");
      broken_ = std::make_exception_ptr(
          WorkerLostError("the pool's zygote process died; no worker can be started", 0, -1, 0));
      {
        std::lock_guard lock(mu_);
        broken_flag_ = broken_;
      }
    }
    // Workers die with the zygote (PDEATHSIG); nobody will report their exits any more.
    for (auto& w : workers_) {
      if (w->pidfd) pidfd_signal(w->pidfd.get(), SIGKILL);
      w->exited = true;
      w->status = W_EXITCODE(0, SIGKILL);
    }
    zygote_lost_ = true;
    auto ws = workers_;
    for (auto& w : ws) {
      on_readable(w);
      w->eof = true;
      finalize(w);
    }
    fail_everything(broken_ ? broken_ : std::make_exception_ptr(PoolStateError("pool stopped")));
    if (shutting_down_ || broken_) maybe_finish_shutdown(true);
  }

  // ---- writing --------------------------------------------------------------------------------

  void flush(const WorkerPtr& w) {
    if (w->writing || w->gone || w->eof) return;
    for (;;) {
      iovec iov[kMaxIov];
      std::size_t n = 0;
      if (w->preamble_off < w->preamble.size()) {
        iov[n++] = {w->preamble.data() + w->preamble_off, w->preamble.size() - w->preamble_off};
      } else if (w->write_off > 0) {  // finish a partly written frame before any control frame
        Bytes& f = w->inflight[w->write_idx]->frame;
        iov[n++] = {f.data() + w->write_off, f.size() - w->write_off};
      } else {
        if (w->ctrl_off < w->ctrl.size()) {
          iov[n++] = {w->ctrl.data() + w->ctrl_off, w->ctrl.size() - w->ctrl_off};
        }
        for (std::size_t i = w->write_idx; i < w->inflight.size() && n < kMaxIov; ++i) {
          Bytes& f = w->inflight[i]->frame;
          iov[n++] = {f.data(), f.size()};
        }
      }
      if (n == 0) return;
      msghdr mh{};
      mh.msg_iov = iov;
      mh.msg_iovlen = n;
      ssize_t sent = ::sendmsg(w->sock.native_handle(), &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (sent < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
          w->writing = true;
          w->sock.async_wait(asio::posix::stream_descriptor::wait_write,
                             [this, w](std::error_code ec) {
                               w->writing = false;
                               if (!ec && !w->gone) flush(w);
                             });
          return;
        }
        return;  // EPIPE/ECONNRESET: the worker is gone; the reader sees EOF and cleans up
      }
      auto left = static_cast<std::size_t>(sent);
      if (w->preamble_off < w->preamble.size()) {
        const std::size_t k = std::min(left, w->preamble.size() - w->preamble_off);
        w->preamble_off += k;
        left -= k;
      } else if (w->write_off == 0 && w->ctrl_off < w->ctrl.size()) {
        const std::size_t k = std::min(left, w->ctrl.size() - w->ctrl_off);
        w->ctrl_off += k;
        left -= k;
        if (w->ctrl_off == w->ctrl.size()) {
          w->ctrl.clear();
          w->ctrl_off = 0;
        }
      }
      while (left > 0) {
        const std::size_t rest = w->inflight[w->write_idx]->frame.size() - w->write_off;
        if (left >= rest) {
          left -= rest;
          ++w->write_idx;
          w->write_off = 0;
        } else {
          w->write_off += left;
          left = 0;
        }
      }
    }
  }

  // ---- reading --------------------------------------------------------------------------------

  void start_read(const WorkerPtr& w) {
    if (w->reading || w->gone || w->eof) return;
    w->reading = true;
    w->sock.async_wait(asio::posix::stream_descriptor::wait_read, [this, w](std::error_code ec) {
      w->reading = false;
      if (ec || w->gone) return;
      on_readable(w);
      arm_head_timer(w);
      if (w->eof) {
        if (w->exited) {
          finalize(w);
        } else {
          await_exit(w);
        }
      } else {
        start_read(w);
      }
      dispatch();
    });
  }

  void on_readable(const WorkerPtr& w) {
    std::size_t completed = 0;
    for (int rounds = 0; rounds < 64 && !w->eof; ++rounds) {
      if (w->rend == w->rbuf.size()) {
        if (w->rbeg > 0) {
          std::memmove(w->rbuf.data(), w->rbuf.data() + w->rbeg, w->rend - w->rbeg);
          w->rend -= w->rbeg;
          w->rbeg = 0;
        } else {
          w->rbuf.resize(w->rbuf.size() * 2);
        }
      }
      const ssize_t n = ::recv(w->sock.native_handle(), w->rbuf.data() + w->rend,
                               w->rbuf.size() - w->rend, MSG_DONTWAIT);
      if (n == 0) {
        w->eof = true;
        break;
      }
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) w->eof = true;
        break;
      }
      w->rend += static_cast<std::size_t>(n);
      completed += parse_frames(w);
      if (w->fault) break;
    }
    task_finished(completed);
  }

  // Handles every complete frame in the buffer; returns how many tasks completed.
  std::size_t parse_frames(const WorkerPtr& w) {
    std::size_t completed = 0;
    while (!w->fault) {
      std::optional<FrameHeader> h;
      try {
        h = parse_frame_header({w->rbuf.data() + w->rbeg, w->rend - w->rbeg},
                               opts_.max_frame_bytes);
        if (h && h->kind != FrameKind::kResultOk && h->kind != FrameKind::kResultErr &&
            h->kind != FrameKind::kRetiring) {
          throw SerializationError("corrupt frame from worker: unexpected kind");
        }
      } catch (const SerializationError&) {
        protocol_fault(w, std::current_exception());
        break;
      }
      if (!h) break;
      const std::size_t need = kFrameHeaderSize + h->length;
      if (w->rend - w->rbeg < need) {
        if (w->rbuf.size() - w->rbeg < need) {  // room for a large frame, allocated once
          std::memmove(w->rbuf.data(), w->rbuf.data() + w->rbeg, w->rend - w->rbeg);
          w->rend -= w->rbeg;
          w->rbeg = 0;
          if (w->rbuf.size() < need) w->rbuf.resize(need);
        }
        break;
      }
      const std::span<const char> payload(w->rbuf.data() + w->rbeg + kFrameHeaderSize, h->length);
      w->rbeg += need;
      if (h->kind == FrameKind::kRetiring) {
        get_logger()->debug("{} (pid {}) is over its memory cap; replacing it", w->name, w->pid);
        w->announced_retire = true;
        if (!w->retiring) {
          w->retiring = true;
          if (!shutting_down_ && !zygote_lost_ && !respawn_timer_armed_) spawn_worker();
        }
        continue;
      }
      if (!w->init_acked && h->task_id == 0) {
        w->init_acked = true;
        if (h->kind == FrameKind::kResultErr) initializer_failed(decode_exception(payload));
        continue;
      }
      if (w->write_idx == 0 || w->inflight.empty() || w->inflight.front()->id != h->task_id) {
        protocol_fault(w, std::make_exception_ptr(SerializationError(
                              "corrupt frame from worker: result for a task it was not given")));
        break;
      }
      std::unique_ptr<Task> t = std::move(w->inflight.front());
      w->inflight.pop_front();
      --w->write_idx;
      ++w->received;
      const double ns = static_cast<double>(h->aux);
      w->ewma_ns = w->ewma_ns == 0 ? ns : 0.8 * w->ewma_ns + 0.2 * ns;
      pool_ewma_ns_ = pool_ewma_ns_ == 0 ? ns : 0.9 * pool_ewma_ns_ + 0.1 * ns;
      if (h->kind == FrameKind::kResultOk) {
        t->on_ok(payload);
      } else {
        t->on_error(decode_exception(payload));
      }
      ++completed;
    }
    if (w->rbeg == w->rend) w->rbeg = w->rend = 0;
    return completed;
  }

  void protocol_fault(const WorkerPtr& w, std::exception_ptr e) {
    get_logger()->warn("{} (pid {}) sent a corrupt frame; killing it", w->name, w->pid);
    w->fault = std::move(e);
    kill_worker(w, SIGKILL);
    w->eof = true;
  }

  void initializer_failed(std::exception_ptr e) {
    get_logger()->error("the pool's initializer failed; the pool is broken");
    if (!broken_) {
      broken_ = e;
      std::lock_guard lock(mu_);
      broken_flag_ = e;
    }
    fail_everything(e);
  }

  void kill_worker(const WorkerPtr& w, int sig) {
    if (w->exited) return;
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

  void await_exit(const WorkerPtr& w) {
    if (w->exit_timer) return;
    // EOF came first; the exit report normally follows within microseconds. A worker that
    // closed its socket but lives on is killed.
    w->exit_timer = std::make_unique<asio::steady_timer>(io_, kExitReportWait);
    w->exit_timer->async_wait([this, w](std::error_code ec) {
      if (ec || w->gone) return;
      kill_worker(w, SIGKILL);
    });
  }

  // ---- death and replacement ------------------------------------------------------------------

  void finalize(const WorkerPtr& w) {
    if (w->gone || !w->eof || !w->exited) return;
    w->gone = true;
    if (w->exit_timer) w->exit_timer->cancel();
    if (w->head_timer) w->head_timer->cancel();
    if (w->kill_timer) w->kill_timer->cancel();
    std::error_code ignored;
    w->sock.cancel(ignored);
    w->sock.close(ignored);
    workers_.erase(std::remove(workers_.begin(), workers_.end(), w), workers_.end());
    publish_pids();
    // Its slot is free again once its counters have been read below.
    struct SlotReturn {
      std::vector<unsigned>& free;
      unsigned slot;
      ~SlotReturn() {
        if (slot != kNoSlot) free.push_back(slot);
      }
    } slot_return{free_slots_, w->slot};

    const bool clean = WIFEXITED(w->status) && WEXITSTATUS(w->status) == 0;
    if (!w->init_acked && !shutting_down_ && !w->fault) {
      // Died inside its initializer (a crash, not an exception): retrying forever is CPython's
      // bug; three in a row and the pool is broken.
      if (++init_deaths_ >= 3 && !broken_) {
        initializer_failed(std::make_exception_ptr(
            WorkerLostError("worker " + w->name + " " + describe_status(w->status) +
                                " while running the pool's initializer (3 times in a row)",
                            w->pid, WIFEXITED(w->status) ? WEXITSTATUS(w->status) : -1,
                            WIFSIGNALED(w->status) ? WTERMSIG(w->status) : 0)));
      }
    } else if (w->init_acked) {
      init_deaths_ = 0;
    }
    if (!w->inflight.empty()) {  // The worker's progress counters say which of the tasks it holds
                                 // ran: replies leave in
      // batches, so some may have finished with their results still inside the dead worker
      // (they ran once: fail them, never run them again); one may have been running (the
      // culprit); the rest never started and go back to the front of the queue, in order.
      std::size_t finished_unsent = 0;
      bool running = false;
      if (w->slot != kNoSlot) {
        const WorkerProgress& p = progress_[w->slot];
        const std::uint64_t started = p.started.load(std::memory_order_acquire);
        const std::uint64_t finished = p.finished.load(std::memory_order_acquire);
        finished_unsent = static_cast<std::size_t>(finished - std::min(finished, w->received));
        running = started > finished;
      } else {
        running = w->write_idx > 0 && w->init_acked && !w->announced_retire;
      }
      finished_unsent = std::min(finished_unsent, w->inflight.size());
      if (w->fault) {  // it sent garbage: the task it was given first is the one to blame
        finished_unsent = 0;
        running = true;
      }
      const int code = WIFEXITED(w->status) ? WEXITSTATUS(w->status) : -1;
      const int sig = WIFSIGNALED(w->status) ? WTERMSIG(w->status) : 0;
      for (std::size_t i = 0; i < finished_unsent; ++i) {
        auto t = std::move(w->inflight.front());
        w->inflight.pop_front();
        const std::string msg = "worker " + w->name + " (pid " + std::to_string(w->pid) + ") " +
                                describe_status(w->status) + " after running task " +
                                std::to_string(t->id) + " but before sending its result";
        fail_task(std::move(t), std::make_exception_ptr(WorkerLostError(msg, w->pid, code, sig)));
      }
      std::unique_ptr<Task> head;
      if (running && !w->inflight.empty()) {
        head = std::move(w->inflight.front());
        w->inflight.pop_front();
      }
      for (auto it = w->inflight.rbegin(); it != w->inflight.rend(); ++it) {
        // A cancel that killed the worker before the task started still cancels it.
        if ((*it)->id == w->cancelled_head) {
          fail_task(std::move(*it),
                    std::make_exception_ptr(CancelledError("the task was cancelled")));
          continue;
        }
        pending_.push_front(std::move(*it));
      }
      w->inflight.clear();
      if (head) {
        if (head->id == w->cancelled_head) {
          fail_task(std::move(head),
                    std::make_exception_ptr(CancelledError("the task was cancelled")));
        } else if (head->id == w->timed_out) {
          const auto ms =
              std::chrono::duration_cast<std::chrono::milliseconds>(timeout_of(*head)).count();
          std::string msg = "task " + std::to_string(head->id) + " exceeded its time limit of " +
                            std::to_string(ms) + " ms; worker " + w->name + " (pid " +
                            std::to_string(w->pid) + ") was stopped";
          get_logger()->warn("{}", msg);
          fail_task(std::move(head), std::make_exception_ptr(TaskTimeoutError(msg)));
        } else if (w->fault) {
          fail_task(std::move(head), w->fault);
        } else if (++head->crashes <= opts_.max_retries && !broken_) {
          get_logger()->warn("{} (pid {}) {} while running task {}; retrying it ({} of {})",
                             w->name, w->pid, describe_status(w->status), head->id, head->crashes,
                             opts_.max_retries);
          pending_.push_front(std::move(head));
        } else {
          std::string msg = "worker " + w->name + " (pid " + std::to_string(w->pid) + ") " +
                            describe_status(w->status) + " while running task " +
                            std::to_string(head->id);
          if (head->crashes > 1) msg += " (" + std::to_string(head->crashes) + " attempts)";
          // Only a throw's stack is captured (ThrowCapture), not a fatal signal's: the message
          // says so, where one would look for it.
          if (sig != 0) {
            msg +=
                "; its stack is not available: mproc captures a task's stack when it throws, "
                "not when its worker dies on a signal";
          }
          get_logger()->warn("{}", msg);
          fail_task(std::move(head),
                    std::make_exception_ptr(WorkerLostError(msg, w->pid, code, sig)));
        }
      }
    } else if (!clean && !shutting_down_) {
      get_logger()->warn("{} (pid {}) {} while idle", w->name, w->pid, describe_status(w->status));
    } else {
      get_logger()->debug("{} (pid {}) exited", w->name, w->pid);
    }
    if (broken_) fail_everything(broken_);

    if (shutting_down_) {
      maybe_finish_shutdown(false);
      return;
    }
    // A retiring worker's replacement was started when it retired (if it could be).
    replenish();
    dispatch();
  }

  std::size_t active_workers() const {
    std::size_t n = 0;
    for (auto& w : workers_) n += (!w->retiring && !w->eof && !w->fault) ? 1 : 0;
    return n;
  }

  // ---- dispatch -------------------------------------------------------------------------------

  std::size_t capacity(const Worker& w) const {
    if (w.retiring || w.eof || w.fault || w.gone || w.timed_out || w.cancelled_head) return 0;
    // How many tasks to keep in a worker's pipe: enough to hide the round trip for short
    // tasks, one for long ones (a second task queued behind a long one would wait for it while
    // another worker may be idle), and one while nothing is known about the tasks' length.
    const double est = w.ewma_ns > 0 ? w.ewma_ns : pool_ewma_ns_;
    std::size_t depth = 1;
    if (est > 0 && est < kNoPipelineNs) {
      depth = std::clamp(static_cast<std::size_t>(kPipelineBudgetNs / est), kMinDepth, kMaxDepth);
    }
    std::size_t cap = w.inflight.size() >= depth ? 0 : depth - w.inflight.size();
    if (opts_.maxtasksperchild) cap = std::min(cap, opts_.maxtasksperchild - w.assigned);
    return cap;
  }

  void dispatch() {
    {
      std::lock_guard lock(mu_);
      wake_pending_ = false;
      for (auto& t : inbox_) pending_.push_back(std::move(t));
      inbox_.clear();
    }
    if (broken_) {
      fail_everything(broken_);
      return;
    }
    if (pending_.empty() || shutting_down_) return;
    std::vector<WorkerPtr> touched;
    std::size_t successors = 0;  // started after the loop: spawning grows workers_
    for (bool progress = true; progress && !pending_.empty();) {
      progress = false;
      std::size_t with_room = 0;
      for (auto& w : workers_) with_room += capacity(*w) > 0 ? 1 : 0;
      if (with_room == 0) break;
      const std::size_t share = (pending_.size() + with_room - 1) / with_room;
      for (auto& w : workers_) {
        std::size_t take = std::min(capacity(*w), share);
        if (take == 0) continue;
        take = std::min(take, pending_.size());
        for (std::size_t i = 0; i < take; ++i) {
          w->inflight.push_back(std::move(pending_.front()));
          pending_.pop_front();
        }
        w->assigned += take;
        progress = true;
        touched.push_back(w);
        if (opts_.maxtasksperchild && w->assigned >= opts_.maxtasksperchild && !w->retiring) {
          // Start its successor now, while it finishes its quota, but never more than one
          // generation ahead (a successor given its quota at once would start another, and
          // so on): past that, finalize() replaces it when it exits.
          w->retiring = true;
          if (!zygote_lost_ && workers_.size() + successors < 2 * nproc_) ++successors;
        }
        if (pending_.empty()) break;
      }
    }
    for (auto& w : touched) {
      flush(w);
      arm_head_timer(w);
    }
    if (successors == 0) return;
    for (std::size_t i = 0; i < successors && !respawn_timer_armed_; ++i) {
      if (!spawn_worker()) break;  // the retry timer replaces it when it has exited
    }
    if (!pending_.empty()) dispatch();  // the successors have room
  }

  // ---- time limits and cancellation -----------------------------------------------------------

  std::chrono::nanoseconds timeout_of(const Task& t) const {
    return t.timeout.count() > 0 ? t.timeout : opts_.task_timeout;
  }

  // Times the task at the head of the worker's queue: it is running once its frame is written
  // (the worker starts it as soon as it has answered the one before).
  void arm_head_timer(const WorkerPtr& w) {
    if (w->gone || w->timed_out || w->inflight.empty() || w->write_idx == 0) return;
    w->inflight.front()->on_start();  // AsyncResult::running()
    const Task& head = *w->inflight.front();
    if (head.id == w->timed_head) return;
    w->timed_head = head.id;
    const auto limit = timeout_of(head);
    if (limit.count() <= 0) {
      if (w->head_timer) w->head_timer->cancel();
      return;
    }
    if (!w->head_timer) w->head_timer = std::make_unique<asio::steady_timer>(io_);
    w->head_timer->expires_after(limit);
    const std::uint64_t id = head.id;
    w->head_timer->async_wait([this, w, id](std::error_code ec) {
      if (ec || w->gone || w->inflight.empty() || w->inflight.front()->id != id) return;
      w->timed_out = id;
      stop_worker(w);
    });
  }

  // SIGTERM now, SIGKILL after the grace period.
  void stop_worker(const WorkerPtr& w) {
    kill_worker(w, SIGTERM);
    if (!w->kill_timer) w->kill_timer = std::make_unique<asio::steady_timer>(io_);
    w->kill_timer->expires_after(opts_.timeout_grace);
    w->kill_timer->async_wait([this, w](std::error_code ec) {
      if (!ec && !w->gone) kill_worker(w, SIGKILL);
    });
  }

  void cancel_one(std::uint64_t id) {
    const auto cancelled = std::make_exception_ptr(CancelledError("the task was cancelled"));
    for (auto it = pending_.begin(); it != pending_.end(); ++it) {
      if ((*it)->id == id) {
        auto t = std::move(*it);
        pending_.erase(it);
        fail_task(std::move(t), cancelled);
        return;
      }
    }
    for (auto& w : workers_) {
      for (std::size_t i = 0; i < w->inflight.size(); ++i) {
        if (w->inflight[i]->id != id) continue;
        const bool unsent = i > w->write_idx || (i == w->write_idx && w->write_off == 0);
        if (unsent) {
          auto t = std::move(w->inflight[i]);
          w->inflight.erase(w->inflight.begin() + static_cast<std::ptrdiff_t>(i));
          --w->assigned;
          fail_task(std::move(t), cancelled);
        } else if (i == 0) {
          w->cancelled_head = id;  // running: stop it; the pool replaces the worker
          kill_worker(w, SIGKILL);
        } else {
          // Waiting in the worker's pipe: ask it to skip the task.
          const std::size_t at = begin_frame(w->ctrl);
          finish_frame(w->ctrl, at, FrameKind::kCancel, id, 0);
          flush(w);
        }
        return;
      }
    }
  }

  // ---- shutdown -------------------------------------------------------------------------------

  void begin_shutdown(bool terminate) {
    if (shutting_down_) return;  // io_fault() began it already
    shutting_down_ = true;
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
      // Closing our end is the worker's signal to exit.
      for (auto& w : workers_) ::shutdown(w->sock.native_handle(), SHUT_WR);
      kill_timer_ = std::make_unique<asio::steady_timer>(io_, kExitReportWait);
      kill_timer_->async_wait([this](std::error_code ec) {
        if (ec) return;
        for (auto& w : workers_) kill_worker(w, SIGKILL);
      });
    }
    maybe_finish_shutdown(false);
  }

  void maybe_finish_shutdown(bool force) {
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
      w->gone = true;
      w->sock.close(ignored);
    }
    fail_everything(std::make_exception_ptr(PoolStateError("the pool has shut down")));
    workers_.clear();
    publish_pids();
    io_.stop();
  }

  PoolOptions opts_;
  std::size_t nproc_;
  double pool_ewma_ns_ = 0;  // task duration over all workers: a new worker's first guess
  StartMethod method_;
  std::string name_prefix_;
  std::shared_ptr<CallbackRunner> runner_;
  asio::io_context io_;
  std::thread io_thread_;
  std::mutex join_mu_;
  Zygote zygote_;
  std::atomic<pid_t> zygote_pid_{0};
  std::unique_ptr<asio::posix::stream_descriptor> control_;
  std::atomic<std::uint64_t> next_id_{1};

  // Shared with callers, under mu_.
  mutable std::mutex mu_;
  std::condition_variable done_cv_;
  std::vector<std::unique_ptr<Task>> inbox_;
  std::size_t outstanding_ = 0;
  bool wake_pending_ = false;
  bool closed_ = false;
  bool terminated_ = false;
  bool shutdown_requested_ = false;
  std::exception_ptr broken_flag_;

  mutable std::mutex pids_mu_;
  std::vector<pid_t> live_pids_;

  // I/O thread only.
  std::deque<std::unique_ptr<Task>> pending_;
  std::vector<WorkerPtr> workers_;
  std::uint64_t spawned_ = 0;
  WorkerProgress* progress_ = nullptr;
  unsigned slots_ = 0;
  std::vector<unsigned> free_slots_;
  unsigned init_deaths_ = 0;
  std::exception_ptr broken_;
  bool shutting_down_ = false;
  bool zygote_lost_ = false;
  bool finished_ = false;
  std::unique_ptr<asio::steady_timer> kill_timer_;
  std::unique_ptr<asio::steady_timer> shutdown_deadline_;
  // Starting workers that failed, retried with a backoff.
  std::unique_ptr<asio::steady_timer> respawn_timer_;
  bool respawn_timer_armed_ = false;
  unsigned spawn_failures_ = 0;  // in a row; a worker reported started resets it
  Clock::time_point first_spawn_failure_{};
  Clock::duration respawn_delay_ = kRespawnFirst;
  std::string last_spawn_error_;
};

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

}  // namespace mproc::detail
