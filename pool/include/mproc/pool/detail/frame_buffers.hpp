// mproc/pool/detail/frame_buffers.hpp — large task frames' buffers, kept and reused.
// Internal (namespace detail).
//
// Why: a 1 MiB argument is encoded into a fresh 1 MiB frame on the caller's thread, and the
// frame is freed on the I/O thread when the task completes. glibc hands such memory back to the
// kernel (heap trimming) often enough that every call faulted its frame in anew: ~100 faults a
// call at ~15 us each on this VM, more than the copy itself. A handful of large buffers kept
// here are reused instead, so their pages stay resident.
//
// Bounded: kSlots buffers of at most kMaxKept bytes each; smaller frames than kMin are plain
// allocations, larger ones are freed as usual.
//
// Thread safety: all three functions may be called from any thread (lock-free slots, so a fork
// child never inherits a held lock). Neither throws except frame_buffer's std::bad_alloc.
#pragma once

#include <cstddef>

#include "mproc/serialize/detail/wire_archive.hpp"

namespace mproc::detail {

struct FrameBuffers {
  static constexpr std::size_t kMin = std::size_t{64} << 10;
  static constexpr std::size_t kMaxKept = std::size_t{16} << 20;
  static constexpr unsigned kSlots = 8;
};

// An empty buffer with room for `bytes`: a kept one if one is large enough, else a new one.
Bytes frame_buffer(std::size_t bytes);
// Keeps `b`'s storage for a later frame_buffer() when it is worth keeping and a slot is free;
// otherwise `b` is freed as usual.
void recycle_frame_buffer(Bytes& b) noexcept;

// Frees every kept buffer. Before the program forks a zygote: a kept buffer the fork shares
// would cost a copy-on-write fault per page at its next use (19-110 us each on a VM), where a
// fresh one costs a zero-fill fault (~2 us).
void release_frame_buffers() noexcept;

// Makes `f` (empty) able to take `bytes` without growing.
inline void reserve_frame(Bytes& f, std::size_t bytes) {
  if (bytes >= FrameBuffers::kMin && f.capacity() < bytes) {
    f = frame_buffer(bytes);
  } else {
    f.reserve(bytes);
  }
}

}  // namespace mproc::detail
