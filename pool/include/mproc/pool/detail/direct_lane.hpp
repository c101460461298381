// mproc/pool/detail/direct_lane.hpp — an idle worker lent to one blocking Pool::apply() at a time:
// the caller writes its task frame to the worker's socket itself and takes the reply from the
// worker's mailbox (direct_mailbox.hpp), so a call costs two wake-ups instead of four and none on
// the I/O thread. The I/O thread still owns the worker: it lends it only while it holds no tasks,
// takes it back before dispatching to it, and settles the lent call when the worker dies.
//
//   gate          who moves it   meaning
//   kShut         -              the I/O thread's: not lendable (or unbound)
//   kOpen         I/O thread     bound to an idle worker; a caller may claim it
//   kLent         caller         a caller has it
//   kLentWanted   I/O thread     lent, and the I/O thread has tasks waiting: the caller hands
//                                it back (kShut) and wakes dispatch
//   kLentLost     I/O thread     lent, and the binding ended (the worker died, the pool stops):
//                                the caller closes `fd` and shuts it
//
// The pure transitions are here (tested without processes in direct_lane_test); the
// coordinator does the binding (coordinator_direct.cpp).
//
// Internal (namespace detail).
//
// Thread safety: `gate` and `task_id` are atomic. `fd` and `box` are written by the I/O thread
// while the lane is kShut and unbound, and published by its store of kOpen. `reply` and `lost`
// are written by the I/O thread before it settles the mailbox and read by the caller after.
#pragma once

#include <atomic>
#include <cstdint>
#include <exception>

#include "mproc/serialize/detail/wire_archive.hpp"
#include "mproc/worker/detail/direct_mailbox.hpp"

namespace mproc::detail {

struct DirectLane {
  enum Gate : std::uint32_t { kShut, kOpen, kLent, kLentWanted, kLentLost };

  std::atomic<std::uint32_t> gate{kShut};
  int fd = -1;                   // the caller's own descriptor of the worker's socket (a dup)
  DirectMailbox* box = nullptr;  // the worker's mailbox
  std::atomic<std::uint64_t> task_id{0};  // the lent call's task
  std::atomic<std::uint64_t> calls{0};    // calls answered through this binding (stats)
  Bytes reply;              // a reply too large for the mailbox, as the socket brought it
  std::exception_ptr lost;  // why the call failed; null: it never started (queue it)
  bool bound = false;       // I/O thread only
};

// Caller: takes an open lane. False if it is not open.
inline bool lane_claim(DirectLane& l) noexcept {
  std::uint32_t open = DirectLane::kOpen;
  return l.gate.compare_exchange_strong(open, DirectLane::kLent, std::memory_order_acq_rel);
}

// Caller: gives the lane back. Returns what the caller must do next.
enum class LaneReturn {
  kReopened,  // open again, for the next call
  kWanted,    // the I/O thread's again: wake its dispatch
  kCloseFd,   // the binding ended: close `fd`, then lane_shut() (nobody else moves kLentLost)
};
inline LaneReturn lane_release(DirectLane& l) noexcept {
  std::uint32_t g = l.gate.load(std::memory_order_acquire);
  for (;;) {
    if (g == DirectLane::kLentLost) return LaneReturn::kCloseFd;
    const std::uint32_t to = g == DirectLane::kLent ? DirectLane::kOpen : DirectLane::kShut;
    if (l.gate.compare_exchange_weak(g, to, std::memory_order_acq_rel)) {
      return g == DirectLane::kLent ? LaneReturn::kReopened : LaneReturn::kWanted;
    }
  }
}
inline void lane_shut(DirectLane& l) noexcept {
  l.gate.store(DirectLane::kShut, std::memory_order_release);
}

// I/O thread: the worker is wanted for queued tasks. True when the I/O thread has it (the lane
// was shut or open); false while a caller has it (marked wanted).
inline bool lane_reclaim(DirectLane& l) noexcept {
  std::uint32_t g = l.gate.load(std::memory_order_acquire);
  for (;;) {
    if (g == DirectLane::kShut) return true;
    if (g == DirectLane::kLentWanted || g == DirectLane::kLentLost) return false;
    const std::uint32_t to = g == DirectLane::kOpen ? DirectLane::kShut : DirectLane::kLentWanted;
    if (l.gate.compare_exchange_weak(g, to, std::memory_order_acq_rel)) {
      return g == DirectLane::kOpen;
    }
  }
}

// I/O thread: the binding ends. True when the lane was not lent (the I/O thread closes `fd`
// now); false when a caller has it (kLentLost: that caller closes it).
inline bool lane_unbind(DirectLane& l) noexcept {
  std::uint32_t g = l.gate.load(std::memory_order_acquire);
  for (;;) {
    const bool lent = g == DirectLane::kLent || g == DirectLane::kLentWanted;
    if (g == DirectLane::kLentLost) return false;
    if (l.gate.compare_exchange_weak(g, lent ? DirectLane::kLentLost : DirectLane::kShut,
                                     std::memory_order_acq_rel)) {
      return !lent;
    }
  }
}

// Whether a direct call should poll (the caller for its reply, the worker for the next call)
// rather than sleep: only while both can have a CPU nobody else wants. `runnable` is the
// machine's count of runnable threads as last sampled (/proc/loadavg), which included the two
// pollers if the calls polled then; `ours` is what the pool itself keeps busy (lent calls, two
// parties each, and workers running queued tasks). Polling where CPUs are short makes each
// poller take the CPU the other needs: a call then costs scheduler slices, not microseconds.
inline bool polling_pays(int runnable, bool polled_then, int ours, int cpus) noexcept {
  const int others = runnable - (polled_then ? 2 : 1);  // the sampler itself is runnable
  return ours <= cpus && (others < 0 ? 0 : others) + 2 <= cpus;
}

inline bool lane_lent(const DirectLane& l) noexcept {
  const std::uint32_t g = l.gate.load(std::memory_order_acquire);
  return g == DirectLane::kLent || g == DirectLane::kLentWanted || g == DirectLane::kLentLost;
}

}  // namespace mproc::detail
