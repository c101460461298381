// A worker rank of an mpirun job serves rank 0's MPI pools with a local process pool of its own
// (pool/src/mpi_rank_host.cpp). Built only with MPROC_WITH_MPI.
#pragma once

namespace mproc::detail {

// The worker rank's body (mpi_rank::RankBody): returns when rank 0 shuts the job down. Never
// throws; a rank that cannot go on aborts the job with a message.
void serve_mpi_rank(int rank) noexcept;

}  // namespace mproc::detail
