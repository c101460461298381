// Fuzz target: frame headers and the split of a byte stream into frames.
//
// Input: a 4-byte payload cap, then bytes as they would arrive on a worker's socket. Both
// readers (the worker's Inbox, the coordinator's parse_frames) call parse_frame_header on the
// unread part of their buffer and take `length` payload bytes after it; the coordinator then
// decodes an error reply with decode_exception. Expected: SerializationError for a bad header.
// Findings: crashes, a header accepted with fields out of range, a frame that does not
// re-encode to the same bytes, decode_exception returning a null exception_ptr.
#include <cstring>
#include <exception>

#include "fuzz_common.hpp"
#include "mproc/serialize/detail/exception_wire.hpp"
#include "mproc/serialize/detail/frame.hpp"

namespace d = mproc::detail;
using mproc_fuzz::fail;

namespace {

void check_header(const d::FrameHeader& h, std::size_t cap) {
  if (h.magic != d::kFrameMagic) fail("accepted a bad magic");
  if (h.version != d::kFrameVersion) fail("accepted a bad version");
  if (h.kind < d::FrameKind::kTask || h.kind > d::FrameKind::kTaskDirect) {
    fail("accepted an unknown kind", std::to_string(static_cast<int>(h.kind)));
  }
  if (h.length > cap) fail("accepted a frame above the cap");
}

// A complete frame must re-encode to exactly its own bytes.
void check_reencode(const d::FrameHeader& h, std::span<const char> frame, std::size_t cap) {
  d::Bytes re;
  const std::size_t at = d::begin_frame(re);
  re.insert(re.end(), frame.begin() + d::kFrameHeaderSize, frame.end());
  d::finish_frame(re, at, h.kind, h.task_id, h.aux, cap);
  if (re.size() != frame.size() || std::memcmp(re.data(), frame.data(), frame.size()) != 0) {
    fail("frame does not re-encode to the same bytes");
  }
}

void decode_error_reply(std::span<const char> payload) {
  const std::exception_ptr e = d::decode_exception(payload);
  if (!e) fail("decode_exception returned a null exception_ptr");
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    (void)std::strlen(ex.what());
  } catch (...) {
    fail("decode_exception rebuilt a non-std::exception");
  }
}

}  // namespace

MPROC_FUZZ_TARGET(frame_header) {
  std::span<const char> in = mproc_fuzz::as_chars(data, size);
  const std::size_t cap = mproc_fuzz::take<std::uint32_t>(in);

  // The stream as a reader sees it: frames back to back, the last possibly incomplete.
  std::size_t pos = 0;
  for (;;) {
    const std::span<const char> rest = in.subspan(pos);
    std::optional<d::FrameHeader> h;
    try {
      h = d::parse_frame_header(rest, cap);
    } catch (const mproc::SerializationError&) {
      return 0;  // both readers drop the connection here
    }
    if (!h) {
      if (rest.size() >= d::kFrameHeaderSize) fail("complete header reported as short");
      return 0;
    }
    check_header(*h, cap);
    // A reader that has only the header (or part of the payload) must get the same answer.
    const auto again = d::parse_frame_header(rest.first(d::kFrameHeaderSize), cap);
    if (!again || std::memcmp(&*again, &*h, sizeof *h) != 0) {
      fail("header parse depends on the bytes after it");
    }
    const std::size_t need = d::kFrameHeaderSize + h->length;
    if (rest.size() < need) return 0;  // readers wait for the rest
    const std::span<const char> frame = rest.first(need);
    check_reencode(*h, frame, cap);
    if (h->kind == d::FrameKind::kResultErr) {
      decode_error_reply(frame.subspan(d::kFrameHeaderSize));
    }
    pos += need;
  }
}
