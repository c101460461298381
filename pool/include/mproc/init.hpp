// mproc/init.hpp — mproc::init, the one call a program makes first.
//
//   int main(int argc, char** argv) {
//     mproc::init(argc, argv);  // Python: if __name__ == "__main__":
//     ...
//   }
//
// It lives in the pool module, the top layer, because it composes all the others: the spawn
// start method's entry points of Process (runtime) and of pool workers (worker), the fork
// server, the shared-memory tracker and the MPI ranks.
#pragma once

namespace mproc {

// Call it first in main, before any thread starts: it is Python's `if __name__ == "__main__":`
// guard. In a worker exec'd by the "spawn" start method it runs the worker and never returns;
// in the program it records the arguments, names the process "MainProcess" and starts the fork
// server for the "forkserver" start method (one small process that dies with the program).
// Under mpirun (mproc built with MPI; see mpi.hpp) it also initialises MPI: ranks 1..N-1 become
// workers and never return, rank 0 goes on as the coordinator and shuts them down at exit.
// Calling it more than once does nothing more. Throws std::system_error if the fork server
// cannot be started.
void init(int argc, char** argv);

}  // namespace mproc
