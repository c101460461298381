// mproc/runtime/detail/shm_window.hpp — a mapping of one range of a memfd that grows to what
// is needed and is then kept: the buffers that carry large task payloads between the
// coordinator and a worker (worker/detail/payload_channel.hpp). Internal (namespace detail).
//
// Why a window and not a mapping per message: on a paravirtualized guest a page fault on fresh
// memory costs ~15 us, so a 1 MiB buffer mapped afresh per call costs ~4 ms of faults against
// ~50 us of copying. A window is mapped once, grown by doubling (mremap), and each growth is
// pre-faulted in bulk (MADV_POPULATE_WRITE, ~0.8 us a page): in steady state nothing faults.
// MAP_SHARED pages are not copied on write after a fork either.
//
// The range must lie inside the file (the file is sized sparse up front, so touching any of
// it never raises SIGBUS); pages that nobody touched cost no memory.
//
// Thread safety: none; one owner. The descriptor is borrowed and must outlive the window.
#pragma once

#include <sys/types.h>

#include <cstddef>

namespace mproc::detail {

class ShmWindow {
 public:
  ShmWindow() = default;
  // The range [offset, offset + limit) of `fd`; nothing is mapped yet. `offset` is page-aligned.
  ShmWindow(int fd, off_t offset, std::size_t limit) noexcept
      : fd_(fd), offset_(offset), limit_(limit) {}
  ShmWindow(const ShmWindow&) = delete;
  ShmWindow& operator=(const ShmWindow&) = delete;
  ShmWindow(ShmWindow&& o) noexcept { *this = static_cast<ShmWindow&&>(o); }
  ShmWindow& operator=(ShmWindow&& o) noexcept;
  ~ShmWindow();

  // The start of a mapping covering at least `n` bytes of the range (n <= limit()), or nullptr
  // when it cannot be mapped (no address space or memory: the caller takes another way).
  // May move the mapping: pointers from an earlier call are then stale.
  char* reach(std::size_t n) noexcept;

  std::size_t limit() const noexcept { return limit_; }
  std::size_t mapped() const noexcept { return mapped_; }

 private:
  int fd_ = -1;
  off_t offset_ = 0;
  std::size_t limit_ = 0;
  char* base_ = nullptr;
  std::size_t mapped_ = 0;
};

}  // namespace mproc::detail
