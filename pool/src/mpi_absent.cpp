// mproc built without MPI (MPROC_WITH_MPI off or no MPI library): the MPI entry points exist,
// so programs compile either way, and say how to get the real thing.
#include "mproc/errors.hpp"
#include "mproc/mpi.hpp"

namespace mproc::detail {

std::shared_ptr<PoolEngine> make_mpi_engine(const PoolOptions&, std::size_t) {
  throw StartMethodError(
      "this mproc was built without MPI: install an MPI library (Debian: openmpi-bin "
      "libopenmpi-dev) and configure with -DMPROC_WITH_MPI=ON");
}

}  // namespace mproc::detail

namespace mproc::mpi {

bool built_with_mpi() noexcept {
  return false;
}

bool active() noexcept {
  return false;
}

int world_size() noexcept {
  return 1;
}

}  // namespace mproc::mpi
