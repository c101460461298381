// mproc/serialize/frame.hpp — the frame: the unit that crosses a worker's socket.
//
//   offset  size  field
//   0       2     magic 0x4D50 ("MP")
//   2       1     version
//   3       1     kind (FrameKind)
//   4       4     payload length in bytes (little endian, host order: both ends run one binary)
//   8       8     task id
//   16      8     aux: for results, the worker's execution time in ns; otherwise 0
//   24      ...   payload
//
// A reader checks magic, version, kind and the length against its cap from the 24 header bytes
// alone, before it allocates or reads anything of the payload.
//
// Thread safety: plain functions and values; no shared state.
#pragma once

#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string>

#include "mproc/serialize/wire_archive.hpp"

namespace mproc::detail {

inline constexpr std::uint16_t kFrameMagic = 0x4D50;
inline constexpr std::uint8_t kFrameVersion = 1;
inline constexpr std::size_t kFrameHeaderSize = 24;
// Default cap on one frame's payload: far above any sane task, far below an allocation that
// would take the machine down.
inline constexpr std::size_t kDefaultMaxFrameBytes = std::size_t{1} << 30;

enum class FrameKind : std::uint8_t {
  kTask = 1,       // coordinator -> worker: run a chunk of calls
  kInit = 2,       // coordinator -> worker: run the initializer (first frame a worker gets)
  kResultOk = 3,   // worker -> coordinator: the chunk's results
  kResultErr = 4,  // worker -> coordinator: the chunk threw (payload: exception_wire.hpp)
  kCancel = 5,     // coordinator -> worker: skip task `task_id` if it has not started
  kRetiring = 6,   // worker -> coordinator: over its memory cap; it exits after this frame
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
