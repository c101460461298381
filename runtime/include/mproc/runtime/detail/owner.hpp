// mproc/runtime/detail/owner.hpp — the rule that an mproc object acts only in the process that made
// it. Internal (namespace detail).
//
// A child made by fork() — the user's own fork(), or a worker forked while the program held a
// static Pool or Manager — has copies of every object of its parent, but none of their threads
// and none of their processes. Acting on such a copy breaks the original: a Manager's copy shuts
// the real server down, a Pool's copy deregisters the parent's descriptors from an epoll set
// the two share, or waits forever for threads that do not exist here. So every owning object
// records the pid that made it; in any other process its operations throw (PoolStateError,
// ProcessError, ManagerError: each names the owner) and its destructor touches nothing shared —
// it abandons its memory to the process's exit (abandon()), as Python clears its finalizers
// in children.
//
// Thread safety: all of it may be called from any thread. current_pid() costs a load: it is
// refreshed in each fork child by a pthread_atfork handler (a child made by a raw clone() that
// skips the handlers is not supported).
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <memory>
#include <new>
#include <string>
#include <thread>

namespace mproc::detail {

// getpid(), without a system call.
pid_t current_pid() noexcept;

class OwnerPid {
 public:
  OwnerPid() noexcept : pid_(current_pid()) {}
  // Whether this is the process that made the object.
  bool here() const noexcept { return pid_ == current_pid(); }
  pid_t pid() const noexcept { return pid_; }

 private:
  pid_t pid_;
};

// "the <what> belongs to process N (this is process M, a child made with fork()): make a new
// one here" — the message every owner check throws with.
std::string not_owner_message(const char* what, pid_t owner);

// In a process that does not own it, an object is abandoned: kept forever, never destroyed,
// still reachable (so LeakSanitizer does not report it). Destroying it there could hang (glibc's
// pthread_cond_destroy waits for the owner's waiters, which do not exist in the child) or end
// the program (a joinable std::thread). None of these allocates.
void* abandon_storage(std::size_t size) noexcept;  // 16-aligned, never destroyed or freed

template <class T>
void abandon(std::shared_ptr<T>& p) noexcept {
  static_assert(sizeof(std::shared_ptr<T>) <= 64);
  ::new (abandon_storage(sizeof(std::shared_ptr<T>))) std::shared_ptr<T>(std::move(p));
}
template <class T>
void abandon(std::unique_ptr<T>& p) noexcept {
  ::new (abandon_storage(sizeof(T*))) T*(p.release());
}
inline void abandon(std::thread& t) noexcept {
  ::new (abandon_storage(sizeof(std::thread))) std::thread(std::move(t));
}

}  // namespace mproc::detail
