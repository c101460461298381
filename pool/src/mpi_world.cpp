// mproc::mpi's questions about the job, answered from the state mproc::init set up on rank 0
// (worker/src/mpi_rank.cpp). Built only with MPROC_WITH_MPI; mpi_absent.cpp answers otherwise.
#include "mproc/mpi.hpp"
#include "mproc/worker/detail/mpi_rank.hpp"

namespace mproc::mpi {

bool built_with_mpi() noexcept {
  return true;
}

bool active() noexcept {
  return detail::mpi_rank::rank0() != nullptr;
}

int world_size() noexcept {
  auto* s = detail::mpi_rank::rank0();
  return s != nullptr ? s->world_size : 1;
}

}  // namespace mproc::mpi
