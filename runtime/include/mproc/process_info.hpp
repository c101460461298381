// mproc/process_info.hpp — who am I: the current process's name and pid, and the CPU count.
//
// Thread safety: current_process() may be called from any thread. The name is set once when a
// process starts (MainProcess, ForkPoolWorker-N, ...) and is not changed afterwards.
#pragma once

#include <sys/types.h>

#include <string>

namespace mproc {

class ProcessInfo {
 public:
  // "MainProcess" in the program, "ForkPoolWorker-<n>" in a pool worker.
  const std::string& name() const noexcept;
  pid_t pid() const noexcept;
  // Whether this process is a daemon Process (see process.hpp).
  bool daemon() const noexcept;
};

// Python's multiprocessing.current_process().
const ProcessInfo& current_process() noexcept;

// The number of CPUs this process may run on (its affinity mask), at least 1.
// Python's os.cpu_count() counts all CPUs; the affinity count is what a pool can actually use.
std::size_t cpu_count() noexcept;

namespace detail {
// Called once in a new child process, before anything else runs there.
void set_process_name(std::string name);
// Records what init saw; whether init has run; the program's argv[0] ("" before init).
void record_init(int argc, char** argv);
bool init_called() noexcept;
const std::string& program_path() noexcept;
}  // namespace detail

}  // namespace mproc
