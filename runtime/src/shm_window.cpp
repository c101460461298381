#include "mproc/runtime/detail/shm_window.hpp"

#include <sys/mman.h>

#include <algorithm>
#include <utility>

namespace mproc::detail {
namespace {
// The first mapping is at least this large (the smallest payload worth sharing); later ones
// double, so a few growths reach any payload size. Not more: each mapped page is pre-faulted on
// both sides, and a fresh pool's first map of 10^6 ints (500 KB chunks) spent a fifth of its
// time populating 1 MiB windows (65-75 -> 86-116 M items/s with 64 KiB).
constexpr std::size_t kMinMapping = std::size_t{64} << 10;
constexpr std::size_t kPage = 4096;
}  // namespace

ShmWindow& ShmWindow::operator=(ShmWindow&& o) noexcept {
  if (this != &o) {
    if (base_) ::munmap(base_, mapped_);
    fd_ = o.fd_;
    offset_ = o.offset_;
    limit_ = o.limit_;
    base_ = std::exchange(o.base_, nullptr);
    mapped_ = std::exchange(o.mapped_, 0);
  }
  return *this;
}

ShmWindow::~ShmWindow() {
  if (base_) ::munmap(base_, mapped_);
}

char* ShmWindow::reach(std::size_t n) noexcept {
  if (n <= mapped_) return base_;
  if (n > limit_ || fd_ < 0) return nullptr;
  std::size_t size = std::max({n, 2 * mapped_, kMinMapping});
  size = std::min((size + kPage - 1) / kPage * kPage, limit_);
  void* p = base_ ? ::mremap(base_, mapped_, size, MREMAP_MAYMOVE)
                  : ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd_, offset_);
  if (p == MAP_FAILED) return nullptr;
  char* grown = static_cast<char*>(p);
  // Fault the new part in now, in one call, rather than page by page in the copy that follows
  // (an old kernel without MADV_POPULATE_WRITE just faults on first touch, as before).
  ::madvise(grown + mapped_, size - mapped_, MADV_POPULATE_WRITE);
  base_ = grown;
  mapped_ = size;
  return base_;
}

}  // namespace mproc::detail
