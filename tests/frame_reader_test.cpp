// The read side of the framings on its own: FrameReader over a socketpair, and the stream
// framing of Pipes and Manager connections. No processes.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <mproc/connection.hpp>
#include <mproc/errors.hpp>
#include <mproc/runtime/detail/fd.hpp>
#include <mproc/serialize/detail/frame.hpp>
#include <mproc/serialize/detail/frame_reader.hpp>
#include <mproc/serialize/detail/stream_frame.hpp>
#include <string>
#include <vector>

namespace d = mproc::detail;

namespace {

d::Bytes task_frame(std::uint64_t id, const std::string& payload,
                    d::FrameKind kind = d::FrameKind::kTask) {
  d::Bytes out;
  const std::size_t at = d::begin_frame(out);
  out.insert(out.end(), payload.begin(), payload.end());
  d::finish_frame(out, at, kind, id, 0);
  return out;
}

struct Wire {
  std::pair<d::UniqueFd, d::UniqueFd> pair = d::make_socketpair(SOCK_STREAM);
  void send(std::span<const char> bytes) {
    d::write_all(pair.first.get(), bytes.data(), bytes.size());
  }
  int reader() const { return pair.second.get(); }
};

// Reads without blocking until the socket is drained.
void drain(d::FrameReader& r, int fd) {
  while (r.read_from(fd, MSG_DONTWAIT) > 0) {
  }
}

TEST(FrameReader, HandsOutSeveralFramesFromOneRead) {
  Wire w;
  d::Bytes all;
  for (std::uint64_t id = 1; id <= 3; ++id) {
    const d::Bytes f = task_frame(id, "payload " + std::to_string(id));
    all.insert(all.end(), f.begin(), f.end());
  }
  w.send(all);
  d::FrameReader r(1024);
  ASSERT_EQ(r.read_from(w.reader(), MSG_DONTWAIT), static_cast<ssize_t>(all.size()));
  for (std::uint64_t id = 1; id <= 3; ++id) {
    auto f = r.peek();
    ASSERT_TRUE(f);
    EXPECT_EQ(f->header.task_id, id);
    EXPECT_EQ(std::string(f->payload.begin(), f->payload.end()), "payload " + std::to_string(id));
    r.pop(*f);
  }
  EXPECT_FALSE(r.peek());
  EXPECT_EQ(r.buffered(), 0u);
}

TEST(FrameReader, WaitsForTheRestOfAPartialFrame) {
  Wire w;
  const d::Bytes f = task_frame(7, std::string(100, 'x'));
  d::FrameReader r(1024);
  w.send(std::span<const char>(f).first(10));  // not even the whole header
  drain(r, w.reader());
  EXPECT_FALSE(r.peek());
  w.send(std::span<const char>(f).subspan(10, 50));  // header, part of the payload
  drain(r, w.reader());
  EXPECT_FALSE(r.peek());
  w.send(std::span<const char>(f).subspan(60));
  drain(r, w.reader());
  auto got = r.peek();
  ASSERT_TRUE(got);
  EXPECT_EQ(got->header.task_id, 7u);
  EXPECT_EQ(got->payload.size(), 100u);
}

TEST(FrameReader, GrowsOnceForAFrameLargerThanTheBuffer) {
  Wire w;
  const std::string big(300'000, 'b');
  const d::Bytes f = task_frame(9, big);
  d::FrameReader r(1 << 20, 4096);
  // A writer thread is not needed: write the header first, then the rest in pieces that fit
  // the socket buffer, reading between them.
  std::size_t sent = 0;
  while (!r.peek()) {
    const std::size_t n = std::min<std::size_t>(f.size() - sent, 50'000);
    if (n > 0) w.send(std::span<const char>(f).subspan(sent, n));
    sent += n;
    drain(r, w.reader());
  }
  auto got = r.peek();
  ASSERT_TRUE(got);
  EXPECT_EQ(std::string(got->payload.begin(), got->payload.end()), big);
}

TEST(FrameReader, LooksAheadPastTheFrontFrame) {
  Wire w;
  d::Bytes all = task_frame(1, "run me");
  const d::Bytes cancel = task_frame(1, "", d::FrameKind::kCancel);
  all.insert(all.end(), cancel.begin(), cancel.end());
  w.send(all);
  d::FrameReader r(1024);
  drain(r, w.reader());
  auto front = r.peek();
  ASSERT_TRUE(front);
  auto next = r.peek(front->size());
  ASSERT_TRUE(next);
  EXPECT_EQ(next->header.kind, d::FrameKind::kCancel);
  EXPECT_FALSE(r.peek(front->size() + next->size()));
}

TEST(FrameReader, RejectsAFrameAboveTheCapFromItsHeader) {
  Wire w;
  const d::Bytes f = task_frame(1, std::string(2000, 'x'));
  w.send(std::span<const char>(f).first(d::kFrameHeaderSize));  // the header alone decides
  d::FrameReader r(1000);
  drain(r, w.reader());
  EXPECT_THROW(r.peek(), mproc::SerializationError);
}

TEST(FrameReader, RejectsABadMagic) {
  Wire w;
  d::Bytes f = task_frame(1, "x");
  f[0] ^= 0x55;
  w.send(f);
  d::FrameReader r(1024);
  drain(r, w.reader());
  EXPECT_THROW(r.peek(), mproc::SerializationError);
}

TEST(FrameReader, ReportsEndOfStreamAndWouldBlock) {
  Wire w;
  d::FrameReader r(1024);
  errno = 0;
  EXPECT_EQ(r.read_from(w.reader(), MSG_DONTWAIT), -1);
  EXPECT_EQ(errno, EAGAIN);
  w.pair.first.reset();
  EXPECT_EQ(r.read_from(w.reader(), MSG_DONTWAIT), 0);
}

TEST(FrameReader, ShrinksAnEmptyBufferOnlyAboveTheLimit) {
  Wire w;
  d::FrameReader r(0, 0);
  const std::string msg(10'000, 'm');
  w.send(msg);
  r.reserve(msg.size());
  drain(r, w.reader());
  ASSERT_EQ(r.buffered(), msg.size());
  r.shrink_if_empty(1);  // not empty: kept
  EXPECT_EQ(std::string(r.unread().begin(), r.unread().end()), msg);
  r.consume(msg.size());
  r.shrink_if_empty(1);
  EXPECT_EQ(r.buffered(), 0u);
}

TEST(StreamFrame, RoundTripsAHeader) {
  const d::StreamHeader h = d::make_stream_header(1234, 1 << 20, "test");
  auto back = d::parse_stream_header(h.bytes(), 1 << 20);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->length, 1234u);
  EXPECT_FALSE(d::parse_stream_header(h.bytes().first(d::kStreamHeaderSize - 1), 1 << 20));
}

TEST(StreamFrame, RejectsABadMagicAndAnOversizedLength) {
  d::StreamHeader h = d::make_stream_header(5000, 1 << 20, "test");
  EXPECT_THROW(d::parse_stream_header(h.bytes(), 4999), mproc::SerializationError);
  EXPECT_NO_THROW(d::parse_stream_header(h.bytes(), 5000));
  h.magic ^= 1;
  EXPECT_THROW(d::parse_stream_header(h.bytes(), 1 << 20), mproc::SerializationError);
  EXPECT_THROW(d::make_stream_header(5000, 4999, "test"), mproc::SerializationError);
}

TEST(StreamFrame, IsWhatAPipeSends) {
  // The Connection's wire format is this framing: a raw header and payload written to one end
  // of a Pipe's socket pair reads back as a message.
  auto [a, b] = d::make_pipe(true);
  const std::string payload = "hello";
  const d::StreamHeader h = d::make_stream_header(payload.size(), 1 << 20, "test");
  d::write_all(a->fileno(), h.bytes().data(), h.bytes().size());
  d::write_all(a->fileno(), payload.data(), payload.size());
  d::Bytes out;
  b->recv_bytes(out, 0);
  EXPECT_EQ(std::string(out.begin(), out.end()), payload);
}

}  // namespace
