// mproc/worker/detail/mpi_rank.hpp — what the ranks of an mpirun job (worker/src/mpi_rank.cpp)
// share with rank 0's MPI engine (pool/src/mpi_engine.cpp). Internal; its functions exist only
// with MPROC_WITH_MPI. No MPI types here: MPI stays a private dependency of mproc.
//
// Protocol: every message is one frame (serialize/frame.hpp). Rank 0 sends task and init
// frames with its pool's tag; a worker rank answers each with one result frame under the same
// tag, in order. A new pool takes a new tag, so a reply to an earlier pool's abandoned task
// (terminated, timed out, cancelled while running) is recognised and dropped. kTagShutdown,
// sent at rank 0's exit, makes a worker rank finalize MPI and exit.
//
// Thread safety: Rank0State is shared by rank 0's main thread (init, exit) and the I/O thread
// of the one live MPI engine; `mu` serialises every MPI call among them (MPI_THREAD_SERIALIZED).
// Backoff is a value type.
#pragma once

#include <sys/types.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "mproc/serialize/detail/frame.hpp"

namespace mproc::detail::mpi_rank {

inline constexpr int kTagShutdown = 1;
inline constexpr int kFirstPoolTag = 2;
inline constexpr int kPoolTags = 30000;  // MPI guarantees tags up to 32767
// A frame's length field is 32 bits; MPI counts are ints.
inline constexpr std::size_t kMaxMessage = INT_MAX - kFrameHeaderSize;

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
  // Per rank: replies still owed for tasks whose pool no longer waits for them.
  std::vector<std::uint64_t> owed;
  // Sends whose engine ended before they completed: each says whether its send is complete
  // (mu held) and owns the buffer, which must live until then.
  std::vector<std::function<bool()>> leftovers;
};

// Rank 0 of an mpirun job that mproc::init set up; nullptr anywhere else (in rank 0's forked
// children too).
Rank0State* rank0() noexcept;

// Under mpirun (judged from the launcher's environment, before any MPI call): initialises MPI;
// a worker rank then runs frames until shut down and never returns. Does nothing otherwise.
void enter_if_mpi_rank(int argc, char** argv);
// The job's rank of this process from the launcher's environment; -1 when not under mpirun.
int rank_from_environment() noexcept;

// Rank 0: completes leftover sends and receives owed replies that have arrived (mu held).
// Returns true when nothing is left.
bool settle_leftovers(Rank0State& s);

}  // namespace mproc::detail::mpi_rank
