// mproc/runtime/detail/log_record.hpp — a log record on its way from a pool worker to the
// parent's sinks (log_channel.hpp): its datagram format, and the sender's choice between waiting
// for room and dropping. Internal (namespace detail). Pure: no I/O, no processes.
//
// A record is one datagram: a fixed header, then the process name, the source file and the
// function, each followed by a NUL (spdlog's source_loc wants C strings), then the text. Sender
// and receiver are the same executable on the same machine, so fields are in host order.
// A text longer than kMaxLogText is cut at a UTF-8 character boundary and marked.
//
// Thread safety: the functions are pure; a LogSendPolicy is a value (its owner locks it).
#pragma once

#include <spdlog/common.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

namespace mproc::detail {

enum class LogRecordKind : std::uint8_t {
  kRecord = 1,   // a log line
  kDropped = 2,  // only `dropped`: the sender lost that many records (sent at its exit)
};

inline constexpr std::size_t kMaxLogText = 32 * 1024;
inline constexpr std::size_t kMaxLogName = 255;  // process name, file and function each
inline constexpr std::string_view kLogTextCutMark = " [... cut]";

struct LogRecord {
  LogRecordKind kind = LogRecordKind::kRecord;
  spdlog::level::level_enum level = spdlog::level::info;
  std::int32_t pid = 0;
  std::int32_t line = 0;  // source line, 0 when unknown
  std::uint64_t thread_id = 0;
  std::int64_t time_ns = 0;   // system_clock, since the epoch
  std::uint32_t dropped = 0;  // records this sender lost just before this one
  std::string_view name;      // the sending process's name ("ForkPoolWorker-2")
  std::string_view file;      // decoded: NUL-terminated (data()[size()] == 0)
  std::string_view function;  // likewise
  std::string_view text;
};

// The largest datagram encode_log_record makes.
std::size_t max_log_datagram() noexcept;

// Replaces `out` with the datagram for `r` (names over kMaxLogName and texts over kMaxLogText
// are cut). Throws only what the buffer's growth throws (std::bad_alloc).
void encode_log_record(const LogRecord& r, spdlog::memory_buf_t& out);

// The record in `datagram`, its strings pointing into it; nullopt when it is not exactly one
// well-formed record (wrong magic, kind or level, sizes that do not add up, a missing NUL).
std::optional<LogRecord> decode_log_record(std::span<const char> datagram) noexcept;

// What a sender does when the channel has no room for a record. A task that logs must not
// stall forever behind a parent that does not read (stopped, or stuck in a slow sink), nor lose
// records to a burst the parent is about to absorb. So the first record that does not fit
// waits up to kWait for room; if none comes it is dropped and counted, and so are the records
// after it, at once, without waiting, until one fits again: that one carries the count, and the
// parent logs how many were lost.
class LogSendPolicy {
 public:
  static constexpr std::chrono::milliseconds kWait{1000};

  // How long a record that does not fit may wait for room (zero: drop it now).
  std::chrono::milliseconds wait_for_room() const noexcept {
    return congested_ ? std::chrono::milliseconds(0) : kWait;
  }
  // The count the next record carries.
  std::uint32_t dropped() const noexcept { return dropped_; }
  // The record went (carrying dropped()).
  void sent() noexcept {
    congested_ = false;
    dropped_ = 0;
  }
  // The record did not fit in time.
  void lost() noexcept {
    congested_ = true;
    if (dropped_ != UINT32_MAX) ++dropped_;
  }

 private:
  bool congested_ = false;
  std::uint32_t dropped_ = 0;
};

}  // namespace mproc::detail
