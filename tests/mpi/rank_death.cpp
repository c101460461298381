// A program whose task kills the MPI rank running it: what a rank's death does to the job.
// tests/mpi/rank_death.sh runs it under mpirun and checks the outcome (see mproc/mpi.hpp):
// OpenMPI ends the whole job, coordinator included, with a message naming the rank.
#include <signal.h>

#include <cstdio>
#include <mproc/mproc.hpp>

namespace {
int die(int) {
  ::raise(SIGKILL);
  return 0;
}
}  // namespace

int main(int argc, char** argv) {
  mproc::init(argc, argv);
  mproc::mpi::Pool pool;
  std::printf("submitting a task that kills its rank\n");
  std::fflush(stdout);
  try {
    pool.apply(die, 0);
  } catch (const std::exception& e) {
    std::printf("the coordinator saw: %s\n", e.what());
    return 3;
  }
  std::printf("UNEXPECTED: the task returned\n");
  return 0;
}
