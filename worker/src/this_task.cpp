// The worker's stop requests as mproc::this_task sees them (task_stop.hpp).
#include <string>

#include "mproc/errors.hpp"
#include "mproc/this_task.hpp"

namespace mproc::detail {

TaskStopView g_task_stop;

void throw_soft_time_limit_exceeded() {
  throw SoftTimeLimitExceeded(
      "the task passed its soft time limit and stopped (mproc::this_task::stop_requested())");
}

}  // namespace mproc::detail
