// A relayed log record's datagram and the sender's wait-or-drop policy (log_record.hpp). Pure
// functions: no pool, no process. The relay itself is tested across processes in
// worker_log_test.cpp.
#include "mproc/runtime/detail/log_record.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace {

using namespace mproc::detail;

LogRecord sample() {
  LogRecord r;
  r.level = spdlog::level::warn;
  r.pid = 4711;
  r.line = 42;
  r.thread_id = 99;
  r.time_ns = 1'700'000'000'123'456'789;
  r.dropped = 3;
  r.name = "ForkPoolWorker-2";
  r.file = "task.cpp";
  r.function = "work";
  r.text = "hello from a task";
  return r;
}

std::vector<char> bytes(const spdlog::memory_buf_t& b) {
  return {b.data(), b.data() + b.size()};
}

TEST(LogRecord, RoundTripKeepsEveryField) {
  spdlog::memory_buf_t buf;
  encode_log_record(sample(), buf);
  const auto d = bytes(buf);
  const auto r = decode_log_record(d);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->kind, LogRecordKind::kRecord);
  EXPECT_EQ(r->level, spdlog::level::warn);
  EXPECT_EQ(r->pid, 4711);
  EXPECT_EQ(r->line, 42);
  EXPECT_EQ(r->thread_id, 99u);
  EXPECT_EQ(r->time_ns, 1'700'000'000'123'456'789);
  EXPECT_EQ(r->dropped, 3u);
  EXPECT_EQ(r->name, "ForkPoolWorker-2");
  EXPECT_EQ(r->file, "task.cpp");
  EXPECT_EQ(r->function, "work");
  EXPECT_EQ(r->text, "hello from a task");
  // spdlog's source_loc takes C strings: they end in a NUL inside the datagram.
  EXPECT_EQ(r->file.data()[r->file.size()], '\0');
  EXPECT_EQ(r->function.data()[r->function.size()], '\0');
}

TEST(LogRecord, EmptyStringsAndTheDroppedKind) {
  LogRecord in;
  in.kind = LogRecordKind::kDropped;
  in.dropped = 7;
  spdlog::memory_buf_t buf;
  encode_log_record(in, buf);
  const auto d = bytes(buf);
  const auto r = decode_log_record(d);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->kind, LogRecordKind::kDropped);
  EXPECT_EQ(r->dropped, 7u);
  EXPECT_TRUE(r->name.empty() && r->file.empty() && r->function.empty() && r->text.empty());
}

TEST(LogRecord, TextsAndNamesOverTheCapsAreCutAndMarked) {
  LogRecord in = sample();
  const std::string text(kMaxLogText + 1000, 'x');
  const std::string name(1000, 'n');
  in.text = text;
  in.name = name;
  spdlog::memory_buf_t buf;
  encode_log_record(in, buf);
  EXPECT_LE(buf.size(), max_log_datagram());
  const auto d = bytes(buf);
  const auto r = decode_log_record(d);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->text.size(), kMaxLogText);
  EXPECT_TRUE(r->text.ends_with(kLogTextCutMark));
  EXPECT_EQ(r->name.size(), kMaxLogName);
}

TEST(LogRecord, ACutNeverSplitsAUtf8Character) {
  LogRecord in = sample();
  // Two-byte characters (é) from an odd offset: some cut point falls inside one.
  std::string text = "a";
  while (text.size() < kMaxLogText + 10) text += "\xC3\xA9";
  in.text = text;
  spdlog::memory_buf_t buf;
  encode_log_record(in, buf);
  const auto d = bytes(buf);
  const auto r = decode_log_record(d);
  ASSERT_TRUE(r);
  const std::string_view kept = r->text.substr(0, r->text.size() - kLogTextCutMark.size());
  ASSERT_FALSE(kept.empty());
  EXPECT_EQ(static_cast<unsigned char>(kept.back()), 0xA9u);  // ends after a whole é
  EXPECT_TRUE(r->text.ends_with(kLogTextCutMark));
}

TEST(LogRecord, MalformedDatagramsAreRefused) {
  spdlog::memory_buf_t buf;
  encode_log_record(sample(), buf);
  const auto good = bytes(buf);
  ASSERT_TRUE(decode_log_record(good));

  EXPECT_FALSE(decode_log_record({}));
  EXPECT_FALSE(decode_log_record(std::span<const char>(good.data(), 10)));  // short header
  auto shorter = good;
  shorter.pop_back();
  EXPECT_FALSE(decode_log_record(shorter));  // sizes do not add up
  auto longer = good;
  longer.push_back('!');
  EXPECT_FALSE(decode_log_record(longer));
  auto magic = good;
  magic[0] ^= 1;
  EXPECT_FALSE(decode_log_record(magic));
  auto kind = good;
  kind[4] = 9;
  EXPECT_FALSE(decode_log_record(kind));
  auto level = good;
  level[5] = static_cast<char>(spdlog::level::off);  // "off" is not a record's level
  EXPECT_FALSE(decode_log_record(level));
  auto nul = good;
  nul[48 + sample().name.size()] = 'x';  // the name's NUL, right after the 48-byte header
  EXPECT_FALSE(decode_log_record(nul));
}

TEST(LogSendPolicy, WaitsOnceThenDropsAtOnceUntilARecordFits) {
  LogSendPolicy p;
  EXPECT_EQ(p.wait_for_room(), LogSendPolicy::kWait);  // the first full channel: wait
  EXPECT_EQ(p.dropped(), 0u);
  p.lost();                                 // no room in time
  EXPECT_EQ(p.wait_for_room().count(), 0);  // the next ones do not wait
  p.lost();
  p.lost();
  EXPECT_EQ(p.dropped(), 3u);  // the next record that fits carries the count
  p.sent();
  EXPECT_EQ(p.dropped(), 0u);
  EXPECT_EQ(p.wait_for_room(), LogSendPolicy::kWait);  // waiting again
}

}  // namespace
