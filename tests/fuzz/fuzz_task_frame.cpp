// Fuzz target: task frames as a worker runs them, and the reply as the coordinator reads it.
//
// Input: bytes as they arrive on a worker's socket. Like the worker's Inbox, the target splits
// them into frames (a corrupt header ends the worker), skips kCancel, and runs each kTask/kInit
// payload with invoke_payload exactly as worker_loop.cpp's run_frame does: a throw becomes a
// kResultErr reply built by encode_current_exception. The reply is then read back as the
// coordinator does: parse_frame_header, then decode_results<R> or decode_exception.
//
// The invokers registered are fuzz_types.hpp's `Registered`. Expected: any task or decode
// failure becomes a kResultErr reply; unless the callable itself throws (Thrower), that error
// is the documented SerializationError (errors.hpp: a corrupt frame, an unknown callable, a
// cereal failure while decoding a task's arguments). Findings: crashes, sanitizer reports,
// huge allocations, a reply that does not parse, a kResultOk whose results do not decode, a
// decode failure reported to the caller as anything but SerializationError.
//
// Known limitation kept out of the way (see the report in the fuzz README): a task frame that
// names a plain function is accepted if *any* function symbol starts at that offset, whatever
// its signature, so fuzzed offsets would call unrelated functions with the wrong arguments.
// Unless MPROC_FUZZ_ANY_FUNCTION=1 is set, the target only lets a function-pointer invoker run
// when its target resolves to that invoker's own function (decode_function_location still runs
// on every input).
#include <cstring>
#include <exception>
#include <typeinfo>

#include "fuzz_common.hpp"
#include "fuzz_types.hpp"
#include "mproc/pool/detail/tasks.hpp"
#include "mproc/serialize/detail/exception_wire.hpp"
#include "mproc/serialize/detail/frame.hpp"

namespace d = mproc::detail;
using mproc_fuzz::fail;

namespace {

constexpr std::size_t kCap = std::size_t{1} << 20;  // well above any fuzz input, below Repeat

// How the coordinator decodes a kResultOk for a given invoker (tasks.hpp: decode_results).
template <class R>
void check_results(std::span<const char> payload, std::uint32_t count) {
  if constexpr (std::is_void_v<R>) {
    if (!payload.empty()) fail("void task replied with bytes");
  } else {
    std::vector<R> out(count);
    try {
      d::decode_results(payload, out.data(), count);
    } catch (const std::exception& e) {
      fail("a worker's own kResultOk does not decode:", e.what());
    }
  }
}

struct Entry {
  std::uint64_t key;
  void (*check)(std::span<const char>, std::uint32_t);
  const void* function;  // the plain function a function-pointer invoker may call, or null
  bool throws;           // the callable throws on its own (Thrower)
};

template <class Reg>
Entry entry() {
  using F = typename Reg::Fn;
  const void* fn = nullptr;
  if constexpr (std::is_same_v<F, int (*)(int)>) {
    fn = reinterpret_cast<const void*>(&mproc_fuzz::twice);
  } else if constexpr (std::is_same_v<F, std::string (*)(std::string)>) {
    fn = reinterpret_cast<const void*>(&mproc_fuzz::shout);
  }
  return {d::Invoker<F, typename Reg::ItemT, Reg::shape>::key, &check_results<typename Reg::Result>,
          fn, std::is_same_v<F, mproc_fuzz::Thrower>};
}

template <std::size_t... I>
std::vector<Entry> entries(std::index_sequence<I...>) {
  return {entry<std::tuple_element_t<I, mproc_fuzz::Registered>>()...};
}

const std::vector<Entry>& registered() {
  static const std::vector<Entry> all =
      entries(std::make_index_sequence<std::tuple_size_v<mproc_fuzz::Registered>>{});
  return all;
}

const Entry* find_entry(std::uint64_t key) {
  for (const Entry& e : registered()) {
    if (e.key == key) return &e;
  }
  return nullptr;
}

// The callable part of a task payload, read the way invoke_payload reads it.
struct Head {
  const Entry* entry = nullptr;
  bool has_target = false;
  void* target = nullptr;
  std::uint32_t count = 0;
};

std::optional<Head> read_head(std::span<const char> payload) {
  try {
    d::WireInputArchive in(payload);
    std::uint64_t key = 0;
    std::uint8_t has_target = 0;
    in(key, has_target);
    Head h;
    h.entry = find_entry(key);
    h.has_target = has_target != 0;
    if (h.has_target) h.target = d::decode_function_location(in);
    in(h.count);
    return h;
  } catch (const mproc::Error&) {
    return std::nullopt;  // invoke_payload will fail the same way
  }
}

// worker_loop.cpp's run_frame.
void run_frame(const d::FrameHeader& h, std::span<const char> payload, d::Bytes& out,
               std::size_t max_frame) {
  const std::size_t at = d::begin_frame(out);
  try {
    d::invoke_payload(payload, out, max_frame);
    d::finish_frame(out, at, d::FrameKind::kResultOk, h.task_id, 0, max_frame);
  } catch (...) {
    out.resize(at + d::kFrameHeaderSize);
    d::encode_current_exception(out);
    try {
      d::finish_frame(out, at, d::FrameKind::kResultErr, h.task_id, 0, max_frame);
    } catch (...) {
      out.resize(at + d::kFrameHeaderSize);
      d::encode_error(out, "SerializationError", "the task's error exceeds max_frame_bytes");
      d::finish_frame(out, at, d::FrameKind::kResultErr, h.task_id, 0);
    }
  }
}

// The coordinator's parse_frames on one reply. Returns whether it was an error reply.
bool read_reply(const d::Bytes& out, const d::FrameHeader& task, const std::optional<Head>& head) {
  std::optional<d::FrameHeader> r;
  try {
    r = d::parse_frame_header(out, kCap);
  } catch (const std::exception& e) {
    fail("the worker's reply header does not parse:", e.what());
  }
  if (!r || out.size() != d::kFrameHeaderSize + r->length) fail("reply frame has a bad length");
  if (r->task_id != task.task_id) fail("reply names another task");
  const std::span<const char> payload(out.data() + d::kFrameHeaderSize, r->length);
  if (r->kind == d::FrameKind::kResultOk) {
    if (!head || !head->entry) fail("kResultOk for a task whose invoker is unknown");
    head->entry->check(payload, head->count);
    return false;
  }
  if (r->kind != d::FrameKind::kResultErr) fail("reply of unexpected kind");
  const std::exception_ptr e = d::decode_exception(payload);
  if (!e) fail("decode_exception returned a null exception_ptr");
  const bool task_may_throw = head && head->entry && head->entry->throws;
  try {
    std::rethrow_exception(e);
  } catch (const mproc::SerializationError& ex) {
    (void)std::strlen(ex.what());
  } catch (const std::exception& ex) {
    if (!task_may_throw) {
      fail("a corrupt task frame came back as another error than SerializationError:",
           d::demangle(typeid(ex).name()) + ": " + ex.what());
    }
  } catch (...) {
    fail("error reply rebuilt as a non-std::exception");
  }
  return true;
}

bool any_function_allowed() {
  static const bool allowed = [] {
    const char* v = std::getenv("MPROC_FUZZ_ANY_FUNCTION");
    return v != nullptr && std::strcmp(v, "1") == 0;
  }();
  return allowed;
}

}  // namespace

MPROC_FUZZ_TARGET(task_frame) {
  const std::span<const char> in = mproc_fuzz::as_chars(data, size);
  std::size_t pos = 0;
  for (;;) {  // the worker's Inbox
    const std::span<const char> rest = in.subspan(pos);
    std::optional<d::FrameHeader> h;
    try {
      h = d::parse_frame_header(rest, kCap);
    } catch (const mproc::SerializationError&) {
      return 0;  // the worker logs and exits
    }
    if (!h || rest.size() < d::kFrameHeaderSize + h->length) return 0;  // waits for more
    pos += d::kFrameHeaderSize + h->length;
    if (h->kind == d::FrameKind::kCancel) continue;
    if (h->kind != d::FrameKind::kTask && h->kind != d::FrameKind::kInit) return 0;  // exits
    const std::span<const char> payload = rest.subspan(d::kFrameHeaderSize, h->length);

    const std::optional<Head> head = read_head(payload);
    if (head && head->entry && head->entry->function != nullptr && head->has_target &&
        head->target != head->entry->function && !any_function_allowed()) {
      continue;  // see "Known limitation" above
    }
    d::Bytes out;
    run_frame(*h, payload, out, kCap);
    const bool failed = read_reply(out, *h, head);
    if (failed && h->kind == d::FrameKind::kInit) return 0;  // the worker exits
  }
}
