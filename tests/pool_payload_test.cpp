// Large payloads through shared memory (worker/detail/payload_channel.hpp): tasks and results
// from kSharedPayloadMin bytes on cross in a worker's shared buffers, smaller and larger ones
// through its socket. Round trips are exact on both sides of each threshold, pipelined ones
// too; a worker killed while it holds a shared payload fails only its task and the pool keeps
// sharing; max_frame_bytes still refuses what is too large, with a SerializationError; nothing
// is left open or mapped. Under every start method. The buffers' own protocol is checked
// in-process at the end (a corrupt reference is a SerializationError, never a wild read).
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <fstream>
#include <mproc/mproc.hpp>
#include <string>
#include <vector>

#include "die_by_signal.hpp"
#include "mproc/runtime/detail/fd.hpp"
#include "mproc/worker/detail/payload_channel.hpp"
#include "start_methods.hpp"
#include "test_support.hpp"

using namespace std::chrono_literals;
using mproc::detail::kSharedPayloadMax;
using mproc::detail::kSharedPayloadMin;

namespace {

constexpr auto kGet = 60s;

// Bytes that depend on their position and a seed: a payload cut, shifted or mixed with
// another one's does not compare equal.
std::vector<char> pattern(std::size_t n, unsigned seed) {
  std::vector<char> v(n);
  std::uint32_t x = seed * 2654435761u + 1;
  for (std::size_t i = 0; i < n; ++i) {
    x = x * 1664525u + 1013904223u;
    v[i] = static_cast<char>(x >> 24);
  }
  return v;
}

std::vector<char> echo(std::vector<char> v) {
  return v;
}

// A result of another size than the argument, so each direction crosses its threshold apart.
std::vector<char> grow(std::vector<char> v, std::size_t extra) {
  v.insert(v.end(), extra, 'g');
  return v;
}

std::size_t size_of(const std::vector<char>& v) {
  return v.size();
}

std::vector<char> make(std::size_t n, unsigned seed) {
  return pattern(n, seed);
}

std::vector<char> die_holding(std::vector<char> v) {
  if (!v.empty()) mproc_test::die_by_signal(SIGKILL);
  return v;
}

// How many mappings of the pool's shared memfd this process holds.
int shared_mappings() {
  std::ifstream maps("/proc/self/maps");
  int n = 0;
  for (std::string line; std::getline(maps, line);) {
    if (line.find("memfd:mproc-progress") != std::string::npos) ++n;
  }
  return n;
}

class Payloads
    : public mproc_test::WithStartMethod<mproc_test::LeakCheckWithParam<mproc::StartMethod>> {
 protected:
  void TearDown() override {
    EXPECT_EQ(shared_mappings(), 0) << "a pool's shared payload buffers are still mapped";
    mproc_test::LeakCheckWithParam<mproc::StartMethod>::TearDown();
  }
};

}  // namespace

INSTANTIATE_TEST_SUITE_P(All, Payloads, mproc_test::all_start_methods(),
                         mproc_test::start_method_name);

// Every size from a little under the threshold to a little over it, so that the task's frame
// and, apart from it, the result's frame each pass through threshold - 1, threshold and
// threshold + 1 whatever the few bytes of framing around the vector are.
TEST_P(Payloads, RoundTripsAreExactAroundTheThreshold) {
  mproc::Pool pool(options(2));
  ASSERT_EQ(pool.apply(size_of, pattern(100, 1)), 100u);
  const int before = shared_mappings();  // slots and flag pages; no buffer yet
  for (std::size_t n = kSharedPayloadMin - 64; n <= kSharedPayloadMin + 16; ++n) {
    const auto v = pattern(n, static_cast<unsigned>(n));
    ASSERT_EQ(pool.apply(echo, v), v) << n;
  }
  const auto v = pattern(kSharedPayloadMin - 40, 7);
  for (std::size_t extra = 0; extra <= 64; ++extra) {
    auto expected = v;
    expected.insert(expected.end(), extra, 'g');
    ASSERT_EQ(pool.apply(grow, v, extra), expected) << extra;
  }
  EXPECT_GT(shared_mappings(), before) << "no payload went through a shared buffer";
}

TEST_P(Payloads, SeveralMebibytesAndMoreThanABufferHolds) {
  mproc::Pool pool(options(2));
  for (std::size_t n : {std::size_t{1} << 20, std::size_t{3} << 20, kSharedPayloadMax - 64,
                        kSharedPayloadMax + 4096, kSharedPayloadMax + (std::size_t{3} << 20)}) {
    const auto v = pattern(n, static_cast<unsigned>(n >> 10));
    EXPECT_EQ(pool.apply(echo, v), v) << n;
    EXPECT_EQ(pool.apply(size_of, v), n) << n;               // large task, small result
    EXPECT_EQ(pool.apply(make, n, 5u), pattern(n, 5)) << n;  // small task, large result
  }
}

// More large tasks in flight than a worker has buffers: the rest travel inline, every result
// is still its own task's.
TEST_P(Payloads, ManyLargePayloadsPipelined) {
  mproc::Pool pool(options(2));
  std::vector<mproc::AsyncResult<std::vector<char>>> rs;
  for (unsigned i = 0; i < 24; ++i) {
    rs.push_back(pool.apply_async(echo, pattern((std::size_t{1} << 20) + i * 4099, i)));
  }
  for (unsigned i = 0; i < rs.size(); ++i) {
    EXPECT_EQ(rs[i].get(kGet), pattern((std::size_t{1} << 20) + i * 4099, i)) << i;
  }
  std::vector<std::vector<char>> inputs;
  for (unsigned i = 0; i < 16; ++i) inputs.push_back(pattern((256u << 10) + i, 100 + i));
  EXPECT_EQ(pool.map(echo, inputs, 1), inputs);
  EXPECT_EQ(pool.map(echo, inputs, 5), inputs);  // chunks of several large items
}

// The worker dies while its task's payload sits in a shared buffer (and another task waits in
// the next one): only that task fails; its buffers are free for the replacement.
TEST_P(Payloads, AWorkerKilledHoldingALargePayloadCostsOnlyItsTask) {
  mproc::Pool pool(options(1));
  const auto big = pattern(2 << 20, 3);
  auto doomed = pool.apply_async(die_holding, big);
  auto next = pool.apply_async(echo, big);
  EXPECT_THROW(doomed.get(kGet), mproc::WorkerLostError);
  EXPECT_EQ(next.get(kGet), big);
  for (unsigned i = 0; i < 8; ++i) {  // more round trips than there are buffers
    const auto v = pattern((1 << 20) + i, i);
    ASSERT_EQ(pool.apply(echo, v), v) << i;
  }
}

TEST_P(Payloads, MaxFrameBytesStillRefusesWithATypedError) {
  mproc::PoolOptions o = options(1);
  o.max_frame_bytes = 256 << 10;
  mproc::Pool pool(o);
  const auto fits = pattern(200 << 10, 1);  // over the sharing threshold, under the cap
  EXPECT_EQ(pool.apply(echo, fits), fits);
  EXPECT_THROW(pool.apply(echo, pattern(300 << 10, 2)), mproc::SerializationError);
  EXPECT_THROW(pool.apply(make, std::size_t{300} << 10, 3u), mproc::SerializationError);
  EXPECT_EQ(pool.apply(echo, fits), fits);  // and the pool goes on
}

TEST_P(Payloads, SharingCanBeTurnedOff) {
  mproc::PoolOptions o = options(1);
  o.shared_payload_min = 0;
  mproc::Pool pool(o);
  ASSERT_EQ(pool.apply(size_of, pattern(100, 1)), 100u);
  const int before = shared_mappings();
  for (unsigned i = 0; i < 4; ++i) {
    const auto v = pattern((1 << 20) + i, i);
    ASSERT_EQ(pool.apply(echo, v), v) << i;
  }
  EXPECT_EQ(shared_mappings(), before) << "a payload went through a shared buffer";
}

// ---- the channel itself, both sides in this process -----------------------------------------

namespace {

using mproc::detail::Bytes;
using mproc::detail::FrameHeader;
using mproc::detail::FrameKind;
using mproc::detail::kFrameHeaderSize;
using mproc::detail::kSharedRefFrameBytes;
using mproc::detail::PayloadChannel;
using mproc::detail::SharedRef;

struct Area {
  Area() : fd(::memfd_create("payload-test", MFD_CLOEXEC)) {
    EXPECT_EQ(::ftruncate(fd.get(), mproc::detail::payload_area_offset(1, 1, bytes)), 0);
  }
  std::size_t bytes = mproc::detail::payload_buffer_bytes(std::size_t{1} << 30);
  mproc::detail::UniqueFd fd;
};

Bytes task_frame(std::size_t payload, char fill) {
  Bytes f;
  const std::size_t at = mproc::detail::begin_frame(f);
  f.resize(f.size() + payload, fill);
  mproc::detail::finish_frame(f, at, FrameKind::kTask, 42, 0);
  return f;
}

FrameHeader header_of(const char* ref) {
  FrameHeader h;
  std::memcpy(&h, ref, kFrameHeaderSize);
  return h;
}

std::span<const char> inline_of(const char* ref) {
  return {ref + kFrameHeaderSize, sizeof(SharedRef)};
}

}  // namespace

TEST(PayloadChannel, SharesLargeFramesOnlyAndHandsThemOverInPlace) {
  Area a;
  PayloadChannel coord(a.fd.get(), mproc::detail::payload_area_offset(1, 0, a.bytes), a.bytes,
                       PayloadChannel::Side::kCoordinator);
  PayloadChannel worker(a.fd.get(), mproc::detail::payload_area_offset(1, 0, a.bytes), a.bytes,
                        PayloadChannel::Side::kWorker);
  char ref[kSharedRefFrameBytes];
  EXPECT_FALSE(coord.share(task_frame(kSharedPayloadMin - 1, 's'), ref));
  const Bytes big = task_frame(kSharedPayloadMin, 'b');
  ASSERT_TRUE(coord.share(big, ref));
  const FrameHeader h = header_of(ref);
  EXPECT_TRUE(mproc::detail::is_shared_frame(h));
  EXPECT_EQ(h.task_id, 42u);
  const auto opened = worker.open(inline_of(ref), std::size_t{1} << 30);
  ASSERT_EQ(opened.payload.size(), kSharedPayloadMin);
  EXPECT_TRUE(
      std::equal(opened.payload.begin(), opened.payload.end(), big.begin() + kFrameHeaderSize));
  // Every buffer of the coordinator's is busy until the worker gives them back.
  unsigned shared = 1;
  while (coord.share(big, ref)) ++shared;
  EXPECT_EQ(shared, mproc::detail::kToWorkerBuffers);
  worker.release(opened.buffer);
  EXPECT_TRUE(coord.share(big, ref));
  coord.reset();  // as for a slot whose worker died
  for (unsigned i = 0; i < mproc::detail::kToWorkerBuffers; ++i) EXPECT_TRUE(coord.share(big, ref));
}

TEST(PayloadChannel, ACorruptReferenceIsASerializationError) {
  Area a;
  const off_t at = mproc::detail::payload_area_offset(1, 0, a.bytes);
  PayloadChannel coord(a.fd.get(), at, a.bytes, PayloadChannel::Side::kCoordinator);
  PayloadChannel worker(a.fd.get(), at, a.bytes, PayloadChannel::Side::kWorker);
  char ref[kSharedRefFrameBytes];
  ASSERT_TRUE(coord.share(task_frame(kSharedPayloadMin, 'b'), ref));
  SharedRef r;
  std::memcpy(&r, ref + kFrameHeaderSize, sizeof r);
  auto open_with = [&](SharedRef bad, std::size_t max) {
    char copy[sizeof bad];
    std::memcpy(copy, &bad, sizeof bad);
    return worker.open({copy, sizeof copy}, max);
  };
  EXPECT_THROW(open_with(r, kSharedPayloadMin - 1), mproc::SerializationError);  // over the cap
  SharedRef too_long = r;
  too_long.length = a.bytes + 1;
  EXPECT_THROW(open_with(too_long, std::size_t{1} << 40), mproc::SerializationError);
  SharedRef not_filled = r;
  not_filled.buffer = r.buffer + 1;  // the coordinator's, but never filled
  EXPECT_THROW(open_with(not_filled, std::size_t{1} << 30), mproc::SerializationError);
  SharedRef wrong_side = r;
  wrong_side.buffer = mproc::detail::kToWorkerBuffers;  // the worker's own
  EXPECT_THROW(open_with(wrong_side, std::size_t{1} << 30), mproc::SerializationError);
  SharedRef out_of_range = r;
  out_of_range.buffer = 1000;
  EXPECT_THROW(open_with(out_of_range, std::size_t{1} << 30), mproc::SerializationError);
  EXPECT_THROW(worker.open({ref + kFrameHeaderSize, 8}, std::size_t{1} << 30),
               mproc::SerializationError);  // a short reference
  EXPECT_NO_THROW(open_with(r, std::size_t{1} << 30));
}
