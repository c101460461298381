#include "mproc/serialize/detail/frame.hpp"

namespace mproc::detail {

std::optional<FrameHeader> parse_frame_header(std::span<const char> bytes,
                                              std::size_t max_payload) {
  if (bytes.size() < kFrameHeaderSize) return std::nullopt;
  FrameHeader h;
  std::memcpy(&h, bytes.data(), kFrameHeaderSize);
  if (h.magic != kFrameMagic) throw SerializationError("corrupt frame: bad magic");
  if (h.version != kFrameVersion) {
    throw SerializationError("corrupt frame: unsupported version " + std::to_string(h.version));
  }
  if (h.kind < FrameKind::kTask || h.kind > FrameKind::kTaskDirect) {
    throw SerializationError("corrupt frame: unknown kind " +
                             std::to_string(static_cast<int>(h.kind)));
  }
  if (h.length > max_payload) {
    throw SerializationError("oversized frame: " + std::to_string(h.length) +
                             " bytes declared, cap is " + std::to_string(max_payload));
  }
  return h;
}

std::size_t begin_frame(Bytes& out) {
  const std::size_t at = out.size();
  out.resize(at + kFrameHeaderSize);
  return at;
}

void finish_frame(Bytes& out, std::size_t at, FrameKind kind, std::uint64_t task_id,
                  std::uint64_t aux, std::size_t max_payload) {
  const std::size_t payload = out.size() - at - kFrameHeaderSize;
  if (payload > max_payload || payload > UINT32_MAX) {
    out.resize(at);
    throw SerializationError("payload of " + std::to_string(payload) +
                             " bytes exceeds the frame cap of " +
                             std::to_string(max_payload < UINT32_MAX ? max_payload : UINT32_MAX));
  }
  FrameHeader h;
  h.kind = kind;
  h.length = static_cast<std::uint32_t>(payload);
  h.task_id = task_id;
  h.aux = aux;
  std::memcpy(out.data() + at, &h, kFrameHeaderSize);
}

}  // namespace mproc::detail
