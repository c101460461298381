// What a lost task and a lost MPI rank do to the job; tests/mpi/rank_death.sh runs this under
// mpirun and checks the outcome (see mproc/mpi.hpp):
//   rank_death die     a task kills its rank (the rank process itself, not its worker):
//                      OpenMPI ends the whole job, coordinator included, with a message naming
//                      the rank. The one loss mproc cannot turn into an error.
//   rank_death stuck   a task never ends: its rank kills it at its time limit, the call fails
//                      with TaskTimeoutError, and the program exits at once.
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <mproc/mproc.hpp>
#include <string>
#include <thread>

namespace {

std::string exe_of(pid_t pid) {
  char buf[4096] = {};
  const std::string link = "/proc/" + std::to_string(pid) + "/exe";
  const ssize_t n = ::readlink(link.c_str(), buf, sizeof buf - 1);
  return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string();
}
pid_t parent_of(pid_t pid) {
  FILE* f = std::fopen(("/proc/" + std::to_string(pid) + "/stat").c_str(), "r");
  if (f == nullptr) return 0;
  int ppid = 0;
  const int got = std::fscanf(f, "%*d (%*[^)]) %*c %d", &ppid);
  std::fclose(f);
  return got == 1 ? ppid : 0;
}

// Runs in a worker of a rank's local pool. The rank is the oldest ancestor running this
// program (its parent is OpenMPI's launcher); the fork server, zygote and worker below it run
// the same executable.
int kill_my_rank(int) {
  const std::string me = exe_of(::getpid());
  pid_t rank = ::getpid();
  for (pid_t p = parent_of(rank); p > 1 && exe_of(p) == me; p = parent_of(p)) rank = p;
  ::kill(rank, SIGKILL);
  for (;;) std::this_thread::sleep_for(std::chrono::seconds(1));
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
    } else {
      std::printf("submitting a task that kills its rank\n");
      std::fflush(stdout);
      pool.apply(kill_my_rank, 0);
    }
  } catch (const mproc::TaskTimeoutError& e) {
    std::printf("TaskTimeoutError: %s\n", e.what());
    std::fflush(stdout);
    return 0;  // leaving main: the ranks end their pools (killing workers) and the job ends
  } catch (const std::exception& e) {
    std::printf("the coordinator saw: %s\n", e.what());
    return 3;
  }
  std::printf("UNEXPECTED: the task returned\n");
  return 0;
}
