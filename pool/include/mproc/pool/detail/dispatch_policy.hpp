// mproc/pool/detail/dispatch_policy.hpp — how many tasks the process pool keeps in each worker's
// pipe, from the workers' own timings of the tasks. Internal (namespace detail).
//
// Pure functions of numbers, inline: the coordinator calls them for every dispatch round, and
// the unit tests call them without processes.
#pragma once

#include <algorithm>
#include <cstddef>

namespace mproc::detail {

// How much queued work (by the workers' own timings) to keep in a worker's pipe: enough to hide
// a round trip and batch replies, little enough that a long task does not strand many others
// behind it while another worker idles.
inline constexpr double kPipelineBudgetNs = 250'000;
inline constexpr std::size_t kMinDepth = 2;
inline constexpr std::size_t kMaxDepth = 512;
// Tasks longer than this go one at a time: the round trip is then under 3% of the task.
inline constexpr double kNoPipelineNs = 2'000'000;

// The moving averages of task durations (ns, as measured by the workers; 0: none yet). A
// worker's own follows it closely; the pool's, a new worker's first guess, is steadier.
inline double worker_average_ns(double average, double sample) noexcept {
  return average == 0 ? sample : 0.8 * average + 0.2 * sample;
}
inline double pool_average_ns(double average, double sample) noexcept {
  return average == 0 ? sample : 0.9 * average + 0.1 * sample;
}

// How many tasks to keep in a worker's pipe: enough to hide the round trip for short tasks,
// one for long ones (a second task queued behind a long one would wait for it while another
// worker may be idle), and one while nothing is known about the tasks' length.
inline std::size_t pipeline_depth(double worker_average, double pool_average) noexcept {
  const double est = worker_average > 0 ? worker_average : pool_average;
  std::size_t depth = 1;
  if (est > 0 && est < kNoPipelineNs) {
    depth = std::clamp(static_cast<std::size_t>(kPipelineBudgetNs / est), kMinDepth, kMaxDepth);
  }
  return depth;
}

// What dispatch knows of one worker.
struct WorkerLoad {
  bool accepts = true;       // running, not retiring, not being stopped
  double average_ns = 0;     // its worker_average_ns
  std::size_t held = 0;      // tasks in its pipe (sent or not)
  std::size_t assigned = 0;  // tasks ever given to it
};

// How many more tasks the worker may take now. `maxtasks` (maxtasksperchild, 0: unlimited)
// caps what it is given over its life.
inline std::size_t capacity(const WorkerLoad& w, double pool_average,
                            std::size_t maxtasks) noexcept {
  if (!w.accepts) return 0;
  const std::size_t depth = pipeline_depth(w.average_ns, pool_average);
  std::size_t cap = w.held >= depth ? 0 : depth - w.held;
  if (maxtasks) cap = std::min(cap, maxtasks - w.assigned);
  return cap;
}

// One dispatch round hands each worker with room at most an equal share of what waits, so a
// burst spreads over the workers instead of filling the first one's pipe.
inline std::size_t fair_share(std::size_t waiting, std::size_t with_room) noexcept {
  return with_room == 0 ? 0 : (waiting + with_room - 1) / with_room;
}
// How many a worker takes in a round.
inline std::size_t tasks_to_take(std::size_t capacity, std::size_t share,
                                 std::size_t waiting) noexcept {
  return std::min({capacity, share, waiting});
}

// maxtasksperchild: the worker has been given its quota and now retires.
inline bool quota_spent(std::size_t assigned, std::size_t maxtasks) noexcept {
  return maxtasks != 0 && assigned >= maxtasks;
}
// How many workers to ask the zygote for now (worker succession). Counts over the pool's workers:
//   taking   takes tasks: running, or asked of the zygote and not reported yet;
//   draining retiring (its maxtasksperchild quota handed out, or over its memory cap) and still
//            holding tasks whose results have not been read.
// A retiring worker whose results are all in counts in neither: what is left of it is its exit and
// reap, which must not hold up its successor (that wait is an exit_mmap and a zygote report
// long). Nor does a worker whose socket ended.
//
// The pool keeps `processes` workers taking tasks, so a retiring worker's successor is asked for
// as soon as its predecessor is handed its last task: it forks and connects while the
// predecessor runs that task. Successors stay at most one generation ahead (taking + draining <=
// 2 * processes): a successor handed its whole quota at once starts the next one only when a
// draining worker's last result is in, not a chain of forks.
struct Succession {
  std::size_t taking = 0;
  std::size_t draining = 0;
};
inline std::size_t workers_to_start(const Succession& s, std::size_t processes) noexcept {
  if (s.taking >= processes) return 0;
  const std::size_t serving = s.taking + s.draining;
  const std::size_t room = serving >= 2 * processes ? 0 : 2 * processes - serving;
  return std::min(processes - s.taking, room);
}

}  // namespace mproc::detail
