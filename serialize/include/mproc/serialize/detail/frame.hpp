// mproc/serialize/detail/frame.hpp — the frame: the unit that crosses a worker's socket.
//
//   offset  size  field
//   0       2     magic 0x4D50 ("MP")
//   2       1     version
//   3       1     kind (FrameKind)
//   4       4     payload length in bytes (little endian, host order: both ends run one binary)
//   8       8     task id
//   16      8     aux: for results, the worker's execution time in ns; for kTaskDirect, how
//                 long (ns) the worker polls its socket for the caller's next call; else 0
//   24      ...   payload
//
// A reader checks magic, version, kind and the length against its cap from the 24 header bytes
// alone, before it allocates or reads anything of the payload.
//
// Thread safety: plain functions and values; no shared state.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string>

#include "mproc/serialize/detail/wire_archive.hpp"

namespace mproc::detail {

inline constexpr std::uint16_t kFrameMagic = 0x4D50;
inline constexpr std::uint8_t kFrameVersion = 1;
inline constexpr std::size_t kFrameHeaderSize = 24;
// Default cap on one frame's payload: far above any sane task, far below an allocation that
// would take the machine down.
inline constexpr std::size_t kDefaultMaxFrameBytes = std::size_t{1} << 30;

enum class FrameKind : std::uint8_t {
  kTask = 1,        // coordinator -> worker: run a chunk of calls
  kInit = 2,        // coordinator -> worker: run the initializer (first frame a worker gets)
  kResultOk = 3,    // worker -> coordinator: the chunk's results
  kResultErr = 4,   // worker -> coordinator: the chunk threw (payload: exception_wire.hpp)
  kCancel = 5,      // coordinator -> worker: skip task `task_id` if it has not started
  kRetiring = 6,    // worker -> coordinator: over its memory cap; it exits after this frame
  kTaskDirect = 7,  // caller -> idle worker: a kTask whose reply goes to the worker's mailbox
                    // (direct_mailbox.hpp), or as a result frame when it does not fit
};

struct FrameHeader {
  std::uint16_t magic = kFrameMagic;
  std::uint8_t version = kFrameVersion;
  FrameKind kind = FrameKind::kTask;
  std::uint32_t length = 0;
  std::uint64_t task_id = 0;
  std::uint64_t aux = 0;
};
static_assert(sizeof(FrameHeader) == kFrameHeaderSize);
static_assert(offsetof(FrameHeader, kind) == 3 && offsetof(FrameHeader, length) == 4 &&
                  offsetof(FrameHeader, task_id) == 8 && offsetof(FrameHeader, aux) == 16,
              "FrameHeader must match the wire table above");

// Fields of an encoded frame, read or written in place; `frame` holds at least the header.
// For a frame that may not parse (its task id names the task an error answers) and for a
// field set after the frame was built.
inline std::uint64_t frame_task_id(std::span<const char> frame) noexcept {
  std::uint64_t id;
  std::memcpy(&id, frame.data() + offsetof(FrameHeader, task_id), sizeof id);
  return id;
}
inline void set_frame_aux(std::span<char> frame, std::uint64_t aux) noexcept {
  std::memcpy(frame.data() + offsetof(FrameHeader, aux), &aux, sizeof aux);
}

// Parses and validates the header at the front of `bytes`. Returns nullopt if fewer than
// kFrameHeaderSize bytes are present. Throws SerializationError for a bad magic, version or
// kind, or a length above `max_payload`.
std::optional<FrameHeader> parse_frame_header(std::span<const char> bytes, std::size_t max_payload);

// Starts a frame in `out`: reserves the header, returns its offset. Append the payload, then
// call finish_frame, which fills in the header and checks the payload against `max_payload`.
std::size_t begin_frame(Bytes& out);
void finish_frame(Bytes& out, std::size_t at, FrameKind kind, std::uint64_t task_id,
                  std::uint64_t aux, std::size_t max_payload = kDefaultMaxFrameBytes);

}  // namespace mproc::detail
