// Futex wait and wake, with absolute CLOCK_MONOTONIC deadlines.
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <ctime>

#include "mproc/runtime/detail/futex.hpp"

namespace mproc::detail {

namespace {
int op(int base, FutexScope scope) noexcept {
  return scope == FutexScope::kPrivate ? (base | FUTEX_PRIVATE_FLAG) : base;
}
}  // namespace

bool futex_wait(std::uint32_t* word, std::uint32_t expected, const Deadline& d,
                FutexScope scope) noexcept {
  timespec ts{};
  const timespec* tp = nullptr;
  if (d.at) {
    // steady_clock is CLOCK_MONOTONIC, the clock FUTEX_WAIT_BITSET uses without
    // FUTEX_CLOCK_REALTIME.
    const auto ns =
        std::chrono::duration_cast<std::chrono::nanoseconds>(d.at->time_since_epoch()).count();
    if (ns <= 0) return false;
    ts.tv_sec = static_cast<time_t>(ns / 1'000'000'000);
    ts.tv_nsec = static_cast<long>(ns % 1'000'000'000);
    tp = &ts;
  }
  const long r = ::syscall(SYS_futex, word, op(FUTEX_WAIT_BITSET, scope), expected, tp, nullptr,
                           FUTEX_BITSET_MATCH_ANY);
  if (r == 0) return true;
  return errno != ETIMEDOUT;  // EAGAIN (value changed), EINTR: spurious, the caller re-checks
}

void futex_wake(std::uint32_t* word, int n, FutexScope scope) noexcept {
  ::syscall(SYS_futex, word, op(FUTEX_WAKE, scope), n, nullptr, nullptr, 0);
}

}  // namespace mproc::detail
