// mproc/runtime/detail/process_table.hpp — the children a process started, and who it is itself.
// Internal (namespace detail).
//
// Every started Process registers its ProcessState here. One reaper thread per process (started
// with the first child) waits on the children's pidfds with epoll and reaps each with
// waitid(P_PID, pid) — only its own Processes, never waitpid(-1) — recording the exit code and
// waking joiners. A forked child starts with an empty table (pthread_atfork), so it never
// touches its parent's children, locks or reaper.
//
// Thread safety: every function is thread-safe.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "mproc/runtime/detail/fd.hpp"

namespace mproc {
class Process;
}

namespace mproc::detail {

struct ProcessState {
  pid_t pid = 0;
  UniqueFd pidfd;
  bool daemon = false;
  pid_t parent = 0;  // the process that started it: the only one that may wait for it
  std::string name;  // for the exit's log line, when the Process object may be gone
  // Guarded by the table's lock:
  std::optional<int> exitcode;
  Process* owner = nullptr;
};

// Registers a started child (its pidfd set) and makes sure the reaper runs.
void table_add(const std::shared_ptr<ProcessState>& st);
// Held by Process's fork path across fork(): the reaper thread allocates and frees only under
// this lock, so it is never inside the allocator when the child is copied. glibc's malloc makes
// fork safe by itself; the sanitizers' allocators (GCC 12) do not, and a child forked while
// another thread held their lock hangs at its first allocation.
std::unique_lock<std::mutex> table_lock_for_fork();
std::optional<int> table_exitcode(const ProcessState& st);
// Waits until the child was reaped; forever if `timeout` is empty. Returns whether it was.
bool table_wait(const ProcessState& st, std::optional<std::chrono::nanoseconds> timeout);
// The Process object is going away.
void table_forget_owner(ProcessState& st);
// The Process object moved to `owner` (under the table's lock, as active_children reads it).
void table_set_owner(ProcessState& st, Process* owner);
std::vector<Process*> table_active();
// Next N for a default name "Process-N" in this process.
unsigned next_process_number();

// Who this process is, when it is a Process child.
struct SelfInfo {
  bool is_child = false;
  bool daemon = false;
  std::string identity;  // "" in the main program
  std::string parent_name;
  pid_t parent_pid = 0;
};
const SelfInfo& self_info();
// In a new child, before its run(): records who it is and names it.
void become_child(const std::string& name, const std::string& identity, bool daemon,
                  const std::string& parent_name, pid_t parent_pid);
// Runs `body` as a child's run(): 0, or 1 after printing an escaped exception to stderr.
int run_guarded(const std::string& name, void (*body)(void*), void* arg) noexcept;
// Flushes stdio and _exits.
[[noreturn]] void child_exit(int code) noexcept;

}  // namespace mproc::detail
