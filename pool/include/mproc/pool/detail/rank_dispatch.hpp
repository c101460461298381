// mproc/pool/detail/rank_dispatch.hpp — where the MPI engine (pool/src/mpi_engine.cpp) sends the
// next task: pure functions over what rank 0 knows of each rank. Internal (namespace detail).
//
// Each worker rank runs a local pool of its own workers. Rank 0 keeps a window of tasks in
// flight per rank: every worker busy and one more waiting per worker, so a reply's trip over the
// network overlaps the next task's run; a task goes to the rank with the most free room, which
// spreads a burst in proportion to the ranks' free workers.
//
// Thread safety: stateless functions.
#pragma once

#include <algorithm>
#include <cstddef>
#include <span>

namespace mproc::detail {

// Tasks rank 0 keeps in flight on a rank that runs `workers` workers (0: not known yet, or its
// local pool could not be made; it still answers every task).
inline std::size_t rank_window(std::size_t workers) noexcept {
  return std::max<std::size_t>(4, 2 * workers);
}

inline constexpr std::size_t kNoRank = static_cast<std::size_t>(-1);

// The index of the rank with the most free room (window - in flight; ties: the lowest index), or
// kNoRank when every window is full. The spans have one entry per rank.
inline std::size_t pick_rank(std::span<const std::size_t> in_flight,
                             std::span<const std::size_t> windows) noexcept {
  std::size_t best = kNoRank;
  std::size_t best_room = 0;
  for (std::size_t i = 0; i < in_flight.size() && i < windows.size(); ++i) {
    const std::size_t room = windows[i] > in_flight[i] ? windows[i] - in_flight[i] : 0;
    if (room > best_room) {
      best = i;
      best_room = room;
    }
  }
  return best;
}

}  // namespace mproc::detail
