// mproc/serialize/detail/stream_frame.hpp — the framing of Pipe connections (connection.hpp) and
// Manager connections: each message is an 8-byte header, then its payload.
//
//   offset  size  field
//   0       4     magic 0x3143504D ("MPC1")
//   4       4     payload length in bytes (host order)
//   8       ...   payload
//
// A reader checks the magic and the length against its cap from the header alone, before it
// allocates or reads anything of the payload.
//
// Thread safety: plain functions and values; no shared state.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

namespace mproc::detail {

inline constexpr std::uint32_t kStreamMagic = 0x3143504D;
inline constexpr std::size_t kStreamHeaderSize = 8;

struct StreamHeader {
  std::uint32_t magic = kStreamMagic;
  std::uint32_t length = 0;

  std::span<const char> bytes() const noexcept {
    return {reinterpret_cast<const char*>(this), sizeof *this};
  }
};
static_assert(sizeof(StreamHeader) == kStreamHeaderSize);

// The header of a `size`-byte payload. Throws SerializationError above `max_payload` (or the
// 32-bit length field), naming `what` ("connection", "manager connection").
StreamHeader make_stream_header(std::size_t size, std::size_t max_payload, const char* what);

// Parses and validates the header at the front of `bytes`. Returns nullopt if fewer than
// kStreamHeaderSize bytes are present. Throws SerializationError for a bad magic or a length
// above `max_payload`.
std::optional<StreamHeader> parse_stream_header(std::span<const char> bytes,
                                                std::size_t max_payload);

}  // namespace mproc::detail
