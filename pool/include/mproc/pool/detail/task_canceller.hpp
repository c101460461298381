// What a cancelled result asks to drop or stop its tasks: a pool's engine. Internal.
//
// A result holds a weak reference to it and its task ids, not a closure: apply_async then
// allocates nothing for a cancel that is almost never asked for.
#pragma once

#include <cstdint>
#include <vector>

namespace mproc::detail {

class TaskCanceller {
 public:
  // The tasks' outcomes become CancelledError (queued ones never run; a running one's worker
  // is stopped and replaced).
  virtual void cancel(std::vector<std::uint64_t> task_ids) = 0;

 protected:
  ~TaskCanceller() = default;
};

}  // namespace mproc::detail
