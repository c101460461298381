// worker/src/mpi_rank.hpp — what the ranks of an mpirun job share with rank 0's MPI engine.
// Internal, not installed (it needs <mpi.h>); only built with MPROC_WITH_MPI.
//
// Protocol: every message is one frame (serialize/frame.hpp). Rank 0 sends task and init
// frames with its pool's tag; a worker rank answers each with one result frame under the same
// tag, in order. A new pool takes a new tag, so a reply to an earlier pool's abandoned task
// (terminated, timed out, cancelled while running) is recognised and dropped. kTagShutdown,
// sent at rank 0's exit, makes a worker rank finalize MPI and exit.
//
// Thread safety: Rank0State is shared by rank 0's main thread (init, exit) and the I/O thread
// of the one live MPI engine; `mu` serialises every MPI call among them (MPI_THREAD_SERIALIZED).
#pragma once

#include <mpi.h>
#include <sys/types.h>

#include <cstdint>
#include <mutex>
#include <vector>

#include "mproc/serialize/wire_archive.hpp"

namespace mproc::detail::mpi_rank {

inline constexpr int kTagShutdown = 1;
inline constexpr int kFirstPoolTag = 2;
inline constexpr int kPoolTags = 30000;  // MPI guarantees tags up to 32767

// A send whose engine ended before it completed: its buffer must outlive it.
struct LeftoverSend {
  MPI_Request request = MPI_REQUEST_NULL;
  Bytes frame;
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
  std::vector<LeftoverSend> leftovers;
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
