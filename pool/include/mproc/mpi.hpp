// mproc/mpi.hpp — the same Pool API over MPI ranks, for programs that outgrow one machine.
//
//   int main(int argc, char** argv) {
//     mproc::init(argc, argv);                 // ranks 1..N-1 become workers here, never return
//     mproc::mpi::Pool pool;                   // or: mproc::get_context("mpi").Pool()
//     auto v = pool.map(square, inputs);       // unchanged: it is a mproc::Pool
//   }
//
//   $ mpirun -n 5 --hostfile hosts ./app      # rank 0 runs main; 4 ranks run tasks
//
// Rank 0 runs main as the coordinator. mproc::init, called under mpirun (detected from the
// environment OpenMPI/PMIx give each rank, so the same binary run without mpirun never touches
// MPI), calls MPI_Init_thread on every rank and turns ranks 1..N-1 into workers that run frames
// until the coordinator's program exits (mproc finalizes MPI at exit). Tasks are named as for
// local pools — functions by module and offset, invokers by type hash — so they run on ranks of
// the same executable on other hosts.
//
// Semantics: those of mproc::Pool (apply, apply_async, map, imap, imap_unordered, starmap,
// AsyncResult, callbacks, close, join, terminate, initializer, chunksize, task_timeout, cancel,
// the same exceptions). Differences, all of them the nature of MPI ranks:
//  - A rank is not a child process: it cannot be killed or replaced. A task past its timeout
//    fails with TaskTimeoutError at once, and the rank is given no more work until that task
//    ends (its late result is dropped). terminate() fails unfinished tasks with PoolStateError
//    at once; tasks already running on ranks finish there and their results are dropped.
//    cancel() of a task a rank is running fails it with CancelledError the same way. When the
//    program ends, rank 0 waits up to 10 s for ranks still running such tasks (MPI cannot be
//    finalized before they answer), then aborts the job with a message (MPI_Abort, exit code 1).
//  - A rank that dies (a crash, exit() or a signal in a task) is, with OpenMPI's defaults,
//    fatal for the whole job: mpirun prints "mpirun noticed that process rank K ... exited on
//    signal N" and kills every rank, the coordinator included, within about a second; mpirun's
//    exit code is non-zero (137 for a SIGKILL). Nothing hangs, but no WorkerLostError can be
//    delivered: OpenMPI 4 has no fault tolerance (ULFM). Under `mpirun --enable-recovery` the
//    job outlives the rank, but MPI never tells rank 0: only a time limit (task_timeout or
//    with_timeout) ends the lost task, with TaskTimeoutError, and the exit then aborts as above
//    after 10 s (in this mode OpenMPI 4.1 sometimes leaves mpirun running after the abort:
//    run such jobs under `timeout`). Where tasks may crash, use local pools.
//  - maxtasksperchild, max_retries, max_memory_per_child, max_address_space_per_child and
//    start_method do not apply to ranks and are ignored.
//  - One MPI pool at a time per program (ranks are a fixed resource): making a second while
//    the first is alive is a PoolStateError; pools made one after another reuse the ranks.
//    An initializer runs once per rank for each pool that sets one.
//  - worker_pids() is empty and zygote_pid() is 0.
//
// Thread safety: as mproc::Pool: every member may be called from any thread, except the
// destructor. All MPI calls of rank 0 happen on the pool's I/O thread (or in init and at exit),
// so MPI is initialised with MPI_THREAD_SERIALIZED.
//
// Throws (constructor): StartMethodError when the program was not started under mpirun (or
// mproc::init was not called, or mproc was built without MPI: MPROC_WITH_MPI), when called
// anywhere but in rank 0 itself (a worker rank, a child process of rank 0), when the job has
// one rank, or when more processes are asked for than there are worker ranks; PoolStateError
// when another MPI pool is alive or the program is exiting.
#pragma once

#include <cstddef>
#include <memory>

#include "mproc/pool.hpp"
#include "mproc/pool/detail/engine.hpp"
#include "mproc/pool/pool_options.hpp"

namespace mproc {
namespace detail {
// Defined by the MPI engine (or, without MPROC_WITH_MPI, a stub that throws StartMethodError).
std::shared_ptr<PoolEngine> make_mpi_engine(const PoolOptions& options);
}  // namespace detail

namespace mpi {

// Whether this mproc has its MPI engine (configured with MPROC_WITH_MPI and an MPI library).
bool built_with_mpi() noexcept;
// Whether this process is rank 0 of an mpirun job that mproc::init set up (false in a program
// not started by mpirun, and always false when mproc was built without MPI).
bool active() noexcept;
// Ranks in the job (1 when not under mpirun); worker ranks are world_size() - 1.
int world_size() noexcept;

// A mproc::Pool whose workers are the job's other ranks; `processes` 0 means all of them.
class Pool : public ::mproc::Pool {
 public:
  explicit Pool(std::size_t processes = 0) : Pool(options_for(processes)) {}
  explicit Pool(const PoolOptions& options)
      : ::mproc::Pool(detail::PoolOverEngine::make(detail::make_mpi_engine(options),
                                                   options.terminate_on_destroy)) {}

 private:
  static PoolOptions options_for(std::size_t processes) {
    PoolOptions o;
    o.processes = processes;
    return o;
  }
};

}  // namespace mpi
}  // namespace mproc
