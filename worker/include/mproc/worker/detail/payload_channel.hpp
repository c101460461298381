// mproc/worker/detail/payload_channel.hpp — large task and result payloads through shared
// memory instead of the worker's socket. Internal (namespace detail).
//
// Why: a 1 MiB payload through a socketpair is copied into and out of the kernel on each side
// and, with a 208 KiB socket buffer, wakes the reader 5-6 times per transfer. Through a shared
// buffer it is copied once by the sender and read in place by the receiver.
//
// Where: the pool's shared memfd (the one that holds the workers' progress slots,
// progress_slots.hpp) has, past the slots, one area per slot (so per live worker):
//
//   page 0        PayloadFlags: one `busy` word per buffer
//   then          kToWorker buffers the coordinator writes (tasks), then kToCoordinator buffers
//                 the worker writes (results), `span` bytes of the file each
//
// The file is sized sparse up front, so no offset inside it can raise SIGBUS; a buffer costs
// memory only once used, and then stays (ShmWindow): reused, never faulted again.
//
// Protocol: a frame of kind kTask or kResultOk whose aux has kSharedPayloadFlag set carries, as
// its payload, a 16-byte SharedRef {buffer, length}. The sender copied the payload into that
// buffer and set its busy word (release) before sending the frame; the receiver checks the word
// is set (acquire), reads the bytes in place and clears the word (release) when done, and only
// then may the sender reuse the buffer. A sender with no free buffer, or a payload under
// kSharedPayloadMin (small frames are cheaper inline) or over the buffer size, sends inline as
// before. A worker that dies leaves its words set; the coordinator clears them (reset()) before
// the slot's next worker starts.
//
// Thread safety: one PayloadChannel per side of a slot; the coordinator's is used by its I/O
// thread only, the worker's by the worker. Nothing here throws except open() and the constructor.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <span>

#include "mproc/runtime/detail/shm_window.hpp"
#include "mproc/serialize/detail/frame.hpp"

namespace mproc::detail {

inline constexpr unsigned kToWorkerBuffers = 4;       // tasks in a worker's pipe at once
inline constexpr unsigned kToCoordinatorBuffers = 2;  // results not yet decoded by the pool
inline constexpr unsigned kPayloadBuffers = kToWorkerBuffers + kToCoordinatorBuffers;
// The default (PoolOptions::shared_payload_min): payloads from this size on go through shared
// memory (below it, one more copy of the frame costs less than the busy-word handshake and a
// buffer of its own; benchmarks/README.md has the measurement).
inline constexpr std::size_t kSharedPayloadMin = std::size_t{64} << 10;
// Payloads above this go inline: every buffer keeps the largest payload it carried, so this
// bounds the memory a worker's area can hold (kPayloadBuffers times this).
inline constexpr std::size_t kSharedPayloadMax = std::size_t{16} << 20;
// In a frame header's aux: the payload is a SharedRef. (A result's aux is its run time in ns,
// far below 2^63.)
inline constexpr std::uint64_t kSharedPayloadFlag = std::uint64_t{1} << 63;

struct SharedRef {
  std::uint32_t buffer = 0;
  std::uint32_t reserved = 0;
  std::uint64_t length = 0;
};
static_assert(sizeof(SharedRef) == 16);
inline constexpr std::size_t kSharedRefFrameBytes = kFrameHeaderSize + sizeof(SharedRef);

// The size of each buffer for a pool whose frames are capped at `max_frame_bytes`.
std::size_t payload_buffer_bytes(std::size_t max_frame_bytes) noexcept;
// Where slot `slot`'s area starts in a file holding `nslots` progress slots (slot == nslots:
// the file's whole size).
off_t payload_area_offset(std::uint32_t nslots, std::uint32_t slot,
                          std::size_t buffer_bytes) noexcept;

inline bool is_shared_frame(const FrameHeader& h) noexcept {
  return (h.aux & kSharedPayloadFlag) != 0 &&
         (h.kind == FrameKind::kTask || h.kind == FrameKind::kResultOk);
}

class PayloadChannel {
 public:
  enum class Side { kCoordinator, kWorker };

  // The area at `area` in `fd` (borrowed: it must outlive the channel); this side shares
  // payloads of `share_from` bytes or more (0: none). Throws std::system_error when its flags
  // page cannot be mapped.
  PayloadChannel(int fd, off_t area, std::size_t buffer_bytes, Side side,
                 std::size_t share_from = kSharedPayloadMin);
  PayloadChannel(const PayloadChannel&) = delete;
  PayloadChannel& operator=(const PayloadChannel&) = delete;
  ~PayloadChannel();

  // Coordinator, before the slot's next worker starts (the last one is dead): all buffers free.
  void reset() noexcept;

  // Sender. If the frame in `frame` (header and payload) should travel through shared memory
  // and a buffer is free: copies its payload there and writes the reference frame to `ref`
  // (kSharedRefFrameBytes). False: send `frame` as it is.
  bool share(std::span<const char> frame, std::span<char, kSharedRefFrameBytes> ref) noexcept;
  // The same for the frame at out[at..], which becomes the reference frame.
  bool share_in_place(Bytes& out, std::size_t at) noexcept;
  // Sender, for a reference frame it never sent (a withdrawn task): frees its buffer.
  void unshare(std::span<const char> ref) noexcept { release(ref); }

  struct Opened {
    std::span<const char> payload;
    unsigned buffer;
  };
  // Receiver: the payload a shared frame (is_shared_frame) refers to, in place; valid until
  // release(). Throws SerializationError for a reference that is malformed, names a buffer
  // that is not the sender's or not marked busy, or a length above `max_payload`; or when the
  // buffer cannot be mapped.
  Opened open(std::span<const char> inline_payload, std::size_t max_payload);
  // Receiver: done with a buffer (by index, or by the shared frame's payload); the sender may
  // reuse it.
  void release(unsigned buffer) noexcept;
  void release(std::span<const char> inline_payload) noexcept;

 private:
  std::atomic<std::uint32_t>& busy(unsigned b) noexcept { return flags_[b]; }

  int fd_;
  Side side_;
  std::size_t buffer_bytes_;
  std::size_t share_from_;
  std::atomic<std::uint32_t>* flags_ = nullptr;  // kPayloadBuffers words, in the area's first page
  ShmWindow windows_[kPayloadBuffers];
};

}  // namespace mproc::detail
