// progress_slots.hpp — the memory the coordinator shares with its workers, one slot per live
// worker, in a memfd: forked workers inherit the mapping, the fork server's zygote and spawned
// workers map the descriptor. A slot holds the worker's progress counters (WorkerTaskCounters):
// after a worker dies they say which of its tasks ran; while it lives they carry the
// coordinator's requests to stop a task (soft time limits). Past the counters, each slot has
// a payload area: the buffers its large tasks and results cross in (payload_channel.hpp),
// mapped here lazily and kept for the pool's life, so a replacement worker reuses them.
//
// Thread safety: the coordinator's I/O thread only.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "mproc/runtime/detail/fd.hpp"
#include "mproc/worker/detail/payload_channel.hpp"
#include "mproc/worker/detail/worker_loop.hpp"

namespace mproc::detail {

class ProgressSlots {
 public:
  static constexpr unsigned kNoSlot = ~0u;

  // Maps `count` slots; sizes (sparse) a payload area per slot for frames of up to
  // `max_frame_bytes`, the coordinator sharing tasks of `share_from` bytes or more (0: none).
  // Throws std::system_error.
  ProgressSlots(unsigned count, std::size_t max_frame_bytes, std::size_t share_from);
  ProgressSlots(const ProgressSlots&) = delete;
  ProgressSlots& operator=(const ProgressSlots&) = delete;
  ~ProgressSlots();

  unsigned count() const noexcept { return count_; }
  WorkerTaskCounters* data() const noexcept { return slots_; }
  // The memfd, for the zygote to inherit or map. Kept open: payload buffers are mapped from it
  // as they are first used.
  int fd() const noexcept { return fd_.get(); }

  // Slot `slot`'s payload buffers, the coordinator's side (mapped at first use), or null if
  // they cannot be mapped (the worker's frames then all go through its socket).
  PayloadChannel* payloads(unsigned slot) noexcept;

  // A free slot with its counters at zero, or kNoSlot when all are taken (the worker then runs
  // without bookkeeping).
  unsigned acquire() noexcept {
    if (free_.empty()) return kNoSlot;
    const unsigned s = free_.back();
    free_.pop_back();
    slots_[s].started.store(0);
    slots_[s].finished.store(0);
    slots_[s].stop_task.store(0);
    mail_own(slots_[s].mailbox, 0);           // not lendable until its new worker says it maps it
    if (payloads_[s]) payloads_[s]->reset();  // its last worker died holding buffers
    return s;
  }
  // Asks the worker in `slot` to stop task `id` (mproc::this_task::stop_requested() turns true
  // in it while it runs). False when the worker has no slot: it cannot be asked.
  bool request_stop(unsigned slot, std::uint64_t id) noexcept {
    if (slot == kNoSlot) return false;
    slots_[slot].stop_task.store(id, std::memory_order_relaxed);
    return true;
  }
  // Gives back a slot (kNoSlot: nothing). Its counters must have been read.
  void release(unsigned slot) {
    if (slot != kNoSlot) free_.push_back(slot);
  }

  struct Counts {
    std::uint64_t started = 0;
    std::uint64_t finished = 0;
  };
  Counts counts(unsigned slot) const noexcept {
    const WorkerTaskCounters& p = slots_[slot];
    return {p.started.load(std::memory_order_acquire), p.finished.load(std::memory_order_acquire)};
  }

 private:
  unsigned count_;
  UniqueFd fd_;
  WorkerTaskCounters* slots_ = nullptr;
  std::vector<unsigned> free_;
  std::size_t buffer_bytes_;
  std::size_t share_from_;
  std::vector<std::unique_ptr<PayloadChannel>> payloads_;
};

}  // namespace mproc::detail
