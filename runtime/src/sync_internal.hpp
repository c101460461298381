// Shared layouts and primitives behind synchronize.hpp (private to runtime/src).
#pragma once

#include <pthread.h>

#include <atomic>
#include <cstdint>

#include "mproc/runtime/detail/futex.hpp"  // kShared: every word here is in a MAP_SHARED mapping
#include "mproc/synchronize.hpp"

namespace mproc::detail {

// Lock / RLock, and the internal lock of a Barrier.
struct MutexState {
  pthread_mutex_t m;
  std::uint32_t recursive;
  std::uint32_t count;      // recursion depth, written only by the holder
  std::uint32_t recovered;  // the current holder recovered it from a dead owner
  std::uint32_t pad;
  std::uint64_t deaths;  // recoveries over the lock's life
};

enum class Acquired { kNo, kYes, kRecovered };

void mutex_init(MutexState& s, bool recursive);
// Throws LockError on a blocking re-acquire of a non-recursive mutex by its holder.
Acquired mutex_acquire(MutexState& s, bool block, const Deadline& d);
// Throws LockError if the calling thread does not hold it.
void mutex_release(MutexState& s);
bool mutex_owned(const MutexState& s) noexcept;

inline std::atomic_ref<std::uint32_t> atom(std::uint32_t& w) {
  return std::atomic_ref(w);
}

}  // namespace mproc::detail
