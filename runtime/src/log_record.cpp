#include "mproc/runtime/detail/log_record.hpp"

#include <cstring>

namespace mproc::detail {
namespace {

constexpr std::uint32_t kMagic = 0x474c504d;  // "MPLG"

struct Header {
  std::uint32_t magic;
  std::uint8_t kind;
  std::uint8_t level;
  std::uint16_t name_size;  // each string's size without its NUL
  std::int32_t pid;
  std::int32_t line;
  std::uint64_t thread_id;
  std::int64_t time_ns;
  std::uint32_t dropped;
  std::uint16_t file_size;
  std::uint16_t function_size;
  std::uint32_t text_size;
  std::uint32_t reserved;
};
static_assert(sizeof(Header) == 48);

std::string_view cut(std::string_view s, std::size_t max) {
  if (s.size() <= max) return s;
  std::size_t n = max;
  // Never end inside a UTF-8 character: step back over continuation bytes (10xxxxxx).
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  return s.substr(0, n);
}

}  // namespace

std::size_t max_log_datagram() noexcept {
  return sizeof(Header) + 3 * (kMaxLogName + 1) + kMaxLogText;
}

void encode_log_record(const LogRecord& r, spdlog::memory_buf_t& out) {
  const std::string_view name = cut(r.name, kMaxLogName);
  const std::string_view file = cut(r.file, kMaxLogName);
  const std::string_view function = cut(r.function, kMaxLogName);
  const bool long_text = r.text.size() > kMaxLogText;
  const std::string_view text = cut(r.text, kMaxLogText - (long_text ? kLogTextCutMark.size() : 0));

  Header h{};
  h.magic = kMagic;
  h.kind = static_cast<std::uint8_t>(r.kind);
  h.level = static_cast<std::uint8_t>(r.level);
  h.name_size = static_cast<std::uint16_t>(name.size());
  h.pid = r.pid;
  h.line = r.line;
  h.thread_id = r.thread_id;
  h.time_ns = r.time_ns;
  h.dropped = r.dropped;
  h.file_size = static_cast<std::uint16_t>(file.size());
  h.function_size = static_cast<std::uint16_t>(function.size());
  h.text_size = static_cast<std::uint32_t>(text.size() + (long_text ? kLogTextCutMark.size() : 0));

  out.clear();
  const char* hp = reinterpret_cast<const char*>(&h);
  out.append(hp, hp + sizeof h);
  const char nul = 0;
  for (std::string_view s : {name, file, function}) {
    out.append(s.data(), s.data() + s.size());
    out.push_back(nul);
  }
  out.append(text.data(), text.data() + text.size());
  if (long_text)
    out.append(kLogTextCutMark.data(), kLogTextCutMark.data() + kLogTextCutMark.size());
}

std::optional<LogRecord> decode_log_record(std::span<const char> d) noexcept {
  Header h;
  if (d.size() < sizeof h) return std::nullopt;
  std::memcpy(&h, d.data(), sizeof h);
  if (h.magic != kMagic) return std::nullopt;
  if (h.kind != static_cast<std::uint8_t>(LogRecordKind::kRecord) &&
      h.kind != static_cast<std::uint8_t>(LogRecordKind::kDropped)) {
    return std::nullopt;
  }
  if (h.level >= static_cast<std::uint8_t>(spdlog::level::off)) return std::nullopt;
  if (h.name_size > kMaxLogName || h.file_size > kMaxLogName || h.function_size > kMaxLogName ||
      h.text_size > kMaxLogText) {
    return std::nullopt;
  }
  const std::size_t total =
      sizeof h + std::size_t{h.name_size} + 1 + h.file_size + 1 + h.function_size + 1 + h.text_size;
  if (d.size() != total) return std::nullopt;

  LogRecord r;
  r.kind = static_cast<LogRecordKind>(h.kind);
  r.level = static_cast<spdlog::level::level_enum>(h.level);
  r.pid = h.pid;
  r.line = h.line;
  r.thread_id = h.thread_id;
  r.time_ns = h.time_ns;
  r.dropped = h.dropped;
  std::size_t at = sizeof h;
  const auto take_c_string = [&](std::uint16_t size, std::string_view& s) {
    if (d[at + size] != 0) return false;
    s = std::string_view(d.data() + at, size);
    at += std::size_t{size} + 1;
    return true;
  };
  if (!take_c_string(h.name_size, r.name) || !take_c_string(h.file_size, r.file) ||
      !take_c_string(h.function_size, r.function)) {
    return std::nullopt;
  }
  r.text = std::string_view(d.data() + at, h.text_size);
  return r;
}

}  // namespace mproc::detail
