#include "mproc/init.hpp"

#include "mproc/process.hpp"
#include "mproc/process_info.hpp"
#include "mproc/runtime/detail/forkserver.hpp"
#include "mproc/runtime/detail/shm_named.hpp"
#include "mproc/worker/detail/worker_entry.hpp"

#ifdef MPROC_WITH_MPI
#include "mproc/worker/detail/mpi_rank.hpp"
#endif

namespace mproc {

void init(int argc, char** argv) {
  detail::enter_if_shm_tracker();  // first: a tracker exec'd from this program never returns
  if (detail::init_called()) return;
  detail::enter_if_spawned_worker();
  detail::enter_if_spawned_process(argc, argv);  // a Process started with "spawn"
  detail::record_init(argc, argv);
  detail::enter_if_fork_server(&detail::forkserver_child);  // a replacement fork server
#ifdef MPROC_WITH_MPI
  // Worker ranks never make pools: no fork server for them. Rank 0's is forked before
  // MPI_Init, so it carries no MPI state.
  if (detail::mpi_rank::rank_from_environment() <= 0) {
    detail::start_forkserver(&detail::forkserver_child);
  }
  detail::mpi_rank::enter_if_mpi_rank(argc, argv);  // ranks 1..N-1 never return
#else
  detail::start_forkserver(&detail::forkserver_child);
#endif
}

}  // namespace mproc
