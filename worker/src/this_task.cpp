// The worker's stop requests as mproc::this_task sees them (task_stop.hpp).
#include <atomic>
#include <cstdint>
#include <string>

#include "mproc/errors.hpp"
#include "mproc/this_task.hpp"
#include "mproc/worker/detail/task_stop.hpp"

namespace mproc::detail {

TaskStopView g_task_stop;

void throw_soft_time_limit_exceeded() {
  throw SoftTimeLimitExceeded(
      "the task passed its soft time limit and stopped (mproc::this_task::stop_requested())");
}

}  // namespace mproc::detail

namespace mproc::this_task {

bool stop_requested() noexcept {
  const detail::TaskStopView& v = detail::g_task_stop;
  const std::uint64_t id = v.running.load(std::memory_order_relaxed);
  return id != 0 && v.posted->load(std::memory_order_relaxed) == id;
}

void throw_if_stop_requested() {
  if (stop_requested()) [[unlikely]] {
    detail::throw_soft_time_limit_exceeded();
  }
}

}  // namespace mproc::this_task
