// The wire on its own: frames, bounded archives, callable naming, exceptions. No processes.
#include <gtest/gtest.h>

#include <cstring>
#include <map>
#include <mproc/pool.hpp>
#include <mproc/serialize/callable.hpp>
#include <mproc/serialize/exception_wire.hpp>
#include <mproc/serialize/frame.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace d = mproc::detail;

namespace {

int twice(int x) {
  return 2 * x;
}

struct Scale {
  int factor = 1;
  int operator()(int x) const { return factor * x; }
  template <class A>
  void serialize(A& ar) {
    ar(factor);
  }
};

// Encodes a one-item apply payload for `fn(args)` and runs it as a worker would.
template <class F, class... A>
d::Bytes run_payload(F fn, A... args) {
  using Item = d::apply_item_t<F, A...>;
  d::Bytes payload;
  d::encode_callable<F, Item, d::CallShape::kApply>(payload, fn, 1);
  d::WireOutputArchive ar(payload);
  ar(Item(args...));
  d::Bytes out;
  d::invoke_payload(payload, out);
  return out;
}

template <class T>
T decode_one(const d::Bytes& b) {
  T v{};
  d::WireInputArchive in(b);
  in(v);
  return v;
}

}  // namespace

TEST(Frame, RoundTripsHeaderFields) {
  d::Bytes b;
  const auto at = d::begin_frame(b);
  b.insert(b.end(), {'a', 'b', 'c'});
  d::finish_frame(b, at, d::FrameKind::kResultOk, 42, 7);
  const auto h = d::parse_frame_header(b, 1024);
  ASSERT_TRUE(h);
  EXPECT_EQ(h->kind, d::FrameKind::kResultOk);
  EXPECT_EQ(h->task_id, 42u);
  EXPECT_EQ(h->aux, 7u);
  EXPECT_EQ(h->length, 3u);
}

TEST(Frame, ShortInputIsNotAFrameYet) {
  d::Bytes b(d::kFrameHeaderSize - 1, 0);
  EXPECT_FALSE(d::parse_frame_header(b, 1024));
}

TEST(Frame, RejectsOversizedBeforeReadingThePayload) {
  d::Bytes b;
  const auto at = d::begin_frame(b);
  b.resize(b.size() + 100);
  d::finish_frame(b, at, d::FrameKind::kTask, 1, 0);
  b.resize(d::kFrameHeaderSize);  // the payload is not even there: the header alone decides
  EXPECT_THROW(d::parse_frame_header(b, 10), mproc::SerializationError);
}

TEST(Frame, RejectsBadMagicVersionAndKind) {
  d::Bytes b;
  d::finish_frame(b, d::begin_frame(b), d::FrameKind::kTask, 1, 0);
  for (std::size_t byte : {0u, 2u, 3u}) {
    d::Bytes bad = b;
    bad[byte] = static_cast<char>(0x7f);
    EXPECT_THROW(d::parse_frame_header(bad, 1024), mproc::SerializationError) << byte;
  }
}

TEST(Frame, FinishRefusesPayloadAboveCap) {
  d::Bytes b;
  const auto at = d::begin_frame(b);
  b.resize(b.size() + 64);
  EXPECT_THROW(d::finish_frame(b, at, d::FrameKind::kTask, 1, 0, 32), mproc::SerializationError);
}

TEST(WireArchive, GarbageLengthPrefixIsRefusedWithoutAllocating) {
  // Eight bytes claiming a vector of 2^62 ints: cereal alone would try to allocate it.
  d::Bytes b(8, 0);
  const std::uint64_t huge = std::uint64_t{1} << 62;
  std::memcpy(b.data(), &huge, 8);
  std::vector<int> v;
  d::WireInputArchive in(b);
  EXPECT_THROW(in(v), mproc::SerializationError);
  std::string s;
  d::WireInputArchive in2(b);
  EXPECT_THROW(in2(s), mproc::SerializationError);
}

TEST(WireArchive, RoundTripsCommonTypes) {
  using T = std::tuple<std::string, std::vector<double>, std::map<std::string, int>,
                       std::optional<int>, std::pair<int, std::string>>;
  const T value{"hé", {1.5, -2.0}, {{"a", 1}, {"b", 2}}, 7, {3, "x"}};
  d::Bytes b;
  d::WireOutputArchive out(b);
  out(value);
  T back;
  d::WireInputArchive in(b);
  in(back);
  EXPECT_EQ(back, value);
  EXPECT_EQ(in.remaining(), 0u);
}

TEST(WireArchive, TruncatedPayloadThrows) {
  d::Bytes b;
  d::WireOutputArchive out(b);
  out(std::string("hello world"));
  b.resize(b.size() - 3);
  std::string s;
  d::WireInputArchive in(b);
  EXPECT_THROW(in(s), mproc::SerializationError);
}

TEST(Callable, PlainFunctionLambdaAndFunctorRunFromTheirNames) {
  EXPECT_EQ(decode_one<int>(run_payload(&twice, 21)), 42);
  EXPECT_EQ(decode_one<int>(run_payload([](int a, int b) { return a - b; }, 10, 3)), 7);
  EXPECT_EQ(decode_one<int>(run_payload(Scale{5}, 3)), 15);
  // Arguments are converted to the parameter types before encoding.
  auto len = [](const std::string& s) { return s.size(); };
  EXPECT_EQ(decode_one<std::size_t>(run_payload(len, "four")), 4u);
}

TEST(Callable, UnknownInvokerIsRefused) {
  d::Bytes payload;
  d::WireOutputArchive ar(payload);
  ar(std::uint64_t{0xdeadbeef}, std::uint8_t{0}, std::uint32_t{1});
  d::Bytes out;
  EXPECT_THROW(d::invoke_payload(payload, out), mproc::SerializationError);
}

TEST(Callable, AnOffsetThatIsNotAFunctionStartIsRefused) {
  d::Bytes payload;
  d::encode_callable<int (*)(int), std::tuple<int>, d::CallShape::kApply>(payload, &twice, 1);
  // The offset is the 8 bytes just before the count; move it one byte into the function.
  const std::size_t count_at = payload.size() - 4;
  std::uint64_t offset;
  std::memcpy(&offset, payload.data() + count_at - 8, 8);
  ++offset;
  std::memcpy(payload.data() + count_at - 8, &offset, 8);
  d::WireOutputArchive ar(payload);
  ar(std::tuple<int>(1));
  d::Bytes out;
  EXPECT_THROW(d::invoke_payload(payload, out), mproc::SerializationError);
}

TEST(ExceptionWire, StandardTypesComeBackAsThemselves) {
  auto round_trip = [](auto ex) {
    d::Bytes b;
    try {
      throw ex;
    } catch (...) {
      d::encode_current_exception(b);
    }
    return d::decode_exception(b);
  };
  EXPECT_THROW(std::rethrow_exception(round_trip(std::invalid_argument("bad"))),
               std::invalid_argument);
  EXPECT_THROW(std::rethrow_exception(round_trip(std::out_of_range("far"))), std::out_of_range);
  EXPECT_THROW(std::rethrow_exception(round_trip(42)), mproc::RemoteError);
  EXPECT_THROW(std::rethrow_exception(round_trip(mproc::LockError("not held"))), mproc::LockError);
  EXPECT_THROW(std::rethrow_exception(round_trip(mproc::BrokenBarrierError("aborted"))),
               mproc::BrokenBarrierError);
  EXPECT_THROW(std::rethrow_exception(round_trip(mproc::StartMethodError("no init"))),
               mproc::StartMethodError);
  EXPECT_THROW(std::rethrow_exception(round_trip(mproc::Empty("empty"))), mproc::Empty);
  EXPECT_THROW(std::rethrow_exception(round_trip(mproc::Full("full"))), mproc::Full);
  try {
    std::rethrow_exception(round_trip(std::runtime_error("boom")));
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "boom");
  }
}

TEST(ExceptionWire, CorruptEncodingIsASerializationError) {
  const d::Bytes junk{1, 2, 3};
  EXPECT_THROW(std::rethrow_exception(d::decode_exception(junk)), mproc::SerializationError);
}

TEST(PoolFrames, OversizedTaskAndResultAreRefusedWithoutHarm) {
  mproc::PoolOptions o;
  o.processes = 1;
  o.max_frame_bytes = 1 << 20;
  mproc::Pool pool(o);
  auto echo = [](const std::string& s) { return s; };
  const std::string big(2 << 20, 'x');
  EXPECT_THROW(pool.apply_async(echo, big), mproc::SerializationError);
  auto grow = [](int n) { return std::string(static_cast<std::size_t>(n), 'y'); };
  EXPECT_THROW(pool.apply(grow, 2 << 20), mproc::SerializationError);
  EXPECT_EQ(pool.apply(echo, std::string("small")), "small");
}
