// mproc/pool/detail/time_limits.hpp — which time limits a task runs under, and what its timer
// waits for next. Pure functions (tests/soft_timeout_test.cpp). Internal (namespace detail).
//
// A task has a soft limit (it is asked to stop: mproc::this_task::stop_requested()) and a hard
// one (its worker is killed: TaskTimeoutError). A call's own limit overrides the pool's, each
// kind on its own (with_timeout, with_soft_timeout; PoolOptions::task_timeout, soft_timeout).
// Zero or negative: none. A soft limit at or past the hard one is dropped: the kill comes
// first. A soft limit with no hard one asks the task to stop and never kills it.
//
// Thread safety: pure.
#pragma once

#include <chrono>
#include <optional>

namespace mproc::detail {

struct TimeLimits {
  std::chrono::nanoseconds soft{0};  // 0: none
  std::chrono::nanoseconds hard{0};  // 0: none
};

// The limits a task runs under, from its call's own (`call`) and the pool's (`pool`).
constexpr TimeLimits effective_time_limits(TimeLimits call, TimeLimits pool) noexcept {
  using std::chrono::nanoseconds;
  TimeLimits out;
  out.hard = call.hard.count() > 0 ? call.hard : pool.hard;
  out.soft = call.soft.count() > 0 ? call.soft : pool.soft;
  if (out.hard.count() < 0) out.hard = nanoseconds(0);
  if (out.soft.count() < 0) out.soft = nanoseconds(0);
  if (out.hard.count() > 0 && out.soft >= out.hard) out.soft = nanoseconds(0);
  return out;
}

// One thing the running task's timer waits for: `after` its start, ask it to stop (`soft`) or
// kill its worker.
struct LimitStep {
  std::chrono::nanoseconds after{0};
  bool soft = false;
};

// What comes next for a task under `limits` (from effective_time_limits), once its soft limit
// has passed or not: the soft limit, then the hard one; nothing when neither is left.
constexpr std::optional<LimitStep> next_time_limit(TimeLimits limits, bool soft_passed) noexcept {
  if (!soft_passed && limits.soft.count() > 0) return LimitStep{limits.soft, true};
  if (limits.hard.count() > 0) return LimitStep{limits.hard, false};
  return std::nullopt;
}

}  // namespace mproc::detail
