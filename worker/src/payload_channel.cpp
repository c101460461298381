#include "mproc/worker/detail/payload_channel.hpp"

#include <sys/mman.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>
#include <system_error>

#include "mproc/worker/detail/worker_loop.hpp"

namespace mproc::detail {
namespace {

constexpr std::size_t kPage = 4096;

std::size_t round_to_page(std::size_t n) noexcept {
  return (n + kPage - 1) / kPage * kPage;
}

std::size_t area_bytes(std::size_t buffer_bytes) noexcept {
  return kPage + kPayloadBuffers * buffer_bytes;
}

// The buffers a side writes: [first, first + count).
struct Range {
  unsigned first, count;
};
Range written_by(PayloadChannel::Side s) noexcept {
  return s == PayloadChannel::Side::kCoordinator ? Range{0, kToWorkerBuffers}
                                                 : Range{kToWorkerBuffers, kToCoordinatorBuffers};
}

bool read_ref(std::span<const char> inline_payload, SharedRef& r) noexcept {
  if (inline_payload.size() != sizeof r) return false;
  std::memcpy(&r, inline_payload.data(), sizeof r);
  return r.buffer < kPayloadBuffers;
}

}  // namespace

std::size_t payload_buffer_bytes(std::size_t max_frame_bytes) noexcept {
  return round_to_page(std::min(max_frame_bytes, kSharedPayloadMax));
}

off_t payload_area_offset(std::uint32_t nslots, std::uint32_t slot,
                          std::size_t buffer_bytes) noexcept {
  const std::size_t slots = round_to_page(nslots * sizeof(WorkerTaskCounters));
  return static_cast<off_t>(slots + slot * area_bytes(buffer_bytes));
}

PayloadChannel::PayloadChannel(int fd, off_t area, std::size_t buffer_bytes, Side side,
                               std::size_t share_from)
    : fd_(fd), side_(side), buffer_bytes_(buffer_bytes), share_from_(share_from) {
  void* p = ::mmap(nullptr, kPage, PROT_READ | PROT_WRITE, MAP_SHARED, fd, area);
  if (p == MAP_FAILED) {
    throw std::system_error(errno, std::generic_category(), "mmap payload flags");
  }
  static_assert(kPayloadBuffers * sizeof(std::atomic<std::uint32_t>) <= kPage);
  flags_ = static_cast<std::atomic<std::uint32_t>*>(p);
  for (unsigned b = 0; b < kPayloadBuffers; ++b) {
    windows_[b] = ShmWindow(fd, area + static_cast<off_t>(kPage + b * buffer_bytes), buffer_bytes);
  }
}

PayloadChannel::~PayloadChannel() {
  ::munmap(flags_, kPage);
}

void PayloadChannel::reset() noexcept {
  for (unsigned b = 0; b < kPayloadBuffers; ++b) busy(b).store(0, std::memory_order_relaxed);
}

bool PayloadChannel::share(std::span<const char> frame,
                           std::span<char, kSharedRefFrameBytes> ref) noexcept {
  if (frame.size() < kFrameHeaderSize) return false;
  FrameHeader h;
  std::memcpy(&h, frame.data(), kFrameHeaderSize);
  const std::size_t length = frame.size() - kFrameHeaderSize;
  const bool kind_ok =
      side_ == Side::kCoordinator ? h.kind == FrameKind::kTask : h.kind == FrameKind::kResultOk;
  if (!kind_ok || share_from_ == 0 || length < share_from_ || length > buffer_bytes_) return false;
  const Range mine = written_by(side_);
  for (unsigned b = mine.first; b < mine.first + mine.count; ++b) {
    // Acquire: the receiver's reads of this buffer happened before it cleared the word.
    if (busy(b).load(std::memory_order_acquire) != 0) continue;
    char* dst = windows_[b].reach(length);
    if (dst == nullptr) return false;
    std::memcpy(dst, frame.data() + kFrameHeaderSize, length);
    busy(b).store(1, std::memory_order_release);  // the bytes above before the word
    const SharedRef r{b, 0, length};
    h.length = sizeof r;
    h.aux |= kSharedPayloadFlag;
    std::memcpy(ref.data(), &h, kFrameHeaderSize);
    std::memcpy(ref.data() + kFrameHeaderSize, &r, sizeof r);
    return true;
  }
  return false;
}

bool PayloadChannel::share_in_place(Bytes& out, std::size_t at) noexcept {
  char ref[kSharedRefFrameBytes];
  if (!share(std::span<const char>(out).subspan(at), ref)) return false;
  out.resize(at + kSharedRefFrameBytes);  // shrinking: no allocation, the capacity stays
  std::memcpy(out.data() + at, ref, kSharedRefFrameBytes);
  return true;
}

PayloadChannel::Opened PayloadChannel::open(std::span<const char> inline_payload,
                                            std::size_t max_payload) {
  SharedRef r;
  if (!read_ref(inline_payload, r))
    throw SerializationError("corrupt frame: bad shared payload reference");
  const Range theirs = written_by(side_ == Side::kCoordinator ? Side::kWorker : Side::kCoordinator);
  if (r.buffer < theirs.first || r.buffer >= theirs.first + theirs.count) {
    throw SerializationError("corrupt frame: shared payload in a buffer its sender does not own");
  }
  if (r.length > max_payload || r.length > buffer_bytes_) {
    throw SerializationError("oversized frame: " + std::to_string(r.length) +
                             " bytes declared, cap is " +
                             std::to_string(std::min(max_payload, buffer_bytes_)));
  }
  if (busy(r.buffer).load(std::memory_order_acquire) == 0) {
    throw SerializationError("corrupt frame: shared payload buffer is not filled");
  }
  const char* base = windows_[r.buffer].reach(r.length);
  if (base == nullptr) {
    throw SerializationError("cannot map a shared payload of " + std::to_string(r.length) +
                             " bytes");
  }
  return {{base, r.length}, r.buffer};
}

void PayloadChannel::release(unsigned buffer) noexcept {
  if (buffer < kPayloadBuffers) busy(buffer).store(0, std::memory_order_release);
}

void PayloadChannel::release(std::span<const char> inline_payload) noexcept {
  SharedRef r;
  if (read_ref(inline_payload, r)) release(r.buffer);
}

}  // namespace mproc::detail
