#include "mproc/serialize/detail/stream_frame.hpp"

#include <cstdint>
#include <cstring>
#include <string>

#include "mproc/errors.hpp"

namespace mproc::detail {

StreamHeader make_stream_header(std::size_t size, std::size_t max_payload, const char* what) {
  const std::size_t cap = max_payload < UINT32_MAX ? max_payload : UINT32_MAX;
  if (size > cap) {
    throw SerializationError("a " + std::string(what) + " message of " + std::to_string(size) +
                             " bytes exceeds the cap of " + std::to_string(cap) + " bytes");
  }
  return StreamHeader{kStreamMagic, static_cast<std::uint32_t>(size)};
}

std::optional<StreamHeader> parse_stream_header(std::span<const char> bytes,
                                                std::size_t max_payload) {
  if (bytes.size() < kStreamHeaderSize) return std::nullopt;
  StreamHeader h;
  std::memcpy(&h, bytes.data(), kStreamHeaderSize);
  if (h.magic != kStreamMagic) throw SerializationError("corrupt message header");
  if (h.length > max_payload) {
    throw SerializationError("message of " + std::to_string(h.length) +
                             " bytes exceeds the limit of " + std::to_string(max_payload));
  }
  return h;
}

}  // namespace mproc::detail
