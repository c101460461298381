// What a lost MPI rank does to the job; tests/mpi/rank_death.sh runs this under mpirun and
// checks the outcome (see mproc/mpi.hpp):
//   rank_death die     a task kills its rank: OpenMPI ends the whole job, coordinator included,
//                      with a message naming the rank.
//   rank_death stuck   a task never ends: the call fails with TaskTimeoutError, and at exit the
//                      coordinator waits 10 s for the rank, then aborts the job (no hang).
//   rank_death die-timeout, under mpirun --enable-recovery: the job outlives the dead rank but
//                      nothing tells rank 0; the task's time limit turns the loss into a
//                      TaskTimeoutError, and the exit ends as for `stuck`.
#include <signal.h>

#include <chrono>
#include <cstdio>
#include <mproc/mproc.hpp>
#include <string>
#include <thread>

namespace {
int die(int) {
  ::raise(SIGKILL);
  return 0;
}
int never_ends(int) {
  for (;;) std::this_thread::sleep_for(std::chrono::seconds(1));
}
}  // namespace

int main(int argc, char** argv) {
  mproc::init(argc, argv);
  const std::string mode = argc > 1 ? argv[1] : "die";
  mproc::mpi::Pool pool;
  try {
    if (mode == "stuck") {
      std::printf("submitting a task that never ends\n");
      std::fflush(stdout);
      pool.apply(never_ends, 0, mproc::with_timeout(std::chrono::milliseconds(300)));
    } else if (mode == "die-timeout") {  // under mpirun --enable-recovery
      std::printf("submitting a task that kills its rank, with a time limit\n");
      std::fflush(stdout);
      pool.apply(die, 0, mproc::with_timeout(std::chrono::seconds(2)));
    } else {
      std::printf("submitting a task that kills its rank\n");
      std::fflush(stdout);
      pool.apply(die, 0);
    }
  } catch (const mproc::TaskTimeoutError& e) {
    std::printf("TaskTimeoutError: %s\n", e.what());
    std::fflush(stdout);
    return 0;  // leaving main: the exit waits for the stuck rank, then aborts the job
  } catch (const std::exception& e) {
    std::printf("the coordinator saw: %s\n", e.what());
    return 3;
  }
  std::printf("UNEXPECTED: the task returned\n");
  return 0;
}
