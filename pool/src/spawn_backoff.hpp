// spawn_backoff.hpp — retrying a worker that cannot be started (no descriptor for its socket,
// fork EAGAIN): after a pause that doubles up to a cap; with no worker alive and tasks waiting,
// the pool gives up after kSpawnGiveUp and breaks with the cause rather than hang.
//
// Thread safety: the coordinator's I/O thread only.
#pragma once

#include <algorithm>
#include <chrono>
#include <string>

namespace mproc::detail {

class SpawnBackoff {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr auto kFirst = std::chrono::milliseconds(10);
  static constexpr auto kCap = std::chrono::milliseconds(500);
  static constexpr auto kGiveUp = std::chrono::seconds(3);

  // A start failed with `why`. Returns whether to log it (the first, then every power of two).
  bool failed(Clock::time_point now, std::string why) {
    if (failures_++ == 0) {
      first_failure_ = now;
      delay_ = kFirst;
    }
    last_error_ = std::move(why);
    return failures_ == 1 || (failures_ & (failures_ - 1)) == 0;
  }
  // A worker was reported started.
  void succeeded() noexcept { failures_ = 0; }
  // The pause before the next attempt.
  Clock::duration next_delay() noexcept {
    const Clock::duration d = delay_;
    delay_ = std::min<Clock::duration>(2 * delay_, kCap);
    return d;
  }
  // Every start has failed for kGiveUp, in 3 attempts or more.
  bool exhausted(Clock::time_point now) const noexcept {
    return failures_ >= 3 && now - first_failure_ >= kGiveUp;
  }
  std::string give_up_message(Clock::time_point now) const {
    const auto ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(now - first_failure_).count();
    return "the pool is broken: it has no worker and none could be started in " +
           std::to_string(ms) + " ms (" + std::to_string(failures_) +
           " attempts); last error: " + last_error_;
  }
  unsigned failures() const noexcept { return failures_; }  // in a row
  const std::string& last_error() const noexcept { return last_error_; }

 private:
  unsigned failures_ = 0;
  Clock::time_point first_failure_{};
  Clock::duration delay_ = kFirst;
  std::string last_error_;
};

}  // namespace mproc::detail
