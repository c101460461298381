// mproc/worker/detail/mpi_rank.hpp — what the ranks of an mpirun job (worker/src/mpi_rank.cpp)
// share with rank 0's MPI engine (pool/src/mpi_engine.cpp). Internal; its functions exist only
// with MPROC_WITH_MPI. No MPI types here: MPI stays a private dependency of mproc.
//
// Protocol (one mechanism for every message between rank 0 and a worker rank):
//
//   tag             direction  message
//   kTagShutdown    0 -> r     empty: finalize MPI and exit (rank 0's exit)
//   kTagControl     0 -> r     Control{kOpen, pool tag}, RankPoolConfig, the initializer frame
//                              (maybe empty): make the local pool that serves this pool tag
//                   0 -> r     Control{kCancel, pool tag, task id}: cancel it (a running task's
//                              worker is killed)
//                   0 -> r     Control{kEnd, pool tag, terminate?}: end the local pool (kill its
//                              workers when `value` is 1, else close and join it)
//                   r -> 0     Control{kOpened, pool tag, workers}: the local pool runs this
//                              many workers (0: it could not be made; its tasks fail)
//                   r -> 0     Control{kEnded, pool tag}: the local pool is gone; nothing of
//                              that pool tag follows
//   a pool tag      0 -> r     a task frame followed by TaskLimits (its time limits)
//                   r -> 0     the task's result frame (aux: its run time in ns), in any order
//
// A pool takes a new tag, so a reply to an earlier pool's task is recognised and dropped;
// rank 0 owes each rank it opened a pool on one kEnded, which the next pool or the exit
// receives. Messages from one rank to another arrive in the order they were sent (MPI's
// non-overtaking rule for one communicator and a wildcard tag).
//
// Thread safety: Rank0State is shared by rank 0's main thread (init, exit) and the I/O thread
// of the one live MPI engine; `mu` serialises every MPI call among them (MPI_THREAD_SERIALIZED).
// Backoff and the records are value types; the codec functions are pure.
#pragma once

#include <sys/types.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdint>
#include <cstring>
#include <functional>
#include <mutex>
#include <optional>
#include <span>
#include <thread>
#include <type_traits>
#include <vector>

#include "mproc/serialize/detail/frame.hpp"

namespace mproc::detail::mpi_rank {

inline constexpr int kTagShutdown = 1;
inline constexpr int kTagControl = 2;
inline constexpr int kFirstPoolTag = 3;
inline constexpr int kPoolTags = 30000;  // MPI guarantees tags up to 32767
// A frame's length field is 32 bits; MPI counts are ints.
inline constexpr std::size_t kMaxMessage = INT_MAX - kFrameHeaderSize;

enum class ControlKind : std::uint32_t {
  kOpen = 1,
  kCancel = 2,
  kEnd = 3,
  kOpened = 4,
  kEnded = 5,
};

struct Control {
  ControlKind kind = ControlKind::kOpen;
  std::int32_t pool_tag = 0;
  std::uint64_t value = 0;
};
static_assert(sizeof(Control) == 16 && std::is_trivially_copyable_v<Control>);

// What a worker rank's local pool is made with: the PoolOptions that apply on a rank (both ends
// run one binary, so the layout is shared). Durations in ns; start_method -1: the rank's choice.
struct RankPoolConfig {
  std::uint64_t workers = 0;  // 0: the rank's CPU count (its affinity mask)
  std::uint64_t maxtasksperchild = 0;
  std::uint64_t max_retries = 0;
  std::uint64_t max_memory_per_child = 0;
  std::uint64_t max_address_space_per_child = 0;
  std::int64_t task_timeout_ns = 0;
  std::int64_t timeout_grace_ns = 0;
  std::int64_t soft_timeout_ns = 0;
  std::uint64_t max_frame_bytes = 0;
  std::int32_t start_method = -1;
  std::uint32_t reserved = 0;
};
static_assert(sizeof(RankPoolConfig) == 80 && std::is_trivially_copyable_v<RankPoolConfig>);

// A task's own time limits (with_timeout, with_soft_timeout), after its frame; 0: the pool's.
struct TaskLimits {
  std::int64_t hard_ns = 0;
  std::int64_t soft_ns = 0;
};
static_assert(sizeof(TaskLimits) == 16 && std::is_trivially_copyable_v<TaskLimits>);

// A control message: the record, then (kOpen) the config and the initializer frame.
inline Bytes encode_control(Control c, const RankPoolConfig* config = nullptr,
                            std::span<const char> init_frame = {}) {
  Bytes out(sizeof c + (config != nullptr ? sizeof *config + init_frame.size() : 0));
  std::memcpy(out.data(), &c, sizeof c);
  if (config != nullptr) {
    std::memcpy(out.data() + sizeof c, config, sizeof *config);
    if (!init_frame.empty()) {
      std::memcpy(out.data() + sizeof c + sizeof *config, init_frame.data(), init_frame.size());
    }
  }
  return out;
}

struct ParsedControl {
  Control control;
  RankPoolConfig config;             // kOpen only
  std::span<const char> init_frame;  // kOpen only; a view into the message
};

// nullopt for a message that is not a well-formed control message.
inline std::optional<ParsedControl> parse_control(std::span<const char> m) noexcept {
  ParsedControl p{};
  if (m.size() < sizeof p.control) return std::nullopt;
  std::memcpy(&p.control, m.data(), sizeof p.control);
  const auto k = static_cast<std::uint32_t>(p.control.kind);
  if (k < 1 || k > 5) return std::nullopt;
  if (p.control.kind != ControlKind::kOpen) {
    return m.size() == sizeof p.control ? std::optional(p) : std::nullopt;
  }
  if (m.size() < sizeof p.control + sizeof p.config) return std::nullopt;
  std::memcpy(&p.config, m.data() + sizeof p.control, sizeof p.config);
  p.init_frame = m.subspan(sizeof p.control + sizeof p.config);
  return p;
}

// A task message: the frame with its limits appended (in place: no copy of the payload).
inline void append_limits(Bytes& frame, TaskLimits l) {
  const std::size_t at = frame.size();
  frame.resize(at + sizeof l);
  std::memcpy(frame.data() + at, &l, sizeof l);
}
// Takes the limits off a task message, leaving the frame; nullopt when it is too short.
inline std::optional<TaskLimits> take_limits(Bytes& message) noexcept {
  TaskLimits l;
  if (message.size() < sizeof l + kFrameHeaderSize) return std::nullopt;
  std::memcpy(&l, message.data() + message.size() - sizeof l, sizeof l);
  message.resize(message.size() - sizeof l);
  return l;
}

// Idle polling: a rank or engine waiting for messages must not take a CPU from ranks that
// compute (mpirun --oversubscribe runs several ranks per core), yet should answer quickly while
// work flows.
class Backoff {
 public:
  void reset() noexcept { idle_ = 0; }
  // How long to sleep before polling again; zero means yield.
  std::chrono::microseconds next() noexcept {
    if (++idle_ < 64) return std::chrono::microseconds(0);
    return std::chrono::microseconds(std::min<long>(1000, 1L << std::min(idle_ / 64, 10u)));
  }
  // Sleeps (or yields) as next() says.
  void wait() {
    const std::chrono::microseconds d = next();
    if (d.count() == 0) {
      std::this_thread::yield();
    } else {
      std::this_thread::sleep_for(d);
    }
  }

 private:
  unsigned idle_ = 0;
};

struct Rank0State {
  pid_t pid = 0;  // rank 0 itself: its forked children inherit this state but not MPI
  std::mutex mu;
  int world_size = 1;
  bool finalized = false;
  bool pool_alive = false;
  std::uint64_t pools_made = 0;
  // Per rank: kEnded messages still owed for pools that ended (see the protocol above).
  std::vector<std::uint64_t> owed;
  // Sends whose engine ended before they completed: each says whether its send is complete
  // (mu held) and owns the buffer, which must live until then.
  std::vector<std::function<bool()>> leftovers;
};

// Rank 0 of an mpirun job that mproc::init set up; nullptr anywhere else (in rank 0's forked
// children too).
Rank0State* rank0() noexcept;

// A worker rank's life after MPI_Init: serves rank 0's pools until kTagShutdown, then
// finalizes MPI and exits (pool/src/mpi_rank_host.cpp: it runs local pools, a layer above).
using RankBody = void (*)(int rank);

// Under mpirun (judged from the launcher's environment, before any MPI call): initialises MPI;
// a worker rank then runs `body` and never returns. Does nothing otherwise.
void enter_if_mpi_rank(int argc, char** argv, RankBody body);
// The job's rank of this process from the launcher's environment; -1 when not under mpirun.
int rank_from_environment() noexcept;

// Rank 0: completes leftover sends and receives owed kEnded messages that have arrived, dropping
// whatever else earlier pools' ranks sent (mu held).
// Returns true when nothing is left.
bool settle_leftovers(Rank0State& s);

}  // namespace mproc::detail::mpi_rank
