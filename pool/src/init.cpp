#include "mproc/init.hpp"

#include "mproc/process.hpp"
#include "mproc/process_info.hpp"
#include "mproc/runtime/detail/forkserver.hpp"
#include "mproc/runtime/detail/shm_named.hpp"
#include "mproc/worker/detail/worker_entry.hpp"

#ifdef MPROC_WITH_MPI
#include "mpi_rank_host.hpp"
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
  // Under mpirun every rank's fork server is forked here, before MPI_Init, so it and the
  // workers of the rank's local pools carry no MPI state.
  detail::start_forkserver(&detail::forkserver_child);
#ifdef MPROC_WITH_MPI
  detail::mpi_rank::enter_if_mpi_rank(argc, argv, &detail::serve_mpi_rank);  // 1..N-1 stay there
#endif
}

}  // namespace mproc
