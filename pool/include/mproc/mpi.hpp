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
// MPI), calls MPI_Init_thread on every rank and turns ranks 1..N-1 into hosts of local process
// pools: each worker rank runs the tasks rank 0 sends it in an mproc::Pool of its own
// (`workers_per_rank` workers, default: the rank's CPU count from its affinity mask, started by
// the rank's fork server, which mproc::init forks before MPI_Init), until the coordinator's
// program exits (mproc finalizes MPI at exit). Tasks are named as for local pools — functions
// by module and offset, invokers by type hash — so they run on ranks of the same executable on
// other hosts. Rank 0 keeps a window of tasks in flight on each rank (two per worker), so the
// network's round trip overlaps the work.
//
// Semantics: those of mproc::Pool (apply, apply_async, map, imap, imap_unordered, starmap,
// AsyncResult, callbacks, close, join, terminate, initializer, chunksize, cancel, the same
// exceptions), with each rank's workers isolated as a local pool's are:
//  - A task that crashes, exits or is killed on a rank fails with WorkerLostError, whose message
//    names the host and the rank besides the worker's pid and signal; the rank replaces the
//    worker and goes on. max_retries reruns such a task on the same rank.
//  - task_timeout / with_timeout, soft_timeout / with_soft_timeout, maxtasksperchild,
//    max_memory_per_child, max_address_space_per_child, timeout_grace and start_method apply to
//    each rank's workers, exactly as on one machine (start_method unset: forkserver). A task
//    over its limit is killed on its host and fails with TaskTimeoutError naming the rank.
//  - The initializer runs once in every worker process of every rank. If it throws, the rank's
//    tasks fail with its exception (the pool at rank 0 is not marked broken).
//  - cancel() of a task a rank runs fails it at once and kills its worker there; terminate()
//    fails unfinished tasks with PoolStateError at once and each rank kills its workers.
//  - The one remaining limit: a rank that dies (the rank process itself, not a task: killed
//    from outside, out of memory, its host lost) is, with OpenMPI's defaults, fatal for the
//    whole job: mpirun prints "mpirun noticed that process rank K ... exited on signal N" and
//    kills every rank, the coordinator included, within about a second; mpirun's exit code is
//    non-zero. Nothing hangs, but no WorkerLostError can be delivered: OpenMPI 4 has no fault
//    tolerance (ULFM). At exit rank 0 waits up to 10 s for ranks to confirm their pools ended,
//    then aborts the job with a message (MPI_Abort): only a rank that hangs gets there.
//  - processes() is the number of worker ranks; stats() has one row per rank (pid 0, its tasks
//    done), counts tasks exactly and counts ranks as the workers started. on_worker_start and
//    on_worker_exit are not called (the workers live on other hosts).
//  - One MPI pool at a time per program (ranks are a fixed resource): making a second while
//    the first is alive is a PoolStateError; pools made one after another reuse the ranks.
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
// when another MPI pool is alive or the program is exiting. A rank whose local pool cannot be
// made (e.g. no processes can be forked there) fails that rank's tasks with the reason.
#pragma once

#include <cstddef>
#include <memory>

#include "mproc/pool.hpp"
#include "mproc/pool/detail/engine.hpp"
#include "mproc/pool/pool_options.hpp"

namespace mproc {
namespace detail {
// Defined by the MPI engine (or, without MPROC_WITH_MPI, a stub that throws StartMethodError).
std::shared_ptr<PoolEngine> make_mpi_engine(const PoolOptions& options,
                                            std::size_t workers_per_rank = 0);
}  // namespace detail

namespace mpi {

// Whether this mproc has its MPI engine (configured with MPROC_WITH_MPI and an MPI library).
bool built_with_mpi() noexcept;
// Whether this process is rank 0 of an mpirun job that mproc::init set up (false in a program
// not started by mpirun, and always false when mproc was built without MPI).
bool active() noexcept;
// Ranks in the job (1 when not under mpirun); worker ranks are world_size() - 1.
int world_size() noexcept;

// A mproc::Pool over the job's other ranks, each running a local pool: `processes` (or
// options.processes) is how many ranks, 0 meaning all of them; `workers_per_rank` how many
// workers each rank runs, 0 meaning the rank's CPU count.
class Pool : public ::mproc::Pool {
 public:
  explicit Pool(std::size_t processes = 0, std::size_t workers_per_rank = 0)
      : Pool(options_for(processes), workers_per_rank) {}
  explicit Pool(const PoolOptions& options, std::size_t workers_per_rank = 0)
      : ::mproc::Pool(detail::PoolOverEngine::make(
            detail::make_mpi_engine(options, workers_per_rank), options.terminate_on_destroy)) {}

 private:
  static PoolOptions options_for(std::size_t processes) {
    PoolOptions o;
    o.processes = processes;
    return o;
  }
};

}  // namespace mpi
}  // namespace mproc
