// A worker rank of an mpirun job: the tasks of rank 0's MPI pool run in a local process pool
// here, so a task that crashes, hangs or leaks takes down one worker process of this rank,
// never the rank (whose death would end the MPI job). Built only with MPROC_WITH_MPI; the
// protocol is in mproc/worker/detail/mpi_rank.hpp.
//
// The rank's main thread makes every MPI call: it polls for rank 0's messages, opens and ends
// the local pool, submits tasks, and sends the replies the local pool's I/O thread posts.
// Between messages it backs off as rank 0's engine does, and wakes at once for a reply.
#include "mpi_rank_host.hpp"

#include <mpi.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "mproc/errors.hpp"
#include "mproc/logging.hpp"
#include "mproc/pool/detail/engine.hpp"
#include "mproc/pool/pool_options.hpp"
#include "mproc/runtime/detail/forkserver.hpp"
#include "mproc/serialize/detail/exception_wire.hpp"
#include "mproc/serialize/detail/frame.hpp"
#include "mproc/worker/detail/mpi_rank.hpp"

namespace mproc::detail {
namespace {

using namespace mpi_rank;

std::string host_name() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0) return "?";
  return buf;
}

// The result frame for a task that failed. The failures this rank's pool decides (a lost
// worker, a time limit) say where they happened: on many hosts "worker pid 4242" alone names
// nothing. (On the wire a WorkerLostError keeps its message, not its pid and signal fields.)
Bytes error_frame(std::uint64_t id, std::uint64_t run_ns, const std::exception_ptr& e,
                  const std::string& where) noexcept {
  try {
    Bytes out;
    const std::size_t at = begin_frame(out);
    try {
      if (!e) throw PoolStateError("no pool is open on this rank (" + where + ")");
      try {
        std::rethrow_exception(e);
      } catch (const WorkerLostError& x) {
        throw WorkerLostError(std::string(x.what()) + " (" + where + ")", x.pid(), x.exit_code(),
                              x.signal());
      } catch (const TaskTimeoutError& x) {
        throw TaskTimeoutError(std::string(x.what()) + " (" + where + ")");
      }
    } catch (...) {
      encode_current_exception(out);
    }
    finish_frame(out, at, FrameKind::kResultErr, id, run_ns, kMaxMessage);
    return out;
  } catch (...) {
    return {};  // no memory: the caller logs it
  }
}

PoolOptions local_options(const RankPoolConfig& c, std::span<const char> init_frame) {
  PoolOptions o;
  o.processes = static_cast<std::size_t>(c.workers);
  o.maxtasksperchild = static_cast<std::size_t>(c.maxtasksperchild);
  o.max_retries = static_cast<unsigned>(c.max_retries);
  o.max_memory_per_child = static_cast<std::size_t>(c.max_memory_per_child);
  o.max_address_space_per_child = static_cast<std::size_t>(c.max_address_space_per_child);
  o.task_timeout = std::chrono::nanoseconds(c.task_timeout_ns);
  o.timeout_grace = std::chrono::nanoseconds(c.timeout_grace_ns);
  o.soft_timeout = std::chrono::nanoseconds(c.soft_timeout_ns);
  o.max_frame_bytes = static_cast<std::size_t>(c.max_frame_bytes);
  // The fork server was forked before MPI_Init: its workers carry no MPI state.
  if (c.start_method >= 0 && c.start_method <= static_cast<int>(StartMethod::kSpawn)) {
    o.start_method = static_cast<StartMethod>(c.start_method);
  } else {
    o.start_method = forkserver_running() ? StartMethod::kForkserver : StartMethod::kFork;
  }
  o.set_init_frame(std::vector<char>(init_frame.begin(), init_frame.end()));
  return o;
}

class RankHost;

// One of rank 0's tasks in this rank's local pool: its outcome goes back as a result frame.
class RankTask final : public Task {
 public:
  RankTask(RankHost& host, int tag) : host_(host), tag_(tag) {}
  void on_ok(std::span<const char> payload) noexcept override;
  void on_error(std::exception_ptr error) noexcept override;

 private:
  RankHost& host_;
  const int tag_;
};

class RankHost {
 public:
  explicit RankHost(int rank)
      : rank_(rank), where_("on host " + host_name() + ", MPI rank " + std::to_string(rank)) {}

  // Serves pools until rank 0 shuts the job down.
  void run() {
    Backoff idle;
    while (!shutdown_) {
      bool worked = poll();
      worked |= flush();
      if (worked) {
        idle.reset();
        continue;
      }
      const std::chrono::microseconds d = idle.next();
      if (d.count() == 0) {
        std::this_thread::yield();
      } else {
        std::unique_lock lock(mu_);
        cv_.wait_for(lock, d, [&] { return !outbox_.empty(); });
      }
    }
    if (engine_) end_pool(tag_, /*kill=*/true, /*confirm=*/false);
  }

  // The local pool's I/O thread: a reply to send.
  void post(int tag, Bytes frame) noexcept {
    if (frame.empty()) {
      get_logger()->error("MPI rank {}: no memory for a task's reply; it is lost", rank_);
      return;
    }
    try {
      std::lock_guard lock(mu_);
      outbox_.emplace_back(tag, std::move(frame));
    } catch (...) {
      get_logger()->error("MPI rank {}: no memory for a task's reply; it is lost", rank_);
      return;
    }
    cv_.notify_one();
  }

  const std::string& where() const noexcept { return where_; }

 private:
  // One message from rank 0 handled; false when none was waiting.
  bool poll() {
    int flag = 0;
    MPI_Message msg;
    MPI_Status st;
    MPI_Improbe(0, MPI_ANY_TAG, MPI_COMM_WORLD, &flag, &msg, &st);
    if (!flag) return false;
    int n = 0;
    MPI_Get_count(&st, MPI_BYTE, &n);
    Bytes in(static_cast<std::size_t>(n));  // a task keeps it as its frame
    MPI_Mrecv(in.data(), n, MPI_BYTE, &msg, &st);
    if (st.MPI_TAG == kTagShutdown) {
      shutdown_ = true;
    } else if (st.MPI_TAG == kTagControl) {
      control(in);
    } else {
      task(st.MPI_TAG, std::move(in));
    }
    return true;
  }

  void control(std::span<const char> bytes) {
    const std::optional<ParsedControl> c = parse_control(bytes);
    if (!c) {
      get_logger()->warn("MPI rank {}: a malformed control message from rank 0; dropped", rank_);
      return;
    }
    switch (c->control.kind) {
      case ControlKind::kOpen:
        open_pool(*c);
        break;
      case ControlKind::kCancel:
        if (engine_ && c->control.pool_tag == tag_) {
          try {
            engine_->cancel({c->control.value});
          } catch (const std::exception& e) {
            get_logger()->warn("MPI rank {}: cancel failed: {}", rank_, e.what());
          }
        }
        break;
      case ControlKind::kEnd:
        end_pool(c->control.pool_tag, c->control.value != 0, /*confirm=*/true);
        break;
      default:
        break;
    }
  }

  void open_pool(const ParsedControl& c) {
    if (engine_) end_pool(tag_, /*kill=*/true, /*confirm=*/false);  // never left open by rank 0
    tag_ = c.control.pool_tag;
    open_error_ = nullptr;
    std::uint64_t workers = 0;
    try {
      engine_ = make_process_engine(local_options(c.config, c.init_frame));
      workers = engine_->processes();
    } catch (const std::exception& e) {
      open_error_ = std::current_exception();
      get_logger()->error("MPI rank {}: its local pool could not be made: {}", rank_, e.what());
    } catch (...) {
      open_error_ = std::current_exception();
    }
    send_control(Control{ControlKind::kOpened, tag_, workers});
  }

  // Ends the pool of `tag` (after its last task, or killing its workers) and, when rank 0 asked,
  // confirms it: nothing of that tag follows the confirmation.
  void end_pool(int tag, bool kill, bool confirm) {
    if (engine_ && tag == tag_) {
      try {
        if (kill) {
          engine_->terminate();
        } else {
          engine_->close();
          engine_->join();
        }
      } catch (const std::exception& e) {
        get_logger()->warn("MPI rank {}: ending its local pool: {}", rank_, e.what());
      }
      engine_.reset();  // its tasks' replies still posted carry the old tag: flush drops them
      tag_ = -1;
      open_error_ = nullptr;
    }
    if (confirm) send_control(Control{ControlKind::kEnded, tag, 0});
  }

  void task(int tag, Bytes message) {
    if (tag != tag_) return;  // a task of a pool already ended here: no one waits for it
    const std::optional<TaskLimits> limits = take_limits(message);
    if (!limits) {
      get_logger()->warn("MPI rank {}: a task message too short to hold a frame; dropped", rank_);
      return;
    }
    const std::uint64_t id = frame_task_id(message);
    if (!engine_) {
      post(tag, error_frame(id, 0, open_error_, where_));
      return;
    }
    auto t = std::make_unique<RankTask>(*this, tag);
    t->id = id;
    t->frame = std::move(message);
    t->timeout = std::chrono::nanoseconds(limits->hard_ns);
    t->soft_timeout = std::chrono::nanoseconds(limits->soft_ns);
    try {
      engine_->submit(std::move(t));
    } catch (...) {  // the local pool is broken (its initializer failed): the task fails so
      post(tag, error_frame(id, 0, std::current_exception(), where_));
    }
  }

  // Sends the replies posted so far that belong to the open pool.
  bool flush() {
    {
      std::lock_guard lock(mu_);
      if (outbox_.empty()) return false;
      sending_.swap(outbox_);
    }
    for (auto& [tag, frame] : sending_) {
      if (tag != tag_) continue;
      MPI_Send(frame.data(), static_cast<int>(frame.size()), MPI_BYTE, 0, tag, MPI_COMM_WORLD);
    }
    sending_.clear();
    return true;
  }

  void send_control(Control c) {
    const Bytes m = encode_control(c);
    MPI_Send(m.data(), static_cast<int>(m.size()), MPI_BYTE, 0, kTagControl, MPI_COMM_WORLD);
  }

  const int rank_;
  const std::string where_;
  bool shutdown_ = false;
  int tag_ = -1;  // the pool this rank serves now (-1: none)
  std::shared_ptr<PoolEngine> engine_;
  std::exception_ptr open_error_;  // why the open pool's local pool could not be made

  std::mutex mu_;  // outbox_, shared with the local pool's I/O thread
  std::condition_variable cv_;
  std::vector<std::pair<int, Bytes>> outbox_;
  std::vector<std::pair<int, Bytes>> sending_;  // main thread only
};

void RankTask::on_ok(std::span<const char> payload) noexcept {
  Bytes out;
  try {
    out.reserve(kFrameHeaderSize + payload.size());
    const std::size_t at = begin_frame(out);
    out.insert(out.end(), payload.begin(), payload.end());
    finish_frame(out, at, FrameKind::kResultOk, id, run_ns, kMaxMessage);
  } catch (...) {
    out = error_frame(id, run_ns, std::current_exception(), host_.where());
  }
  host_.post(tag_, std::move(out));
}

void RankTask::on_error(std::exception_ptr error) noexcept {
  host_.post(tag_, error_frame(id, run_ns, error, host_.where()));
}

}  // namespace

void serve_mpi_rank(int rank) noexcept {
  try {
    RankHost host(rank);
    host.run();
  } catch (const std::exception& e) {
    get_logger()->critical("MPI rank {} cannot go on: {}; aborting the job", rank, e.what());
    MPI_Abort(MPI_COMM_WORLD, 1);
  } catch (...) {
    get_logger()->critical("MPI rank {} cannot go on; aborting the job", rank);
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
}

}  // namespace mproc::detail
