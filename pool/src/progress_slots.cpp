#include "progress_slots.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>

namespace mproc::detail {

ProgressSlots::ProgressSlots(unsigned count) : count_(count) {
  const std::size_t bytes = count_ * sizeof(WorkerTaskCounters);
  fd_ = UniqueFd(::memfd_create("mproc-progress", MFD_CLOEXEC));
  if (!fd_ || ::ftruncate(fd_.get(), static_cast<off_t>(bytes)) != 0) {
    throw std::system_error(errno, std::generic_category(), "memfd for worker progress");
  }
  void* region = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd_.get(), 0);
  if (region == MAP_FAILED) throw std::system_error(errno, std::generic_category(), "mmap");
  slots_ = static_cast<WorkerTaskCounters*>(region);
  free_.reserve(count_);
  for (unsigned i = 0; i < count_; ++i) free_.push_back(count_ - 1 - i);
}

ProgressSlots::~ProgressSlots() {
  if (slots_) ::munmap(slots_, count_ * sizeof(WorkerTaskCounters));
}

}  // namespace mproc::detail
