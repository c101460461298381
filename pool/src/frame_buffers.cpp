#include "mproc/pool/detail/frame_buffers.hpp"

#include <array>
#include <atomic>
#include <utility>

namespace mproc::detail {
namespace {

// A slot is empty, being used by one thread, or holds a buffer.
enum : int { kEmpty = 0, kBusy = 1, kFull = 2 };

struct Slot {
  std::atomic<int> state{kEmpty};
  Bytes buffer;
};

// Never destroyed: tasks may be destroyed (and recycle) during static destruction.
std::array<Slot, FrameBuffers::kSlots>& slots() {
  static auto* s = new std::array<Slot, FrameBuffers::kSlots>();
  return *s;
}

}  // namespace

Bytes frame_buffer(std::size_t bytes) {
  for (Slot& s : slots()) {
    int full = kFull;
    if (!s.state.compare_exchange_strong(full, kBusy, std::memory_order_acquire)) continue;
    if (s.buffer.capacity() >= bytes) {
      Bytes b = std::move(s.buffer);
      s.buffer = Bytes();
      s.state.store(kEmpty, std::memory_order_release);
      b.clear();
      return b;
    }
    s.state.store(kFull, std::memory_order_release);
  }
  Bytes b;
  b.reserve(bytes);
  return b;
}

void recycle_frame_buffer(Bytes& b) noexcept {
  const std::size_t cap = b.capacity();
  if (cap < FrameBuffers::kMin || cap > FrameBuffers::kMaxKept) return;
  for (Slot& s : slots()) {
    int empty = kEmpty;
    if (!s.state.compare_exchange_strong(empty, kBusy, std::memory_order_acquire)) continue;
    s.buffer = std::move(b);
    s.state.store(kFull, std::memory_order_release);
    return;
  }
}

void release_frame_buffers() noexcept {
  for (Slot& s : slots()) {
    int full = kFull;
    if (!s.state.compare_exchange_strong(full, kBusy, std::memory_order_acquire)) continue;
    Bytes().swap(s.buffer);
    s.state.store(kEmpty, std::memory_order_release);
  }
}

}  // namespace mproc::detail
