#include "progress_slots.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>

namespace mproc::detail {

ProgressSlots::ProgressSlots(unsigned count, std::size_t max_frame_bytes, std::size_t share_from)
    : count_(count),
      buffer_bytes_(payload_buffer_bytes(max_frame_bytes)),
      share_from_(share_from),
      payloads_(count) {
  const std::size_t bytes = count_ * sizeof(WorkerTaskCounters);
  fd_ = UniqueFd(::memfd_create("mproc-progress", MFD_CLOEXEC));
  if (!fd_ || ::ftruncate(fd_.get(), payload_area_offset(count_, count_, buffer_bytes_)) != 0) {
    throw std::system_error(errno, std::generic_category(), "memfd for worker progress");
  }
  void* region = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd_.get(), 0);
  if (region == MAP_FAILED) throw std::system_error(errno, std::generic_category(), "mmap");
  slots_ = static_cast<WorkerTaskCounters*>(region);
  free_.reserve(count_);
  for (unsigned i = 0; i < count_; ++i) free_.push_back(count_ - 1 - i);
}

PayloadChannel* ProgressSlots::payloads(unsigned slot) noexcept {
  if (slot >= count_) return nullptr;
  if (!payloads_[slot]) {
    try {
      payloads_[slot] = std::make_unique<PayloadChannel>(
          fd_.get(), payload_area_offset(count_, slot, buffer_bytes_), buffer_bytes_,
          PayloadChannel::Side::kCoordinator, share_from_);
    } catch (const std::exception&) {
      return nullptr;
    }
  }
  return payloads_[slot].get();
}

ProgressSlots::~ProgressSlots() {
  payloads_.clear();  // their mappings go before the descriptor they were made from
  if (slots_) ::munmap(slots_, count_ * sizeof(WorkerTaskCounters));
}

}  // namespace mproc::detail
