// Futex wait and wake (Linux), the one place mproc makes the system call. Internal.
//
// kShared words live in MAP_SHARED memory and are waited on across processes (the primitives
// of synchronize.hpp); kPrivate words are waited on only by this process's threads (a pool
// result's status word), which lets the kernel skip the shared-mapping lookup.
#pragma once

#include <cstdint>

#include "mproc/synchronize.hpp"

namespace mproc::detail {

enum class FutexScope { kShared, kPrivate };

// Waits while *word == expected, until woken or the deadline (CLOCK_MONOTONIC); returns false
// on timeout. May return true spuriously: the caller re-checks its condition.
bool futex_wait(std::uint32_t* word, std::uint32_t expected, const Deadline& d,
                FutexScope scope = FutexScope::kShared) noexcept;
void futex_wake(std::uint32_t* word, int n, FutexScope scope = FutexScope::kShared) noexcept;

}  // namespace mproc::detail
